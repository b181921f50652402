//! Judging a directory a peer offers (`GET /peer/v1/directory`, asked by the job
//! `jobs::directory_fetch`): the rule is that a node takes from a peer only what it would take
//! from its own file, and only when it moves forward.
//!
//! - The offer must verify exactly as a file does on load ([`Directory::from_signed_json`]: the
//!   configured authority's signature, not expired at `now`, every validation rule) and must
//!   declare the network's content hash unchanged. Anything else is refused with the
//!   [`DirectoryError`] that says why; the peer cannot make a node accept what its authority did
//!   not sign.
//! - Only a **higher** serial is an update. A lower serial (a rollback) and the same serial
//!   (nothing new; a peer cannot replace same-serial content, only the local file can) are
//!   [`Offer::NotNewer`] and ignored.
//! - An offer larger than [`MAX_DIRECTORY_FILE_LEN`] is refused before it is parsed.
//!
//! This is a pure function of its inputs; installing ([`super::DirectoryHandle::install`], which
//! checks the serial again under its lock) and writing the file are the caller's.

use chrono::{DateTime, Utc};

use super::{Directory, DirectoryError, MAX_DIRECTORY_FILE_LEN};
use crate::crypto::PublicKey;

/// What a peer's directory is to this node.
#[derive(Debug)]
pub enum Offer {
    /// Verified, with a higher serial than the one in use: to be installed.
    Newer(Box<Directory>),
    /// Verified, but its serial is not higher than the one in use: ignored.
    NotNewer {
        /// The serial offered.
        serial: u64,
    },
}

/// Judges `bytes`, a signed directory a peer answered, against `current` (the directory in
/// use), the trusted `authority` key and the time `now`. See the module docs for the rules.
pub fn judge(
    current: &Directory,
    bytes: &[u8],
    authority: &PublicKey,
    now: DateTime<Utc>,
) -> Result<Offer, DirectoryError> {
    if bytes.len() as u64 > MAX_DIRECTORY_FILE_LEN {
        return Err(DirectoryError::Invalid {
            field: "(offered directory)".into(),
            reason: format!("is larger than {MAX_DIRECTORY_FILE_LEN} bytes"),
        });
    }
    let offered = Directory::from_signed_json(bytes, authority, now)?;
    if offered.hash() != current.hash() {
        return Err(DirectoryError::HashChanged {
            current: current.hash(),
            offered: offered.hash(),
        });
    }
    if offered.serial() <= current.serial() {
        return Ok(Offer::NotNewer {
            serial: offered.serial(),
        });
    }
    Ok(Offer::Newer(Box::new(offered)))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{now, sample_doc};
    use super::*;
    use crate::crypto::SigningKey;
    use crate::directory::sign;

    fn signed(serial: u64, key: &SigningKey) -> Vec<u8> {
        serde_json::to_vec(&sign(&sample_doc(serial), key).unwrap()).unwrap()
    }

    #[test]
    fn only_a_higher_verified_serial_is_newer() {
        let key = SigningKey::generate().unwrap().0;
        let auth = key.public_key();
        let current = Directory::from_signed_json(&signed(3, &key), &auth, now()).unwrap();

        let Offer::Newer(d) = judge(&current, &signed(4, &key), &auth, now()).unwrap() else {
            panic!("serial 4 is newer than 3");
        };
        assert_eq!(d.serial(), 4);
        assert_eq!(&**d.signed_json(), signed(4, &key).as_slice());
        for serial in [1, 3] {
            assert!(matches!(
                judge(&current, &signed(serial, &key), &auth, now()).unwrap(),
                Offer::NotNewer { serial: s } if s == serial
            ));
        }
    }

    #[test]
    fn forged_expired_garbage_and_another_hash_are_refused() {
        let key = SigningKey::generate().unwrap().0;
        let auth = key.public_key();
        let current = Directory::from_signed_json(&signed(3, &key), &auth, now()).unwrap();
        let forger = SigningKey::generate().unwrap().0;
        assert!(matches!(
            judge(&current, &signed(9, &forger), &auth, now()),
            Err(DirectoryError::BadSignature { .. })
        ));
        let later = sample_doc(9).expires_at;
        assert!(matches!(
            judge(&current, &signed(9, &key), &auth, later),
            Err(DirectoryError::Expired { .. })
        ));
        assert!(matches!(
            judge(&current, b"<html>busy</html>", &auth, now()),
            Err(DirectoryError::Syntax(_))
        ));
        let mut sm3 = sample_doc(9);
        sm3.hash = crate::crypto::hash::HashAlg::Sm3;
        let bytes = serde_json::to_vec(&sign(&sm3, &key).unwrap()).unwrap();
        assert!(matches!(
            judge(&current, &bytes, &auth, now()),
            Err(DirectoryError::HashChanged { .. })
        ));
    }
}
