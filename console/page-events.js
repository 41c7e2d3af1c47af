// page-events.js — the live tail of the event bus: newest first, filtered by
// type (prefix) and by a user/device text matched against every field,
// pausable, and replayable from a seq (GET /events/recent?since=).
//
// The events are live.js's feed: the event WebSocket (a ticket from POST
// /events/ticket), or the 1 s polling it falls back to when the socket never
// opens. The indicator #ev-conn says which is in use (data-mode: connecting,
// websocket, polling).
import { api } from './api.js';
import { clear, fmtTime, h } from './dom.js';
import { t } from './i18n.js';
import { coalesced, live, onLive } from './live.js';

const SHOW = 300;
const KEEP = 5000;

function maxSeq(rows) { return rows.reduce((m, e) => (e.seq > m ? e.seq : m), 0); }

function details(e) {
  return Object.entries(e).filter(([k]) => k !== 'seq' && k !== 'time' && k !== 'type')
    .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`).join('  ');
}

export function mount(el) {
  let rows = live.events.slice();
  let held = [];             // arrived while paused
  let paused = false;
  const conn = h('span', { id: 'ev-conn', class: 'small', 'data-mode': live.mode });
  const type = h('input', { id: 'ev-type', placeholder: 'gb.device.', list: 'ev-types' });
  const who = h('input', { id: 'ev-who', placeholder: t('who') });
  const pause = h('input', { id: 'ev-pause', type: 'checkbox' });
  const since = h('input', { id: 'ev-since', type: 'number', min: 0, value: 0 });
  const status = h('p', { class: 'muted small', id: 'ev-status' });
  const body = h('tbody', { id: 'ev-body' });
  const types = ['user.', 'registration.', 'auth.failed', 'gb.device.', 'gb.catalog.updated', 'gb.stream.',
                 'gb.upstream.', 'gb.lower.', 'room.'];

  const drawConn = () => {
    const mode = live.mode;
    conn.dataset.mode = mode;
    conn.textContent = mode === 'websocket' ? t('evWs') : mode === 'polling' ? t('evPoll')
      : live.retryMs ? t('evReconnect', Math.round(live.retryMs / 1000)) : t('evConnecting');
    status.textContent = `${paused ? `${t('paused')} · ` : ''}` + (live.lost ? t('lost', live.lost) : '');
  };

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
    drawConn();
  };

  const add = (evs) => {
    if (paused) {
      held.push(...evs);
      if (held.length > KEEP) held.splice(0, held.length - KEEP);
      return;
    }
    rows.push(...evs);
    if (rows.length > KEEP) rows.splice(0, rows.length - KEEP);
    redraw();
  };
  const redraw = coalesced(draw);   // one redraw per frame however fast events come

  pause.addEventListener('change', () => {
    paused = pause.checked;
    if (!paused) {
      rows = rows.concat(held);
      held = [];
    }
    draw();
  });
  type.addEventListener('input', draw);
  who.addEventListener('input', draw);
  const replay = async () => {
    try {
      const r = await api('GET', `/events/recent?since=${Number(since.value) || 0}`);
      const old = rows.concat(held);
      rows = r.events || [];
      if (r.lost) rows.unshift({ type: 'events.lost', count: r.lost });
      const last = maxSeq(rows);
      rows = rows.concat(old.filter((e) => e.seq > last));
      held = [];
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
    h('p', { class: 'muted small' }, conn),
    status,
    h('table', { class: 'list events', id: 'ev-table' },
      h('thead', {}, h('tr', {}, ['seq', 'time', 'type', 'details'].map((k) => h('th', { text: t(k) })))), body));
  draw();
  const off = onLive((kind, evs) => {
    if (kind === 'events') add(evs);
    else if (kind === 'mode') drawConn();
  });
  return () => { off(); redraw.cancel(); };
}
