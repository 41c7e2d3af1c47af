#!/usr/bin/env node
// room-ws.mjs — cascade's room WebSocket (GET /api/v1/rooms/{room}/ws) with
// join tokens, in headless Chromium, checked against the events the user
// center sees (issue 12, "Signaling").
//
// Steps: join tokens from POST /api/v1/rooms/{room}/tokens; upgrades refused
// as plain HTTP (no credentials, garbage, tampered, another room's and
// expired tokens: 401; a bad room name: 400); page A joins with its token
// and publishes the fake camera and microphone; page B joins, sees A and its
// streams, subscribes and decodes (getStats framesDecoded and audio energy
// rising); A's publishing peer closed alone ends its streams and B's
// subscription but not A, which publishes again for B to decode; bad messages get error replies on a socket that stays usable;
// the room's participant cap (the daemon's max_participants_per_room, 4)
// refuses the next join with "full"; a participant kicked with DELETE is
// told and closed; an oversize message closes with 1009, a binary frame
// with 1003; A's page closed: B gets participant.left for A exactly once;
// B leaves; over the run, exactly one joined and one left per participant
// on /api/v1/events/recent, with the expected reasons.
//
// Prints one JSON line per step ({"step":..., "ok":true, ...}); on failure a
// line with "ok":false, the error, each page's messages and screenshots in
// the work dir, exit 1. Exit 77 (reason on stderr) only when Chromium
// cannot start; 2: bad usage.
//
//   node tests/browser/room-ws.mjs --api http://127.0.0.1:8080 --token T \
//        [--room demo] [--consent-timeout-ms 10000] [--timeout 30000] [--workdir DIR]
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { launch, openLoggedPage, parseArgs, sleep, step, usage, waitUntil } from './chromium.mjs';
import { serveFiles } from './static-server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

