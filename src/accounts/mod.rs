//! Who may use the admin listener, and as what: people (argon2id passwords, browser sessions,
//! lockout after repeated failures) and the bureau's local systems (bearer tokens, hashed at
//! rest, scoped to a role, revocable). Roles map to permissions here and nowhere else; the API
//! and the pages only ask [`Role::allows`]. Logins, failures, lockouts, token use and revocation
//! are audited.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Duration, Utc};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;

use crate::audit::{self, Actor, ActorKind, AuditError, Event, Outcome, Via};
use crate::crypto::hash::Digest;
use crate::crypto::hlc::Hlc;
use crate::storage::accounts::{self as repo, SessionRow, TokenRow, UserRow};
use crate::storage::{self, DbConn, StorageError};

pub use crate::domain::{Role, Scope};

/// One thing a caller may be allowed to do (audited by its snake_case name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Read children's files, the conflict queue and cases.
    ReadChildren,
    /// Create and edit files, create and act on cases.
    EditChildren,
    /// Resolve conflicts (on the owning node).
    ResolveConflicts,
    /// Read audit events, proofs and tree heads.
    ReadAudit,
    /// Peers' status, reconciliation reports, metrics pages.
    ViewOperations,
    /// Sign tree heads, start reconciliation runs.
    Operate,
}

/// What each role may do: the one permission matrix.
impl Role {
    /// The permission matrix (README, "Roles").
    pub fn allows(self, p: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Administrator => true,
            Role::Caseworker => matches!(p, ReadChildren | EditChildren | ViewOperations),
            Role::Reviewer => matches!(
                p,
                ReadChildren | EditChildren | ResolveConflicts | ViewOperations
            ),
            Role::Auditor => matches!(p, ReadAudit | ViewOperations),
        }
    }
}

impl From<crate::domain::UnknownRole> for AccountError {
    fn from(e: crate::domain::UnknownRole) -> Self {
        AccountError::UnknownRole(e.0)
    }
}

/// Errors of account operations.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("unknown role {0:?}: caseworker, reviewer, auditor or administrator")]
    UnknownRole(String),
    #[error("user names are 1 to 64 letters, digits, '.', '_' or '-'")]
    BadUsername,
    #[error("a token name is 1 to 64 letters, digits, '.', '_' or '-'")]
    BadTokenName,
    #[error("passwords are at least 12 and at most 256 characters")]
    WeakPassword,
    #[error("{0} already exists")]
    Exists(String),
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("wrong user name or password")]
    BadCredentials,
    #[error("this account is locked after repeated failed logins; try again after {until}")]
    Locked { until: DateTime<Utc> },
    #[error("this account is disabled")]
    Disabled,
    #[error("the session has ended; log in again")]
    NoSession,
    #[error("the token is unknown or revoked")]
    BadToken,
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error("the system random generator failed")]
    Random,
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Login policy (built from `[admin]` in the settings by `config`).
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// A browser session ends this long after login.
    pub session: Duration,
    /// Consecutive failed logins that lock an account.
    pub max_failures: u32,
    /// How long a locked account stays locked.
    pub lockout: Duration,
}

/// An authenticated caller of the admin listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `user:NAME` or `token:NAME` in the audit trail.
    pub name: String,
    pub kind: ActorKind,
    pub role: Role,
    /// The children it may see and edit (the whole node when empty).
    pub scope: Scope,
    /// The session's CSRF token (browser sessions only).
    pub csrf: Option<String>,
}

impl Principal {
    pub fn actor(&self, via: Via) -> Actor {
        Actor {
            kind: self.kind,
            id: self.name.clone(),
            via,
            scope: self.scope.clone(),
        }
    }

    pub fn allows(&self, p: Permission) -> bool {
        self.role.allows(p)
    }
}

/// A new session: the cookie value (shown once, never stored) and its CSRF token.
#[derive(Debug)]
pub struct NewSession {
    pub cookie: String,
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
    /// The user's role (the pages pick the landing page by it).
    pub role: Role,
}

