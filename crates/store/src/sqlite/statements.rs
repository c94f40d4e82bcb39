//! Every statement the SQLite store runs, in SQLite's dialect: `?n` parameters (bound by
//! position), `RETURNING`, and the database's clock as `strftime`. Column names are
//! aliased to what `decode` reads. PostgreSQL's texts are in `postgres::statements`: the
//! meaning is the same, the behaviour suite holds both to it.

/// The database's clock in epoch seconds, for what replicas (or processes) with drifting
/// clocks share: leases, and revocation stamps.
macro_rules! db_now {
    () => {
        "CAST(strftime('%s', 'now') AS INTEGER)"
    };
}

pub const PING: &str = "SELECT 1";

pub const INSERT_CLIENT: &str =
    "INSERT INTO clients (server, client_id, secret_hash, metadata, created_at) VALUES (?1, ?2, ?3, ?4, ?5)";

pub const FIND_CLIENT: &str =
    "SELECT client_id, secret_hash, metadata, created_at FROM clients WHERE server = ?1 AND client_id = ?2";

pub const LIST_CLIENTS: &str =
    "SELECT server, client_id, secret_hash, metadata, created_at FROM clients ORDER BY created_at DESC, client_id";

/// One statement: the counts and the insert cannot be told apart by another writer.
/// ?1.. ?12 the row, ?13 now, ?14 per-browser cap, ?15 trace id, ?16 address,
/// ?17 per-address cap, ?18 the broker step.
pub const INSERT_PENDING: &str = "INSERT INTO pending_authorizations (state_hash, browser_hash, server, client_id, \
     redirect_uri, scope, resource, code_challenge, client_state, upstream_verifier, nonce, expires_at, trace_id, address, broker) \
     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?15, ?16, ?18 \
     WHERE (SELECT COUNT(*) FROM pending_authorizations WHERE browser_hash = ?2 AND expires_at > ?13) < ?14 \
     AND (SELECT COUNT(*) FROM pending_authorizations WHERE address = ?16 AND expires_at > ?13) < ?17";

pub const TAKE_PENDING: &str = "DELETE FROM pending_authorizations WHERE state_hash = ?1 AND browser_hash = ?2 AND expires_at > ?3 \
     RETURNING state_hash, browser_hash, server, client_id, redirect_uri, scope, resource, code_challenge, \
     client_state, upstream_verifier, nonce, expires_at, trace_id, address, broker";

pub const INSERT_FAMILY: &str = "INSERT INTO families (id, server, client_id, subject, scope, resource, status, \
     upstream_sealed, upstream_expires_at, created_at, trace_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'active', ?7, ?8, ?9, ?10)";

pub const INSERT_CODE: &str = "INSERT INTO authorization_codes (code_hash, family_id, client_id, redirect_uri, \
     code_challenge, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

pub const FIND_CODE: &str = "SELECT c.family_id, f.server, c.client_id, c.redirect_uri, c.code_challenge, f.scope, \
     c.expires_at, c.used_at, f.trace_id FROM authorization_codes c JOIN families f ON f.id = c.family_id \
     WHERE c.code_hash = ?1";

/// The first statement of a redemption: the write comes first, so two redemptions
/// serialise on the write lock and exactly one sees `used_at IS NULL`. ?1 hash, ?2 now.
pub const REDEEM_CODE: &str = "UPDATE authorization_codes SET used_at = ?2 \
     WHERE code_hash = ?1 AND used_at IS NULL AND expires_at > ?2 \
     AND EXISTS (SELECT 1 FROM families f WHERE f.id = authorization_codes.family_id AND f.status = 'active') \
     RETURNING family_id";

/// One token of a pair: ?1 hash, ?2 family id, ?3 client id, ?4 scope, ?5 issued at,
/// ?6 expiry.
pub const INSERT_ACCESS_TOKEN: &str = "INSERT INTO access_tokens (token_hash, family_id, client_id, scope, issued_at, \
     expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
