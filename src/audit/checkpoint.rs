//! Checkpoints in the open formats transparency logs use (DESIGN §8), pure, no I/O:
//!
//! - a **signed note** (`c2sp.org/signed-note`): UTF-8 text ending in a newline, a blank line,
//!   then signature lines `— <key name> base64(key id || signature)`; an Ed25519 key's id is
//!   `SHA-256(<name> || "\n" || 0x01 || key)[:4]` and its signature is over the text as it is;
//! - a **checkpoint** (`c2sp.org/tlog-checkpoint`) is a note whose text is the origin line
//!   (`hukou-sync/<node id>`), the tree size in decimal, the RFC 9162 root in standard base64,
//!   then extension lines; ours carry one, `timestamp <unix milliseconds>`, the signing time
//!   of the tree head (signed with the rest, so a checkpoint of a smaller tree signed later than
//!   a larger one proves a rollback);
//! - a **cosignature** (`c2sp.org/tlog-cosignature`, Ed25519 `cosignature/v1`): a witness's
//!   note signature whose key id uses type byte 0x04 and whose bytes are an 8-byte big-endian
//!   POSIX timestamp then an Ed25519 signature over `cosignature/v1\ntime <t>\n` || the note
//!   text.
//!
//! A node whose record-signing key is SM2 (suite `sm2-sm3`) signs notes with it too. The
//! signed-note specification leaves type byte `0xff` to "signature types without an identifier
//! byte assigned by this specification", followed by a longer identifier: an SM2 note
//! signature's type is `0xff || "hukou-sync/sm2-sm3"` and an SM2 cosignature's
//! `0xff || "hukou-sync/sm2-sm3-cosignature/v1"` (the key id hashes the whole type, then the
//! 65-byte point); the signature bytes are `r || s` (64 bytes), after the 8-byte timestamp for a
//! cosignature, over exactly the bytes the Ed25519 forms sign. Tools that know only the
//! assigned types ignore these lines as signatures of unknown keys.
//!
//! A node signs its notes with its record-signing key, and is named `hukou-sync/<node id>`
//! both as a log and as a witness (the key ids differ by their type byte). The note signature
//! has no context prefix of its own; `crypto::keys::SigningKey::sign_note` refuses any text
//! that begins like a contextual message, and a checkpoint text cannot (a node id has no `/`).
//!
//! Tested against notes and keys made by independent implementations: the example of the
//! signed-note specification, the Go `golang.org/x/mod/sumdb/note` test vector, and a
//! checkpoint of a public log cosigned by a public witness (`remora.n621.de`).

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};

use super::merkle::Hash;
use crate::crypto::keys::{PublicKey, Signature, SigningKey, Suite};
use crate::domain::NodeId;

/// Signature type byte of an Ed25519 note signature (signed-note, "Signature types").
pub const ALG_ED25519: u8 = 0x01;
/// Signature type byte of an Ed25519 `cosignature/v1` (tlog-cosignature, "Format").
pub const ALG_COSIGNATURE_V1: u8 = 0x04;
/// Largest note accepted (a checkpoint with a few dozen signatures is under 4 KiB).
pub const MAX_NOTE_BYTES: usize = 16 * 1024;
/// Most signature lines accepted on one note.
pub const MAX_SIGNATURES: usize = 64;
/// The prefix of every origin and key name of this network.
pub const NAME_PREFIX: &str = "hukou-sync/";

/// The signed-note type of an SM2 note signature: `0xff` and this identifier.
pub const SM2_NOTE_TYPE: &[u8] = b"\xffhukou-sync/sm2-sm3";
/// The signed-note type of an SM2 `cosignature/v1`: `0xff` and this identifier.
pub const SM2_COSIGNATURE_TYPE: &[u8] = b"\xffhukou-sync/sm2-sm3-cosignature/v1";

/// The signed-note type of `key`'s note signatures (`[0x01]` for Ed25519).
fn note_type(key: &PublicKey) -> &'static [u8] {
    match key.suite() {
        Suite::Ed25519 => &[ALG_ED25519],
        Suite::Sm2Sm3 => SM2_NOTE_TYPE,
    }
}

/// The signed-note type of `key`'s cosignatures (`[0x04]` for Ed25519).
fn cosignature_type(key: &PublicKey) -> &'static [u8] {
    match key.suite() {
        Suite::Ed25519 => &[ALG_COSIGNATURE_V1],
        Suite::Sm2Sm3 => SM2_COSIGNATURE_TYPE,
    }
}

