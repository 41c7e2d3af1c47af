// page-users.js — SIP users (GET/POST/DELETE /users) and their registrations
// (GET /registrations): contacts with transport, NAT flag, user agent and an
// expiry countdown ticking in the page; kick (DELETE /registrations/{user}).
import { api } from './api.js';
import { clear, fmtTime, h } from './dom.js';
import { t } from './i18n.js';
import { onLiveEvents } from './live.js';

const EVENT_GAP_MS = 500;   // reloads driven by events: at most one per this

function left(iso) {
  const s = Math.max(0, Math.round((new Date(iso) - Date.now()) / 1000));
  const m = Math.floor(s / 60);
  return m ? `${m}m ${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

export function mount(el) {
  let alive = true;
  const msg = h('p', { class: 'muted', id: 'users-msg' });
  const name = h('input', { id: 'user-name', required: true, autocomplete: 'off', placeholder: t('name') });
  const password = h('input', { id: 'user-password', type: 'password', required: true, autocomplete: 'new-password',
                                placeholder: t('password') });
  const form = h('form', { id: 'user-add', class: 'inline' }, name, password, h('button', { type: 'submit', text: t('add') }));
  const usersBody = h('tbody', { id: 'users-body' });
  const regsBody = h('tbody', { id: 'regs-body' });
  let regs = [];

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await api('POST', '/users', { name: name.value, password: password.value });
      msg.textContent = t('added', name.value);
      name.value = '';
      password.value = '';
    } catch (e) {
      msg.textContent = e.message;
    }
    load();
  });

  const del = (n) => async () => {
    if (!confirm(t('confirmDelete', n))) return;
    try { await api('DELETE', `/users/${encodeURIComponent(n)}`); } catch (e) { msg.textContent = e.message; }
    load();
  };
  const kick = (u) => async () => {
    try { await api('DELETE', `/registrations/${encodeURIComponent(u)}`); } catch (e) { msg.textContent = e.message; }
    load();
  };

  const drawRegs = () => {
    clear(regsBody).append(...regs.map((r) => h('tr', { 'data-user': r.user },
      h('td', { text: r.user }),
      h('td', { text: r.contact }),
      h('td', { text: r.transport }),
      h('td', { text: r.remote }),
      h('td', {}, r.nat ? h('span', { class: 'badge warn', text: 'NAT' }) : ''),
      h('td', { class: 'countdown', text: left(r.expires_at) }),
      h('td', { text: r.user_agent || '' }),
      h('td', {}, h('button', { type: 'button', class: 'danger', text: t('kick'), onclick: kick(r.user) })))));
  };

  const load = async () => {
    try {
      const [u, r] = await Promise.all([api('GET', '/users'), api('GET', '/registrations')]);
      if (!alive) return;
      const online = new Set((r.registrations || []).map((x) => x.user));
      clear(usersBody).append(...(u.users || []).map((x) => h('tr', { 'data-user': x.name },
        h('td', {}, h('span', { class: `dot ${online.has(x.name) ? 'ok' : 'idle'}` }), ' ', h('span', { text: x.name })),
        h('td', { text: x.realm }),
        h('td', { text: fmtTime(x.created_at) }),
        h('td', {}, h('button', { type: 'button', class: 'danger', text: t('del'), onclick: del(x.name) })))));
      regs = r.registrations || [];
      drawRegs();
      el.dataset.loaded = '1';
    } catch (e) {
      msg.textContent = e.message;
    }
  };

  const th = (...keys) => h('thead', {}, h('tr', {}, keys.map((k) => h('th', { text: k ? t(k) : '' }))));
  clear(el).append(
    h('h1', { text: t('users') }),
    h('section', { class: 'panel' }, h('h2', { text: t('addUser') }), form, msg),
    h('div', { class: 'split' },
      h('section', { class: 'panel' }, h('h2', { text: t('users') }),
        h('table', { class: 'list', id: 'users' }, th('name', 'realm', 'created', ''), usersBody)),
      h('section', { class: 'panel wide' }, h('h2', { text: t('registrations') }),
        h('table', { class: 'list', id: 'regs' },
          th('user', 'contact', 'transport', 'remote', 'nat', 'expiresIn', 'userAgent', ''), regsBody))));
  const tick = setInterval(() => {
    regsBody.querySelectorAll('tr').forEach((tr, i) => {
      if (regs[i]) tr.querySelector('.countdown').textContent = left(regs[i].expires_at);
    });
  }, 1000);
  // live from the event stream: a user or a binding that comes or goes reloads the tables (no polling)
  const off = onLiveEvents((e) => e.type.startsWith('registration.') || e.type.startsWith('user.'), load, EVENT_GAP_MS);
  load();
  return () => { alive = false; clearInterval(tick); off(); };
}
