// Members and roles, secrets and API keys of a workspace. Secret values and API keys are
// write-only: a key is shown once, right after it is created.

import { api, ApiError, describe, enc } from './api.js';
import { confirmDialog, copyButton, field, h, mount, time, toast } from './dom.js';

const BUILT_IN_ROLES = [{ name: 'owner' }, { name: 'editor' }, { name: 'viewer' }];

/** A section that says so when its route is missing on this server instead of failing. */
async function section(title, id, build) {
  const box = h('section', { class: 'card stack', 'aria-labelledby': id }, h('h2', { id }, title));
  try {
    box.append(...[].concat(await build()));
  } catch (err) {
    // The workspace itself was just read, so a 404 here means the route is not on this server.
    const missing = err instanceof ApiError && (err.status === 404 || err.status === 405);
    box.append(h('p', { class: missing ? 'muted' : 'notice error' },
      missing ? 'This server does not offer this yet.' : describe(err)));
  }
  return box;
}

function refresh() {
  window.dispatchEvent(new HashChangeEvent('hashchange'));
}

async function members(ws) {
  const base = `/v2/workspaces/${enc(ws.id)}`;
  let roles = BUILT_IN_ROLES;
  try {
    roles = await api('GET', `${base}/security/roles`);
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 404) throw err;
  }
  const { result } = await api('GET', `${base}/permissions`);
  // Names for the member ids; without the contacts route the ids are shown.
  const ids = (result || []).map((p) => p.target && p.target.id).filter(Boolean);
  const names = new Map();
  if (ids.length) {
    try {
      const { contacts } = await api('POST', '/v2/contacts', { ids });
      for (const c of contacts || []) names.set(c.id, [c.firstName, c.lastName].filter(Boolean).join(' '));
    } catch { /* ids stay as they are */ }
  }
  const roleSelect = () => h('select', { name: 'role' }, roles.map((r) => h('option', { value: r.name }, r.name)));
  const table = h('table', {},
    h('thead', {}, h('tr', {}, ['Member', 'Role', ''].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, (result || []).map((p) => {
      const t = p.target || {};
      const who = t.public ? 'Everyone (public)' : t.role ? `Role ${t.role}` : (t.displayName || t.email || names.get(t.id) || t.id);
      const id = t.public ? '*' : t.role ? `role:${t.role}` : t.id;
      const select = roleSelect();
      select.value = (p.permissions && p.permissions.role) || '';
      select.setAttribute('aria-label', `Role of ${who}`);
      select.addEventListener('change', async () => {
        try {
          await api('POST', `${base}/permissions`, { target: t.email ? { email: t.email } : { id: t.id }, permissions: { role: select.value } });
          toast('Role changed');
        } catch (err) {
          toast(describe(err), 'error');
          refresh();
        }
      });
      return h('tr', {}, h('td', {}, who),
        h('td', {}, p.permissions && p.permissions.role ? select : h('code', {}, JSON.stringify(p.permissions))),
        h('td', {}, h('button', {
          type: 'button', class: 'small ghost danger-text',
          onclick: async () => {
            if (!await confirmDialog(`Remove ${who}?`, 'They lose access to this workspace.', 'Remove')) return;
            try { await api('DELETE', `${base}/permissions/${enc(id)}`); toast('Member removed'); refresh(); } catch (err) { toast(describe(err), 'error'); }
          },
        }, 'Remove')));
    })));
  const email = h('input', { type: 'email', name: 'email', required: true, placeholder: 'teammate@example.com' });
  const role = roleSelect();
  const form = h('form', {
    class: 'inline-form',
    onsubmit: async (e) => {
      e.preventDefault();
      try {
        await api('POST', `${base}/permissions`, { target: { email: email.value }, permissions: { role: role.value } });
        toast(`Shared with ${email.value}`);
        refresh();
      } catch (err) { toast(describe(err), 'error'); }
    },
  }, field('Invite by email', email), field('Role', role), h('button', { type: 'submit', class: 'primary' }, 'Share'));
  return [h('div', { class: 'table-wrap' }, table), form];
}

