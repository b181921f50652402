//! Record-signing keys of the two signature suites, their on-disk form, and domain-separated
//! signatures: the one signer/verifier interface every signature of the node goes through
//! (versions, receipts, tree heads, checkpoints and cosignatures, the directory, lookup
//! statements).
//!
//! # Suites
//!
//! * [`Suite::Ed25519`] (`ed25519`): Ed25519 (RFC 8032) through `ring`, the original suite.
//! * [`Suite::Sm2Sm3`] (`sm2-sm3`): SM2 signatures (GB/T 32918.2-2016 §6, "数字签名生成算法")
//!   with the SM3 hash (GB/T 32905-2016) over `Z_A || M`, where `Z_A` (GB/T 32918.2 §5.5) binds
//!   the distinguishing identifier [`SM2_DISTID`] `1234567812345678` (the default of
//!   GB/T 35276-2017 §10) and the public key. Through RustCrypto's `sm2` crate (pure Rust; the
//!   nonce is RFC 6979-style deterministic over SM3, so a signature of the same bytes by the
//!   same key is the same, as with Ed25519). OpenSSL 3 verifies these signatures and this
//!   module verifies OpenSSL's (tested at test time with the system `openssl`).
//!
//! A key names its suite; so does every public key and signature in its text form, and a
//! verifier checks a signature only with a key of the signature's own suite.
//!
//! # What is signed
//!
//! Every signature this crate makes or checks, whatever the suite, is over
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
//! # Text forms
//!
//! [`PublicKey`] and [`Signature`] are written (Display, FromStr, serde) as base64url without
//! padding (RFC 4648 §5):
//!
//! * Ed25519: the bare 32-byte key (43 characters) and the bare 64-byte signature
//!   (86 characters), exactly as before SM2 existed, so every stored directory, key and
//!   signature stays valid and an Ed25519-only network's bytes are unchanged;
//! * SM2: `sm2:` then the 65-byte uncompressed point `04 || x || y` (SEC 1 §2.3.3), and `sm2:`
//!   then the 64-byte signature `r || s` (each 32 bytes big-endian, GB/T 32918.2 §6.1 A7; not
//!   DER — fixed length like Ed25519's, and one spelling per signature).
//!
//! Decoding is strict: padding, the standard alphabet's `+` and `/`, whitespace and
//! non-canonical trailing bits are refused, so each value has one spelling; an SM2 key must
//! be a point on the curve.
//!
//! # Key files
//!
//! Key files hold a raw PKCS#8 DER document (not PEM), with mode 0600: for Ed25519 the
//! PKCS#8 v2 document `ring` generates (RFC 5958; 83 bytes), for SM2 a PKCS#8 document
//! whose algorithm is `id-ecPublicKey` with the SM2 curve OID 1.2.156.10197.1.301 as its
//! parameter (RFC 5915 inside RFC 5208), the form `openssl genpkey -algorithm SM2` writes (as
//! PEM; `openssl pkey -outform DER` gives this file). This module is Unix-only: it relies on
//! Unix permission bits to keep the file private.
//!
//! # The signer
//!
//! [`SigningKey`] is the signer: it holds the private key and only ever hands out public keys
//! and signatures (its `Debug` shows the public key). A certified signing device (密码机) holding
//! the SM2 key would become a further variant of its private backend, with the same methods;
//! nothing outside this module reads private key bytes (the PKCS#8 document exists only when a
//! key is generated, to be written to its file).

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
use sm2::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};

use super::hash::{to_hex, Digest};
use super::secret_file::{write_new_secret, SecretFileError};

/// Length in bytes of an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;

/// Length in bytes of an SM2 public key: an uncompressed SEC 1 point `04 || x || y`.
pub const SM2_PUBLIC_KEY_LEN: usize = 65;

/// Length in bytes of a signature of either suite (Ed25519 `R || S`, SM2 `r || s`).
pub const SIGNATURE_LEN: usize = 64;

