//! Event history (datalake) conformance: idempotent appends, filters, order, pages, retention.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use refract_core::{CorrelationId, ErrorKind, Event, EventId, EventType, UserId, WorkspaceId};
use refract_storage::{DocumentStore, FieldFilter, HistoryQuery, SortOrder, TypeFilter};
use serde_json::{Map, Value, json};

use crate::support::{each_document_store, unique};

fn ws() -> WorkspaceId {
    WorkspaceId::new(unique("ws")).expect("workspace id")
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_780_000_000 + secs, 0)
        .single()
        .expect("time")
}

/// Event `seq` of `ws`, id `<base+seq>-0`, created `seq` seconds after the base time.
fn event(ws: &WorkspaceId, seq: i64, ty: &str, payload: Value) -> Event {
    let payload: Map<String, Value> = payload.as_object().cloned().unwrap_or_default();
    let mut e = Event::new(EventType::new(ty).expect("type"), Some(ws.clone()), payload);
    e.id = Some(EventId::from_parts(
        1_780_000_000_000 + seq as u64 * 1000,
        0,
    ));
    e.created_at = at(seq);
    e
}

fn ids(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| e.id.as_ref().map(|i| i.to_string()).unwrap_or_default())
        .collect()
}

/// `events` as the store takes them.
fn shared(events: &[Event]) -> Vec<Arc<Event>> {
    events.iter().cloned().map(Arc::new).collect()
}

fn id(seq: i64) -> String {
    format!("{}-0", 1_780_000_000_000 + seq * 1000)
}

async fn appends_are_idempotent_by_workspace_and_id(store: &Arc<dyn DocumentStore>) {
    let (a, b) = (ws(), ws());
    let batch: Vec<Event> = (0..3)
        .map(|i| event(&a, i, "orders.created", json!({})))
        .collect();
    let first = store.append(&shared(&batch)).await.expect("append");
    assert_eq!((first.inserted, first.duplicates), (3, 0));
    let mut again = batch.clone();
    again.push(event(&a, 3, "orders.created", json!({})));
    let second = store.append(&shared(&again)).await.expect("append again");
    assert_eq!(
        (second.inserted, second.duplicates),
        (1, 3),
        "redelivered events are stored once"
    );
    // The same id in another workspace is another event.
    let other = store
        .append(&shared(&[event(&b, 0, "orders.created", json!({}))]))
        .await
        .expect("append b");
    assert_eq!(other.inserted, 1);
    assert_eq!(
        store
            .count(&HistoryQuery::new(a.clone()))
            .await
            .expect("count"),
        4
    );
    assert_eq!(
        store
            .count(&HistoryQuery::new(b.clone()))
            .await
            .expect("count"),
        1
    );
    assert_eq!(store.append(&[]).await.expect("empty").inserted, 0);
}

async fn events_without_id_or_workspace_are_refused_whole(store: &Arc<dyn DocumentStore>) {
    let w = ws();
    let good = event(&w, 0, "a", json!({}));
    let mut no_id = event(&w, 1, "a", json!({}));
    no_id.id = None;
    let err = store
        .append(&shared(&[good.clone(), no_id]))
        .await
        .expect_err("no id");
    assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
    let mut no_ws = event(&w, 2, "a", json!({}));
    no_ws.source.workspace_id = None;
    assert_eq!(
        store
            .append(&shared(&[no_ws]))
            .await
            .expect_err("no ws")
            .kind(),
        ErrorKind::Invalid
    );
    assert_eq!(
        store.count(&HistoryQuery::new(w)).await.expect("count"),
        0,
        "nothing of a refused batch is stored"
    );
}

