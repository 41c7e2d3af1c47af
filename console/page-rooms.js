// page-rooms.js — the SFU's rooms (GET /rooms), one room's participants
// (GET /rooms/{room}) and kick (DELETE /rooms/{room}/participants/{id}).
import { api } from './api.js';
import { clear, fmtTime, h } from './dom.js';
import { t } from './i18n.js';
import { onLiveEvents } from './live.js';

const REFRESH_MS = 3000;

export function mount(el, args) {
  let alive = true;
  let timer = null;
  const room = args[0] || null;
  const msg = h('p', { class: 'muted', id: 'rooms-msg' });
  const box = h('div', {});
  const th = (...keys) => h('thead', {}, h('tr', {}, keys.map((k) => h('th', { text: k ? t(k) : '' }))));

  const kick = (id) => async () => {
    try { await api('DELETE', `/rooms/${encodeURIComponent(room)}/participants/${encodeURIComponent(id)}`); } catch (e) {
      msg.textContent = e.message;
    }
    load();
  };

  const load = async () => {
    clearTimeout(timer);
    try {
      if (!room) {
        const r = await api('GET', '/rooms');
        if (!alive) return;
        clear(box).append(h('table', { class: 'list', id: 'rooms-list' }, th('room', 'participants', 'publishers', 'created'),
          h('tbody', {}, (r.rooms || []).map((x) => h('tr', { 'data-room': x.name },
            h('td', {}, h('a', { href: `#/rooms/${encodeURIComponent(x.name)}`, text: x.name })),
            h('td', { text: x.participants }), h('td', { text: x.publishers }), h('td', { text: fmtTime(x.created) }))))));
      } else {
        const r = await api('GET', `/rooms/${encodeURIComponent(room)}`);
        if (!alive) return;
        clear(box).append(h('table', { class: 'list', id: 'participants' },
          th('id', 'name', 'user', 'state', 'kind', 'joined', ''),
          h('tbody', {}, (r.participants || []).map((p) => h('tr', { 'data-id': p.id },
            h('td', { text: p.id }), h('td', { text: p.name }), h('td', { text: p.user }), h('td', { text: p.state }),
            h('td', { text: (p.streams || []).map((s) => s.kind).join(', ') }), h('td', { text: fmtTime(p.joined) }),
            h('td', {}, h('button', { type: 'button', class: 'danger', text: t('kick'), onclick: kick(p.id) })))))));
      }
      msg.textContent = '';
    } catch (e) {
      msg.textContent = e.status === 503 || (e.status === 404 && !room) ? t('roomsOff') : e.message;
    }
    el.dataset.loaded = '1';
    if (alive) timer = setTimeout(load, REFRESH_MS);
  };

  clear(el).append(h('h1', { text: room ? `${t('room')} ${room}` : t('rooms') }),
    room ? h('a', { href: '#/rooms', text: '←' }) : null, msg, box);
  const off = onLiveEvents((e) => e.type.startsWith('room.'), load, 500);
  load();
  return () => { alive = false; clearTimeout(timer); off(); };
}