/// Prefix shared by every signed message; see the module docs.
pub const DOMAIN_PREFIX: &[u8] = b"hukou-sync/v1/";

/// The SM2 distinguishing identifier (GB/T 35276-2017 §10's default user id), hashed into
/// `Z_A` of every SM2 signature this crate makes or checks.
pub const SM2_DISTID: &str = "1234567812345678";

/// Prefix of the text form of SM2 public keys and signatures.
pub const SM2_TEXT_PREFIX: &str = "sm2:";

/// Largest key file [`SigningKey::load`] reads. An Ed25519 PKCS#8 v2
/// document is 83 bytes, an SM2 one about 150; anything much larger is not a key file.
const MAX_KEY_FILE_LEN: u64 = 1024;

/// A signature suite: the algorithm of a key and of the signatures it makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Suite {
    /// Ed25519 (RFC 8032).
    #[default]
    Ed25519,
    /// SM2 over SM3 with the distinguishing identifier [`SM2_DISTID`] (GB/T 32918, GB/T 32905).
    Sm2Sm3,
}

impl Suite {
    /// Every suite.
    pub const ALL: [Suite; 2] = [Suite::Ed25519, Suite::Sm2Sm3];

    /// The suite's name in configuration, on the command line and in the directory.
    pub const fn as_str(self) -> &'static str {
        match self {
            Suite::Ed25519 => "ed25519",
            Suite::Sm2Sm3 => "sm2-sm3",
        }
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A suite name that is neither `ed25519` nor `sm2-sm3`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown signature suite {0:?}: expected \"ed25519\" or \"sm2-sm3\"")]
pub struct UnknownSuite(pub String);

impl FromStr for Suite {
    type Err = UnknownSuite;

    fn from_str(s: &str) -> Result<Self, UnknownSuite> {
        Suite::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| UnknownSuite(s.to_owned()))
    }
}

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
    #[error("could not generate a signing key: the system random number generator failed")]
    Generate,
    /// Bytes that are neither an Ed25519 PKCS#8 v2 document nor an SM2 PKCS#8 document.
    #[error("not a valid Ed25519 PKCS#8 v2 or SM2 PKCS#8 private key document: {0}")]
    InvalidPkcs8(String),
    /// A key file whose contents are not a PKCS#8 document of either suite.
    #[error("key file {} is not a valid Ed25519 PKCS#8 v2 or SM2 PKCS#8 DER document: {reason}", path.display())]
    InvalidKeyFile {
        /// The key file.
        path: PathBuf,
        /// The parsers' reasons.
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
    /// The file is far larger than any PKCS#8 key document.
    #[error("key file {} is {len} bytes, too large to be a PKCS#8 key document", path.display())]
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
    #[error("public key is not unpadded base64url (RFC 4648 §5), optionally after \"sm2:\": {0}")]
    PublicKeyEncoding(String),
    /// An Ed25519 public key of the wrong length.
    #[error("Ed25519 public key must be {PUBLIC_KEY_LEN} bytes (43 unpadded base64url characters), got {0} bytes")]
    PublicKeyLength(usize),
    /// An SM2 public key that is not an uncompressed point on the curve.
    #[error("SM2 public key must be a {SM2_PUBLIC_KEY_LEN}-byte uncompressed point (04 || x || y) on the SM2 curve")]
    Sm2PublicKey,
}

/// Errors about signatures: parsing them and checking them.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// The signature is not valid for this key, context and message (or is of another suite).
    #[error("{suite} signature does not verify under key {key} in context \"{context}\"")]
    Invalid {
        /// The suite of the key tried.
        suite: Suite,
        /// [`PublicKey::fingerprint`] of the key tried.
        key: String,
        /// The context the signature was checked in.
        context: SigningContext,
    },
    /// A signature's text is not base64url without padding.
    #[error("signature is not unpadded base64url (RFC 4648 §5), optionally after \"sm2:\": {0}")]
    Encoding(String),
    /// A signature of the wrong length.
    #[error("a signature must be {SIGNATURE_LEN} bytes (86 unpadded base64url characters), got {0} bytes")]
    Length(usize),
}

