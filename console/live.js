// live.js — what runs while signed in, whatever the page: GET /stats every
// 2 s kept for an hour (the plots are sampled here, in the page, not in the
// daemon), and the event tail. Browsers cannot put the Bearer token on a
// WebSocket upgrade, so events come from GET /events/recent?since= polled
// every second (the same ring the WebSocket replays from).
import { api } from './api.js';

const STATS_MS = 2000;
const EVENTS_MS = 1000;
const KEEP = 1800;          // an hour of 2-second samples
const EVENTS_KEEP = 2000;

export const live = {
  stats: null,              // the last /stats answer
  samples: [],              // {t, users, devices, streams, reqRate, byMethod: {m: per s}}
  events: [],               // newest last
  lastSeq: 0,
  lost: 0,
  listeners: new Set(),     // fn(kind: 'stats'|'events', payload)
};

let timers = [];
let prev = null;

function emit(kind, payload) {
  for (const fn of live.listeners) {
    try { fn(kind, payload); } catch (e) { console.error(e); }
  }
}

function sum(obj) { return Object.values(obj || {}).reduce((a, b) => a + (Number(b) || 0), 0); }

async function pollStats() {
  let s;
  try { s = await api('GET', '/stats'); } catch { return; }
  const now = Date.now();
  const sample = {
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
      sample.byMethod[m] = Math.max(0, (n - (prev.s.messages_in?.[m] ?? 0)) / dt);
    sample.reqRate = Math.max(0, (sum(s.messages_in) - sum(prev.s.messages_in)) / dt);
  }
  prev = { t: now, s };
  live.stats = s;
  live.samples.push(sample);
  if (live.samples.length > KEEP) live.samples.splice(0, live.samples.length - KEEP);
  emit('stats', s);
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
  live.events.push(...fresh);
  if (live.events.length > EVENTS_KEEP) live.events.splice(0, live.events.length - EVENTS_KEEP);
  emit('events', fresh);
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

// Starts from the newest event: the tail shows what happens from now on
// (the Events page replays older ones on request).
export async function startLive() {
  stopLive();
  try {
    const head = await api('GET', '/events/recent?since=0&limit=1');
    const r = await api('GET', `/events/recent?since=${Math.max(0, (head.last_seq || 0) - 50)}`);
    live.events = r.events || [];
    live.lastSeq = live.events.length ? live.events[live.events.length - 1].seq : head.last_seq || 0;
  } catch { /* the pollers retry */ }
  timers = [every(STATS_MS, pollStats), every(EVENTS_MS, pollEvents)];
}

export function stopLive() {
  for (const stop of timers) stop();
  timers = [];
  prev = null;
  live.samples = [];
  live.events = [];
  live.stats = null;
  live.lastSeq = 0;
}

export function onLive(fn) {
  live.listeners.add(fn);
  return () => live.listeners.delete(fn);
}
