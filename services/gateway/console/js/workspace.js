// One workspace: a side navigation over its automations, live events, runs and settings.

import { api, enc } from './api.js';
import { h } from './dom.js';
import { automationsView } from './automations.js';
import { automationView } from './automation.js';
import { eventsView } from './events.js';
import { runsView, runView } from './runs.js';
import { settingsView } from './settings.js';
import { dslEditorView } from './dsl.js';
import { deadLettersView } from './deadletters.js';

const TABS = [
  ['automations', 'Automations'],
  ['events', 'Live events'],
  ['runs', 'Runs'],
  ['deadletters', 'Dead letters'],
  ['settings', 'Members & security'],
];

export async function workspaceView(ctx, id, tab, sub) {
  const ws = await api('GET', `/v2/workspaces/${enc(id)}`);
  const base = `#/w/${enc(ws.id)}`;
  const wctx = { ...ctx, ws, base };
  const trail = [['Workspaces', '#/'], [ws.name, base]];
  let content;
  if (tab === 'dsl') {
    content = await dslEditorView(wctx, sub);
  } else if (tab === 'runs' && sub) {
    ctx.crumbs([...trail, ['Runs', `${base}/runs`], [sub]]);
    content = await runView(wctx, sub);
  } else if (tab === 'automations' && sub) {
    ctx.crumbs([...trail, ['Automations', `${base}/automations`], [sub]]);
    content = await automationView(wctx, sub);
  } else {
    const label = (TABS.find(([key]) => key === tab) || TABS[0])[1];
    ctx.crumbs([...trail, [label]]);
    if (tab === 'events') content = await eventsView(wctx, sub);
    else if (tab === 'runs') content = await runsView(wctx);
    else if (tab === 'deadletters') content = await deadLettersView(wctx);
    else if (tab === 'settings') content = await settingsView(wctx);
    else content = await automationsView(wctx);
  }
  return h('div', { class: 'workspace' },
    h('nav', { class: 'side', 'aria-label': 'Workspace' },
      h('p', { class: 'side-title' }, ws.name),
      h('ul', {}, TABS.map(([key, label]) => h('li', {},
        h('a', { href: `${base}/${key}`, 'aria-current': key === tab ? 'page' : null }, label))))),
    h('div', { class: 'content' }, content));
}
