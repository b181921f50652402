//! The eligibility case state machine of DESIGN.md §5, pure (no I/O, no clock): the states of a
//! case, which party may make which transition from which state, what each transition must carry,
//! and the deterministic merge of concurrent branches of a case's version DAG.
//!
//! A case asks the hukou bureau (the **decider**) to confirm one benefit for one child on behalf
//! of the residence bureau (the **requester**). Every transition is a version authored by exactly
//! one party: the requester submits, provides info and withdraws; the decider receives, requests
//! info, approves and denies.
//!
//! # Transition table
//!
//! | from ↓ / action →  | submit    | receive  | request_info   | provide_info  | approve  | deny   | withdraw  |
//! |--------------------|-----------|----------|----------------|---------------|----------|--------|-----------|
//! | *(no case yet)*    | submitted | –        | –              | –             | –        | –      | –         |
//! | `submitted`        | –         | received | –              | –             | –        | –      | withdrawn |
//! | `received`         | –         | –        | info_requested | –             | approved | denied | withdrawn |
//! | `info_requested`   | –         | –        | –              | info_provided | –        | –      | withdrawn |
//! | `info_provided`    | –         | –        | info_requested | –             | approved | denied | withdrawn |
//! | `approved`, `denied`, `withdrawn` (final) | – | – | – | – | – | – | – |
//!
//! Choices made here, beyond the diagram of §5:
//!
//! - **Withdrawal is allowed from `info_provided`** as well as from `submitted`, `received` and
//!   `info_requested`: after answering, the requester is still waiting for a decision, and
//!   circumstances (the child moved on, the family's income changed) can make the request moot.
//! - **A decision needs the case received** (`received` or `info_provided`): the decider cannot
//!   approve or deny straight from `submitted`, nor while its own question is outstanding
//!   (`info_requested`); it waits for the answer or the requester withdraws.
//!
//! [`apply`] checks in a fixed order, so both nodes report the same error for the same input:
//! the party ([`TransitionError::WrongParty`]), then a final `from` state
//! ([`TransitionError::FromTerminal`]), then the table ([`TransitionError::NotAllowed`]), then the
//! transition's own fields ([`TransitionError::MissingReason`], [`TransitionError::InvalidField`]).
//!
//! # Merging concurrent branches
//!
//! Two nodes may each append a transition to the same head at the same moment; the case's DAG then
//! has several heads. Every node computes the case's state with [`merge_concurrent`] from the
//! heads' common ancestor state and one [`Branch`] per head. The winner is the branch with the
//! greatest key in this precedence table (earlier rows beat later rows; within a row the tie-break
//! columns apply left to right):
//!
//! | rank | branch head state                      | beats                          | ties broken by                                  |
//! |------|----------------------------------------|--------------------------------|-------------------------------------------------|
//! | 1    | `approved` or `denied` (a decision)    | everything below               | highest `hlc`, then `denied` over `approved`    |
//! | 2    | `withdrawn`                            | every non-final state          | — (the result is `withdrawn` either way)        |
//! | 3    | non-final, head authored by the decider| requester's non-final branches | highest `hlc`, then the later state (see below) |
//! | 4    | non-final, head authored by requester  | —                              | highest `hlc`, then the later state             |
//!
//! "Later state" is the declaration order of [`CaseState`]: `submitted` < `received` <
//! `info_requested` < `info_provided` < `approved` < `denied` < `withdrawn`.
//!
//! So a decision beats a concurrent withdrawal (the decider had already decided on a case it had
//! received), a withdrawal beats any concurrent non-final step, and among non-final steps the
//! decider's wins because the decider holds the case. Before ranking, a branch whose state cannot
//! be reached from `base` under the table above is ignored (ingest rejects such versions anyway);
//! with no branch left, or a final `base`, the result is `base`. The key is a total order on the
//! fields that decide the result, so the order of the branches never matters.

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

pub use crate::domain::month::{Month, MonthError};

/// The longest question, answer or reason text, in Unicode characters (not bytes).
pub const MAX_TEXT_CHARS: usize = 2000;

/// Where a case stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseState {
    /// The requester has filed the case; the decider has not acknowledged it.
    Submitted,
    /// The decider has acknowledged the case and is examining it.
    Received,
    /// The decider has asked the requester a question and waits for the answer.
    InfoRequested,
    /// The requester has answered; the case is back with the decider.
    InfoProvided,
    /// Final: the benefit is confirmed from an effective month.
    Approved,
    /// Final: the benefit is refused, with a reason.
    Denied,
    /// Final: the requester has taken the case back.
    Withdrawn,
}

impl CaseState {
    /// Every state, in declaration (merge tie-break) order.
    pub const ALL: [CaseState; 7] = [
        CaseState::Submitted,
        CaseState::Received,
        CaseState::InfoRequested,
        CaseState::InfoProvided,
        CaseState::Approved,
        CaseState::Denied,
        CaseState::Withdrawn,
    ];

