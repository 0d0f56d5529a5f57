-- Cluster enrollment and per-cluster credentials (issue 13). Keep in step with
-- ../../sqlite/2026-11-26-000200_enrollments/.

-- One row per enrolled (or revoked) cluster. The token is one-time: only its SHA-256 is kept,
-- and it is cleared when redeemed. `cert_sha256` is the fingerprint of the certificate issued
-- at redemption: only that certificate admits the cluster. A revoked row keeps its place so
-- the cluster stays refused until it is enrolled again.
CREATE TABLE cluster_enrollments (
    cluster_id TEXT PRIMARY KEY NOT NULL,
    token_hash TEXT,
    token_expires_ms BIGINT,
    cert_sha256 TEXT,
    created_at_ms BIGINT NOT NULL,
    enrolled_at_ms BIGINT,
    revoked_at_ms BIGINT
);
