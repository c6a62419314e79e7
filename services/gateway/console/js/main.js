// The console's entry point: session check, the top bar, and a small hash router
// (#/, #/w/<id>/<tab>, #/w/<id>/automations/<slug>, #/account) over the views.

import { api, ApiError, describe, forgetSession } from './api.js';
import { h, mount, toast } from './dom.js';
import { authView } from './auth.js';
import { workspacesView } from './workspaces.js';
import { workspaceView } from './workspace.js';
import { accountView } from './account.js';

const app = { user: null, cleanups: [] };

function displayName(user) {
  if (!user) return '';
  if (user.authData && user.authData.anonymous) return 'Guest';
  return [user.firstName, user.lastName].filter(Boolean).join(' ') || user.email || user.id;
}

async function signOut() {
  try {
    await api('POST', '/v2/logout');
  } catch (err) {
    toast(`Sign-out failed: ${describe(err)}`, 'error');
    return;
  }
  forgetSession();
  app.user = null;
  location.hash = '#/';
  await route();
}

function topbar() {
  const bar = document.getElementById('topbar');
  mount(bar,
    h('a', { class: 'brand', href: '#/' }, h('img', { src: '/favicon.svg', alt: '', width: 24, height: 24 }), 'Refract'),
    app.user ? h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb', id: 'crumbs' }) : null,
    h('div', { class: 'spacer' }),
    h('a', { href: '/api.html', class: 'ghost small', title: 'The HTTP API reference (OpenAPI)' }, 'API'),
    app.user ? h('div', { class: 'user' },
      h('a', { href: '#/account', class: 'who', title: app.user.email || '' }, displayName(app.user)),
      h('button', { type: 'button', class: 'ghost small', onclick: signOut }, 'Sign out')) : null);
}

/** Sets the breadcrumb trail: [[label, href?], …]. */
export function crumbs(items) {
  const nav = document.getElementById('crumbs');
  if (!nav) return;
  mount(nav, h('ol', {}, items.map(([label, href], i) => h('li', {},
    href && i < items.length - 1 ? h('a', { href }, label) : h('span', { 'aria-current': 'page' }, label)))));
}

function parse(hash) {
  const parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  return parts;
}

async function route() {
  document.getElementById('toasts').replaceChildren();
  for (const fn of app.cleanups.splice(0)) {
    try { fn(); } catch { /* a view's cleanup must not block navigation */ }
  }
  const main = document.getElementById('main');
  if (!app.user) {
    try {
      app.user = await api('GET', '/v2/me');
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 401) {
        mount(main, h('p', { class: 'notice error' }, `The API did not answer: ${describe(err)}`));
        return;
      }
    }
  }
  topbar();
  const ctx = {
    user: app.user,
    onLeave: (fn) => app.cleanups.push(fn),
    signedIn: async (user) => { app.user = user; await route(); },
    crumbs,
  };
  let view;
  try {
    if (!app.user) {
      view = await authView(ctx);
    } else {
      const [first, id, tab, sub] = parse(location.hash);
      if (first === 'w' && id) view = await workspaceView(ctx, id, tab || 'automations', sub);
      else if (first === 'account') view = await accountView(ctx);
      else view = await workspacesView(ctx);
    }
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      app.user = null;
      await route();
      return;
    }
    view = h('div', { class: 'notice error', role: 'alert' }, describe(err));
  }
  mount(main, view);
  const heading = main.querySelector('h1');
  if (heading) { heading.setAttribute('tabindex', '-1'); heading.focus({ preventScroll: true }); }
}

window.addEventListener('hashchange', route);
route();
