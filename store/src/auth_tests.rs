//! Tokens and the audit log, on SQLite always and on PostgreSQL when
//! `OSMESH_TEST_POSTGRES_URL` is set (see `testing`).

use diesel::connection::SimpleConnection;

use super::testing::TestDb;
use super::*;

fn each_store(test: impl Fn(&Store, &str)) {
    for db in TestDb::each() {
        test(&db.open(), db.label);
    }
}

fn token<'a>(name: &'a str, hash: &'a str, expires_at_ms: Option<i64>) -> NewToken<'a> {
    NewToken {
        name,
        role: Role::Operator,
        token_hash: hash,
        created_by: "regiond",
        created_at_ms: 100,
        expires_at_ms,
    }
}

fn entry(object: &str, token: Option<&'static str>, status: u16) -> NewAuditEntry<'static> {
    NewAuditEntry {
        at_ms: 1_000,
        token_name: token,
        role: token.map(|_| "admin"),
        method: "POST",
        route: "/api/v1/nodes",
        object: Box::leak(object.to_owned().into_boxed_str()),
        status,
        client: "127.0.0.1",
    }
}

#[test]
fn a_token_is_found_by_its_hash_and_revocation_keeps_the_row() {
    each_store(|store, label| {
        let created = store.create_token(&token("ci", "h1", Some(5_000))).unwrap();
        let found = store.token_by_hash("h1").unwrap().expect("stored");
        assert_eq!(found, created, "[{label}]");
        assert!(found.is_live_at(4_999) && !found.is_live_at(5_000));
        assert_eq!(store.token_by_hash("h2").unwrap(), None);
        store.touch_token(created.id, 200).unwrap();
        assert_eq!(
            store.token_by_hash("h1").unwrap().unwrap().last_used_ms,
            Some(200)
        );

        let revoked = store.revoke_token("ci", 300).unwrap();
        assert_eq!(revoked.revoked_at_ms, Some(300));
        assert!(!store.token_by_hash("h1").unwrap().unwrap().is_live_at(301));
        assert!(matches!(
            store.revoke_token("ci", 400),
            Err(DbError::NotFound { .. })
        ));
        // The name is free again once the old token is revoked, and only then.
        store.create_token(&token("ci", "h3", None)).unwrap();
        assert!(matches!(
            store.create_token(&token("ci", "h4", None)),
            Err(DbError::Conflict { .. })
        ));
        assert_eq!(store.list_tokens().unwrap().len(), 2, "[{label}]");
    });
}

#[test]
fn audit_pages_newest_first_and_filters_by_object_and_token() {
    each_store(|store, label| {
        for i in 0..5 {
            let object = format!("/api/v1/nodes/{}", i % 2);
            let who = if i == 4 { None } else { Some("ops") };
            store.append_audit(&entry(&object, who, 200)).unwrap();
        }
        store
            .append_audit(&entry("/api/v1/nodes/0", Some("ops"), 403))
            .unwrap();
        let all = store
            .audit(&AuditQuery {
                limit: 100,
                ..Default::default()
            })
            .unwrap();
        let ids: Vec<i64> = all.iter().map(|e| e.id).collect();
        assert!(ids.windows(2).all(|w| w[0] > w[1]), "[{label}] {ids:?}");
        assert_eq!(all[0].outcome, "refused");
        assert_eq!(all[1].outcome, "accepted");
        assert_eq!(all[1].token_name, None);

        let page = store
            .audit(&AuditQuery {
                limit: 2,
                before_id: Some(all[1].id),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(page, all[2..4].to_vec(), "[{label}]");

        let node0 = store
            .audit(&AuditQuery {
                object: Some("/api/v1/nodes/0".into()),
                token_name: Some("ops".into()),
                limit: 100,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(node0.len(), 3, "[{label}]");
    });
}

#[test]
fn audit_rows_cannot_be_updated_or_deleted() {
    each_store(|store, label| {
        store
            .append_audit(&entry("/api/v1/settings", Some("ops"), 200))
            .unwrap();
        let mut pooled = store.conn().unwrap();
        let mut statements = vec![
            "UPDATE audit_log SET outcome = 'refused'",
            "UPDATE audit_log SET token_name = NULL",
            "DELETE FROM audit_log",
        ];
        if label == "postgres" {
            statements.push("TRUNCATE audit_log");
        }
        for sql in statements {
            let err = pooled.batch_execute(sql).expect_err(sql).to_string();
            assert!(
                err.contains("audit log rows are append-only"),
                "[{label}] {sql}: {err}"
            );
        }
        drop(pooled);
        let rows = store
            .audit(&AuditQuery {
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].outcome, "accepted");
        assert_eq!(rows[0].token_name.as_deref(), Some("ops"));
    });
}
