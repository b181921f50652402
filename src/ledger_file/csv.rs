//! The spreadsheet ledger bureaus keep today, as CSV: header names in Chinese or English, UTF-8
//! or GB18030, one child per row. Parsing turns each row into the same field object the API
//! takes, so the import applies exactly the API's validation (a 风险等级 cell is the node's label
//! or the level 1–4, read by `RecordRules::read_input`; the export writes the label).

use std::io::Read;

use serde_json::{json, Map, Value};

use crate::domain::child::{ChildRecord, Fields};
use crate::domain::{FieldError, RecordRules, RiskPalette};

use super::header::Header;

/// A column: the English header (also used on the CSV export), its Chinese aliases (the first
/// is the spreadsheet export's header), and how to read it.
pub(super) struct Column {
    pub(super) name: &'static str,
    pub(super) aliases: &'static [&'static str],
    pub(super) kind: Kind,
}

impl Column {
    /// The Chinese header the spreadsheet export and template write.
    pub(super) fn header_zh(&self) -> &'static str {
        self.aliases.first().copied().unwrap_or(self.name)
    }

    /// Whether the column holds a date (written as a date in a spreadsheet).
    pub(super) fn is_date(&self) -> bool {
        matches!(self.kind, Kind::Date)
            || matches!(
                self.name,
                "birth_date" | "guardianship_since" | "guardianship_decided_on"
            )
    }

    /// The field a validation error names for this column: the column itself, or the object
    /// it is part of (`legal_guardian` for `legal_guardian_phone`).
    pub(super) fn field(&self) -> &'static str {
        match self.kind {
            Kind::Person(field, _) => field,
            _ => self.name,
        }
    }
}

#[derive(Clone, Copy)]
pub(super) enum Kind {
    Text,
    Date,
    List,
    /// Part of a person object: (field, part).
    Person(&'static str, &'static str),
    /// Checked against the ID number, not stored.
    Derived,
}

pub(super) const COLUMNS: &[Column] = &[
    Column {
        name: "id_number",
        aliases: &["身份证号", "公民身份号码", "身份证号码"],
        kind: Kind::Text,
    },
    Column {
        name: "name",
        aliases: &["姓名", "儿童姓名"],
        kind: Kind::Text,
    },
    Column {
        name: "sex",
        aliases: &["性别"],
        kind: Kind::Derived,
    },
    Column {
        name: "birth_date",
        aliases: &["出生日期"],
        kind: Kind::Derived,
    },
    Column {
        name: "hukou_region",
        aliases: &["户籍地区划代码", "户籍地代码", "户籍地"],
        kind: Kind::Text,
    },
    Column {
        name: "hukou_address",
        aliases: &["户籍地址", "户籍地地址", "户籍地详细地址"],
        kind: Kind::Text,
    },
    Column {
        name: "hukou_township",
        aliases: &[
            "户籍地乡镇（街道）",
            "户籍地乡镇(街道)",
            "户籍地乡镇",
            "户籍地街道",
        ],
        kind: Kind::Text,
    },
    Column {
        name: "hukou_village",
        aliases: &["户籍地村（社区）", "户籍地村(社区)", "户籍地村居"],
        kind: Kind::Text,
    },
    Column {
        name: "father_situation",
        aliases: &["父亲情况"],
        kind: Kind::Text,
    },
    Column {
        name: "mother_situation",
        aliases: &["母亲情况"],
        kind: Kind::Text,
    },
    Column {
        name: "legal_guardian_name",
        aliases: &["监护人姓名", "监护人"],
        kind: Kind::Person("legal_guardian", "name"),
    },
    Column {
        name: "legal_guardian_relation",
        aliases: &["监护人关系", "与监护人关系"],
        kind: Kind::Person("legal_guardian", "relation"),
    },
    Column {
        name: "legal_guardian_phone",
        aliases: &["监护人电话"],
        kind: Kind::Person("legal_guardian", "phone"),
    },
    Column {
        name: "guardianship_kind",
        aliases: &["监护方式"],
        kind: Kind::Person("guardianship", "kind"),
    },
    Column {
        name: "guardianship_since",
        aliases: &["监护起始日期", "监护开始日期"],
        kind: Kind::Person("guardianship", "since"),
    },
    Column {
        name: "guardianship_reference",
        aliases: &["委托协议或判决文号", "监护文书编号"],
        kind: Kind::Person("guardianship", "reference"),
    },
    Column {
        name: "guardianship_decided_on",
        aliases: &["协议签订或判决日期"],
        kind: Kind::Person("guardianship", "decided_on"),
    },
    Column {
        name: "benefits",
        aliases: &["享受保障", "保障待遇"],
        kind: Kind::List,
    },
    Column {
        name: "residence_region",
        aliases: &["居住地区划代码", "居住地代码", "居住地"],
        kind: Kind::Text,
    },
    Column {
        name: "residence_address",
        aliases: &["居住地址", "现住址", "居住地地址", "居住地详细地址"],
        kind: Kind::Text,
    },
    Column {
        name: "residence_township",
        aliases: &[
            "居住地乡镇（街道）",
            "居住地乡镇(街道)",
            "乡镇（街道）",
            "乡镇(街道)",
            "乡镇",
            "街道",
        ],
        kind: Kind::Text,
    },
    Column {
        name: "residence_village",
        aliases: &[
            "居住地村（社区）",
            "居住地村(社区)",
            "村（社区）",
            "村(社区)",
            "村居",
        ],
        kind: Kind::Text,
    },
    Column {
        name: "left_hukou_on",
        aliases: &["离开户籍地日期"],
        kind: Kind::Date,
    },
    Column {
        name: "actual_caregiver_name",
        aliases: &["实际抚养人姓名", "实际抚养人"],
        kind: Kind::Person("actual_caregiver", "name"),
    },
    Column {
        name: "actual_caregiver_relation",
        aliases: &["实际抚养人关系", "与实际抚养人关系"],
        kind: Kind::Person("actual_caregiver", "relation"),
    },
    Column {
        name: "actual_caregiver_phone",
        aliases: &["实际抚养人电话"],
        kind: Kind::Person("actual_caregiver", "phone"),
    },
    Column {
        name: "living_status",
        aliases: &["生活状况"],
        kind: Kind::Text,
    },
    Column {
        name: "education_status",
        aliases: &["就学状况"],
        kind: Kind::Text,
    },
    Column {
        name: "last_visit_on",
        aliases: &["最近走访日期", "最近走访"],
        kind: Kind::Date,
    },
    Column {
        name: "responsible_worker_name",
        aliases: &["包保人姓名", "包保人"],
        kind: Kind::Person("responsible_worker", "name"),
    },
    Column {
        name: "responsible_worker_role",
        aliases: &["包保人身份", "包保人类型"],
        kind: Kind::Person("responsible_worker", "role"),
    },
    Column {
        name: "responsible_worker_phone",
        aliases: &["包保人电话"],
        kind: Kind::Person("responsible_worker", "phone"),
    },
    Column {
        name: "responsible_worker_township",
        aliases: &["包保人乡镇（街道）", "包保人乡镇"],
        kind: Kind::Person("responsible_worker", "township"),
    },
    Column {
        name: "key_care",
        aliases: &["重点关爱原因", "重点关爱"],
        kind: Kind::List,
    },
    Column {
        name: "info_updated_on",
        aliases: &["信息更新日期", "更新日期", "资料更新日期"],
        kind: Kind::Date,
    },
    Column {
        name: "risk_level",
        aliases: &["风险等级"],
        kind: Kind::Text,
    },
    Column {
        name: "categories",
        aliases: &["儿童类别", "类别"],
        kind: Kind::List,
    },
    Column {
        name: "health_status",
        aliases: &["健康状况"],
        kind: Kind::Text,
    },
    Column {
        name: "disability_kind",
        aliases: &["残疾类别"],
        kind: Kind::Person("disability", "kind"),
    },
    Column {
        name: "disability_grade",
        aliases: &["残疾等级"],
        kind: Kind::Person("disability", "grade"),
    },
    Column {
        name: "psychological_state",
        aliases: &["心理状况"],
        kind: Kind::Text,
    },
    Column {
        name: "notes",
        aliases: &["备注"],
        kind: Kind::Text,
    },
];

