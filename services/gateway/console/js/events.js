// The live events feed: the workspace WebSocket (spec §8), or long/short polling of the history
// when the socket cannot open; type and payload filters, pause/resume, and a detail view.

import { api, ApiError, describe, enc } from './api.js';
import { field, h, jsonBlock, mount, time } from './dom.js';

/** Events kept on screen; older ones drop off the bottom. */
const MAX_SHOWN = 300;
const POLL_MS = 2000;

/** Filters from the form: {types: [..], payload: {path, value} | null, correlationId}. */
function matches(filters, ev) {
  if (filters.types.length && !filters.types.some((t) => (t.endsWith('.*') ? ev.type.startsWith(t.slice(0, -1)) : ev.type === t))) return false;
  if (filters.correlationId && (!ev.source || ev.source.correlationId !== filters.correlationId)) return false;
  if (filters.payload) {
    let v = ev.payload;
    for (const seg of filters.payload.path.split('.')) v = v && typeof v === 'object' ? v[seg] : undefined;
    if (v === undefined || v === null) return false;
    const want = filters.payload.value;
    const got = typeof v === 'string' ? v : JSON.stringify(v);
    if (want.includes('*')) {
      const re = new RegExp(`^${want.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
      if (!re.test(got)) return false;
    } else if (got !== want) {
      return false;
    }
  }
  return true;
}

function parsePayloadFilter(text) {
  const i = text.indexOf('=');
  if (i <= 0) return null;
  return { path: text.slice(0, i).trim(), value: text.slice(i + 1).trim() };
}

function historyQuery(filters) {
  const q = new URLSearchParams({ limit: '100' });
  if (filters.types.length) q.set('types', filters.types.join(','));
  if (filters.correlationId) q.set('source.correlationId', filters.correlationId);
  if (filters.payload) q.set(`payload.${filters.payload.path}`, filters.payload.value);
  return q;
}

function socketFilters(filters) {
  const f = {};
  if (filters.types.length) f.types = filters.types;
  if (filters.payload) f.payloadQuery = { [filters.payload.path]: filters.payload.value };
  if (filters.correlationId) f.where = { field: 'source.correlationId', op: 'eq', value: filters.correlationId };
  return f;
}

export async function eventsView(ctx, correlationId) {
  const { ws } = ctx;
  const state = {
    filters: { types: [], payload: null, correlationId: correlationId || null },
    paused: false, queue: [], seen: new Set(), lastId: null, socket: null, timer: null, closed: false, transport: '',
  };
  const list = h('ol', { class: 'feed', 'aria-label': 'Events, newest first' });
  const detail = h('aside', { class: 'event-detail card', 'aria-label': 'Event detail', hidden: true });
  const status = h('span', { class: 'live-status', role: 'status' });
  const pauseBtn = h('button', { type: 'button', class: 'secondary', 'aria-pressed': 'false' }, 'Pause');

  const setStatus = (text, kind) => { mount(status, h('span', { class: `dot ${kind}` }), text); };

  const showDetail = (ev, row) => {
    for (const r of list.querySelectorAll('[aria-current="true"]')) r.removeAttribute('aria-current');
    row.setAttribute('aria-current', 'true');
    mount(detail,
      h('div', { class: 'detail-head' }, h('h2', {}, ev.type),
        h('button', { type: 'button', class: 'ghost small', 'aria-label': 'Close detail', onclick: () => { detail.hidden = true; row.focus(); } }, 'Close')),
      h('p', { class: 'muted' }, ev.createdAt, ' · id ', h('code', {}, ev.id)),
      ev.source && ev.source.correlationId
        ? h('p', {}, h('a', { href: `${ctx.base}/events/${enc(ev.source.correlationId)}` }, 'All events of this correlation id'))
        : null,
      h('h3', {}, 'Payload'), jsonBlock(ev.payload),
      h('h3', {}, 'Envelope'), jsonBlock({ ...ev, payload: undefined }));
    detail.hidden = false;
  };

  const row = (ev) => {
    const failed = ev.error || (ev.payload && ev.payload.status === 'error');
    const li = h('li', { class: `event${failed ? ' failed' : ''}`, tabindex: '0', role: 'button', 'aria-label': `${ev.type}, ${summaryOf(ev)}, show detail`, dataset: { type: ev.type } },
      h('code', { class: 'ev-type' }, ev.type),
      h('span', { class: 'ev-summary' }, summaryOf(ev)),
      time(ev.createdAt));
    li.addEventListener('click', () => showDetail(ev, li));
    li.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); showDetail(ev, li); } });
    return li;
  };

  const add = (events, { prepend = true } = {}) => {
    const fresh = events.filter((ev) => ev && ev.id && !state.seen.has(ev.id) && matches(state.filters, ev));
    for (const ev of fresh) state.seen.add(ev.id);
    if (!fresh.length) return;
    if (state.paused) {
      state.queue.push(...fresh);
      pauseBtn.textContent = `Resume (${state.queue.length} new)`;
      return;
    }
    list.querySelector('.empty')?.remove();
    for (const ev of fresh) {
      if (prepend) list.prepend(row(ev)); else list.append(row(ev));
    }
    while (list.children.length > MAX_SHOWN) list.lastElementChild.remove();
  };

  const track = (ev) => { if (ev && ev.id) state.lastId = ev.id; };

  const loadHistory = async () => {
    mount(list, h('li', { class: 'empty' }, 'Loading…'));
    state.seen.clear();
    const body = await api('GET', `/v2/workspaces/${enc(ws.id)}/events?${historyQuery(state.filters)}`);
    const events = (body && body.result && body.result.events) || [];
    mount(list);
    if (events.length) state.lastId = events[0].id;
    add(events, { prepend: false });
    if (!list.children.length) mount(list, h('li', { class: 'empty' }, 'No event yet. They appear here as they happen.'));
  };

  const poll = async () => {
    if (state.closed) return;
    try {
      const q = historyQuery(state.filters);
      q.set('sort', 'asc');
      if (state.lastId) q.set('afterId', state.lastId);
      else q.set('afterDate', new Date(Date.now() - POLL_MS).toISOString());
      const body = await api('GET', `/v2/workspaces/${enc(ws.id)}/events?${q}`);
      const events = (body && body.result && body.result.events) || [];
      events.forEach(track);
      add(events);
      setStatus('Live (polling the history every 2 s; the WebSocket is unavailable)', 'poll');
    } catch (err) {
      setStatus(`Polling failed: ${describe(err)}`, 'off');
      if (err instanceof ApiError && err.status === 401) return;
    }
    state.timer = setTimeout(poll, POLL_MS);
  };

  const connect = (attempt = 0, previous = null) => {
    if (state.closed) return;
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    let opened = false;
    let socket;
    try {
      socket = new WebSocket(`${proto}://${location.host}/v2/workspaces/${enc(ws.id)}/events/ws`, 'refract.events.v1');
    } catch {
      poll();
      return;
    }
    state.socket = socket;
    setStatus('Connecting…', 'wait');
    socket.addEventListener('open', () => { opened = true; });
    socket.addEventListener('message', (msg) => {
      let frame;
      try { frame = JSON.parse(msg.data); } catch { return; }
      if (frame.type === 'hello') {
        state.socketId = frame.socketId;
        if (previous) socket.send(JSON.stringify({ type: 'reconnect', socketId: previous, lastEventId: state.lastId || undefined }));
        socket.send(JSON.stringify({ type: 'subscribe', filters: socketFilters(state.filters) }));
        setStatus('Live (WebSocket)', 'live');
      } else if (frame.type === 'event') {
        track(frame.event);
        add([frame.event]);
      } else if (frame.type === 'error') {
        setStatus(`Live (WebSocket) · ${frame.error}: ${frame.message}`, 'warn');
      }
    });
    socket.addEventListener('close', () => {
      if (state.closed) return;
      if (!opened) {
        // The route is missing or refused the upgrade: the history still serves events.
        poll();
        return;
      }
      const delay = Math.min(30000, 1000 * 2 ** attempt);
      setStatus(`Disconnected; reconnecting in ${Math.round(delay / 1000)} s`, 'off');
      setTimeout(() => connect(attempt + 1, state.socketId), delay);
    });
  };

  const restart = async () => {
    clearTimeout(state.timer);
    if (state.socket && state.socket.readyState === WebSocket.OPEN) {
      state.socket.send(JSON.stringify({ type: 'subscribe', filters: socketFilters(state.filters) }));
    }
    try {
      await loadHistory();
    } catch (err) {
      mount(list, h('li', { class: 'notice error' }, describe(err)));
    }
    if (!state.socket || state.socket.readyState > WebSocket.OPEN) poll();
  };

  pauseBtn.addEventListener('click', () => {
    state.paused = !state.paused;
    pauseBtn.setAttribute('aria-pressed', String(state.paused));
    if (!state.paused) {
      const queued = state.queue.splice(0);
      for (const ev of queued) state.seen.delete(ev.id);
      add(queued);
      pauseBtn.textContent = 'Pause';
    } else {
      pauseBtn.textContent = 'Resume';
    }
  });

  const typesInput = h('input', { name: 'types', placeholder: 'runtime.automations.executed, orders.*' });
  const payloadInput = h('input', { name: 'payload', placeholder: 'slug=echo' });
  const filterForm = h('form', {
    class: 'filters',
    onsubmit: async (e) => {
      e.preventDefault();
      state.filters.types = typesInput.value.split(',').map((t) => t.trim()).filter(Boolean);
      state.filters.payload = parsePayloadFilter(payloadInput.value);
      await restart();
    },
  }, field('Types', typesInput), field('Payload', payloadInput, 'path=value; * as a wildcard'),
  h('button', { type: 'submit', class: 'secondary' }, 'Apply'));

  ctx.onLeave(() => {
    state.closed = true;
    clearTimeout(state.timer);
    if (state.socket) state.socket.close(1000);
  });

  try {
    await loadHistory();
  } catch (err) {
    mount(list, h('li', { class: 'notice error' }, describe(err)));
  }
  connect();

  return h('section', { class: 'stack' },
    h('div', { class: 'page-head' }, h('h1', {}, 'Live events'), h('div', { class: 'actions' }, status, pauseBtn)),
    correlationId ? h('p', { class: 'notice' }, 'Showing the events of run ', h('code', {}, correlationId), ' · ',
      h('a', { href: `${ctx.base}/events` }, 'show all events')) : null,
    h('div', { class: 'card' }, filterForm),
    h('div', { class: 'feed-layout' }, h('div', { class: 'card feed-card' }, list), detail));
}

function summaryOf(ev) {
  const p = ev.payload || {};
  if (ev.type === 'runtime.automations.executed') return `${p.slug} · ${p.status} · ${p.duration} ms`;
  if (ev.type === 'runtime.interactions.triggered') return `${p.automation || ''} · ${p.trigger ? p.trigger.type : ''}`;
  const text = JSON.stringify(p);
  return text.length > 120 ? `${text.slice(0, 117)}…` : text;
}
