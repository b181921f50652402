//! Repositories of people and machine clients: users, browser sessions and API tokens. Rows go
//! in as [`UserRow`], [`SessionRow`] and [`TokenRow`]; they come out typed ([`User`], [`Session`],
//! [`Token`]: the role, UTC times, counts and flags), and a stored value that does not parse is
//! [`StorageError::Corrupt`]. The rules (hashing, lockout, permissions, expiry) are decided by
//! `accounts`.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::{api_tokens, sessions, users};
use super::{DbConn, StorageError};
use crate::domain::{Role, Scope};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub username: String,
    pub display_name: String,
    pub role: String,
    /// argon2id PHC string; never leaves the `accounts` module.
    pub password_hash: String,
    /// Consecutive failed logins since the last success.
    pub failed_logins: i64,
    pub locked_until: Option<NaiveDateTime>,
    /// 1 when the account may not log in.
    pub disabled: i64,
    pub created_at: NaiveDateTime,
    /// `domain::Scope`'s text form; '' is the whole node.
    pub scope: String,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    /// SHA-256 (hex) of the cookie's secret.
    pub id_hash: String,
    pub username: String,
    pub csrf_token: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_tokens)]
pub struct TokenRow {
    pub name: String,
    /// SHA-256 (hex) of the secret.
    pub token_hash: String,
    pub role: String,
    pub created_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
    pub last_used_at: Option<NaiveDateTime>,
    /// `domain::Scope`'s text form; '' is the whole node.
    pub scope: String,
}

/// A user as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    /// argon2id PHC string; never leaves the `accounts` module.
    pub password_hash: String,
    /// Consecutive failed logins since the last success.
    pub failed_logins: u32,
    pub locked_until: Option<DateTime<Utc>>,
    /// The account may not log in.
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    /// The children the user may see and edit.
    pub scope: Scope,
}

impl TryFrom<UserRow> for User {
    type Error = StorageError;

    fn try_from(r: UserRow) -> Result<Self, StorageError> {
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            StorageError::corrupt("users", format!("user {:?}: {what}: {e}", r.username))
        };
        Ok(User {
            role: r.role.parse().map_err(|e| bad("role", &e))?,
            failed_logins: u32::try_from(r.failed_logins).map_err(|e| bad("failed logins", &e))?,
            locked_until: r.locked_until.map(|t| t.and_utc()),
            disabled: r.disabled != 0,
            created_at: r.created_at.and_utc(),
            scope: r.scope.parse().map_err(|e| bad("scope", &e))?,
            username: r.username,
            display_name: r.display_name,
            password_hash: r.password_hash,
        })
    }
}

/// A browser session as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// SHA-256 (hex) of the cookie's secret.
    pub id_hash: String,
    pub username: String,
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl From<SessionRow> for Session {
    fn from(r: SessionRow) -> Self {
        Session {
            id_hash: r.id_hash,
            username: r.username,
            csrf_token: r.csrf_token,
            created_at: r.created_at.and_utc(),
            expires_at: r.expires_at.and_utc(),
        }
    }
}

/// An API token as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub name: String,
    /// SHA-256 (hex) of the secret.
    pub token_hash: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// The children the token may see and edit.
    pub scope: Scope,
}

impl TryFrom<TokenRow> for Token {
    type Error = StorageError;

    fn try_from(r: TokenRow) -> Result<Self, StorageError> {
        Ok(Token {
            role: r.role.parse().map_err(|e| {
                StorageError::corrupt("api_tokens", format!("token {:?}: role: {e}", r.name))
            })?,
            scope: r.scope.parse().map_err(|e| {
                StorageError::corrupt("api_tokens", format!("token {:?}: scope: {e}", r.name))
            })?,
            created_at: r.created_at.and_utc(),
            revoked_at: r.revoked_at.map(|t| t.and_utc()),
            last_used_at: r.last_used_at.map(|t| t.and_utc()),
            name: r.name,
            token_hash: r.token_hash,
        })
    }
}

