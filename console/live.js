// live.js — what runs while signed in, whatever the page: the event feed
// and GET /stats.
//
// Events come over the event WebSocket (GET /api/v1/events). A browser
// cannot put the Bearer token on the upgrade, so each connection first asks
// POST /events/ticket for a single-use ticket and opens ?ticket=&since=<the
// last seq seen> (nothing missed across a reconnect). A socket that closes
// after it was open reconnects with backoff and a fresh ticket; one that
// never opens (an older daemon, a proxy without WebSocket) falls back to
// polling GET /events/recent?since= every second (the ring the socket
// replays from). live.mode says which: connecting, websocket, polling.
//
// /stats is sampled every 2 s and kept for an hour (the plots are sampled
// here, in the page, not in the daemon). An event that changes a counter
// (a user, a binding, a device, a stream, a call, a room) fetches /stats at
// once as well, so the counters follow the event stream; those fetches
// update live.stats but add no plot sample.
import { api } from './api.js';

const STATS_MS = 2000;
const EVENTS_MS = 1000;
const KEEP = 1800;          // an hour of 2-second samples
const EVENTS_KEEP = 2000;
const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000];
const COUNTED = /^(user\.|registration\.|gb\.device\.|gb\.stream\.|call\.|room\.|media\.viewer\.)/;
const EVENT_STATS_GAP_MS = 500;   // event-driven /stats fetches: at most one per this, whatever the burst

export const live = {
  stats: null,              // the last /stats answer
  samples: [],              // {t, users, devices, streams, reqRate, byMethod: {m: per s}}
  events: [],               // newest last
  lastSeq: 0,
  lost: 0,                  // events the feed said it lost (events.lost, /events/recent's lost)
  mode: 'connecting',       // 'connecting' | 'websocket' | 'polling'
  retryMs: null,            // while reconnecting: the wait before the next try
  listeners: new Set(),     // fn(kind: 'stats'|'events'|'mode', payload)
};

let stops = [];
let prev = null;

function emit(kind, payload) {
  for (const fn of live.listeners) {
    try { fn(kind, payload); } catch (e) { console.error(e); }
  }
}

function sum(obj) { return Object.values(obj || {}).reduce((a, b) => a + (Number(b) || 0), 0); }

// sample: a plot point (the 2 s timer); else only the counters (an event)
async function fetchStats(sample) {
  let s;
  try { s = await api('GET', '/stats'); } catch { return; }
  live.stats = s;
  if (sample) {
    const now = Date.now();
    const point = {
      t: now,
      users: s.registrar?.aors ?? 0,
      devices: s.gb_upper?.online ?? 0,
      streams: (s.gb_upper?.streams ?? 0) + (s.gb_lower?.streams ?? 0),
      participants: s.media?.participants ?? 0,
      reqRate: 0,
      byMethod: {},
    };
    if (prev) {
      const dt = (now - prev.t) / 1000;
      for (const [m, n] of Object.entries(s.messages_in || {}))
        point.byMethod[m] = Math.max(0, (n - (prev.s.messages_in?.[m] ?? 0)) / dt);
      point.reqRate = Math.max(0, (sum(s.messages_in) - sum(prev.s.messages_in)) / dt);
    }
    prev = { t: now, s };
    live.samples.push(point);
    if (live.samples.length > KEEP) live.samples.splice(0, live.samples.length - KEEP);
  }
  emit('stats', s);
}

// /stats after counted events: one fetch in flight, at most one per EVENT_STATS_GAP_MS
let statsBusy = false;
let statsAgain = false;
let statsTimer = null;
let statsLast = 0;
function statsSoon() {
  if (statsBusy || statsTimer) { statsAgain = true; return; }
  const wait = Math.max(0, statsLast + EVENT_STATS_GAP_MS - Date.now());
  statsTimer = setTimeout(async () => {
    statsTimer = null;
    statsBusy = true;
    statsAgain = false;
    statsLast = Date.now();
    await fetchStats(false);
    statsBusy = false;
    if (statsAgain) statsSoon();
  }, wait);
}

function setMode(mode, retryMs = null) {
  live.mode = mode;
  live.retryMs = retryMs;
  emit('mode', mode);
}

function take(fresh) {
  if (!fresh.length) return;
  live.events.push(...fresh);
  if (live.events.length > EVENTS_KEEP) live.events.splice(0, live.events.length - EVENTS_KEEP);
  emit('events', fresh);
  if (fresh.some((e) => COUNTED.test(e.type || ''))) statsSoon();
}

