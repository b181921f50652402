//! Evidence files as values (pure): the media types a node accepts (PDF, JPEG, PNG), how a
//! declared type is read from a `Content-Type`, the magic bytes each must start with, and the
//! status of a file a case names at a node (`present`, `missing`, `mismatch`).
//!
//! The type is decided by the sender's declaration **and** the file's first bytes together: a
//! declared type whose magic does not open the file is refused, so a page never hands a reader
//! an HTML or script file under an image's name.

use serde::{Deserialize, Serialize};

/// A file type accepted as evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum MediaType {
    #[serde(rename = "application/pdf")]
    Pdf,
    #[serde(rename = "image/jpeg")]
    Jpeg,
    #[serde(rename = "image/png")]
    Png,
}

impl MediaType {
    pub const ALL: [MediaType; 3] = [MediaType::Pdf, MediaType::Jpeg, MediaType::Png];

    /// The media type's name (`application/pdf`).
    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::Pdf => "application/pdf",
            MediaType::Jpeg => "image/jpeg",
            MediaType::Png => "image/png",
        }
    }

    /// The file name extension a download gets.
    pub fn extension(self) -> &'static str {
        match self {
            MediaType::Pdf => "pdf",
            MediaType::Jpeg => "jpg",
            MediaType::Png => "png",
        }
    }

    /// The bytes every file of this type starts with: `%PDF-` (ISO 32000-2 §7.5.2), the JPEG
    /// SOI marker and the first marker's `FF` (ITU T.81 B.1.1.2), the PNG signature (ISO 15948
    /// §5.2).
    pub fn magic(self) -> &'static [u8] {
        match self {
            MediaType::Pdf => b"%PDF-",
            MediaType::Jpeg => &[0xFF, 0xD8, 0xFF],
            MediaType::Png => &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A],
        }
    }

    /// The type a stored name spells (`application/pdf`), if it is one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// The type a `Content-Type` header declares: its essence, case-insensitively, parameters
    /// ignored (`application/PDF; charset=x` is PDF). `image/jpg` is not a registered type and
    /// is refused like any other.
    pub fn from_content_type(header: &str) -> Option<Self> {
        let essence = header.split(';').next().unwrap_or("").trim();
        Self::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(essence))
    }

    /// Whether `bytes` start with this type's magic.
    pub fn matches(self, bytes: &[u8]) -> bool {
        bytes.starts_with(self.magic())
    }
}

/// The type whose magic opens `bytes`, if any (the magics are prefix-free, so at most one).
pub fn sniff(bytes: &[u8]) -> Option<MediaType> {
    MediaType::ALL.into_iter().find(|m| m.matches(bytes))
}

/// Why a file is not accepted as evidence of the declared type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypeError {
    #[error(
        "the Content-Type {0:?} is not accepted: send application/pdf, image/jpeg or image/png"
    )]
    Unsupported(String),
    #[error("the file does not start like {declared} ({found}); send the type the file is")]
    Mismatch {
        declared: &'static str,
        found: &'static str,
    },
}

/// The declared type of a file, checked against its first bytes.
pub fn checked_type(content_type: &str, bytes: &[u8]) -> Result<MediaType, TypeError> {
    let declared = MediaType::from_content_type(content_type)
        .ok_or_else(|| TypeError::Unsupported(content_type.chars().take(100).collect()))?;
    if declared.matches(bytes) {
        return Ok(declared);
    }
    Err(TypeError::Mismatch {
        declared: declared.as_str(),
        found: sniff(bytes).map_or("an unknown format", MediaType::as_str),
    })
}

/// Where a file a case names stands at a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceStatus {
    /// Stored here (encrypted) and its SHA-256 verified.
    Present,
    /// Not stored here (yet): the decider fetches it from the requester.
    Missing,
    /// What the requester served did not hash to the SHA-256 the case names; kept out.
    Mismatch,
}

impl EvidenceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceStatus::Present => "present",
            EvidenceStatus::Missing => "missing",
            EvidenceStatus::Mismatch => "mismatch",
        }
    }

    /// The label a caseworker sees (Chinese, the English in brackets).
    pub fn label(self) -> &'static str {
        match self {
            EvidenceStatus::Present => "已收到 (present)",
            EvidenceStatus::Missing => "未收到 (missing)",
            EvidenceStatus::Mismatch => "校验不符 (mismatch)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_type_and_magic_must_agree() {
        assert_eq!(
            checked_type("application/pdf", b"%PDF-1.7\n"),
            Ok(MediaType::Pdf)
        );
        assert_eq!(
            checked_type("Image/JPEG; q=1", &[0xFF, 0xD8, 0xFF, 0xE0]),
            Ok(MediaType::Jpeg)
        );
        assert_eq!(
            checked_type("image/png", b"\x89PNG\r\n\x1a\n...."),
            Ok(MediaType::Png)
        );
        assert!(matches!(
            checked_type("image/png", b"%PDF-1.7"),
            Err(TypeError::Mismatch {
                found: "application/pdf",
                ..
            })
        ));
        assert!(matches!(
            checked_type("application/pdf", b"<html>"),
            Err(TypeError::Mismatch { .. })
        ));
        assert!(matches!(
            checked_type("application/pdf", b""),
            Err(TypeError::Mismatch { .. })
        ));
        for bad in [
            "text/html",
            "image/jpg",
            "",
            "application/pdfx",
            "image/gif",
        ] {
            assert!(
                matches!(checked_type(bad, b"%PDF-"), Err(TypeError::Unsupported(_))),
                "{bad}"
            );
        }
        for m in MediaType::ALL {
            assert_eq!(MediaType::parse(m.as_str()), Some(m));
            assert_eq!(sniff(m.magic()), Some(m));
            assert_eq!(
                serde_json::to_value(m).unwrap(),
                serde_json::json!(m.as_str())
            );
        }
    }

    /// Fuzz target: any bytes under any declared type never panic, and an accepted file always
    /// starts with its type's magic and is what sniffing finds.
    #[test]
    fn sniffing_takes_any_bytes() {
        crate::crypto::fuzz::check(
            "evidence_sniff",
            2000,
            &[
                b"%PDF-1.4",
                &[0xFF, 0xD8, 0xFF, 0xDB],
                b"\x89PNG\r\n\x1a\n",
                b"%PDF",
            ],
            |bytes| {
                let found = sniff(bytes);
                for declared in ["application/pdf", "image/jpeg", "image/png", "text/plain"] {
                    match checked_type(declared, bytes) {
                        Ok(m) => {
                            assert!(bytes.starts_with(m.magic()));
                            assert_eq!(found, Some(m));
                        }
                        Err(TypeError::Mismatch { declared: d, .. }) => {
                            assert!(!bytes.starts_with(MediaType::parse(d).unwrap().magic()));
                        }
                        Err(TypeError::Unsupported(_)) => assert_eq!(declared, "text/plain"),
                    }
                }
            },
        );
    }
}