pub const INSERT_REFRESH_TOKEN: &str = "INSERT INTO refresh_tokens (token_hash, family_id, client_id, scope, issued_at, \
     expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

pub const FIND_REFRESH_TOKEN: &str = "SELECT r.family_id, f.server, r.client_id, r.scope, r.expires_at, \
     r.superseded_at, f.status AS family_status, f.upstream_sealed, f.upstream_expires_at \
     FROM refresh_tokens r JOIN families f ON f.id = r.family_id WHERE r.token_hash = ?1";

/// The first rotation: `judge_refresh(..).rotates()` for a current token, written in
/// SQL. The write comes first, so racing rotations serialise on the write lock and
/// exactly one finds it current. ?1 token hash, ?2 now, ?3 client id, ?4 the sealed
/// successor, ?5 the successor's scope (kept for a replay, whose access token must carry
/// it: see `REPLAYED_SUCCESSOR`).
pub const ROTATE: &str = "UPDATE refresh_tokens SET superseded_at = ?2, successor_sealed = ?4, successor_scope = ?5 \
     WHERE token_hash = ?1 AND client_id = ?3 AND expires_at > ?2 AND superseded_at IS NULL \
     AND EXISTS (SELECT 1 FROM families f WHERE f.id = refresh_tokens.family_id AND f.status = 'active') \
     RETURNING family_id";

/// A replay within the grace window: the successor the first rotation kept. ?1 token
/// hash, ?2 now, ?3 client id, ?4 grace seconds.
///
/// The replay's access token gets `successor_scope`, the scope the first rotation
/// granted: computed anew from the replayed token (and the replay's own `scope`
/// parameter), it would undo a narrowing that rotation made. A token rotated before that
/// column existed has none and is refused rather than answered with a guess (its client
/// holds the successor, or logs in again).
pub const REPLAYED_SUCCESSOR: &str = "SELECT family_id, successor_sealed, successor_scope FROM refresh_tokens \
     WHERE token_hash = ?1 AND client_id = ?3 AND expires_at > ?2 \
     AND superseded_at IS NOT NULL AND superseded_at >= ?2 - ?4 AND successor_sealed IS NOT NULL \
     AND successor_scope IS NOT NULL \
     AND EXISTS (SELECT 1 FROM families f WHERE f.id = refresh_tokens.family_id AND f.status = 'active')";

/// ?1 family id, ?2 status, ?3 now.
pub const END_FAMILY: &str = concat!(
    "UPDATE families SET status = ?2, ended_at = ?3, ended_db_at = ",
    db_now!(),
    " WHERE id = ?1 AND status = 'active'"
);

pub const FIND_ACCESS_TOKEN: &str = "SELECT a.family_id, f.server, a.client_id, f.subject, a.scope, f.resource, \
     a.expires_at, a.revoked_at, f.status AS family_status, f.upstream_sealed AS sealed, f.upstream_expires_at, \
     f.trace_id FROM access_tokens a JOIN families f ON f.id = a.family_id WHERE a.token_hash = ?1";

/// ?1 hash, ?2 now.
pub const REVOKE_ACCESS_TOKEN: &str = concat!(
    "UPDATE access_tokens SET revoked_at = ?2, revoked_db_at = ",
    db_now!(),
    " WHERE token_hash = ?1 AND revoked_at IS NULL"
);

pub const UPSTREAM_CREDENTIAL: &str = "SELECT id AS family_id, upstream_sealed AS sealed, \
     upstream_expires_at AS expires_at, status AS family_status FROM families WHERE id = ?1";

/// ?1 family id, ?2 lease seconds, ?3 holder.
pub const TAKE_REFRESH_LEASE: &str = concat!(
    "UPDATE families SET refresh_lease_until = ",
    db_now!(),
    " + ?2, refresh_lease_holder = ?3 WHERE id = ?1 AND status = 'active' \
     AND (refresh_lease_until IS NULL OR refresh_lease_until <= ",
    db_now!(),
    ")"
);