/// A user as listed (never the hash).
#[derive(Debug, Clone, Serialize)]
pub struct UserInfo {
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub locked_until: Option<DateTime<Utc>>,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    /// The region scope (`*`: the whole node).
    pub scope: String,
}

/// A token as listed (never the secret or its hash).
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    pub name: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// The region scope (`*`: the whole node).
    pub scope: String,
}

/// The browser session cookie's name (HttpOnly, SameSite=Strict; Secure over TLS).
pub const SESSION_COOKIE: &str = "hks_session";

/// Prefix of bearer tokens, so secret scanners and people recognise them.
pub const TOKEN_PREFIX: &str = "hks_";

fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// 256 random bits, base64url: session cookies, CSRF tokens, token secrets.
pub fn random_secret() -> Result<String, AccountError> {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| AccountError::Random)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn secret_hash(secret: &str) -> String {
    Digest::of(secret.as_bytes()).to_string()
}

/// argon2id with the crate's defaults (RFC 9106 / OWASP: m = 19 MiB, t = 2, p = 1).
pub fn hash_password(password: &str) -> Result<String, AccountError> {
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| AccountError::Random)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AccountError::Hashing(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hashing(e.to_string()))
}

fn password_matches(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// An argon2id hash checked when the user does not exist, so a login takes as long for an
/// unknown name as for a wrong password (no user enumeration by timing). Made once per process.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("no such user: a dummy password").unwrap_or_default())
}

fn check_password(password: &str) -> Result<(), AccountError> {
    if !(12..=256).contains(&password.chars().count()) {
        return Err(AccountError::WeakPassword);
    }
    Ok(())
}

fn audit_event(
    conn: &mut DbConn,
    hlc: Hlc,
    now: DateTime<Utc>,
    e: Event,
) -> Result<(), AccountError> {
    audit::append(conn, hlc, now, &e)?;
    Ok(())
}

/// A user to add.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
    pub role: Role,
    pub password: &'a str,
    /// The children the user may see and edit.
    pub scope: &'a Scope,
}

/// Adds a user (the CLI's `admin user add`).
pub fn add_user(
    conn: &mut DbConn,
    hlc: Hlc,
    actor: &Actor,
    user: &NewUser<'_>,
    now: DateTime<Utc>,
) -> Result<(), AccountError> {
    let NewUser {
        username,
        display_name,
        role,
        password,
        scope,
    } = *user;
    if !valid_name(username) {
        return Err(AccountError::BadUsername);
    }
    check_password(password)?;
    let hash = hash_password(password)?;
    storage::transaction(conn, |conn| {
        if repo::get_user(conn, username)?.is_some() {
            return Err(AccountError::Exists(format!("user {username}")));
        }
        repo::insert_user(
            conn,
            &UserRow {
                username: username.to_owned(),
                display_name: display_name.to_owned(),
                role: role.as_str().to_owned(),
                password_hash: hash,
                failed_logins: 0,
                locked_until: None,
                disabled: 0,
                created_at: now.naive_utc(),
                scope: scope.to_string_stored(),
            },
        )?;
        audit_event(
            conn,
            hlc,
            now,
            Event::new(actor.clone(), "user.add", Outcome::Ok)
                .object("user", username)
                .details(serde_json::json!({"role": role.as_str(), "scope": scope.to_string()})),
        )
    })
}

/// Sets a new password, unlocks the account and ends its sessions.
pub fn set_password(
    conn: &mut DbConn,
    hlc: Hlc,
    actor: &Actor,
    username: &str,
    password: &str,
    now: DateTime<Utc>,
) -> Result<(), AccountError> {
    check_password(password)?;
    let hash = hash_password(password)?;
    storage::transaction(conn, |conn| {
        if repo::set_password(conn, username, &hash)? == 0 {
            return Err(AccountError::NotFound("user"));
        }
        repo::set_failures(conn, username, 0, None)?;
        repo::delete_sessions_of(conn, username)?;
        audit_event(
            conn,
            hlc,
            now,
            Event::new(actor.clone(), "user.password", Outcome::Ok).object("user", username),
        )
    })
}