/// The English headers, in export order.
pub fn headers() -> Vec<&'static str> {
    COLUMNS.iter().map(|c| c.name).collect()
}

/// The header table for the README: English name and Chinese aliases.
pub fn header_table() -> Vec<(&'static str, &'static [&'static str])> {
    COLUMNS.iter().map(|c| (c.name, c.aliases)).collect()
}

/// Input encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Encoding {
    /// UTF-8 if the bytes are valid UTF-8, else GB18030.
    Auto,
    Utf8,
    Gb18030,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerCsvError {
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("the file is not valid {encoding}: line {line}, byte offset {offset} (from 0) is the first bad byte; save the file as UTF-8 or GB18030, or choose --encoding")]
    Encoding {
        encoding: &'static str,
        line: usize,
        offset: usize,
    },
    #[error("CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("--strict: the file has columns the ledger does not use: {0}; remove them, or import without --strict (they are then ignored and reported)")]
    IgnoredColumns(String),
    #[error("column {0:?} appears twice")]
    DuplicateColumn(String),
    #[error("required column {0} is missing")]
    MissingColumn(&'static str),
}

/// Decodes the file to text. `Auto` takes UTF-8 when the bytes are valid UTF-8; bytes that are
/// *nearly* UTF-8 (valid multi-byte UTF-8 sequences at least twice as many as the invalid ones:
/// a UTF-8 ledger with a stray byte) are refused, naming the first bad byte, rather than decoded
/// as GB18030 into mojibake; anything else is decoded as GB18030. Every encoding error names the
/// line and the byte offset (from 0, in the file) of the first bad byte.
pub fn decode(mut input: impl Read, encoding: Encoding) -> Result<String, LedgerCsvError> {
    let mut bytes = Vec::new();
    input.read_to_end(&mut bytes)?;
    let bom = if bytes.starts_with(b"\xEF\xBB\xBF") {
        3
    } else {
        0
    };
    let utf8 = |b: Vec<u8>| {
        let mut b = b;
        b.drain(..bom);
        String::from_utf8(b)
    };
    let utf8_error = |bytes: &[u8], e: std::str::Utf8Error| {
        let offset = bom + e.valid_up_to();
        LedgerCsvError::Encoding {
            encoding: "UTF-8",
            line: line_of(bytes, offset),
            offset,
        }
    };
    match encoding {
        Encoding::Utf8 => utf8(bytes).map_err(|e| {
            let err = e.utf8_error();
            let mut all = e.into_bytes();
            all.splice(0..0, b"\xEF\xBB\xBF"[..bom].iter().copied());
            utf8_error(&all, err)
        }),
        Encoding::Gb18030 => gb18030(&bytes),
        Encoding::Auto => {
            if let Err(e) = std::str::from_utf8(&bytes[bom..]) {
                if nearly_utf8(&bytes[bom..]) {
                    return Err(utf8_error(&bytes, e));
                }
                return gb18030(&bytes);
            }
            utf8(bytes).map_err(|e| LedgerCsvError::Encoding {
                encoding: "UTF-8",
                line: 1,
                offset: e.utf8_error().valid_up_to(),
            })
        }
    }
}

/// The 1-based line holding byte `offset`.
fn line_of(bytes: &[u8], offset: usize) -> usize {
    1 + bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
}

/// Whether invalid UTF-8 is nearly UTF-8: its valid multi-byte sequences are at least twice as
/// many as its invalid spots. GB18030 text forms a valid UTF-8 sequence only by chance (about
/// one character in three at most), so it stays below; a UTF-8 file with a few stray bytes is
/// far above.
fn nearly_utf8(mut bytes: &[u8]) -> bool {
    let (mut valid, mut invalid) = (0usize, 0usize);
    loop {
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                valid += s.chars().filter(|c| c.len_utf8() > 1).count();
                break;
            }
            Err(e) => {
                let good = &bytes[..e.valid_up_to()];
                // Valid by construction: `valid_up_to` bounds the valid prefix.
                valid += std::str::from_utf8(good)
                    .map_or(0, |s| s.chars().filter(|c| c.len_utf8() > 1).count());
                invalid += 1;
                let skip = e.valid_up_to()
                    + e.error_len()
                        .unwrap_or(bytes.len() - e.valid_up_to())
                        .max(1);
                bytes = &bytes[skip.min(bytes.len())..];
            }
        }
    }
    valid > 0 && valid >= 2 * invalid
}

