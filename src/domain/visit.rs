//! Visits (走访, DESIGN §3): a document of its own, written once by the node of its author and
//! amended only by that node — never in conflict, never merged. A visit says who went (name and
//! role), how (home, phone, school, video), whom they saw, what they found per area, the risk
//! assessment they made on the common scale ([`super::risk`]), what follows and when the next
//! visit is due. Also the visit schedule: how often a child must be visited, by category and
//! risk, per jurisdiction prefix. Pure: the API, the CLI and the ingest of peers' versions all
//! validate through [`VisitBody::check`].

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::child::{vocabulary, Category, FieldError, PersonName, Text};
use super::id_number::IdNumber;
use super::node::NodeId;
use super::region::RegionPrefix;
use super::risk::RiskLevel;

/// Follow-up actions a visit may list.
pub const MAX_FOLLOW_UPS: usize = 10;
/// How far ahead a visit may set the next one (a year and a day).
pub const MAX_NEXT_DUE_DAYS: i64 = 366;

vocabulary! {
    /// Who made the visit (走访人身份).
    VisitorRole {
        ChildrenDirector = "children_director" / "儿童主任",
        ChildSupervisor = "child_supervisor" / "儿童督导员",
        SocialWorker = "social_worker" / "社工",
        Caseworker = "caseworker" / "民政工作人员",
    }
}

vocabulary! {
    /// How the visit was made (走访方式).
    VisitKind {
        Home = "home" / "入户走访",
        Phone = "phone" / "电话回访",
        School = "school" / "到校走访",
        Video = "video" / "视频回访",
    }
}

vocabulary! {
    /// Whom the visitor saw or spoke to (见到的人).
    Seen {
        Child = "child" / "儿童本人",
        Guardian = "guardian" / "监护人",
        Caregiver = "caregiver" / "实际照料人",
        Teacher = "teacher" / "老师",
        VillageCadre = "village_cadre" / "村(居)干部",
        Other = "other" / "其他",
    }
}

vocabulary! {
    /// The areas a risk assessment grades (风险评估指标).
    Area {
        Guardianship = "guardianship" / "监护状况",
        Living = "living" / "生活状况",
        Psychological = "psychological" / "心理状况",
        Safety = "safety" / "安全状况",
    }
}

/// The visitor: a name and a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Visitor {
    #[schema(value_type = String, max_length = 50)]
    pub name: PersonName,
    pub role: VisitorRole,
}

/// What the visitor found, per area; every area is optional free text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Findings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 500)]
    pub guardianship: Option<Text<500, true>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 500)]
    pub living: Option<Text<500, true>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 500)]
    pub health: Option<Text<500, true>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 500)]
    pub education: Option<Text<500, true>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 500)]
    pub psychological: Option<Text<500, true>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 500)]
    pub safety: Option<Text<500, true>>,
}

/// One graded area of an assessment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Indicator {
    /// The grade of this area on the common scale (1 most severe … 4).
    #[schema(value_type = u8, minimum = 1, maximum = 4)]
    pub grade: RiskLevel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 200)]
    pub note: Option<Text<200>>,
}

/// A risk assessment (风险评估): graded areas, who assessed, and the resulting level.
/// Invariant (checked by [`VisitBody::check`]): at least one indicator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Assessment {
    /// Graded areas: `guardianship`, `living`, `psychological`, `safety` (one to four).
    #[schema(value_type = Object)]
    pub indicators: BTreeMap<Area, Indicator>,
    #[schema(value_type = String, max_length = 50)]
    pub assessor: PersonName,
    /// The resulting level on the common scale (1 most severe … 4).
    #[schema(value_type = u8, minimum = 1, maximum = 4)]
    pub level: RiskLevel,
}

impl Assessment {
    /// The most severe grade among the indicators.
    pub fn most_severe(&self) -> Option<RiskLevel> {
        self.indicators.values().map(|i| i.grade).min()
    }
}

/// A visit as signed and exchanged: the body of a `visit` document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VisitBody {
    /// The document id: a UUIDv7 chosen by the author node.
    #[schema(value_type = String, format = "uuid")]
    pub visit_id: uuid::Uuid,
    /// The child visited (公民身份号码).
    #[schema(value_type = String)]
    pub child_id: IdNumber,
    /// The node whose person made the visit; only it may amend the visit.
    #[schema(value_type = String, example = "410100")]
    pub recorded_by: NodeId,
    /// The day of the visit (China time).
    pub visited_on: NaiveDate,
    pub visitor: Visitor,
    pub kind: VisitKind,
    /// Whom the visitor saw (at least one, no repeats).
    pub seen: BTreeSet<Seen>,
    #[serde(default)]
    pub findings: Findings,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assessment: Option<Assessment>,
    /// Follow-up actions (至多 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>, max_items = 10)]
    pub follow_up: Vec<Text<200>>,
    /// When the visitor plans the next visit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_due_on: Option<NaiveDate>,
}

