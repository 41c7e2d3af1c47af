// page-upstreams.js — the lower role: this node's registrations to its upper
// platforms (GET /gb/upstreams): state, last error, last keepalive.
import { api } from './api.js';
import { clear, fmtTime, h } from './dom.js';
import { t } from './i18n.js';

const REFRESH_MS = 3000;

export function mount(el) {
  let alive = true;
  let timer = null;
  const msg = h('p', { class: 'muted', id: 'up-msg' });
  const body = h('tbody', { id: 'up-body' });
  const load = async () => {
    try {
      const r = await api('GET', '/gb/upstreams');
      if (!alive) return;
      clear(body).append(...(r.upstreams || []).map((u) => h('tr', { 'data-id': u.id },
        h('td', { text: u.id }), h('td', { text: `${u.host}:${u.port}` }), h('td', { text: u.transport }),
        h('td', {}, h('span', { class: `badge ${u.state === 'registered' ? 'ok' : u.state === 'failed' ? 'bad' : 'warn'}`,
                                text: u.state })),
        h('td', { text: u.last_error || '—' }), h('td', { text: fmtTime(u.last_keepalive_ok) }),
        h('td', { text: String(u.misses ?? 0) }))));
      msg.textContent = '';
    } catch (e) {
      msg.textContent = e.status === 404 ? t('upOff') : e.message;
    }
    el.dataset.loaded = '1';
    if (alive) timer = setTimeout(load, REFRESH_MS);
  };
  clear(el).append(h('h1', { text: t('upstreams') }), msg,
    h('table', { class: 'list', id: 'upstreams' }, h('thead', {}, h('tr', {},
      ['id', 'host', 'transport', 'state', 'lastError', 'lastKeepaliveOk', 'misses'].map((k) => h('th', { text: t(k) })))),
    body));
  load();
  return () => { alive = false; clearTimeout(timer); };
}