const opts = parseArgs('room-ws', {
  api: { type: 'string' },
  token: { type: 'string', default: '' },
  room: { type: 'string', default: 'demo' },
  'consent-timeout-ms': { type: 'string', default: '30000' },
  timeout: { type: 'string', default: '20000' },
});
if (!opts.api || !/^http:\/\//.test(opts.api)) usage('room-ws', '--api http://HOST:PORT is required');
const apiBase = opts.api.replace(/\/+$/, '');
const wsBase = apiBase.replace(/^http/, 'ws');
const timeout = Number(opts.timeout);
const consentMs = Number(opts['consent-timeout-ms']);
const workdir = opts.workdir;
const room = opts.room;

// ---- HTTP ----

async function apiCall(method, p, body) {
  const headers = { Authorization: `Bearer ${opts.token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(`${apiBase}/api/v1${p}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: r.status, json: await r.json().catch(() => null) };
}

async function mintToken(name, extra) {
  const r = await apiCall('POST', `/rooms/${room}/tokens`, Object.assign({ name }, extra || {}));
  if (r.status !== 201 || !r.json.token) throw new Error(`token for ${name}: HTTP ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

// A WebSocket upgrade by hand: the status (101, or the refusal's) and body.
function upgrade(target, headers = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(target, apiBase);
    const req = http.request({
      host: u.hostname,
      port: u.port,
      path: u.pathname + u.search,
      headers: Object.assign(
        { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' },
        headers,
      ),
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode, body: null });
    });
    req.on('response', (res) => {
      let b = '';
      res.on('data', (d) => (b += d));
      res.on('end', () => resolve({ status: res.statusCode, body: b }));
    });
    req.on('error', reject);
    req.setTimeout(timeout, () => req.destroy(new Error(`upgrade ${target}: timeout`)));
    req.end();
  });
}

async function lastSeq() {
  return (await apiCall('GET', '/events/recent?since=0')).json.last_seq || 0;
}

async function participantEvents(since) {
  const j = (await apiCall('GET', `/events/recent?since=${since}`)).json;
  return (j.events || []).filter((e) => e.room === room && /^room\.participant\./.test(e.type));
}

// ---- Chromium ----

const pages = {};

async function openPage(browser, origin, name) {
  pages[name] = await openLoggedPage(browser, `${origin}/room-ws.html`, name, { workdir, timeout });
  const { page } = pages[name];
  if (!(await page.evaluate(() => typeof window.rws === 'object'))) throw new Error(`${name}: room-ws.js did not load`);
  return page;
}

const ev = (name, fn, ...args) => pages[name].page.evaluate(fn, ...args);

// Waits until pred(messages of socket s on page name) holds; returns them.
async function waitMsgs(name, s, pred, what, within = timeout) {
  let msgs = [];
  await waitUntil(async () => pred((msgs = await ev(name, (k) => window.rws.msgs(k), s))), within, `${name}/${s}: ${what}`, {
    every: 200,
    seen: () => `got ${JSON.stringify(msgs).slice(0, 2000)}`,
  });
  return msgs;
}

function waitClosed(name, s, what) {
  return waitUntil(() => ev(name, (k) => window.rws.closed(k), s), timeout, `${name}/${s}: close (${what})`, { every: 200 });
}

async function waitState(name, s, key) {
  let st = null;
  await waitUntil(
    async () => (st = await ev(name, (k, p) => window.rws.state(k, p), s, key)) === 'connected',
    timeout,
    `${name}/${s}: connected peer ${key}`,
    { every: 200, seen: () => `state ${st}` },
  );
}

async function waitMediaRising(name, s, key) {
  let first = null;
  let last = null;
  await waitUntil(
    async () => {
      last = await ev(name, (k, p) => window.rws.stats(k, p), s, key);
      if (!first) {
        if (last.framesDecoded > 0 && last.totalAudioEnergy > 0) first = last;
        return false;
      }
      return last.framesDecoded > first.framesDecoded && last.totalAudioEnergy > first.totalAudioEnergy;
    },
    timeout,
    `rising media on ${name}`,
    { seen: () => JSON.stringify({ first, last }) },
  );
  return { first, last };
}

const count = (msgs, type, id) => msgs.filter((m) => m.type === type && m.participant === id).length;
const wsUrl = (tok) => `${wsBase}/api/v1/rooms/${room}/ws?token=${encodeURIComponent(tok)}`;

// ---- the scenario ----

let current = 'start';
let browser = null;
let server = null;
let since = 0;
let code = 0;
try {
  current = 'tokens';
  server = await serveFiles({
    '/room-ws.html': [path.join(here, 'room-ws.html'), 'text/html; charset=utf-8'],
    '/room-ws.js': [path.join(here, 'room-ws.js'), 'text/javascript; charset=utf-8'],
  });
  const origin = `http://127.0.0.1:${server.address().port}`;
  since = await lastSeq();
  const ta = await mintToken('alice');
  const tb = await mintToken('bob', { ttl_s: 100000 });
  if (tb.ttl_s !== 86400 || !ta.publish || !ta.subscribe || ta.room !== room)
    throw new Error(`token answers: ${JSON.stringify({ ta, tb })}`);
  const other = (await apiCall('POST', '/rooms/elsewhere/tokens', {})).json.token;
  const short = (await mintToken('brief', { ttl_s: 1 })).token;
  const noauth = await fetch(`${apiBase}/api/v1/rooms/${room}/tokens`, { method: 'POST' });
  if (noauth.status !== 401) throw new Error(`tokens without Bearer: HTTP ${noauth.status}`);
  step('tokens', { expires_at: ta.expires_at });

  current = 'refusals';
  const dot = ta.token.indexOf('.');
  const flip = (c) => (c === 'A' ? 'B' : 'A');
  const tampered = ta.token.slice(0, dot - 2) + flip(ta.token[dot - 2]) + ta.token.slice(dot - 1);
  await sleep(2500); // the short token expires
  const want = [
    ['no credentials', `/api/v1/rooms/${room}/ws`, {}, 401],
    ['a garbage token', `/api/v1/rooms/${room}/ws?token=abc.def`, {}, 401],
    ['a tampered token', `/api/v1/rooms/${room}/ws?token=${tampered}`, {}, 401],
    ["another room's token", `/api/v1/rooms/${room}/ws?token=${other}`, {}, 401],
    ['an expired token', `/api/v1/rooms/${room}/ws?token=${short}`, {}, 401],
    ['a wrong Bearer token', `/api/v1/rooms/${room}/ws`, { Authorization: 'Bearer nope' }, 401],
    ['a bad room name', '/api/v1/rooms/bad$room/ws', { Authorization: `Bearer ${opts.token}` }, 400],
    ["the room's token", `/api/v1/rooms/${room}/ws?token=${ta.token}`, {}, 101],
    ['the Bearer token', `/api/v1/rooms/${room}/ws`, { Authorization: `Bearer ${opts.token}` }, 101],
  ];
  const seen = {};
  for (const [what, target, headers, status] of want) {
    const r = await upgrade(target, headers);
    seen[what] = r;
    if (r.status !== status) throw new Error(`${what}: HTTP ${r.status} ${r.body}, want ${status}`);
    if (status >= 400 && !JSON.parse(r.body).error) throw new Error(`${what}: no JSON error: ${r.body}`);
  }
  step('refusals', { answers: seen });

  current = 'browser';
  browser = await launch(opts, [], { protocolTimeout: timeout * 3 });
  step('browser', { version: await browser.version() });

  current = 'a-publishes';
  await openPage(browser, origin, 'A');
  await ev('A', (u) => window.rws.open('a', u), wsUrl(ta.token));
  const ja = await ev('A', () => window.rws.join('a', 'ignored: the token names alice'));
  if (ja.type !== 'joined' || ja.name !== 'alice' || !/^[0-9a-f]{16}$/.test(ja.id))
    throw new Error(`A's join: ${JSON.stringify(ja)}`);
  const a = ja.id;
  await ev('A', () => window.rws.publish('a'));
  await waitState('A', 'a', 'pub');
  step('a-publishes', { id: a });

  current = 'b-subscribes';
  await openPage(browser, origin, 'B');
  await ev('B', (u) => window.rws.open('b', u), wsUrl(tb.token));
  const jb = await ev('B', () => window.rws.join('b', 'bob'));
  if (jb.type !== 'joined' || !jb.participants.some((p) => p.id === a && p.name === 'alice'))
    throw new Error(`B's join does not list A: ${JSON.stringify(jb)}`);
  const b = jb.id;
  // A's streams: in the join answer, or pushed once announced.
  const hasVideo = (msgs) =>
    jb.participants.some((p) => p.id === a && p.streams.some((s) => s.kind === 'video')) ||
    msgs.some((m) => m.type === 'stream.published' && m.participant === a && m.kind === 'video');
  await waitMsgs('B', 'b', hasVideo, `stream.published (video) for ${a}`);
  await ev('B', (p) => window.rws.subscribe('b', p), a);
  await waitState('B', 'b', a);
  const media = await waitMediaRising('B', 'b', a);
  const shot = path.join(workdir, 'b-view.png');
  await pages.B.page.screenshot({ path: shot });
  step('b-decodes', { id: b, stats: media, screenshot: shot });

  current = 'bad-messages';
  await ev('B', () => window.rws.send('b', 'this is not JSON {'));
  await waitMsgs('B', 'b', (m) => m.some((x) => x.type === 'error' && x.code === 'bad-json'), 'error bad-json');
  const e1 = await ev('B', () => window.rws.request('b', { type: 'subscribe' }));
  const e2 = await ev('B', () => window.rws.request('b', { type: 'no-such-thing' }));
  const e3 = await ev('B', () => window.rws.request('b', { type: 'join', name: 'again' }));
  const e4 = await ev('B', () => window.rws.request('b', { type: 'subscribe', participant: '0123456789abcdef', sdp: 'v=0' }));
  const pong = await ev('B', () => window.rws.request('b', { type: 'ping' }));
  const codes = [e1, e2, e3, e4].map((x) => `${x.type}/${x.code}`);
  if (codes.join() !== 'error/bad-request,error/unknown-type,error/already-joined,error/not-found' || pong.type !== 'pong')
    throw new Error(`bad messages: ${JSON.stringify([e1, e2, e3, e4, pong])}`);
  step('bad-messages', { codes, still_open: pong.type });

  // A's publishing peer alone ends (its DTLS closes; the socket stays): its
  // streams go and B's subscription with them, A stays in the room; A
  // publishes again and B subscribes again.
  current = 'republish';
  await ev('A', () => window.rws.closePc('a', 'pub'));
  await waitMsgs('A', 'a', (m) => m.some((y) => y.type === 'publish.ended'), 'publish.ended on A', consentMs * 2 + 20000);
  let bm = await waitMsgs('B', 'b', (m) => count(m, 'stream.unpublished', a) === 2 &&
    m.some((y) => y.type === 'unsubscribed' && y.participant === a), `stream.unpublished x2 and unsubscribed for ${a}`);
  if (count(bm, 'participant.left', a) !== 0) throw new Error('A left when only its peer ended');
  const ended = (await ev('A', () => window.rws.msgs('a'))).find((y) => y.type === 'publish.ended');
  const unsub = bm.find((y) => y.type === 'unsubscribed' && y.participant === a);
  await ev('B', (p) => window.rws.closePc('b', p), a);
  await ev('A', () => window.rws.publish('a'));
  await waitState('A', 'a', 'pub');
  bm = await waitMsgs('B', 'b', (m) => m.some((y) => y.type === 'stream.published' && y.participant === a && y.kind === 'video'),
    `stream.published again for ${a}`);
  await ev('B', (p) => window.rws.subscribe('b', p), a);
  await waitState('B', 'b', a);
  const again = await waitMediaRising('B', 'b', a);
  step('republish', { publish_ended: ended.reason, unsubscribed: unsub.reason, stats: again });

  current = 'cap';
  const x = {};
  for (const k of ['x1', 'x2', 'x3']) {
    await ev('B', (s, u) => window.rws.open(s, u), k, wsUrl(tb.token));
    x[k] = await ev('B', (s) => window.rws.join(s, s), k);
  }
  if (x.x1.type !== 'joined' || x.x2.type !== 'joined' || x.x3.type !== 'error' || x.x3.code !== 'full')
    throw new Error(`joins past the cap of 4: ${JSON.stringify(x)}`);
  const p3 = await ev('B', () => window.rws.request('x3', { type: 'ping' }));
  if (p3.type !== 'pong') throw new Error('the refused socket is not usable');
  await waitMsgs('B', 'b', (m) => count(m, 'participant.joined', x.x1.id) === 1 && count(m, 'participant.joined', x.x2.id) === 1,
    'participant.joined for x1 and x2');
  step('cap', { refused: x.x3 });

  current = 'kick';
  const k = await apiCall('DELETE', `/rooms/${room}/participants/${x.x1.id}`);
  if (k.status !== 200) throw new Error(`kick: HTTP ${k.status}`);
  await waitMsgs('B', 'x1', (m) => m.some((y) => y.type === 'left' && y.reason === 'kicked'), 'left kicked on x1');
  const kc = await waitClosed('B', 'x1', 'kicked');
  await waitMsgs('B', 'b', (m) => m.some((y) => y.type === 'participant.left' && y.participant === x.x1.id && y.reason === 'kicked'),
    'participant.left kicked for x1');
  step('kick', { close: kc });

  current = 'frames';
  await ev('B', () => window.rws.send('x2', 'x'.repeat(70000)));
  const big = await waitClosed('B', 'x2', 'oversize');
  await ev('B', () => window.rws.sendBinary('x3', 16));
  const bin = await waitClosed('B', 'x3', 'binary');
  if (big.code !== 1009 || bin.code !== 1003) throw new Error(`close codes: oversize ${big.code}, binary ${bin.code}`);
  await waitMsgs('B', 'b', (m) => m.some((y) => y.type === 'participant.left' && y.participant === x.x2.id), 'participant.left for x2');
  step('frames', { oversize: big, binary: bin });

  current = 'a-closed';
  await pages.A.page.close();
  pages.A.log.end();
  delete pages.A;
  let msgs = await waitMsgs('B', 'b', (m) => count(m, 'participant.left', a) >= 1, `participant.left for ${a}`,
    consentMs * 2 + 20000);
  // A second left could only come from A's peer noticed later (consent): give it that long.
  await sleep(consentMs + 2000);
  msgs = await ev('B', () => window.rws.msgs('b'));
  const leftA = msgs.filter((m) => m.type === 'participant.left' && m.participant === a);
  if (leftA.length !== 1) throw new Error(`${leftA.length} participant.left for A on B`);
  const unpub = msgs.filter((m) => m.type === 'stream.unpublished' && m.participant === a).length;
  const pub = msgs.filter((m) => m.type === 'stream.published' && m.participant === a).length +
    jb.participants.filter((p) => p.id === a).reduce((n, p) => n + p.streams.length, 0);
  if (unpub !== pub) throw new Error(`A's streams: ${pub} published, ${unpub} unpublished on B`);
  step('a-left-once', { reason: leftA[0].reason, unpublished: unpub });

  current = 'b-leaves';
  const lb = await ev('B', () => window.rws.request('b', { type: 'leave' }).catch((e) => String(e)));
  msgs = await waitMsgs('B', 'b', (m) => m.some((y) => y.type === 'left' && y.reason === 'leave'), 'left leave on b');
  const bc = await waitClosed('B', 'b', 'after leave');
  step('b-leaves', { close: bc, reply: lb });

  current = 'exactly-once';
  await sleep(1000);
  const evs = await participantEvents(since);
  const want2 = { [a]: 'disconnected', [b]: 'leave', [x.x1.id]: 'kicked', [x.x2.id]: 'disconnected' };
  const counts = {};
  for (const [id, reason] of Object.entries(want2)) {
    const j = evs.filter((e) => e.type === 'room.participant.joined' && e.participant === id);
    const l = evs.filter((e) => e.type === 'room.participant.left' && e.participant === id);
    counts[id] = { joined: j.length, left: l.length, reason: l[0] && l[0].reason };
    if (j.length !== 1 || l.length !== 1 || l[0].reason !== reason)
      throw new Error(`not exactly once for ${id} (want left ${reason}): ${JSON.stringify(counts[id])}`);
  }
  const strangers = evs.filter((e) => !(e.participant in want2));
  if (strangers.length) throw new Error(`events for others: ${JSON.stringify(strangers)}`);
  step('exactly-once', { counts });
  step('done');
} catch (err) {
  if (err.skip) {
    process.stderr.write(`room-ws: SKIP: ${err.message}\n`);
    code = 77;
  } else {
    code = 1;
    const msgs = {};
    for (const [n, p] of Object.entries(pages)) {
      try {
        msgs[n] = await p.page.evaluate(() => document.getElementById('log').textContent);
        await p.page.screenshot({ path: path.join(workdir, `fail-${n}.png`), fullPage: true });
      } catch (e) {
        msgs[n] = `(page gone: ${e.message})`;
      }
    }
    process.stdout.write(JSON.stringify({ step: current, ok: false, error: err.message, pages: msgs, workdir }) + '\n');
  }
} finally {
  for (const p of Object.values(pages)) p.log.end();
  if (browser) await browser.close().catch(() => {});
  if (server) server.close();
}
process.exit(code);