    /// True for `approved`, `denied` and `withdrawn`: nothing may follow them.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            CaseState::Approved | CaseState::Denied | CaseState::Withdrawn
        )
    }

    /// True for `approved` and `denied`.
    pub fn is_decision(self) -> bool {
        matches!(self, CaseState::Approved | CaseState::Denied)
    }

    /// The wire name (`"info_requested"`), as serde writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            CaseState::Submitted => "submitted",
            CaseState::Received => "received",
            CaseState::InfoRequested => "info_requested",
            CaseState::InfoProvided => "info_provided",
            CaseState::Approved => "approved",
            CaseState::Denied => "denied",
            CaseState::Withdrawn => "withdrawn",
        }
    }

    /// The label a caseworker sees.
    pub fn label_zh(self) -> &'static str {
        match self {
            CaseState::Submitted => "已提交",
            CaseState::Received => "已接收",
            CaseState::InfoRequested => "待补充材料",
            CaseState::InfoProvided => "已补充材料",
            CaseState::Approved => "已认定",
            CaseState::Denied => "不予认定",
            CaseState::Withdrawn => "已撤回",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for CaseState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The two sides of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Party {
    /// The residence bureau, which sees the child and asks.
    Requester,
    /// The hukou bureau, which decides the benefit.
    Decider,
}

impl Party {
    /// The wire name (`"requester"`, `"decider"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Party::Requester => "requester",
            Party::Decider => "decider",
        }
    }
}

impl fmt::Display for Party {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a case was denied; the wire form is snake_case, [`DenialReason::label_zh`] is for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenialReason {
    /// The household's income is above the local threshold.
    IncomeAboveThreshold,
    /// The child's hukou is not registered with the deciding bureau.
    NotHukouResident,
    /// The supporting documents do not prove eligibility.
    DocumentsInsufficient,
    /// The child does not fall in a category the benefit covers.
    NotEligibleCategory,
    /// The same benefit is already granted or being decided in another case.
    Duplicate,
    /// Anything else; the reason text says what.
    Other,
}

impl DenialReason {
    /// Every reason, in declaration order (for pick lists).
    pub const ALL: [DenialReason; 6] = [
        DenialReason::IncomeAboveThreshold,
        DenialReason::NotHukouResident,
        DenialReason::DocumentsInsufficient,
        DenialReason::NotEligibleCategory,
        DenialReason::Duplicate,
        DenialReason::Other,
    ];

    /// The wire name (`"income_above_threshold"`).
    pub fn as_str(self) -> &'static str {
        match self {
            DenialReason::IncomeAboveThreshold => "income_above_threshold",
            DenialReason::NotHukouResident => "not_hukou_resident",
            DenialReason::DocumentsInsufficient => "documents_insufficient",
            DenialReason::NotEligibleCategory => "not_eligible_category",
            DenialReason::Duplicate => "duplicate",
            DenialReason::Other => "other",
        }
    }

    /// The label a caseworker sees.
    pub fn label_zh(self) -> &'static str {
        match self {
            DenialReason::IncomeAboveThreshold => "家庭收入超过保障标准",
            DenialReason::NotHukouResident => "非本地户籍",
            DenialReason::DocumentsInsufficient => "证明材料不足",
            DenialReason::NotEligibleCategory => "不属于保障对象类别",
            DenialReason::Duplicate => "重复申请",
            DenialReason::Other => "其他原因",
        }
    }
}

impl fmt::Display for DenialReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a transition does, without its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransitionKind {
    /// Requester files the case.
    Submit,
    /// Decider acknowledges it.
    Receive,
    /// Decider asks a question.
    RequestInfo,
    /// Requester answers it.
    ProvideInfo,
    /// Decider confirms the benefit.
    Approve,
    /// Decider refuses it.
    Deny,
    /// Requester takes the case back.
    Withdraw,
}

impl TransitionKind {
    /// Every kind, in declaration order.
    pub const ALL: [TransitionKind; 7] = [
        TransitionKind::Submit,
        TransitionKind::Receive,
        TransitionKind::RequestInfo,
        TransitionKind::ProvideInfo,
        TransitionKind::Approve,
        TransitionKind::Deny,
        TransitionKind::Withdraw,
    ];

    /// The audit log's action for a version making this transition (`case.approve`).
    pub fn audit_action(self) -> &'static str {
        match self {
            TransitionKind::Submit => "case.submit",
            TransitionKind::Receive => "case.receive",
            TransitionKind::RequestInfo => "case.request_info",
            TransitionKind::ProvideInfo => "case.provide_info",
            TransitionKind::Approve => "case.approve",
            TransitionKind::Deny => "case.deny",
            TransitionKind::Withdraw => "case.withdraw",
        }
    }

    /// The one party allowed to make this transition.
    pub fn party(self) -> Party {
        match self {
            TransitionKind::Submit | TransitionKind::ProvideInfo | TransitionKind::Withdraw => {
                Party::Requester
            }
            TransitionKind::Receive
            | TransitionKind::RequestInfo
            | TransitionKind::Approve
            | TransitionKind::Deny => Party::Decider,
        }
    }

    /// The state this transition leads to from `from` (`None`: no case yet), or `None` when the
    /// table in the module doc has no such edge. Ignores who makes it.
    pub fn target(self, from: Option<CaseState>) -> Option<CaseState> {
        use CaseState as S;
        use TransitionKind as K;
        match (from, self) {
            (None, K::Submit) => Some(S::Submitted),
            (Some(S::Submitted), K::Receive) => Some(S::Received),
            (Some(S::Received | S::InfoProvided), K::RequestInfo) => Some(S::InfoRequested),
            (Some(S::InfoRequested), K::ProvideInfo) => Some(S::InfoProvided),
            (Some(S::Received | S::InfoProvided), K::Approve) => Some(S::Approved),
            (Some(S::Received | S::InfoProvided), K::Deny) => Some(S::Denied),
            (
                Some(S::Submitted | S::Received | S::InfoRequested | S::InfoProvided),
                K::Withdraw,
            ) => Some(S::Withdrawn),
            _ => None,
        }
    }

    /// The wire name (`"request_info"`), as the `action` tag of a [`Transition`].
    pub fn as_str(self) -> &'static str {
        match self {
            TransitionKind::Submit => "submit",
            TransitionKind::Receive => "receive",
            TransitionKind::RequestInfo => "request_info",
            TransitionKind::ProvideInfo => "provide_info",
            TransitionKind::Approve => "approve",
            TransitionKind::Deny => "deny",
            TransitionKind::Withdraw => "withdraw",
        }
    }
}

