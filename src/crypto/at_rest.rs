//! Encryption at rest of files the database keeps for a node (evidence files): AES-256-GCM
//! (ring's `aead::AES_256_GCM`, NIST SP 800-38D) under a 32-byte key that lives in a file of its
//! own, never in the database.
//!
//! - **Nonce**: 96 random bits from `SystemRandom` per sealing, stored beside the ciphertext. A
//!   random nonce is safe for far more than 2^32 sealings under one key (SP 800-38D §8.3); a
//!   node seals one nonce per stored file.
//! - **Associated data**: the caller's binding of the row (for evidence: the file's SHA-256), so
//!   a ciphertext moved to another row fails to open instead of yielding another file.
//! - **Key file**: 32 random bytes, created on first start with mode `0600` by
//!   [`crate::crypto::secret_file`] (like the record-signing key) and refused when group or
//!   others may read it. The key is never printed: `Debug` shows its path only.

use std::fs::{self, File};
use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom as _, SystemRandom};

use super::secret_file::{write_new_secret, SecretFileError};

/// Bytes of a key.
pub const KEY_LEN: usize = 32;

/// Why a key could not be loaded or made, or a file not sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum AtRestError {
    #[error("cannot {action} the encryption key {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Write(#[from] SecretFileError),
    #[error("the encryption key {} has mode {mode:04o}, which gives group/others access; run `chmod 600 {}`", path.display(), path.display())]
    InsecurePermissions { path: PathBuf, mode: u32 },
    #[error("the encryption key {} is not {KEY_LEN} bytes", path.display())]
    BadLength { path: PathBuf },
    #[error("the system random generator failed")]
    Random,
    /// The ciphertext, its nonce or its associated data were changed, or another key sealed it.
    #[error(
        "a file stored encrypted does not open: changed in the database, or sealed by another key"
    )]
    Open,
}

/// A node's key for files at rest.
pub struct AtRestKey {
    key: LessSafeKey,
    path: PathBuf,
}

impl std::fmt::Debug for AtRestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtRestKey")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl AtRestKey {
    /// Loads the key at `path`, or creates it (32 random bytes, mode 0600, its directory too)
    /// when nothing is there. Returns whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), AtRestError> {
        if path.exists() {
            return Self::load(path).map(|k| (k, false));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|source| AtRestError::Io {
                action: "create the directory of",
                path: path.to_owned(),
                source,
            })?;
        }
        let mut bytes = [0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| AtRestError::Random)?;
        write_new_secret(path, &bytes)?;
        let key = Self::from_bytes(&bytes, path)?;
        bytes.fill(0);
        Ok((key, true))
    }

    /// Reads a key file: a regular file of exactly [`KEY_LEN`] bytes that only its owner may read.
    pub fn load(path: &Path) -> Result<Self, AtRestError> {
        let io = |action: &'static str| {
            move |source| AtRestError::Io {
                action,
                path: path.to_owned(),
                source,
            }
        };
        let file = File::open(path).map_err(io("open"))?;
        let meta = file.metadata().map_err(io("inspect"))?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(AtRestError::InsecurePermissions {
                path: path.to_owned(),
                mode,
            });
        }
        if !meta.is_file() || meta.len() != KEY_LEN as u64 {
            return Err(AtRestError::BadLength {
                path: path.to_owned(),
            });
        }
        let mut bytes = Vec::with_capacity(KEY_LEN);
        file.take(KEY_LEN as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(io("read"))?;
        let key = Self::from_bytes(&bytes, path);
        bytes.fill(0);
        key
    }

    fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, AtRestError> {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| AtRestError::BadLength {
            path: path.to_owned(),
        })?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
            path: path.to_owned(),
        })
    }

    /// Where the key lives (for messages; never its bytes).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Encrypts `plaintext` bound to `aad`: a fresh random nonce and the ciphertext with its
    /// 16-byte tag.
    pub fn seal(
        &self,
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<([u8; NONCE_LEN], Vec<u8>), AtRestError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| AtRestError::Random)?;
        let mut out = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut out,
            )
            .map_err(|_| AtRestError::Random)?;
        Ok((nonce, out))
    }

    /// Decrypts what [`AtRestKey::seal`] made with the same `aad`; [`AtRestError::Open`] for
    /// anything else.
    pub fn open(
        &self,
        aad: &[u8],
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, AtRestError> {
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| AtRestError::Open)?;
        let mut buf = ciphertext.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| AtRestError::Open)?
            .len();
        buf.truncate(plain);
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(dir: &Path, name: &str) -> AtRestKey {
        AtRestKey::load_or_create(&dir.join(name)).unwrap().0
    }

    #[test]
    fn round_trip_with_a_fresh_nonce_each_time() {
        let dir = tempfile::tempdir().unwrap();
        let k = key(dir.path(), "evidence.key");
        let (n1, c1) = k.seal(b"aad", b"%PDF-1.7 death certificate").unwrap();
        let (n2, c2) = k.seal(b"aad", b"%PDF-1.7 death certificate").unwrap();
        assert_ne!(n1, n2);
        assert_ne!(c1, c2);
        assert!(!c1.windows(b"death".len()).any(|w| w == b"death".as_slice()));
        assert_eq!(
            k.open(b"aad", &n1, &c1).unwrap(),
            b"%PDF-1.7 death certificate"
        );
        // The same key, loaded again from its file.
        let again = AtRestKey::load(&dir.path().join("evidence.key")).unwrap();
        assert_eq!(
            again.open(b"aad", &n2, &c2).unwrap(),
            b"%PDF-1.7 death certificate"
        );
        assert!(!format!("{again:?}").contains(&format!("{:?}", &c2[..4])));
    }

    #[test]
    fn wrong_aad_wrong_key_or_changed_bytes_fail() {
        let dir = tempfile::tempdir().unwrap();
        let k = key(dir.path(), "a.key");
        let other = key(dir.path(), "b.key");
        let (nonce, sealed) = k.seal(b"row-1", b"file").unwrap();
        assert!(matches!(
            k.open(b"row-2", &nonce, &sealed),
            Err(AtRestError::Open)
        ));
        assert!(matches!(
            other.open(b"row-1", &nonce, &sealed),
            Err(AtRestError::Open)
        ));
        let mut changed = sealed.clone();
        changed[0] ^= 1;
        assert!(matches!(
            k.open(b"row-1", &nonce, &changed),
            Err(AtRestError::Open)
        ));
        assert!(matches!(
            k.open(b"row-1", &nonce[..11], &sealed),
            Err(AtRestError::Open)
        ));
    }

    #[test]
    fn the_key_file_is_0600_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/evidence.key");
        let (_, created) = AtRestKey::load_or_create(&path).unwrap();
        assert!(created);
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), KEY_LEN as u64);
        let (_, created) = AtRestKey::load_or_create(&path).unwrap();
        assert!(!created);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let e = AtRestKey::load(&path).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&path, b"short").unwrap();
        assert!(matches!(
            AtRestKey::load(&path),
            Err(AtRestError::BadLength { .. })
        ));
    }
}
