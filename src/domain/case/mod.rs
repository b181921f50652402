//! The case document (pure): what a case version holds, the one rule every new version must
//! follow (exactly one legal transition by its party on top of its parents' merged view, nothing
//! else changed), and the deterministic merge of concurrent heads both nodes compute alike.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub mod state;

use self::state::{Branch, CaseState, Party, Transition, TransitionError};
use crate::domain::child::{Benefit, ParentSituation, Text};
use crate::domain::{IdNumber, NodeId, RegionCode};

/// One piece of evidence: a document the requester holds, identified by its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// e.g. 死亡证明, 服刑通知书, 残疾证.
    #[schema(value_type = String)]
    pub doc_type: Text<64>,
    #[schema(value_type = String)]
    pub issuer: Text<100>,
    #[schema(value_type = String)]
    pub number: Text<64>,
    /// SHA-256 of the file, 64 lower-case hex characters.
    #[schema(value_type = String)]
    pub sha256: crate::domain::digest::Digest,
}

/// The most documents one grounds or one answer lists.
pub const MAX_EVIDENCE: usize = 20;

/// Reads a list of evidence of at most [`MAX_EVIDENCE`] documents.
pub fn bounded_evidence<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Evidence>, D::Error> {
    let list = Vec::<Evidence>::deserialize(d)?;
    if list.len() > MAX_EVIDENCE {
        return Err(serde::de::Error::invalid_length(
            list.len(),
            &"at most 20 documents",
        ));
    }
    Ok(list)
}

/// Why the child may qualify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Grounds {
    #[serde(default)]
    pub father_situation: Option<ParentSituation>,
    #[serde(default)]
    pub mother_situation: Option<ParentSituation>,
    #[schema(value_type = String)]
    pub summary: Text<2000, true>,
    /// At most [`MAX_EVIDENCE`] documents.
    #[serde(default, deserialize_with = "bounded_evidence")]
    #[schema(max_items = 20)]
    pub evidence: Vec<Evidence>,
}

/// Officers handling the case on each side (references, not names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Officers {
    #[schema(value_type = String)]
    pub requester: Text<64>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub decider: Option<Text<64>>,
}

/// One step of the case's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    #[schema(value_type = Object)]
    pub transition: Transition,
    #[schema(value_type = String)]
    pub by: NodeId,
    pub at: DateTime<Utc>,
    /// Officer reference of the person who made it.
    #[serde(default)]
    pub officer: Option<String>,
}

/// A case as every version holds it: the request, and its history so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseBody {
    #[schema(value_type = String)]
    pub case_id: uuid::Uuid,
    #[schema(value_type = String)]
    pub child_id: IdNumber,
    pub benefit: Benefit,
    #[schema(value_type = String)]
    pub requester: NodeId,
    #[schema(value_type = String)]
    pub decider: NodeId,
    /// The child's residence region (requesting side).
    #[schema(value_type = String)]
    pub requesting_region: RegionCode,
    /// The child's current hukou region (deciding side) — from the file, not the ID number.
    #[schema(value_type = String)]
    pub deciding_region: RegionCode,
    pub grounds: Grounds,
    pub officers: Officers,
    #[schema(value_type = String)]
    pub state: CaseState,
    /// Invariant: `state` is the result of applying these steps in order (after merging
    /// concurrent branches, see [`merge_heads`]).
    pub history: Vec<Step>,
}

/// Why a case version is not a legal next step.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("{0} is not the requester or the decider of this case")]
    NotParty(NodeId),
    #[error("a version must add exactly one step to the history")]
    NotOneStep,
    #[error("the step is recorded as made by {recorded}, but the version is authored by {author}")]
    WrongAuthor { recorded: NodeId, author: NodeId },
    #[error("{0} cannot change after submission")]
    Immutable(&'static str),
    #[error("the recorded state {recorded} is not the result of the step ({expected})")]
    WrongState {
        recorded: CaseState,
        expected: CaseState,
    },
}

impl StepError {
    /// Stable code for problem responses and receipts.
    pub fn code(&self) -> &'static str {
        match self {
            StepError::Transition(t) => t.code(),
            StepError::NotParty(_) => "not_party",
            StepError::NotOneStep
            | StepError::WrongAuthor { .. }
            | StepError::WrongState { .. } => "illegal_transition",
            StepError::Immutable(_) => "immutable_field",
        }
    }
}

impl CaseBody {
    /// The party a node is in this case (requester first when one node is both).
    pub fn party_of(&self, node: &NodeId, wanted: Option<Party>) -> Option<Party> {
        let is_req = &self.requester == node;
        let is_dec = &self.decider == node;
        match wanted {
            Some(Party::Requester) if is_req => Some(Party::Requester),
            Some(Party::Decider) if is_dec => Some(Party::Decider),
            Some(_) => None,
            None if is_req => Some(Party::Requester),
            None if is_dec => Some(Party::Decider),
            None => None,
        }
    }

