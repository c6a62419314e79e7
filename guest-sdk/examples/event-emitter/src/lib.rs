//! event-emitter: on an event `<type>`, emits a derived `<type>.processed` event carrying the
//! original payload and the id of the event it came from, and returns the new event's id.

use refract_sdk::{Error, Invocation, Trigger};
use serde::Serialize;
use serde_json::{Value, json};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Processed<'a> {
    source_event_id: &'a str,
    original: &'a Value,
}

#[refract_sdk::automation]
fn handler(inv: Invocation) -> Result<Value, Error> {
    let Trigger::Event(event) = &inv.trigger else {
        return Err(Error::new("NotAnEvent", "event-emitter runs on events only"));
    };
    let derived_type = format!("{}.processed", event.event_type);
    let id = refract_sdk::emit(
        &derived_type,
        &Processed { source_event_id: &event.id, original: &event.payload },
    )?;
    refract_sdk::info!("emitted {derived_type} as {id}");
    Ok(json!({ "emitted": { "id": id, "type": derived_type } }))
}