impl VisitBody {
    /// The rules every visit obeys, wherever it was written: seen someone; follow-ups bounded;
    /// an assessment grades at least one area; the next visit after this one and within a year;
    /// not before the child was born; not after `latest` (today at the recording node, or the
    /// version's stamp's day plus one for a peer's visit).
    pub fn check(&self, latest: NaiveDate) -> Result<(), FieldError> {
        if self.visited_on > latest {
            return Err(FieldError::new(
                "visited_on",
                format!("{} is in the future", self.visited_on),
            ));
        }
        if self.visited_on < self.child_id.birth_date() {
            return Err(FieldError::new(
                "visited_on",
                "is before the child's birth date",
            ));
        }
        if self.seen.is_empty() {
            return Err(FieldError::new("seen", "name at least one person seen"));
        }
        if self.follow_up.len() > MAX_FOLLOW_UPS {
            return Err(FieldError::new(
                "follow_up",
                format!("at most {MAX_FOLLOW_UPS} follow-up actions"),
            ));
        }
        if let Some(a) = &self.assessment {
            if a.indicators.is_empty() {
                return Err(FieldError::new(
                    "assessment.indicators",
                    "an assessment grades at least one area (guardianship, living, psychological, safety)",
                ));
            }
        }
        if let Some(next) = self.next_due_on {
            let days = (next - self.visited_on).num_days();
            if !(1..=MAX_NEXT_DUE_DAYS).contains(&days) {
                return Err(FieldError::new(
                    "next_due_on",
                    format!("must be 1 to {MAX_NEXT_DUE_DAYS} days after the visit"),
                ));
            }
        }
        Ok(())
    }
}

/// What a schedule rule applies to: a category of child, or a risk level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RuleTarget {
    Category(Category),
    Risk(RiskLevel),
}

/// How often children must be visited (走访频次): for each target, the days between visits,
/// per jurisdiction prefix — a longer prefix overrides a shorter one for the same target, as
/// with case deadlines. A child's interval is the shortest among the targets that apply to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitSchedule {
    /// (prefix, target) → days. Invariant: days in 1..=366.
    rules: BTreeMap<(RuleTarget, String), u32>,
}

impl Default for VisitSchedule {
    /// Children in difficulty, orphans and de-facto-unsupported children monthly (30 days);
    /// flowing and left-behind children at least every six months (183 days); red risk (level 1)
    /// weekly.
    fn default() -> Self {
        let mut rules = BTreeMap::new();
        for c in [
            Category::InDifficulty,
            Category::Orphan,
            Category::DeFactoUnsupported,
        ] {
            rules.insert((RuleTarget::Category(c), String::new()), 30);
        }
        for c in [Category::Flowing, Category::LeftBehind] {
            rules.insert((RuleTarget::Category(c), String::new()), 183);
        }
        rules.insert((RuleTarget::Risk(RiskLevel::MOST_SEVERE), String::new()), 7);
        VisitSchedule { rules }
    }
}

impl VisitSchedule {
    /// The defaults with `overrides` (prefix, target, days) laid over them.
    pub fn with(
        overrides: impl IntoIterator<Item = (RegionPrefix, RuleTarget, u32)>,
    ) -> Result<Self, String> {
        let mut s = VisitSchedule::default();
        for (prefix, target, days) in overrides {
            if !(1..=366).contains(&days) {
                return Err(format!("every_days {days} is not 1–366"));
            }
            s.rules.insert((target, prefix.as_str().to_owned()), days);
        }
        Ok(s)
    }

    /// The days between visits for `target` in `region`: the rule of the longest prefix of
    /// `region`, if any.
    fn days_for(&self, target: RuleTarget, region: &str) -> Option<u32> {
        self.rules
            .iter()
            .filter(|((t, p), _)| *t == target && region.starts_with(p.as_str()))
            .max_by_key(|((_, p), _)| p.len())
            .map(|(_, d)| *d)
    }

    /// The days between visits a child needs: the shortest among its categories and its risk
    /// level, in its residence region; `None` when no rule applies.
    pub fn interval(
        &self,
        residence_region: &str,
        categories: &BTreeSet<Category>,
        risk: Option<RiskLevel>,
    ) -> Option<u32> {
        categories
            .iter()
            .map(|c| RuleTarget::Category(*c))
            .chain(risk.map(RuleTarget::Risk))
            .filter_map(|t| self.days_for(t, residence_region))
            .min()
    }

