//! Diesel's view of the tables in `migrations/{sqlite,postgres}`. Only types that Diesel's
//! `MultiConnection` maps on both backends appear (Text, Integer, BigInt): no Bool, no JSONB.

diesel::table! {
    clusters (id) {
        id -> Text,
        name -> Text,
        first_seen_ms -> BigInt,
        last_seen_ms -> BigInt,
        last_snapshot -> Nullable<Text>,
        snapshot_at_ms -> Nullable<BigInt>,
        removed -> Bool,
    }
}

diesel::table! {
    license_keys (osystem, distro_series) {
        osystem -> Text,
        distro_series -> Text,
        license_key -> Text,
        validated_by -> Text,
        validated_at_ms -> BigInt,
        created_at_ms -> BigInt,
        updated_at_ms -> BigInt,
    }
}

diesel::table! {
    settings (key) {
        key -> Text,
        value -> Text,
    }
}

diesel::table! {
    nodes (id) {
        id -> BigInt,
        system_id -> Nullable<Text>,
        hostname -> Text,
        arch -> Text,
        subarch -> Text,
        cluster_id -> Text,
        power_type -> Nullable<Text>,
        power_parameters -> Nullable<Text>,
        status -> Text,
        osystem -> Nullable<Text>,
        distro_series -> Nullable<Text>,
        created_at_ms -> BigInt,
        allocated_at_ms -> Nullable<BigInt>,
    }
}

diesel::table! {
    preseeds (name) {
        name -> Text,
        current_version -> Integer,
        conflict_operator_version -> Nullable<Integer>,
        conflict_cluster_version -> Nullable<Integer>,
        updated_at_ms -> BigInt,
    }
}

diesel::table! {
    preseed_versions (id) {
        id -> BigInt,
        name -> Text,
        version -> Integer,
        osystem -> Nullable<Text>,
        origin -> Text,
        origin_cluster -> Nullable<Text>,
        parent_version -> Nullable<Integer>,
        content -> Text,
        content_hash -> Text,
        created_at_ms -> BigInt,
    }
}

diesel::table! {
    cluster_templates (cluster_id, name) {
        cluster_id -> Text,
        name -> Text,
        state -> Text,
        version -> Nullable<Integer>,
        content_hash -> Text,
        error -> Nullable<Text>,
        first_seen_ms -> BigInt,
        updated_at_ms -> BigInt,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> BigInt,
        name -> Text,
        role -> Text,
        token_hash -> Text,
        created_by -> Text,
        created_at_ms -> BigInt,
        last_used_ms -> Nullable<BigInt>,
        expires_at_ms -> Nullable<BigInt>,
        revoked_at_ms -> Nullable<BigInt>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        at_ms -> BigInt,
        token_name -> Nullable<Text>,
        role -> Nullable<Text>,
        method -> Text,
        route -> Text,
        object -> Text,
        status -> Integer,
        outcome -> Text,
        client -> Text,
    }
}

diesel::table! {
    regions (id) {
        id -> Text,
        name -> Text,
        rpc_endpoints -> Text,
        http_url -> Text,
        started_at_ms -> BigInt,
        heartbeat_ms -> BigInt,
        linked_clusters -> Text,
    }
}
