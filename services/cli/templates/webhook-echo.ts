// webhook-echo: answers a webhook request with its method, path, query and JSON body, with
// status 201 for a `POST` (200 otherwise) and an `x-refract-echo` header.

import { RefractError, log, respond, type Invocation, type Output } from '@refract/sdk';

export default function handler(inv: Invocation): Output {
  if (inv.trigger.kind !== 'http') {
    throw new RefractError('NotAWebhook', 'this automation only answers webhook requests');
  }
  const req = inv.trigger.request;
  // An empty body echoes as null; a body that is not JSON fails the run with `InvalidJson`.
  const body: unknown = req.body.length === 0 ? null : req.json();
  log.debug(`echoing ${req.method} ${req.path}`);
  return respond(
    { method: req.method, path: req.path, query: req.query, body },
    { status: req.method === 'POST' ? 201 : 200, headers: { 'x-refract-echo': inv.correlationId } },
  );
}
