//! The rules between benefits (DESIGN §5): which exclude each other, which one a child takes
//! instead of another, and which stop at 18. Pure: the eligibility service asks
//! [`BenefitPolicy::check_grant`] when a case is approved, the age-out job
//! [`BenefitPolicy::age_out`] for each adult file.

use std::collections::BTreeSet;

use chrono::NaiveDate;

use super::child::{Benefit, ChildRecord, EducationStatus};
use super::month::Month;

/// The age at which the age-limited benefits stop.
pub const ADULT_AGE: u32 = 18;

/// The benefit rules a node applies (`[eligibility]` settings; the defaults follow national
/// policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenefitPolicy {
    /// Pairs never held together; the approval of either while the other is held is refused.
    pub exclusive: Vec<(Benefit, Benefit)>,
    /// `(preferred, other)`: approving `preferred` ends `other` (reason `changed`) in the same
    /// transaction; approving `other` while `preferred` is held is refused.
    pub precedence: Vec<(Benefit, Benefit)>,
    /// Benefits that stop at 18 (孤儿基本生活费, 事实无人抚养儿童生活补贴).
    pub age_limited: BTreeSet<Benefit>,
    /// Schooling that keeps the age-limited benefits past 18 (仍在校就读).
    pub in_school: BTreeSet<EducationStatus>,
    /// The age at which they stop even in school (the local bound on "until graduation").
    pub school_age_limit: u32,
}

impl Default for BenefitPolicy {
    /// 孤儿基本生活费 and 事实无人抚养儿童生活补贴 exclude each other and take precedence over
    /// 特困 (a child recognised as either takes it instead of 特困); 特困 and 低保 exclude each
    /// other; both allowances stop at 18 unless the young person is still in school, until 22.
    fn default() -> Self {
        use Benefit::*;
        Self {
            exclusive: vec![(OrphanAllowance, DeFactoUnsupportedSubsidy), (Tekun, Dibao)],
            precedence: vec![(OrphanAllowance, Tekun), (DeFactoUnsupportedSubsidy, Tekun)],
            age_limited: [OrphanAllowance, DeFactoUnsupportedSubsidy].into(),
            in_school: [
                EducationStatus::JuniorSecondary,
                EducationStatus::SeniorSecondary,
                EducationStatus::Vocational,
                EducationStatus::SpecialEducation,
            ]
            .into(),
            school_age_limit: 22,
        }
    }
}

/// An approval refused: `benefit` cannot be held with `held`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{} ({}) cannot be held with {} ({}), which the child holds: end it first", .benefit, .benefit.label_zh(), .held, .held.label_zh())]
pub struct Excluded {
    pub benefit: Benefit,
    pub held: Benefit,
}

/// What the age-out job does to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgeOut {
    /// The benefits to end, with reason `age_18`.
    pub end: Vec<Benefit>,
    /// The month they end in.
    pub month: Month,
    /// Why, for the note: past 18 and not in school, or past the school limit.
    pub note: String,
}

/// Whole years from `birth` to `today` (0 before the first birthday).
pub fn age_on(birth: NaiveDate, today: NaiveDate) -> u32 {
    today.years_since(birth).unwrap_or(0)
}

/// Whether the child born on `birth` is an adult on `today` (18 by the ID number): the file
/// leaves the visit due list and the stale lists, and keeps the age-limited benefits only in
/// school.
pub fn is_adult(birth: NaiveDate, today: NaiveDate) -> bool {
    age_on(birth, today) >= ADULT_AGE
}

impl BenefitPolicy {
    /// Whether the two benefits are an exclusive pair (either order).
    fn exclusive_pair(&self, a: Benefit, b: Benefit) -> bool {
        self.exclusive
            .iter()
            .any(|&(x, y)| (x, y) == (a, b) || (x, y) == (b, a))
    }

    /// Approving `new` for a child holding `held`: the benefits to end in the same transaction
    /// (those `new` takes precedence over), or the first held benefit that excludes it.
    pub fn check_grant(&self, held: &[Benefit], new: Benefit) -> Result<Vec<Benefit>, Excluded> {
        let mut end = Vec::new();
        for &h in held.iter().filter(|&&h| h != new) {
            if self.precedence.contains(&(new, h)) {
                end.push(h);
            } else if self.precedence.contains(&(h, new)) || self.exclusive_pair(new, h) {
                return Err(Excluded {
                    benefit: new,
                    held: h,
                });
            }
        }
        Ok(end)
    }