    /// When the request was submitted (the first step).
    pub fn submitted_at(&self) -> Option<DateTime<Utc>> {
        self.history.first().map(|s| s.at)
    }

    /// The next body: `step` applied by `author`.
    pub fn next(&self, step: Step) -> Result<CaseBody, StepError> {
        // The node's party for this action if it holds it, else its other party (so the state
        // machine answers "wrong party" rather than "not a party").
        let party = self
            .party_of(&step.by, Some(state::party_of(&step.transition)))
            .or_else(|| self.party_of(&step.by, None))
            .ok_or_else(|| StepError::NotParty(step.by.clone()))?;
        let state = state::apply(Some(self.state), party, &step.transition)?;
        let mut next = self.clone();
        next.state = state;
        next.history.push(step);
        Ok(next)
    }

    /// A new case: the submission.
    pub fn submit(
        mut self,
        by: NodeId,
        at: DateTime<Utc>,
        officer: Option<String>,
    ) -> Result<CaseBody, StepError> {
        state::apply(None, Party::Requester, &Transition::Submit)?;
        if by != self.requester {
            return Err(StepError::NotParty(by));
        }
        self.state = CaseState::Submitted;
        self.history = vec![Step {
            transition: Transition::Submit,
            by,
            at,
            officer,
        }];
        Ok(self)
    }
}

/// Checks that `next` (authored by `author`) is `parent` plus exactly one legal step by its
/// party, or — with no parent — a well-formed submission by the requester.
pub fn check_step(
    parent: Option<&CaseBody>,
    next: &CaseBody,
    author: &NodeId,
) -> Result<(), StepError> {
    let Some(parent) = parent else {
        if next.history.len() != 1 {
            return Err(StepError::NotOneStep);
        }
        let expected = next.clone().submit(
            author.clone(),
            next.history[0].at,
            next.history[0].officer.clone(),
        )?;
        if &expected != next {
            return Err(StepError::WrongState {
                recorded: next.state,
                expected: expected.state,
            });
        }
        return Ok(());
    };
    if next.history.len() != parent.history.len() + 1
        || next.history[..parent.history.len()] != parent.history[..]
    {
        return Err(StepError::NotOneStep);
    }
    let step = next.history[parent.history.len()].clone();
    if &step.by != author {
        return Err(StepError::WrongAuthor {
            recorded: step.by,
            author: author.clone(),
        });
    }
    let expected = parent.next(step)?;
    for (same, what) in [
        (expected.case_id == next.case_id, "case_id"),
        (expected.child_id == next.child_id, "child_id"),
        (expected.benefit == next.benefit, "benefit"),
        (
            expected.requester == next.requester && expected.decider == next.decider,
            "the parties",
        ),
        (
            expected.requesting_region == next.requesting_region
                && expected.deciding_region == next.deciding_region,
            "the regions",
        ),
        (expected.grounds == next.grounds, "grounds"),
    ] {
        if !same {
            return Err(StepError::Immutable(what));
        }
    }
    if expected.state != next.state {
        return Err(StepError::WrongState {
            recorded: next.state,
            expected: expected.state,
        });
    }
    Ok(())
}

/// One head of a case for merging: its body, stamp, and author.
#[derive(Debug, Clone)]
pub struct Head {
    pub body: CaseBody,
    pub hlc: i64,
    pub author: NodeId,
}