fn gb18030(bytes: &[u8]) -> Result<String, LedgerCsvError> {
    let mut decoder = encoding_rs::GB18030.new_decoder_with_bom_removal();
    let mut text = String::with_capacity(
        decoder
            .max_utf8_buffer_length_without_replacement(bytes.len())
            .unwrap_or(bytes.len().saturating_mul(3)),
    );
    let (result, read) = decoder.decode_to_string_without_replacement(bytes, &mut text, true);
    match result {
        encoding_rs::DecoderResult::InputEmpty => Ok(text),
        encoding_rs::DecoderResult::Malformed(bad, extra) => {
            let offset = read.saturating_sub(usize::from(bad) + usize::from(extra));
            Err(LedgerCsvError::Encoding {
                encoding: "GB18030",
                line: line_of(bytes, offset),
                offset,
            })
        }
        // The buffer holds the worst case, so it cannot fill up.
        encoding_rs::DecoderResult::OutputFull => Err(LedgerCsvError::Encoding {
            encoding: "GB18030",
            line: line_of(bytes, read),
            offset: read,
        }),
    }
}

/// The encoding a CSV file was found to be in by [`check_encoding`], which the file is then
/// read in a block at a time ([`LedgerReader::decoding`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decided {
    Utf8,
    Gb18030,
}

/// Bytes read from a file at a time while its encoding is checked or it is decoded.
const BLOCK: usize = 64 * 1024;

/// Fills `buf` from `input` as far as it goes: fewer bytes only at the end of the input.
fn fill(input: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|b| **b == b'\n').count()
}

/// What one pass over a file found about its UTF-8: valid multi-byte characters, invalid spots
/// (counted as [`nearly_utf8`] counts them), and the first bad byte (offset from the file's first
/// byte, and its line).
struct Utf8Scan {
    multi: usize,
    invalid: usize,
    first_bad: Option<(usize, usize)>,
}

/// Scans `input` for UTF-8 a block at a time (after a UTF-8 byte-order mark); with `stop_early`,
/// up to the first bad byte only.
fn scan_utf8(input: &mut dyn Read, stop_early: bool) -> Result<Utf8Scan, LedgerCsvError> {
    let mut scan = Utf8Scan {
        multi: 0,
        invalid: 0,
        first_bad: None,
    };
    let multi = |s: &str| s.chars().filter(|c| c.len_utf8() > 1).count();
    let mut block = vec![0u8; BLOCK];
    let mut data: Vec<u8> = Vec::with_capacity(BLOCK + 4);
    // Offset (in the file) of data[0], and the newlines before it.
    let (mut at, mut lines_before) = (0usize, 0usize);
    let mut first = true;
    loop {
        let n = fill(input, &mut block)?;
        let eof = n < block.len();
        data.extend_from_slice(&block[..n]);
        if first && data.starts_with(b"\xEF\xBB\xBF") {
            data.drain(..3);
            at = 3;
        }
        first = false;
        let mut pos = 0;
        while pos < data.len() {
            match std::str::from_utf8(&data[pos..]) {
                Ok(s) => {
                    scan.multi += multi(s);
                    pos = data.len();
                }
                Err(e) => {
                    let bad = pos + e.valid_up_to();
                    scan.multi += std::str::from_utf8(&data[pos..bad]).map_or(0, multi);
                    match e.error_len() {
                        // An incomplete character at the end of the block: the next block ends it.
                        None if !eof => {
                            pos = bad;
                            break;
                        }
                        len => {
                            scan.invalid += 1;
                            if scan.first_bad.is_none() {
                                let line = 1 + lines_before + newlines(&data[..bad]);
                                scan.first_bad = Some((at + bad, line));
                                if stop_early {
                                    return Ok(scan);
                                }
                            }
                            pos = bad + len.unwrap_or(data.len() - bad).max(1);
                        }
                    }
                }
            }
        }
        let pos = pos.min(data.len());
        lines_before += newlines(&data[..pos]);
        at += pos;
        data.drain(..pos);
        if eof {
            return Ok(scan);
        }
    }
}

