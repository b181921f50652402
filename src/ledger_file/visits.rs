//! The visit ledger (走访台账) as bureaus keep it in a spreadsheet: one visit per row, Chinese
//! headers, values by their Chinese labels, formulas neutralised like the children's ledger
//! ([`super::csv::neutralise`]). Written by `export --visits`, read by `import --visits`
//! ([`read`]: each row into the API's visit body, which the visits service validates).

use serde_json::{json, Map, Value};

use crate::domain::risk::RiskPalette;
use crate::domain::visit::{Area, VisitBody};

use super::csv::{neutralise, unneutralise};

/// Rows a visit ledger may hold.
pub const MAX_ROWS: usize = 100_000;

/// One row read: its line, the child's ID number as written, and the visit as the API's body.
pub type ReadRow = (usize, String, Value);

/// Reads a visit ledger written with [`headers`] (columns in any order; `走访编号`, `风险等级`
/// without indicators and `记录单位` are informative and ignored: the importing node records the
/// visits). Values are the Chinese labels or the English codes; lists are separated by `、`,
/// `；` or `;`; an indicator is `领域:等级` or `领域:等级（说明）`.
pub fn read(text: &str) -> Result<Vec<ReadRow>, String> {
    let mut r = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let header: Vec<String> = r
        .headers()
        .map_err(|e| format!("header: {e}"))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    let col = |name: &str| header.iter().position(|h| h == name);
    for required in [
        "身份证号",
        "走访日期",
        "走访人",
        "走访人身份",
        "走访方式",
        "见到的人",
    ] {
        if col(required).is_none() {
            return Err(format!("the header has no {required} column"));
        }
    }
    let mut out = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let line = i + 2;
        if out.len() >= MAX_ROWS {
            return Err(format!("more than {MAX_ROWS} rows: split the file"));
        }
        let rec = rec.map_err(|e| format!("line {line}: {e}"))?;
        let cell = |name: &str| -> String {
            col(name)
                .and_then(|c| rec.get(c))
                .map(|v| unneutralise(v.trim()).to_owned())
                .unwrap_or_default()
        };
        let list = |s: String| -> Vec<String> {
            s.split(['、', '；', ';'])
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect()
        };
        let mut body = Map::new();
        body.insert("visited_on".into(), json!(cell("走访日期")));
        body.insert(
            "visitor".into(),
            json!({"name": cell("走访人"), "role": cell("走访人身份")}),
        );
        body.insert("kind".into(), json!(cell("走访方式")));
        body.insert("seen".into(), json!(list(cell("见到的人"))));
        let mut findings = Map::new();
        for (column, area) in [
            ("监护状况", "guardianship"),
            ("生活状况", "living"),
            ("健康状况", "health"),
            ("教育状况", "education"),
            ("心理状况", "psychological"),
            ("安全状况", "safety"),
        ] {
            let v = cell(column);
            if !v.is_empty() {
                findings.insert(area.into(), json!(v));
            }
        }
        body.insert("findings".into(), Value::Object(findings));
        let indicators = list(cell("评估指标"));
        if !indicators.is_empty() {
            let mut m = Map::new();
            for ind in indicators {
                let (area, rest) = ind
                    .split_once([':', '：'])
                    .ok_or_else(|| format!("line {line}: 评估指标 {ind:?} is not 领域:等级"))?;
                let (grade, note) = match rest.split_once('（') {
                    Some((g, n)) => (g.trim(), Some(n.trim_end_matches('）').trim())),
                    None => (rest.trim(), None),
                };
                let grade = grade
                    .parse::<u8>()
                    .map(|n| json!(n))
                    .unwrap_or_else(|_| json!(grade));
                let mut i = json!({"grade": grade});
                if let Some(n) = note.filter(|n| !n.is_empty()) {
                    i["note"] = json!(n);
                }
                m.insert(area.trim().to_owned(), i);
            }
            let assessor = Some(cell("评估人"))
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| cell("走访人"));
            let mut a = json!({"indicators": m, "assessor": assessor});
            let level = cell("风险等级");
            if !level.is_empty() {
                a["level"] = level
                    .parse::<u8>()
                    .map(|n| json!(n))
                    .unwrap_or_else(|_| json!(level));
            }
            body.insert("assessment".into(), a);
        }
        let follow = list(cell("跟进措施"));
        if !follow.is_empty() {
            body.insert("follow_up".into(), json!(follow));
        }
        let next = cell("下次走访日期");
        if !next.is_empty() {
            body.insert("next_due_on".into(), json!(next));
        }
        out.push((line, cell("身份证号"), Value::Object(body)));
    }
    Ok(out)
}

