//! API bearer tokens: name, role, who created it and when, last use, expiry, revocation.
//! Only a token's hash is stored; the store never sees a token itself, so it cannot log one.

use diesel::prelude::*;

use super::schema::api_tokens;
use super::{DbError, Store};

/// What a token may do. Ordered: every role may do what the roles below it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Every GET, secrets redacted.
    Reader,
    /// Nodes (enlist, delete, allocate, release) and settings.
    Operator,
    /// License keys, preseed edits, tokens, the audit log, secrets in rendered preseeds.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Reader, Role::Operator, Role::Admin];

    /// The role as stored and as the API names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(role: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == role)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token to store: its hash, never the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewToken<'a> {
    pub name: &'a str,
    pub role: Role,
    /// Lower-case hex SHA-256 of the token string.
    pub token_hash: &'a str,
    /// The name of the token that created it, or `regiond` for one made on the command line.
    pub created_by: &'a str,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
}

/// A stored token, without its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created_by: String,
    pub created_at_ms: i64,
    pub last_used_ms: Option<i64>,
    pub expires_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

impl TokenRecord {
    /// Whether the token authenticates at `now_ms`: not revoked and not expired.
    pub fn is_live_at(&self, now_ms: i64) -> bool {
        self.revoked_at_ms.is_none() && !matches!(self.expires_at_ms, Some(at) if now_ms >= at)
    }
}

/// A [`TokenRow`]'s columns, in order (`RETURNING` needs them spelled out on both backends).
const TOKEN_COLUMNS: (
    api_tokens::id,
    api_tokens::name,
    api_tokens::role,
    api_tokens::created_by,
    api_tokens::created_at_ms,
    api_tokens::last_used_ms,
    api_tokens::expires_at_ms,
    api_tokens::revoked_at_ms,
) = (
    api_tokens::id,
    api_tokens::name,
    api_tokens::role,
    api_tokens::created_by,
    api_tokens::created_at_ms,
    api_tokens::last_used_ms,
    api_tokens::expires_at_ms,
    api_tokens::revoked_at_ms,
);

#[derive(Queryable, Selectable)]
#[diesel(table_name = api_tokens)]
struct TokenRow {
    id: i64,
    name: String,
    role: String,
    created_by: String,
    created_at_ms: i64,
    last_used_ms: Option<i64>,
    expires_at_ms: Option<i64>,
    revoked_at_ms: Option<i64>,
}

impl TokenRow {
    fn into_record(self) -> Result<TokenRecord, DbError> {
        let role = Role::parse(&self.role).ok_or_else(|| DbError::Corrupt {
            what: "api token",
            key: self.name.clone(),
            detail: format!("unknown role {:?}", self.role),
        })?;
        Ok(TokenRecord {
            id: self.id,
            name: self.name,
            role,
            created_by: self.created_by,
            created_at_ms: self.created_at_ms,
            last_used_ms: self.last_used_ms,
            expires_at_ms: self.expires_at_ms,
            revoked_at_ms: self.revoked_at_ms,
        })
    }
}

impl Store {
    /// Stores a token. `Conflict` when a live (unrevoked) token already has the name.
    pub fn create_token(&self, token: &NewToken) -> Result<TokenRecord, DbError> {
        let conn = &mut *self.conn()?;
        let row: TokenRow = diesel::insert_into(api_tokens::table)
            .values((
                api_tokens::name.eq(token.name),
                api_tokens::role.eq(token.role.as_str()),
                api_tokens::token_hash.eq(token.token_hash),
                api_tokens::created_by.eq(token.created_by),
                api_tokens::created_at_ms.eq(token.created_at_ms),
                api_tokens::expires_at_ms.eq(token.expires_at_ms),
            ))
            .returning(TOKEN_COLUMNS)
            .get_result(conn)
            .map_err(DbError::on_write(
                "api token",
                token.name,
                ("api token", token.name.to_owned()),
            ))?;
        row.into_record()
    }

    /// The token whose hash is `token_hash`, revoked or expired ones included (the caller
    /// decides with [`TokenRecord::is_live_at`]).
    pub fn token_by_hash(&self, token_hash: &str) -> Result<Option<TokenRecord>, DbError> {
        let conn = &mut *self.conn()?;
        api_tokens::table
            .filter(api_tokens::token_hash.eq(token_hash))
            .select(TokenRow::as_select())
            .first(conn)
            .optional()?
            .map(TokenRow::into_record)
            .transpose()
    }

    /// Records a use of token `id` at `now_ms`.
    pub fn touch_token(&self, id: i64, now_ms: i64) -> Result<(), DbError> {
        let conn = &mut *self.conn()?;
        diesel::update(api_tokens::table.find(id))
            .set(api_tokens::last_used_ms.eq(now_ms))
            .execute(conn)?;
        Ok(())
    }

    /// Every token, revoked ones too, sorted by id.
    pub fn list_tokens(&self) -> Result<Vec<TokenRecord>, DbError> {
        let conn = &mut *self.conn()?;
        api_tokens::table
            .order(api_tokens::id)
            .select(TokenRow::as_select())
            .load(conn)?
            .into_iter()
            .map(TokenRow::into_record)
            .collect()
    }

    /// Revokes the live token named `name` at `now_ms`; it authenticates nothing from then on.
    /// `NotFound` when no live token has the name.
    pub fn revoke_token(&self, name: &str, now_ms: i64) -> Result<TokenRecord, DbError> {
        let conn = &mut *self.conn()?;
        let row: Option<TokenRow> = diesel::update(
            api_tokens::table
                .filter(api_tokens::name.eq(name))
                .filter(api_tokens::revoked_at_ms.is_null()),
        )
        .set(api_tokens::revoked_at_ms.eq(now_ms))
        .returning(TOKEN_COLUMNS)
        .get_result(conn)
        .optional()?;
        row.ok_or_else(|| DbError::NotFound {
            what: "api token",
            key: name.to_owned(),
        })?
        .into_record()
    }
}
