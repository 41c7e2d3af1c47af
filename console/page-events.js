// page-events.js — the live tail of the event bus: newest first, filtered by
// type (prefix) and by a user/device text matched against every field,
// pausable, and replayable from a seq (GET /events/recent?since=).
//
// Live events come over the event WebSocket (GET /api/v1/events). A browser
// cannot put the Bearer token on the upgrade, so each connection first asks
// POST /events/ticket for a single-use ticket and opens ?ticket=&since=<the
// last seq seen> (nothing missed across a reconnect). A socket that closes
// after it was open reconnects with backoff and a fresh ticket; one that
// never opens (an older daemon, a proxy without WebSocket) falls back to
// the 1 s polling of live.js. The indicator #ev-conn says which is in use
// (data-mode: connecting, websocket, polling).
import { api } from './api.js';
import { clear, fmtTime, h } from './dom.js';
import { t } from './i18n.js';
import { live, onLive } from './live.js';

const SHOW = 300;
const KEEP = 5000;
const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000];

function maxSeq(rows) { return rows.reduce((m, e) => (e.seq > m ? e.seq : m), 0); }

// The event socket: onEvents(list) for what arrives, onMode(mode, detail)
// when the transport changes. Returns stop().
function eventSocket(sinceFn, onEvents, onMode) {
  let ws = null;
  let timer = null;
  let stopped = false;
  let everOpen = false;
  let failures = 0;
  const connect = async () => {
    timer = null;
    let ticket;
    try {
      ticket = (await api('POST', '/events/ticket')).ticket;
    } catch (e) {
      if (stopped) return;
      if (!everOpen || e.status === 404) { onMode('polling', e.message); return; }
      retry();
      return;
    }
    if (stopped) return;
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    const since = sinceFn();
    const url = `${proto}://${location.host}/api/v1/events?ticket=${encodeURIComponent(ticket)}` +
      (since ? `&since=${since}` : '');
    let opened = false;
    try { ws = new WebSocket(url); } catch (e) { onMode('polling', e.message); return; }
    ws.onopen = () => { opened = true; everOpen = true; failures = 0; onMode('websocket'); };
    ws.onmessage = (m) => {
      let e;
      try { e = JSON.parse(m.data); } catch { return; }
      onEvents([e]);
    };
    ws.onclose = () => {
      ws = null;
      if (stopped) return;
      if (!opened && !everOpen) { onMode('polling'); return; }
      retry();
    };
  };
  const retry = () => {
    const ms = BACKOFF_MS[Math.min(failures++, BACKOFF_MS.length - 1)];
    onMode('connecting', ms);
    timer = setTimeout(connect, ms);
  };
  connect();
  return () => {
    stopped = true;
    clearTimeout(timer);
    if (ws) ws.close();
  };
}

function details(e) {
  return Object.entries(e).filter(([k]) => k !== 'seq' && k !== 'time' && k !== 'type')
    .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`).join('  ');
}

export function mount(el) {
  let rows = live.events.slice();
  let held = [];             // arrived while paused
  let paused = false;
  let mode = 'connecting';
  let modeDetail = null;
  let lastSeq = Math.max(maxSeq(rows), live.lastSeq || 0);
  let lost = 0;
  const conn = h('span', { id: 'ev-conn', class: 'small', 'data-mode': mode });
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
    conn.dataset.mode = mode;
    conn.textContent = mode === 'websocket' ? t('evWs') : mode === 'polling' ? t('evPoll')
      : modeDetail ? t('evReconnect', Math.round(modeDetail / 1000)) : t('evConnecting');
    const nlost = mode === 'polling' ? live.lost : lost;
    status.textContent = `${paused ? `${t('paused')} · ` : ''}` + (nlost ? t('lost', nlost) : '');
  };

  const add = (evs) => {
    if (paused) {
      held.push(...evs);
      if (held.length > KEEP) held.splice(0, held.length - KEEP);
      return;
    }
    rows.push(...evs);
    if (rows.length > KEEP) rows.splice(0, rows.length - KEEP);
    draw();
  };
  // From the socket: a connection sends each event once, after the since it
  // was opened with (a restarted daemon, whose seqs began again, replays its
  // whole ring: no seq filter here, or those would be dropped).
  const fromSocket = (evs) => {
    for (const e of evs) {
      if (e.type === 'events.lost') lost += e.count || 0;
      else if (e.seq) lastSeq = e.seq;
    }
    add(evs);
  };
  const stopSocket = eventSocket(() => lastSeq, fromSocket, (m, detail) => {
    mode = m;
    modeDetail = detail ?? null;
    if (m === 'polling') rows = mergeLive(rows);   // what the poller saw meanwhile
    draw();
  });

  pause.addEventListener('change', () => {
    paused = pause.checked;
    if (!paused) {
      rows = mode === 'polling' ? mergeLive(rows.concat(held)) : rows.concat(held);
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
      rows = mode === 'polling' ? mergeLive(rows) : rows.concat(old.filter((e) => e.seq > last));
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
  // The poller of live.js runs for the other pages anyway; its events count
  // here only once the socket gave up.
  const offLive = onLive((kind, evs) => {
    if (kind !== 'events' || mode !== 'polling') return;
    add(evs);
  });
  return () => { stopSocket(); offLive(); };
}

// rows plus the polled live events newer than its last seq
function mergeLive(rows) {
  const last = maxSeq(rows);
  return rows.concat(live.events.filter((e) => e.seq > last));
}