/// A PKCS#8 DER document holding a private key of either suite, as generated by
/// [`SigningKey::generate_in`]. Secret: its `Debug` prints nothing of the contents.
pub struct Pkcs8Document(Pkcs8Bytes);

enum Pkcs8Bytes {
    Ring(ring::pkcs8::Document),
    /// Zeroised on drop by the `der` crate.
    Der(sm2::pkcs8::SecretDocument),
}

impl Pkcs8Document {
    /// The DER bytes. Secret.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Pkcs8Bytes::Ring(d) => d.as_ref(),
            Pkcs8Bytes::Der(d) => d.as_bytes(),
        }
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

/// The private half of a [`SigningKey`]: where signatures are made. A signing device would be
/// a further variant.
enum Backend {
    Ed25519(Ed25519KeyPair),
    /// Boxed: the SM2 key with its precomputed verifying key and `Z_A` is a few hundred bytes.
    Sm2(Box<sm2::dsa::SigningKey>),
}

/// A private key used to sign records, of either [`Suite`]. `Debug` shows only the
/// public key.
pub struct SigningKey {
    backend: Backend,
    public: PublicKey,
}

impl SigningKey {
    /// A fresh Ed25519 key from the system random number generator, with its PKCS#8
    /// v2 document for storage.
    pub fn generate() -> Result<(SigningKey, Pkcs8Document), KeyError> {
        SigningKey::generate_in(Suite::Ed25519)
    }