/// ?1 family id, ?2 holder, ?3 sealed, ?4 expiry.
pub const STORE_UPSTREAM_CREDENTIAL: &str = "UPDATE families SET upstream_sealed = ?3, upstream_expires_at = ?4, \
     refresh_lease_until = NULL, refresh_lease_holder = NULL WHERE id = ?1 AND refresh_lease_holder = ?2";

pub const RELEASE_REFRESH_LEASE: &str = "UPDATE families SET refresh_lease_until = NULL, refresh_lease_holder = NULL \
     WHERE id = ?1 AND refresh_lease_holder = ?2";

/// ?1 client id, ?2 now.
pub const REVOKE_CLIENT_GRANTS: &str = concat!(
    "UPDATE families SET status = 'revoked', ended_at = ?2, ended_db_at = ",
    db_now!(),
    " WHERE client_id = ?1 AND status = 'active'"
);

pub const DELETE_CLIENT: &str = "DELETE FROM clients WHERE client_id = ?1";

/// A change another process must learn of (see `Store::changes`).
pub const COUNT_CHANGE: &str = "UPDATE mop_changes SET generation = generation + 1 WHERE id = 1";

pub const CHANGES: &str = "SELECT generation FROM mop_changes WHERE id = 1";

/// ?1 grant id, ?2 subject, ?3 client id, ?4 server (each NULL for any), ?5 limit.
pub const LIST_GRANTS: &str = "SELECT f.id, f.server, f.client_id, f.subject, f.scope, f.created_at, f.upstream_expires_at, \
     f.last_used_at, \
     f.status, (SELECT MAX(a.issued_at) FROM access_tokens a WHERE a.family_id = f.id) AS last_issued_at \
     FROM families f \
     WHERE (?1 IS NULL OR f.id = ?1) AND (?2 IS NULL OR f.subject = ?2) \
     AND (?3 IS NULL OR f.client_id = ?3) AND (?4 IS NULL OR f.server = ?4) \
     ORDER BY f.created_at DESC, f.id LIMIT ?5";

/// ?1..?4 as in `LIST_GRANTS`, ?5 now.
pub const REVOKE_GRANTS: &str = concat!(
    "UPDATE families SET status = 'revoked', ended_at = ?5, ended_db_at = ",
    db_now!(),
    " WHERE status = 'active' \
     AND (?1 IS NULL OR id = ?1) AND (?2 IS NULL OR subject = ?2) \
     AND (?3 IS NULL OR client_id = ?3) AND (?4 IS NULL OR server = ?4)"
);

pub const DB_NOW: &str = concat!("SELECT ", db_now!());
pub const GRANTS_ENDED_SINCE: &str = "SELECT id FROM families WHERE ended_db_at >= ?1";
pub const TOKENS_REVOKED_SINCE: &str = "SELECT token_hash FROM access_tokens WHERE revoked_db_at >= ?1";

/// What `pin_tools` reads first, to leave out what is already recorded.
pub const SETTLED_TOOLS: &str = "SELECT tool, digest, changed_digest FROM tool_pins WHERE server = ?1";