/// Checks a CSV file's encoding a block at a time, as [`decode`] does for a whole file, with
/// the same choice and the same errors: `open` opens the file (twice for GB18030: the UTF-8 scan
/// then the GB18030 check). Memory is a block, whatever the file's size.
pub fn check_encoding(
    open: &mut dyn FnMut() -> std::io::Result<Box<dyn Read>>,
    encoding: Encoding,
) -> Result<Decided, LedgerCsvError> {
    let utf8_error = |(offset, line)| LedgerCsvError::Encoding {
        encoding: "UTF-8",
        line,
        offset,
    };
    match encoding {
        Encoding::Utf8 => match scan_utf8(&mut open()?, true)?.first_bad {
            Some(bad) => Err(utf8_error(bad)),
            None => Ok(Decided::Utf8),
        },
        Encoding::Gb18030 => {
            check_gb18030(open()?)?;
            Ok(Decided::Gb18030)
        }
        Encoding::Auto => {
            let scan = scan_utf8(&mut open()?, false)?;
            match scan.first_bad {
                None => Ok(Decided::Utf8),
                Some(bad) if scan.multi > 0 && scan.multi >= 2 * scan.invalid => {
                    Err(utf8_error(bad))
                }
                Some(_) => {
                    check_gb18030(open()?)?;
                    Ok(Decided::Gb18030)
                }
            }
        }
    }
}

/// Decodes all of `input` as GB18030 into nothing: its first malformed byte, if any, as
/// [`decode`] reports it.
fn check_gb18030(input: Box<dyn Read>) -> Result<(), LedgerCsvError> {
    match std::io::copy(&mut Gb18030Reader::new(input), &mut std::io::sink()) {
        Ok(_) => Ok(()),
        Err(e) => Err(from_io(e)),
    }
}

/// An I/O error, or the encoding error a [`Gb18030Reader`] carried in it.
fn from_io(e: std::io::Error) -> LedgerCsvError {
    if e.kind() == std::io::ErrorKind::InvalidData
        && e.get_ref().is_some_and(|i| i.is::<LedgerCsvError>())
    {
        if let Some(inner) = e.into_inner() {
            if let Ok(err) = inner.downcast::<LedgerCsvError>() {
                return *err;
            }
        }
        return LedgerCsvError::Encoding {
            encoding: "GB18030",
            line: 0,
            offset: 0,
        };
    }
    LedgerCsvError::Io(e)
}

/// GB18030 bytes read as UTF-8, a block at a time (a GB18030 byte-order mark removed); a
/// malformed byte is an `InvalidData` error carrying [`LedgerCsvError::Encoding`].
pub struct Gb18030Reader<R> {
    inner: R,
    decoder: encoding_rs::Decoder,
    input: Vec<u8>,
    in_pos: usize,
    in_len: usize,
    eof: bool,
    finished: bool,
    output: Vec<u8>,
    out_pos: usize,
    out_len: usize,
    /// Bytes of the file decoded so far, and the newlines among them.
    consumed: usize,
    lines: usize,
}

impl<R: Read> Gb18030Reader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            decoder: encoding_rs::GB18030.new_decoder_with_bom_removal(),
            input: vec![0; BLOCK],
            in_pos: 0,
            in_len: 0,
            eof: false,
            finished: false,
            // Room for a whole block's characters (at most 3 UTF-8 bytes per input byte).
            output: vec![0; 3 * BLOCK + 16],
            out_pos: 0,
            out_len: 0,
            consumed: 0,
            lines: 0,
        }
    }
}