    /// A fresh key of `suite` from the system random number generator, with its PKCS#8
    /// document for storage.
    pub fn generate_in(suite: Suite) -> Result<(SigningKey, Pkcs8Document), KeyError> {
        let doc = match suite {
            Suite::Ed25519 => {
                let rng = ring::rand::SystemRandom::new();
                Pkcs8Bytes::Ring(
                    Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| KeyError::Generate)?,
                )
            }
            Suite::Sm2Sm3 => {
                let mut rng = sm2::elliptic_curve::rand_core::OsRng;
                let secret = sm2::SecretKey::random(&mut rng);
                Pkcs8Bytes::Der(
                    secret
                        .to_pkcs8_der()
                        .map_err(|e| KeyError::InvalidPkcs8(e.to_string()))?,
                )
            }
        };
        let doc = Pkcs8Document(doc);
        let key = SigningKey::from_pkcs8(doc.as_bytes())?;
        Ok((key, doc))
    }

    /// Parses a PKCS#8 DER document of either suite: an Ed25519 PKCS#8 v2 document (one that
    /// includes the public key, which `ring` checks against the private key; v1 documents are
    /// refused), or an SM2 one (`id-ecPublicKey` with the SM2 curve OID).
    pub fn from_pkcs8(der: &[u8]) -> Result<SigningKey, KeyError> {
        let ed = match Ed25519KeyPair::from_pkcs8(der) {
            Ok(pair) => return Ok(SigningKey::ed25519(pair)),
            Err(e) => e,
        };
        let sm2 = match sm2::SecretKey::from_pkcs8_der(der) {
            Ok(secret) => return SigningKey::sm2(&secret),
            Err(e) => e,
        };
        Err(KeyError::InvalidPkcs8(format!(
            "as Ed25519: {ed}; as SM2: {sm2}"
        )))
    }

    fn ed25519(pair: Ed25519KeyPair) -> SigningKey {
        let mut bytes = [0u8; PUBLIC_KEY_LEN];
        // Invariant: an Ed25519 public key is always 32 bytes, so
        // `copy_from_slice` (which panics only on a length mismatch) cannot
        // panic.
        bytes.copy_from_slice(pair.public_key().as_ref());
        SigningKey {
            backend: Backend::Ed25519(pair),
            public: PublicKey(KeyBytes::Ed25519(bytes)),
        }
    }

    fn sm2(secret: &sm2::SecretKey) -> Result<SigningKey, KeyError> {
        let key = sm2::dsa::SigningKey::new(SM2_DISTID, secret)
            .map_err(|e| KeyError::InvalidPkcs8(format!("SM2 key: {e}")))?;
        let point = key.verifying_key().to_sec1_bytes();
        let public =
            <[u8; SM2_PUBLIC_KEY_LEN]>::try_from(&point[..]).map_err(|_| KeyError::Sm2PublicKey)?;
        Ok(SigningKey {
            backend: Backend::Sm2(Box::new(key)),
            public: PublicKey(KeyBytes::Sm2(public)),
        })
    }

    /// Generates an Ed25519 key and writes it to a new file; see [`SigningKey::write_new_in`].
    pub fn write_new(path: impl AsRef<Path>) -> Result<SigningKey, KeyError> {
        SigningKey::write_new_in(path, Suite::Ed25519)
    }

    /// Generates a key of `suite` and writes its PKCS#8 document to a new file at
    /// `path` with mode 0600 (further narrowed by the umask).
    ///
    /// The file is created with `O_CREAT|O_EXCL`, so an existing file is
    /// never overwritten ([`KeyError::AlreadyExists`]) and the file never
    /// exists with wider permissions. The data and the directory entry are
    /// fsynced before returning. If writing the data fails the partial file
    /// is removed; if only the final directory fsync fails, the (complete)
    /// key file is left in place and the error is returned.
    pub fn write_new_in(path: impl AsRef<Path>, suite: Suite) -> Result<SigningKey, KeyError> {
        let path = path.as_ref();
        let (key, doc) = SigningKey::generate_in(suite)?;
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

    /// Reads a key file written by [`SigningKey::write_new_in`] (or any PKCS#8
    /// DER document [`SigningKey::from_pkcs8`] reads).
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
        SigningKey::from_pkcs8(&der).map_err(|e| KeyError::InvalidKeyFile {
            path: path.to_path_buf(),
            reason: match e {
                KeyError::InvalidPkcs8(reason) => reason,
                other => other.to_string(),
            },
        })
    }

    /// The suite of this key and of every signature it makes.
    pub fn suite(&self) -> Suite {
        self.public.suite()
    }

    /// The public half of this key.
    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// Signs `msg` in context `ctx`, i.e. signs [`signed_message`]`(ctx, msg)`. Fallible, as a
    /// signing device's answer is: a key held in this process fails only when its suite's
    /// signing does (see [`SignError`]); every caller stores nothing without the signature.
    pub fn sign(&self, ctx: SigningContext, msg: &[u8]) -> Result<Signature, SignError> {
        self.sign_raw(&signed_message(ctx, msg))
    }

    /// Signs the text of a C2SP signed note (`c2sp.org/signed-note`) or a `cosignature/v1`
    /// message as it is, with no context prefix: those formats separate their own domains (a
    /// checkpoint note begins with its origin line, `hukou-sync/<node id>` and a newline; a
    /// cosignature message with `cosignature/v1` and a newline). `None` for a text that begins
    /// with [`DOMAIN_PREFIX`], so a note signature can never stand for a contextual one.
    pub fn sign_note(&self, text: &[u8]) -> Result<Option<Signature>, SignError> {
        if text.starts_with(DOMAIN_PREFIX) {
            return Ok(None);
        }
        self.sign_raw(text).map(Some)
    }

    /// A plain signature of the key's suite over `bytes`, with no domain separation: the one
    /// place a private key is used. A signing device (密码机) holding the key would be one more
    /// [`Backend`] answering here, its failures as [`SignError`].
    fn sign_raw(&self, bytes: &[u8]) -> Result<Signature, SignError> {
        match &self.backend {
            Backend::Ed25519(pair) => {
                let sig = pair.sign(bytes);
                let mut out = [0u8; SIGNATURE_LEN];
                // Invariant: an Ed25519 signature is always 64 bytes, so
                // `copy_from_slice` cannot panic.
                out.copy_from_slice(sig.as_ref());
                Ok(Signature(SigBytes::Ed25519(out)))
            }
            Backend::Sm2(key) => Ok(Signature(SigBytes::Sm2(sm2_sign(key, bytes)?))),
        }
    }
}

