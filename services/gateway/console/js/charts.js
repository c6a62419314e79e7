// Inline SVG charts drawn from bucketed run data (stats.js). Colours come from CSS classes so
// the page works under a style-src 'self' policy and in dark mode.

import { h, ms, s } from './dom.js';

const W = 640;
const H = 180;
const PAD = { l: 58, r: 12, t: 12, b: 24 };

function niceMax(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function clock(t) {
  return t.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function frame(label, maxY, fmt, buckets) {
  const plotW = W - PAD.l - PAD.r;
  const plotH = H - PAD.t - PAD.b;
  const g = [];
  for (let i = 0; i <= 4; i += 1) {
    const y = PAD.t + plotH - (plotH * i) / 4;
    g.push(s('line', { class: 'grid', x1: PAD.l, x2: W - PAD.r, y1: y, y2: y }));
    g.push(s('text', { class: 'axis', x: PAD.l - 6, y: y + 4, 'text-anchor': 'end' }, fmt((maxY * i) / 4)));
  }
  const ticks = 6;
  for (let i = 0; i < ticks; i += 1) {
    const idx = Math.round((i * (buckets.length - 1)) / (ticks - 1));
    const x = PAD.l + ((idx + 0.5) * plotW) / buckets.length;
    const anchor = i === 0 ? 'start' : i === ticks - 1 ? 'end' : 'middle';
    g.push(s('text', { class: 'axis', x, y: H - 6, 'text-anchor': anchor }, clock(buckets[idx].t)));
  }
  return s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': label }, s('title', {}, label), g);
}

/** Runs per minute, errors stacked in red on top of successes. */
export function runsChart(buckets, bucketMs, label) {
  const perMin = 60e3 / bucketMs;
  const maxY = niceMax(Math.max(...buckets.map((b) => (b.ok + b.err) * perMin), 0));
  const fmt = (v) => (v >= 10 ? String(Math.round(v)) : String(Number(v.toFixed(2))));
  const svg = frame(label, maxY, fmt, buckets);
  const plotW = W - PAD.l - PAD.r;
  const plotH = H - PAD.t - PAD.b;
  const bw = plotW / buckets.length;
  buckets.forEach((b, i) => {
    if (!b.ok && !b.err) return;
    const x = PAD.l + i * bw + bw * 0.1;
    const hOk = (b.ok * perMin * plotH) / maxY;
    const hErr = (b.err * perMin * plotH) / maxY;
    const tip = `${clock(b.t)}: ${b.ok + b.err} runs${b.err ? `, ${b.err} failed` : ''}`;
    if (b.ok) svg.append(s('rect', { class: 'bar ok', x, width: bw * 0.8, y: PAD.t + plotH - hOk, height: hOk }, s('title', {}, tip)));
    if (b.err) svg.append(s('rect', { class: 'bar err', x, width: bw * 0.8, y: PAD.t + plotH - hOk - hErr, height: hErr }, s('title', {}, tip)));
  });
  return svg;
}

/** p50 and p99 run duration per bucket; buckets with failures get a red marker. */
export function durationChart(buckets, label) {
  const maxY = niceMax(Math.max(...buckets.map((b) => b.p99 || 0), 0));
  const svg = frame(label, maxY, (v) => (v === 0 ? '0' : v < 10 ? `${v.toFixed(1)} ms` : ms(v)), buckets);
  const plotW = W - PAD.l - PAD.r;
  const plotH = H - PAD.t - PAD.b;
  const x = (i) => PAD.l + ((i + 0.5) * plotW) / buckets.length;
  const y = (v) => PAD.t + plotH - (v * plotH) / maxY;
  for (const [key, cls] of [['p99', 'p99'], ['p50', 'p50']]) {
    let d = '';
    let pen = false;
    buckets.forEach((b, i) => {
      if (b[key] === null) { pen = false; return; }
      d += `${pen ? 'L' : 'M'}${x(i).toFixed(1)},${y(b[key]).toFixed(1)}`;
      pen = true;
    });
    if (d) svg.append(s('path', { class: `line ${cls}`, d }));
    buckets.forEach((b, i) => {
      if (b[key] === null) return;
      svg.append(s('circle', { class: `dot ${cls}${b.err && key === 'p99' ? ' err' : ''}`, cx: x(i), cy: y(b[key]), r: b.err && key === 'p99' ? 4 : 2.5 },
        s('title', {}, `${clock(b.t)}: ${key} ${ms(b[key])}${b.err ? ` · ${b.err} failed` : ''}`)));
    });
  }
  return svg;
}

export function legend() {
  return h('ul', { class: 'legend' },
    h('li', { class: 'ok' }, 'successful runs'), h('li', { class: 'err' }, 'failed runs'),
    h('li', { class: 'p50' }, 'p50 duration'), h('li', { class: 'p99' }, 'p99 duration'));
}