impl fmt::Display for TransitionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step of a case, as carried in the body of a case version.
///
/// JSON: internally tagged by `action`, e.g. `{"action": "approve", "effective_month": "2026-03"}`.
/// Unknown fields are rejected, also on the field-less `submit` and `receive`. Deserializing
/// checks the shape only; [`Transition::validate`] (called by [`apply`]) checks the contents.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", from = "wire::Transition")]
pub enum Transition {
    /// Requester files the case.
    Submit,
    /// Decider acknowledges the case (its deadline runs from here).
    Receive,
    /// Decider asks the requester a question.
    RequestInfo {
        /// 1..=2000 characters, not blank.
        question: String,
    },
    /// Requester answers the outstanding question.
    ProvideInfo {
        /// 1..=2000 characters, not blank.
        answer: String,
        /// Documents the answer adds to the case (as the grounds' evidence: type, issuer, number,
        /// SHA-256 of the file), at most [`super::MAX_EVIDENCE`]; omitted when none.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        evidence: Vec<super::Evidence>,
    },
    /// Decider confirms the benefit.
    Approve {
        /// The first month the benefit is paid for.
        effective_month: Month,
        /// When to review the benefit, if at all; strictly after the effective month starts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        review_on: Option<NaiveDate>,
    },
    /// Decider refuses the benefit.
    Deny {
        /// The coded reason.
        reason_code: DenialReason,
        /// The explanation for the family and the requester: 1..=2000 characters, required.
        reason_text: String,
    },
    /// Requester takes the case back.
    Withdraw {
        /// Why, if said: 1..=2000 characters, not blank; omit the field rather than send "".
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

/// The deserializing twin of [`Transition`]: the field-less variants are empty struct variants
/// here so that `deny_unknown_fields` applies to them too (serde ignores extra keys on unit
/// variants of an internally tagged enum).
mod wire {
    use chrono::NaiveDate;
    use serde::Deserialize;

    use super::{DenialReason, Month};

    #[derive(Deserialize)]
    #[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
    pub(super) enum Transition {
        Submit {},
        Receive {},
        RequestInfo {
            question: String,
        },
        ProvideInfo {
            answer: String,
            #[serde(default, deserialize_with = "super::super::bounded_evidence")]
            evidence: Vec<super::super::Evidence>,
        },
        Approve {
            effective_month: Month,
            #[serde(default)]
            review_on: Option<NaiveDate>,
        },
        Deny {
            reason_code: DenialReason,
            reason_text: String,
        },
        Withdraw {
            #[serde(default)]
            reason: Option<String>,
        },
    }
}

impl From<wire::Transition> for Transition {
    fn from(w: wire::Transition) -> Self {
        match w {
            wire::Transition::Submit {} => Transition::Submit,
            wire::Transition::Receive {} => Transition::Receive,
            wire::Transition::RequestInfo { question } => Transition::RequestInfo { question },
            wire::Transition::ProvideInfo { answer, evidence } => {
                Transition::ProvideInfo { answer, evidence }
            }
            wire::Transition::Approve {
                effective_month,
                review_on,
            } => Transition::Approve {
                effective_month,
                review_on,
            },
            wire::Transition::Deny {
                reason_code,
                reason_text,
            } => Transition::Deny {
                reason_code,
                reason_text,
            },
            wire::Transition::Withdraw { reason } => Transition::Withdraw { reason },
        }
    }
}

impl Transition {
    /// What this transition does, without its fields.
    pub fn kind(&self) -> TransitionKind {
        match self {
            Transition::Submit => TransitionKind::Submit,
            Transition::Receive => TransitionKind::Receive,
            Transition::RequestInfo { .. } => TransitionKind::RequestInfo,
            Transition::ProvideInfo { .. } => TransitionKind::ProvideInfo,
            Transition::Approve { .. } => TransitionKind::Approve,
            Transition::Deny { .. } => TransitionKind::Deny,
            Transition::Withdraw { .. } => TransitionKind::Withdraw,
        }
    }

    /// Checks the transition's own fields, whatever the case's state: texts are 1..=2000
    /// characters, not blank and free of control characters other than newline, carriage return
    /// and tab; a denial has a reason text ([`TransitionError::MissingReason`] when it is blank);
    /// `review_on` falls after the first day of `effective_month`.
    pub fn validate(&self) -> Result<(), TransitionError> {
        match self {
            Transition::Submit | Transition::Receive => Ok(()),
            Transition::RequestInfo { question } => check_text("question", question),
            Transition::ProvideInfo { answer, .. } => check_text("answer", answer),
            Transition::Approve {
                effective_month,
                review_on,
            } => match review_on {
                Some(review) if *review <= effective_month.first_day() => {
                    Err(TransitionError::InvalidField {
                        field: "review_on",
                        reason: format!(
                            "must be after the effective month starts ({}), got {review}",
                            effective_month.first_day()
                        ),
                    })
                }
                _ => Ok(()),
            },
            Transition::Deny { reason_text, .. } => {
                if reason_text.trim().is_empty() {
                    Err(TransitionError::MissingReason)
                } else {
                    check_text("reason_text", reason_text)
                }
            }
            Transition::Withdraw { reason } => match reason {
                Some(reason) => check_text("reason", reason),
                None => Ok(()),
            },
        }
    }
}

fn check_text(field: &'static str, s: &str) -> Result<(), TransitionError> {
    let invalid = |reason: String| TransitionError::InvalidField { field, reason };
    if s.trim().is_empty() {
        return Err(invalid("must not be empty".to_owned()));
    }
    let n = s.chars().count();
    if n > MAX_TEXT_CHARS {
        return Err(invalid(format!(
            "at most {MAX_TEXT_CHARS} characters, got {n}"
        )));
    }
    crate::domain::text::check(s, true).map_err(invalid)
}

/// Why a transition cannot be applied. Each variant has a stable [`TransitionError::code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The transition belongs to the other party.
    #[error("the {party} may not {action}: only the {} may", .action.party())]
    WrongParty {
        /// What was attempted.
        action: TransitionKind,
        /// Who attempted it.
        party: Party,
    },
    /// The case is already approved, denied or withdrawn.
    #[error("the case is {state}, a final state: nothing may follow it")]
    FromTerminal {
        /// The final state.
        state: CaseState,
    },
    /// The table has no such edge (including anything but submit on a case that does not exist,
    /// and submit on one that does).
    #[error("{action} is not allowed from {}", .from.map_or("a case that does not exist", CaseState::as_str))]
    NotAllowed {
        /// What was attempted.
        action: TransitionKind,
        /// The case's state; `None` when there is no case yet.
        from: Option<CaseState>,
    },
    /// A denial without a reason text.
    #[error("a denial needs a reason text")]
    MissingReason,
    /// A field of the transition is malformed.
    #[error("{field}: {reason}")]
    InvalidField {
        /// The wire name of the field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl TransitionError {
    /// The stable machine-readable code for problem+json bodies and receipts.
    pub fn code(&self) -> &'static str {
        match self {
            TransitionError::WrongParty { .. } => "wrong_party",
            TransitionError::FromTerminal { .. } => "terminal_state",
            TransitionError::NotAllowed { .. } => "illegal_transition",
            TransitionError::MissingReason => "missing_reason",
            TransitionError::InvalidField { .. } => "invalid_field",
        }
    }
}

/// The one party allowed to make `t`.
pub fn party_of(t: &Transition) -> Party {
    t.kind().party()
}

/// Validates `t` made by `by` on a case in state `from` and returns the new state. `from` is
/// `None` when the case does not exist yet (only [`Transition::Submit`] is allowed then). The
/// checks run in the order given in the module doc.
pub fn apply(
    from: Option<CaseState>,
    by: Party,
    t: &Transition,
) -> Result<CaseState, TransitionError> {
    let action = t.kind();
    if action.party() != by {
        return Err(TransitionError::WrongParty { action, party: by });
    }
    if let Some(state) = from.filter(|s| s.is_terminal()) {
        return Err(TransitionError::FromTerminal { state });
    }
    let to = action
        .target(from)
        .ok_or(TransitionError::NotAllowed { action, from })?;
    t.validate()?;
    Ok(to)
}

/// The transitions `by` may make on a case in state `from` (`None`: no case yet), in declaration
/// order: what the UI offers as buttons.
pub fn allowed_actions(from: Option<CaseState>, by: Party) -> Vec<TransitionKind> {
    TransitionKind::ALL
        .into_iter()
        .filter(|k| k.party() == by && k.target(from).is_some())
        .collect()
}

/// True when some sequence of zero or more transitions (by either party) leads from `from` to
/// `to`. Every state is reachable from itself.
pub fn is_reachable(from: CaseState, to: CaseState) -> bool {
    let mut seen = [false; CaseState::ALL.len()];
    let mut stack = vec![from];
    seen[from.index()] = true;
    while let Some(s) = stack.pop() {
        if s == to {
            return true;
        }
        for next in TransitionKind::ALL
            .into_iter()
            .filter_map(|k| k.target(Some(s)))
        {
            if !seen[next.index()] {
                seen[next.index()] = true;
                stack.push(next);
            }
        }
    }
    false
}

/// One of several concurrent branches of a case, summarised by its head version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branch {
    /// The case's state at the branch's head.
    pub state: CaseState,
    /// The head's transition (`None` if the branch made none). Informational: the precedence
    /// depends on `state`, `hlc` and `author_is_decider` only.
    pub last: Option<Transition>,
    /// The head version's hybrid logical clock timestamp.
    pub hlc: i64,
    /// Whether the head version was authored by the decider's node.
    pub author_is_decider: bool,
}

