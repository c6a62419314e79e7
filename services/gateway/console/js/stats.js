// Run statistics computed from `runtime.automations.executed` events read through the history
// API: runs per minute (errors apart) and p50/p99 durations per time bucket.

import { api, enc } from './api.js';

/** How many history pages (of 500 runs) a chart reads at most. */
const MAX_PAGES = 10;
const PAGE = 500;

/** The executed events since `since` (newest first), optionally of one automation. */
export async function loadRuns(ws, since, slug) {
  const runs = [];
  let beforeId = null;
  for (let page = 0; page < MAX_PAGES; page += 1) {
    const q = new URLSearchParams({ types: 'runtime.automations.executed', afterDate: since.toISOString(), limit: String(PAGE) });
    if (slug) q.set('payload.slug', slug);
    if (beforeId) q.set('beforeId', beforeId);
    const body = await api('GET', `/v2/workspaces/${enc(ws.id)}/events?${q}`);
    const events = (body && body.result && body.result.events) || [];
    runs.push(...events);
    if (events.length < PAGE) return { runs, truncated: false };
    beforeId = events[events.length - 1].id;
  }
  return { runs, truncated: true };
}

function percentile(sorted, p) {
  if (!sorted.length) return null;
  const rank = Math.ceil((p / 100) * sorted.length) - 1;
  return sorted[Math.min(Math.max(rank, 0), sorted.length - 1)];
}

/** Buckets of `bucketMs` from `since` to `until`: {t, ok, err, p50, p99}. */
export function bucketize(runs, since, until, bucketMs) {
  const start = since.getTime();
  const count = Math.ceil((until.getTime() - start) / bucketMs);
  const buckets = Array.from({ length: count }, (_, i) => ({ t: new Date(start + i * bucketMs), ok: 0, err: 0, durations: [] }));
  for (const run of runs) {
    const i = Math.floor((Date.parse(run.createdAt) - start) / bucketMs);
    if (i < 0 || i >= count) continue;
    const b = buckets[i];
    if (run.payload && run.payload.status === 'error') b.err += 1; else b.ok += 1;
    if (run.payload && typeof run.payload.duration === 'number') b.durations.push(run.payload.duration);
  }
  for (const b of buckets) {
    b.durations.sort((x, y) => x - y);
    b.p50 = percentile(b.durations, 50);
    b.p99 = percentile(b.durations, 99);
  }
  return buckets;
}

/** Totals over all runs: count, errors, p50, p99. */
export function summary(runs) {
  const durations = runs.map((r) => r.payload && r.payload.duration).filter((d) => typeof d === 'number').sort((a, b) => a - b);
  return {
    count: runs.length,
    errors: runs.filter((r) => r.payload && r.payload.status === 'error').length,
    p50: percentile(durations, 50),
    p99: percentile(durations, 99),
  };
}

export const RANGES = {
  hour: { label: 'Last hour', ms: 3600e3, bucketMs: 60e3, unit: 'minute' },
  day: { label: 'Last day', ms: 86400e3, bucketMs: 30 * 60e3, unit: '30 min' },
};
