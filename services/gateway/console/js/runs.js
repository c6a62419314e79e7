// Run history from runtime.automations.executed, the per-automation charts, and one run with
// its log (GET /v2/workspaces/{id}/runs/{runId}).

import { api, enc } from './api.js';
import { h, mount, ms, time } from './dom.js';
import { bucketize, loadRuns, RANGES, summary } from './stats.js';
import { durationChart, legend, runsChart } from './charts.js';

/** A table of runs (newest first); the correlation id links to the events of that run. */
export function runsTable(runs, base, { showSlug = true } = {}) {
  if (!runs.length) return h('p', { class: 'empty' }, 'No run in this period.');
  return h('div', { class: 'table-wrap' }, h('table', { class: 'runs' },
    h('thead', {}, h('tr', {}, [showSlug ? 'Automation' : null, 'Started', 'Status', 'Duration', 'Trigger', 'Events', 'Log']
      .filter(Boolean).map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, runs.map((run) => {
      const p = run.payload || {};
      const trig = p.trigger || {};
      const corr = run.source && run.source.correlationId;
      return h('tr', { class: p.status === 'error' ? 'failed' : '' },
        showSlug ? h('td', {}, h('a', { href: `${base}/automations/${enc(p.slug || '')}` }, p.slug)) : null,
        h('td', {}, time(p.startedAt || run.createdAt)),
        h('td', {}, h('span', { class: `badge ${p.status === 'error' ? 'bad' : 'ok'}` }, p.status || '?'),
          p.error ? h('div', { class: 'error-text' }, `${p.error.error || ''} ${p.error.message || ''}`) : null),
        h('td', { class: 'num' }, ms(p.duration)),
        h('td', {}, h('code', {}, trig.type || ''), trig.value ? h('span', { class: 'muted' }, ` ${trig.value}`) : null),
        h('td', {}, corr ? h('a', { href: `${base}/events/${enc(corr)}`, title: 'Events of this run' }, h('code', {}, corr.slice(0, 12))) : '—'),
        h('td', {}, p.runId ? h('a', { class: 'run-log', href: `${base}/runs/${enc(p.runId)}`, title: 'This run: output and log' },
          `${(p.logs || []).length} lines`) : '—'));
    }))));
}

function stat(label, value, cls = '') {
  return h('div', { class: `stat ${cls}` }, h('span', { class: 'stat-value' }, value), h('span', { class: 'stat-label' }, label));
}

/** Summary figures and the two charts for one set of runs. */
export function chartsFor(runs, since, until, range, title) {
  const buckets = bucketize(runs, since, until, range.bucketMs);
  const sum = summary(runs);
  return h('article', { class: 'card chart-card' },
    title ? h('h3', {}, title) : null,
    h('div', { class: 'stats' },
      stat('runs', String(sum.count)),
      stat('failed', String(sum.errors), sum.errors ? 'bad' : ''),
      stat('p50', ms(sum.p50)), stat('p99', ms(sum.p99))),
    h('div', { class: 'chart-pair' },
      h('figure', {}, runsChart(buckets, range.bucketMs, `${title || 'All automations'}: runs per minute, ${range.label.toLowerCase()}`),
        h('figcaption', {}, `Runs per minute (per ${range.unit})`)),
      h('figure', {}, durationChart(buckets, `${title || 'All automations'}: p50 and p99 duration, ${range.label.toLowerCase()}`),
        h('figcaption', {}, 'Duration p50 / p99'))));
}

function rangeSwitch(current, onPick) {
  return h('div', { class: 'segmented', role: 'group', 'aria-label': 'Period' },
    Object.entries(RANGES).map(([key, r]) => h('button', {
      type: 'button', 'aria-pressed': String(key === current), onclick: () => onPick(key),
    }, r.label)));
}

export async function runsView(ctx) {
  const { ws, base } = ctx;
  const body = h('div', { class: 'stack' });
  const show = async (key) => {
    const range = RANGES[key];
    const until = new Date();
    const since = new Date(until.getTime() - range.ms);
    mount(body, h('p', { class: 'loading' }, 'Reading runs…'));
    const { runs, truncated } = await loadRuns(ws, since);
    const bySlug = new Map();
    for (const run of runs) {
      const slug = (run.payload && run.payload.slug) || '?';
      if (!bySlug.has(slug)) bySlug.set(slug, []);
      bySlug.get(slug).push(run);
    }
    mount(body,
      h('div', { class: 'page-head' }, h('h1', {}, 'Runs'), rangeSwitch(key, show)),
      truncated ? h('p', { class: 'notice' }, `Showing the latest ${runs.length} runs of this period.`) : null,
      legend(),
      chartsFor(runs, since, until, range, 'All automations'),
      [...bySlug.entries()].map(([slug, list]) => chartsFor(list, since, until, range, slug)),
      h('h2', {}, 'History'),
      h('div', { class: 'card' }, runsTable(runs.slice(0, 100), base)));
  };
  await show('hour');
  return body;
}

/** One run: its status, trigger, timings, input, output, error and log lines. */
export async function runView(ctx, runId) {
  const { ws, base } = ctx;
  const run = await api('GET', `/v2/workspaces/${enc(ws.id)}/runs/${enc(runId)}`);
  const json = (v) => h('pre', { class: 'json' }, JSON.stringify(v, null, 2));
  const trig = run.trigger || {};
  const logs = run.logs || [];
  return h('div', { class: 'stack run-view' },
    h('div', { class: 'page-head' }, h('h1', {}, `Run of ${run.automation}`),
      h('span', { class: `badge ${run.status === 'error' ? 'bad' : 'ok'}` }, run.status)),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Started'), h('dd', {}, time(run.startedAt)),
      h('dt', {}, 'Duration'), h('dd', {}, ms(run.duration)),
      h('dt', {}, 'Trigger'), h('dd', {}, h('code', {}, trig.type || ''), trig.value ? ` ${trig.value}` : ''),
      h('dt', {}, 'Automation'), h('dd', {}, h('a', { href: `${base}/automations/${enc(run.automation)}` }, run.automation)),
      h('dt', {}, 'Events'), h('dd', {}, h('a', { href: `${base}/events/${enc(run.correlationId)}` }, h('code', {}, run.correlationId)))),
    run.error ? h('div', { class: 'notice error' }, `${run.error.error}: ${run.error.message}`) : null,
    h('section', { class: 'card' }, h('h2', {}, 'Log'),
      logs.length
        ? h('ol', { class: 'log-lines' }, logs.map((l) => h('li', { class: `log ${l.level}` },
          h('span', { class: 'log-at' }, `+${l.at} ms`), h('span', { class: 'log-level' }, l.level),
          h('span', { class: 'log-source' }, l.source), h('span', { class: 'log-message' }, l.message))))
        : h('p', { class: 'empty' }, 'This run logged nothing.'),
      run.logsDropped ? h('p', { class: 'muted' }, `${run.logsDropped} lines or bytes over the log budget were dropped.`) : null),
    h('section', { class: 'card' }, h('h2', {}, 'Output'), json(run.output)),
    h('section', { class: 'card' }, h('h2', {}, 'Input'), json(run.input)));
}
