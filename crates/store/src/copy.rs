//! Moving a proxy's state from one database to another (SQLite to PostgreSQL, when one
//! machine is no longer enough) without logging anyone out: every client, grant, code,
//! token and sealed credential, copied as it is, and every pinned tool definition with its
//! pending change (left behind, the tools would be pinned afresh on the new database, and a
//! change made in between accepted unseen). Token hashes, grant ids and sealed
//! values are copied unchanged, so every token issued before the move works after it.
//!
//! Logins in progress (pending authorizations, ten minutes at most) and refresh leases
//! are not copied: a user in the middle of a login starts it again.

use sqlx::AnyPool;

use crate::StoreError;
use crate::sql::SqlStore;

/// How many rows of each kind were copied.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    pub clients: u64,
    pub grants: u64,
    pub codes: u64,
    pub refresh_tokens: u64,
    pub access_tokens: u64,
    pub tool_pins: u64,
}

const TABLES: [&str; 6] =
    ["clients", "families", "authorization_codes", "refresh_tokens", "access_tokens", "tool_pins"];

/// Copies everything from the database at `from` into the empty one at `to` (migrated
/// first), in one transaction, and checks that both hold as many rows of each kind.
pub async fn copy_all(from: &str, to: &str) -> Result<Copied, StoreError> {
    let source = SqlStore::connect(from).await?;
    let target = SqlStore::connect(to).await?;
    let (src, dst) = (source.pool(), target.pool());
    for table in TABLES {
        if count(dst, table).await? > 0 {
            return Err(StoreError::Internal(format!(
                "the target database is not empty ({table} has rows): migrate into a new database"
            )));
        }
    }
    let mut tx = dst.begin().await?;
    type ClientRow = (String, String, Option<Vec<u8>>, String, i64);
    let clients: Vec<ClientRow> =
        sqlx::query_as("SELECT server, client_id, secret_hash, metadata, created_at FROM clients")
            .fetch_all(src)
            .await?;
    for c in &clients {
        sqlx::query(
            "INSERT INTO clients (server, client_id, secret_hash, metadata, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&c.0)
        .bind(&c.1)
        .bind(c.2.as_deref())
        .bind(&c.3)
        .bind(c.4)
        .execute(&mut *tx)
        .await?;
    }
    type Family =
        (String, String, String, String, String, String, String, String, Option<i64>, i64, Option<i64>, Option<String>);
    let families: Vec<Family> = sqlx::query_as(
        "SELECT id, server, client_id, subject, scope, resource, status, upstream_sealed, upstream_expires_at, \
         created_at, ended_at, trace_id FROM families",
    )
    .fetch_all(src)
    .await?;
    for f in &families {
        sqlx::query(
            "INSERT INTO families (id, server, client_id, subject, scope, resource, status, upstream_sealed, \
             upstream_expires_at, created_at, ended_at, trace_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&f.0)
        .bind(&f.1)
        .bind(&f.2)
        .bind(&f.3)
        .bind(&f.4)
        .bind(&f.5)
        .bind(&f.6)
        .bind(&f.7)
        .bind(f.8)
        .bind(f.9)
        .bind(f.10)
        .bind(f.11.as_deref())
        .execute(&mut *tx)
        .await?;
    }
    type Code = (Vec<u8>, String, String, String, String, i64, Option<i64>);
    let codes: Vec<Code> = sqlx::query_as(
        "SELECT code_hash, family_id, client_id, redirect_uri, code_challenge, expires_at, used_at FROM authorization_codes",
    )
    .fetch_all(src)
    .await?;
    for c in &codes {
        sqlx::query(
            "INSERT INTO authorization_codes (code_hash, family_id, client_id, redirect_uri, code_challenge, expires_at, \
             used_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(c.0.as_slice())
        .bind(&c.1)
        .bind(&c.2)
        .bind(&c.3)
        .bind(&c.4)
        .bind(c.5)
        .bind(c.6)
        .execute(&mut *tx)
        .await?;
    }
    type Refresh = (Vec<u8>, String, String, String, i64, i64, Option<i64>, Option<String>, Option<String>);
    let refresh: Vec<Refresh> = sqlx::query_as(
        "SELECT token_hash, family_id, client_id, scope, issued_at, expires_at, superseded_at, successor_sealed, \
         successor_scope FROM refresh_tokens",
    )
    .fetch_all(src)
    .await?;
    for r in &refresh {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, client_id, scope, issued_at, expires_at, superseded_at, \
             successor_sealed, successor_scope) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(r.0.as_slice())
        .bind(&r.1)
        .bind(&r.2)
        .bind(&r.3)
        .bind(r.4)
        .bind(r.5)
        .bind(r.6)
        .bind(r.7.as_deref())
        .bind(r.8.as_deref())
        .execute(&mut *tx)
        .await?;
    }
    type Access = (Vec<u8>, String, String, String, i64, i64, Option<i64>);
    let access: Vec<Access> = sqlx::query_as(
        "SELECT token_hash, family_id, client_id, scope, issued_at, expires_at, revoked_at FROM access_tokens",
    )
    .fetch_all(src)
    .await?;
    for a in &access {
        sqlx::query(
            "INSERT INTO access_tokens (token_hash, family_id, client_id, scope, issued_at, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(a.0.as_slice())
        .bind(&a.1)
        .bind(&a.2)
        .bind(&a.3)
        .bind(a.4)
        .bind(a.5)
        .bind(a.6)
        .execute(&mut *tx)
        .await?;
    }
    type Pin = (String, String, String, String, i64, Option<String>, Option<String>, Option<i64>);
    let pins: Vec<Pin> = sqlx::query_as(
        "SELECT server, tool, digest, definition, pinned_at, changed_digest, changed_definition, changed_at \
         FROM tool_pins",
    )
    .fetch_all(src)
    .await?;
    for p in &pins {
        sqlx::query(
            "INSERT INTO tool_pins (server, tool, digest, definition, pinned_at, changed_digest, changed_definition, \
             changed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&p.0)
        .bind(&p.1)
        .bind(&p.2)
        .bind(&p.3)
        .bind(p.4)
        .bind(p.5.as_deref())
        .bind(p.6.as_deref())
        .bind(p.7)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    let copied = Copied {
        clients: clients.len() as u64,
        grants: families.len() as u64,
        codes: codes.len() as u64,
        refresh_tokens: refresh.len() as u64,
        access_tokens: access.len() as u64,
        tool_pins: pins.len() as u64,
    };
    let counts =
        [copied.clients, copied.grants, copied.codes, copied.refresh_tokens, copied.access_tokens, copied.tool_pins];
    for (table, n) in TABLES.iter().zip(counts) {
        let (there, here) = (count(src, table).await?, count(dst, table).await?);
        if here != n || there < n {
            return Err(StoreError::Internal(format!("{table}: {n} rows copied, but the target holds {here}")));
        }
    }
    Ok(copied)
}

async fn count(pool: &AnyPool, table: &str) -> Result<u64, StoreError> {
    let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(pool).await?;
    Ok(n.max(0) as u64)
}
