// page-events.js — the live tail of the event bus: newest first, filtered by
// type (prefix) and by a user/device text matched against every field,
// pausable, and replayable from a seq (GET /events/recent?since=).
import { api } from './api.js';
import { clear, fmtTime, h } from './dom.js';
import { t } from './i18n.js';
import { live, onLive } from './live.js';

const SHOW = 300;

function details(e) {
  return Object.entries(e).filter(([k]) => k !== 'seq' && k !== 'time' && k !== 'type')
    .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`).join('  ');
}

export function mount(el) {
  let rows = live.events.slice();
  let paused = false;
  const type = h('input', { id: 'ev-type', placeholder: 'gb.device.', list: 'ev-types' });
  const who = h('input', { id: 'ev-who', placeholder: t('who') });
  const pause = h('input', { id: 'ev-pause', type: 'checkbox' });
  const since = h('input', { id: 'ev-since', type: 'number', min: 0, value: 0 });
  const status = h('p', { class: 'muted small', id: 'ev-status' });
  const body = h('tbody', { id: 'ev-body' });
  const types = ['user.', 'registration.', 'auth.failed', 'gb.device.', 'gb.catalog.updated', 'gb.stream.',
                 'gb.upstream.', 'gb.lower.', 'room.'];

  const draw = () => {
    const ty = type.value.trim();
    const w = who.value.trim().toLowerCase();
    const shown = [];
    for (let i = rows.length - 1; i >= 0 && shown.length < SHOW; i--) {
      const e = rows[i];
      if (ty && !e.type.startsWith(ty)) continue;
      if (w && !details(e).toLowerCase().includes(w)) continue;
      shown.push(e);
    }
    clear(body).append(...shown.map((e) => h('tr', { 'data-type': e.type, 'data-seq': e.seq },
      h('td', { text: e.seq ?? '' }), h('td', { text: fmtTime(e.time) }), h('td', {}, h('b', { text: e.type })),
      h('td', { class: 'details', text: details(e) }))));
    status.textContent = `${paused ? `${t('paused')} · ` : ''}${t('pollNote')}` +
      (live.lost ? ` · ${t('lost', live.lost)}` : '');
  };

  pause.addEventListener('change', () => {
    paused = pause.checked;
    if (!paused) rows = mergeLive(rows);
    draw();
  });
  type.addEventListener('input', draw);
  who.addEventListener('input', draw);
  const replay = async () => {
    try {
      const r = await api('GET', `/events/recent?since=${Number(since.value) || 0}`);
      rows = r.events || [];
      if (r.lost) rows.unshift({ type: 'events.lost', count: r.lost });
      rows = mergeLive(rows);
    } catch (e) {
      status.textContent = e.message;
      return;
    }
    draw();
  };

  clear(el).append(
    h('h1', { text: t('events') }),
    h('div', { class: 'toolbar' },
      h('label', {}, t('type'), ' ', type), h('datalist', { id: 'ev-types' }, types.map((x) => h('option', { value: x }))),
      h('label', {}, t('who'), ' ', who),
      h('label', {}, pause, ' ', t('pause')),
      h('label', {}, t('since'), ' ', since),
      h('button', { type: 'button', id: 'ev-replay', text: t('replay'), onclick: replay }),
      h('button', { type: 'button', id: 'ev-clear', text: t('clear'), onclick: () => { rows = []; draw(); } })),
    status,
    h('table', { class: 'list events', id: 'ev-table' },
      h('thead', {}, h('tr', {}, ['seq', 'time', 'type', 'details'].map((k) => h('th', { text: t(k) })))), body));
  draw();
  return onLive((kind, evs) => {
    if (kind !== 'events' || paused) return;
    rows.push(...evs);
    if (rows.length > 5000) rows.splice(0, rows.length - 5000);
    draw();
  });
}

// rows plus the live events newer than its last seq
function mergeLive(rows) {
  const last = rows.reduce((m, e) => (e.seq > m ? e.seq : m), 0);
  return rows.concat(live.events.filter((e) => e.seq > last));
}
