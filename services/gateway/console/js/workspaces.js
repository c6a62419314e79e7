// The workspace list: create, rename, delete (with confirmation).

import { api, describe, enc } from './api.js';
import { confirmDialog, field, h, mount, time, toast } from './dom.js';

export async function workspacesView(ctx) {
  ctx.crumbs([['Workspaces']]);
  const list = h('ul', { class: 'cards', 'aria-label': 'Workspaces' });
  const reload = async () => {
    const workspaces = await api('GET', '/v2/workspaces?limit=100&sort=-createdAt');
    mount(list, workspaces.length
      ? workspaces.map((ws) => card(ws, reload))
      : h('li', { class: 'empty' }, 'No workspace yet. Create one to hold your automations.'));
  };
  const name = h('input', { name: 'name', required: true, minlength: 2, maxlength: 60, placeholder: 'Customer onboarding' });
  const err = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const form = h('form', {
    class: 'inline-form',
    onsubmit: async (e) => {
      e.preventDefault();
      err.hidden = true;
      try {
        const ws = await api('POST', '/v2/workspaces', { name: name.value });
        toast(`Workspace ${ws.name} created`);
        location.hash = `#/w/${enc(ws.id)}`;
      } catch (e2) {
        err.textContent = describe(e2);
        err.hidden = false;
      }
    },
  }, field('New workspace', name), h('button', { type: 'submit', class: 'primary' }, 'Create workspace'));
  await reload();
  return h('section', {},
    h('div', { class: 'page-head' }, h('h1', {}, 'Workspaces')),
    h('div', { class: 'card' }, form, err),
    list);
}

function card(ws, reload) {
  const rename = async () => {
    const input = h('input', { value: ws.name, 'aria-label': `New name for ${ws.name}`, minlength: 2, maxlength: 60 });
    const save = async (e) => {
      e.preventDefault();
      try {
        await api('PATCH', `/v2/workspaces/${enc(ws.id)}`, { name: input.value });
        toast('Workspace renamed');
        await reload();
      } catch (e2) {
        toast(describe(e2), 'error');
      }
    };
    mount(title, h('form', { class: 'inline-form', onsubmit: save }, input,
      h('button', { type: 'submit', class: 'small primary' }, 'Save'),
      h('button', { type: 'button', class: 'small ghost', onclick: reload }, 'Cancel')));
    input.focus();
  };
  const remove = async () => {
    const ok = await confirmDialog(`Delete ${ws.name}?`,
      'Its automations, components, secrets and API keys are deleted; its event history is scheduled for deletion. This cannot be undone.');
    if (!ok) return;
    try {
      await api('DELETE', `/v2/workspaces/${enc(ws.id)}`);
      toast('Workspace deleted');
      await reload();
    } catch (e2) {
      toast(describe(e2), 'error');
    }
  };
  const title = h('h2', {}, h('a', { href: `#/w/${enc(ws.id)}` }, ws.name));
  return h('li', { class: 'card ws-card' },
    title,
    h('p', { class: 'muted' }, h('code', {}, ws.slug), ' · created ', ws.createdAt ? time(ws.createdAt) : '—'),
    ws.description ? h('p', {}, typeof ws.description === 'string' ? ws.description : Object.values(ws.description)[0]) : null,
    h('div', { class: 'actions' },
      h('a', { class: 'button small', href: `#/w/${enc(ws.id)}` }, 'Open'),
      h('button', { type: 'button', class: 'small ghost', onclick: rename }, 'Rename'),
      h('button', { type: 'button', class: 'small ghost danger-text', onclick: remove }, 'Delete')));
}