/// Why a signature could not be made. Nothing is stored or sent without its signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the signer failed: {0}")]
pub struct SignError(pub String);

/// SM2 over SM3 (GB/T 32918.2 §6.1): `e = SM3(Z_A || M)`, then `(r, s)`. The deterministic
/// nonce fails only when `r = 0`, `r + k = n` or `s = 0` (probability about 2^-255 each); then
/// the signature is made again with fresh randomness mixed into the nonce, up to 16 times (all
/// failing has probability below 2^-4000; an error then, never a loop without end).
fn sm2_sign(key: &sm2::dsa::SigningKey, bytes: &[u8]) -> Result<[u8; SIGNATURE_LEN], SignError> {
    use sm2::dsa::signature::{RandomizedSigner as _, Signer as _};
    if let Ok(sig) = key.try_sign(bytes) {
        return Ok(sig.to_bytes());
    }
    let mut rng = sm2::elliptic_curve::rand_core::OsRng;
    let mut last = String::new();
    for _ in 0..16 {
        match key.try_sign_with_rng(&mut rng, bytes) {
            Ok(sig) => return Ok(sig.to_bytes()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(SignError(format!("SM2 signing failed 17 times: {last}")))
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

/// The bytes of a public key, by suite.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum KeyBytes {
    Ed25519([u8; PUBLIC_KEY_LEN]),
    /// Invariant: an uncompressed point on the SM2 curve (checked by every constructor).
    Sm2([u8; SM2_PUBLIC_KEY_LEN]),
}

/// A public key of either suite: Ed25519 (32 bytes; text: 43 unpadded base64url characters)
/// or SM2 (the 65-byte uncompressed point; text: `sm2:` and 87 characters).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(KeyBytes);

impl PublicKey {
    /// Wraps raw Ed25519 key bytes. Not checked to be a valid curve point; an
    /// invalid key simply verifies nothing.
    pub const fn from_bytes(bytes: [u8; PUBLIC_KEY_LEN]) -> Self {
        PublicKey(KeyBytes::Ed25519(bytes))
    }

    /// An SM2 public key from its uncompressed SEC 1 point; refused unless on the curve.
    pub fn sm2_from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let point =
            <[u8; SM2_PUBLIC_KEY_LEN]>::try_from(bytes).map_err(|_| KeyError::Sm2PublicKey)?;
        if point[0] != 0x04 || sm2::dsa::VerifyingKey::from_sec1_bytes(SM2_DISTID, &point).is_err()
        {
            return Err(KeyError::Sm2PublicKey);
        }
        Ok(PublicKey(KeyBytes::Sm2(point)))
    }

    /// The suite of the key.
    pub const fn suite(&self) -> Suite {
        match self.0 {
            KeyBytes::Ed25519(_) => Suite::Ed25519,
            KeyBytes::Sm2(_) => Suite::Sm2Sm3,
        }
    }

    /// The raw key bytes: 32 for Ed25519, the 65-byte point for SM2.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            KeyBytes::Ed25519(b) => b,
            KeyBytes::Sm2(b) => b,
        }
    }

    /// Checks that `sig` is this key's signature of `msg` in context `ctx`. A signature of
    /// another suite never verifies.
    pub fn verify(
        &self,
        ctx: SigningContext,
        msg: &[u8],
        sig: &Signature,
    ) -> Result<(), SignatureError> {
        self.verify_raw(&signed_message(ctx, msg), sig)
            .map_err(|()| SignatureError::Invalid {
                suite: self.suite(),
                key: self.fingerprint(),
                context: ctx,
            })
    }

    /// Whether `sig` is this key's signature of a signed note's text (see
    /// [`SigningKey::sign_note`]); a text beginning with [`DOMAIN_PREFIX`] never verifies.
    pub fn verify_note(&self, text: &[u8], sig: &Signature) -> bool {
        !text.starts_with(DOMAIN_PREFIX) && self.verify_raw(text, sig).is_ok()
    }

    /// Plain verification over `bytes` in the key's suite, with no domain separation.
    fn verify_raw(&self, bytes: &[u8], sig: &Signature) -> Result<(), ()> {
        match (&self.0, &sig.0) {
            (KeyBytes::Ed25519(key), SigBytes::Ed25519(sig)) => {
                UnparsedPublicKey::new(&ED25519, key)
                    .verify(bytes, sig)
                    .map_err(|_| ())
            }
            (KeyBytes::Sm2(key), SigBytes::Sm2(sig)) => {
                use sm2::dsa::signature::Verifier as _;
                let key =
                    sm2::dsa::VerifyingKey::from_sec1_bytes(SM2_DISTID, key).map_err(|_| ())?;
                let sig = sm2::dsa::Signature::from_bytes(sig).map_err(|_| ())?;
                key.verify(bytes, &sig).map_err(|_| ())
            }
            _ => Err(()),
        }
    }

    /// Short identifier for logs: the first 16 lower-case hex characters
    /// (8 bytes) of SHA-256 of the key bytes. Not for security decisions.
    pub fn fingerprint(&self) -> String {
        to_hex(&Digest::of(self.as_bytes()).0[..8])
    }
}