const DASH: &str = "\u{2014} ";
const COSIGNATURE_HEADER: &str = "cosignature/v1\n";
const TIMESTAMP_EXTENSION: &str = "timestamp ";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("not a signed note: {0}")]
    Malformed(String),
    #[error("not a checkpoint: {0}")]
    NotACheckpoint(String),
    #[error("no signature of {0} verifies on the note")]
    Unsigned(String),
    #[error("cannot sign this text: it begins like a contextual hukou-sync message")]
    Unsignable,
    #[error(transparent)]
    Sign(#[from] crate::crypto::keys::SignError),
}

fn malformed(s: impl Into<String>) -> NoteError {
    NoteError::Malformed(s.into())
}

/// The name of node `node` in notes: its log's origin, and its key name as log and as witness.
pub fn name_of(node: &NodeId) -> String {
    format!("{NAME_PREFIX}{node}")
}

/// The node a name (`hukou-sync/<node id>`) stands for.
pub fn node_of_name(name: &str) -> Option<NodeId> {
    name.strip_prefix(NAME_PREFIX)
        .and_then(|id| NodeId::parse(id).ok())
}

/// The 32-bit key id of a key: `SHA-256(name || "\n" || type || key)[:4]`, big-endian.
pub fn key_id(name: &str, alg: u8, key: &PublicKey) -> u32 {
    key_id_of_type(name, &[alg], key)
}

/// The key id for a signature type of any length (`0xff` and an identifier for SM2).
pub fn key_id_of_type(name: &str, sig_type: &[u8], key: &PublicKey) -> u32 {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(name.as_bytes());
    ctx.update(b"\n");
    ctx.update(sig_type);
    ctx.update(key.as_bytes());
    let d = ctx.finish();
    let b = d.as_ref();
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The verifier key text (`<name>+<key id hex>+base64(type || key)`), as Go's `note` package and
/// the witness tools read it.
pub fn vkey(name: &str, alg: u8, key: &PublicKey) -> String {
    vkey_of_type(name, &[alg], key)
}

/// The verifier key of a log's note signatures by `key`, whatever its suite.
pub fn log_vkey(name: &str, key: &PublicKey) -> String {
    vkey_of_type(name, note_type(key), key)
}

fn vkey_of_type(name: &str, sig_type: &[u8], key: &PublicKey) -> String {
    let mut raw = sig_type.to_vec();
    raw.extend_from_slice(key.as_bytes());
    format!(
        "{name}+{:08x}+{}",
        key_id_of_type(name, sig_type, key),
        STANDARD.encode(raw)
    )
}

/// Parses a verifier key: its name, type and key; refused when the id does not match.
pub fn parse_vkey(text: &str) -> Result<(String, u8, PublicKey), NoteError> {
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(malformed("a verifier key is name+id+key"));
    };
    check_name(name)?;
    let raw = STANDARD
        .decode(b64)
        .map_err(|_| malformed("the verifier key is not base64"))?;
    let sm2 = [SM2_NOTE_TYPE, SM2_COSIGNATURE_TYPE]
        .into_iter()
        .find_map(|t| Some((t, raw.strip_prefix(t)?)))
        .and_then(|(t, k)| Some((t, PublicKey::sm2_from_bytes(k).ok()?)));
    let (sig_type, key) = match sm2 {
        Some((t, key)) => (t, key),
        None => match PublicKey::try_from(raw.get(1..).unwrap_or_default()) {
            Ok(key) if !raw.is_empty() => (&raw[..1], key),
            _ => {
                return Err(malformed(
                    "the verifier key is not a type and an Ed25519 or SM2 key",
                ))
            }
        },
    };
    let alg = sig_type[0];
    if id.len() != 8
        || u32::from_str_radix(id, 16).ok() != Some(key_id_of_type(name, sig_type, &key))
    {
        return Err(malformed(
            "the verifier key's id does not match its name and key",
        ));
    }
    Ok((name.to_owned(), alg, key))
}

fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty()
        || name.len() > 255
        || name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '+')
    {
        return Err(malformed(
            "a key name is 1-255 characters without spaces or '+'",
        ));
    }
    Ok(())
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_id: u32,
    /// What follows the key id: a signature (64 bytes, Ed25519 or SM2), or for a cosignature a
    /// timestamp and a signature (72 bytes).
    pub bytes: Vec<u8>,
}

