//! Hashing: SHA-256 ([`Digest::of`], through `ring::digest`), the hash of content ids, and
//! SM3 ([`Digest::sm3_of`], GB/T 32905-2016, through RustCrypto's `sm3`), the hash inside SM2
//! signatures, tested here against the standard's examples. The [`Digest`] value, its hex
//! text form and the hex helpers live in `domain::digest` (pure values), re-exported here.

pub use crate::domain::digest::{to_hex, Digest, DigestParseError, DIGEST_HEX_LEN, DIGEST_LEN};

impl Digest {
    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        let d = ring::digest::digest(&ring::digest::SHA256, bytes);
        let mut out = [0u8; DIGEST_LEN];
        // Invariant: a SHA-256 output is always exactly 32 bytes, so
        // `copy_from_slice` (which panics only on a length mismatch) cannot
        // panic here.
        out.copy_from_slice(d.as_ref());
        Digest(out)
    }

    /// SHA-256 of everything `r` yields, read in 64 KiB pieces (a file of any size in bounded
    /// memory).
    pub fn of_reader(mut r: impl std::io::Read) -> std::io::Result<Self> {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = r.read(&mut buf)?;
            if n == 0 {
                break;
            }
            ctx.update(&buf[..n]);
        }
        let mut out = [0u8; DIGEST_LEN];
        // Invariant: as in `of`, the output is exactly 32 bytes.
        out.copy_from_slice(ctx.finish().as_ref());
        Ok(Digest(out))
    }

    /// SM3 (GB/T 32905-2016) of `bytes`: like SHA-256, a 256-bit digest.
    pub fn sm3_of(bytes: &[u8]) -> Self {
        use sm3::Digest as _;
        Digest(sm3::Sm3::digest(bytes).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // FIPS 180-2 / NIST CAVP SHA-256 examples.
    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn known_answers() {
        assert_eq!(Digest::of(b"").to_string(), EMPTY);
        assert_eq!(Digest::of_reader(&b""[..]).unwrap().to_string(), EMPTY);
        let big = vec![b'a'; 200_000];
        assert_eq!(Digest::of_reader(&big[..]).unwrap(), Digest::of(&big));
        assert_eq!(Digest::of(b"abc").to_string(), ABC);
        assert_eq!(
            Digest::of(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq").to_string(),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }

    /// GB/T 32905-2016 Appendix A: example 1 (`abc`) and example 2 (`abcd` sixteen times).
    #[test]
    fn sm3_known_answers() {
        assert_eq!(
            Digest::sm3_of(b"abc").to_string(),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
        assert_eq!(
            Digest::sm3_of("abcd".repeat(16).as_bytes()).to_string(),
            "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
        );
        assert_ne!(Digest::sm3_of(b"abc"), Digest::of(b"abc"));
    }

    #[test]
    fn parse_round_trip() {
        let d: Digest = ABC.parse().unwrap();
        assert_eq!(d, Digest::of(b"abc"));
        assert_eq!(d.to_string(), ABC);
        assert_eq!(d.as_bytes()[0], 0xba);
        assert_eq!(format!("{d:?}"), format!("Digest({ABC})"));
    }

    #[test]
    fn parse_is_strict() {
        assert_eq!(
            ABC.to_uppercase().parse::<Digest>(),
            Err(DigestParseError::InvalidCharacter {
                index: 0,
                found: 'B'
            })
        );
        assert_eq!(
            ABC[..63].parse::<Digest>(),
            Err(DigestParseError::WrongLength(63))
        );
        assert_eq!(
            format!("{ABC}0").parse::<Digest>(),
            Err(DigestParseError::WrongLength(65))
        );
        assert!(format!(" {}", &ABC[1..]).parse::<Digest>().is_err());
        assert!(format!("0x{}", &ABC[2..]).parse::<Digest>().is_err());
        assert_eq!("".parse::<Digest>(), Err(DigestParseError::WrongLength(0)));
        // A multi-byte character of the right byte length is refused, not
        // sliced mid-character.
        let with_e_acute = format!("é{}", &ABC[2..]);
        assert_eq!(with_e_acute.len(), 64);
        assert_eq!(
            with_e_acute.parse::<Digest>(),
            Err(DigestParseError::InvalidCharacter {
                index: 0,
                found: 'é'
            })
        );
        assert!(format!("a{}", &with_e_acute[..63])
            .parse::<Digest>()
            .is_err());
    }

    #[test]
    fn serde_as_hex_string() {
        let d = Digest::of(b"abc");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{ABC}\""));
        let back: Digest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
        let upper = format!("\"{}\"", ABC.to_uppercase());
        assert!(serde_json::from_str::<Digest>(&upper).is_err());
        assert!(serde_json::from_str::<Digest>("[1,2]").is_err());
    }

    #[test]
    fn order_matches_hex_order() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        assert_eq!(a.cmp(&b), a.to_string().cmp(&b.to_string()));
    }

    #[test]
    fn to_hex_matches_display() {
        let d = Digest::of(b"abc");
        assert_eq!(to_hex(d.as_bytes()), d.to_string());
        assert_eq!(to_hex(&[0x00, 0x0f, 0xf0, 0xff]), "000ff0ff");
    }
}
