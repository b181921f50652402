//! A field's value as people type it on one line (`child update --set field=value`, `conflict
//! resolve --set`), read by the field's type — the same reading as a ledger cell of that field:
//!
//! | field's type | typed | becomes |
//! |---|---|---|
//! | code or text (regions, townships, ID number, names, notes, one value of a vocabulary) | `440305`, `流动人口` | the text as typed (`440305` is a code, never a number) |
//! | date (`last_visit_on`, `left_hukou_on`, `info_updated_on`) | `2026-09-01`, `2026/9/1`, `20260901`, `2026年9月1日` | `"2026-09-01"` |
//! | risk level | `红`, `1` | the label, or the level as a number |
//! | list (`categories`, `key_care`, `benefits`) | `流动;留守` (`;`, `；`, `、` or `,`) | `["流动", "留守"]` (`benefits`: `[{"benefit": …}]`) |
//! | object (`legal_guardian`, `actual_caregiver`, `responsible_worker`, `guardianship`, `disability`) | `王建国;祖父;13800000000` — the parts in the ledger's column order | `{"name": …, "relation": …, "phone": …}` |
//!
//! A value starting with `[` or `{` in a list or object field, and a quoted value (`"…"`) in any
//! field, is JSON (`'categories=["flowing"]'`, `'benefits=[{"benefit":"dibao","since":"2026-01"}]'`).
//! Empty or `null` clears the field (an empty list for a list). Vocabulary labels (`流动`,
//! `与祖辈生活`, `儿童主任`) are accepted wherever the API accepts them; the record's own
//! validation then names the field of any value it refuses.

use serde_json::{json, Map, Value};

use crate::domain::child::ChildField;
use crate::domain::FieldError;

use super::csv::normalise_date;

/// How a field's one-line value is read.
enum Shape {
    Text,
    Date,
    Risk,
    List,
    Benefits,
    /// An object's parts in order (the ledger's columns), with how many are required.
    Object(&'static [&'static str], usize),
}

fn shape(field: ChildField) -> Shape {
    use ChildField as F;
    match field {
        F::LeftHukouOn | F::LastVisitOn | F::InfoUpdatedOn => Shape::Date,
        F::RiskLevel => Shape::Risk,
        F::Categories | F::KeyCare => Shape::List,
        F::Benefits => Shape::Benefits,
        F::LegalGuardian | F::ActualCaregiver => Shape::Object(&["name", "relation", "phone"], 2),
        F::ResponsibleWorker => Shape::Object(&["name", "role", "phone", "township"], 2),
        F::Guardianship => Shape::Object(&["kind", "since", "reference", "decided_on"], 2),
        F::Disability => Shape::Object(&["kind", "grade"], 2),
        _ => Shape::Text,
    }
}

/// Parts of an object that are dates.
const DATE_PARTS: [&str; 2] = ["since", "decided_on"];