/// Records what one tool's sighting changes, as one conditional statement: pins a tool seen
/// for the first time; records a definition that differs from the pin and from the pending
/// change as the pending change; clears the pending change of a tool seen with its pinned
/// definition again. Anything else (the pin again with nothing pending, the pending change
/// again) writes nothing and returns no row. Racing sightings of one change serialise on the
/// write lock, and the later finds the change already recorded: exactly one statement
/// returns it. Returns the row's `changed_digest`: non-NULL exactly when this statement
/// recorded a change. ?1 server, ?2 tool, ?3 digest, ?4 definition, ?5 now.
pub const PIN_TOOL: &str = "INSERT INTO tool_pins (server, tool, digest, definition, pinned_at) \
     VALUES (?1, ?2, ?3, ?4, ?5) \
     ON CONFLICT (server, tool) DO UPDATE SET \
     changed_digest = CASE WHEN tool_pins.digest = excluded.digest THEN NULL ELSE excluded.digest END, \
     changed_definition = CASE WHEN tool_pins.digest = excluded.digest THEN NULL ELSE excluded.definition END, \
     changed_at = CASE WHEN tool_pins.digest = excluded.digest THEN NULL ELSE excluded.pinned_at END \
     WHERE (tool_pins.digest = excluded.digest AND tool_pins.changed_digest IS NOT NULL) \
     OR (tool_pins.digest <> excluded.digest \
         AND (tool_pins.changed_digest IS NULL OR tool_pins.changed_digest <> excluded.digest)) \
     RETURNING changed_digest";

pub const TOOL_PINS: &str = "SELECT server, tool, digest, definition, pinned_at, changed_digest, changed_definition, \
     changed_at FROM tool_pins WHERE (?1 IS NULL OR server = ?1)";

/// The right-hand sides read the row as it was: the pending change moves into the pin.
/// ?1 server, ?2 tool, ?3 expected digest (NULL for any), ?4 now.
pub const ACCEPT_TOOL_CHANGE: &str = "UPDATE tool_pins SET digest = changed_digest, definition = changed_definition, \
     pinned_at = ?4, changed_digest = NULL, changed_definition = NULL, changed_at = NULL \
     WHERE server = ?1 AND tool = ?2 AND changed_digest IS NOT NULL AND (?3 IS NULL OR changed_digest = ?3)";

/// Sealed values read `v1.<8 hex digits of key id>.<body>`.
pub const SEALED_KEY_USAGE: &str = "SELECT key_id, COUNT(*) AS n FROM ( \
     SELECT SUBSTR(upstream_sealed, 4, 8) AS key_id FROM families \
     UNION ALL SELECT SUBSTR(successor_sealed, 4, 8) FROM refresh_tokens WHERE successor_sealed IS NOT NULL \
     UNION ALL SELECT SUBSTR(secret_sealed, 4, 8) FROM upstream_registrations WHERE secret_sealed IS NOT NULL \
     ) sealed GROUP BY key_id ORDER BY key_id";

/// ?1 current key id, ?2 limit.
pub const FAMILIES_SEALED_WITH_OTHER_KEYS: &str = "SELECT id AS family_id, upstream_sealed AS sealed FROM families \
     WHERE SUBSTR(upstream_sealed, 4, 8) <> ?1 LIMIT ?2";
pub const SUCCESSORS_SEALED_WITH_OTHER_KEYS: &str = "SELECT CAST(NULL AS TEXT) AS family_id, token_hash, \
     successor_sealed AS sealed FROM refresh_tokens \
     WHERE successor_sealed IS NOT NULL AND SUBSTR(successor_sealed, 4, 8) <> ?1 LIMIT ?2";

/// ?1 family id, ?2 as read, ?3 resealed.
pub const RESEAL_FAMILY: &str = "UPDATE families SET upstream_sealed = ?3 WHERE id = ?1 AND upstream_sealed = ?2";
/// ?1 current key id, ?2 limit.
pub const REGISTRATIONS_SEALED_WITH_OTHER_KEYS: &str = "SELECT server, issuer, secret_sealed AS sealed \
     FROM upstream_registrations WHERE secret_sealed IS NOT NULL AND SUBSTR(secret_sealed, 4, 8) <> ?1 LIMIT ?2";
/// ?1 server, ?2 issuer, ?3 as read, ?4 resealed.
pub const RESEAL_REGISTRATION: &str = "UPDATE upstream_registrations SET secret_sealed = ?4 \
     WHERE server = ?1 AND issuer = ?2 AND secret_sealed = ?3";