    /// A stable fingerprint of the rules (a changed schedule recomputes every due date).
    pub fn fingerprint(&self) -> i64 {
        let text: String = self
            .rules
            .iter()
            .map(|((t, p), d)| match t {
                RuleTarget::Category(c) => format!("c:{}:{p}:{d};", c.code()),
                RuleTarget::Risk(l) => format!("r:{l}:{p}:{d};"),
            })
            .collect();
        // FNV-1a: stable across builds and platforms (unlike the std hasher).
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        (h >> 1) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn visit() -> serde_json::Value {
        json!({
            "visit_id": "0193a0b4-7c00-7000-8000-000000000001",
            "child_id": "41010520140601001X",
            "recorded_by": "410100",
            "visited_on": "2026-12-01",
            "visitor": {"name": "李主任", "role": "儿童主任"},
            "kind": "home",
            "seen": ["child", "caregiver"],
            "findings": {"living": "祖母照料，住房安全"},
            "assessment": {
                "indicators": {"guardianship": {"grade": 1, "note": "父母失联"}, "living": {"grade": 3}},
                "assessor": "李主任",
                "level": 1
            },
            "follow_up": ["联系派出所"],
            "next_due_on": "2026-12-08"
        })
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 5).unwrap()
    }

    #[test]
    fn a_visit_parses_and_checks() {
        let v: VisitBody = serde_json::from_value(visit()).unwrap();
        v.check(today()).unwrap();
        assert_eq!(v.visitor.role, VisitorRole::ChildrenDirector);
        assert_eq!(
            v.assessment.as_ref().unwrap().most_severe(),
            Some(RiskLevel::MOST_SEVERE)
        );
    }

    #[test]
    fn bad_visits_are_refused() {
        let bad = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut v = visit();
            edit(&mut v);
            serde_json::from_value::<VisitBody>(v)
                .map_err(|e| e.to_string())
                .and_then(|v| v.check(today()).map_err(|e| e.to_string()))
        };
        assert!(bad(&|v| v["visited_on"] = json!("2026-12-06"))
            .unwrap_err()
            .contains("future"));
        assert!(bad(&|v| v["visited_on"] = json!("2014-05-31"))
            .unwrap_err()
            .contains("birth"));
        assert!(bad(&|v| v["seen"] = json!([]))
            .unwrap_err()
            .contains("seen"));
        assert!(bad(&|v| v["assessment"]["indicators"] = json!({}))
            .unwrap_err()
            .contains("indicators"));
        assert!(bad(&|v| v["assessment"]["level"] = json!(5)).is_err());
        assert!(bad(&|v| v["assessment"]["indicators"]["mood"] = json!({"grade": 2})).is_err());
        assert!(bad(&|v| v["kind"] = json!("letter")).is_err());
        assert!(bad(&|v| v["next_due_on"] = json!("2026-12-01"))
            .unwrap_err()
            .contains("next_due_on"));
        assert!(bad(&|v| v["follow_up"] = json!(vec!["x"; 11]))
            .unwrap_err()
            .contains("follow_up"));
        assert!(bad(&|v| v["extra"] = json!(1)).is_err());
    }

    #[test]
    fn the_schedule_takes_the_shortest_interval_and_the_longest_prefix() {
        let s = VisitSchedule::default();
        let flowing: BTreeSet<_> = [Category::Flowing].into();
        assert_eq!(s.interval("410105", &flowing, None), Some(183));
        let both: BTreeSet<_> = [Category::Flowing, Category::Orphan].into();
        assert_eq!(s.interval("410105", &both, None), Some(30));
        assert_eq!(
            s.interval("410105", &flowing, Some(RiskLevel::MOST_SEVERE)),
            Some(7)
        );
        assert_eq!(
            s.interval("410105", &BTreeSet::new(), RiskLevel::new(3).ok()),
            None
        );
        let henan = VisitSchedule::with([(
            RegionPrefix::parse("41").unwrap(),
            RuleTarget::Category(Category::Flowing),
            90,
        )])
        .unwrap();
        assert_eq!(henan.interval("410105", &flowing, None), Some(90));
        assert_eq!(henan.interval("510104", &flowing, None), Some(183));
        assert_ne!(henan.fingerprint(), s.fingerprint());
        assert!(VisitSchedule::with([(
            RegionPrefix::parse("41").unwrap(),
            RuleTarget::Risk(RiskLevel::MOST_SEVERE),
            0
        )])
        .is_err());
    }
}
