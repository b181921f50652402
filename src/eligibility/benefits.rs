//! Benefits over time at the hukou bureau: the age-out run (the daily job `jobs::age_out`
//! calls [`age_out`]) and the review due list ([`review_due`]). Ending and granting go through
//! the ledger's one edit path (`sync::ledger::end_benefits_in`, `service::step`).

use chrono::{DateTime, Months, NaiveDate, Utc};
use serde::Serialize;

use crate::audit::Actor;
use crate::domain::benefit::ADULT_AGE;
use crate::domain::child::{BenefitEnd, EndReason, Text};
use crate::domain::IdNumber;
use crate::storage::records as repo;
use crate::storage::{self, DbConn};
use crate::sync::ledger::{self, china_today, LedgerError};
use crate::sync::LocalNode;

/// Files read per page by the scans here.
const PAGE: i64 = 500;

/// The last birth date of an adult on `today` (18 years before it), `None` before year 19.
pub fn adult_born_by(today: NaiveDate) -> Option<NaiveDate> {
    today.checked_sub_months(Months::new(12 * ADULT_AGE))
}

/// Ends the age-limited benefits of every adult whose file this node keeps as the hukou bureau
/// (`BenefitPolicy::age_out`: from the 18th birthday, unless in school and under the limit),
/// each file in its own transaction and version, audited `benefit.end` by `job:age-out`.
/// Returns how many files changed.
pub fn age_out(
    conn: &mut DbConn,
    node: &LocalNode,
    now: DateTime<Utc>,
) -> Result<usize, LedgerError> {
    let today = china_today(now);
    let Some(born_by) = adult_born_by(today) else {
        return Ok(0);
    };
    let actor = Actor::job("age-out");
    let mut after: Option<String> = None;
    let mut changed = 0;
    loop {
        let ids = repo::born_by(conn, born_by, after.as_deref(), PAGE)?;
        let Some(last) = ids.last() else { break };
        after = Some(last.clone());
        for raw in &ids {
            let Ok(id) = IdNumber::parse(raw) else {
                continue;
            };
            let ended = match storage::transaction(conn, |conn| {
                let record = ledger::current_record(conn, node, &id)?;
                if !node
                    .roles(&record.hukou_region, &record.residence_region)
                    .hukou
                {
                    return Ok(false);
                }
                let Some(out) = node.benefits.age_out(&record, today) else {
                    return Ok(false);
                };
                let end = BenefitEnd {
                    month: out.month,
                    reason: EndReason::Age18,
                    note: Text::parse(&out.note).ok(),
                };
                ledger::end_benefits_in(conn, node, &id, &out.end, end, &actor, now)?;
                Ok::<_, LedgerError>(true)
            }) {
                // An open conflict on the benefits waits for its resolution; the next run ends
                // them. Other files go on.
                Err(LedgerError::UnderReview(field)) => {
                    tracing::warn!(child = %id.masked(), field, "age-out waits for a conflict's resolution");
                    false
                }
                other => other?,
            };
            if ended {
                changed += 1;
                tracing::info!(child = %id.masked(), "age-limited benefits ended at 18");
            }
        }
    }
    if changed > 0 {
        node.wake_senders();
    }
    Ok(changed)
}

/// One active grant whose review date (复核) is due.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReviewDue {
    pub id_number: String,
    pub name: String,
    pub hukou_region: String,
    pub benefit: crate::domain::child::Benefit,
    /// `YYYY-MM`.
    #[schema(value_type = Option<String>)]
    pub since: Option<crate::domain::Month>,
    pub review_on: NaiveDate,
    /// The review date is past.
    pub overdue: bool,
}

/// A page of the review due list; pass `next_after` as `after` for the next one.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReviewPage {
    pub items: Vec<ReviewDue>,
    /// The last ID number scanned, when the scan has more files.
    pub next_after: Option<String>,
}

/// Active grants of files this node keeps as the hukou bureau whose review date is on or before
/// `due_by`, scanning up to `scan` files in ID order after `after` (a scan bounded by paging: the
/// review date lives inside the record, not in a view column), ordered by review date.
pub fn review_due(
    conn: &mut DbConn,
    node: &LocalNode,
    due_by: NaiveDate,
    today: NaiveDate,
    after: Option<&str>,
    scan: i64,
    scope: &crate::domain::Scope,
) -> Result<ReviewPage, LedgerError> {
    let files = repo::page_children(conn, after, scan)?;
    let next_after = (files.len() as i64 == scan)
        .then(|| files.last().map(|f| f.id_number.to_string()))
        .flatten();
    let mut items = Vec::new();
    for f in files {
        if !node.roles(&f.hukou_region, &f.residence_region).hukou
            || !scope.admits_record(&f.record)
        {
            continue;
        }
        for g in f.record.benefits.iter().filter(|g| g.is_active()) {
            if let Some(on) = g.review_on.filter(|d| *d <= due_by) {
                items.push(ReviewDue {
                    id_number: f.id_number.to_string(),
                    name: f.name.clone(),
                    hukou_region: f.hukou_region.to_string(),
                    benefit: g.benefit,
                    since: g.since,
                    review_on: on,
                    overdue: on < today,
                });
            }
        }
    }
    items.sort_by(|a, b| (a.review_on, &a.id_number).cmp(&(b.review_on, &b.id_number)));
    Ok(ReviewPage { items, next_after })
}

/// [`review_due`] for a person or a system, audited as `benefit.review_due` with the files
/// returned (the list names children and their benefits).
#[allow(clippy::too_many_arguments)]
pub fn review_due_for(
    conn: &mut DbConn,
    node: &LocalNode,
    due_by: NaiveDate,
    after: Option<&str>,
    scan: i64,
    actor: &Actor,
    purpose: Option<&str>,
    now: DateTime<Utc>,
) -> Result<ReviewPage, LedgerError> {
    let today = china_today(now);
    storage::transaction(conn, |conn| {
        let page = review_due(conn, node, due_by, today, after, scan, &actor.scope)?;
        let returned: Vec<&str> = page.items.iter().map(|i| i.id_number.as_str()).collect();
        crate::audit::append(
            conn,
            node.clock.now(),
            now,
            &crate::audit::Event::new(
                actor.clone(),
                "benefit.review_due",
                crate::audit::Outcome::Ok,
            )
            .purpose(purpose)
            .details(serde_json::json!({"returned": returned, "due_by": due_by})),
        )?;
        Ok(page)
    })
}
