// How an automation is started, for people: event chips, schedules with their next run, and
// the webhook URL with a copy button.

import { copyButton, h } from './dom.js';
import { nextRun } from './cron.js';

export function endpointUrl(ws, automation) {
  const endpoint = automation.when && automation.when.endpoint;
  if (!endpoint) return null;
  const name = endpoint === true ? automation.slug : endpoint;
  return `${location.origin}/v2/workspaces/${encodeURIComponent(ws.id)}/webhooks/${encodeURIComponent(name)}`;
}

function scheduleItem(entry) {
  const cron = typeof entry === 'string' ? entry : entry.cron;
  const zone = typeof entry === 'object' && entry.timezone ? entry.timezone : null;
  // Next runs are computed here only for UTC schedules in plain cron syntax; anything else
  // shows the expression alone rather than a guess.
  const next = zone ? null : nextRun(cron, new Date());
  return h('li', { class: 'chip schedule' },
    h('span', { class: 'chip-kind' }, 'cron'), h('code', {}, cron), zone ? ` ${zone}` : ' UTC',
    next ? h('span', { class: 'muted' }, ' · next ', h('time', { datetime: next.toISOString(), title: next.toISOString() }, next.toLocaleString())) : null);
}

export function triggerList(ws, automation, { compact = false } = {}) {
  const when = automation.when || {};
  const items = [];
  for (const type of when.events || []) {
    items.push(h('li', { class: 'chip event' }, h('span', { class: 'chip-kind' }, 'event'), h('code', {}, type)));
  }
  for (const entry of when.schedules || []) items.push(scheduleItem(entry));
  const url = endpointUrl(ws, automation);
  if (url) {
    items.push(h('li', { class: 'chip endpoint' }, h('span', { class: 'chip-kind' }, 'webhook'),
      compact ? h('code', { title: url }, url.replace(location.origin, '')) : h('code', {}, url),
      copyButton(url, 'Copy URL')));
  }
  if (!items.length) return h('p', { class: 'muted' }, 'No trigger: runs only from the test panel or a call.');
  return h('ul', { class: 'chips' }, items);
}

export function statusBadge(automation) {
  if (automation.disabled) return h('span', { class: 'badge off' }, 'disabled');
  if (automation.kind === 'component' || automation.component) {
    const status = automation.component && automation.component.status;
    return status === 'ready'
      ? h('span', { class: 'badge ok' }, 'ready')
      : h('span', { class: 'badge warn', title: 'Upload a .wasm component to make it runnable' }, 'no component');
  }
  return h('span', { class: 'badge ok' }, 'active');
}

export function nameOf(automation) {
  const name = automation.name;
  if (typeof name === 'string') return name;
  if (name && typeof name === 'object') return name.en || Object.values(name)[0] || automation.slug;
  return automation.slug;
}