/// The view of a case with several heads (concurrent transitions): the histories' union in
/// time order, and the state by the fixed precedence of [`state::merge_concurrent`] from the
/// state after their common prefix. Independent of the order of `heads`.
pub fn merge_heads(heads: &[Head]) -> Option<CaseBody> {
    let mut sorted: Vec<&Head> = heads.iter().collect();
    sorted.sort_by(|a, b| (a.hlc, a.author.as_str()).cmp(&(b.hlc, b.author.as_str())));
    let first = sorted.first()?;
    if sorted.len() == 1 {
        return Some(first.body.clone());
    }
    // Common prefix of every history.
    let mut common = first.body.history.len();
    for h in &sorted[1..] {
        common = common.min(
            first
                .body
                .history
                .iter()
                .zip(&h.body.history)
                .take_while(|(a, b)| a == b)
                .count(),
        );
    }
    let mut base = None;
    for s in &first.body.history[..common] {
        let party = state::party_of(&s.transition);
        base = state::apply(base, party, &s.transition).ok().or(base);
    }
    let base = base.unwrap_or(CaseState::Submitted);
    let branches: Vec<Branch> = sorted
        .iter()
        .map(|h| Branch {
            state: h.body.state,
            last: h.body.history.last().map(|s| s.transition.clone()),
            hlc: h.hlc,
            author_is_decider: h.author == h.body.decider,
        })
        .collect();
    let mut merged = first.body.clone();
    merged.state = state::merge_concurrent(base, &branches);
    let mut history: Vec<Step> = first.body.history[..common].to_vec();
    let mut rest: Vec<Step> = sorted
        .iter()
        .flat_map(|h| h.body.history[common..].to_vec())
        .collect();
    rest.sort_by(|a, b| (a.at, a.by.as_str()).cmp(&(b.at, b.by.as_str())));
    rest.dedup();
    history.extend(rest);
    merged.history = history;
    Some(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn body() -> CaseBody {
        let id = IdNumber::generate(
            &RegionCode::parse("510104").unwrap(),
            chrono::NaiveDate::from_ymd_opt(2015, 1, 1).unwrap(),
            3,
        );
        CaseBody {
            case_id: uuid::Uuid::now_v7(),
            child_id: id,
            benefit: Benefit::Dibao,
            requester: NodeId::parse("410100").unwrap(),
            decider: NodeId::parse("510100").unwrap(),
            requesting_region: RegionCode::parse("410105").unwrap(),
            deciding_region: RegionCode::parse("510104").unwrap(),
            grounds: Grounds {
                father_situation: None,
                mother_situation: None,
                summary: Text::parse("父母双方外出务工，家庭收入低").unwrap(),
                evidence: vec![],
            },
            officers: Officers {
                requester: Text::parse("ZZ-017").unwrap(),
                decider: None,
            },
            state: CaseState::Submitted,
            history: vec![],
        }
    }

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_790_000_000 + s, 0).unwrap()
    }

    #[test]
    fn steps_are_checked() {
        let req = NodeId::parse("410100").unwrap();
        let dec = NodeId::parse("510100").unwrap();
        let submitted = body().submit(req.clone(), t(0), None).unwrap();
        check_step(None, &submitted, &req).unwrap();
        assert!(check_step(None, &submitted, &dec).is_err());
        let received = submitted
            .next(Step {
                transition: Transition::Receive,
                by: dec.clone(),
                at: t(1),
                officer: None,
            })
            .unwrap();
        check_step(Some(&submitted), &received, &dec).unwrap();
        // The requester may not decide.
        let approve = Transition::Approve {
            effective_month: "2026-12".parse().unwrap(),
            review_on: None,
        };
        let e = received
            .next(Step {
                transition: approve.clone(),
                by: req.clone(),
                at: t(2),
                officer: None,
            })
            .unwrap_err();
        assert_eq!(e.code(), "wrong_party");
        let stranger = NodeId::parse("440300").unwrap();
        let e = received
            .next(Step {
                transition: approve,
                by: stranger,
                at: t(2),
                officer: None,
            })
            .unwrap_err();
        assert_eq!(e.code(), "not_party");
        // Forged state.
        let mut forged = received.clone();
        forged.state = CaseState::Approved;
        assert_eq!(
            check_step(Some(&submitted), &forged, &dec)
                .unwrap_err()
                .code(),
            "illegal_transition"
        );
        // Changed grounds.
        let mut changed = submitted
            .next(Step {
                transition: Transition::Receive,
                by: dec.clone(),
                at: t(1),
                officer: None,
            })
            .unwrap();
        changed.benefit = Benefit::Tekun;
        assert_eq!(
            check_step(Some(&submitted), &changed, &dec)
                .unwrap_err()
                .code(),
            "immutable_field"
        );
    }

    #[test]
    fn concurrent_withdrawal_and_approval_merge_alike() {
        let req = NodeId::parse("410100").unwrap();
        let dec = NodeId::parse("510100").unwrap();
        let received = body()
            .submit(req.clone(), t(0), None)
            .unwrap()
            .next(Step {
                transition: Transition::Receive,
                by: dec.clone(),
                at: t(1),
                officer: None,
            })
            .unwrap();
        let approved = received
            .next(Step {
                transition: Transition::Approve {
                    effective_month: "2026-12".parse().unwrap(),
                    review_on: None,
                },
                by: dec.clone(),
                at: t(5),
                officer: None,
            })
            .unwrap();
        let withdrawn = received
            .next(Step {
                transition: Transition::Withdraw { reason: None },
                by: req.clone(),
                at: t(5),
                officer: None,
            })
            .unwrap();
        let a = Head {
            body: approved,
            hlc: 10,
            author: dec,
        };
        let w = Head {
            body: withdrawn,
            hlc: 11,
            author: req,
        };
        let one = merge_heads(&[a.clone(), w.clone()]).unwrap();
        let two = merge_heads(&[w, a]).unwrap();
        assert_eq!(one, two);
        assert_eq!(one.state, CaseState::Approved);
        assert_eq!(one.history.len(), 4);
    }
}
