//! SM2/SM3 against an independent implementation: the system's OpenSSL 3 (`openssl` on the
//! path; `.ci/run` installs it). Keys and signatures are made at test time on both sides:
//!
//! * a key this crate generates is read by `openssl pkey` (so the PKCS#8 document with the SM2
//!   curve OID is standard), which derives the same public point;
//! * this crate's signatures verify with `openssl pkeyutl -verify -rawin -digest sm3 -pkeyopt
//!   distid:1234567812345678` (GB/T 32918.2 with GB/T 35276's default identifier), after
//!   re-encoding `r || s` as the DER `SEQUENCE { r INTEGER, s INTEGER }` OpenSSL uses;
//! * OpenSSL's signatures, by a key `openssl genpkey -algorithm SM2` made, verify here, and a
//!   tampered message, key or signature does not.

use std::path::Path;
use std::process::Command;

use super::keys::{
    signed_message, PublicKey, Signature, SigningContext, SigningKey, Suite, SIGNATURE_LEN,
    SM2_DISTID,
};

fn openssl(args: &[&str], dir: &Path) -> std::process::Output {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the `openssl` command (OpenSSL 3) is needed by these tests; .ci/run installs it");
    out
}

fn ok(args: &[&str], dir: &Path) {
    let out = openssl(args, dir);
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn distid() -> String {
    format!("distid:{SM2_DISTID}")
}

/// DER `INTEGER` of a 32-byte big-endian unsigned value.
fn der_integer(v: &[u8]) -> Vec<u8> {
    let mut v: Vec<u8> = v.iter().copied().skip_while(|&b| b == 0).collect();
    if v.first().is_none_or(|&b| b & 0x80 != 0) {
        v.insert(0, 0);
    }
    let mut out = vec![0x02, v.len() as u8];
    out.extend(v);
    out
}

/// `r || s` as the DER `SEQUENCE { INTEGER r, INTEGER s }` (GB/T 35276 §7.3's SM2Signature).
fn to_der(sig: &[u8; SIGNATURE_LEN]) -> Vec<u8> {
    let mut body = der_integer(&sig[..32]);
    body.extend(der_integer(&sig[32..]));
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

/// The DER `SEQUENCE { INTEGER r, INTEGER s }` OpenSSL writes, as `r || s`.
fn from_der(der: &[u8]) -> [u8; SIGNATURE_LEN] {
    assert_eq!(der[0], 0x30);
    assert_eq!(der[1] as usize, der.len() - 2);
    let mut out = [0u8; SIGNATURE_LEN];
    let mut at = 2;
    for half in 0..2 {
        assert_eq!(der[at], 0x02);
        let len = der[at + 1] as usize;
        let v = &der[at + 2..at + 2 + len];
        let v = v.strip_prefix(&[0]).unwrap_or(v);
        assert!(v.len() <= 32);
        out[half * 32 + 32 - v.len()..half * 32 + 32].copy_from_slice(v);
        at += 2 + len;
    }
    assert_eq!(at, der.len());
    out
}

#[test]
fn der_conversion_round_trips() {
    let mut sig = [0u8; SIGNATURE_LEN];
    sig[0] = 0x80; // r needs a leading zero
    sig[40] = 0x01; // s has leading zero bytes to drop
    sig[63] = 0x7f;
    assert_eq!(from_der(&to_der(&sig)), sig);
}

#[test]
fn this_crates_sm2_signatures_verify_with_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, pkcs8) = SigningKey::generate_in(Suite::Sm2Sm3).unwrap();
    std::fs::write(d.join("key.p8"), pkcs8.as_bytes()).unwrap();
    // OpenSSL reads the PKCS#8 document and derives the same point (the SPKI ends with it).
    ok(
        &[
            "pkey", "-inform", "DER", "-in", "key.p8", "-pubout", "-outform", "DER", "-out",
            "pub.der",
        ],
        d,
    );
    let spki = std::fs::read(d.join("pub.der")).unwrap();
    assert!(spki.ends_with(key.public_key().as_bytes()));
    let text = ok_text(
        &["pkey", "-inform", "DER", "-in", "key.p8", "-noout", "-text"],
        d,
    );
    assert!(text.contains("SM2"), "{text}");

    for (i, ctx) in SigningContext::ALL.into_iter().enumerate() {
        let msg = format!("record {i} 姓名");
        let sig = key.sign(ctx, msg.as_bytes()).unwrap();
        assert_eq!(sig.suite(), Suite::Sm2Sm3);
        std::fs::write(d.join("msg"), signed_message(ctx, msg.as_bytes())).unwrap();
        std::fs::write(d.join("sig.der"), to_der(sig.as_bytes())).unwrap();
        let verify = [
            "pkeyutl",
            "-verify",
            "-rawin",
            "-digest",
            "sm3",
            "-pkeyopt",
            &distid(),
            "-pubin",
            "-keyform",
            "DER",
            "-inkey",
            "pub.der",
            "-in",
            "msg",
            "-sigfile",
            "sig.der",
        ];
        ok(&verify, d);
        // A flipped message byte fails there too.
        let mut bad = signed_message(ctx, msg.as_bytes());
        bad[3] ^= 1;
        std::fs::write(d.join("msg"), bad).unwrap();
        assert!(!openssl(&verify, d).status.success());
        // And so does another distinguishing identifier (Z_A covers it).
        std::fs::write(d.join("msg"), signed_message(ctx, msg.as_bytes())).unwrap();
        let mut other = verify;
        let other_id = "distid:1234567812345679".to_owned();
        other[6] = &other_id;
        assert!(!openssl(&other, d).status.success());
    }
}

