//! Document collection conformance: versions, unique keys, find, isolation.

use std::sync::Arc;

use refract_core::ErrorKind;
use refract_storage::{CollectionSpec, DocumentStore, Expect, collections};
use serde_json::json;

use crate::support::{each_document_store, unique};

const USERS: CollectionSpec = collections::USERS;
const WORKSPACES: CollectionSpec = collections::WORKSPACES;

async fn versions_guard_against_lost_updates(store: &Arc<dyn DocumentStore>) {
    let id = unique("u");
    let created = store
        .put(&USERS, &id, &json!({"name": "Ann"}), Expect::Absent)
        .await
        .expect("create");
    assert_eq!(created.version, 1);
    let err = store
        .put(&USERS, &id, &json!({"name": "Dup"}), Expect::Absent)
        .await
        .expect_err("create twice");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    let updated = store
        .put(&USERS, &id, &json!({"name": "Ann B"}), Expect::Version(1))
        .await
        .expect("update");
    assert_eq!(updated.version, 2);
    let stale = store
        .put(&USERS, &id, &json!({"name": "stale"}), Expect::Version(1))
        .await
        .expect_err("stale");
    assert_eq!(stale.kind(), ErrorKind::Conflict, "{stale}");
    let forced = store
        .put(&USERS, &id, &json!({"name": "Ann C"}), Expect::Any)
        .await
        .expect("last write wins");
    assert_eq!(forced.version, 3);
    let got = store.get(&USERS, &id).await.expect("get").expect("exists");
    assert_eq!((got.version, got.body), (3, json!({"name": "Ann C"})));
    let fresh = store
        .put(&USERS, &unique("u"), &json!({}), Expect::Any)
        .await
        .expect("upsert new");
    assert_eq!(fresh.version, 1);
    let missing = store
        .put(&USERS, &unique("u"), &json!({}), Expect::Version(1))
        .await
        .expect_err("update missing");
    assert_eq!(missing.kind(), ErrorKind::Conflict);
    assert!(
        store
            .get(&USERS, &unique("u"))
            .await
            .expect("get missing")
            .is_none()
    );
}

async fn unique_fields_are_unique(store: &Arc<dyn DocumentStore>) {
    let (a, b) = (unique("u"), unique("u"));
    let email = format!("{}@example.org", unique("m"));
    store
        .put(&USERS, &a, &json!({"email": email}), Expect::Absent)
        .await
        .expect("a");
    let err = store
        .put(&USERS, &b, &json!({"email": email}), Expect::Absent)
        .await
        .expect_err("same email");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(
        store.get(&USERS, &b).await.expect("get b").is_none(),
        "the refused document is not stored"
    );
    // Rewriting a document with its own value is fine.
    store
        .put(
            &USERS,
            &a,
            &json!({"email": email, "n": 1}),
            Expect::Version(1),
        )
        .await
        .expect("same owner");
    // Changing the value frees the old one.
    store
        .put(
            &USERS,
            &a,
            &json!({"email": "other@example.org"}),
            Expect::Any,
        )
        .await
        .expect("change email");
    store
        .put(&USERS, &b, &json!({"email": email}), Expect::Absent)
        .await
        .expect("freed value");
    // Deleting frees it too; documents without the field never conflict.
    assert!(store.delete(&USERS, &b, Expect::Any).await.expect("delete"));
    store
        .put(
            &USERS,
            &unique("u"),
            &json!({"email": email}),
            Expect::Absent,
        )
        .await
        .expect("freed by delete");
    store
        .put(
            &USERS,
            &unique("u"),
            &json!({"name": "no email"}),
            Expect::Absent,
        )
        .await
        .expect("absent 1");
    store
        .put(
            &USERS,
            &unique("u"),
            &json!({"name": "no email"}),
            Expect::Absent,
        )
        .await
        .expect("absent 2");
    // Unique per collection: a workspace may use the same value.
    store
        .put(&WORKSPACES, &a, &json!({"email": email}), Expect::Absent)
        .await
        .expect("other collection");
    let slug = unique("slug");
    store
        .put(
            &WORKSPACES,
            &unique("w"),
            &json!({"slug": slug}),
            Expect::Absent,
        )
        .await
        .expect("slug");
    let err = store
        .put(
            &WORKSPACES,
            &unique("w"),
            &json!({"slug": slug}),
            Expect::Any,
        )
        .await
        .expect_err("slug");
    assert_eq!(err.kind(), ErrorKind::Conflict);
}

