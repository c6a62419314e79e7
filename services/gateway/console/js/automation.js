// One automation: triggers, status, the component (upload, digest, size, imports, limits),
// enable/disable, delete, the test panel, and its runs.

import { api, apiRaw, describe, enc } from './api.js';
import { bytes, confirmDialog, copyButton, field, h, mount, time, toast } from './dom.js';
import { nameOf, statusBadge, triggerList } from './triggers.js';
import { testPanel } from './testpanel.js';
import { versionsCard } from './versions.js';
import { chartsFor, runsTable } from './runs.js';
import { loadRuns, RANGES } from './stats.js';

/** Defaults of spec §14.2, shown when an automation keeps them. */
const DEFAULT_LIMITS = { memoryMiB: 64, timeoutMs: 30000 };

export async function automationView(ctx, slug) {
  const { ws, base } = ctx;
  const path = `/v2/workspaces/${enc(ws.id)}/automations/${enc(slug)}`;
  const automation = await api('GET', path);
  const reload = () => window.dispatchEvent(new HashChangeEvent('hashchange'));

  const toggle = async () => {
    try {
      await api('PATCH', path, { disabled: !automation.disabled });
      toast(automation.disabled ? 'Automation enabled' : 'Automation disabled');
      reload();
    } catch (err) {
      toast(describe(err), 'error');
    }
  };
  const remove = async () => {
    if (!await confirmDialog(`Delete ${nameOf(automation)}?`, 'Its component and schedules are deleted too. Run history stays.')) return;
    try {
      await api('DELETE', path);
      toast('Automation deleted');
      location.hash = `${base}/automations`;
    } catch (err) {
      toast(describe(err), 'error');
    }
  };

  const runsBox = h('div', { class: 'stack' }, h('p', { class: 'loading' }, 'Reading runs…'));
  loadActivity(ctx, automation, runsBox);

  return h('section', { class: 'stack' },
    h('div', { class: 'page-head' },
      h('div', {}, h('h1', {}, nameOf(automation), ' ', statusBadge(automation)),
        h('p', { class: 'muted' }, h('code', {}, automation.slug), ' · ', automation.kind,
          automation.updatedAt ? [' · updated ', time(automation.updatedAt)] : null)),
      h('div', { class: 'actions' },
        automation.kind === 'dsl' ? h('a', { class: 'button secondary', href: `${base}/dsl/${enc(automation.slug)}` }, 'Edit YAML') : null,
        h('button', { type: 'button', class: 'secondary', onclick: toggle, 'aria-pressed': String(!automation.disabled) },
          automation.disabled ? 'Enable' : 'Disable'),
        h('button', { type: 'button', class: 'danger', onclick: remove }, 'Delete'))),
    automation.description ? h('p', {}, typeof automation.description === 'string' ? automation.description : Object.values(automation.description)[0]) : null,
    h('div', { class: 'card' }, h('h2', {}, 'Triggers'), triggerList(ws, automation)),
    automation.kind === 'component' ? componentCard(path, automation, reload) : null,
    testPanel(ctx, automation),
    versionsCard(path, automation, reload),
    h('h2', {}, 'Activity'),
    runsBox);
}

async function loadActivity(ctx, automation, box) {
  const range = RANGES.hour;
  const until = new Date();
  const since = new Date(until.getTime() - range.ms);
  try {
    const { runs } = await loadRuns(ctx.ws, since, automation.slug);
    mount(box, chartsFor(runs, since, until, range, null),
      h('div', { class: 'card' }, h('h3', {}, 'Recent runs'), runsTable(runs.slice(0, 20), ctx.base, { showSlug: false })));
  } catch (err) {
    mount(box, h('p', { class: 'notice error' }, `Runs are unavailable: ${describe(err)}`));
  }
}

function dl(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(([, v]) => v !== null && v !== undefined).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function componentCard(path, automation, reload) {
  const c = automation.component || {};
  const limits = c.limits || {};
  const file = h('input', { type: 'file', name: 'component', accept: '.wasm,application/wasm', required: true });
  const result = h('div', { role: 'status', 'aria-live': 'polite' });
  const upload = async (e) => {
    e.preventDefault();
    const chosen = file.files && file.files[0];
    if (!chosen) return;
    mount(result, h('p', { class: 'loading' }, `Uploading and compiling ${chosen.name}…`));
    try {
      const { data } = await apiRaw('PUT', `${path}/component`, { body: chosen, headers: { 'content-type': 'application/wasm' } });
      toast(data.unchanged ? 'Same component as before' : 'Component uploaded');
      reload();
    } catch (err) {
      const details = err.details || {};
      mount(result, h('div', { class: 'notice error', role: 'alert' }, describe(err),
        details.forbiddenImports && details.forbiddenImports.length ? h('p', {}, 'Forbidden imports: ', details.forbiddenImports.join(', ')) : null,
        details.missingExports && details.missingExports.length ? h('p', {}, 'Missing exports: ', details.missingExports.join(', ')) : null));
    }
  };
  const imports = Array.isArray(c.imports) ? c.imports : [];
  return h('div', { class: 'card' },
    h('h2', {}, 'Component'),
    c.status === 'ready'
      ? dl([
        ['Digest', c.digest ? h('span', {}, h('code', { class: 'digest' }, c.digest), ' ', copyButton(c.digest, 'Copy')) : null],
        ['Size', bytes(c.size)],
        ['World', c.world ? h('code', {}, c.world) : null],
        ['Language', c.language],
        ['Compiled with', c.compiledWith],
        ['Uploaded', c.uploadedAt ? time(c.uploadedAt) : null],
        ['Imports', imports.length ? h('ul', { class: 'chips' }, imports.map((i) => h('li', { class: 'chip' }, h('code', {}, i)))) : 'none'],
        ['Memory limit', `${limits.memoryMiB || DEFAULT_LIMITS.memoryMiB} MiB${limits.memoryMiB ? '' : ' (default)'}`],
        ['Time limit', `${limits.timeoutMs || DEFAULT_LIMITS.timeoutMs} ms${limits.timeoutMs ? '' : ' (default)'}`],
        ['Fuel', limits.fuel ? String(limits.fuel) : 'off'],
      ])
      : h('p', { class: 'notice' }, 'No component yet: upload the .wasm built with the Refract SDK (cargo build --target wasm32-wasip2).'),
    h('form', { class: 'inline-form', onsubmit: upload },
      field(c.status === 'ready' ? 'Replace component (.wasm)' : 'Component (.wasm)', file),
      h('button', { type: 'submit', class: 'primary' }, 'Upload')),
    result);
}
