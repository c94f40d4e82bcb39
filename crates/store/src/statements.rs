//! Statements both SQL paths run: sqlx's (`sql`, SQLite and PostgreSQL) and the SQLite
//! refresh path without sqlx's hand-offs (`sqlite_direct`). One text, one meaning.

pub const FIND_REFRESH_TOKEN: &str = "SELECT r.family_id, f.server, r.client_id, r.scope, r.expires_at, \
     r.superseded_at, f.status AS family_status, f.upstream_sealed, f.upstream_expires_at \
     FROM refresh_tokens r JOIN families f ON f.id = r.family_id WHERE r.token_hash = $1";

pub const UPSTREAM_CREDENTIAL: &str = "SELECT id AS family_id, upstream_sealed AS sealed, \
     upstream_expires_at AS expires_at, status AS family_status FROM families WHERE id = $1";

/// The first rotation: `judge_refresh(..).rotates()` for a current token, written in
/// SQL. The write comes first, so racing rotations serialise on this row (the SQLite
/// write lock, the PostgreSQL row lock) and exactly one finds it current.
/// $1 token hash, $2 now, $3 client id, $5 the sealed successor, $8 the successor's scope
/// (kept for a replay, whose access token must carry it: see `REPLAYED_SUCCESSOR`).
pub const ROTATE: &str = "UPDATE refresh_tokens SET superseded_at = $2, successor_sealed = $5, successor_scope = $8 \
     WHERE token_hash = $1 AND client_id = $3 AND expires_at > $2 AND superseded_at IS NULL \
     AND EXISTS (SELECT 1 FROM families f WHERE f.id = refresh_tokens.family_id AND f.status = 'active') \
     RETURNING family_id";

/// A replay within the grace window: the successor the first rotation kept. (Read
/// after the failed write: a rotation racing us has committed by now, and this
/// statement sees it.) $1 token hash, $2 now, $3 client id, $4 grace seconds.
///
/// The replay's access token gets `successor_scope`, the scope the first rotation
/// granted: computed anew from the replayed token (and the replay's own `scope`
/// parameter), it would undo a narrowing that rotation made. A token rotated before that
/// column existed has none and is refused rather than answered with a guess (its client
/// holds the successor, or logs in again).
pub const REPLAYED_SUCCESSOR: &str = "SELECT family_id, successor_sealed, successor_scope FROM refresh_tokens \
     WHERE token_hash = $1 AND client_id = $3 AND expires_at > $2 \
     AND superseded_at IS NOT NULL AND superseded_at >= $2 - $4 AND successor_sealed IS NOT NULL \
     AND successor_scope IS NOT NULL \
     AND EXISTS (SELECT 1 FROM families f WHERE f.id = refresh_tokens.family_id AND f.status = 'active')";

/// One token of a pair, into `access_tokens` or `refresh_tokens`.
pub fn insert_token(table: &str) -> String {
    format!(
        "INSERT INTO {table} (token_hash, family_id, client_id, scope, issued_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)"
    )
}