/// Clears a lockout.
pub fn unlock(
    conn: &mut DbConn,
    hlc: Hlc,
    actor: &Actor,
    username: &str,
    now: DateTime<Utc>,
) -> Result<(), AccountError> {
    storage::transaction(conn, |conn| {
        repo::get_user(conn, username)?.ok_or(AccountError::NotFound("user"))?;
        repo::set_failures(conn, username, 0, None)?;
        audit_event(
            conn,
            hlc,
            now,
            Event::new(actor.clone(), "user.unlock", Outcome::Ok).object("user", username),
        )
    })
}

/// Disables or re-enables a user; disabling ends their sessions.
pub fn set_disabled(
    conn: &mut DbConn,
    hlc: Hlc,
    actor: &Actor,
    username: &str,
    disabled: bool,
    now: DateTime<Utc>,
) -> Result<(), AccountError> {
    storage::transaction(conn, |conn| {
        if repo::set_disabled(conn, username, disabled)? == 0 {
            return Err(AccountError::NotFound("user"));
        }
        repo::delete_sessions_of(conn, username)?;
        let action = if disabled {
            "user.disable"
        } else {
            "user.enable"
        };
        audit_event(
            conn,
            hlc,
            now,
            Event::new(actor.clone(), action, Outcome::Ok).object("user", username),
        )
    })
}

/// Sets a user's region scope; ends their sessions so the new scope applies at once.
pub fn set_scope(
    conn: &mut DbConn,
    hlc: Hlc,
    actor: &Actor,
    username: &str,
    scope: &Scope,
    now: DateTime<Utc>,
) -> Result<(), AccountError> {
    storage::transaction(conn, |conn| {
        if repo::set_user_scope(conn, username, &scope.to_string_stored())? == 0 {
            return Err(AccountError::NotFound("user"));
        }
        repo::delete_sessions_of(conn, username)?;
        audit_event(
            conn,
            hlc,
            now,
            Event::new(actor.clone(), "user.scope", Outcome::Ok)
                .object("user", username)
                .details(serde_json::json!({"scope": scope.to_string()})),
        )
    })
}

pub fn list_users(conn: &mut DbConn) -> Result<Vec<UserInfo>, AccountError> {
    Ok(repo::list_users(conn)?
        .into_iter()
        .map(|u| UserInfo {
            username: u.username,
            display_name: u.display_name,
            role: u.role.to_string(),
            locked_until: u.locked_until,
            disabled: u.disabled,
            created_at: u.created_at,
            scope: u.scope.to_string(),
        })
        .collect())
}

