//! Ed25519 record-signing keys (via `ring`), their on-disk form, and
//! domain-separated signatures.
//!
//! Every signature this crate makes or checks is over
//!
//! ```text
//! b"hukou-sync/v1/" || label || b"\0" || message
//! ```
//!
//! where `label` names a [`SigningContext`] (`version`, `receipt`,
//! `tree-head`, `directory`, `request`, `lookup`). A version signature, for example, is
//! over `"hukou-sync/v1/version\0" || id`. The labels contain no NUL byte, so
//! the prefix ends unambiguously and a signature made for one context never
//! verifies in another.
//!
//! Text forms: [`PublicKey`] and [`Signature`] are written (Display, FromStr,
//! serde) as base64url without padding (RFC 4648 §5). Decoding is strict:
//! padding, the standard alphabet's `+` and `/`, whitespace and
//! non-canonical trailing bits are refused, so each value has one spelling.
//!
//! Key files hold the raw PKCS#8 v2 DER document that `ring` generates
//! (RFC 5958; 83 bytes, not PEM), with mode 0600. This module is
//! Unix-only: it relies on Unix permission bits to keep the file private.
//! Secret bytes are not wiped from memory after use (no zeroizing crate is
//! in the allowed dependency set).

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, KeyPair as _, UnparsedPublicKey, ED25519};
use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};

use super::hash::{to_hex, Digest};
use super::secret_file::{write_new_secret, SecretFileError};

/// Length in bytes of an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;

/// Length in bytes of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// Prefix shared by every signed message; see the module docs.
pub const DOMAIN_PREFIX: &[u8] = b"hukou-sync/v1/";

/// Largest key file [`SigningKey::load`] reads. An Ed25519 PKCS#8 v2
/// document is 83 bytes; anything much larger is not a key file.
const MAX_KEY_FILE_LEN: u64 = 1024;

/// What a signature is for. Part of the signed bytes, so a signature made in
/// one context cannot be replayed as one in another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningContext {
    /// A record version; signed message is the version id.
    Version,
    /// A receipt acknowledging records from another bureau.
    Receipt,
    /// A transparency-log tree head.
    TreeHead,
    /// An entry of the bureau key directory.
    Directory,
    /// An authenticated request between bureaus.
    Request,
    /// A bureau's answer whether it holds a child's file (a lookup statement).
    Lookup,
}

impl SigningContext {
    /// Every context, in declaration order.
    pub const ALL: [SigningContext; 6] = [
        SigningContext::Version,
        SigningContext::Receipt,
        SigningContext::TreeHead,
        SigningContext::Directory,
        SigningContext::Request,
        SigningContext::Lookup,
    ];

    /// The label written into the signed message. Stable wire format: never
    /// change an existing label.
    pub const fn label(self) -> &'static str {
        match self {
            SigningContext::Version => "version",
            SigningContext::Receipt => "receipt",
            SigningContext::TreeHead => "tree-head",
            SigningContext::Directory => "directory",
            SigningContext::Request => "request",
            SigningContext::Lookup => "lookup",
        }
    }
}

impl fmt::Display for SigningContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The exact bytes signed for `msg` in `ctx`:
/// `b"hukou-sync/v1/" || ctx.label() || b"\0" || msg`.
pub fn signed_message(ctx: SigningContext, msg: &[u8]) -> Vec<u8> {
    let label = ctx.label().as_bytes();
    let mut out = Vec::with_capacity(DOMAIN_PREFIX.len() + label.len() + 1 + msg.len());
    out.extend_from_slice(DOMAIN_PREFIX);
    out.extend_from_slice(label);
    out.push(0);
    out.extend_from_slice(msg);
    out
}