async function pollEvents() {
  let r;
  try { r = await api('GET', `/events/recent?since=${live.lastSeq}`); } catch { return; }
  if (r.lost) live.lost += r.lost;
  const fresh = (r.events || []).filter((e) => e.seq > live.lastSeq);
  if (!fresh.length) {
    // a daemon restarted: seqs begin again at 1
    if (r.last_seq < live.lastSeq) live.lastSeq = 0;
    return;
  }
  live.lastSeq = fresh[fresh.length - 1].seq;
  take(fresh);
}

function every(ms, fn) {
  let stopped = false;
  let id = null;
  const run = async () => {
    await fn();
    if (!stopped) id = setTimeout(run, ms);
  };
  run();
  return () => { stopped = true; clearTimeout(id); };
}

// The event socket; on giving up (it never opened) the poller takes over.
function eventSocket() {
  let ws = null;
  let timer = null;
  let stopped = false;
  let everOpen = false;
  let failures = 0;
  let stopPoll = null;
  const poll = () => {
    setMode('polling');
    stopPoll = every(EVENTS_MS, pollEvents);
  };
  const retry = () => {
    const ms = BACKOFF_MS[Math.min(failures++, BACKOFF_MS.length - 1)];
    setMode('connecting', ms);
    timer = setTimeout(connect, ms);
  };
  const connect = async () => {
    timer = null;
    let ticket;
    try {
      ticket = (await api('POST', '/events/ticket')).ticket;
    } catch (e) {
      if (stopped) return;
      if (!everOpen || e.status === 404) poll();
      else retry();
      return;
    }
    if (stopped) return;
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    const url = `${proto}://${location.host}/api/v1/events?ticket=${encodeURIComponent(ticket)}` +
      (live.lastSeq ? `&since=${live.lastSeq}` : '');
    let opened = false;
    try { ws = new WebSocket(url); } catch { poll(); return; }
    ws.onopen = () => { opened = true; everOpen = true; failures = 0; setMode('websocket'); };
    // a connection sends each event once, after the since it was opened with
    // (a restarted daemon, whose seqs began again, replays its whole ring: no
    // seq filter here, or those would be dropped)
    ws.onmessage = (m) => {
      let e;
      try { e = JSON.parse(m.data); } catch { return; }
      if (e.type === 'events.lost') live.lost += e.count || 0;
      else if (e.seq) live.lastSeq = e.seq;
      take([e]);
    };
    ws.onclose = () => {
      ws = null;
      if (stopped) return;
      if (!opened && !everOpen) poll();
      else retry();
    };
  };
  connect();
  return () => {
    stopped = true;
    clearTimeout(timer);
    if (stopPoll) stopPoll();
    if (ws) ws.close();
  };
}

// Starts from the newest event: the tail shows what happens from now on
// (the Events page replays older ones on request).
export async function startLive() {
  stopLive();
  try {
    const head = await api('GET', '/events/recent?since=0&limit=1');
    const r = await api('GET', `/events/recent?since=${Math.max(0, (head.last_seq || 0) - 50)}`);
    live.events = r.events || [];
    live.lastSeq = live.events.length ? live.events[live.events.length - 1].seq : head.last_seq || 0;
  } catch { /* the feed retries */ }
  stops = [every(STATS_MS, () => fetchStats(true)), eventSocket()];
}

export function stopLive() {
  for (const stop of stops) stop();
  stops = [];
  clearTimeout(statsTimer);
  statsTimer = null;
  statsAgain = false;
  prev = null;
  live.samples = [];
  live.events = [];
  live.stats = null;
  live.lastSeq = 0;
  live.lost = 0;
  live.mode = 'connecting';
  live.retryMs = null;
}

export function onLive(fn) {
  live.listeners.add(fn);
  return () => live.listeners.delete(fn);
}

// fn() once events matching test(e) arrived, at most once per gapMs however
// many come (the first at once, a burst's rest together after the gap).
// Returns the unsubscribe.
export function onLiveEvents(test, fn, gapMs = 1000) {
  let last = 0;
  let timer = null;
  const fire = () => {
    timer = null;
    last = Date.now();
    fn();
  };
  const off = onLive((kind, evs) => {
    if (kind !== 'events' || timer || !evs.some(test)) return;
    timer = setTimeout(fire, Math.max(0, last + gapMs - Date.now()));
  });
  return () => { off(); clearTimeout(timer); };
}

// fn() at the next animation frame, once however often it is asked for
export function coalesced(fn) {
  let pending = 0;
  const run = () => { pending = 0; fn(); };
  const ask = () => { if (!pending) pending = requestAnimationFrame(run); };
  ask.cancel = () => { cancelAnimationFrame(pending); pending = 0; };
  return ask;
}