impl NoteSignature {
    /// The line, newline included.
    pub fn line(&self) -> String {
        let mut raw = self.key_id.to_be_bytes().to_vec();
        raw.extend_from_slice(&self.bytes);
        format!("{DASH}{} {}\n", self.name, STANDARD.encode(raw))
    }

    fn parse_line(line: &str) -> Result<Self, NoteError> {
        let rest = line
            .strip_prefix(DASH)
            .ok_or_else(|| malformed("a signature line begins with an em dash and a space"))?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or_else(|| malformed("a signature line is a name and base64"))?;
        check_name(name)?;
        let raw = STANDARD
            .decode(b64)
            .map_err(|_| malformed("a signature is not base64"))?;
        if raw.len() < 5 {
            return Err(malformed("a signature is too short"));
        }
        Ok(NoteSignature {
            name: name.to_owned(),
            key_id: u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
            bytes: raw[4..].to_vec(),
        })
    }

    /// Whether this is `key`'s note signature (type 0x01 for Ed25519, [`SM2_NOTE_TYPE`] for
    /// SM2) of `text` under `name`.
    pub fn verifies(&self, text: &str, name: &str, key: &PublicKey) -> bool {
        self.name == name
            && self.key_id == key_id_of_type(name, note_type(key), key)
            && <[u8; 64]>::try_from(self.bytes.as_slice()).is_ok_and(|b| {
                key.verify_note(
                    text.as_bytes(),
                    &Signature::from_suite_bytes(key.suite(), b),
                )
            })
    }

    /// The timestamp of this cosignature when it is `key`'s `cosignature/v1` of `text` under
    /// `name`.
    pub fn cosignature_time(&self, text: &str, name: &str, key: &PublicKey) -> Option<u64> {
        if self.name != name
            || self.key_id != key_id_of_type(name, cosignature_type(key), key)
            || self.bytes.len() != 72
        {
            return None;
        }
        let t = u64::from_be_bytes(self.bytes[..8].try_into().ok()?);
        let sig = Signature::from_suite_bytes(key.suite(), self.bytes[8..].try_into().ok()?);
        key.verify_note(cosigned_message(text, t).as_bytes(), &sig)
            .then_some(t)
    }
}

fn cosigned_message(text: &str, timestamp: u64) -> String {
    format!("{COSIGNATURE_HEADER}time {timestamp}\n{text}")
}

/// A signed note: its text and its signature lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Ends with a newline.
    pub text: String,
    pub signatures: Vec<NoteSignature>,
}

impl Note {
    /// Parses a note (signed-note, "Format"): UTF-8, no control characters but newlines, the
    /// text and the signatures apart at the last blank line, at least one signature.
    pub fn parse(bytes: &[u8]) -> Result<Self, NoteError> {
        if bytes.len() > MAX_NOTE_BYTES {
            return Err(malformed(format!("longer than {MAX_NOTE_BYTES} bytes")));
        }
        let s = std::str::from_utf8(bytes).map_err(|_| malformed("not UTF-8"))?;
        if s.chars().any(|c| c.is_control() && c != '\n') {
            return Err(malformed("a control character other than a newline"));
        }
        let split = s
            .rfind("\n\n")
            .ok_or_else(|| malformed("no blank line before the signatures"))?;
        let (text, sigs) = (&s[..=split], &s[split + 2..]);
        if sigs.is_empty() || !sigs.ends_with('\n') {
            return Err(malformed("no signature lines, or no final newline"));
        }
        let signatures = sigs
            .lines()
            .map(NoteSignature::parse_line)
            .collect::<Result<Vec<_>, _>>()?;
        if signatures.len() > MAX_SIGNATURES {
            return Err(malformed(format!("more than {MAX_SIGNATURES} signatures")));
        }
        Ok(Note {
            text: text.to_owned(),
            signatures,
        })
    }

    /// Adds `key`'s note signature (of its suite) under `name`.
    pub fn sign(&mut self, name: &str, key: &SigningKey) -> Result<(), NoteError> {
        check_name(name)?;
        let sig = key
            .sign_note(self.text.as_bytes())?
            .ok_or(NoteError::Unsignable)?;
        self.signatures.push(NoteSignature {
            name: name.to_owned(),
            key_id: key_id_of_type(name, note_type(&key.public_key()), &key.public_key()),
            bytes: sig.as_bytes().to_vec(),
        });
        Ok(())
    }