impl Branch {
    /// The precedence key of the module doc's table: greater wins.
    fn key(&self) -> (u8, i64, usize) {
        let rank = match self.state {
            s if s.is_decision() => 3,
            CaseState::Withdrawn => 2,
            _ if self.author_is_decider => 1,
            _ => 0,
        };
        (rank, self.hlc, self.state.index())
    }
}

/// The state after concurrent branches from a common ancestor state `base`, by the precedence
/// table in the module doc: a decision beats a concurrent withdrawal; a withdrawal beats
/// concurrent non-final transitions; among non-final states the decider's branch wins, ties by
/// highest hlc then later state. Branches whose state is unreachable from `base` are ignored;
/// a final `base` or no branch left gives `base`. The order of `branches` does not matter.
pub fn merge_concurrent(base: CaseState, branches: &[Branch]) -> CaseState {
    if base.is_terminal() {
        return base;
    }
    branches
        .iter()
        .filter(|b| is_reachable(base, b.state))
        .max_by_key(|b| b.key())
        .map_or(base, |b| b.state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use CaseState as S;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn month(y: i32, m: u32) -> Month {
        Month::new(y, m).unwrap()
    }

    /// A valid transition of each kind.
    fn sample(kind: TransitionKind) -> Transition {
        match kind {
            TransitionKind::Submit => Transition::Submit,
            TransitionKind::Receive => Transition::Receive,
            TransitionKind::RequestInfo => Transition::RequestInfo {
                question: "请补充监护人收入证明".into(),
            },
            TransitionKind::ProvideInfo => Transition::ProvideInfo {
                answer: "已上传收入证明".into(),
                evidence: vec![],
            },
            TransitionKind::Approve => Transition::Approve {
                effective_month: month(2026, 3),
                review_on: Some(d(2026, 9, 1)),
            },
            TransitionKind::Deny => Transition::Deny {
                reason_code: DenialReason::IncomeAboveThreshold,
                reason_text: "家庭人均收入高于当地低保标准".into(),
            },
            TransitionKind::Withdraw => Transition::Withdraw { reason: None },
        }
    }

    fn run(steps: &[TransitionKind]) -> Result<CaseState, TransitionError> {
        let mut state = None;
        for &k in steps {
            state = Some(apply(state, k.party(), &sample(k))?);
        }
        state.ok_or(TransitionError::MissingReason)
    }

    #[test]
    fn happy_paths() {
        use TransitionKind as K;
        assert_eq!(run(&[K::Submit]), Ok(S::Submitted));
        assert_eq!(run(&[K::Submit, K::Receive, K::Approve]), Ok(S::Approved));
        assert_eq!(
            run(&[
                K::Submit,
                K::Receive,
                K::RequestInfo,
                K::ProvideInfo,
                K::RequestInfo,
                K::ProvideInfo,
                K::Deny
            ]),
            Ok(S::Denied)
        );
        for prefix in [
            &[K::Submit][..],
            &[K::Submit, K::Receive],
            &[K::Submit, K::Receive, K::RequestInfo],
            &[K::Submit, K::Receive, K::RequestInfo, K::ProvideInfo],
        ] {
            let mut steps = prefix.to_vec();
            steps.push(K::Withdraw);
            assert_eq!(run(&steps), Ok(S::Withdrawn), "{steps:?}");
        }
    }

    #[test]
    fn table_is_exactly_the_documented_one() {
        use TransitionKind as K;
        let allowed: Vec<(Option<CaseState>, TransitionKind, CaseState)> = vec![
            (None, K::Submit, S::Submitted),
            (Some(S::Submitted), K::Receive, S::Received),
            (Some(S::Submitted), K::Withdraw, S::Withdrawn),
            (Some(S::Received), K::RequestInfo, S::InfoRequested),
            (Some(S::Received), K::Approve, S::Approved),
            (Some(S::Received), K::Deny, S::Denied),
            (Some(S::Received), K::Withdraw, S::Withdrawn),
            (Some(S::InfoRequested), K::ProvideInfo, S::InfoProvided),
            (Some(S::InfoRequested), K::Withdraw, S::Withdrawn),
            (Some(S::InfoProvided), K::RequestInfo, S::InfoRequested),
            (Some(S::InfoProvided), K::Approve, S::Approved),
            (Some(S::InfoProvided), K::Deny, S::Denied),
            (Some(S::InfoProvided), K::Withdraw, S::Withdrawn),
        ];
        let froms = std::iter::once(None).chain(S::ALL.into_iter().map(Some));
        for from in froms {
            for k in TransitionKind::ALL {
                let expected = allowed
                    .iter()
                    .find(|(f, kk, _)| *f == from && *kk == k)
                    .map(|(_, _, to)| *to);
                let got = apply(from, k.party(), &sample(k));
                match expected {
                    Some(to) => assert_eq!(got, Ok(to), "{from:?} {k}"),
                    None => {
                        let code = got.expect_err("not in table").code();
                        let want = if from.is_some_and(CaseState::is_terminal) {
                            "terminal_state"
                        } else {
                            "illegal_transition"
                        };
                        assert_eq!(code, want, "{from:?} {k}");
                    }
                }
            }
        }
    }

    #[test]
    fn wrong_party_is_checked_first() {
        let err = apply(
            Some(S::Approved),
            Party::Requester,
            &sample(TransitionKind::Deny),
        )
        .unwrap_err();
        assert_eq!(
            err,
            TransitionError::WrongParty {
                action: TransitionKind::Deny,
                party: Party::Requester
            }
        );
        assert_eq!(err.code(), "wrong_party");
        assert_eq!(
            err.to_string(),
            "the requester may not deny: only the decider may"
        );
        assert_eq!(
            apply(None, Party::Decider, &Transition::Submit)
                .unwrap_err()
                .code(),
            "wrong_party"
        );
        assert_eq!(party_of(&Transition::Receive), Party::Decider);
        assert_eq!(
            party_of(&Transition::Withdraw { reason: None }),
            Party::Requester
        );
    }

    #[test]
    fn terminal_and_illegal_errors() {
        let err = apply(
            Some(S::Withdrawn),
            Party::Requester,
            &sample(TransitionKind::Withdraw),
        )
        .unwrap_err();
        assert_eq!(err.code(), "terminal_state");
        assert_eq!(
            err.to_string(),
            "the case is withdrawn, a final state: nothing may follow it"
        );
        let err = apply(None, Party::Decider, &Transition::Receive).unwrap_err();
        assert_eq!(
            err,
            TransitionError::NotAllowed {
                action: TransitionKind::Receive,
                from: None
            }
        );
        assert_eq!(err.code(), "illegal_transition");
        assert_eq!(
            err.to_string(),
            "receive is not allowed from a case that does not exist"
        );
        let err = apply(Some(S::Submitted), Party::Requester, &Transition::Submit).unwrap_err();
        assert_eq!(err.to_string(), "submit is not allowed from submitted");
        // The decider cannot decide while its own question is outstanding.
        assert_eq!(
            apply(
                Some(S::InfoRequested),
                Party::Decider,
                &sample(TransitionKind::Approve)
            )
            .unwrap_err()
            .code(),
            "illegal_transition"
        );
    }

    #[test]
    fn field_checks() {
        let deny = |text: &str| Transition::Deny {
            reason_code: DenialReason::Other,
            reason_text: text.into(),
        };
        for blank in ["", "   ", "\n\t"] {
            let err = apply(Some(S::Received), Party::Decider, &deny(blank)).unwrap_err();
            assert_eq!(err, TransitionError::MissingReason);
            assert_eq!(err.code(), "missing_reason");
        }
        // 2000 Chinese characters are fine, 2001 are not: characters, not bytes.
        let max = "字".repeat(MAX_TEXT_CHARS);
        assert_eq!(
            apply(Some(S::Received), Party::Decider, &deny(&max)),
            Ok(S::Denied)
        );
        let err = apply(
            Some(S::Received),
            Party::Decider,
            &deny(&format!("{max}字")),
        )
        .unwrap_err();
        assert_eq!(
            err,
            TransitionError::InvalidField {
                field: "reason_text",
                reason: "at most 2000 characters, got 2001".into()
            }
        );
        assert_eq!(err.code(), "invalid_field");

        let ask = |q: &str| Transition::RequestInfo { question: q.into() };
        assert_eq!(
            apply(Some(S::Received), Party::Decider, &ask("第一行\n第二行\t")),
            Ok(S::InfoRequested)
        );
        for bad in ["", " ", "a\u{0}b", "a\u{1b}[31m"] {
            let err = apply(Some(S::Received), Party::Decider, &ask(bad)).unwrap_err();
            assert!(
                matches!(
                    err,
                    TransitionError::InvalidField {
                        field: "question",
                        ..
                    }
                ),
                "{bad:?}: {err:?}"
            );
        }
        let answer = Transition::ProvideInfo {
            answer: " ".into(),
            evidence: vec![],
        };
        assert!(matches!(
            apply(Some(S::InfoRequested), Party::Requester, &answer),
            Err(TransitionError::InvalidField {
                field: "answer",
                ..
            })
        ));
        let withdraw = |r: Option<&str>| Transition::Withdraw {
            reason: r.map(str::to_owned),
        };
        assert_eq!(
            apply(
                Some(S::Received),
                Party::Requester,
                &withdraw(Some("儿童已返回户籍地"))
            ),
            Ok(S::Withdrawn)
        );
        assert!(matches!(
            apply(Some(S::Received), Party::Requester, &withdraw(Some(""))),
            Err(TransitionError::InvalidField {
                field: "reason",
                ..
            })
        ));
    }

    #[test]
    fn review_on_must_follow_the_effective_month_start() {
        let approve = |review_on| Transition::Approve {
            effective_month: month(2026, 3),
            review_on,
        };
        for ok in [None, Some(d(2026, 3, 2)), Some(d(2026, 9, 1))] {
            assert_eq!(
                apply(Some(S::InfoProvided), Party::Decider, &approve(ok)),
                Ok(S::Approved)
            );
        }
        for bad in [d(2026, 3, 1), d(2026, 2, 28), d(2025, 12, 31)] {
            let err = apply(Some(S::Received), Party::Decider, &approve(Some(bad))).unwrap_err();
            assert!(
                matches!(
                    err,
                    TransitionError::InvalidField {
                        field: "review_on",
                        ..
                    }
                ),
                "{bad}: {err:?}"
            );
        }
    }

    #[test]
    fn month_parses_strictly() {
        assert_eq!("2026-03".parse::<Month>(), Ok(month(2026, 3)));
        assert_eq!(month(2026, 3).to_string(), "2026-03");
        assert_eq!(month(2026, 3).first_day(), d(2026, 3, 1));
        assert_eq!(Month::of(d(2026, 12, 31)), Some(month(2026, 12)));
        for bad in [
            "2026-3",
            "2026-13",
            "2026-00",
            "2026-03-01",
            "26-03",
            " 2026-03",
            "2026/03",
            "+026-03",
            "0000-01",
            "２０２６-03",
            "",
        ] {
            assert!(bad.parse::<Month>().is_err(), "{bad:?}");
        }
        assert_eq!(
            serde_json::to_string(&month(2026, 11)).unwrap(),
            "\"2026-11\""
        );
        assert!(serde_json::from_str::<Month>("\"2026-1\"").is_err());
        assert!(serde_json::from_str::<Month>("202601").is_err());
    }

    #[test]
    fn transition_json_shape() {
        let t = Transition::Approve {
            effective_month: month(2026, 3),
            review_on: Some(d(2026, 9, 1)),
        };
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"action": "approve", "effective_month": "2026-03", "review_on": "2026-09-01"})
        );
        assert_eq!(serde_json::from_value::<Transition>(json).unwrap(), t);

        for k in TransitionKind::ALL {
            let t = sample(k);
            let json = serde_json::to_value(&t).unwrap();
            assert_eq!(json["action"], k.as_str());
            assert_eq!(serde_json::from_value::<Transition>(json).unwrap(), t);
        }
        assert_eq!(
            serde_json::to_string(&Transition::Submit).unwrap(),
            r#"{"action":"submit"}"#
        );
        assert_eq!(
            serde_json::to_string(&Transition::Withdraw { reason: None }).unwrap(),
            r#"{"action":"withdraw"}"#
        );
        let deny: Transition = serde_json::from_str(
            r#"{"action":"deny","reason_code":"not_hukou_resident","reason_text":"户籍不在本区"}"#,
        )
        .unwrap();
        assert_eq!(deny.kind(), TransitionKind::Deny);
        let approve: Transition =
            serde_json::from_str(r#"{"action":"approve","effective_month":"2026-04"}"#).unwrap();
        assert_eq!(
            approve,
            Transition::Approve {
                effective_month: month(2026, 4),
                review_on: None
            }
        );

        for bad in [
            r#"{"action":"submit","child":"x"}"#,
            r#"{"action":"receive","note":"x"}"#,
            r#"{"action":"approve","effective_month":"2026-04","amount":100}"#,
            r#"{"action":"approve","effective_month":"2026-04-01"}"#,
            r#"{"action":"approve"}"#,
            r#"{"action":"deny","reason_code":"too_rich","reason_text":"x"}"#,
            r#"{"action":"deny","reason_code":"other"}"#,
            r#"{"action":"escalate"}"#,
            r#"{"question":"x"}"#,
            r#"{"action":"Submit"}"#,
        ] {
            assert!(serde_json::from_str::<Transition>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn enums_serialize_snake_case_and_have_labels() {
        assert_eq!(
            serde_json::to_string(&S::InfoRequested).unwrap(),
            "\"info_requested\""
        );
        assert_eq!(
            serde_json::to_string(&Party::Decider).unwrap(),
            "\"decider\""
        );
        for r in DenialReason::ALL {
            assert_eq!(
                serde_json::to_string(&r).unwrap(),
                format!("\"{}\"", r.as_str())
            );
            assert!(!r.label_zh().is_empty());
        }
        assert_eq!(DenialReason::NotHukouResident.label_zh(), "非本地户籍");
        for s in S::ALL {
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
            assert_eq!(
                s.is_terminal(),
                matches!(s, S::Approved | S::Denied | S::Withdrawn)
            );
        }
    }

    #[test]
    fn audit_actions_name_the_wire_kind() {
        for k in TransitionKind::ALL {
            assert_eq!(k.audit_action(), format!("case.{}", k.as_str()));
        }
    }

    #[test]
    fn allowed_actions_per_party() {
        use TransitionKind as K;
        assert_eq!(allowed_actions(None, Party::Requester), vec![K::Submit]);
        assert_eq!(allowed_actions(None, Party::Decider), vec![]);
        assert_eq!(
            allowed_actions(Some(S::Received), Party::Decider),
            vec![K::RequestInfo, K::Approve, K::Deny]
        );
        assert_eq!(
            allowed_actions(Some(S::InfoProvided), Party::Requester),
            vec![K::Withdraw]
        );
        assert_eq!(allowed_actions(Some(S::Denied), Party::Decider), vec![]);
    }

    #[test]
    fn reachability() {
        assert!(is_reachable(S::Submitted, S::Denied));
        assert!(is_reachable(S::InfoProvided, S::InfoRequested));
        assert!(is_reachable(S::InfoRequested, S::Approved));
        assert!(!is_reachable(S::Received, S::Submitted));
        assert!(!is_reachable(S::InfoRequested, S::Received));
        assert!(!is_reachable(S::Approved, S::Withdrawn));
        for s in S::ALL {
            assert!(is_reachable(s, s));
        }
    }

    fn branch(state: CaseState, hlc: i64, author_is_decider: bool) -> Branch {
        Branch {
            state,
            last: None,
            hlc,
            author_is_decider,
        }
    }

    #[test]
    fn merge_examples() {
        // Nothing concurrent: the base stands.
        assert_eq!(merge_concurrent(S::Received, &[]), S::Received);
        assert_eq!(
            merge_concurrent(S::Received, &[branch(S::Approved, 5, true)]),
            S::Approved
        );
        // Decision beats a withdrawal, even a later one.
        assert_eq!(
            merge_concurrent(
                S::Received,
                &[branch(S::Withdrawn, 9, false), branch(S::Denied, 1, true)]
            ),
            S::Denied
        );
        // Withdrawal beats the decider's receipt.
        assert_eq!(
            merge_concurrent(
                S::Submitted,
                &[branch(S::Received, 9, true), branch(S::Withdrawn, 1, false)]
            ),
            S::Withdrawn
        );
        // Among non-final states the decider wins, even with an earlier hlc.
        assert_eq!(
            merge_concurrent(
                S::Received,
                &[
                    branch(S::InfoProvided, 9, false),
                    branch(S::InfoRequested, 1, true)
                ]
            ),
            S::InfoRequested
        );
        // Same author side: highest hlc, then the later state.
        assert_eq!(
            merge_concurrent(
                S::Received,
                &[
                    branch(S::InfoRequested, 3, true),
                    branch(S::InfoProvided, 2, true)
                ]
            ),
            S::InfoRequested
        );
        assert_eq!(
            merge_concurrent(
                S::Received,
                &[
                    branch(S::InfoRequested, 3, true),
                    branch(S::InfoProvided, 3, true)
                ]
            ),
            S::InfoProvided
        );
        // Two decisions: highest hlc, then denied over approved.
        assert_eq!(
            merge_concurrent(
                S::Received,
                &[branch(S::Denied, 4, true), branch(S::Approved, 5, true)]
            ),
            S::Approved
        );
        assert_eq!(
            merge_concurrent(
                S::Received,
                &[branch(S::Denied, 5, true), branch(S::Approved, 5, true)]
            ),
            S::Denied
        );
        // Unreachable branches are ignored; a final base stands.
        assert_eq!(
            merge_concurrent(S::InfoRequested, &[branch(S::Submitted, 9, true)]),
            S::InfoRequested
        );
        assert_eq!(
            merge_concurrent(S::Withdrawn, &[branch(S::Approved, 9, true)]),
            S::Withdrawn
        );
    }

    fn any_state() -> impl Strategy<Value = CaseState> {
        prop::sample::select(S::ALL.to_vec())
    }

    fn non_terminal_state() -> impl Strategy<Value = CaseState> {
        prop::sample::select(vec![
            S::Submitted,
            S::Received,
            S::InfoRequested,
            S::InfoProvided,
        ])
    }

    /// Any branch at all, valid or not, with few distinct hlcs so that ties are common.
    fn any_branch() -> impl Strategy<Value = Branch> {
        (
            any_state(),
            prop::option::of(prop::sample::select(TransitionKind::ALL.to_vec())),
            0i64..4,
            any::<bool>(),
        )
            .prop_map(|(state, last, hlc, author_is_decider)| Branch {
                state,
                last: last.map(sample),
                hlc,
                author_is_decider,
            })
    }

    /// A valid branch: a random walk of transitions from `base`, each by its own party, skipping
    /// steps the table refuses.
    fn walk_from(base: CaseState) -> impl Strategy<Value = Branch> {
        (
            prop::collection::vec(prop::sample::select(TransitionKind::ALL.to_vec()), 1..6),
            0i64..4,
        )
            .prop_map(move |(steps, hlc0)| {
                let mut b = Branch {
                    state: base,
                    last: None,
                    hlc: hlc0,
                    author_is_decider: false,
                };
                for (i, k) in steps.into_iter().enumerate() {
                    let t = sample(k);
                    if let Ok(next) = apply(Some(b.state), k.party(), &t) {
                        b.state = next;
                        b.last = Some(t);
                        b.hlc = hlc0 + i as i64;
                        b.author_is_decider = k.party() == Party::Decider;
                    }
                }
                b
            })
    }

    fn base_and_walks() -> impl Strategy<Value = (CaseState, Vec<Branch>)> {
        non_terminal_state()
            .prop_flat_map(|base| (Just(base), prop::collection::vec(walk_from(base), 0..5)))
    }

    proptest! {
        #[test]
        fn merge_ignores_branch_order(
            (base, branches, shuffled) in (any_state(), prop::collection::vec(any_branch(), 0..6))
                .prop_flat_map(|(base, v)| (Just(base), Just(v.clone()), Just(v).prop_shuffle()))
        ) {
            prop_assert_eq!(merge_concurrent(base, &branches), merge_concurrent(base, &shuffled));
            let mut reversed = branches.clone();
            reversed.reverse();
            prop_assert_eq!(merge_concurrent(base, &branches), merge_concurrent(base, &reversed));
        }

        #[test]
        fn valid_walks_merge_by_precedence(
            (base, branches, shuffled) in base_and_walks()
                .prop_flat_map(|(base, v)| (Just(base), Just(v.clone()), Just(v).prop_shuffle()))
        ) {
            let result = merge_concurrent(base, &branches);
            prop_assert_eq!(result, merge_concurrent(base, &shuffled));
            // Always reachable from the base (and so never a step backwards).
            prop_assert!(is_reachable(base, result), "{:?} -> {:?}", base, result);
            // The result is the base or one branch's state.
            prop_assert!(result == base || branches.iter().any(|b| b.state == result));
            let any_decision = branches.iter().any(|b| b.state.is_decision());
            let any_withdrawal = branches.iter().any(|b| b.state == S::Withdrawn);
            if any_decision {
                // A decision always wins, over a withdrawal too.
                prop_assert!(result.is_decision(), "{:?}", branches);
            } else if any_withdrawal {
                prop_assert_eq!(result, S::Withdrawn);
            }
        }

        #[test]
        fn arbitrary_branches_merge_to_a_reachable_state(
            base in any_state(),
            branches in prop::collection::vec(any_branch(), 0..6),
        ) {
            let result = merge_concurrent(base, &branches);
            prop_assert!(is_reachable(base, result));
            let decisions_reachable = branches
                .iter()
                .any(|b| b.state.is_decision() && is_reachable(base, b.state));
            if decisions_reachable && !base.is_terminal() {
                prop_assert!(result.is_decision());
            }
        }

        #[test]
        fn month_round_trips(year in 1i32..=9999, m in 1u32..=12) {
            let month = Month::new(year, m).unwrap();
            let s = month.to_string();
            prop_assert_eq!(s.len(), 7);
            prop_assert_eq!(s.parse::<Month>(), Ok(month));
        }
    }
}