async fn find_matches_a_field(store: &Arc<dyn DocumentStore>) {
    let team = unique("team");
    for (i, role) in ["owner", "editor", "editor"].iter().enumerate() {
        let body = json!({"team": {"id": team}, "role": role, "rank": i});
        store
            .put(
                &collections::PERMISSIONS,
                &format!("{team}-{i}"),
                &body,
                Expect::Absent,
            )
            .await
            .expect("put");
    }
    let all = store
        .find(&collections::PERMISSIONS, "team.id", &json!(team), 10)
        .await
        .expect("find");
    assert_eq!(
        all.iter().map(|d| d.id.clone()).collect::<Vec<_>>(),
        vec![
            format!("{team}-0"),
            format!("{team}-1"),
            format!("{team}-2")
        ]
    );
    let first = store
        .find(&collections::PERMISSIONS, "team.id", &json!(team), 1)
        .await
        .expect("limit");
    assert_eq!(first.len(), 1);
    // Page by page: each page starts after the last id of the one before.
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .find_after(
                &collections::PERMISSIONS,
                "team.id",
                &json!(team),
                after.as_deref(),
                2,
            )
            .await
            .expect("page");
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        paged.extend(page.into_iter().map(|d| d.id));
    }
    assert_eq!(paged, all.iter().map(|d| d.id.clone()).collect::<Vec<_>>());
    let ranked = store
        .find(&collections::PERMISSIONS, "rank", &json!(2.0), 10)
        .await
        .expect("number");
    assert!(
        ranked.iter().any(|d| d.id == format!("{team}-2")),
        "2.0 finds 2"
    );
    let err = store
        .find(&collections::PERMISSIONS, "team.id", &json!(null), 10)
        .await
        .expect_err("null");
    assert_eq!(err.kind(), ErrorKind::Invalid);
    let err = store
        .find(&collections::PERMISSIONS, "a;drop", &json!(1), 10)
        .await
        .expect_err("bad field");
    assert_eq!(err.kind(), ErrorKind::Invalid);
}

async fn deletes_check_versions(store: &Arc<dyn DocumentStore>) {
    let id = unique("u");
    store
        .put(&USERS, &id, &json!({}), Expect::Absent)
        .await
        .expect("create");
    let err = store
        .delete(&USERS, &id, Expect::Version(7))
        .await
        .expect_err("wrong version");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(
        store
            .delete(&USERS, &id, Expect::Version(1))
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete(&USERS, &id, Expect::Any)
            .await
            .expect("delete again")
    );
    assert!(store.get(&USERS, &id).await.expect("get").is_none());
}

async fn bad_input_is_invalid(store: &Arc<dyn DocumentStore>) {
    let err = store
        .put(&USERS, "", &json!({}), Expect::Any)
        .await
        .expect_err("empty id");
    assert_eq!(err.kind(), ErrorKind::Invalid);
    let err = store
        .put(&USERS, "x", &json!([1]), Expect::Any)
        .await
        .expect_err("array body");
    assert_eq!(err.kind(), ErrorKind::Invalid);
    let bad = CollectionSpec {
        name: "Robert'); DROP TABLE documents;--",
        unique: &[],
    };
    let err = store
        .put(&bad, "x", &json!({}), Expect::Any)
        .await
        .expect_err("bad collection");
    assert_eq!(err.kind(), ErrorKind::Invalid);
}

async fn suite(store: Arc<dyn DocumentStore>) {
    versions_guard_against_lost_updates(&store).await;
    unique_fields_are_unique(&store).await;
    find_matches_a_field(&store).await;
    deletes_check_versions(&store).await;
    bad_input_is_invalid(&store).await;
}

#[tokio::test]
async fn document_collections_conformance() {
    each_document_store("documents", suite).await;
}

/// Instances of a cluster start together on one schema: each must open it, none may fail on
/// the other's `CREATE SCHEMA` or migrations.
#[tokio::test]
async fn postgres_instances_opening_a_new_schema_together_all_start() {
    let Some(base) = crate::support::postgres_url() else {
        crate::support::skip(
            "postgres concurrent open",
            "REFRACT_TEST_DATABASE_URL not set",
        );
        return;
    };
    let schema = unique("refract_race");
    let url = crate::support::with_schema(&base, &schema);
    let opens = (0..6).map(|_| refract_storage::open_document_store(&url));
    let results = futures::future::join_all(opens).await;
    let mut failures = Vec::new();
    for result in results {
        match result {
            Ok(store) => {
                if let Err(e) = store
                    .put(&USERS, &unique("u"), &json!({}), Expect::Absent)
                    .await
                {
                    failures.push(format!("write: {e}"));
                }
            }
            Err(e) => failures.push(format!("open: {e}")),
        }
    }
    crate::support::drop_schema(&base, &schema).await;
    assert!(failures.is_empty(), "{failures:?}");
}
