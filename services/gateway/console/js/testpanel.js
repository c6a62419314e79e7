// The test panel: sends a payload to an automation (test run, or a POST to its webhook) and
// shows the answer, the run's duration from runtime.automations.executed, and every event the
// run caused (same correlation id).

import { api, csrfHeaders, describe, enc } from './api.js';
import { field, h, jsonBlock, mount, ms } from './dom.js';
import { endpointUrl } from './triggers.js';

/** How long the panel waits for the run's events to reach the history. */
const EVENTS_WAIT_MS = 15000;

async function runEvents(ws, correlationId) {
  const q = new URLSearchParams({ 'source.correlationId': correlationId, sort: 'asc', limit: '100' });
  const deadline = Date.now() + EVENTS_WAIT_MS;
  let events = [];
  while (Date.now() < deadline) {
    const body = await api('GET', `/v2/workspaces/${enc(ws.id)}/events?${q}`);
    events = (body && body.result && body.result.events) || [];
    if (events.some((e) => e.type === 'runtime.automations.executed')) return events;
    await new Promise((r) => setTimeout(r, 400));
  }
  return events;
}

function parseBody(text, type) {
  if (type && type.includes('json')) {
    try { return { json: JSON.parse(text) }; } catch { /* fall through to text */ }
  }
  return { text };
}

export function testPanel(ctx, automation) {
  const { ws, base } = ctx;
  const url = endpointUrl(ws, automation);
  const payload = h('textarea', { name: 'payload', rows: 6, class: 'code', spellcheck: 'false' }, '{\n  "hello": "world"\n}');
  const mode = h('select', { name: 'mode' },
    h('option', { value: 'test' }, 'Test run (POST …/test)'),
    url ? h('option', { value: 'webhook', selected: true }, 'Webhook (POST to the endpoint URL)') : null);
  const out = h('div', { class: 'test-result', role: 'status', 'aria-live': 'polite' });
  const run = async (e) => {
    e.preventDefault();
    let body;
    try {
      body = JSON.parse(payload.value || '{}');
    } catch (err) {
      mount(out, h('p', { class: 'form-error', role: 'alert' }, `The payload is not valid JSON: ${err.message}`));
      payload.focus();
      return;
    }
    mount(out, h('p', { class: 'loading' }, 'Running…'));
    const started = performance.now();
    const target = mode.value === 'webhook' ? url : `/v2/workspaces/${enc(ws.id)}/test/${enc(automation.slug)}`;
    let res;
    try {
      res = await fetch(target, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'content-type': 'application/json', accept: 'application/json', ...csrfHeaders() },
        body: JSON.stringify(mode.value === 'webhook' ? body : { payload: body }),
      });
    } catch (err) {
      mount(out, h('p', { class: 'notice error', role: 'alert' }, `The request failed: ${err.message}`));
      return;
    }
    const roundTrip = performance.now() - started;
    const text = await res.text();
    const parsed = parseBody(text, res.headers.get('content-type'));
    const correlationId = res.headers.get('x-correlation-id');
    const eventsBox = h('div', {}, h('p', { class: 'loading' }, 'Waiting for the run’s events…'));
    mount(out,
      h('div', { class: 'result-head' },
        h('span', { class: `badge ${res.ok ? 'ok' : 'bad'}` }, `HTTP ${res.status}`),
        h('span', {}, 'round trip ', h('strong', {}, ms(roundTrip))),
        h('span', { class: 'run-duration' }),
        correlationId ? h('a', { href: `${base}/events/${enc(correlationId)}` }, 'events of this run') : null),
      h('h3', {}, res.ok ? 'Output' : 'Error'),
      parsed.json !== undefined ? jsonBlock(parsed.json, res.ok ? 'output' : 'error') : h('pre', { class: `json ${res.ok ? 'output' : 'error'}` }, parsed.text || '(empty)'),
      eventsBox);
    if (!correlationId) {
      mount(eventsBox, h('p', { class: 'muted' }, 'The answer carried no correlation id, so its events cannot be looked up.'));
      return;
    }
    try {
      const events = await runEvents(ws, correlationId);
      const executed = events.find((ev) => ev.type === 'runtime.automations.executed');
      if (executed && executed.payload) {
        mount(out.querySelector('.run-duration'), 'run ', h('strong', {}, ms(executed.payload.duration)),
          ' · ', h('span', { class: `badge ${executed.payload.status === 'error' ? 'bad' : 'ok'}` }, executed.payload.status));
      }
      mount(eventsBox, h('h3', {}, `Events of this run (${events.length})`),
        events.length
          ? h('ol', { class: 'run-events' }, events.map((ev) => h('li', {},
            h('details', {}, h('summary', {}, h('code', {}, ev.type), ev.source && ev.source.automationSlug ? h('span', { class: 'muted' }, ` from ${ev.source.automationSlug}`) : null),
              jsonBlock(ev.payload)))))
          : h('p', { class: 'muted' }, 'No event reached the history yet.'));
    } catch (err) {
      mount(eventsBox, h('p', { class: 'notice error' }, `Events are unavailable: ${describe(err)}`));
    }
  };
  return h('form', { class: 'card stack test-panel', onsubmit: run, 'aria-labelledby': 'test-title' },
    h('h2', { id: 'test-title' }, 'Test panel'),
    h('div', { class: 'row' }, field('Send as', mode)),
    field('Payload (JSON)', payload),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Run')),
    out);
}
