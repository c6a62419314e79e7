// The signed-in user's personal access tokens (spec §2.2): a token is shown once.

import { api, describe, enc } from './api.js';
import { confirmDialog, copyButton, field, h, mount, time, toast } from './dom.js';

export async function accountView(ctx) {
  ctx.crumbs([['Workspaces', '#/'], ['Account']]);
  const tokens = await api('GET', '/v2/user/accessTokens');
  const shown = h('div', { role: 'status', 'aria-live': 'polite' });
  const name = h('input', { name: 'tokenName', required: true, placeholder: 'CI deploys' });
  const inMonths = (n) => { const d = new Date(); d.setMonth(d.getMonth() + n); return d; };
  const expiry = h('select', { name: 'expiresAt' },
    h('option', { value: '1' }, '1 month'), h('option', { value: '3' }, '3 months'), h('option', { value: '12' }, '1 year'));
  const refresh = () => window.dispatchEvent(new HashChangeEvent('hashchange'));
  const form = h('form', {
    class: 'inline-form',
    onsubmit: async (e) => {
      e.preventDefault();
      const months = Number(expiry.value);
      const at = months === 12 ? new Date(Date.now() + 364 * 86400e3) : inMonths(months);
      try {
        const created = await api('POST', '/v2/user/accessTokens', { name: name.value, expiresAt: at.toISOString() });
        mount(shown, h('div', { class: 'notice' }, h('p', {}, 'Copy the token now: it is not shown again.'),
          h('code', { class: 'secret-once' }, created.token), ' ', copyButton(created.token, 'Copy token')));
      } catch (err) { toast(describe(err), 'error'); }
    },
  }, field('Name', name), field('Expires in', expiry), h('button', { type: 'submit', class: 'primary' }, 'Create token'));
  const user = ctx.user;
  return h('section', { class: 'stack' },
    h('div', { class: 'page-head' }, h('h1', {}, 'Account')),
    h('div', { class: 'card' }, h('p', {}, [user.firstName, user.lastName].filter(Boolean).join(' '), ' ', user.email ? h('span', { class: 'muted' }, `<${user.email}>`) : null)),
    h('section', { class: 'card stack', 'aria-labelledby': 'pat-title' },
      h('h2', { id: 'pat-title' }, 'Personal access tokens'),
      shown,
      tokens.length ? h('table', {},
        h('thead', {}, h('tr', {}, ['Name', 'Token', 'Expires', 'Last used', ''].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, tokens.map((t) => h('tr', {},
          h('td', {}, t.name), h('td', {}, h('code', {}, `at:…${t.tokenHint || ''}`)),
          h('td', {}, t.expiresAt ? new Date(t.expiresAt).toLocaleDateString() : '—'),
          h('td', {}, t.lastUsedAt ? time(t.lastUsedAt) : 'never'),
          h('td', {}, h('button', {
            type: 'button', class: 'small ghost danger-text',
            onclick: async () => {
              if (!await confirmDialog(`Revoke ${t.name}?`, 'Scripts using it are refused from now on.', 'Revoke')) return;
              try { await api('DELETE', `/v2/user/accessTokens/${enc(t.id)}`); toast('Token revoked'); refresh(); } catch (err) { toast(describe(err), 'error'); }
            },
          }, 'Revoke'))))))
        : h('p', { class: 'muted' }, 'No token yet.'),
      form));
}
