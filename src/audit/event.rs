//! Audit events: who did what to which object, why, with what outcome; and their canonical bytes.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::crypto::hash::Digest;
use crate::crypto::hlc::Hlc;
use crate::crypto::jcs;

/// What kind of party acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A person with an account.
    User,
    /// A peer node, identified by its verified client certificate.
    Node,
    /// A local system with a bearer token.
    Token,
    /// This node itself (jobs, start-up) or an operator at the console.
    System,
}

/// Through which interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    Api,
    Cli,
    Peer,
    Ui,
    Job,
}

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: String,
    pub via: Via,
}

impl Actor {
    /// An operator at this machine's console (the CLI runs with the database's credentials).
    pub fn console() -> Self {
        let user = std::env::var("USER").unwrap_or_else(|_| "operator".into());
        Self {
            kind: ActorKind::System,
            id: format!("console:{user}"),
            via: Via::Cli,
        }
    }

    /// This node's own jobs.
    pub fn job(name: &str) -> Self {
        Self {
            kind: ActorKind::System,
            id: format!("job:{name}"),
            via: Via::Job,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Denied,
    Rejected,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Rejected => "rejected",
            Outcome::Failed => "failed",
        }
    }
}

/// An event before it is sequenced.
#[derive(Debug, Clone)]
pub struct Event {
    pub actor: Actor,
    /// Dotted name such as `child.read`; stable, documented in the README.
    pub action: &'static str,
    pub object: Option<(String, String)>,
    pub purpose: Option<String>,
    pub outcome: Outcome,
    pub details: Value,
}

impl Event {
    pub fn new(actor: Actor, action: &'static str, outcome: Outcome) -> Self {
        Self {
            actor,
            action,
            object: None,
            purpose: None,
            outcome,
            details: Value::Object(Default::default()),
        }
    }

    pub fn object(mut self, kind: &str, id: &str) -> Self {
        self.object = Some((kind.to_owned(), id.to_owned()));
        self
    }

    pub fn purpose(mut self, purpose: Option<&str>) -> Self {
        self.purpose = purpose.map(str::to_owned);
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

/// The committed form of a sequenced event: exactly what its Merkle leaf covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeafEvent {
    pub seq: i64,
    pub hlc: Hlc,
    /// Wall time, UTC, millisecond precision.
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub action: String,
    pub object_kind: Option<String>,
    pub object_id: Option<String>,
    pub purpose: Option<String>,
    pub outcome: Outcome,
    pub details_digest: Digest,
}

impl LeafEvent {
    /// RFC 8785 bytes: the Merkle leaf.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, jcs::JcsError> {
        jcs::to_canonical_vec(self)
    }
}

/// Wall time truncated to milliseconds, as stored (both backends keep at least that).
pub fn truncate_ms(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

pub fn naive(t: DateTime<Utc>) -> NaiveDateTime {
    t.naive_utc()
}
