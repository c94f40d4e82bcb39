//! The schema, as an ordered list of migrations applied at start.
//!
//! Written once for both databases: `{blob}` and `{int}` stand for the column types that
//! differ (BLOB/BYTEA, INTEGER/BIGINT). A migration is never edited once released; a
//! change is a new entry at the end.

use crate::Backend;

pub const MIGRATIONS: &[&str] = &[
    // 1: the authorization server.
    r#"
CREATE TABLE clients (
    server       TEXT   NOT NULL,
    client_id    TEXT   NOT NULL,
    secret_hash  {blob},
    metadata     TEXT   NOT NULL,
    created_at   {int}  NOT NULL,
    PRIMARY KEY (server, client_id)
);

CREATE TABLE pending_authorizations (
    state_hash        {blob} PRIMARY KEY,
    browser_hash      {blob} NOT NULL,
    server            TEXT   NOT NULL,
    client_id         TEXT   NOT NULL,
    redirect_uri      TEXT   NOT NULL,
    scope             TEXT   NOT NULL,
    resource          TEXT   NOT NULL,
    code_challenge    TEXT   NOT NULL,
    client_state      TEXT,
    upstream_verifier TEXT   NOT NULL,
    nonce             TEXT,
    expires_at        {int}  NOT NULL
);
CREATE INDEX pending_authorizations_expiry ON pending_authorizations (expires_at);

CREATE TABLE families (
    id                  TEXT  PRIMARY KEY,
    server              TEXT  NOT NULL,
    client_id           TEXT  NOT NULL,
    subject             TEXT  NOT NULL,
    scope               TEXT  NOT NULL,
    resource            TEXT  NOT NULL,
    status              TEXT  NOT NULL,
    upstream_sealed     TEXT  NOT NULL,
    upstream_expires_at {int},
    refresh_lease_until {int},
    created_at          {int} NOT NULL,
    ended_at            {int}
);
CREATE INDEX families_client ON families (server, client_id);

CREATE TABLE authorization_codes (
    code_hash      {blob} PRIMARY KEY,
    family_id      TEXT   NOT NULL REFERENCES families (id) ON DELETE CASCADE,
    client_id      TEXT   NOT NULL,
    redirect_uri   TEXT   NOT NULL,
    code_challenge TEXT   NOT NULL,
    expires_at     {int}  NOT NULL,
    used_at        {int}
);
CREATE INDEX authorization_codes_family ON authorization_codes (family_id);
CREATE INDEX authorization_codes_expiry ON authorization_codes (expires_at);

CREATE TABLE refresh_tokens (
    token_hash    {blob} PRIMARY KEY,
    family_id     TEXT   NOT NULL REFERENCES families (id) ON DELETE CASCADE,
    client_id     TEXT   NOT NULL,
    scope         TEXT   NOT NULL,
    issued_at     {int}  NOT NULL,
    expires_at    {int}  NOT NULL,
    superseded_at {int}
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);

CREATE TABLE access_tokens (
    token_hash {blob} PRIMARY KEY,
    family_id  TEXT   NOT NULL REFERENCES families (id) ON DELETE CASCADE,
    client_id  TEXT   NOT NULL,
    scope      TEXT   NOT NULL,
    issued_at  {int}  NOT NULL,
    expires_at {int}  NOT NULL,
    revoked_at {int}
);
CREATE INDEX access_tokens_family ON access_tokens (family_id);
CREATE INDEX access_tokens_expiry ON access_tokens (expires_at);
"#,
    // 2: exactly-once refresh. A rotated refresh token keeps its successor, sealed, until
    // the grace window closes, so that a replay within it gets the same successor.
    "ALTER TABLE refresh_tokens ADD COLUMN successor_sealed TEXT",
    // 3: the refresh lease names its holder, so only the holder can store its result.
    "ALTER TABLE families ADD COLUMN refresh_lease_holder TEXT",
    // 4: changes made by another process (the admin command line), counted, so that a
    // process that caches lookups (SQLite) learns of them.
    "CREATE TABLE mop_changes (id {int} PRIMARY KEY, generation {int} NOT NULL); \
     INSERT INTO mop_changes (id, generation) VALUES (1, 0)",
    // 5: the trace id of the login attempt, from the authorization request to the grant.
    "ALTER TABLE pending_authorizations ADD COLUMN trace_id TEXT; \
     ALTER TABLE families ADD COLUMN trace_id TEXT",
    // 6: a replay within the grace window issues the scope the first rotation granted
    // (kept beside the sealed successor), not one computed anew from the replayed token.
    // Grants ended and access tokens revoked are stamped on the database's clock, which
    // replicas share, so that each replica can ask what was revoked since its last look
    // and end the event streams it holds open for them; the indexes are partial, so the
    // rows that were never revoked (nearly all) cost them nothing.
    "ALTER TABLE refresh_tokens ADD COLUMN successor_scope TEXT; \
     ALTER TABLE families ADD COLUMN ended_db_at {int}; \
     ALTER TABLE access_tokens ADD COLUMN revoked_db_at {int}; \
     CREATE INDEX families_ended_db_at ON families (ended_db_at) WHERE ended_db_at IS NOT NULL; \
     CREATE INDEX access_tokens_revoked_db_at ON access_tokens (revoked_db_at) WHERE revoked_db_at IS NOT NULL",
    // 7: the (grouped) client address a login was started from, so that logins started
    // and not finished are capped per address as well as per browser (a browser is only
    // a cookie, which the client chooses).
    "ALTER TABLE pending_authorizations ADD COLUMN address TEXT; \
     CREATE INDEX pending_authorizations_address ON pending_authorizations (address, expires_at)",
    // 8: pinned tool definitions (the "rug pull" defence): per server, each tool's definition
    // as first seen, and the one definition seen since that differs from it, if any, until an
    // operator accepts it. Digests are hex text computed by the caller, compared as given.
    r#"
CREATE TABLE tool_pins (
    server             TEXT  NOT NULL,
    tool               TEXT  NOT NULL,
    digest             TEXT  NOT NULL,
    definition         TEXT  NOT NULL,
    pinned_at          {int} NOT NULL,
    changed_digest     TEXT,
    changed_definition TEXT,
    changed_at         {int},
    PRIMARY KEY (server, tool)
);
"#,
    // 9: when a grant was last used on the MCP path, coarsely (each process records a
    // grant's use at most once every few minutes, in batches): the account page shows it.
    "ALTER TABLE families ADD COLUMN last_used_at {int}",
    // 10: assertion ids (`jti`) already used, per issuer: an ID-JAG or a client assertion
    // is accepted once, at any replica, and remembered until it expires (then purged).
    // Only a hash of the id is kept. Self-contained, so that it can be renumbered.
    r#"
CREATE TABLE used_assertions (
    issuer     TEXT   NOT NULL,
    jti_hash   {blob} NOT NULL,
    expires_at {int}  NOT NULL,
    PRIMARY KEY (issuer, jti_hash)
);
CREATE INDEX used_assertions_expiry ON used_assertions (issuer, expires_at);
"#,
    // 11: brokered OAuth (`upstream_auth = "oauth"`). The proxy's dynamic registration at an
    // MCP upstream's authorization server, one per server and issuer (a changed issuer
    // registers anew; the old row stays until an operator clears it), its secret sealed. A
    // pending authorization may be at its second step, the upstream's login, carrying what
    // the provider's login found out (`broker`, sealed).
    r#"
CREATE TABLE upstream_registrations (
    server        TEXT  NOT NULL,
    issuer        TEXT  NOT NULL,
    client_id     TEXT  NOT NULL,
    secret_sealed TEXT,
    created_at    {int} NOT NULL,
    PRIMARY KEY (server, issuer)
);
ALTER TABLE pending_authorizations ADD COLUMN broker TEXT;
"#,
];

impl Backend {
    /// `sql` with the column types of this database.
    pub(crate) fn render(self, sql: &str) -> String {
        let (blob, int) = match self {
            Backend::Sqlite => ("BLOB", "INTEGER"),
            Backend::Postgres => ("BYTEA", "BIGINT"),
        };
        sql.replace("{blob}", blob).replace("{int}", int)
    }
}
