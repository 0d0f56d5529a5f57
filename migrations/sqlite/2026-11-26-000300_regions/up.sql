-- The region registry (issue 15), sqlite flavour. Keep in step with ../../postgres/2026-11-26-000300_regions/.
-- Each regiond records itself at start-up and refreshes heartbeat_ms (and the clusters linked
-- to it) every few seconds; the others read the table to tell clusters every region's RPC
-- endpoints and to show which regions are up. Rows silent for long are deleted by any region.
CREATE TABLE regions (
    -- Random, one per process start.
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    -- JSON array of "host:port" strings the clusters dial.
    rpc_endpoints TEXT NOT NULL,
    http_url TEXT NOT NULL,
    started_at_ms BIGINT NOT NULL,
    heartbeat_ms BIGINT NOT NULL,
    -- JSON array of the cluster ids linked to this region at its last heartbeat.
    linked_clusters TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX regions_heartbeat ON regions (heartbeat_ms);