async fn events_round_trip_unchanged(store: &Arc<dyn DocumentStore>) {
    let w = ws();
    let mut e = event(
        &w,
        0,
        "orders.created",
        json!({"order": {"id": 42, "lines": [1, 2.5], "note": "ünïcode ✓"}}),
    );
    e.source.user_id = Some(UserId::new("u1").expect("user"));
    e.source.automation_depth = Some(2);
    e.size = Some(321);
    store
        .append(&shared(std::slice::from_ref(&e)))
        .await
        .expect("append");
    let got = store.query(&HistoryQuery::new(w)).await.expect("query");
    assert_eq!(got, vec![e]);
}

async fn pages_are_newest_first_with_cursors(store: &Arc<dyn DocumentStore>) {
    let w = ws();
    let batch: Vec<Event> = (0..10)
        .rev()
        .map(|i| event(&w, i, "tick", json!({"n": i})))
        .collect();
    store.append(&shared(&batch)).await.expect("append");
    let mut q = HistoryQuery::new(w.clone());
    q.limit = 3;
    assert_eq!(
        ids(&store.query(&q).await.expect("page 0")),
        vec![id(9), id(8), id(7)]
    );
    q.page = 1;
    assert_eq!(
        ids(&store.query(&q).await.expect("page 1")),
        vec![id(6), id(5), id(4)]
    );
    q.page = 4;
    assert!(store.query(&q).await.expect("past the end").is_empty());
    q.page = 0;
    q.before_id = Some(EventId::new(id(4)).expect("id"));
    assert_eq!(
        ids(&store.query(&q).await.expect("before")),
        vec![id(3), id(2), id(1)]
    );
    q.before_id = None;
    q.after_id = Some(EventId::new(id(6)).expect("id"));
    assert_eq!(
        ids(&store.query(&q).await.expect("after")),
        vec![id(9), id(8), id(7)]
    );
    q.sort = SortOrder::Asc;
    assert_eq!(
        ids(&store.query(&q).await.expect("asc")),
        vec![id(7), id(8), id(9)]
    );
    // Ids order by their numeric parts, not as strings: 9-0 < 10-0.
    let w2 = ws();
    let mut small = event(&w2, 0, "t", json!({}));
    small.id = Some(EventId::from_parts(9, 5));
    let mut big = event(&w2, 1, "t", json!({}));
    big.id = Some(EventId::from_parts(10, 0));
    store.append(&shared(&[small, big])).await.expect("append");
    assert_eq!(
        ids(&store.query(&HistoryQuery::new(w2)).await.expect("numeric")),
        vec!["10-0", "9-5"]
    );
    let mut bad = HistoryQuery::new(w);
    bad.limit = 0;
    assert_eq!(
        store.query(&bad).await.expect_err("limit 0").kind(),
        ErrorKind::Invalid
    );
    bad.limit = 1_001;
    assert_eq!(
        store.query(&bad).await.expect_err("limit too big").kind(),
        ErrorKind::Invalid
    );
}