/// Errors about signing keys: generating, reading and writing key files,
/// and parsing public keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The system random number generator failed.
    #[error("could not generate an Ed25519 key: the system random number generator failed")]
    Generate,
    /// Bytes that are not an Ed25519 PKCS#8 v2 document (`ring`'s reason).
    #[error("not a valid Ed25519 PKCS#8 v2 private key document: {0}")]
    InvalidPkcs8(String),
    /// A key file whose contents are not an Ed25519 PKCS#8 v2 document.
    #[error("key file {} is not a valid Ed25519 PKCS#8 v2 DER document: {reason}", path.display())]
    InvalidKeyFile {
        /// The key file.
        path: PathBuf,
        /// `ring`'s reason.
        reason: String,
    },
    /// [`SigningKey::write_new`] found a file already at the path; it never
    /// overwrites a key.
    #[error("key file {} already exists; refusing to overwrite a signing key", path.display())]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// The key file can be read (or written) by group or others.
    #[error(
        "key file {} has mode {mode:04o}, which gives group/others access; refusing to use it. \
         Fix with: chmod 600 {}",
        path.display(),
        path.display()
    )]
    InsecurePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits (`st_mode & 0o7777`).
        mode: u32,
    },
    /// The path is a directory, device, FIFO or socket, not a regular file.
    #[error("key file {} is not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// The file is far larger than any Ed25519 PKCS#8 document.
    #[error("key file {} is {len} bytes, too large to be an Ed25519 PKCS#8 document", path.display())]
    KeyFileTooLarge {
        /// The key file.
        path: PathBuf,
        /// Its size in bytes.
        len: u64,
    },
    /// An I/O error on the key file (or, after writing, its directory).
    #[error("could not {action} key file {}: {source}", path.display())]
    Io {
        /// What was being done: "create", "write", "sync", "open", "read"...
        action: &'static str,
        /// The file (or its directory for "sync directory of").
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A public key's text is not base64url without padding.
    #[error("Ed25519 public key is not unpadded base64url (RFC 4648 §5): {0}")]
    PublicKeyEncoding(String),
    /// A public key of the wrong length.
    #[error("Ed25519 public key must be {PUBLIC_KEY_LEN} bytes (43 unpadded base64url characters), got {0} bytes")]
    PublicKeyLength(usize),
}

/// Errors about signatures: parsing them and checking them.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// The signature is not valid for this key, context and message.
    #[error("Ed25519 signature does not verify under key {key} in context \"{context}\"")]
    Invalid {
        /// [`PublicKey::fingerprint`] of the key tried.
        key: String,
        /// The context the signature was checked in.
        context: SigningContext,
    },
    /// A signature's text is not base64url without padding.
    #[error("Ed25519 signature is not unpadded base64url (RFC 4648 §5): {0}")]
    Encoding(String),
    /// A signature of the wrong length.
    #[error("Ed25519 signature must be {SIGNATURE_LEN} bytes (86 unpadded base64url characters), got {0} bytes")]
    Length(usize),
}

/// A PKCS#8 v2 (RFC 5958) DER document holding an Ed25519 private key, as
/// generated by [`SigningKey::generate`]. Secret: its `Debug` prints nothing
/// of the contents.
pub struct Pkcs8Document(ring::pkcs8::Document);

impl Pkcs8Document {
    /// The DER bytes. Secret.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_ref()
    }
}

impl AsRef<[u8]> for Pkcs8Document {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl fmt::Debug for Pkcs8Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pkcs8Document(<redacted>)")
    }
}