pub fn insert_user(conn: &mut DbConn, row: &UserRow) -> Result<(), StorageError> {
    diesel::insert_into(users::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn get_user(conn: &mut DbConn, username: &str) -> Result<Option<User>, StorageError> {
    let row: Option<UserRow> = users::table
        .find(username)
        .select(UserRow::as_select())
        .first(conn)
        .optional()?;
    row.map(User::try_from).transpose()
}

pub fn list_users(conn: &mut DbConn) -> Result<Vec<User>, StorageError> {
    users::table
        .order(users::username.asc())
        .select(UserRow::as_select())
        .load::<UserRow>(conn)?
        .into_iter()
        .map(User::try_from)
        .collect()
}

/// Records a failed login: the new failure count, and a lock when it is set.
pub fn set_failures(
    conn: &mut DbConn,
    username: &str,
    failed: u32,
    locked_until: Option<NaiveDateTime>,
) -> Result<(), StorageError> {
    diesel::update(users::table.find(username))
        .set((
            users::failed_logins.eq(i64::from(failed)),
            users::locked_until.eq(locked_until),
        ))
        .execute(conn)?;
    Ok(())
}

/// Sets a user's scope (its text form); the number of users changed.
pub fn set_user_scope(
    conn: &mut DbConn,
    username: &str,
    scope: &str,
) -> Result<usize, StorageError> {
    diesel::update(users::table.find(username))
        .set(users::scope.eq(scope))
        .execute(conn)
        .map_err(StorageError::from)
}

pub fn set_password(conn: &mut DbConn, username: &str, hash: &str) -> Result<usize, StorageError> {
    diesel::update(users::table.find(username))
        .set(users::password_hash.eq(hash))
        .execute(conn)
        .map_err(StorageError::from)
}

pub fn set_disabled(
    conn: &mut DbConn,
    username: &str,
    disabled: bool,
) -> Result<usize, StorageError> {
    diesel::update(users::table.find(username))
        .set(users::disabled.eq(i64::from(disabled)))
        .execute(conn)
        .map_err(StorageError::from)
}

pub fn insert_session(conn: &mut DbConn, row: &SessionRow) -> Result<(), StorageError> {
    diesel::insert_into(sessions::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// A live session and its user.
pub fn session_with_user(
    conn: &mut DbConn,
    id_hash: &str,
    now: NaiveDateTime,
) -> Result<Option<(Session, User)>, StorageError> {
    let found: Option<(SessionRow, UserRow)> = sessions::table
        .inner_join(users::table)
        .filter(sessions::id_hash.eq(id_hash))
        .filter(sessions::expires_at.gt(now))
        .select((SessionRow::as_select(), UserRow::as_select()))
        .first(conn)
        .optional()?;
    found
        .map(|(s, u)| Ok((Session::from(s), User::try_from(u)?)))
        .transpose()
}

pub fn delete_session(conn: &mut DbConn, id_hash: &str) -> Result<usize, StorageError> {
    diesel::delete(sessions::table.find(id_hash))
        .execute(conn)
        .map_err(StorageError::from)
}

/// Ends every session of a user (password change, disabling) and expired ones of anybody.
pub fn delete_sessions_of(conn: &mut DbConn, username: &str) -> Result<usize, StorageError> {
    diesel::delete(sessions::table.filter(sessions::username.eq(username)))
        .execute(conn)
        .map_err(StorageError::from)
}

pub fn delete_expired_sessions(
    conn: &mut DbConn,
    now: NaiveDateTime,
) -> Result<usize, StorageError> {
    diesel::delete(sessions::table.filter(sessions::expires_at.le(now)))
        .execute(conn)
        .map_err(StorageError::from)
}

pub fn insert_token(conn: &mut DbConn, row: &TokenRow) -> Result<(), StorageError> {
    diesel::insert_into(api_tokens::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn get_token(conn: &mut DbConn, name: &str) -> Result<Option<Token>, StorageError> {
    let row: Option<TokenRow> = api_tokens::table
        .find(name)
        .select(TokenRow::as_select())
        .first(conn)
        .optional()?;
    row.map(Token::try_from).transpose()
}

pub fn token_by_hash(conn: &mut DbConn, hash: &str) -> Result<Option<Token>, StorageError> {
    let row: Option<TokenRow> = api_tokens::table
        .filter(api_tokens::token_hash.eq(hash))
        .select(TokenRow::as_select())
        .first(conn)
        .optional()?;
    row.map(Token::try_from).transpose()
}

pub fn list_tokens(conn: &mut DbConn) -> Result<Vec<Token>, StorageError> {
    api_tokens::table
        .order(api_tokens::name.asc())
        .select(TokenRow::as_select())
        .load::<TokenRow>(conn)?
        .into_iter()
        .map(Token::try_from)
        .collect()
}

pub fn revoke_token(
    conn: &mut DbConn,
    name: &str,
    at: NaiveDateTime,
) -> Result<usize, StorageError> {
    diesel::update(
        api_tokens::table
            .find(name)
            .filter(api_tokens::revoked_at.is_null()),
    )
    .set(api_tokens::revoked_at.eq(Some(at)))
    .execute(conn)
    .map_err(StorageError::from)
}

pub fn touch_token(conn: &mut DbConn, name: &str, at: NaiveDateTime) -> Result<(), StorageError> {
    diesel::update(api_tokens::table.find(name))
        .set(api_tokens::last_used_at.eq(Some(at)))
        .execute(conn)?;
    Ok(())
}