async fn filters_select_what_users_ask_for(store: &Arc<dyn DocumentStore>) {
    let w = ws();
    let corr = CorrelationId::generate();
    let mut events = vec![
        event(
            &w,
            0,
            "orders.created",
            json!({"order": {"id": 1, "total": 10}, "customer": "Alice Smith"}),
        ),
        event(
            &w,
            1,
            "orders.paid",
            json!({"order": {"id": 1, "total": 10.0}, "paid": true}),
        ),
        event(
            &w,
            2,
            "orders.created",
            json!({"order": {"id": 2, "total": 25}, "customer": "Bob Jones"}),
        ),
        event(
            &w,
            3,
            "ordersX.other",
            json!({"note": "alice was here", "tags": ["a", "b"]}),
        ),
        event(
            &w,
            4,
            "users.login",
            json!({"who": {"name": "Alice"}, "paid": false}),
        ),
    ];
    events[2].source.correlation_id = corr.clone();
    events[4].source.correlation_id = corr.clone();
    events[4].source.user_id = Some(UserId::new("u42").expect("user"));
    store.append(&shared(&events)).await.expect("append");
    let base = HistoryQuery::new(w.clone());
    let run = |q: HistoryQuery| {
        let store = store.clone();
        async move {
            let page = store.query(&q).await.expect("query");
            let n = store.count(&q).await.expect("count");
            assert_eq!(n as usize, page.len(), "count agrees with the page");
            page.iter()
                .map(|e| e.id.as_ref().map(|i| i.to_string()).unwrap_or_default())
                .collect::<Vec<_>>()
        }
    };

    let mut q = base.clone();
    q.types = vec![TypeFilter::parse("orders.created").expect("type")];
    assert_eq!(run(q).await, vec![id(2), id(0)], "exact type");
    let mut q = base.clone();
    q.types = vec![TypeFilter::parse("orders.*").expect("type")];
    assert_eq!(
        run(q).await,
        vec![id(2), id(1), id(0)],
        "prefix stops at the dot"
    );
    let mut q = base.clone();
    q.types = vec![
        TypeFilter::parse("users.login").expect("t"),
        TypeFilter::parse("ordersX.*").expect("t"),
    ];
    assert_eq!(run(q).await, vec![id(4), id(3)], "several types are ORed");

    let mut q = base.clone();
    q.after_date = Some(at(1));
    q.before_date = Some(at(4));
    assert_eq!(
        run(q).await,
        vec![id(3), id(2)],
        "date bounds are exclusive"
    );

    // Client-chosen ids with separators match exactly, not word by word.
    let dashed = CorrelationId::new("Run-2026_ab").expect("corr");
    let near = CorrelationId::new("run-2026_ab-x").expect("corr");
    let mut e1 = event(&w, 5, "t.dashed", json!({}));
    e1.source.correlation_id = dashed.clone();
    let mut e2 = event(&w, 6, "t.dashed", json!({}));
    e2.source.correlation_id = near;
    store
        .append(&shared(&[e1, e2]))
        .await
        .expect("append dashed");
    let mut q = base.clone();
    q.correlation_id = Some(dashed);
    assert_eq!(run(q).await, vec![id(5)], "dashed correlation id");
    let mut base = base.clone();
    base.before_date = Some(at(5));

    let mut q = base.clone();
    q.correlation_id = Some(corr);
    assert_eq!(run(q).await, vec![id(4), id(2)], "correlation id");

    let mut q = base.clone();
    q.text = Some("ALICE".into());
    assert_eq!(
        run(q).await,
        vec![id(4), id(3), id(0)],
        "text is case-insensitive, nested strings count"
    );
    let mut q = base.clone();
    q.text = Some("alice smith".into());
    assert_eq!(run(q).await, vec![id(0)], "every word is required");
    let mut q = base.clone();
    q.text = Some("paid".into());
    assert_eq!(
        run(q).await,
        vec![id(1)],
        "the type's words count, payload keys do not"
    );
    let mut q = base.clone();
    q.text = Some("ali".into());
    assert!(run(q).await.is_empty(), "words match whole");

    let field = |p: &str, v: Value| FieldFilter::new(p, v).expect("field");
    let mut q = base.clone();
    q.fields = vec![field("payload.order.total", json!(10))];
    assert_eq!(
        run(q).await,
        vec![id(1), id(0)],
        "numbers compare numerically (10 = 10.0)"
    );
    let mut q = base.clone();
    q.fields = vec![field("payload.order.id", json!(2))];
    assert_eq!(run(q).await, vec![id(2)]);
    let mut q = base.clone();
    q.fields = vec![field("payload.customer", json!("Bob Jones"))];
    assert_eq!(run(q).await, vec![id(2)], "strings exact");
    let mut q = base.clone();
    q.fields = vec![field("payload.paid", json!(true))];
    assert_eq!(run(q).await, vec![id(1)], "booleans");
    let mut q = base.clone();
    q.fields = vec![field("payload.order.id", json!("1"))];
    assert!(run(q).await.is_empty(), "a string is not a number");
    let mut q = base.clone();
    q.fields = vec![field("payload.tags", json!(["a", "b"]))];
    assert_eq!(run(q).await, vec![id(3)], "arrays compare whole");
    let mut q = base.clone();
    q.fields = vec![field("payload.tags", json!(["a"]))];
    assert!(run(q).await.is_empty(), "a sub-array is not equal");
    let mut q = base.clone();
    q.fields = vec![field("source.userId", json!("u42"))];
    assert_eq!(run(q).await, vec![id(4)], "source fields");

    let mut q = base.clone();
    q.types = vec![TypeFilter::parse("orders.*").expect("type")];
    q.fields = vec![field("payload.order.id", json!(1))];
    q.text = Some("alice".into());
    q.before_date = Some(at(100));
    assert_eq!(run(q).await, vec![id(0)], "conditions combine with AND");

    // Another workspace's events never leak in.
    let mut q = HistoryQuery::new(ws());
    q.text = Some("alice".into());
    assert!(run(q).await.is_empty());
}