/// An Ed25519 private key used to sign records. `Debug` shows only the
/// public key.
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl SigningKey {
    /// A fresh key from the system random number generator, with its PKCS#8
    /// v2 document for storage.
    pub fn generate() -> Result<(SigningKey, Pkcs8Document), KeyError> {
        let rng = ring::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| KeyError::Generate)?;
        let key = SigningKey::from_pkcs8(doc.as_ref())?;
        Ok((key, Pkcs8Document(doc)))
    }

    /// Parses a PKCS#8 v2 DER document (one that includes the public key,
    /// which `ring` checks against the private key). v1 documents are
    /// refused.
    pub fn from_pkcs8(der: &[u8]) -> Result<SigningKey, KeyError> {
        let pair =
            Ed25519KeyPair::from_pkcs8(der).map_err(|e| KeyError::InvalidPkcs8(e.to_string()))?;
        Ok(SigningKey { pair })
    }

    /// Generates a key and writes its PKCS#8 document to a new file at
    /// `path` with mode 0600 (further narrowed by the umask).
    ///
    /// The file is created with `O_CREAT|O_EXCL`, so an existing file is
    /// never overwritten ([`KeyError::AlreadyExists`]) and the file never
    /// exists with wider permissions. The data and the directory entry are
    /// fsynced before returning. If writing the data fails the partial file
    /// is removed; if only the final directory fsync fails, the (complete)
    /// key file is left in place and the error is returned.
    pub fn write_new(path: impl AsRef<Path>) -> Result<SigningKey, KeyError> {
        let path = path.as_ref();
        let (key, doc) = SigningKey::generate()?;
        write_new_secret(path, doc.as_bytes()).map_err(|e| match e {
            SecretFileError::AlreadyExists { path } => KeyError::AlreadyExists { path },
            SecretFileError::InsecurePermissions { path, mode } => {
                KeyError::InsecurePermissions { path, mode }
            }
            SecretFileError::Io {
                action,
                path,
                source,
            } => KeyError::Io {
                action,
                path,
                source,
            },
        })?;
        sync_parent_dir(path)?;
        Ok(key)
    }

    /// Reads a key file written by [`SigningKey::write_new`] (or any PKCS#8
    /// v2 DER Ed25519 key).
    ///
    /// Refuses a file whose mode gives group or others any access
    /// (`mode & 0o077 != 0`) with [`KeyError::InsecurePermissions`], whose
    /// message names the file and the `chmod 600` fix.
    pub fn load(path: impl AsRef<Path>) -> Result<SigningKey, KeyError> {
        let path = path.as_ref();
        // Refuse non-regular files before opening: opening a FIFO would block.
        let meta = fs::metadata(path).map_err(|e| io_error("inspect", path, e))?;
        if !meta.is_file() {
            return Err(KeyError::NotAFile {
                path: path.to_path_buf(),
            });
        }
        let file = File::open(path).map_err(|e| io_error("open", path, e))?;
        // Check the permissions of the file actually opened, not of whatever
        // the path named a moment ago.
        let meta = file.metadata().map_err(|e| io_error("inspect", path, e))?;
        if !meta.is_file() {
            return Err(KeyError::NotAFile {
                path: path.to_path_buf(),
            });
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyError::InsecurePermissions {
                path: path.to_path_buf(),
                mode,
            });
        }
        if meta.len() > MAX_KEY_FILE_LEN {
            return Err(KeyError::KeyFileTooLarge {
                path: path.to_path_buf(),
                len: meta.len(),
            });
        }
        let mut der = Vec::new();
        file.take(MAX_KEY_FILE_LEN + 1)
            .read_to_end(&mut der)
            .map_err(|e| io_error("read", path, e))?;
        let pair = Ed25519KeyPair::from_pkcs8(&der).map_err(|e| KeyError::InvalidKeyFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(SigningKey { pair })
    }

    /// The public half of this key.
    pub fn public_key(&self) -> PublicKey {
        let mut bytes = [0u8; PUBLIC_KEY_LEN];
        // Invariant: an Ed25519 public key is always 32 bytes, so
        // `copy_from_slice` (which panics only on a length mismatch) cannot
        // panic.
        bytes.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey(bytes)
    }

    /// Signs `msg` in context `ctx`, i.e. signs [`signed_message`]`(ctx, msg)`.
    pub fn sign(&self, ctx: SigningContext, msg: &[u8]) -> Signature {
        self.sign_raw(&signed_message(ctx, msg))
    }

    /// Signs the text of a C2SP signed note (`c2sp.org/signed-note`) or a `cosignature/v1`
    /// message as it is, with no context prefix: those formats separate their own domains (a
    /// checkpoint note begins with its origin line, `hukou-sync/<node id>` and a newline; a
    /// cosignature message with `cosignature/v1` and a newline). `None` for a text that begins
    /// with [`DOMAIN_PREFIX`], so a note signature can never stand for a contextual one.
    pub fn sign_note(&self, text: &[u8]) -> Option<Signature> {
        (!text.starts_with(DOMAIN_PREFIX)).then(|| self.sign_raw(text))
    }

    /// Plain Ed25519 over `bytes`, with no domain separation.
    fn sign_raw(&self, bytes: &[u8]) -> Signature {
        let sig = self.pair.sign(bytes);
        let mut out = [0u8; SIGNATURE_LEN];
        // Invariant: an Ed25519 signature is always 64 bytes, so
        // `copy_from_slice` cannot panic.
        out.copy_from_slice(sig.as_ref());
        Signature(out)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

fn io_error(action: &'static str, path: &Path, source: io::Error) -> KeyError {
    KeyError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Makes the new directory entry durable.
fn sync_parent_dir(path: &Path) -> Result<(), KeyError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("sync the directory of", path, e))
}

