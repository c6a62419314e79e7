// fetch-then-wait (TypeScript): fetches `config.url`, emits a `fetch-then-wait.requested` event
// with the result, then waits (`config.timeoutMs`, default 5 s) for a `config.replyType` event
// (default `fetch-then-wait.replied`) with the run's correlation id. Returns both.

import { emit, fetch, log, wait, type Invocation } from '@refract/sdk';

interface Config {
  url: string;
  replyType?: string;
  timeoutMs?: number;
}

export default async function handler(inv: Invocation) {
  const config = inv.config as Config;
  const replyType = config.replyType ?? 'fetch-then-wait.replied';
  const timeoutMs = config.timeoutMs ?? 5_000;

  const response = fetch(config.url, { headers: { accept: 'application/json' } });
  // A JSON body is returned as JSON, anything else as text.
  let body: unknown;
  try {
    body = response.json();
  } catch {
    body = response.text();
  }

  const requestEventId = emit('fetch-then-wait.requested', {
    url: config.url,
    status: response.status,
    correlationId: inv.correlationId,
  });

  const reply = wait([{ type: replyType, correlationId: inv.correlationId }], timeoutMs);
  if (reply === null) log.warn(`no reply within ${timeoutMs} ms`);

  return {
    fetch: { status: response.status, body },
    requestEventId,
    reply: reply && { id: reply.id, payload: reply.payload },
  };
}