fn split_list(text: &str) -> Vec<&str> {
    text.split([';', '；', '、', ','])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

fn date(field: &str, text: &str) -> Result<String, FieldError> {
    let d = normalise_date(text);
    chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d")
        .map(|d| d.to_string())
        .map_err(|_| {
            FieldError::new(
                field,
                format!("{text:?} is not a date (write 2026-09-01, 2026/9/1 or 20260901)"),
            )
        })
}

/// Reads `text` as the value of the field named `field`. Unknown fields are refused.
pub fn read_value(field: &str, text: &str) -> Result<Value, FieldError> {
    let f = ChildField::from_name(field).ok_or_else(|| {
        FieldError::new(
            field,
            format!(
                "unknown field; the fields are {}",
                ChildField::ALL
                    .iter()
                    .map(|f| f.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })?;
    let text = text.trim();
    let shape = shape(f);
    if text.is_empty() || text == "null" {
        return Ok(match shape {
            Shape::List | Shape::Benefits => Value::Array(Vec::new()),
            _ => Value::Null,
        });
    }
    let json_here = text.starts_with('"')
        || (matches!(shape, Shape::List | Shape::Benefits | Shape::Object(..))
            && text.starts_with(['[', '{']));
    if json_here {
        return serde_json::from_str(text)
            .map_err(|e| FieldError::new(field, format!("is not valid JSON: {e}")));
    }
    Ok(match shape {
        Shape::Text => Value::String(text.to_owned()),
        Shape::Date => Value::String(date(field, text)?),
        Shape::Risk => match text.parse::<u8>() {
            Ok(n) => json!(n),
            Err(_) => Value::String(text.to_owned()),
        },
        Shape::List => json!(split_list(text)),
        Shape::Benefits => split_list(text)
            .into_iter()
            .map(|b| json!({ "benefit": b }))
            .collect(),
        Shape::Object(parts, required) => {
            let given: Vec<&str> = text.split([';', '；']).map(str::trim).collect();
            if given.len() < required || given.len() > parts.len() {
                return Err(FieldError::new(
                    field,
                    format!(
                        "expected {} separated by ';' (or JSON), got {} part(s)",
                        parts
                            .iter()
                            .enumerate()
                            .map(|(i, p)| if i < required {
                                (*p).to_owned()
                            } else {
                                format!("[{p}]")
                            })
                            .collect::<Vec<_>>()
                            .join(";"),
                        given.len()
                    ),
                ));
            }
            let mut map = Map::new();
            for (part, value) in parts.iter().zip(given) {
                if value.is_empty() {
                    continue;
                }
                let value = if DATE_PARTS.contains(part) {
                    date(&format!("{field}.{part}"), value)?
                } else {
                    value.to_owned()
                };
                map.insert((*part).to_owned(), Value::String(value));
            }
            Value::Object(map)
        }
    })
}

/// The one-line text of a field's value as [`read_value`] reads it back (a form's input shows
/// it): text as is, lists joined with `;`, an object's parts in the ledger's column order
/// (empty parts kept in place), nothing as the empty string. A value no shape fits is JSON.
pub fn one_line(field: ChildField, value: &Value) -> String {
    match (shape(field), value) {
        (_, Value::Null) => String::new(),
        (_, Value::String(s)) => s.clone(),
        (_, Value::Number(n)) => n.to_string(),
        (Shape::List, Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(";"),
        (Shape::Object(parts, _), Value::Object(map))
            if map.values().all(Value::is_string)
                && map.keys().all(|k| parts.contains(&k.as_str())) =>
        {
            let mut cells: Vec<&str> = parts
                .iter()
                .map(|p| map.get(*p).and_then(Value::as_str).unwrap_or(""))
                .collect();
            while cells.len() > 2 && cells.last() == Some(&"") {
                cells.pop();
            }
            cells.join(";")
        }
        (_, other) => other.to_string(),
    }
}

/// `FIELD=VALUE`, read with [`read_value`].
pub fn read_assignment(s: &str) -> Result<(String, Value), FieldError> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| FieldError::new(s, "expected FIELD=VALUE"))?;
    let k = k.trim();
    Ok((k.to_owned(), read_value(k, v)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(field: &str, text: &str) -> Value {
        read_value(field, text).unwrap()
    }

    #[test]
    fn one_line_reads_back() {
        for (field, text) in [
            ("residence_region", "440305"),
            ("categories", "flowing;left_behind"),
            ("legal_guardian", "王建国;祖父;13800000000"),
            ("legal_guardian", "王建国;祖父"),
            ("responsible_worker", "李娜;children_director;;440305001"),
            ("last_visit_on", "2026-09-01"),
        ] {
            let f = ChildField::from_name(field).unwrap();
            let value = v(field, text);
            assert_eq!(one_line(f, &value), text, "{field}");
            assert_eq!(v(field, &one_line(f, &value)), value, "{field}");
        }
        assert_eq!(one_line(ChildField::Notes, &Value::Null), "");
    }

    #[test]
    fn codes_are_text_lists_split_and_dates_read() {
        assert_eq!(v("residence_region", "440305"), json!("440305"));
        assert_eq!(v("residence_township", "440305001"), json!("440305001"));
        assert_eq!(
            v("id_number", "510104201503030011"),
            json!("510104201503030011")
        );
        assert_eq!(v("notes", "[重要] 需回访"), json!("[重要] 需回访"));
        assert_eq!(v("notes", "true"), json!("true"));
        assert_eq!(v("categories", "流动;留守"), json!(["流动", "留守"]));
        assert_eq!(
            v("key_care", "家庭困难、监护缺失"),
            json!(["家庭困难", "监护缺失"])
        );
        assert_eq!(v("categories", r#"["flowing"]"#), json!(["flowing"]));
        assert_eq!(v("categories", ""), json!([]));
        assert_eq!(v("benefits", "低保"), json!([{"benefit": "低保"}]));
        assert_eq!(v("last_visit_on", "2026/9/1"), json!("2026-09-01"));
        assert_eq!(v("last_visit_on", "20260901"), json!("2026-09-01"));
        assert_eq!(v("last_visit_on", "2026年9月1日"), json!("2026-09-01"));
        assert_eq!(v("last_visit_on", ""), Value::Null);
        assert_eq!(v("last_visit_on", "null"), Value::Null);
        assert_eq!(v("risk_level", "红"), json!("红"));
        assert_eq!(v("risk_level", "2"), json!(2));
        assert_eq!(v("hukou_region", r#""510115""#), json!("510115"));
        assert_eq!(v("living_status", "与祖辈生活"), json!("与祖辈生活"));
    }

    #[test]
    fn objects_take_their_parts_in_ledger_order_or_json() {
        assert_eq!(
            v("legal_guardian", "王建国;祖父;13800000000"),
            json!({"name": "王建国", "relation": "祖父", "phone": "13800000000"})
        );
        assert_eq!(
            v("guardianship", "委托照护;2025/3/1"),
            json!({"kind": "委托照护", "since": "2025-03-01"})
        );
        assert_eq!(
            v("responsible_worker", "李主任;儿童主任;;410105001"),
            json!({"name": "李主任", "role": "儿童主任", "township": "410105001"})
        );
        assert_eq!(
            v("disability", r#"{"kind":"visual","grade":"grade_1"}"#),
            json!({"kind": "visual", "grade": "grade_1"})
        );
        let e = read_value("legal_guardian", "王建国").unwrap_err();
        assert_eq!(e.field, "legal_guardian");
        assert!(e.reason.contains("name;relation;[phone]"), "{}", e.reason);
        let e = read_value("guardianship", "委托照护;2025-13-01").unwrap_err();
        assert_eq!(e.field, "guardianship.since");
    }

    #[test]
    fn errors_name_the_field() {
        let e = read_value("last_visit_on", "2026-13-01").unwrap_err();
        assert_eq!(e.field, "last_visit_on");
        assert!(e.reason.contains("not a date"));
        let e = read_value("categories", "[flowing").unwrap_err();
        assert_eq!(e.field, "categories");
        assert!(e.reason.contains("JSON"));
        let e = read_value("favourite_colour", "red").unwrap_err();
        assert!(e.reason.contains("unknown field"));
        assert!(read_assignment("no_equals").is_err());
        assert_eq!(
            read_assignment("residence_region=440305").unwrap(),
            ("residence_region".to_owned(), json!("440305"))
        );
    }
}
