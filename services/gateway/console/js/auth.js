// Sign in, sign up, and one button per OpenID provider the gateway lists
// (GET /v2/login/providers; a gateway without that route simply shows no buttons).

import { api, ApiError, describe } from './api.js';
import { field, h, mount } from './dom.js';

async function providers() {
  try {
    const list = await api('GET', '/v2/login/providers');
    return Array.isArray(list) ? list : [];
  } catch (err) {
    if (err instanceof ApiError && (err.status === 404 || err.status === 405)) return [];
    throw err;
  }
}

function providerButtons(list) {
  if (!list.length) return null;
  const redirect = `${location.origin}/`;
  return h('div', { class: 'providers' },
    h('p', { class: 'or' }, 'or continue with'),
    list.map((p) => h('a', {
      class: 'button secondary wide',
      href: `/v2/login?provider=${encodeURIComponent(p.name)}&redirect=${encodeURIComponent(redirect)}`,
    }, p.icon ? h('img', { src: p.icon, alt: '', width: 18, height: 18 }) : null, p.label || p.name)));
}

function errorBox() {
  return h('p', { class: 'form-error', role: 'alert', hidden: true });
}

function showError(box, text) {
  box.textContent = text;
  box.hidden = !text;
}

export async function authView(ctx) {
  const oidcError = new URLSearchParams(location.search).get('error_description')
    || new URLSearchParams(location.search).get('error');
  const list = await providers().catch(() => []);
  const panel = h('div', { class: 'auth-panel' });
  const tabs = h('div', { class: 'tabs', role: 'tablist' });
  const show = (which) => {
    for (const b of tabs.children) b.setAttribute('aria-selected', String(b.dataset.tab === which));
    mount(panel, which === 'signin' ? signInForm(ctx, list) : signUpForm(ctx, list));
    panel.querySelector('input')?.focus();
  };
  tabs.append(
    h('button', { type: 'button', role: 'tab', dataset: { tab: 'signin' }, onclick: () => show('signin') }, 'Sign in'),
    h('button', { type: 'button', role: 'tab', dataset: { tab: 'signup' }, onclick: () => show('signup') }, 'Create account'));
  const view = h('section', { class: 'auth card' },
    h('h1', {}, 'Welcome to Refract'),
    h('p', { class: 'muted' }, 'Sandboxed automations for your team: events, schedules and webhooks, each run in WebAssembly.'),
    oidcError ? h('p', { class: 'form-error', role: 'alert' }, `Sign-in failed: ${oidcError}`) : null,
    tabs, panel);
  show('signin');
  return view;
}

function signInForm(ctx, list) {
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const err = errorBox();
  const form = h('form', {
    class: 'stack',
    onsubmit: async (e) => {
      e.preventDefault();
      showError(err, '');
      try {
        const user = await api('POST', '/v2/login', { email: email.value, password: password.value });
        await ctx.signedIn(user);
      } catch (e2) {
        showError(err, describe(e2));
      }
    },
  }, field('Email', email), field('Password', password), err,
  h('button', { type: 'submit', class: 'primary wide' }, 'Sign in'),
  providerButtons(list));
  return form;
}

function signUpForm(ctx, list) {
  const first = h('input', { name: 'firstName', autocomplete: 'given-name', required: true });
  const last = h('input', { name: 'lastName', autocomplete: 'family-name' });
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'new-password', required: true, minlength: 8 });
  const err = errorBox();
  return h('form', {
    class: 'stack',
    onsubmit: async (e) => {
      e.preventDefault();
      showError(err, '');
      try {
        const body = { email: email.value, password: password.value, firstName: first.value };
        if (last.value) body.lastName = last.value;
        const user = await api('POST', '/v2/signup', body);
        if (user.status === 'pending') {
          showError(err, 'Account created. Follow the link we emailed you, then sign in.');
          return;
        }
        await ctx.signedIn(await api('POST', '/v2/login', { email: email.value, password: password.value }));
      } catch (e2) {
        showError(err, describe(e2));
      }
    },
  }, h('div', { class: 'row' }, field('First name', first), field('Last name', last)),
  field('Email', email), field('Password', password, 'At least 8 characters.'), err,
  h('button', { type: 'submit', class: 'primary wide' }, 'Create account'),
  providerButtons(list));
}
