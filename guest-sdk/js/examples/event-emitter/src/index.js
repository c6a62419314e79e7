// event-emitter: on an event `<type>`, emits a derived `<type>.processed` event carrying the
// original payload and the id of the event it came from, and returns the new event's id.

import { RefractError, emit, log } from '@refract/sdk';

export default function handler(inv) {
  if (inv.trigger.kind !== 'event') {
    throw new RefractError('NotAnEvent', 'event-emitter runs on events only');
  }
  const { event } = inv.trigger;
  const derivedType = `${event.type}.processed`;
  const id = emit(derivedType, { sourceEventId: event.id, original: event.payload });
  log.info(`emitted ${derivedType} as ${id}`);
  return { emitted: { id, type: derivedType } };
}
