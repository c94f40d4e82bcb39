//! Moving a proxy's state from SQLite to PostgreSQL (when one machine is no longer
//! enough) without logging anyone out: every client, grant, code, token and sealed
//! credential, copied as it is, and every pinned tool definition with its pending change
//! (left behind, the tools would be pinned afresh on the new database, and a change made
//! in between accepted unseen). Token hashes, grant ids and sealed values are copied
//! unchanged, so every token issued before the move works after it.
//!
//! Logins in progress (pending authorizations, ten minutes at most) and refresh leases
//! are not copied: a user in the middle of a login starts it again.

use rusqlite::types::Value;

use crate::StoreError;
use crate::postgres::PgStore;
use crate::sqlite::SqliteStore;

/// How many rows of each kind were copied.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    pub clients: u64,
    pub grants: u64,
    pub codes: u64,
    pub refresh_tokens: u64,
    pub access_tokens: u64,
    pub tool_pins: u64,
    /// The proxy's registrations at brokered upstreams' authorization servers.
    pub upstream_registrations: u64,
}

/// What a column holds, which PostgreSQL must be told when a value is NULL.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Int,
    Blob,
}

use Kind::{Blob, Int, Text};

/// The tables copied, in an order that satisfies their foreign keys, with the columns
/// copied (not the refresh lease's).
const TABLES: [(&str, &[(&str, Kind)]); 7] = [
    (
        "clients",
        &[("server", Text), ("client_id", Text), ("secret_hash", Blob), ("metadata", Text), ("created_at", Int)],
    ),
    (
        "upstream_registrations",
        &[("server", Text), ("issuer", Text), ("client_id", Text), ("secret_sealed", Text), ("created_at", Int)],
    ),
    (
        "families",
        &[
            ("id", Text),
            ("server", Text),
            ("client_id", Text),
            ("subject", Text),
            ("scope", Text),
            ("resource", Text),
            ("status", Text),
            ("upstream_sealed", Text),
            ("upstream_expires_at", Int),
            ("created_at", Int),
            ("ended_at", Int),
            ("trace_id", Text),
            ("last_used_at", Int),
        ],
    ),
    (
        "authorization_codes",
        &[
            ("code_hash", Blob),
            ("family_id", Text),
            ("client_id", Text),
            ("redirect_uri", Text),
            ("code_challenge", Text),
            ("expires_at", Int),
            ("used_at", Int),
        ],
    ),
    (
        "refresh_tokens",
        &[
            ("token_hash", Blob),
            ("family_id", Text),
            ("client_id", Text),
            ("scope", Text),
            ("issued_at", Int),
            ("expires_at", Int),
            ("superseded_at", Int),
            ("successor_sealed", Text),
            ("successor_scope", Text),
        ],
    ),
    (
        "access_tokens",
        &[
            ("token_hash", Blob),
            ("family_id", Text),
            ("client_id", Text),
            ("scope", Text),
            ("issued_at", Int),
            ("expires_at", Int),
            ("revoked_at", Int),
        ],
    ),
    (
        "tool_pins",
        &[
            ("server", Text),
            ("tool", Text),
            ("digest", Text),
            ("definition", Text),
            ("pinned_at", Int),
            ("changed_digest", Text),
            ("changed_definition", Text),
            ("changed_at", Int),
        ],
    ),
];

/// Copies everything from the SQLite database at `from` into the empty PostgreSQL one at
/// `to` (migrated first), in one transaction, and checks that both hold as many rows of
/// each kind.
pub async fn copy_all(from: &str, to: &str) -> Result<Copied, StoreError> {
    let source = SqliteStore::open(from).await?;
    let target = PgStore::connect(to).await?;
    let dst = target.pool();
    for (table, _) in TABLES {
        if count_target(dst, table).await? > 0 {
            return Err(StoreError::Internal(format!(
                "the target database is not empty ({table} has rows): migrate into a new database"
            )));
        }
    }
    let mut tx = dst.begin().await?;
    let mut counts = [0u64; TABLES.len()];
    for ((table, columns), n) in TABLES.iter().zip(&mut counts) {
        let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
        let select = format!("SELECT {} FROM {table}", names.join(", "));
        let width = columns.len();
        let rows: Vec<Vec<Value>> = source
            .read(move |c| {
                let mut statement = c.prepare(&select)?;
                let rows = statement.query_map([], |r| (0..width).map(|i| r.get::<_, Value>(i)).collect())?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await?;
        let placeholders: Vec<String> = (1..=width).map(|i| format!("${i}")).collect();
        let insert = format!("INSERT INTO {table} ({}) VALUES ({})", names.join(", "), placeholders.join(", "));
        for row in &rows {
            let mut query = sqlx::query(&insert);
            for (value, (name, kind)) in row.iter().zip(columns.iter()) {
                query = match (value, kind) {
                    (Value::Null, Text) => query.bind(None::<String>),
                    (Value::Null, Int) => query.bind(None::<i64>),
                    (Value::Null, Blob) => query.bind(None::<Vec<u8>>),
                    (Value::Text(v), Text) => query.bind(v.as_str()),
                    (Value::Integer(v), Int) => query.bind(*v),
                    (Value::Blob(v), Blob) => query.bind(v.as_slice()),
                    (other, _) => {
                        return Err(StoreError::Internal(format!(
                            "{table}.{name} holds {:?}, not what its column holds",
                            other.data_type()
                        )));
                    }
                };
            }
            query.execute(&mut *tx).await?;
        }
        *n = rows.len() as u64;
    }
    tx.commit().await?;
    for ((table, _), n) in TABLES.iter().zip(counts) {
        let there = source
            .read(move |c| Ok(c.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get::<_, i64>(0))?))
            .await?;
        let here = count_target(dst, table).await?;
        if here != n || (there.max(0) as u64) < n {
            return Err(StoreError::Internal(format!("{table}: {n} rows copied, but the target holds {here}")));
        }
    }
    let [clients, upstream_registrations, grants, codes, refresh_tokens, access_tokens, tool_pins] = counts;
    Ok(Copied { clients, grants, codes, refresh_tokens, access_tokens, tool_pins, upstream_registrations })
}

async fn count_target(pool: &sqlx::PgPool, table: &str) -> Result<u64, StoreError> {
    let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(pool).await?;
    Ok(n.max(0) as u64)
}