async function secrets(ws) {
  const base = `/v2/workspaces/${enc(ws.id)}/security/secrets`;
  const map = await api('GET', base);
  const names = Object.keys(map || {}).sort();
  const list = names.length
    ? h('table', {},
      h('thead', {}, h('tr', {}, ['Name', 'Description', 'Updated', ''].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, names.map((name) => h('tr', {},
        h('td', {}, h('code', {}, name)), h('td', {}, map[name].description || ''),
        h('td', {}, map[name].updatedAt ? time(map[name].updatedAt) : '—'),
        h('td', {}, h('button', {
          type: 'button', class: 'small ghost danger-text',
          onclick: async () => {
            if (!await confirmDialog(`Delete secret ${name}?`, 'Automations reading it get nothing from now on.')) return;
            try { await api('DELETE', `${base}/${enc(name)}`); toast('Secret deleted'); refresh(); } catch (err) { toast(describe(err), 'error'); }
          },
        }, 'Delete'))))))
    : h('p', { class: 'muted' }, 'No secret yet.');
  const name = h('input', { name: 'secretName', required: true, pattern: '[A-Za-z_][A-Za-z0-9_]{0,63}', placeholder: 'STRIPE_KEY' });
  const value = h('input', { type: 'password', name: 'secretValue', required: true, autocomplete: 'off' });
  const description = h('input', { name: 'secretDescription' });
  const form = h('form', {
    class: 'inline-form',
    onsubmit: async (e) => {
      e.preventDefault();
      const entry = { value: value.value };
      if (description.value) entry.description = description.value;
      try { await api('PATCH', base, { [name.value]: entry }); toast('Secret saved'); refresh(); } catch (err) { toast(describe(err), 'error'); }
    },
  }, field('Secret name', name), field('Value', value, 'Write-only: never shown again.'), field('Description', description),
  h('button', { type: 'submit', class: 'primary' }, 'Save secret'));
  return [list, form];
}

async function apiKeys(ws) {
  const base = `/v2/workspaces/${enc(ws.id)}/security/apikeys`;
  const shown = h('div', { role: 'status', 'aria-live': 'polite' });
  const listBox = h('div', { class: 'table-wrap' });
  const renderList = async () => {
    const keys = await api('GET', base);
    mount(listBox, keys.length
      ? h('table', { class: 'apikeys' },
        h('thead', {}, h('tr', {}, ['Name', 'Key', 'Rules', 'State', ''].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, keys.map((k) => h('tr', {},
          h('td', {}, k.name), h('td', {}, h('code', {}, `…${k.keyHint || ''}`)),
          h('td', {}, h('code', {}, JSON.stringify(k.rules || []))),
          h('td', {}, k.disabled ? h('span', { class: 'badge off' }, 'disabled') : h('span', { class: 'badge ok' }, 'active')),
          h('td', {}, h('button', {
            type: 'button', class: 'small ghost danger-text',
            onclick: async () => {
              if (!await confirmDialog(`Revoke ${k.name}?`, 'Servers using this key are refused from now on.', 'Revoke')) return;
              try { await api('DELETE', `${base}/${enc(k.id)}`); toast('API key revoked'); mount(shown); await renderList(); } catch (err) { toast(describe(err), 'error'); }
            },
          }, 'Revoke'))))))
      : h('p', { class: 'muted' }, 'No API key yet.'));
  };
  await renderList();
  const name = h('input', { name: 'keyName', required: true, placeholder: 'CRM server' });
  const rules = h('textarea', { name: 'rules', rows: 3, class: 'code', spellcheck: 'false' }, '[{"action": "read", "subject": "events"}]');
  const form = h('form', {
    class: 'stack',
    onsubmit: async (e) => {
      e.preventDefault();
      let parsed;
      try { parsed = JSON.parse(rules.value); } catch (err) { toast(`Rules are not valid JSON: ${err.message}`, 'error'); return; }
      try {
        const created = await api('POST', base, { name: name.value, rules: parsed });
        mount(shown, h('div', { class: 'notice' }, h('p', {}, 'Copy the key now: it is not shown again.'),
          h('code', { class: 'secret-once' }, created.apiKey), ' ', copyButton(created.apiKey, 'Copy key')));
        name.value = '';
        await renderList();
      } catch (err) { toast(describe(err), 'error'); }
    },
  }, h('div', { class: 'row' }, field('Key name', name)), field('Rules (JSON)', rules, 'Permission rules, e.g. action read on subject events.'),
  h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Create API key')));
  return [shown, listBox, form];
}

export async function settingsView(ctx) {
  const { ws } = ctx;
  const [m, s, k] = await Promise.all([
    section('Members & roles', 'members-title', () => members(ws)),
    section('Secrets', 'secrets-title', () => secrets(ws)),
    section('API keys', 'keys-title', () => apiKeys(ws)),
  ]);
  return h('div', { class: 'stack' }, h('div', { class: 'page-head' }, h('h1', {}, 'Members & security')), m, s, k);
}