async fn retention_and_workspace_deletion(store: &Arc<dyn DocumentStore>) {
    let (a, b) = (ws(), ws());
    let now = Utc::now();
    let mut old = event(&a, 0, "t", json!({"text": "old"}));
    old.created_at = now - Duration::days(40);
    let mut recent = event(&a, 1, "t", json!({"text": "recent"}));
    recent.created_at = now - Duration::days(1);
    let mut other = event(&b, 0, "t", json!({"text": "recent"}));
    other.created_at = now;
    store
        .append(&shared(&[old, recent, other]))
        .await
        .expect("append");
    let removed = store
        .delete_workspace_before(&a, now - Duration::days(30))
        .await
        .expect("retention");
    assert_eq!(removed, 1, "the 40-day-old event is removed");
    assert_eq!(
        ids(&store.query(&HistoryQuery::new(a.clone())).await.expect("q")),
        vec![id(1)]
    );
    let mut q = HistoryQuery::new(a.clone());
    q.text = Some("old".into());
    assert!(
        store.query(&q).await.expect("text after delete").is_empty(),
        "the text index forgets deleted events"
    );
    // Per-workspace retention touches only that workspace.
    let mut other_old = event(&b, 1, "t", json!({"text": "old"}));
    other_old.created_at = now - Duration::days(10);
    store.append(&shared(&[other_old])).await.expect("append");
    // The store is shared with the other checks: their workspaces are listed too.
    let listed = store.workspaces().await.expect("workspaces");
    assert!(
        listed.contains(&a) && listed.contains(&b),
        "both workspaces have events: {listed:?}"
    );
    assert_eq!(
        store
            .delete_workspace_before(&a, now - Duration::days(5))
            .await
            .expect("workspace retention"),
        0,
        "a keeps its 1-day-old event and b's 10-day-old one is not a's"
    );
    assert_eq!(
        store
            .delete_workspace_before(&b, now - Duration::days(5))
            .await
            .expect("workspace retention"),
        1
    );
    assert_eq!(store.delete_workspace(&a).await.expect("delete ws"), 1);
    assert_eq!(store.count(&HistoryQuery::new(a)).await.expect("count"), 0);
    assert_eq!(
        store.count(&HistoryQuery::new(b)).await.expect("count"),
        1,
        "other workspaces keep theirs"
    );
}

async fn suite(store: Arc<dyn DocumentStore>) {
    appends_are_idempotent_by_workspace_and_id(&store).await;
    events_without_id_or_workspace_are_refused_whole(&store).await;
    events_round_trip_unchanged(&store).await;
    pages_are_newest_first_with_cursors(&store).await;
    filters_select_what_users_ask_for(&store).await;
    retention_and_workspace_deletion(&store).await;
}

#[tokio::test]
async fn event_history_conformance() {
    each_document_store("event history", suite).await;
}
