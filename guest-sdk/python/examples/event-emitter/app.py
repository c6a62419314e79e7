"""event-emitter: on an event <type>, emits a derived <type>.processed event carrying the
original payload and the id of the event it came from, and returns the new event's id."""

from typing import Any

from refract import Invocation, RefractError, emit, log


def handler(inv: Invocation) -> dict[str, Any]:
    event = inv.event
    if event is None:
        raise RefractError("NotAnEvent", "event-emitter runs on events only")
    derived_type = f"{event.type}.processed"
    event_id = emit(derived_type, {"sourceEventId": event.id, "original": event.payload})
    log.info(f"emitted {derived_type} as {event_id}")
    return {"emitted": {"id": event_id, "type": derived_type}}
