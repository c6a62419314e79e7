// The YAML editor of DSL automations (spec/automation-dsl.md). YAML is parsed in the browser
// with the vendored js-yaml (core schema, as the DSL spec states) and saved as JSON through the
// automations API; parse errors and the API's validation details are shown under the editor,
// next to the line they concern when known.

import { dump, load } from '../vendor/js-yaml.mjs';
import { api, ApiError, describe, enc } from './api.js';
import { h, mount, toast } from './dom.js';

const TEMPLATE = `slug: hello
name: Hello
when:
  endpoint: true
do:
  - emit:
      event: greetings.sent
      payload:
        to: '{{body.name}}'
output:
  greeting: 'Hello {{body.name}}'
`;

/** Fields the server computes; they are dropped from the YAML shown for editing. */
const COMPUTED = ['kind', 'events', 'createdAt', 'createdBy', 'updatedAt', 'updatedBy'];

export function toYaml(automation) {
  const clean = Object.fromEntries(Object.entries(automation).filter(([k]) => !COMPUTED.includes(k)));
  return dump(clean, { lineWidth: 100, noRefs: true });
}

/** The editor line (1-based) of the deepest key of `path` (`when.schedules.0`), or null. */
function lineOf(text, path) {
  const lines = text.split('\n');
  let at = -1;
  for (const seg of String(path).split('.')) {
    if (/^\d+$/.test(seg)) continue;
    const key = seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const re = new RegExp(`^\\s*(- )?["']?${key}["']?\\s*:`);
    const found = lines.findIndex((l, i) => i > at && re.test(l));
    if (found < 0) break;
    at = found;
  }
  return at >= 0 ? at + 1 : null;
}

function problems(list) {
  return h('ul', { class: 'problems', role: 'alert' }, list.map((p) => h('li', {},
    p.line ? h('span', { class: 'line-ref' }, `line ${p.line}`) : null,
    p.path ? h('code', {}, p.path) : null, ' ', p.message)));
}

export async function dslEditorView(ctx, slug) {
  const { ws, base } = ctx;
  let existing = null;
  if (slug) existing = await api('GET', `/v2/workspaces/${enc(ws.id)}/automations/${enc(slug)}`);
  const editor = h('textarea', {
    class: 'code yaml', rows: 22, spellcheck: 'false', 'aria-label': 'Automation YAML', 'aria-describedby': 'yaml-problems',
  }, existing ? toYaml(existing) : TEMPLATE);
  const out = h('div', { id: 'yaml-problems', 'aria-live': 'polite' });

  const parse = () => {
    try {
      const doc = load(editor.value);
      if (!doc || typeof doc !== 'object' || Array.isArray(doc)) return { error: [{ message: 'The document must be a mapping (slug, name, when, do, …).' }] };
      return { doc };
    } catch (err) {
      return { error: [{ line: err.mark ? err.mark.line + 1 : null, message: err.reason || err.message }] };
    }
  };
  editor.addEventListener('input', () => {
    const { error } = parse();
    mount(out, error ? problems(error) : null);
  });

  const save = async (e) => {
    e.preventDefault();
    const { doc, error } = parse();
    if (error) { mount(out, problems(error)); return; }
    try {
      const saved = existing
        ? await api('PATCH', `/v2/workspaces/${enc(ws.id)}/automations/${enc(existing.slug)}`, doc)
        : await api('POST', `/v2/workspaces/${enc(ws.id)}/automations`, doc);
      toast(`Automation ${saved.slug} saved`);
      location.hash = `${base}/automations/${enc(saved.slug)}`;
    } catch (err) {
      let details = err instanceof ApiError ? err.details : null;
      if (details && !Array.isArray(details) && details.path) details = [details];
      mount(out, Array.isArray(details) && details.length && details[0].path
        ? problems(details.map((d) => ({ line: lineOf(editor.value, d.path), path: d.path, message: `${err.code}: ${d.message}` })))
        : problems([{ message: describe(err) }]));
    }
  };

  ctx.crumbs([['Workspaces', '#/'], [ws.name, base], ['Automations', `${base}/automations`], [existing ? existing.slug : 'New DSL automation']]);
  return h('form', { class: 'stack', onsubmit: save },
    h('div', { class: 'page-head' }, h('h1', {}, existing ? `Edit ${existing.slug}` : 'New DSL automation'),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Save'))),
    h('p', { class: 'muted' }, 'Prisme.ai-compatible YAML: ', h('code', {}, 'when'), ' (events, schedules, endpoint), ',
      h('code', {}, 'do'), ' instructions and an ', h('code', {}, 'output'), '. Errors from the server appear below.'),
    h('div', { class: 'card' }, editor, out));
}