fn ok_text(args: &[&str], dir: &Path) -> String {
    let out = openssl(args, dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn openssl_sm2_signatures_verify_here_and_tampering_is_rejected() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&["genpkey", "-algorithm", "SM2", "-out", "key.pem"], d);
    ok(
        &[
            "pkcs8", "-topk8", "-nocrypt", "-in", "key.pem", "-outform", "DER", "-out", "key.p8",
        ],
        d,
    );
    let path = d.join("key.p8");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let key = SigningKey::load(&path).unwrap();
    assert_eq!(key.suite(), Suite::Sm2Sm3);
    let public = key.public_key();
    assert!(public.to_string().starts_with("sm2:"));
    // The point OpenSSL derives is the one this crate derives.
    ok(
        &[
            "pkey", "-in", "key.pem", "-pubout", "-outform", "DER", "-out", "pub.der",
        ],
        d,
    );
    assert!(std::fs::read(d.join("pub.der"))
        .unwrap()
        .ends_with(public.as_bytes()));

    let msg = b"3f9a version id";
    std::fs::write(d.join("msg"), signed_message(SigningContext::Version, msg)).unwrap();
    ok(
        &[
            "pkeyutl",
            "-sign",
            "-rawin",
            "-digest",
            "sm3",
            "-pkeyopt",
            &distid(),
            "-inkey",
            "key.pem",
            "-in",
            "msg",
            "-out",
            "sig.der",
        ],
        d,
    );
    let raw = from_der(&std::fs::read(d.join("sig.der")).unwrap());
    let sig = Signature::from_suite_bytes(Suite::Sm2Sm3, raw);
    public.verify(SigningContext::Version, msg, &sig).unwrap();
    // Its text form round-trips.
    assert_eq!(sig.to_string().parse::<Signature>().unwrap(), sig);

    // Tampered message, context, signature and key are all rejected.
    assert!(public
        .verify(SigningContext::Version, b"3f9a version iD", &sig)
        .is_err());
    assert!(public.verify(SigningContext::Receipt, msg, &sig).is_err());
    for i in [0, 31, 32, 63] {
        let mut bad = raw;
        bad[i] ^= 0x01;
        let bad = Signature::from_suite_bytes(Suite::Sm2Sm3, bad);
        assert!(public.verify(SigningContext::Version, msg, &bad).is_err());
    }
    let other = SigningKey::generate_in(Suite::Sm2Sm3)
        .unwrap()
        .0
        .public_key();
    assert!(other.verify(SigningContext::Version, msg, &sig).is_err());
    // The same bytes labelled Ed25519 verify under no Ed25519 key (suites never mix).
    let as_ed = Signature::from_suite_bytes(Suite::Ed25519, raw);
    assert!(public.verify(SigningContext::Version, msg, &as_ed).is_err());
    let ed = SigningKey::generate().unwrap().0.public_key();
    assert!(ed.verify(SigningContext::Version, msg, &as_ed).is_err());
    // A tampered public point is refused when parsed (off the curve) or verifies nothing.
    let mut point = public.as_bytes().to_vec();
    point[64] ^= 0x01;
    assert!(PublicKey::sm2_from_bytes(&point).is_err());
}
