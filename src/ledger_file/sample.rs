//! A generated sample ledger: plausible flowing children with valid-checksum ID numbers, for
//! trying the import, for tests and for benchmarks. Deterministic for a given seed.

use chrono::NaiveDate;

use crate::domain::region::{all_codes, RegionLevel};
use crate::domain::{IdNumber, RegionCode};

/// xorshift64*: small, deterministic, good enough for sample data (not for anything secret).
pub struct SampleRng(u64);

impl SampleRng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "林", "罗", "高",
];
const GIVEN: &[&str] = &[
    "子涵", "欣怡", "梓萱", "一诺", "浩宇", "宇轩", "思雨", "俊杰", "雨桐", "明轩", "佳怡", "晨曦",
    "梓涵", "诗琪", "博文", "嘉怡", "天佑", "若曦", "文博", "可馨",
];

/// Counties whose code starts with `prefix`.
pub fn counties(prefix: &str) -> Vec<RegionCode> {
    all_codes()
        .filter(|c| c.as_str().starts_with(prefix) && c.level() == Some(RegionLevel::County))
        .collect()
}

/// Writes `count` rows of CSV with Chinese headers: hukou in `hukou_prefix`, residence in
/// `residence_prefix`.
pub fn write_ledger(
    out: &mut dyn std::io::Write,
    count: usize,
    seed: u64,
    hukou_prefix: &str,
    residence_prefix: &str,
) -> std::io::Result<()> {
    let hukou = counties(hukou_prefix);
    let residence = counties(residence_prefix);
    if hukou.is_empty() || residence.is_empty() {
        return Err(std::io::Error::other(
            "no county matches the region prefixes",
        ));
    }
    let mut rng = SampleRng::new(seed);
    let mut w = csv::Writer::from_writer(out);
    w.write_record([
        "身份证号",
        "姓名",
        "户籍地区划代码",
        "居住地区划代码",
        "儿童类别",
        "父亲情况",
        "母亲情况",
        "监护人姓名",
        "监护人关系",
        "实际抚养人姓名",
        "实际抚养人关系",
        "生活状况",
        "就学状况",
        "风险等级",
        "最近走访日期",
        "离开户籍地日期",
        "备注",
    ])
    .map_err(std::io::Error::other)?;
    let mut used = std::collections::HashSet::new();
    let base = NaiveDate::from_ymd_opt(2009, 1, 1).unwrap_or_default();
    let mut written = 0;
    while written < count {
        let h = rng.pick(&hukou).clone();
        let r = rng.pick(&residence).clone();
        let birth = base + chrono::Duration::days(rng.below(365 * 16) as i64);
        let id = IdNumber::generate(&h, birth, rng.below(1000) as u16);
        if !used.insert(id.to_string()) {
            continue;
        }
        let surname = rng.pick(SURNAMES);
        let name = format!("{surname}{}", rng.pick(GIVEN));
        let guardian = format!(
            "{surname}{}",
            rng.pick(&["建国", "志强", "秀英", "桂兰", "国庆"])
        );
        let school = match 2026 - chrono::Datelike::year(&birth) {
            0..=2 => "未到入学年龄",
            3..=5 => "学前",
            6..=11 => "小学",
            12..=14 => "初中",
            _ => "高中",
        };
        let visit = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap_or_default()
            + chrono::Duration::days(rng.below(600) as i64);
        let left = (birth + chrono::Duration::days(rng.below(2000) as i64)).min(visit);
        let row = [
            id.to_string(),
            name,
            h.to_string(),
            r.to_string(),
            rng.pick(&["流动", "流动;留守", "流动;困境", "流动;留守;困境"])
                .to_string(),
            rng.pick(&["外出务工", "正常", "服刑在押", "重病", "失联"])
                .to_string(),
            rng.pick(&["外出务工", "正常", "重残", "死亡"]).to_string(),
            guardian.clone(),
            rng.pick(&["父亲", "母亲", "祖父", "祖母"]).to_string(),
            guardian,
            rng.pick(&["父亲", "母亲", "祖父", "祖母"]).to_string(),
            rng.pick(&[
                "与父母共同生活",
                "与祖辈生活",
                "与父或母生活",
                "与其他亲属生活",
            ])
            .to_string(),
            school.to_string(),
            rng.pick(&["红", "橙", "黄", "绿", "绿", "绿"]).to_string(),
            visit.to_string(),
            left.to_string(),
            String::new(),
        ];
        w.write_record(&row).map_err(std::io::Error::other)?;
        written += 1;
    }
    w.flush()
}