/// Checks a user name and password. A success resets the failure count and opens a session; a
/// failure counts towards the lockout. Both are audited, the failure with its reason (never the
/// password). The password is always hashed (a dummy hash for unknown users), and an unknown
/// user, a wrong password, a locked account and a disabled account all answer
/// [`AccountError::BadCredentials`] — whatever the password — so neither timing nor the answer
/// tells whether a name exists, is locked, or whether a guess was right. Wrong passwords during
/// a lock still count: reaching the limit again extends the lock.
pub fn login(
    conn: &mut DbConn,
    hlc: Hlc,
    username: &str,
    password: &str,
    client: &str,
    policy: Policy,
    now: DateTime<Utc>,
) -> Result<NewSession, AccountError> {
    let user = repo::get_user(conn, username)?;
    let ok = password_matches(
        user.as_ref()
            .map_or(dummy_hash(), |u| u.password_hash.as_str()),
        password,
    );
    let actor = Actor {
        kind: ActorKind::User,
        id: format!("user:{username}"),
        via: Via::Ui,
        scope: crate::domain::Scope::whole_node(),
    };
    let fail = |conn: &mut DbConn, reason: &str, err: AccountError| {
        audit_event(
            conn,
            hlc,
            now,
            Event::new(actor.clone(), "user.login", Outcome::Denied)
                .object("user", username)
                .details(serde_json::json!({"reason": reason, "client": client})),
        )?;
        Ok(Err(err))
    };
    // A refusal is a committed outcome (its audit event and failure count must persist), so the
    // transaction returns it inside `Ok`; only storage errors roll back.
    storage::transaction(
        conn,
        |conn| -> Result<Result<NewSession, AccountError>, AccountError> {
            let Some(user) = user else {
                return fail(conn, "unknown_user", AccountError::BadCredentials);
            };
            let locked = user.locked_until.filter(|t| *t > now);
            if !ok {
                let failures = user.failed_logins.saturating_add(1);
                let lock =
                    (failures >= policy.max_failures).then(|| (now + policy.lockout).naive_utc());
                // A lock starts a new count; failures during a lock count too, and reaching the
                // limit again extends it.
                repo::set_failures(
                    conn,
                    username,
                    if lock.is_some() { 0 } else { failures },
                    lock.or(locked.map(|t| t.naive_utc())),
                )?;
                if let Some(until) = lock {
                    audit_event(
                        conn,
                        hlc,
                        now,
                        Event::new(actor.clone(), "user.lockout", Outcome::Denied)
                            .object("user", username)
                            .details(serde_json::json!({"until": until.and_utc()})),
                    )?;
                }
                let reason = if locked.is_some() {
                    "locked"
                } else {
                    "bad_password"
                };
                return fail(conn, reason, AccountError::BadCredentials);
            }
            // The right password of a locked or disabled account gets the wrong password's
            // answer: the caller must not learn that the guess was right.
            if locked.is_some() {
                return fail(conn, "locked", AccountError::BadCredentials);
            }
            if user.disabled {
                return fail(conn, "disabled", AccountError::BadCredentials);
            }
            repo::set_failures(conn, username, 0, None)?;
            repo::delete_expired_sessions(conn, now.naive_utc())?;
            let cookie = random_secret()?;
            let csrf = random_secret()?;
            let expires_at = now + policy.session;
            repo::insert_session(
                conn,
                &SessionRow {
                    id_hash: secret_hash(&cookie),
                    username: username.to_owned(),
                    csrf_token: csrf.clone(),
                    created_at: now.naive_utc(),
                    expires_at: expires_at.naive_utc(),
                },
            )?;
            audit_event(
                conn,
                hlc,
                now,
                Event::new(actor.clone(), "user.login", Outcome::Ok)
                    .object("user", username)
                    .details(serde_json::json!({"client": client})),
            )?;
            Ok(Ok(NewSession {
                cookie,
                csrf,
                expires_at,
                role: user.role,
            }))
        },
    )?
}

/// Failed logins per client address in a sliding window, in memory and bounded: at most
/// `max` timestamps per address and [`ClientLimiter::MAX_CLIENTS`] addresses (past that, expired
/// entries are dropped, then the address whose latest failure is oldest). Counts failures only,
/// whatever user names they tried; a success does not reset the count.
pub struct ClientLimiter {
    max: usize,
    window: std::time::Duration,
    failures: std::sync::Mutex<
        std::collections::HashMap<std::net::IpAddr, std::collections::VecDeque<std::time::Instant>>,
    >,
}

impl ClientLimiter {
    /// Addresses remembered at most.
    pub const MAX_CLIENTS: usize = 10_000;

    pub fn new(max: u32, window: std::time::Duration) -> Self {
        Self {
            max: usize::try_from(max.max(1)).unwrap_or(usize::MAX),
            window,
            failures: Default::default(),
        }
    }

