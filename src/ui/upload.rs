//! Forms with a file (`multipart/form-data`, RFC 7578): the body is read whole, bounded before
//! and while it is read (a declared length over the bound is refused unread), then split into
//! its parts. Only what the pages' forms send is understood — named fields, at most one file
//! each, no nested multipart — and anything else is refused as a bad form.

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use futures_core::Stream;

use super::forms::Posted;
use super::UiError;

/// A file a form sent.
pub struct FilePart {
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// A multipart form: its text fields (as a [`Posted`]) and its files.
pub struct Multipart {
    pub fields: Posted,
    pub files: Vec<FilePart>,
}

impl Multipart {
    /// The non-empty file sent as `name`, if any.
    pub fn file(&self, name: &str) -> Option<&FilePart> {
        self.files
            .iter()
            .find(|f| f.name == name && !f.bytes.is_empty())
    }
}

fn too_large(limit: usize) -> UiError {
    UiError::TooLarge(format!(
        "文件过大：上限 {limit} 字节，未保存任何内容 (The upload is larger than {limit} bytes; nothing was stored.)"
    ))
}

/// Reads a multipart form of at most `limit` bytes.
pub async fn read(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Multipart, UiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let boundary = boundary_of(&content_type).ok_or_else(|| {
        UiError::BadRequest("the form is not multipart/form-data with a boundary".into())
    })?;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let mut body: Vec<u8> = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut payload).poll_next(cx)).await
    {
        let chunk =
            chunk.map_err(|e| UiError::BadRequest(format!("the form could not be read: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    parse(&boundary, &body)
        .map_err(|why| UiError::BadRequest(format!("the form could not be read: {why}")))
}

/// The boundary parameter of a `multipart/form-data` content type.
fn boundary_of(content_type: &str) -> Option<String> {
    let mut parts = content_type.split(';');
    if !parts
        .next()?
        .trim()
        .eq_ignore_ascii_case("multipart/form-data")
    {
        return None;
    }
    parts.find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_owned())
            .filter(|b| !b.is_empty() && b.len() <= 70)
    })
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    (from..=haystack.len() - needle.len()).find(|&i| haystack[i..].starts_with(needle))
}

/// A parameter of a `Content-Disposition` header (`name="x"`).
fn param(disposition: &str, key: &str) -> Option<String> {
    disposition.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        (k.trim().eq_ignore_ascii_case(key)).then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// Splits a body into its parts.
pub fn parse(boundary: &str, body: &[u8]) -> Result<Multipart, String> {
    let delimiter = format!("--{boundary}").into_bytes();
    let next_delim = format!("\r\n--{boundary}").into_bytes();
    let mut at = find(body, &delimiter, 0).ok_or("no first boundary")? + delimiter.len();
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut files = Vec::new();
    loop {
        if body[at..].starts_with(b"--") {
            break;
        }
        if !body[at..].starts_with(b"\r\n") {
            return Err("a boundary is not followed by a line end".into());
        }
        at += 2;
        let head_end = find(body, b"\r\n\r\n", at).ok_or("a part has no end of headers")?;
        let head = std::str::from_utf8(&body[at..head_end]).map_err(|_| "headers not UTF-8")?;
        let mut disposition = None;
        let mut content_type = String::new();
        for line in head.split("\r\n") {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            if k.trim().eq_ignore_ascii_case("content-disposition") {
                disposition = Some(v.trim().to_owned());
            } else if k.trim().eq_ignore_ascii_case("content-type") {
                content_type = v.trim().to_owned();
            }
        }
        let disposition = disposition.ok_or("a part has no Content-Disposition")?;
        let name = param(&disposition, "name").ok_or("a part has no name")?;
        let data_start = head_end + 4;
        let data_end = find(body, &next_delim, data_start).ok_or("a part does not end")?;
        let data = &body[data_start..data_end];
        match param(&disposition, "filename") {
            Some(_) => files.push(FilePart {
                name,
                content_type,
                bytes: data.to_vec(),
            }),
            None => fields.push((
                name,
                String::from_utf8(data.to_vec()).map_err(|_| "a field is not UTF-8")?,
            )),
        }
        at = data_end + next_delim.len();
        if at > body.len() {
            return Err("truncated".into());
        }
    }
    Ok(Multipart {
        fields: Posted::new(fields),
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_browser_form_is_split_into_fields_and_files() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nabc\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\xe8\xaf\x81\xe6\x98\x8e.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.4\r\n\r\nend\r\n--XyZ\r\nContent-Disposition: form-data; name=\"summary\"\r\n\r\n\xe7\x88\xb6\xe4\xba\xb2\r\n--XyZ--\r\n";
        assert_eq!(
            boundary_of("multipart/form-data; boundary=XyZ").as_deref(),
            Some("XyZ")
        );
        assert_eq!(boundary_of("text/plain; boundary=XyZ"), None);
        let m = parse("XyZ", body).unwrap();
        assert_eq!(m.fields.get("csrf"), "abc");
        assert_eq!(m.fields.get("summary"), "父亲");
        let f = m.file("file").unwrap();
        assert_eq!(f.content_type, "application/pdf");
        assert_eq!(f.bytes, b"%PDF-1.4\r\n\r\nend");
        assert!(parse(
            "XyZ",
            b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nno end"
        )
        .is_err());
        assert!(parse("XyZ", b"garbage").is_err());
    }
}
