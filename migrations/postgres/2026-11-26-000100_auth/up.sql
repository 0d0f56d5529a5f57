-- API tokens and the append-only audit log (issue 12), PostgreSQL flavour. Keep in step with
-- ../../sqlite/2026-11-26-000100_auth/.

-- Bearer tokens: only the SHA-256 of each token is stored (see region-bin/src/auth.rs for why a
-- fast hash is right for 256-bit random tokens). A revoked token keeps its row, for the audit.
CREATE TABLE api_tokens (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('reader', 'operator', 'admin')),
    -- Lower-case hex SHA-256 of the whole token string.
    token_hash TEXT NOT NULL UNIQUE,
    created_by TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    last_used_ms BIGINT,
    expires_at_ms BIGINT,
    revoked_at_ms BIGINT
);
-- One live token per name; a revoked token's name may be reused.
CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens (name) WHERE revoked_at_ms IS NULL;

-- Every write the API received, accepted or refused. Rows are only ever inserted.
CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    -- NULL when the request carried no valid token.
    token_name TEXT,
    role TEXT,
    method TEXT NOT NULL,
    -- The route pattern (`/api/v1/nodes/{id}`), or the raw path when no route matched.
    route TEXT NOT NULL,
    -- The path actually written (`/api/v1/nodes/7`).
    object TEXT NOT NULL,
    status INTEGER NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('accepted', 'refused')),
    client TEXT NOT NULL
);
CREATE INDEX audit_log_object ON audit_log (object, id);
CREATE INDEX audit_log_token ON audit_log (token_name, id);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit log rows are append-only';
END;
$$;

-- Row triggers refuse UPDATE and DELETE; the statement trigger refuses TRUNCATE.
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