/// An Ed25519 public key (32 bytes). Text form: unpadded base64url
/// (43 characters).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; PUBLIC_KEY_LEN]);

impl PublicKey {
    /// Wraps raw key bytes. Not checked to be a valid curve point; an
    /// invalid key simply verifies nothing.
    pub const fn from_bytes(bytes: [u8; PUBLIC_KEY_LEN]) -> Self {
        PublicKey(bytes)
    }

    /// The raw 32 key bytes.
    pub const fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.0
    }

    /// Checks that `sig` is this key's signature of `msg` in context `ctx`.
    pub fn verify(
        &self,
        ctx: SigningContext,
        msg: &[u8],
        sig: &Signature,
    ) -> Result<(), SignatureError> {
        self.verify_raw(&signed_message(ctx, msg), sig)
            .map_err(|()| SignatureError::Invalid {
                key: self.fingerprint(),
                context: ctx,
            })
    }

    /// Whether `sig` is this key's signature of a signed note's text (see
    /// [`SigningKey::sign_note`]); a text beginning with [`DOMAIN_PREFIX`] never verifies.
    pub fn verify_note(&self, text: &[u8], sig: &Signature) -> bool {
        !text.starts_with(DOMAIN_PREFIX) && self.verify_raw(text, sig).is_ok()
    }

    /// Plain Ed25519 verification over `bytes`, with no domain separation.
    fn verify_raw(&self, bytes: &[u8], sig: &Signature) -> Result<(), ()> {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(bytes, &sig.0)
            .map_err(|_| ())
    }

    /// Short identifier for logs: the first 16 lower-case hex characters
    /// (8 bytes) of SHA-256 of the key bytes. Not for security decisions.
    pub fn fingerprint(&self) -> String {
        to_hex(&Digest::of(&self.0).0[..8])
    }
}

impl TryFrom<&[u8]> for PublicKey {
    type Error = KeyError;

    fn try_from(bytes: &[u8]) -> Result<Self, KeyError> {
        <[u8; PUBLIC_KEY_LEN]>::try_from(bytes)
            .map(PublicKey)
            .map_err(|_| KeyError::PublicKeyLength(bytes.len()))
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, KeyError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|e| KeyError::PublicKeyEncoding(e.to_string()))?;
        PublicKey::try_from(bytes.as_slice())
    }
}

/// An Ed25519 signature (64 bytes). Text form: unpadded base64url
/// (86 characters).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature([u8; SIGNATURE_LEN]);

impl Signature {
    /// Wraps raw signature bytes.
    pub const fn from_bytes(bytes: [u8; SIGNATURE_LEN]) -> Self {
        Signature(bytes)
    }

    /// The raw 64 signature bytes.
    pub const fn as_bytes(&self) -> &[u8; SIGNATURE_LEN] {
        &self.0
    }
}

impl TryFrom<&[u8]> for Signature {
    type Error = SignatureError;

    fn try_from(bytes: &[u8]) -> Result<Self, SignatureError> {
        <[u8; SIGNATURE_LEN]>::try_from(bytes)
            .map(Signature)
            .map_err(|_| SignatureError::Length(bytes.len()))
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({self})")
    }
}

impl FromStr for Signature {
    type Err = SignatureError;

    fn from_str(s: &str) -> Result<Self, SignatureError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|e| SignatureError::Encoding(e.to_string()))?;
        Signature::try_from(bytes.as_slice())
    }
}