    /// Whether one of `keys` signed the text under `name`.
    pub fn signed_by(&self, name: &str, keys: &[PublicKey]) -> bool {
        self.signatures
            .iter()
            .any(|s| keys.iter().any(|k| s.verifies(&self.text, name, k)))
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)?;
        f.write_str("\n")?;
        for s in &self.signatures {
            f.write_str(&s.line())?;
        }
        Ok(())
    }
}

/// A witness's `cosignature/v1` of a note's text at `timestamp` (POSIX seconds).
pub fn cosign(
    text: &str,
    name: &str,
    key: &SigningKey,
    timestamp: u64,
) -> Result<NoteSignature, NoteError> {
    check_name(name)?;
    let sig = key
        .sign_note(cosigned_message(text, timestamp).as_bytes())?
        .ok_or(NoteError::Unsignable)?;
    let mut bytes = timestamp.to_be_bytes().to_vec();
    bytes.extend_from_slice(sig.as_bytes());
    Ok(NoteSignature {
        name: name.to_owned(),
        key_id: key_id_of_type(name, cosignature_type(&key.public_key()), &key.public_key()),
        bytes,
    })
}

/// The witnesses whose `cosignature/v1` on `note` verifies with their keys (`keys_of`, e.g. the
/// directory's), each counted once, the log itself never: `(witness, cosignature time)`.
pub fn cosigners(
    note: &Note,
    log: &NodeId,
    keys_of: impl Fn(&NodeId) -> Vec<PublicKey>,
) -> Vec<(NodeId, u64)> {
    let mut out: Vec<(NodeId, u64)> = Vec::new();
    for sig in &note.signatures {
        let Some(w) = node_of_name(&sig.name) else {
            continue;
        };
        if &w == log || out.iter().any(|(n, _)| n == &w) {
            continue;
        }
        if let Some(t) = keys_of(&w)
            .iter()
            .find_map(|k| sig.cosignature_time(&note.text, &sig.name, k))
        {
            out.push((w, t));
        }
    }
    out
}

/// A log's statement of its size and root (tlog-checkpoint, "Note text").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// When the log signed it (our extension line; `None` on other logs' checkpoints).
    pub timestamp: Option<DateTime<Utc>>,
}

impl Checkpoint {
    /// The note text: origin, size, base64 root, then the timestamp extension line if any.
    pub fn text(&self) -> String {
        let mut s = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        );
        if let Some(t) = self.timestamp {
            s.push_str(&format!("{TIMESTAMP_EXTENSION}{}\n", t.timestamp_millis()));
        }
        s
    }

    /// Parses a checkpoint's text; the only extension line understood (and allowed) is ours.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let bad = |s: &str| NoteError::NotACheckpoint(s.to_owned());
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| bad("the text does not end with a newline"))?;
        let lines: Vec<&str> = body.split('\n').collect();
        if lines.len() < 3 || lines.len() > 4 {
            return Err(bad(
                "a checkpoint is an origin, a size, a root and at most one extension line",
            ));
        }
        let origin = lines[0];
        if origin.is_empty() {
            return Err(bad("empty origin line"));
        }
        let size = parse_decimal(lines[1]).ok_or_else(|| bad("the size is not a decimal"))?;
        let root: Hash = STANDARD
            .decode(lines[2])
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| bad("the root is not 32 bytes of base64"))?;
        let timestamp = match lines.get(3) {
            None => None,
            Some(ext) => {
                let ms = ext
                    .strip_prefix(TIMESTAMP_EXTENSION)
                    .and_then(parse_decimal)
                    .and_then(|ms| i64::try_from(ms).ok())
                    .ok_or_else(|| bad("the only extension line is 'timestamp <ms>'"))?;
                Some(
                    DateTime::from_timestamp_millis(ms)
                        .ok_or_else(|| bad("the timestamp is out of range"))?,
                )
            }
        };
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            timestamp,
        })
    }

    /// This checkpoint signed by `key` under its origin.
    pub fn sign(&self, key: &SigningKey) -> Result<Note, NoteError> {
        let mut note = Note {
            text: self.text(),
            signatures: Vec::new(),
        };
        note.sign(&self.origin, key)?;
        Ok(note)
    }

    /// Opens a signed checkpoint: parses the note and its text, and requires a signature under
    /// the origin by one of `keys`.
    pub fn open(bytes: &[u8], keys: &[PublicKey]) -> Result<(Checkpoint, Note), NoteError> {
        let note = Note::parse(bytes)?;
        let cp = Checkpoint::parse(&note.text)?;
        if !note.signed_by(&cp.origin, keys) {
            return Err(NoteError::Unsigned(cp.origin));
        }
        Ok((cp, note))
    }
}