impl TryFrom<&[u8]> for PublicKey {
    type Error = KeyError;

    /// An Ed25519 key from its 32 bytes.
    fn try_from(bytes: &[u8]) -> Result<Self, KeyError> {
        <[u8; PUBLIC_KEY_LEN]>::try_from(bytes)
            .map(PublicKey::from_bytes)
            .map_err(|_| KeyError::PublicKeyLength(bytes.len()))
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            KeyBytes::Ed25519(b) => f.write_str(&URL_SAFE_NO_PAD.encode(b)),
            KeyBytes::Sm2(b) => write!(f, "{SM2_TEXT_PREFIX}{}", URL_SAFE_NO_PAD.encode(b)),
        }
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
        let (sm2, b64) = match s.strip_prefix(SM2_TEXT_PREFIX) {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(b64)
            .map_err(|e| KeyError::PublicKeyEncoding(e.to_string()))?;
        if sm2 {
            PublicKey::sm2_from_bytes(&bytes)
        } else {
            PublicKey::try_from(bytes.as_slice())
        }
    }
}

/// The bytes of a signature, by suite (both 64 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum SigBytes {
    Ed25519([u8; SIGNATURE_LEN]),
    /// `r || s`, each 32 bytes big-endian.
    Sm2([u8; SIGNATURE_LEN]),
}

/// A signature of either suite (64 bytes). Text form: unpadded base64url (86 characters),
/// after `sm2:` for SM2.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(SigBytes);

impl Signature {
    /// Wraps raw Ed25519 signature bytes.
    pub const fn from_bytes(bytes: [u8; SIGNATURE_LEN]) -> Self {
        Signature(SigBytes::Ed25519(bytes))
    }

    /// Wraps raw signature bytes of `suite` (for SM2: `r || s`).
    pub const fn from_suite_bytes(suite: Suite, bytes: [u8; SIGNATURE_LEN]) -> Self {
        Signature(match suite {
            Suite::Ed25519 => SigBytes::Ed25519(bytes),
            Suite::Sm2Sm3 => SigBytes::Sm2(bytes),
        })
    }

    /// The suite of the signature.
    pub const fn suite(&self) -> Suite {
        match self.0 {
            SigBytes::Ed25519(_) => Suite::Ed25519,
            SigBytes::Sm2(_) => Suite::Sm2Sm3,
        }
    }