impl<R: Read> Read for Gb18030Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.out_pos == self.out_len {
            if self.finished {
                return Ok(0);
            }
            if self.in_pos == self.in_len && !self.eof {
                self.in_len = fill(&mut self.inner, &mut self.input)?;
                self.in_pos = 0;
                self.eof = self.in_len == 0;
            }
            let src = &self.input[self.in_pos..self.in_len];
            let (result, read, written) =
                self.decoder
                    .decode_to_utf8_without_replacement(src, &mut self.output, self.eof);
            match result {
                encoding_rs::DecoderResult::Malformed(bad, extra) => {
                    let upto = read.saturating_sub(usize::from(bad) + usize::from(extra));
                    let err = LedgerCsvError::Encoding {
                        encoding: "GB18030",
                        line: 1 + self.lines + newlines(&src[..upto]),
                        offset: self.consumed + upto,
                    };
                    return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, err));
                }
                encoding_rs::DecoderResult::InputEmpty => self.finished = self.eof,
                encoding_rs::DecoderResult::OutputFull => {}
            }
            self.lines += newlines(&src[..read]);
            self.consumed += read;
            self.in_pos += read;
            self.out_pos = 0;
            self.out_len = written;
        }
        let n = buf.len().min(self.out_len - self.out_pos);
        buf[..n].copy_from_slice(&self.output[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}

/// `input` with a leading UTF-8 byte-order mark skipped.
fn skip_bom(mut input: impl Read) -> std::io::Result<impl Read> {
    let mut head = [0u8; 3];
    let n = fill(&mut input, &mut head)?;
    let head = if head[..n] == *b"\xEF\xBB\xBF" {
        Vec::new()
    } else {
        head[..n].to_vec()
    };
    Ok(std::io::Cursor::new(head).chain(input))
}

/// A row that failed, for the error report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RowError {
    /// 1-based line of the data row in a CSV file (the header is line 1); the sheet's own row
    /// number in a workbook.
    pub row: usize,
    pub field: String,
    pub reason: String,
    /// In a workbook, the cell: `台账!C7` (the row alone, `台账!7`, when no column holds the
    /// field).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cell: Option<String>,
}

/// Parses rows into per-field values; does not validate them (the caller applies the record rules).
pub struct LedgerReader {
    header: Header,
    records: csv::StringRecordsIntoIter<Box<dyn std::io::Read + Send>>,
    line: usize,
}

impl LedgerReader {
    /// Reads the header row ([`Header::read`]: columns the ledger does not use are ignored and
    /// listed by [`LedgerReader::header`]; a CSV column is named by its 1-based position).
    pub fn new(text: String) -> Result<Self, LedgerCsvError> {
        Self::from_utf8_reader(std::io::Cursor::new(text))
    }

    /// [`LedgerReader::new`] over UTF-8 text read as it is needed (a large file a chunk at a
    /// time, with [`LedgerReader::validate_next`]); a row that is not UTF-8 is a row error.
    pub fn from_utf8_reader(
        input: impl std::io::Read + Send + 'static,
    ) -> Result<Self, LedgerCsvError> {
        let input: Box<dyn std::io::Read + Send> = Box::new(input);
        let mut rdr = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .flexible(false)
            .from_reader(input);
        let names: Vec<String> = rdr.headers()?.iter().map(str::to_owned).collect();
        let header = Header::read(&names, |i| (i + 1).to_string())?;
        Ok(Self {
            header,
            records: rdr.into_records(),
            line: 1,
        })
    }

    /// [`LedgerReader::from_utf8_reader`] over a file in the encoding [`check_encoding`] found
    /// (a UTF-8 byte-order mark skipped), decoded a block at a time as the rows are read.
    pub fn decoding(
        input: impl std::io::Read + Send + 'static,
        decided: Decided,
    ) -> Result<Self, LedgerCsvError> {
        match decided {
            Decided::Gb18030 => Self::from_utf8_reader(Gb18030Reader::new(input)),
            Decided::Utf8 => Self::from_utf8_reader(skip_bom(input)?),
        }
    }

    /// How the file's columns map onto the ledger's (and which are ignored).
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Every remaining row validated into a record by `rules`, in file order, with its line.
    /// Rows are independent: once the file is split into rows (one pass), validation runs on
    /// every core, one contiguous share each.
    pub fn validate_all(
        mut self,
        rules: &RecordRules<'_>,
    ) -> Vec<(usize, Result<ChildRecord, FieldError>)> {
        self.validate_next(rules, usize::MAX)
    }

