-- The region's store, SQLite flavour. Timestamps are unix milliseconds handed in by the
-- caller (the store never reads a clock). Keep in step with ../../postgres/.

CREATE TABLE clusters (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    first_seen_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    -- JSON of a ClusterSnapshot: what the cluster last reported (OS registry, boot images).
    last_snapshot TEXT,
    snapshot_at_ms BIGINT,
    CHECK ((last_snapshot IS NULL) = (snapshot_at_ms IS NULL))
);

CREATE TABLE license_keys (
    osystem TEXT NOT NULL,
    distro_series TEXT NOT NULL,
    license_key TEXT NOT NULL,
    -- The cluster that said yes: a key is never stored without one.
    validated_by TEXT NOT NULL REFERENCES clusters (id),
    validated_at_ms BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (osystem, distro_series)
);

CREATE TABLE settings (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE nodes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    system_id TEXT UNIQUE,
    hostname TEXT NOT NULL UNIQUE,
    arch TEXT NOT NULL,
    subarch TEXT NOT NULL,
    cluster_id TEXT NOT NULL REFERENCES clusters (id),
    power_type TEXT,
    -- JSON object, driver specific.
    power_parameters TEXT,
    status TEXT NOT NULL CHECK (status IN ('ready', 'allocated')),
    osystem TEXT,
    distro_series TEXT,
    created_at_ms BIGINT NOT NULL,
    allocated_at_ms BIGINT,
    CHECK ((status = 'allocated') = (allocated_at_ms IS NOT NULL))
);
CREATE INDEX nodes_allocation ON nodes (status, arch, cluster_id, id);

CREATE TABLE preseeds (
    name TEXT PRIMARY KEY NOT NULL,
    current_version INTEGER NOT NULL,
    -- Both set while an operator edit and a later cluster change disagree, both null otherwise.
    conflict_operator_version INTEGER,
    conflict_cluster_version INTEGER,
    updated_at_ms BIGINT NOT NULL,
    CHECK ((conflict_operator_version IS NULL) = (conflict_cluster_version IS NULL))
);

-- Immutable history: rows are only ever inserted (the triggers below refuse the rest).
CREATE TABLE preseed_versions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL REFERENCES preseeds (name),
    version INTEGER NOT NULL CHECK (version >= 1),
    osystem TEXT,
    origin TEXT NOT NULL CHECK (origin IN ('cluster', 'operator')),
    origin_cluster TEXT REFERENCES clusters (id),
    parent_version INTEGER,
    content TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    UNIQUE (name, version),
    CHECK ((origin = 'cluster') = (origin_cluster IS NOT NULL))
);

CREATE TRIGGER preseed_versions_no_update BEFORE UPDATE ON preseed_versions
BEGIN
    SELECT RAISE(ABORT, 'preseed versions are immutable');
END;

CREATE TRIGGER preseed_versions_no_delete BEFORE DELETE ON preseed_versions
BEGIN
    SELECT RAISE(ABORT, 'preseed versions are immutable');
END;
