-- A cluster's own templates (issue 13), postgres flavour. Keep in step with
-- ../../sqlite/2026-11-26-000410_cluster_templates/.
--
-- One row per (cluster, template name) the cluster ever shipped. A cluster's template serves
-- only that cluster's nodes, and only once an admin approved the name for that cluster
-- (state 'approved'); a name seen for the first time waits as 'pending'; 'refused' is an
-- admin's no. `version` is the newest version (in preseed_versions) holding what the cluster
-- ships and that parsed and trial-rendered on arrival; NULL while it shipped nothing that did.
-- `content_hash` is the SHA-256 of the cluster's newest report of the name (a re-report is
-- recognised and not checked again); `error` says why that report failed the check, NULL
-- when it passed.
CREATE TABLE cluster_templates (
    cluster_id TEXT NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'refused')),
    version INTEGER,
    content_hash TEXT NOT NULL,
    error TEXT,
    first_seen_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (cluster_id, name)
);

-- Templates stored before this migration served nodes already: they stay approved, each
-- (cluster, name) with the newest version that cluster shipped (now for its own nodes only).
INSERT INTO cluster_templates
    (cluster_id, name, state, version, content_hash, first_seen_ms, updated_at_ms)
SELECT v.origin_cluster, v.name, 'approved', v.version, v.content_hash,
    (SELECT MIN(w.created_at_ms) FROM preseed_versions w
     WHERE w.name = v.name AND w.origin_cluster = v.origin_cluster),
    v.created_at_ms
FROM preseed_versions v
WHERE v.origin = 'cluster'
  AND v.version = (SELECT MAX(w.version) FROM preseed_versions w
                   WHERE w.name = v.name AND w.origin_cluster = v.origin_cluster);