    /// The next `max` rows (fewer at the end of the file, none after it) validated as
    /// [`LedgerReader::validate_all`] does: what a reader holds at once is one chunk.
    pub fn validate_next(
        &mut self,
        rules: &RecordRules<'_>,
        max: usize,
    ) -> Vec<(usize, Result<ChildRecord, FieldError>)> {
        let header = &self.header;
        let first = self.line + 1;
        let raw: Vec<_> = self.records.by_ref().take(max).collect();
        self.line += raw.len();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let share = raw.len().div_ceil(cores).max(1);
        std::thread::scope(|s| {
            let workers: Vec<_> = raw
                .chunks(share)
                .enumerate()
                .map(|(k, part)| {
                    s.spawn(move || {
                        part.iter()
                            .enumerate()
                            .map(|(i, rec)| {
                                let record = match rec {
                                    Ok(r) => csv_row_fields(header, r)
                                        .and_then(|f| ChildRecord::from_fields(f, rules)),
                                    Err(e) => Err(FieldError::new("row", e.to_string())),
                                };
                                (first + k * share + i, record)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                // A panic in a worker is a bug; it goes on unwinding here rather than lose rows.
                .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    }
}

impl Iterator for LedgerReader {
    /// `(line, fields or the first error)`.
    type Item = (usize, Result<Fields, FieldError>);

    fn next(&mut self) -> Option<Self::Item> {
        let rec = self.records.next()?;
        self.line += 1;
        let line = self.line;
        let rec = match rec {
            Ok(r) => r,
            Err(e) => return Some((line, Err(FieldError::new("row", e.to_string())))),
        };
        Some((line, csv_row_fields(&self.header, &rec)))
    }
}

/// A CSV row's fields: each cell with the one `'` the CSV export added removed ([`unneutralise`]).
fn csv_row_fields(header: &Header, rec: &csv::StringRecord) -> Result<Fields, FieldError> {
    row_fields(
        header
            .slots()
            .iter()
            .zip(rec.iter())
            .filter_map(|(col, cell)| col.map(|c| (c, unneutralise(cell)))),
    )
}

/// One row's cells, each with its ledger column, as the API's field values (not yet validated).
pub(super) fn row_fields<'a>(
    cells: impl Iterator<Item = (&'static Column, &'a str)>,
) -> Result<Fields, FieldError> {
    let mut map = Map::new();
    let mut derived = Vec::new();
    for (col, cell) in cells {
        if cell.is_empty() {
            continue;
        }
        match col.kind {
            Kind::Text => {
                map.insert(col.name.into(), Value::String(cell.into()));
            }
            Kind::Date => {
                map.insert(col.name.into(), Value::String(normalise_date(cell)));
            }
            Kind::List => {
                let items: Vec<&str> = cell
                    .split([';', '；', '、', ','])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect();
                let v = if col.name == "benefits" {
                    items.iter().map(|b| json!({ "benefit": b })).collect()
                } else {
                    items.iter().map(|s| json!(s)).collect()
                };
                map.insert(col.name.into(), Value::Array(v));
            }
            Kind::Person(field, part) => {
                let entry = map.entry(field).or_insert_with(|| json!({}));
                if let Value::Object(o) = entry {
                    let value = if col.is_date() {
                        normalise_date(cell)
                    } else {
                        cell.into()
                    };
                    o.insert(part.into(), Value::String(value));
                }
            }
            Kind::Derived => derived.push((col.name, cell)),
        }
    }
    // A township given by its name (花园路街道), as ledgers often hold it, is the township of that
    // name in the row's region; anything else is left for validation to refuse.
    for (township, region) in [
        ("residence_township", "residence_region"),
        ("hukou_township", "hukou_region"),
    ] {
        let code = match (map.get(township), map.get(region)) {
            (Some(Value::String(t)), Some(Value::String(r)))
                if !t.bytes().all(|b| b.is_ascii_digit()) =>
            {
                crate::domain::division::TownshipCode::by_name(r, t)
            }
            _ => None,
        };
        if let Some(code) = code {
            map.insert(township.into(), Value::String(code.as_str().to_owned()));
        }
    }
    let fields = ChildRecord::fields_from_json(map)?;
    // Sex and birth date columns, when present, must agree with the ID number.
    if let Some(Value::String(id)) = fields.get(&crate::domain::ChildField::IdNumber) {
        if let Ok(id) = crate::domain::IdNumber::parse(id) {
            for (name, cell) in derived {
                let ok = match name {
                    "sex" => match cell {
                        "男" | "male" | "M" => id.sex() == crate::domain::Sex::Male,
                        "女" | "female" | "F" => id.sex() == crate::domain::Sex::Female,
                        _ => false,
                    },
                    _ => normalise_date(cell) == id.birth_date().to_string(),
                };
                if !ok {
                    return Err(FieldError::new(name, "does not agree with the ID number"));
                }
            }
        }
    }
    Ok(fields)
}

/// `2024/3/5`, `2024.3.5`, `2024年3月5日`, `20240305` and `2024-03-05` all become
/// `2024-03-05`; anything else is left for the date parser to reject with its own message.
pub fn normalise_date(s: &str) -> String {
    let s = s.trim();
    if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) {
        return format!("{}-{}-{}", &s[..4], &s[4..6], &s[6..]);
    }
    let parts: Vec<&str> = s
        .trim_end_matches('日')
        .split(['/', '-', '.', '年', '月'])
        .collect();
    if let [y, m, d] = parts[..] {
        if let (Ok(y), Ok(m), Ok(d)) = (y.parse::<u32>(), m.parse::<u32>(), d.parse::<u32>()) {
            return format!("{y:04}-{m:02}-{d:02}");
        }
    }
    s.to_owned()
}

/// Characters that make a spreadsheet (Excel, WPS) read a cell as a formula (OWASP CSV
/// injection), including tab and carriage return, which some tools skip before looking.
const FORMULA_START: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Whether `cell`, after any leading `'`, starts a formula.
fn formula_after_quotes(cell: &str) -> bool {
    cell.trim_start_matches('\'')
        .starts_with(FORMULA_START.as_slice())
}

/// A cell as written on export: one `'` put in front of a cell that starts a formula, and of a
/// cell that starts with `'` followed by one (so [`unneutralise`] can tell them apart). The
/// spreadsheet then shows text, not a formula's result.
pub fn neutralise(cell: String) -> String {
    if formula_after_quotes(&cell) {
        format!("'{cell}")
    } else {
        cell
    }
}

/// A cell as read on import: removes exactly the `'` [`neutralise`] added, so export → import
/// is a round trip.
pub fn unneutralise(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if formula_after_quotes(rest) => rest,
        _ => cell,
    }
}

/// One record as an export row, in `headers()` order, each cell [`neutralise`]d; the risk level
/// is written as this node's label (`palette`), which its import reads back.
pub fn export_row(r: &ChildRecord, palette: &RiskPalette) -> Vec<String> {
    export_cells(r, palette)
        .into_iter()
        .map(neutralise)
        .collect()
}

pub(super) fn export_cells(r: &ChildRecord, palette: &RiskPalette) -> Vec<String> {
    let opt = |v: Option<String>| v.unwrap_or_default();
    // The objects split over several columns (`Kind::Person`), each as the wire writes it, once
    // per row: a column is its part (codes for vocabularies, dates as `YYYY-MM-DD`).
    let to_json = |v: Result<Value, serde_json::Error>| v.unwrap_or(Value::Null);
    let nested: [(&str, Value); 5] = [
        (
            "legal_guardian",
            to_json(serde_json::to_value(&r.legal_guardian)),
        ),
        (
            "actual_caregiver",
            to_json(serde_json::to_value(&r.actual_caregiver)),
        ),
        (
            "guardianship",
            to_json(serde_json::to_value(&r.guardianship)),
        ),
        (
            "responsible_worker",
            to_json(serde_json::to_value(&r.responsible_worker)),
        ),
        ("disability", to_json(serde_json::to_value(&r.disability))),
    ];
    let part = |field: &str, part: &str| -> String {
        nested
            .iter()
            .find(|(f, _)| *f == field)
            .and_then(|(_, v)| v.get(part))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    COLUMNS
        .iter()
        .map(|c| match (c.kind, c.name) {
            (Kind::Person(field, p), _) => part(field, p),
            (_, name) => match name {
                "id_number" => r.id_number.to_string(),
                "name" => r.name.as_str().to_owned(),
                "sex" => match r.sex() {
                    crate::domain::Sex::Male => "男".into(),
                    crate::domain::Sex::Female => "女".into(),
                },
                "birth_date" => r.birth_date().to_string(),
                "hukou_region" => r.hukou_region.to_string(),
                "hukou_address" => opt(r.hukou_address.as_ref().map(|a| a.as_str().to_owned())),
                "hukou_township" => opt(r.hukou_township.as_ref().map(ToString::to_string)),
                "hukou_village" => opt(r.hukou_village.as_ref().map(ToString::to_string)),
                "father_situation" => opt(r.father_situation.map(|s| s.code().to_owned())),
                "mother_situation" => opt(r.mother_situation.map(|s| s.code().to_owned())),
                // The ledger's 享受待遇 is what the child holds now; ended grants are history
                // (in the JSON Lines export).
                "benefits" => r
                    .benefits
                    .iter()
                    .filter(|b| b.is_active())
                    .map(|b| b.benefit.code())
                    .collect::<Vec<_>>()
                    .join(";"),
                "residence_region" => r.residence_region.to_string(),
                "residence_address" => {
                    opt(r.residence_address.as_ref().map(|a| a.as_str().to_owned()))
                }
                "residence_township" => opt(r.residence_township.as_ref().map(ToString::to_string)),
                "residence_village" => opt(r.residence_village.as_ref().map(ToString::to_string)),
                "left_hukou_on" => opt(r.left_hukou_on.map(|d| d.to_string())),
                "living_status" => opt(r.living_status.map(|s| s.code().to_owned())),
                "education_status" => opt(r.education_status.map(|s| s.code().to_owned())),
                "last_visit_on" => opt(r.last_visit_on.map(|d| d.to_string())),
                "key_care" => r
                    .key_care
                    .iter()
                    .map(|k| k.code())
                    .collect::<Vec<_>>()
                    .join(";"),
                "psychological_state" => opt(r.psychological_state.map(|p| p.code().to_owned())),
                "info_updated_on" => opt(r.info_updated_on.map(|d| d.to_string())),
                "risk_level" => opt(r.risk_level.map(|l| palette.label(l).to_owned())),
                "categories" => r
                    .categories
                    .iter()
                    .map(|c| c.code())
                    .collect::<Vec<_>>()
                    .join(";"),
                "health_status" => opt(r.health_status.map(|s| s.code().to_owned())),
                "notes" => opt(r.notes.as_ref().map(|n| n.as_str().to_owned())),
                _ => String::new(),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Validation on several cores keeps file order and each row's line, whichever share a row
    /// falls in.
    #[test]
    fn validate_all_keeps_order_and_lines_across_shares() {
        let mut csv = Vec::new();
        crate::ledger_file::sample::write_ledger(&mut csv, 9, 1, "51", "41").unwrap();
        let mut lines: Vec<String> = String::from_utf8(csv)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        // Break the ID number of the 2nd and 8th data rows (lines 3 and 9 of the file).
        for l in [2, 8] {
            lines[l] = format!("110101201502290000{}", &lines[l][18..]);
        }
        let text = lines.join("\n") + "\n";
        let palette = RiskPalette::default();
        let rules = RecordRules {
            today: chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
            palette: &palette,
        };
        let out = LedgerReader::new(text).unwrap().validate_all(&rules);
        let got: Vec<(usize, bool)> = out.iter().map(|(l, r)| (*l, r.is_ok())).collect();
        let want: Vec<(usize, bool)> = (2..=10).map(|l| (l, l != 3 && l != 9)).collect();
        assert_eq!(got, want);
        let bad = out[1].1.as_ref().unwrap_err();
        assert_eq!(bad.field, "id_number");
        // The good rows are the file's rows, in the file's order.
        let ids: Vec<String> = out
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok().map(|c| c.id_number.to_string()))
            .collect();
        let expected: Vec<String> = lines[1..]
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 1 && *i != 7)
            .map(|(_, l)| l[..18].to_owned())
            .collect();
        assert_eq!(ids, expected);
    }

    /// A file checked and decoded a block at a time reads as the whole file decoded at once,
    /// and fails with the same error (line and byte offset), wherever the blocks split it.
    #[test]
    fn streamed_decoding_matches_decoding_the_whole_file() {
        fn streamed(bytes: &[u8], encoding: Encoding) -> Result<String, String> {
            let mut open = || -> std::io::Result<Box<dyn Read>> {
                Ok(Box::new(std::io::Cursor::new(bytes.to_vec())))
            };
            let decided = check_encoding(&mut open, encoding).map_err(|e| e.to_string())?;
            let mut text = String::new();
            let input = std::io::Cursor::new(bytes.to_vec());
            let read = match decided {
                Decided::Utf8 => skip_bom(input).and_then(|mut r| r.read_to_string(&mut text)),
                Decided::Gb18030 => Gb18030Reader::new(input).read_to_string(&mut text),
            };
            read.map_err(|e| from_io(e).to_string())?;
            Ok(text)
        }
        // Over four blocks, the odd-length prefix puts multi-byte characters across boundaries.
        let text = format!(
            "x身份证号,姓名\n{}",
            "510104201503030012,王小明,510104,410105,流动;留守\n".repeat(5000)
        );
        assert!(text.len() > 4 * BLOCK);
        let (gb, _, _) = encoding_rs::GB18030.encode(&text);
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend(text.as_bytes());
        let mut stray = text.as_bytes().to_vec();
        stray.insert(3 * BLOCK + 1, 0xE9);
        let mut bad_gb = gb.to_vec();
        bad_gb.truncate(2 * BLOCK + 7);
        bad_gb.extend([b'\n', 0x81, b'\n']);
        bad_gb.extend(&gb[2 * BLOCK + 7..]);
        let mut cut = text.as_bytes().to_vec();
        cut.push(0xE7);
        for (name, bytes) in [
            ("utf-8", text.as_bytes().to_vec()),
            ("bom", bom),
            ("gb18030", gb.to_vec()),
            ("stray byte", stray),
            ("bad gb18030", bad_gb),
            ("cut character", cut),
        ] {
            for encoding in [Encoding::Auto, Encoding::Utf8, Encoding::Gb18030] {
                let whole = decode(&bytes[..], encoding).map_err(|e| e.to_string());
                assert_eq!(streamed(&bytes, encoding), whole, "{name}, {encoding:?}");
            }
        }
    }

    #[test]
    fn formulas_are_neutralised_and_restored_exactly() {
        for cell in [
            "=1+2", "+86 138", "-2+3", "@SUM(1)", "\t=x", "\r=x", "'=x", "''+x", "'plain", "plain",
            "", "'", "a=b",
        ] {
            let out = neutralise(cell.to_owned());
            assert!(
                !out.starts_with(FORMULA_START.as_slice()),
                "{cell:?} exported as {out:?}"
            );
            assert_eq!(unneutralise(&out), cell, "{cell:?} via {out:?}");
        }
        assert_eq!(neutralise("=1".into()), "'=1");
        assert_eq!(neutralise("'plain".into()), "'plain");
    }

    #[test]
    fn nearly_utf8_is_refused_with_line_and_offset_and_gb18030_still_decodes() {
        let mut bytes = "姓名\n王小明\ncaf".as_bytes().to_vec();
        let at = bytes.len();
        bytes.push(0xE9);
        bytes.extend(b"\n");
        match decode(bytes.as_slice(), Encoding::Auto) {
            Err(LedgerCsvError::Encoding {
                encoding: "UTF-8",
                line: 3,
                offset,
            }) => assert_eq!(offset, at),
            other => panic!("{other:?}"),
        }
        let (gb, _, _) = encoding_rs::GB18030.encode("姓名\n王小明\n李四\n");
        assert_eq!(
            decode(&gb[..], Encoding::Auto).unwrap(),
            "姓名\n王小明\n李四\n"
        );
        let mut bad = gb.to_vec();
        bad.extend([b'\n', 0x81, b'\n']);
        match decode(bad.as_slice(), Encoding::Gb18030) {
            Err(LedgerCsvError::Encoding {
                encoding: "GB18030",
                line: 5,
                offset,
            }) => assert_eq!(offset, gb.len() + 1),
            other => panic!("{other:?}"),
        }
        // With a BOM, offsets still count from the file's first byte.
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend(b"ab\xFF");
        match decode(bom.as_slice(), Encoding::Utf8) {
            Err(LedgerCsvError::Encoding {
                offset: 5, line: 1, ..
            }) => {}
            other => panic!("{other:?}"),
        }
    }
}
