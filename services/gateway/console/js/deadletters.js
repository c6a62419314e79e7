// Dead letters: runs that failed every attempt of their automation's retry policy, and the
// broker's own dead letters of this workspace's events. Replay runs the automation as it is now
// with the same trigger; a success removes the dead letter.

import { api, describe, enc } from './api.js';
import { confirmDialog, h, jsonBlock, mount, time, toast } from './dom.js';

export async function deadLettersView(ctx) {
  const { ws, base } = ctx;
  const path = `/v2/workspaces/${enc(ws.id)}/deadletters`;
  const body = h('div', { class: 'stack' });
  const refresh = async () => {
    mount(body, h('p', { class: 'loading' }, 'Reading dead letters…'));
    const { result } = await api('GET', path);
    const letters = result.deadLetters || [];
    const broker = result.broker || [];
    mount(body,
      h('div', { class: 'page-head' }, h('h1', {}, 'Dead letters')),
      h('p', { class: 'muted' }, 'Runs that failed every attempt of their retry policy. Fix the automation, then replay: it runs again with the same trigger.'),
      letters.length
        ? h('div', { class: 'card table-wrap' }, h('table', { class: 'deadletters' },
          h('thead', {}, h('tr', {}, ['Automation', 'Trigger', 'Error', 'Attempts', 'Last failed', ''].map((t) => h('th', { scope: 'col' }, t)))),
          h('tbody', {}, letters.map((l) => h('tr', { 'data-id': l.id },
            h('td', {}, h('a', { href: `${base}/automations/${enc(l.automation)}` }, l.automation)),
            h('td', {}, h('code', {}, l.trigger.type), ` ${l.trigger.value || ''}`),
            h('td', {}, h('span', { class: 'error-text' }, `${l.error.error}: ${l.error.message}`)),
            h('td', { class: 'num' }, String(l.attempts)),
            h('td', {}, time(l.lastFailedAt)),
            h('td', { class: 'actions' },
              h('button', {
                type: 'button', class: 'small',
                onclick: async () => {
                  try {
                    const run = await api('POST', `${path}/${enc(l.id)}/replay`);
                    toast(run.status === 'success' ? `Replayed: ${l.automation} succeeded` : `Replayed: ${l.automation} failed again`, run.status === 'success' ? 'info' : 'error');
                  } catch (err) { toast(describe(err), 'error'); }
                  refresh();
                },
              }, 'Replay'),
              h('button', {
                type: 'button', class: 'small ghost danger-text',
                onclick: async () => {
                  if (!await confirmDialog('Delete this dead letter?', 'Its run is not replayed.')) return;
                  try { await api('DELETE', `${path}/${enc(l.id)}`); toast('Dead letter deleted'); } catch (err) { toast(describe(err), 'error'); }
                  refresh();
                },
              }, 'Delete')))))))
        : h('p', { class: 'empty' }, 'No dead letter: every failed run either succeeded on a retry or had no retry policy.'),
      broker.length
        ? h('section', { class: 'card' }, h('h2', {}, 'Undeliverable events'),
          h('p', { class: 'muted' }, 'Events the runtime gave up delivering after repeated transient failures.'),
          broker.map((b) => h('details', {}, h('summary', {}, h('code', {}, b.event.type), ` — ${b.error.message} (${b.attempts} deliveries)`), jsonBlock(b.event))))
        : null);
  };
  await refresh();
  return body;
}
