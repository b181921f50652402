//! Reports and referrals (强制报告与转介, DESIGN §3): a document of its own, like a visit —
//! written by the node that took the report, amended only by that node (to record what a
//! referral came to), never in conflict. Who reported (one of the kinds the mandatory-reporting
//! rules oblige, the public, or the child), when, what they saw, how urgent, whether the police
//! were called, and where the child was referred. Pure: the API, the CLI and the ingest of
//! peers' versions all validate through [`ReportBody::check`].

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::child::{vocabulary, FieldError, Text};
use super::id_number::IdNumber;
use super::node::NodeId;

vocabulary! {
    /// Who reported (报告人类别): the seven kinds of body the mandatory-reporting rules oblige
    /// (强制报告义务主体), the public, the child.
    ReporterKind {
        ResidentsCommittee = "residents_committee" / "居(村)民委员会",
        School = "school" / "学校及教育机构",
        Childcare = "childcare" / "托育机构",
        Medical = "medical" / "医疗机构",
        WelfareInstitution = "welfare_institution" / "儿童福利及救助保护机构",
        SocialWork = "social_work" / "社会工作服务机构",
        Hotel = "hotel" / "旅店宾馆",
        Public = "public" / "公众",
        Child = "child" / "儿童本人",
    }
}

vocabulary! {
    /// How urgent (紧急程度).
    Urgency {
        Urgent = "urgent" / "紧急",
        Normal = "normal" / "一般",
    }
}

vocabulary! {
    /// Where a child is referred (转介去向).
    ReferralTarget {
        TownshipSocialWork = "township_social_work" / "乡镇(街道)社工站",
        Psychological = "psychological" / "心理服务机构",
        Police = "police" / "公安机关",
        Medical = "medical" / "医疗机构",
        Education = "education" / "教育部门",
        Procuratorate = "procuratorate" / "检察机关",
        Other = "other" / "其他",
    }
}

/// The reporter: a kind and, for a body, its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reporter {
    pub kind: ReporterKind,
    /// The reporting body or person (e.g. 金水区第一小学).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 100)]
    pub name: Option<Text<100>>,
}

/// A referral (转介) and, once known, what it came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Referral {
    pub target: ReferralTarget,
    /// The receiving body (e.g. 金水区未保站).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 100)]
    pub name: Option<Text<100>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referred_on: Option<NaiveDate>,
    /// What it came to (转介结果), once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 500)]
    pub outcome: Option<Text<500, true>>,
}

/// A report as signed and exchanged: the body of a `report` document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportBody {
    /// The document id: a UUIDv7 chosen by the recording node.
    #[schema(value_type = String, format = "uuid")]
    pub report_id: uuid::Uuid,
    #[schema(value_type = String)]
    pub child_id: IdNumber,
    /// The node that took the report; only it may amend it.
    #[schema(value_type = String, example = "410100")]
    pub recorded_by: NodeId,
    /// The day of the report (China time).
    pub reported_on: NaiveDate,
    pub reporter: Reporter,
    /// What the reporter saw or learnt.
    #[schema(value_type = String, max_length = 2000)]
    pub seen: Text<2000, true>,
    pub urgency: Urgency,
    /// Whether the police were called (serious cases go to the police).
    #[serde(default)]
    pub police_called: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral: Option<Referral>,
}

impl ReportBody {
    /// The rules every report obeys: not after `latest`, not before the child's birth; a
    /// referral not before the report and not after `latest`.
    pub fn check(&self, latest: NaiveDate) -> Result<(), FieldError> {
        if self.reported_on > latest {
            return Err(FieldError::new(
                "reported_on",
                format!("{} is in the future", self.reported_on),
            ));
        }
        if self.reported_on < self.child_id.birth_date() {
            return Err(FieldError::new(
                "reported_on",
                "is before the child's birth date",
            ));
        }
        if let Some(d) = self.referral.as_ref().and_then(|r| r.referred_on) {
            if d < self.reported_on || d > latest {
                return Err(FieldError::new(
                    "referral.referred_on",
                    "must be between the report and today",
                ));
            }
        }
        Ok(())
    }

    pub fn is_urgent(&self) -> bool {
        self.urgency == Urgency::Urgent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report() -> serde_json::Value {
        json!({
            "report_id": "0193a0b4-7c00-7000-8000-000000000002",
            "child_id": "41010520140601001X",
            "recorded_by": "410100",
            "reported_on": "2026-12-01",
            "reporter": {"kind": "学校及教育机构", "name": "金水区第一小学"},
            "seen": "孩子身上多处淤青，自述被继父殴打",
            "urgency": "urgent",
            "police_called": true,
            "referral": {"target": "township_social_work", "name": "金水区未保站", "referred_on": "2026-12-02"},
        })
    }

    #[test]
    fn a_report_parses_and_checks() {
        let r: ReportBody = serde_json::from_value(report()).unwrap();
        r.check(NaiveDate::from_ymd_opt(2026, 12, 5).unwrap())
            .unwrap();
        assert!(r.is_urgent());
        assert_eq!(r.reporter.kind, ReporterKind::School);
    }

    #[test]
    fn bad_reports_are_refused() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 5).unwrap();
        let bad = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut v = report();
            edit(&mut v);
            serde_json::from_value::<ReportBody>(v)
                .map_err(|e| e.to_string())
                .and_then(|r| r.check(today).map_err(|e| e.to_string()))
        };
        assert!(bad(&|v| v["reported_on"] = json!("2026-12-06")).is_err());
        assert!(bad(&|v| v["referral"]["referred_on"] = json!("2026-11-30")).is_err());
        assert!(bad(&|v| v["reporter"]["kind"] = json!("neighbour")).is_err());
        assert!(bad(&|v| v["urgency"] = json!("very")).is_err());
        assert!(bad(&|v| v["seen"] = json!("  ")).is_err());
    }
}