    fn map(
        &self,
    ) -> std::sync::MutexGuard<
        '_,
        std::collections::HashMap<std::net::IpAddr, std::collections::VecDeque<std::time::Instant>>,
    > {
        // The map holds only counters; one left by a panicking holder is still usable.
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Err(wait)` when `client` has used up its failures in the window.
    pub fn check(
        &self,
        client: std::net::IpAddr,
        now: std::time::Instant,
    ) -> Result<(), std::time::Duration> {
        let mut map = self.map();
        let Some(q) = map.get_mut(&client) else {
            return Ok(());
        };
        while q
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
        {
            q.pop_front();
        }
        match q.front() {
            Some(first) if q.len() >= self.max => Err(self
                .window
                .saturating_sub(now.saturating_duration_since(*first))),
            _ => Ok(()),
        }
    }

    /// Records a failed login of `client`.
    pub fn failed(&self, client: std::net::IpAddr, now: std::time::Instant) {
        let mut map = self.map();
        if !map.contains_key(&client) && map.len() >= Self::MAX_CLIENTS {
            let window = self.window;
            map.retain(|_, q| {
                q.back()
                    .is_some_and(|t| now.saturating_duration_since(*t) < window)
            });
            if map.len() >= Self::MAX_CLIENTS {
                let oldest = map
                    .iter()
                    .min_by_key(|(_, q)| q.back().copied())
                    .map(|(ip, _)| *ip);
                if let Some(ip) = oldest {
                    map.remove(&ip);
                }
            }
        }
        let q = map.entry(client).or_default();
        q.push_back(now);
        while q.len() > self.max {
            q.pop_front();
        }
    }

    /// Addresses currently remembered.
    pub fn clients(&self) -> usize {
        self.map().len()
    }
}

/// The user of a live session cookie.
pub fn session(
    conn: &mut DbConn,
    cookie: &str,
    now: DateTime<Utc>,
) -> Result<Principal, AccountError> {
    let (session, user) = repo::session_with_user(conn, &secret_hash(cookie), now.naive_utc())?
        .ok_or(AccountError::NoSession)?;
    if user.disabled {
        return Err(AccountError::Disabled);
    }
    Ok(Principal {
        name: format!("user:{}", user.username),
        kind: ActorKind::User,
        role: user.role,
        scope: user.scope,
        csrf: Some(session.csrf_token),
    })
}

/// Ends a session (logout).
pub fn logout(
    conn: &mut DbConn,
    hlc: Hlc,
    cookie: &str,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<(), AccountError> {
    storage::transaction(conn, |conn| {
        if repo::delete_session(conn, &secret_hash(cookie))? > 0 {
            audit_event(
                conn,
                hlc,
                now,
                Event::new(actor.clone(), "user.logout", Outcome::Ok),
            )?;
        }
        Ok(())
    })
}

/// Whether a submitted CSRF token is the session's (constant time).
pub fn csrf_matches(principal: &Principal, submitted: &str) -> bool {
    match &principal.csrf {
        Some(expected) => constant_time_eq(expected.as_bytes(), submitted.as_bytes()),
        None => false,
    }
}

/// Compares two secrets in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Creates a bearer token; returns its secret, shown once.
pub fn create_token(
    conn: &mut DbConn,
    hlc: Hlc,
    actor: &Actor,
    name: &str,
    role: Role,
    scope: &Scope,
    now: DateTime<Utc>,
) -> Result<String, AccountError> {
    if !valid_name(name) {
        return Err(AccountError::BadTokenName);
    }
    let secret = format!("{TOKEN_PREFIX}{}", random_secret()?);
    storage::transaction(conn, |conn| {
        if repo::get_token(conn, name)?.is_some() {
            return Err(AccountError::Exists(format!("token {name}")));
        }
        repo::insert_token(
            conn,
            &TokenRow {
                name: name.to_owned(),
                token_hash: secret_hash(&secret),
                role: role.as_str().to_owned(),
                created_at: now.naive_utc(),
                revoked_at: None,
                last_used_at: None,
                scope: scope.to_string_stored(),
            },
        )?;
        audit_event(
            conn,
            hlc,
            now,
            Event::new(actor.clone(), "token.create", Outcome::Ok)
                .object("token", name)
                .details(serde_json::json!({"role": role.as_str(), "scope": scope.to_string()})),
        )
    })?;
    Ok(secret)
}

/// Revokes a token at once: the next request with it is refused.
pub fn revoke_token(
    conn: &mut DbConn,
    hlc: Hlc,
    actor: &Actor,
    name: &str,
    now: DateTime<Utc>,
) -> Result<(), AccountError> {
    storage::transaction(conn, |conn| {
        if repo::revoke_token(conn, name, now.naive_utc())? == 0 {
            return Err(AccountError::NotFound("unrevoked token"));
        }
        audit_event(
            conn,
            hlc,
            now,
            Event::new(actor.clone(), "token.revoke", Outcome::Ok).object("token", name),
        )
    })
}

pub fn list_tokens(conn: &mut DbConn) -> Result<Vec<TokenInfo>, AccountError> {
    Ok(repo::list_tokens(conn)?
        .into_iter()
        .map(|t| TokenInfo {
            name: t.name,
            role: t.role.to_string(),
            created_at: t.created_at,
            revoked_at: t.revoked_at,
            last_used_at: t.last_used_at,
            scope: t.scope.to_string(),
        })
        .collect())
}

/// The system behind a bearer token. Records when a token was last used (at most once a minute,
/// to keep reads from writing on every request).
pub fn bearer(
    conn: &mut DbConn,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<Principal, AccountError> {
    if !secret.starts_with(TOKEN_PREFIX) {
        return Err(AccountError::BadToken);
    }
    let t = repo::token_by_hash(conn, &secret_hash(secret))?.ok_or(AccountError::BadToken)?;
    if t.revoked_at.is_some() {
        return Err(AccountError::BadToken);
    }
    let stale = t
        .last_used_at
        .map_or(true, |u| now - u > Duration::minutes(1));
    if stale {
        repo::touch_token(conn, &t.name, now.naive_utc())?;
    }
    Ok(Principal {
        name: format!("token:{}", t.name),
        kind: ActorKind::Token,
        role: t.role,
        scope: t.scope,
        csrf: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_permission_matrix_is_as_documented() {
        use Permission::*;
        assert!(Role::Caseworker.allows(EditChildren));
        assert!(!Role::Caseworker.allows(ResolveConflicts));
        assert!(Role::Reviewer.allows(ResolveConflicts));
        assert!(!Role::Auditor.allows(ReadChildren));
        assert!(Role::Auditor.allows(ReadAudit));
        assert!(!Role::Reviewer.allows(Operate));
        assert!(Role::Administrator.allows(Operate));
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert!(password_matches(&h, "correct horse battery"));
        assert!(!password_matches(&h, "correct horse battery!"));
        assert!(!password_matches("not a hash", "x"));
        // The dummy hash parses, so unknown users cost a full verification.
        assert!(PasswordHash::new(dummy_hash()).is_ok());
    }

    #[test]
    fn names_and_passwords_are_checked() {
        assert!(valid_name("li.wei-01"));
        assert!(!valid_name(""));
        assert!(!valid_name("李伟"));
        assert!(!valid_name("a b"));
        assert!(check_password("short").is_err());
        assert!(check_password("twelve chars").is_ok());
    }

    #[test]
    fn the_client_limiter_slides_and_stays_bounded() {
        use std::net::{IpAddr, Ipv4Addr};
        use std::time::{Duration as D, Instant};
        let l = ClientLimiter::new(3, D::from_secs(60));
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(l.check(a, t0 + D::from_secs(i)).is_ok());
            l.failed(a, t0 + D::from_secs(i));
        }
        let wait = l.check(a, t0 + D::from_secs(10)).unwrap_err();
        assert_eq!(wait, D::from_secs(50));
        // Another address is not affected; the first slides free after the window.
        assert!(l.check(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), t0).is_ok());
        assert!(l.check(a, t0 + D::from_secs(61)).is_ok());
        // Bounded: many addresses never hold more than MAX_CLIENTS entries.
        for i in 0..(ClientLimiter::MAX_CLIENTS as u32 + 50) {
            l.failed(IpAddr::V4(Ipv4Addr::from(i)), t0 + D::from_secs(1));
        }
        assert!(l.clients() <= ClientLimiter::MAX_CLIENTS);
    }
}
