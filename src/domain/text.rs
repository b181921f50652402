//! The one validator of human text (names, addresses, notes, free text of cases, purposes):
//! what a person reads must be what is stored. Refused anywhere: C0 and C1 control characters
//! (newline, carriage return and tab only where a field is multi-line), bidirectional controls
//! (U+061C, U+200E/F, U+202A–202E, U+2066–2069: they reorder what is shown, e.g. a right-to-left
//! override), zero-width and invisible characters (U+200B–200D, U+2060–2064, U+FEFF — a BOM —,
//! U+00AD, U+034F, U+115F/1160, U+17B4/17B5, U+180E, U+3164, U+FFA0), tag characters
//! (U+E0000–E007F), interlinear annotation marks (U+FFF9–FFFB) and noncharacters (U+FDD0–FDEF
//! and U+xxFFFE/xxFFFF); and a text must hold at least one visible character. Pure: the API, the
//! ledger import and the ingest of peers' versions all call [`check`] (through
//! `child::Text` and the case's texts).

/// Why `c` may not appear in human text, if it may not.
pub fn refused(c: char, multiline: bool) -> Option<&'static str> {
    let u = u32::from(c);
    match c {
        '\n' | '\r' | '\t' if multiline => None,
        _ if c.is_control() => Some("a control character"),
        '\u{061C}'
        | '\u{200E}'
        | '\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}' => Some("a bidirectional control character"),
        '\u{200B}'..='\u{200D}'
        | '\u{2060}'..='\u{2064}'
        | '\u{FEFF}'
        | '\u{00AD}'
        | '\u{034F}'
        | '\u{115F}'
        | '\u{1160}'
        | '\u{17B4}'
        | '\u{17B5}'
        | '\u{180E}'
        | '\u{3164}'
        | '\u{FFA0}' => Some("an invisible character"),
        '\u{E0000}'..='\u{E007F}' => Some("a tag character"),
        '\u{FFF9}'..='\u{FFFB}' => Some("an interlinear annotation character"),
        _ if (0xFDD0..=0xFDEF).contains(&u) || (u & 0xFFFE) == 0xFFFE => Some("a noncharacter"),
        _ => None,
    }
}

/// The first refused character of `s`: its position (in characters, from 1), the character and
/// why.
pub fn first_refused(s: &str, multiline: bool) -> Option<(usize, char, &'static str)> {
    s.chars()
        .enumerate()
        .find_map(|(i, c)| refused(c, multiline).map(|why| (i + 1, c, why)))
}

/// Checks human text: no refused character, at least one visible one. The reason names the
/// first offending character by code point (never echoing the text itself).
pub fn check(s: &str, multiline: bool) -> Result<(), String> {
    if let Some((at, c, why)) = first_refused(s, multiline) {
        return Err(format!(
            "character {at} is U+{:04X}, {why}; remove it",
            u32::from(c)
        ));
    }
    if !s.chars().any(|c| !c.is_whitespace()) {
        return Err("must contain at least one visible character".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_text_passes() {
        assert!(check("王小明", false).is_ok());
        assert!(check("O'Brien-Smith", false).is_ok());
        assert!(check("第一行\n第二行\t缩进", true).is_ok());
        assert!(check("=HYPERLINK(\"x\")", false).is_ok());
        // Emoji with a zero-width joiner are refused with the joiner; plain emoji pass.
        assert!(check("😀", false).is_ok());
    }

    #[test]
    fn spoofing_and_invisible_characters_are_refused() {
        for bad in [
            "abc\u{202E}fed",
            "\u{200B}",
            "\u{200B}\u{200B}",
            "\u{FEFF}王小明",
            "王\u{E0041}小",
            "王\u{FDD0}",
            "王\u{FFFF}",
            "王\u{1FFFE}",
            "王\u{2066}小",
            "王\u{061C}",
            "a\u{0}b",
            "a\u{85}b",
            "a\nb",
            "   ",
            "\u{3164}",
        ] {
            assert!(check(bad, false).is_err(), "{bad:?}");
        }
        assert!(check("a\u{0}b", true).is_err());
        let reason = check("abc\u{202E}", false).unwrap_err();
        assert!(
            reason.contains("U+202E") && reason.contains("character 4"),
            "{reason}"
        );
    }
}
