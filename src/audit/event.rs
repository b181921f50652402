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

impl ActorKind {
    /// The serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::Node => "node",
            ActorKind::Token => "token",
            ActorKind::System => "system",
        }
    }
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

impl Via {
    /// The serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Api => "api",
            Via::Cli => "cli",
            Via::Peer => "peer",
            Via::Ui => "ui",
            Via::Job => "job",
        }
    }
}

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: String,
    pub via: Via,
    /// The children the actor may see and edit: its account's region scope. Not part of the
    /// audit record (the event names the actor; its scope is in `user.add`/`user.scope`); the
    /// whole node for peers, jobs and the console. Services that list or touch children
    /// apply it.
    #[serde(skip)]
    #[schema(ignore)]
    pub scope: crate::domain::Scope,
}

impl Actor {
    /// An operator at this machine's console (the CLI runs with the database's credentials).
    pub fn console() -> Self {
        let user = std::env::var("USER").unwrap_or_else(|_| "operator".into());
        Self {
            kind: ActorKind::System,
            id: format!("console:{user}"),
            via: Via::Cli,
            scope: crate::domain::Scope::whole_node(),
        }
    }

    /// This node's own jobs.
    pub fn job(name: &str) -> Self {
        Self {
            kind: ActorKind::System,
            id: format!("job:{name}"),
            via: Via::Job,
            scope: crate::domain::Scope::whole_node(),
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
    /// RFC 8785 bytes: the Merkle leaf. The same bytes as `jcs::to_canonical_vec(self)`
    /// (tested), written member by member: every event appends one, so it avoids building a
    /// `Value` tree per event.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, jcs::JcsError> {
        let opt = |out: &mut Vec<u8>, v: &Option<String>| match v {
            Some(s) => jcs::write_str(out, s),
            None => out.extend_from_slice(b"null"),
        };
        let mut out = Vec::with_capacity(384);
        // Members in RFC 8785 order: the names are ASCII, so byte order is UTF-16 order.
        out.extend_from_slice(b"{\"action\":");
        jcs::write_str(&mut out, &self.action);
        out.extend_from_slice(b",\"actor\":{\"id\":");
        jcs::write_str(&mut out, &self.actor.id);
        out.extend_from_slice(b",\"kind\":");
        jcs::write_str(&mut out, self.actor.kind.as_str());
        out.extend_from_slice(b",\"via\":");
        jcs::write_str(&mut out, self.actor.via.as_str());
        out.extend_from_slice(b"},\"at\":");
        // chrono's serde form of a UTC time.
        let at = self.at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        jcs::write_str(&mut out, &at);
        out.extend_from_slice(b",\"details_digest\":");
        jcs::write_str(&mut out, &self.details_digest.to_string());
        out.extend_from_slice(b",\"hlc\":");
        jcs::write_str(&mut out, &self.hlc.to_string());
        out.extend_from_slice(b",\"object_id\":");
        opt(&mut out, &self.object_id);
        out.extend_from_slice(b",\"object_kind\":");
        opt(&mut out, &self.object_kind);
        out.extend_from_slice(b",\"outcome\":");
        jcs::write_str(&mut out, self.outcome.as_str());
        out.extend_from_slice(b",\"purpose\":");
        opt(&mut out, &self.purpose);
        out.extend_from_slice(b",\"seq\":");
        jcs::write_member_value(&mut out, &Value::from(self.seq))?;
        out.push(b'}');
        Ok(out)
    }
}

/// Wall time truncated to milliseconds, as stored (both backends keep at least that).
pub fn truncate_ms(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

pub fn naive(t: DateTime<Utc>) -> NaiveDateTime {
    t.naive_utc()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn serde_name<T: Serialize>(v: T) -> String {
        serde_json::to_value(v)
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn enum_names_are_their_serialized_names() {
        for k in [
            ActorKind::User,
            ActorKind::Node,
            ActorKind::Token,
            ActorKind::System,
        ] {
            assert_eq!(k.as_str(), serde_name(k));
        }
        for v in [Via::Api, Via::Cli, Via::Peer, Via::Ui, Via::Job] {
            assert_eq!(v.as_str(), serde_name(v));
        }
        for o in [
            Outcome::Ok,
            Outcome::Denied,
            Outcome::Rejected,
            Outcome::Failed,
        ] {
            assert_eq!(o.as_str(), serde_name(o));
        }
    }

    fn text() -> impl Strategy<Value = String> {
        "[a-z:\"\\\\\n\u{1}é张\u{1F600}]{0,10}"
    }

    proptest! {
        /// The member-by-member leaf is exactly the generic RFC 8785 form, so every stored
        /// leaf hash still verifies.
        #[test]
        fn leaf_bytes_are_the_generic_jcs_bytes(
            seq in 0i64..=(1 << 53),
            wall in 0..=crate::crypto::hlc::MAX_WALL_MS,
            counter in any::<u16>(),
            at_ms in 0i64..=253_402_300_799_999,
            kind in 0usize..4,
            via in 0usize..5,
            outcome in 0usize..4,
            id in text(),
            action in text(),
            object in prop::option::of((text(), text())),
            purpose in prop::option::of(text()),
            digest in any::<[u8; 32]>(),
        ) {
            let leaf = LeafEvent {
                seq,
                hlc: Hlc::new(wall, counter).unwrap(),
                at: DateTime::from_timestamp_millis(at_ms).unwrap(),
                actor: Actor {
                    kind: [ActorKind::User, ActorKind::Node, ActorKind::Token, ActorKind::System][kind],
                    id,
                    via: [Via::Api, Via::Cli, Via::Peer, Via::Ui, Via::Job][via],
                    scope: crate::domain::Scope::whole_node(),
                },
                action,
                object_kind: object.as_ref().map(|o| o.0.clone()),
                object_id: object.map(|o| o.1),
                purpose,
                outcome: [Outcome::Ok, Outcome::Denied, Outcome::Rejected, Outcome::Failed][outcome],
                details_digest: Digest(digest),
            };
            prop_assert_eq!(leaf.canonical_bytes().unwrap(), jcs::to_canonical_vec(&leaf).unwrap());
        }
    }
}