/// Serde as the Display string; deserialize through FromStr.
macro_rules! serde_via_str {
    ($ty:ty, $expecting:literal) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct StrVisitor;

                impl Visitor<'_> for StrVisitor {
                    type Value = $ty;

                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }

                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$ty, E> {
                        v.parse().map_err(E::custom)
                    }
                }

                deserializer.deserialize_str(StrVisitor)
            }
        }
    };
}

serde_via_str!(
    PublicKey,
    "an Ed25519 public key as 43 unpadded base64url characters"
);
serde_via_str!(
    Signature,
    "an Ed25519 signature as 86 unpadded base64url characters"
);

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::generate().unwrap().0
    }

    // RFC 8032 §7.1 TEST 1 / RFC 8037 Appendix A.1: the same key pair.
    const RFC8032_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const RFC8032_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    // RFC 8037 Appendix A.4: JWS signing input and its Ed25519 signature.
    const RFC8037_INPUT: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
    const RFC8037_SIG: &str =
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// PKCS#8 v2 (RFC 5958 OneAsymmetricKey, version 1; RFC 8410 §7) around
    /// a seed and public key, laid out as `ring` writes it.
    fn rfc8032_pkcs8() -> Vec<u8> {
        let mut der = unhex("3051020101300506032b657004220420");
        der.extend(unhex(RFC8032_SEED));
        // publicKey [1] IMPLICIT BIT STRING, no unused bits.
        der.extend(unhex("812100"));
        der.extend(unhex(RFC8032_PUBLIC));
        der
    }

    #[test]
    fn rfc8032_and_rfc8037_known_answers() {
        let key = SigningKey::from_pkcs8(&rfc8032_pkcs8()).unwrap();
        let public = key.public_key();
        assert_eq!(public.as_bytes().to_vec(), unhex(RFC8032_PUBLIC));
        assert_eq!(public.to_string(), RFC8037_X);
        // Plain Ed25519 (no domain prefix) reproduces RFC 8037 A.4 exactly.
        let sig = key.sign_raw(RFC8037_INPUT.as_bytes());
        assert_eq!(sig.to_string(), RFC8037_SIG);
        let parsed: Signature = RFC8037_SIG.parse().unwrap();
        assert_eq!(public.verify_raw(RFC8037_INPUT.as_bytes(), &parsed), Ok(()));
    }

    #[test]
    fn domain_separated_message_layout() {
        assert_eq!(
            signed_message(SigningContext::Version, b"id-1"),
            b"hukou-sync/v1/version\0id-1".to_vec()
        );
        let labels: Vec<&str> = SigningContext::ALL.iter().map(|c| c.label()).collect();
        assert_eq!(
            labels,
            [
                "version",
                "receipt",
                "tree-head",
                "directory",
                "request",
                "lookup"
            ]
        );
        // The signature is plain Ed25519 over exactly those bytes, checked
        // here with ring directly rather than through this module.
        let key = SigningKey::from_pkcs8(&rfc8032_pkcs8()).unwrap();
        let sig = key.sign(SigningContext::TreeHead, b"head");
        UnparsedPublicKey::new(&ED25519, unhex(RFC8032_PUBLIC))
            .verify(b"hukou-sync/v1/tree-head\0head", sig.as_bytes())
            .unwrap();
    }

    #[test]
    fn sign_verify_round_trip() {
        let key = key();
        for ctx in SigningContext::ALL {
            let sig = key.sign(ctx, b"record 42");
            key.public_key().verify(ctx, b"record 42", &sig).unwrap();
        }
        let empty = key.sign(SigningContext::Request, b"");
        key.public_key()
            .verify(SigningContext::Request, b"", &empty)
            .unwrap();
    }

    #[test]
    fn wrong_context_fails() {
        let key = key();
        let sig = key.sign(SigningContext::Version, b"id");
        for ctx in SigningContext::ALL {
            let result = key.public_key().verify(ctx, b"id", &sig);
            assert_eq!(result.is_ok(), ctx == SigningContext::Version, "{ctx}");
        }
        let err = key
            .public_key()
            .verify(SigningContext::Receipt, b"id", &sig)
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("receipt"), "{text}");
        assert!(text.contains(&key.public_key().fingerprint()), "{text}");
    }

    #[test]
    fn flipped_byte_fails() {
        let key = key();
        let msg = b"child record v3".to_vec();
        let sig = key.sign(SigningContext::Version, &msg);
        for i in 0..SIGNATURE_LEN {
            let mut bytes = *sig.as_bytes();
            bytes[i] ^= 0x01;
            let bad = Signature::from_bytes(bytes);
            assert!(key
                .public_key()
                .verify(SigningContext::Version, &msg, &bad)
                .is_err());
        }
        for i in 0..msg.len() {
            let mut bad = msg.clone();
            bad[i] ^= 0x80;
            assert!(key
                .public_key()
                .verify(SigningContext::Version, &bad, &sig)
                .is_err());
        }
    }

    #[test]
    fn other_key_fails() {
        let (a, b) = (key(), key());
        assert_ne!(a.public_key(), b.public_key());
        let sig = a.sign(SigningContext::Receipt, b"r");
        assert!(matches!(
            b.public_key().verify(SigningContext::Receipt, b"r", &sig),
            Err(SignatureError::Invalid { .. })
        ));
    }

    #[test]
    fn write_new_creates_0600_and_load_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bureau.key");
        let written = SigningKey::write_new(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = SigningKey::load(&path).unwrap();
        assert_eq!(loaded.public_key(), written.public_key());
        let sig = loaded.sign(SigningContext::Directory, b"d");
        written
            .public_key()
            .verify(SigningContext::Directory, b"d", &sig)
            .unwrap();
    }

    #[test]
    fn write_new_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bureau.key");
        fs::write(&path, b"precious").unwrap();
        let err = SigningKey::write_new(&path).unwrap_err();
        assert!(matches!(err, KeyError::AlreadyExists { .. }), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"precious");
    }

    #[test]
    fn write_new_in_missing_directory_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/bureau.key");
        let err = SigningKey::write_new(&path).unwrap_err();
        assert!(
            matches!(
                err,
                KeyError::Io {
                    action: "create",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn load_refuses_group_or_world_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bureau.key");
        SigningKey::write_new(&path).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o610, 0o602] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = SigningKey::load(&path).unwrap_err();
            match &err {
                KeyError::InsecurePermissions { path: p, mode: m } => {
                    assert_eq!(p, &path);
                    assert_eq!(*m, mode);
                }
                other => panic!("mode {mode:o}: expected InsecurePermissions, got {other}"),
            }
            let text = err.to_string();
            assert!(text.contains(&path.display().to_string()), "{text}");
            assert!(text.contains("chmod 600"), "{text}");
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        SigningKey::load(&path).unwrap();
    }

    #[test]
    fn load_refuses_garbage_directories_and_huge_files() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.key");
        fs::write(&garbage, b"not a key").unwrap();
        fs::set_permissions(&garbage, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            SigningKey::load(&garbage),
            Err(KeyError::InvalidKeyFile { .. })
        ));

        assert!(matches!(
            SigningKey::load(dir.path()),
            Err(KeyError::NotAFile { .. })
        ));

        let huge = dir.path().join("huge.key");
        fs::write(&huge, vec![0u8; 4096]).unwrap();
        fs::set_permissions(&huge, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            SigningKey::load(&huge),
            Err(KeyError::KeyFileTooLarge { len: 4096, .. })
        ));

        assert!(matches!(
            SigningKey::load(dir.path().join("missing.key")),
            Err(KeyError::Io { .. })
        ));
    }

    #[test]
    fn from_pkcs8_refuses_mismatched_public_key() {
        let mut der = rfc8032_pkcs8();
        let last = der.len() - 1;
        der[last] ^= 1;
        assert!(matches!(
            SigningKey::from_pkcs8(&der),
            Err(KeyError::InvalidPkcs8(_))
        ));
    }

    #[test]
    fn debug_does_not_leak_the_private_key() {
        let (key, doc) = SigningKey::generate().unwrap();
        let debug = format!("{key:?} {doc:?}");
        assert!(debug.contains(&key.public_key().to_string()), "{debug}");
        // The 32-byte seed follows a fixed 16-byte header in ring's PKCS#8
        // v2 document.
        assert_eq!(
            to_hex(&doc.as_bytes()[..16]),
            "3051020101300506032b657004220420"
        );
        let seed = &doc.as_bytes()[16..48];
        for rendering in [
            to_hex(seed),
            URL_SAFE_NO_PAD.encode(seed),
            format!("{seed:?}"),
            format!("{:?}", doc.as_bytes()),
        ] {
            assert!(!debug.contains(&rendering), "{debug}");
        }
        // Nor any long run of the document bytes as decimal list items.
        assert!(!debug.contains(&format!("{}, {}, {}", seed[0], seed[1], seed[2])));
    }

    #[test]
    fn text_forms_round_trip() {
        let key = key();
        let public = key.public_key();
        let sig = key.sign(SigningContext::Version, b"x");
        let p_text = public.to_string();
        let s_text = sig.to_string();
        assert_eq!(p_text.len(), 43);
        assert_eq!(s_text.len(), 86);
        assert_eq!(p_text.parse::<PublicKey>().unwrap(), public);
        assert_eq!(s_text.parse::<Signature>().unwrap(), sig);
        assert_eq!(format!("{public:?}"), format!("PublicKey({p_text})"));

        let json = serde_json::to_string(&(public, sig)).unwrap();
        assert_eq!(json, format!("[\"{p_text}\",\"{s_text}\"]"));
        let back: (PublicKey, Signature) = serde_json::from_str(&json).unwrap();
        assert_eq!(back, (public, sig));
    }

    #[test]
    fn text_parsing_is_strict() {
        // Wrong lengths, with clear errors.
        let short = URL_SAFE_NO_PAD.encode([7u8; 63]);
        let err = short.parse::<Signature>().unwrap_err();
        assert!(matches!(err, SignatureError::Length(63)));
        assert!(err.to_string().contains("64 bytes"), "{err}");
        let long = URL_SAFE_NO_PAD.encode([7u8; 65]);
        assert!(matches!(
            long.parse::<Signature>(),
            Err(SignatureError::Length(65))
        ));
        assert!(matches!(
            "".parse::<Signature>(),
            Err(SignatureError::Length(0))
        ));
        assert!(matches!(
            URL_SAFE_NO_PAD.encode([1u8; 31]).parse::<PublicKey>(),
            Err(KeyError::PublicKeyLength(31))
        ));
        assert!(matches!(
            PublicKey::try_from(&[0u8; 33][..]),
            Err(KeyError::PublicKeyLength(33))
        ));

        // Padding, the standard alphabet, whitespace, non-canonical bits.
        assert!(format!("{RFC8037_X}=").parse::<PublicKey>().is_err());
        assert!(RFC8037_X.replace('_', "/").parse::<PublicKey>().is_err());
        assert!(format!(" {RFC8037_X}").parse::<PublicKey>().is_err());
        // Last char 'o' = 0b101000; 'p' differs only in the 2 unused bits.
        let non_canonical = format!("{}p", &RFC8037_X[..42]);
        assert!(matches!(
            non_canonical.parse::<PublicKey>(),
            Err(KeyError::PublicKeyEncoding(_))
        ));
        let sig_padded = format!("{RFC8037_SIG}==");
        assert!(matches!(
            sig_padded.parse::<Signature>(),
            Err(SignatureError::Encoding(_))
        ));
        assert!(serde_json::from_str::<Signature>("\"abc\"").is_err());
        assert!(serde_json::from_str::<PublicKey>("42").is_err());
    }

    #[test]
    fn fingerprint_is_16_hex_of_sha256() {
        let public: PublicKey = RFC8037_X.parse().unwrap();
        let fp = public.fingerprint();
        assert_eq!(fp.len(), 16);
        assert_eq!(fp, Digest::of(public.as_bytes()).to_string()[..16]);
    }
}