/// The header row.
pub fn headers() -> Vec<&'static str> {
    vec![
        "走访编号",
        "身份证号",
        "走访日期",
        "走访人",
        "走访人身份",
        "走访方式",
        "见到的人",
        "监护状况",
        "生活状况",
        "健康状况",
        "教育状况",
        "心理状况",
        "安全状况",
        "风险等级",
        "评估指标",
        "评估人",
        "跟进措施",
        "下次走访日期",
        "记录单位",
    ]
}

/// One visit as a row, under `palette`'s labels.
pub fn row(v: &VisitBody, palette: &RiskPalette) -> Vec<String> {
    let text = |t: &Option<crate::domain::child::Text<500, true>>| {
        t.as_ref()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default()
    };
    let f = &v.findings;
    let (level, indicators, assessor) = match &v.assessment {
        Some(a) => (
            palette.label(a.level).to_owned(),
            a.indicators
                .iter()
                .map(|(area, i): (&Area, _)| {
                    let note = i.note.as_ref().map(|n| format!("（{}）", n.as_str()));
                    format!(
                        "{}:{}{}",
                        area.label_zh(),
                        palette.label(i.grade),
                        note.unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("；"),
            a.assessor.as_str().to_owned(),
        ),
        None => Default::default(),
    };
    [
        v.visit_id.to_string(),
        v.child_id.to_string(),
        v.visited_on.to_string(),
        v.visitor.name.as_str().to_owned(),
        v.visitor.role.label_zh().to_owned(),
        v.kind.label_zh().to_owned(),
        v.seen
            .iter()
            .map(|s| s.label_zh())
            .collect::<Vec<_>>()
            .join("、"),
        text(&f.guardianship),
        text(&f.living),
        text(&f.health),
        text(&f.education),
        text(&f.psychological),
        text(&f.safety),
        level,
        indicators,
        assessor,
        v.follow_up
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join("；"),
        v.next_due_on.map(|d| d.to_string()).unwrap_or_default(),
        v.recorded_by.to_string(),
    ]
    .into_iter()
    .map(neutralise)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_visit_row_names_everything_in_chinese_and_neutralises_formulas() {
        let v: VisitBody = serde_json::from_value(serde_json::json!({
            "visit_id": "0193a0b4-7c00-7000-8000-000000000001",
            "child_id": "41010520140601001X",
            "recorded_by": "410100",
            "visited_on": "2026-12-01",
            "visitor": {"name": "李主任", "role": "儿童主任"},
            "kind": "home",
            "seen": ["child", "caregiver"],
            "findings": {"living": "=HYPERLINK(\"x\")"},
            "assessment": {"indicators": {"guardianship": {"grade": 1, "note": "失联"}},
                           "assessor": "李主任", "level": 1},
        }))
        .unwrap();
        let r = row(&v, &RiskPalette::default());
        assert_eq!(r.len(), headers().len());
        assert_eq!(r[5], "入户走访");
        assert_eq!(r[6], "儿童本人、实际照料人");
        assert_eq!(r[8], "'=HYPERLINK(\"x\")");
        assert_eq!(r[13], "红");
        assert_eq!(r[14], "监护状况:红（失联）");
        // And back: the row reads as the same visit.
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(headers()).unwrap();
        w.write_record(&r).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        let rows = read(&text).unwrap();
        let (line, child, body) = &rows[0];
        assert_eq!((*line, child.as_str()), (2, "41010520140601001X"));
        assert_eq!(body["findings"]["living"], "=HYPERLINK(\"x\")");
        assert_eq!(body["assessment"]["indicators"]["监护状况"]["grade"], "红");
        assert_eq!(body["assessment"]["indicators"]["监护状况"]["note"], "失联");
        assert_eq!(body["seen"], json!(["儿童本人", "实际照料人"]));
        assert!(read("姓名\n张三\n").unwrap_err().contains("身份证号"));
    }
}