/// ASCII decimal with no leading zeroes (`0` alone for zero).
pub fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// signed-note specification, "Format": its example key and note.
    const SPEC_VKEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
    const SPEC_NOTE: &str = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";
    /// golang.org/x/mod/sumdb/note, note_test.go and example_test.go.
    const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_NOTE: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    /// A checkpoint of the public log arche2025h1.staging.ct.transparency.dev with the
    /// `cosignature/v1` of the public witness remora.n621.de (its log signature, ECDSA, is of
    /// a type this module does not verify and is left out).
    const REMORA_VKEY: &str =
        "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2";
    const ARCHE_NOTE: &str = "arche2025h1.staging.ct.transparency.dev\n1432088532\nU7WM79jrzyhGZ5/GUBTpM7NzwdyfFx61t3RovgcC4Ro=\n\n\u{2014} remora.n621.de 2net5wAAAABqEiEgPlfF3V06o0Y+fHM+J5J9s27wgxxcOVSpZ/2g/KSiXCg9DEZI+aVCIobWX9sXTynk5XeU/zZ0WBxtqB0DrAWfBw==\n";

    #[test]
    fn the_specifications_example_note_verifies() {
        let (name, alg, key) = parse_vkey(SPEC_VKEY).unwrap();
        assert_eq!((name.as_str(), alg), ("example.com/foo", ALG_ED25519));
        assert_eq!(vkey(&name, alg, &key), SPEC_VKEY);
        let note = Note::parse(SPEC_NOTE.as_bytes()).unwrap();
        assert_eq!(note.text, "This is an example message.\n");
        assert!(note.signed_by("example.com/foo", &[key]));
        assert_eq!(note.to_string(), SPEC_NOTE);
    }

    #[test]
    fn the_go_note_vector_verifies_and_a_changed_text_does_not() {
        let (name, _, key) = parse_vkey(GO_VKEY).unwrap();
        assert_eq!(key_id(&name, ALG_ED25519, &key), 0xc74f20a3);
        let note = Note::parse(GO_NOTE.as_bytes()).unwrap();
        assert!(note.signed_by("PeterNeumann", &[key]));
        assert!(!note.signed_by("EnochRoot", &[key]));
        let changed = Note {
            text: note.text.replace("answer", "Answer"),
            ..note
        };
        assert!(!changed.signed_by("PeterNeumann", &[key]));
    }

    #[test]
    fn a_public_witnesss_cosignature_verifies() {
        let (name, alg, key) = parse_vkey(REMORA_VKEY).unwrap();
        assert_eq!(alg, ALG_COSIGNATURE_V1);
        let note = Note::parse(ARCHE_NOTE.as_bytes()).unwrap();
        let cp = Checkpoint::parse(&note.text).unwrap();
        assert_eq!(cp.size, 1432088532);
        assert_eq!(cp.text(), note.text);
        let t = note.signatures[0].cosignature_time(&note.text, &name, &key);
        assert_eq!(t, Some(0x6a12_2120));
        // Not a plain note signature, and not a cosignature of another size.
        assert!(!note.signed_by(&name, &[key]));
        let other = Checkpoint { size: 42, ..cp }.text();
        assert_eq!(
            note.signatures[0].cosignature_time(&other, &name, &key),
            None
        );
    }

    fn key() -> SigningKey {
        SigningKey::generate().unwrap().0
    }

    fn checkpoint(size: u64) -> Checkpoint {
        Checkpoint {
            origin: name_of(&NodeId::parse("510100").unwrap()),
            size,
            root: [7u8; 32],
            timestamp: DateTime::from_timestamp_millis(1_764_900_000_123),
        }
    }

    #[test]
    fn our_checkpoints_sign_open_and_cosign() {
        let (log, witness) = (key(), key());
        let cp = checkpoint(73_044);
        let note = cp.sign(&log).unwrap();
        assert!(note.text.starts_with("hukou-sync/510100\n73044\n"));
        assert!(note.text.ends_with("\ntimestamp 1764900000123\n"));
        let text = note.to_string();
        let (opened, _) = Checkpoint::open(text.as_bytes(), &[log.public_key()]).unwrap();
        assert_eq!(opened, cp);
        assert_eq!(
            Checkpoint::open(text.as_bytes(), &[witness.public_key()]),
            Err(NoteError::Unsigned(cp.origin.clone()))
        );
        let w = "hukou-sync/410100";
        let sig = cosign(&note.text, w, &witness, 1_764_900_001).unwrap();
        assert_eq!(
            sig.cosignature_time(&note.text, w, &witness.public_key()),
            Some(1_764_900_001)
        );
        assert_eq!(sig.cosignature_time(&note.text, w, &log.public_key()), None);
        // A cosignature line parses back as it was written.
        let mut with = note.clone();
        with.signatures.push(sig.clone());
        let again = Note::parse(with.to_string().as_bytes()).unwrap();
        assert_eq!(again.signatures[1], sig);
    }

    #[test]
    fn malformed_notes_and_checkpoints_are_refused() {
        for bad in [
            "no blank line\n\u{2014} a AAAAAAAA\n",
            "text\n\n",
            "text\n\n\u{2014} a AAAAAAAA",
            "te\u{1}xt\n\n\u{2014} a AAAAAAAA\n",
            "text\n\n- a AAAAAAAA\n",
            "text\n\n\u{2014} a !!!\n",
        ] {
            assert!(Note::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
        let root = STANDARD.encode([0u8; 32]);
        for bad in [
            format!("o\n07\n{root}\n"),
            "o\n7\n".to_owned(),
            "o\n7\nAAAA\n".to_owned(),
            format!("o\n7\n{root}"),
            format!("o\n7\n{root}\nother 1\n"),
            format!("\n7\n{root}\n"),
        ] {
            assert!(Checkpoint::parse(&bad).is_err(), "{bad:?}");
        }
        assert!(Checkpoint::parse(&format!("o\n0\n{root}\n")).is_ok());
    }

    #[test]
    fn a_note_key_never_signs_a_contextual_message() {
        let k = key();
        let mut n = Note {
            text: "hukou-sync/v1/version\0x\n".into(),
            signatures: vec![],
        };
        assert_eq!(n.sign("x", &k), Err(NoteError::Unsignable));
    }

    /// SM2 logs and witnesses: notes and cosignatures under the `0xff` types, verified by key,
    /// and mixed with Ed25519 on one note (a network migrating between suites).
    #[test]
    fn sm2_checkpoints_sign_open_and_cosign() {
        let sm2 = || SigningKey::generate_in(Suite::Sm2Sm3).unwrap().0;
        let (log, witness, ed_witness) = (sm2(), sm2(), key());
        let cp = checkpoint(12);
        let mut note = cp.sign(&log).unwrap();
        // An Ed25519 key of the same log signs the same text beside it.
        let ed_log = key();
        note.sign(&cp.origin, &ed_log).unwrap();
        let text = note.to_string();
        for k in [log.public_key(), ed_log.public_key()] {
            let (opened, _) = Checkpoint::open(text.as_bytes(), &[k]).unwrap();
            assert_eq!(opened, cp);
        }
        assert!(Checkpoint::open(text.as_bytes(), &[witness.public_key()]).is_err());
        let w = "hukou-sync/410100";
        let sig = cosign(&note.text, w, &witness, 1_764_900_001).unwrap();
        assert_eq!(
            sig.cosignature_time(&note.text, w, &witness.public_key()),
            Some(1_764_900_001)
        );
        assert_eq!(
            sig.cosignature_time(&note.text, w, &ed_witness.public_key()),
            None
        );
        assert_eq!(sig.cosignature_time(&note.text, w, &log.public_key()), None);
        // A note line of the SM2 log does not pass as its cosignature, nor the reverse.
        assert_eq!(
            note.signatures[0].cosignature_time(&note.text, &cp.origin, &log.public_key()),
            None
        );
        assert!(!sig.verifies(&note.text, w, &witness.public_key()));
        // The verifier key names the SM2 type and parses back.
        let vk = log_vkey(&cp.origin, &log.public_key());
        let (name, alg, parsed) = parse_vkey(&vk).unwrap();
        assert_eq!(
            (name.as_str(), alg, parsed),
            (cp.origin.as_str(), 0xff, log.public_key())
        );
        assert_eq!(
            log_vkey(&cp.origin, &ed_log.public_key()),
            vkey(&cp.origin, ALG_ED25519, &ed_log.public_key())
        );
    }
}
