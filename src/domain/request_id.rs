//! Request ids (`X-Request-Id`): the header's name, a new id, and which ids a request may bring.
//! The admin and peer listeners keep a plain one and make one otherwise (`api::request_id`); the
//! sender makes one for each batch it pushes, so one delivery is found in both nodes' logs.

/// The header's name.
pub const HEADER: &str = "x-request-id";

/// A new request id: a UUIDv7 as 32 lower-case hex digits.
pub fn new() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// Whether `s` is kept as a request id: 1 to 64 of `[A-Za-z0-9._-]`.
pub fn acceptable(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_kept_only_when_plain_and_short() {
        assert!(acceptable("0193a1b2c3d4e5f6a7b8c9d0e1f2a3b4"));
        assert!(acceptable("gw-7.batch_12"));
        for bad in ["", "a b", "x\ny", "<script>", &"a".repeat(65), "标识"] {
            assert!(!acceptable(bad), "{bad:?}");
        }
        let made = new();
        assert_eq!(made.len(), 32);
        assert!(acceptable(&made));
        assert_ne!(made, new());
    }
}
