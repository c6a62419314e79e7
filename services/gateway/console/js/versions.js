// An automation's versions (GET …/automations/{slug}/versions): what each save replaced, newest
// first, with a restore (itself undoable) and, for DSL automations, a line diff of a version's
// YAML against the automation as it is now.

import { api, describe } from './api.js';
import { confirmDialog, h, mount, time, toast } from './dom.js';
import { toYaml } from './dsl.js';

/** The card of `automation`'s versions (`path` is its API path); `reload` redraws the page. */
export function versionsCard(path, automation, reload) {
  const box = h('div', { class: 'stack' }, h('p', { class: 'loading' }, 'Reading versions…'));
  const diff = h('div', { class: 'version-diff', 'aria-live': 'polite' });
  const restore = async (n) => {
    if (!await confirmDialog(`Restore version ${n}?`, 'What the automation is now is kept as a version too.', 'Restore')) return;
    try {
      await api('POST', `${path}/versions/${n}/restore`);
      toast(`Version ${n} restored`);
      reload();
    } catch (err) {
      toast(describe(err), 'error');
    }
  };
  const compare = async (n) => {
    try {
      const { automation: old } = await api('GET', `${path}/versions/${n}`);
      mount(diff, h('h3', {}, `Version ${n} → now`), diffView(lineDiff(toYaml(old), toYaml(automation))));
    } catch (err) {
      mount(diff, h('p', { class: 'notice error' }, describe(err)));
    }
  };
  api('GET', `${path}/versions`).then(({ versions }) => {
    if (!versions.length) {
      mount(box, h('p', { class: 'muted' }, 'No earlier version: each save keeps the one it replaces.'));
      return;
    }
    mount(box, h('table', { class: 'versions' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Version'), h('th', {}, 'Saved'), h('th', {}, 'By'), h('th', {}, ''))),
      h('tbody', {}, versions.map((v) => h('tr', {},
        h('td', {}, String(v.version)),
        h('td', {}, v.updatedAt ? time(v.updatedAt) : ''),
        h('td', {}, v.updatedBy || ''),
        h('td', { class: 'actions' },
          automation.kind === 'dsl' ? h('button', { type: 'button', class: 'secondary', onclick: () => compare(v.version) }, 'Diff') : null,
          h('button', { type: 'button', class: 'secondary', onclick: () => restore(v.version) }, 'Restore')))))));
  }).catch((err) => mount(box, h('p', { class: 'notice error' }, `Versions are unavailable: ${describe(err)}`)));
  return h('div', { class: 'card' }, h('h2', {}, 'Versions'), box, diff);
}

/** `[op, line]` pairs ('=', '-', '+') turning `a` into `b`, by longest common subsequence. */
export function lineDiff(a, b) {
  const x = a.split('\n');
  const y = b.split('\n');
  const n = x.length;
  const m = y.length;
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) { out.push(['=', x[i]]); i++; j++; }
    else if (lcs[i + 1][j] >= lcs[i][j + 1]) { out.push(['-', x[i]]); i++; }
    else { out.push(['+', y[j]]); j++; }
  }
  while (i < n) out.push(['-', x[i++]]);
  while (j < m) out.push(['+', y[j++]]);
  return out;
}

function diffView(lines) {
  const cls = { '=': 'same', '-': 'removed', '+': 'added' };
  return h('pre', { class: 'code diff' }, lines.map(([op, line]) =>
    h('span', { class: `line ${cls[op]}` }, `${op === '=' ? ' ' : op} ${line}\n`)));
}
