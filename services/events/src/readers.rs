//! Who reads what. Every read path of the service — history, long-polling, search, WebSocket
//! delivery and reconnect replay — builds the caller's [`EventReader`] with [`reader`] and asks
//! [`EventReader::may_read`] (refract-core: the one read rule of the platform) about each event;
//! history pages and search counts come from [`readable_page`], so they hold only readable
//! events. [`changes_access`] names the platform events after which open sockets are
//! re-evaluated ([`crate::live::recheck`]).

use refract_core::permissions::reads::EventReader;
use refract_core::platform::types;
use refract_core::{Event, WorkspaceId};
use refract_http::Caller;
use refract_storage::{EventHistory, HistoryQuery, StorageError, WorkspaceAccess};

use crate::EventsState;
use crate::topics;

/// Most matching events read to serve one history page or search to a reader whose rules hide
/// some events (the index cannot count for it): bounds what one request costs the database.
/// Past it, pages are empty and a search's `size` counts only the readable events among the
/// first this many matches — never a hidden one.
pub const MAX_SCANNED: u64 = 10_000;
/// Events read per query while scanning for a restricted reader (the history's largest page).
const SCAN_PAGE: u32 = 500;

/// Platform events after which what a workspace's open sockets may read is decided again:
/// roles and rules, sharing, API keys, the workspace's deletion. Re-evaluating reads the
/// store, so an event forged with one of these types can only cost a re-check.
const ACCESS_EVENTS: &[&str] = &[
    types::SECURITY_UPDATED,
    types::PERMISSIONS_SHARED,
    types::PERMISSIONS_DELETED,
    types::WORKSPACES_DELETED,
    types::APIKEYS_UPDATED,
    types::APIKEYS_DELETED,
];

/// The workspace whose readers `event` may have changed, if it is such an event.
pub fn changes_access(event: &Event) -> Option<&WorkspaceId> {
    ACCESS_EVENTS
        .contains(&event.event_type.as_str())
        .then_some(event.source.workspace_id.as_ref())
        .flatten()
}

/// The reader `caller` is in `workspace`, given its `rights` there: its grant, the workspace's
/// rules and the user topics it joined.
pub async fn reader(
    state: &EventsState,
    caller: &Caller,
    workspace: &WorkspaceId,
    rights: WorkspaceAccess,
) -> Result<EventReader, StorageError> {
    let topics = match &caller.user_id {
        Some(user) => topics::joined(state.cache.as_ref(), workspace, user).await?,
        None => Default::default(),
    };
    Ok(EventReader {
        grant: rights.grant,
        rules: rights.authorizations,
        user: caller.user_id.clone(),
        session: caller.session_id.clone(),
        topics,
    })
}

/// One page of what `query` selects among the events `reader` may read, and, when `count`,
/// how many readable events match (exact unless more than [`MAX_SCANNED`] had to be read).
pub async fn readable_page<S: EventHistory + ?Sized>(
    store: &S,
    reader: &EventReader,
    query: &HistoryQuery,
    count: bool,
) -> Result<(Vec<Event>, u64), StorageError> {
    if reader.reads_everything() {
        let (mut events, total) = if count {
            tokio::try_join!(store.query(query), store.count(query))?
        } else {
            (store.query(query).await?, 0)
        };
        events.retain(|e| reader.may_read(e, &mut None));
        return Ok((events, total));
    }
    // The rules may hide any event: read the matches in order and page over the readable ones.
    let skip = query.offset();
    let want = u64::from(query.limit);
    let mut scan = query.clone();
    scan.limit = SCAN_PAGE;
    scan.page = 0;
    let (mut page, mut readable, mut scanned) = (Vec::new(), 0u64, 0u64);
    while scanned < MAX_SCANNED {
        let batch = store.query(&scan).await?;
        let full = batch.len() == SCAN_PAGE as usize;
        scanned += batch.len() as u64;
        for event in batch {
            if !reader.may_read(&event, &mut None) {
                continue;
            }
            if readable >= skip && readable < skip + want {
                page.push(event);
            }
            readable += 1;
        }
        if !full || (!count && readable >= skip + want) {
            break;
        }
        scan.page += 1;
    }
    Ok((page, readable))
}

#[cfg(test)]
mod tests {
    use refract_core::EventType;
    use refract_core::model::Role;
    use refract_core::permissions::Grant;
    use refract_storage::{FieldFilter, MemoryStore};
    use serde_json::{Value, json};

    use super::*;

    fn ws() -> WorkspaceId {
        WorkspaceId::new("w1").expect("ws")
    }

    async fn store_with(events: &[(&str, Value)]) -> MemoryStore {
        let store = MemoryStore::new();
        let events: Vec<std::sync::Arc<Event>> = events
            .iter()
            .enumerate()
            .map(|(i, (ty, payload))| {
                let payload = payload.as_object().cloned().unwrap_or_default();
                let mut e = Event::new(EventType::new(*ty).expect("type"), Some(ws()), payload);
                e.id = Some(refract_core::EventId::new(format!("1-{i}")).expect("id"));
                std::sync::Arc::new(e)
            })
            .collect();
        store.append(&events).await.expect("append");
        store
    }

    #[tokio::test]
    async fn counts_and_pages_hold_only_readable_events() {
        let store = store_with(&[
            ("tickets.opened", json!({"secret": "no"})),
            ("payroll.paid", json!({"secret": "yes"})),
            ("payroll.paid", json!({"secret": "yes"})),
            ("tickets.opened", json!({"secret": "yes"})),
        ])
        .await;
        let support = EventReader {
            grant: Grant { custom_roles: vec!["support".into()], ..Grant::default() },
            rules: serde_json::from_value(json!({
                "roles": {"support": {}},
                "rules": [{"role": "support", "action": "read", "subject": "events", "conditions": {"type": "tickets.opened"}}]
            }))
            .expect("rules"),
            ..EventReader::default()
        };
        let mut probe = HistoryQuery::new(ws());
        probe
            .fields
            .push(FieldFilter::new("payload.secret", json!("yes")).expect("filter"));
        let (page, total) = readable_page(&store, &support, &probe, true)
            .await
            .expect("page");
        assert_eq!(
            (page.len(), total),
            (1, 1),
            "the two hidden payroll events are not counted"
        );

        let mut second = HistoryQuery::new(ws());
        second.limit = 1;
        second.page = 1;
        let (page, total) = readable_page(&store, &support, &second, true)
            .await
            .expect("page");
        assert_eq!(
            (page.len(), total),
            (1, 2),
            "pages are over readable events"
        );
        assert_eq!(page[0].event_type.as_str(), "tickets.opened");

        let viewer = EventReader {
            grant: Grant {
                role: Some(Role::Viewer),
                ..Grant::default()
            },
            ..EventReader::default()
        };
        let (_, total) = readable_page(&store, &viewer, &probe, true)
            .await
            .expect("page");
        assert_eq!(total, 3);
    }
}