    /// The raw 64 signature bytes.
    pub const fn as_bytes(&self) -> &[u8; SIGNATURE_LEN] {
        match &self.0 {
            SigBytes::Ed25519(b) | SigBytes::Sm2(b) => b,
        }
    }
}

impl TryFrom<&[u8]> for Signature {
    type Error = SignatureError;

    /// An Ed25519 signature from its 64 bytes.
    fn try_from(bytes: &[u8]) -> Result<Self, SignatureError> {
        <[u8; SIGNATURE_LEN]>::try_from(bytes)
            .map(Signature::from_bytes)
            .map_err(|_| SignatureError::Length(bytes.len()))
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.suite() == Suite::Sm2Sm3 {
            f.write_str(SM2_TEXT_PREFIX)?;
        }
        f.write_str(&URL_SAFE_NO_PAD.encode(self.as_bytes()))
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
        let (suite, b64) = match s.strip_prefix(SM2_TEXT_PREFIX) {
            Some(rest) => (Suite::Sm2Sm3, rest),
            None => (Suite::Ed25519, s),
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(b64)
            .map_err(|e| SignatureError::Encoding(e.to_string()))?;
        <[u8; SIGNATURE_LEN]>::try_from(bytes.as_slice())
            .map(|b| Signature::from_suite_bytes(suite, b))
            .map_err(|_| SignatureError::Length(bytes.len()))
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
    "a public key: Ed25519 as 43 unpadded base64url characters, or SM2 as \"sm2:\" and 87"
);
serde_via_str!(
    Signature,
    "a signature: 86 unpadded base64url characters, after \"sm2:\" for SM2"
);
serde_via_str!(Suite, "a signature suite, \"ed25519\" or \"sm2-sm3\"");

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
        let sig = key.sign_raw(RFC8037_INPUT.as_bytes()).unwrap();
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
        let sig = key.sign(SigningContext::TreeHead, b"head").unwrap();
        UnparsedPublicKey::new(&ED25519, unhex(RFC8032_PUBLIC))
            .verify(b"hukou-sync/v1/tree-head\0head", sig.as_bytes())
            .unwrap();
    }

    #[test]
    fn sign_verify_round_trip() {
        let key = key();
        for ctx in SigningContext::ALL {
            let sig = key.sign(ctx, b"record 42").unwrap();
            key.public_key().verify(ctx, b"record 42", &sig).unwrap();
        }
        let empty = key.sign(SigningContext::Request, b"").unwrap();
        key.public_key()
            .verify(SigningContext::Request, b"", &empty)
            .unwrap();
    }