/// ?1 token hash, ?2 as read, ?3 resealed.
pub const RESEAL_SUCCESSOR: &str =
    "UPDATE refresh_tokens SET successor_sealed = ?3 WHERE token_hash = ?1 AND successor_sealed = ?2";

/// The purge, one statement a kind, each with its cut-off (`Retention::cutoffs`) as ?1: pending logins,
/// codes, access tokens, refresh tokens, sealed successors, families, clients (the order
/// of `Purged`'s fields). A family lives while anything refers to it; it is created
/// together with its code, so there is no moment at which a new family looks orphaned.
pub const PURGE: [&str; 8] = [
    "DELETE FROM pending_authorizations WHERE expires_at <= ?1",
    "DELETE FROM authorization_codes WHERE expires_at <= ?1",
    "DELETE FROM access_tokens WHERE expires_at <= ?1",
    "DELETE FROM refresh_tokens WHERE expires_at <= ?1",
    "UPDATE refresh_tokens SET successor_sealed = NULL, successor_scope = NULL \
     WHERE successor_sealed IS NOT NULL AND superseded_at < ?1",
    "DELETE FROM families WHERE created_at <= ?1 \
     AND NOT EXISTS (SELECT 1 FROM authorization_codes c WHERE c.family_id = families.id) \
     AND NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.family_id = families.id) \
     AND NOT EXISTS (SELECT 1 FROM access_tokens a WHERE a.family_id = families.id)",
    "DELETE FROM clients WHERE created_at <= ?1 \
     AND NOT EXISTS (SELECT 1 FROM families f WHERE f.server = clients.server AND f.client_id = clients.client_id)",
    "DELETE FROM used_assertions WHERE expires_at <= ?1",
];

/// The migrations bookkeeping (see `migrations`).
pub const CREATE_MIGRATIONS_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS mop_schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)";
pub const APPLIED_MIGRATIONS: &str = "SELECT COALESCE(MAX(version), 0) FROM mop_schema_migrations";
pub const RECORD_MIGRATION: &str = "INSERT INTO mop_schema_migrations (version, applied_at) VALUES (?1, ?2)";

/// Brokered OAuth: the registration for (server, issuer), inserted unless one exists, and
/// the one that exists either way (the no-op update makes the conflicting row returned),
/// so that two replicas registering at once both use the first one stored.
pub const INSERT_UPSTREAM_REGISTRATION: &str = "INSERT INTO upstream_registrations \
     (server, issuer, client_id, secret_sealed, created_at) VALUES (?1, ?2, ?3, ?4, ?5) \
     ON CONFLICT (server, issuer) DO UPDATE SET server = excluded.server \
     RETURNING server, issuer, client_id, secret_sealed, created_at";

pub const FIND_UPSTREAM_REGISTRATION: &str = "SELECT server, issuer, client_id, secret_sealed, created_at \
     FROM upstream_registrations WHERE server = ?1 AND issuer = ?2";

/// ?1 family id, ?2 when it was used: forward only.
pub const RECORD_USE: &str =
    "UPDATE families SET last_used_at = ?2 WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)";

/// Remembers an assertion id unless it is already remembered, or its issuer already has
/// the cap of unexpired ones (the table's bound: refused rather than grown). One statement:
/// exactly one of two replicas presenting the same assertion inserts it.
/// 1 issuer, 2 jti hash, 3 expires_at, 4 now, 5 the cap.
pub const USE_ASSERTION: &str = "INSERT INTO used_assertions (issuer, jti_hash, expires_at) \
     SELECT ?1, ?2, ?3 \
     WHERE (SELECT COUNT(*) FROM used_assertions WHERE issuer = ?1 AND expires_at > ?4) < ?5 \
     ON CONFLICT DO NOTHING";

/// Whether an assertion id is remembered (to tell a replay from a full table).
pub const ASSERTION_USED: &str = "SELECT 1 FROM used_assertions WHERE issuer = ?1 AND jti_hash = ?2";
