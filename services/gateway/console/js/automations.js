// The automations of a workspace: list with triggers and status, and the form that creates a
// component automation (its .wasm is uploaded on the automation's page).

import { api, describe, enc } from './api.js';
import { field, h, mount, time, toast } from './dom.js';
import { nameOf, statusBadge, triggerList } from './triggers.js';

export async function automationsView(ctx) {
  const { ws, base } = ctx;
  const automations = await api('GET', `/v2/workspaces/${enc(ws.id)}/automations?limit=100`);
  const rows = automations.map((a) => h('tr', {},
    h('th', { scope: 'row' }, h('a', { href: `${base}/automations/${enc(a.slug)}` }, nameOf(a)),
      h('div', { class: 'muted' }, h('code', {}, a.slug))),
    h('td', {}, h('span', { class: `kind ${a.kind}` }, a.kind || '')),
    h('td', {}, triggerList(ws, a, { compact: true })),
    h('td', {}, statusBadge(a)),
    h('td', {}, a.updatedAt ? time(a.updatedAt) : '—')));
  return h('section', {},
    h('div', { class: 'page-head' }, h('h1', {}, 'Automations'),
      h('div', { class: 'actions' },
        h('a', { class: 'button secondary', href: `${base}/dsl` }, 'New DSL automation'),
        h('a', { class: 'button secondary', href: `${base}/runs` }, 'Runs & charts'))),
    automations.length
      ? h('div', { class: 'table-wrap card' }, h('table', {},
        h('thead', {}, h('tr', {}, ['Automation', 'Kind', 'Triggers', 'Status', 'Updated'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, rows)))
      : h('p', { class: 'empty card' }, 'No automation yet. Create one below, then upload its WebAssembly component.'),
    createForm(ctx));
}

function lines(text, sep) {
  return text.split(sep).map((s) => s.trim()).filter(Boolean);
}

function createForm(ctx) {
  const { ws, base } = ctx;
  const name = h('input', { name: 'name', required: true, placeholder: 'Webhook echo' });
  const slug = h('input', { name: 'slug', pattern: '[A-Za-z0-9 _\\-]{1,64}', placeholder: 'generated from the name' });
  const endpoint = h('input', { type: 'checkbox', name: 'endpoint', checked: true });
  const events = h('input', { name: 'events', placeholder: 'orders.created, orders.paid' });
  const schedules = h('textarea', { name: 'schedules', rows: 2, placeholder: '*/5 * * * *' });
  const err = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const form = h('form', {
    class: 'card stack',
    'aria-labelledby': 'new-automation',
    onsubmit: async (e) => {
      e.preventDefault();
      err.hidden = true;
      const when = {};
      if (endpoint.checked) when.endpoint = true;
      const ev = lines(events.value, ',');
      if (ev.length) when.events = ev;
      const sc = lines(schedules.value, '\n');
      if (sc.length) when.schedules = sc;
      const body = { name: name.value, component: {} };
      if (slug.value) body.slug = slug.value;
      if (Object.keys(when).length) body.when = when;
      try {
        const created = await api('POST', `/v2/workspaces/${enc(ws.id)}/automations`, body);
        toast(`Automation ${created.slug} created`);
        location.hash = `${base}/automations/${enc(created.slug)}`;
      } catch (e2) {
        mount(err, describe(e2));
        err.hidden = false;
      }
    },
  },
  h('h2', { id: 'new-automation' }, 'New component automation'),
  h('div', { class: 'row' }, field('Name', name), field('Slug', slug)),
  h('div', { class: 'check' }, endpoint, h('label', { for: endpoint.id || (endpoint.id = 'new-endpoint') }, 'Webhook endpoint')),
  field('Events', events, 'Event types that start it, separated by commas.'),
  field('Schedules', schedules, 'One cron expression per line, in UTC (5 fields, or 6 with seconds).'),
  err,
  h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Create automation')));
  return form;
}