    #[test]
    fn wrong_context_fails() {
        let key = key();
        let sig = key.sign(SigningContext::Version, b"id").unwrap();
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
        let sig = key.sign(SigningContext::Version, &msg).unwrap();
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
        let sig = a.sign(SigningContext::Receipt, b"r").unwrap();
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
        let sig = loaded.sign(SigningContext::Directory, b"d").unwrap();
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
        let sig = key.sign(SigningContext::Version, b"x").unwrap();
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

    #[test]
    fn sm2_keys_sign_verify_and_round_trip_their_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sm2.key");
        let written = SigningKey::write_new_in(&path, Suite::Sm2Sm3).unwrap();
        assert_eq!(written.suite(), Suite::Sm2Sm3);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let key = SigningKey::load(&path).unwrap();
        assert_eq!(key.public_key(), written.public_key());
        let public = key.public_key();
        assert_eq!(public.suite(), Suite::Sm2Sm3);
        assert_eq!(public.as_bytes().len(), SM2_PUBLIC_KEY_LEN);
        for ctx in SigningContext::ALL {
            let sig = key.sign(ctx, b"record 42").unwrap();
            assert_eq!(sig.suite(), Suite::Sm2Sm3);
            public.verify(ctx, b"record 42", &sig).unwrap();
            // Deterministic nonce: the same bytes give the same signature.
            assert_eq!(key.sign(ctx, b"record 42").unwrap(), sig);
            for other in SigningContext::ALL.into_iter().filter(|c| *c != ctx) {
                assert!(public.verify(other, b"record 42", &sig).is_err());
            }
        }
        let text = public.to_string();
        assert!(text.starts_with("sm2:") && text.len() == 4 + 87, "{text}");
        assert_eq!(text.parse::<PublicKey>().unwrap(), public);
        let sig = key.sign(SigningContext::Version, b"x").unwrap();
        let s_text = sig.to_string();
        assert!(
            s_text.starts_with("sm2:") && s_text.len() == 4 + 86,
            "{s_text}"
        );
        assert_eq!(s_text.parse::<Signature>().unwrap(), sig);
        let json = serde_json::to_string(&(public, sig, Suite::Sm2Sm3)).unwrap();
        assert_eq!(json, format!("[\"{text}\",\"{s_text}\",\"sm2-sm3\"]"));
        let back: (PublicKey, Signature, Suite) = serde_json::from_str(&json).unwrap();
        assert_eq!(back, (public, sig, Suite::Sm2Sm3));
        // Strict: an Ed25519-length key after "sm2:", an SM2 key without the prefix, a
        // compressed point, and an unknown suite are refused.
        let ed = SigningKey::generate().unwrap().0.public_key();
        assert!(format!("sm2:{ed}").parse::<PublicKey>().is_err());
        assert!(text[4..].parse::<PublicKey>().is_err());
        let mut compressed = public.as_bytes()[..33].to_vec();
        compressed[0] = 0x02;
        assert!(PublicKey::sm2_from_bytes(&compressed).is_err());
        assert!("sm2-sm4".parse::<Suite>().is_err());
        assert_eq!("sm2-sm3".parse::<Suite>().unwrap(), Suite::Sm2Sm3);
        assert_eq!("ed25519".parse::<Suite>().unwrap(), Suite::Ed25519);
    }

    #[test]
    fn suites_never_verify_each_other() {
        let ed = key();
        let sm = SigningKey::generate_in(Suite::Sm2Sm3).unwrap().0;
        let ed_sig = ed.sign(SigningContext::Version, b"id").unwrap();
        let sm_sig = sm.sign(SigningContext::Version, b"id").unwrap();
        assert!(sm
            .public_key()
            .verify(SigningContext::Version, b"id", &ed_sig)
            .is_err());
        assert!(ed
            .public_key()
            .verify(SigningContext::Version, b"id", &sm_sig)
            .is_err());
        // The same 64 bytes relabelled as the other suite verify nowhere.
        let relabelled = Signature::from_suite_bytes(Suite::Ed25519, *sm_sig.as_bytes());
        assert!(ed
            .public_key()
            .verify(SigningContext::Version, b"id", &relabelled)
            .is_err());
        let err = sm
            .public_key()
            .verify(SigningContext::Version, b"id", &ed_sig)
            .unwrap_err();
        assert!(err.to_string().contains("sm2-sm3"), "{err}");
        // Notes: SM2 signs and verifies them too; the domain prefix is still refused.
        let note = sm.sign_note(b"hukou-sync/410000\n1\n").unwrap().unwrap();
        assert!(sm
            .public_key()
            .verify_note(b"hukou-sync/410000\n1\n", &note));
        assert!(sm.sign_note(b"hukou-sync/v1/version\0x").unwrap().is_none());
    }

    #[test]
    fn debug_does_not_leak_an_sm2_private_key() {
        let (key, doc) = SigningKey::generate_in(Suite::Sm2Sm3).unwrap();
        let debug = format!("{key:?} {doc:?}");
        assert!(debug.contains(&key.public_key().to_string()), "{debug}");
        assert!(!debug.contains(&format!("{:?}", doc.as_bytes())), "{debug}");
        assert!(!debug.contains(&to_hex(doc.as_bytes())), "{debug}");
    }
}