    /// The age-limited benefits to end for `record` on `today`, if any: from the 18th birthday,
    /// unless its schooling is in [`BenefitPolicy::in_school`] and the young person is under
    /// [`BenefitPolicy::school_age_limit`]. They end in `today`'s month (the job runs daily, so
    /// that is the birthday's month), never before a grant's start.
    pub fn age_out(&self, record: &ChildRecord, today: NaiveDate) -> Option<AgeOut> {
        let age = age_on(record.birth_date(), today);
        if age < ADULT_AGE {
            return None;
        }
        let in_school = record
            .education_status
            .is_some_and(|s| self.in_school.contains(&s));
        if in_school && age < self.school_age_limit {
            return None;
        }
        let grants: Vec<_> = record
            .benefits
            .iter()
            .filter(|g| g.is_active() && self.age_limited.contains(&g.benefit))
            .collect();
        let this_month = Month::of(today)?;
        let month = grants
            .iter()
            .filter_map(|g| g.since)
            .fold(this_month, Ord::max);
        let end: Vec<Benefit> = grants.iter().map(|g| g.benefit).collect();
        (!end.is_empty()).then(|| AgeOut {
            end,
            month,
            note: if in_school {
                format!(
                    "reached {} (the limit while in school)",
                    self.school_age_limit
                )
            } else {
                format!("{ADULT_AGE} or older and not in school")
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::child::BenefitGrant;
    use crate::domain::{IdNumber, RegionCode};
    use Benefit::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn defaults_follow_policy() {
        let p = BenefitPolicy::default();
        assert_eq!(p.check_grant(&[Tekun], OrphanAllowance), Ok(vec![Tekun]));
        assert_eq!(
            p.check_grant(&[Tekun], DeFactoUnsupportedSubsidy),
            Ok(vec![Tekun])
        );
        assert_eq!(
            p.check_grant(&[OrphanAllowance], Tekun),
            Err(Excluded {
                benefit: Tekun,
                held: OrphanAllowance
            })
        );
        assert_eq!(
            p.check_grant(&[Dibao], Tekun),
            Err(Excluded {
                benefit: Tekun,
                held: Dibao
            })
        );
        assert_eq!(p.check_grant(&[Tekun], Dibao).unwrap_err().held, Tekun);
        assert_eq!(
            p.check_grant(&[DeFactoUnsupportedSubsidy], OrphanAllowance)
                .unwrap_err()
                .held,
            DeFactoUnsupportedSubsidy
        );
        assert_eq!(p.check_grant(&[Dibao], OrphanAllowance), Ok(vec![]));
        assert_eq!(p.check_grant(&[Dibao], Dibao), Ok(vec![]));
        let e = p.check_grant(&[Dibao], Tekun).unwrap_err().to_string();
        assert!(e.contains("dibao") && e.contains("低保"), "{e}");
    }

    fn record(born: NaiveDate, benefits: Vec<BenefitGrant>) -> ChildRecord {
        let id = IdNumber::generate(&RegionCode::parse("510104").unwrap(), born, 1);
        let mut r: ChildRecord = serde_json::from_value(serde_json::json!({
            "id_number": id.as_str(), "name": "张小明", "hukou_region": "510104",
            "hukou_address": null, "hukou_township": null, "hukou_village": null,
            "father_situation": null, "mother_situation": null, "legal_guardian": null,
            "guardianship": null, "benefits": [], "residence_region": "510104",
            "residence_address": null, "residence_township": null, "residence_village": null,
            "left_hukou_on": null, "actual_caregiver": null, "living_status": null,
            "education_status": null, "last_visit_on": null, "responsible_worker": null,
            "key_care": [], "info_updated_on": null, "risk_level": null, "categories": [],
            "health_status": null, "disability": null, "psychological_state": null, "notes": null
        }))
        .unwrap();
        r.benefits = benefits;
        r
    }

    fn grant(b: Benefit, since: &str) -> BenefitGrant {
        BenefitGrant {
            benefit: b,
            since: Some(since.parse().unwrap()),
            review_on: None,
            ended: None,
        }
    }

    #[test]
    fn age_out_on_the_18th_birthday_unless_in_school() {
        let p = BenefitPolicy::default();
        let born = d(2008, 12, 5);
        let r = record(
            born,
            vec![grant(OrphanAllowance, "2020-01"), grant(Dibao, "2021-03")],
        );
        assert_eq!(p.age_out(&r, d(2026, 12, 4)), None);
        let out = p.age_out(&r, d(2026, 12, 5)).unwrap();
        assert_eq!(out.end, vec![OrphanAllowance]);
        assert_eq!(out.month.to_string(), "2026-12");

        let mut school = r.clone();
        school.education_status = Some(EducationStatus::Vocational);
        assert_eq!(p.age_out(&school, d(2026, 12, 5)), None);
        assert_eq!(p.age_out(&school, d(2030, 12, 4)), None);
        let out = p.age_out(&school, d(2030, 12, 5)).unwrap();
        assert!(out.note.contains("22"), "{}", out.note);

        let mut ended = r.clone();
        ended.benefits[0].ended = Some(crate::domain::child::BenefitEnd {
            month: "2026-01".parse().unwrap(),
            reason: crate::domain::child::EndReason::Other,
            note: None,
        });
        assert_eq!(p.age_out(&ended, d(2026, 12, 5)), None);
        // Born on 29 February: 18 on 1 March of a common year.
        let leap = record(
            d(2008, 2, 29),
            vec![grant(DeFactoUnsupportedSubsidy, "2019-01")],
        );
        assert_eq!(p.age_out(&leap, d(2026, 2, 28)), None);
        assert!(p.age_out(&leap, d(2026, 3, 1)).is_some());
    }
}
