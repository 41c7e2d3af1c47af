// app.js — the console's shell: sign-in, the hash router (#/overview,
// #/devices[/ID], #/live[/ID/CHANNEL], #/users, #/events, #/rooms, #/upstreams), the header with
// the language switch, and the live feed started once signed in.
import { api, ApiError, dropToken, setToken, setUnauthorizedHandler, token } from './api.js';
import { clear, h } from './dom.js';
import { getLang, setLang, t } from './i18n.js';
import { startLive, stopLive } from './live.js';
import * as overview from './page-overview.js';
import * as devices from './page-devices.js';
import * as liveView from './page-live.js';
import * as users from './page-users.js';
import * as events from './page-events.js';
import * as rooms from './page-rooms.js';
import * as upstreams from './page-upstreams.js';

const PAGES = [
  ['overview', overview], ['devices', devices], ['live', liveView], ['users', users],
  ['events', events], ['rooms', rooms], ['upstreams', upstreams],
];

const root = document.getElementById('app');
let unmount = null;
let signinError = '';
let signedIn = false;

// keep: the page is mounted again right after (a language switch), it may
// hand what plays over to its next mount (the live view's tiles)
function teardown(keep = false) {
  if (unmount) { try { unmount({ keep }); } catch (e) { console.error(e); } }
  unmount = null;
}

function signOut(error) {
  teardown();
  stopLive();
  dropToken();
  signedIn = false;
  signinError = error || '';
  render();
}

setUnauthorizedHandler(() => { if (token()) signOut(t('badToken')); });

function renderSignin() {
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'current-password', required: true,
                             placeholder: t('token') });
  const form = h('form', { class: 'signin', id: 'signin' },
    h('h1', { text: t('title') }),
    h('label', { for: 'token', text: t('token') }), input,
    h('button', { type: 'submit', text: t('signin') }),
    signinError ? h('p', { class: 'error', id: 'signin-error', role: 'alert', text: signinError }) : null,
    langButton());
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    setToken(input.value);
    try {
      await api('GET', '/stats');
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return;   // the handler showed the error
      signinError = t('unreachable') + e.message;
      dropToken();
      render();
      return;
    }
    signinError = '';
    signedIn = true;
    startLive();
    if (!location.hash || location.hash === '#/') location.hash = '#/overview';
    render();
  });
  clear(root).append(form);
  input.focus();
}

function langButton() {
  return h('button', { type: 'button', class: 'lang', id: 'lang', text: t('lang'),
                       onclick: () => { setLang(getLang() === 'zh' ? 'en' : 'zh'); render(true); } });
}

function route() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  const page = PAGES.find(([name]) => name === parts[0]) || PAGES[0];
  return { name: page[0], mod: page[1], args: parts.slice(1) };
}

function render(langSwitch = false) {
  teardown(langSwitch && signedIn && !!token());
  document.title = t('title');
  if (!token() || !signedIn) {
    renderSignin();
    return;
  }
  const r = route();
  const nav = h('nav', {},
    PAGES.map(([name]) => h('a', { href: `#/${name}`, id: `nav-${name}`, class: name === r.name ? 'active' : null,
                                   text: t(name) })));
  const main = h('main', { id: `page-${r.name}` });
  const header = h('header', {}, h('span', { class: 'brand', text: 'cascade' }), nav,
    h('span', { class: 'spacer' }), langButton(),
    h('button', { type: 'button', id: 'signout', text: t('signout'), onclick: () => signOut('') }));
  clear(root).append(header, main);
  unmount = r.mod.mount(main, r.args) || null;
}

window.addEventListener('hashchange', () => { if (signedIn) render(); });

// A token kept from earlier in this tab: check it before showing anything.
async function boot() {
  setLang(getLang());
  if (token()) {
    try {
      await api('GET', '/stats');
      signedIn = true;
      startLive();
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) signinError = t('unreachable') + e.message;
    }
  }
  render();
}

boot();
