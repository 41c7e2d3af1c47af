#!/usr/bin/env node
// rooms.mjs — one WHIP publisher and three WHEP viewers in headless Chromium
// against cascade's SFU, with the events the user center sees checked for
// exactly one joined and one left per participant (issue 12).
//
// Steps: serve rooms.html on an HTTP origin of its own on 127.0.0.1 (a
// secure context for getUserMedia, and another origin than the API, so
// every WHIP/WHEP request goes through CORS); launch Chromium with a fake
// camera and microphone; the publisher page publishes into the room; three
// viewer pages view it; each viewer's getStats() shows framesDecoded and
// totalAudioEnergy rising; every transport's srtpCipher is AEAD_AES_128_GCM
// (RFC 7714, what cascade prefers); every participant's room.participant.joined
// arrives; one viewer page is closed abruptly (no DELETE) and exactly one
// room.participant.left arrives for it (reason disconnected or
// consent-expired), and no second one within another consent timeout; the
// publisher page reloads and publishes again: one left for the old
// publisher, one joined for the new; the rest leave with DELETE (reason
// leave); over the whole run every participant has exactly one joined and
// one left.
//
// Prints one JSON line per step on stdout ({"step":..., "ok":true, ...}); on
// failure a line with "ok":false, the error, every page's events, the room's
// events and screenshots in the work dir, and exits 1. Exits 77 (skipped,
// with the reason on stderr) only when Chromium cannot be started; 2: bad
// usage.
//
//   node tests/browser/rooms.mjs --api http://127.0.0.1:8080 --token T \
//        [--room demo] [--consent-timeout-ms 10000] [--workdir DIR]
//
// Options:
//   --api URL               the cascade API's origin (http://127.0.0.1:PORT)
//   --token T               its Bearer token
//   --room NAME             the room (default: demo)
//   --consent-timeout-ms N  the daemon's [media] consent_timeout_s in ms: how
//                           long a vanished peer may take to be declared gone
//                           (default 30000)
//   --timeout MS            per step (default 20000)
//   --workdir DIR           screenshots and page logs (default a new temp dir)
//   --chromium PATH         default /usr/bin/chromium [CHROMIUM]
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { launch, openLoggedPage, parseArgs, sleep, step, usage, waitUntil } from './chromium.mjs';
import { serveFiles } from './static-server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

const opts = parseArgs('rooms', {
  api: { type: 'string' },
  token: { type: 'string', default: '' },
  room: { type: 'string', default: 'demo' },
  'consent-timeout-ms': { type: 'string', default: '30000' },
  timeout: { type: 'string', default: '20000' },
});
if (!opts.api || !/^https?:\/\//.test(opts.api)) usage('rooms', '--api http://HOST:PORT is required');
const apiBase = opts.api.replace(/\/+$/, '');
const timeout = Number(opts.timeout);
const consentMs = Number(opts['consent-timeout-ms']);
// A vanished peer is gone after at most the consent timeout, plus the time a
// loaded machine takes to notice: generous, as tests must not race.
const goneWithin = consentMs * 2 + 20000;
const workdir = opts.workdir;

// ---- the API (events) ----

async function apiGet(p) {
  const r = await fetch(`${apiBase}/api/v1${p}`, { headers: { Authorization: `Bearer ${opts.token}` } });
  if (r.status !== 200) throw new Error(`GET ${p}: HTTP ${r.status} ${await r.text()}`);
  return r.json();
}

async function lastSeq() {
  return (await apiGet('/events/recent?since=0')).last_seq || 0;
}

// The room's participant events since seq.
async function roomEvents(since) {
  const j = await apiGet(`/events/recent?since=${since}`);
  return (j.events || []).filter(
    (e) =>
      e.room === opts.room &&
      (e.type === 'room.participant.joined' || e.type === 'room.participant.left' || e.type === 'room.stream.published'),
  );
}

const count = (evs, type, id) => evs.filter((e) => e.type === type && e.participant === id).length;
const kinds = (evs, id) =>
  new Set(evs.filter((e) => e.type === 'room.stream.published' && e.participant === id).map((e) => e.kind));

// Polls the events until pred(events) holds; returns them. what names the wait.
async function waitEvents(since, pred, what, within = timeout) {
  let evs = [];
  await waitUntil(async () => pred((evs = await roomEvents(since))), within, what, {
    seen: () => `room events: ${JSON.stringify(evs)}`,
  });
  return evs;
}

// ---- the page's origin ----

const files = {
  '/rooms.html': [path.join(here, 'rooms.html'), 'text/html; charset=utf-8'],
  '/rooms.js': [path.join(here, 'rooms.js'), 'text/javascript; charset=utf-8'],
  '/whip-page.js': [path.join(here, 'whip-page.js'), 'text/javascript; charset=utf-8'],
};

// ---- pages ----

const pages = {}; // name -> {page, log}

async function openPage(browser, origin, name) {
  pages[name] = await openLoggedPage(browser, `${origin}/rooms.html`, name, { workdir, timeout });
  await pageReady(name);
  return pages[name].page;
}

// rooms.js is there and talks to the API.
async function pageReady(name) {
  const { page } = pages[name];
  if (!(await page.evaluate(() => typeof window.room === 'object'))) throw new Error(`${name}: rooms.js did not load`);
  await page.evaluate((a) => window.room.setApi(a), { base: apiBase, token: opts.token });
}

async function reloadPage(name) {
  await pages[name].page.reload({ waitUntil: 'load', timeout });
  await pageReady(name);
}

async function waitConnected(name) {
  const { page } = pages[name];
  try {
    await page.waitForFunction(() => window.room.state() === 'connected', { timeout, polling: 100 });
  } catch (e) {
    const state = await page.evaluate(() => window.room.state()).catch(() => '?');
    throw new Error(`${name}: not connected within ${timeout} ms (state ${state})`);
  }
}

// Waits until the viewer has decoded frames and heard audio, then until both
// went up again: media keeps flowing, not one burst.
async function waitMediaRising(name) {
  const { page } = pages[name];
  let first = null;
  let last = null;
  await waitUntil(
    async () => {
      last = await page.evaluate(() => window.room.stats());
      if (!first) {
        if (last.framesDecoded > 0 && last.totalAudioEnergy > 0) first = last;
        return false;
      }
      return last.framesDecoded > first.framesDecoded && last.totalAudioEnergy > first.totalAudioEnergy;
    },
    timeout,
    `rising media on ${name}`,
    { seen: () => `first ${JSON.stringify(first)} last ${JSON.stringify(last)}` },
  );
  return { first, last };
}

// WHEP for viewer name; a 404 (the publisher's streams not announced yet)
// is retried: it leaves nothing behind on the server.
async function view(name) {
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      return await pages[name].page.evaluate((r, n) => window.room.view(r, n, null), opts.room, name);
    } catch (e) {
      if (!/HTTP 404/.test(e.message) || Date.now() > deadline) throw e;
      await sleep(500);
    }
  }
}

async function failureReport(err, current, since) {
  const events = {};
  const screenshots = [];
  for (const [n, p] of Object.entries(pages)) {
    try {
      events[n] = await p.page.evaluate(() => window.roomEvents);
      const f = path.join(workdir, `fail-${n}.png`);
      await p.page.screenshot({ path: f, fullPage: true });
      screenshots.push(f);
    } catch (e) {
      events[n] = `(page gone: ${e.message})`;
    }
  }
  let room = null;
  try {
    room = await roomEvents(since);
  } catch (e) {
    room = `(events unavailable: ${e.message})`;
  }
  process.stdout.write(
    JSON.stringify({ step: current, ok: false, error: err.message, pages: events, room_events: room, screenshots, workdir }) +
      '\n',
  );
}

// ---- the scenario ----

let current = 'start';
let browser = null;
let server = null;
let since = 0;
let code = 0;
try {
  current = 'http';
  server = await serveFiles(files);
  const origin = `http://127.0.0.1:${server.address().port}`;
  since = await lastSeq();
  step('http', { origin, api: apiBase, since, workdir });

  current = 'browser';
  browser = await launch(opts, [], { protocolTimeout: timeout * 3 });
  step('browser', { version: await browser.version() });

  current = 'publish';
  await openPage(browser, origin, 'publisher');
  const pub1 = await pages.publisher.page.evaluate((r) => window.room.publish(r, 'cam', 'cam-1'), opts.room);
  step('published', { id: pub1 });
  await waitConnected('publisher');
  step('publisher-connected', { id: pub1 });
  // Viewers come once the publisher's audio and video are announced.
  await waitEvents(
    since,
    (e) => kinds(e, pub1).has('audio') && kinds(e, pub1).has('video'),
    `room.stream.published audio and video for ${pub1}`,
  );
  step('publisher-streams', { id: pub1 });

  current = 'view';
  const viewers = ['viewer1', 'viewer2', 'viewer3'];
  const vid = {};
  for (const v of viewers) {
    await openPage(browser, origin, v);
    vid[v] = await view(v);
    step('viewing', { viewer: v, id: vid[v] });
  }
  for (const v of viewers) await waitConnected(v);
  step('viewers-connected', { ids: vid });

  current = 'media';
  const media = {};
  for (const v of viewers) media[v] = await waitMediaRising(v);
  const shots = [];
  for (const v of viewers) {
    const f = path.join(workdir, `view-${v}.png`);
    await pages[v].page.screenshot({ path: f });
    shots.push(f);
  }
  step('media', { stats: media, screenshots: shots });

  // cascade offers AEAD_AES_128_GCM (RFC 7714) before AES128_CM_SHA1_80 and
  // Chromium offers GCM too: every transport, the publisher's included,
  // must have agreed on it (and media decoded over it, above).
  current = 'srtp-cipher';
  const ciphers = {};
  for (const n of ['publisher', ...viewers]) ciphers[n] = (await pages[n].page.evaluate(() => window.room.stats())).srtpCipher;
  // (Chromium names it SRTP_AEAD_AES_128_GCM, as BoringSSL does; the stats
  // spec, AEAD_AES_128_GCM.)
  for (const [n, c] of Object.entries(ciphers))
    if (!/^(SRTP_)?AEAD_AES_128_GCM$/.test(c || '')) throw new Error(`${n}: srtpCipher ${c}, expected AEAD_AES_128_GCM`);
  step('srtp-cipher', { ciphers });

  current = 'joined';
  const everyone = [pub1, ...viewers.map((v) => vid[v])];
  await waitEvents(since, (evs) => everyone.every((id) => count(evs, 'room.participant.joined', id) >= 1), 'joined for all four');
  step('joined', { ids: everyone });

  // Closed without a DELETE: the server learns it from DTLS close_notify or
  // from ICE consent running out, and must say so exactly once.
  current = 'viewer-closed';
  const gone = vid.viewer3;
  await pages.viewer3.page.close();
  pages.viewer3.log.end();
  delete pages.viewer3;
  step('viewer-closed', { id: gone });
  let evs = await waitEvents(since, (e) => count(e, 'room.participant.left', gone) >= 1, `left for ${gone}`, goneWithin);
  const left = evs.find((e) => e.type === 'room.participant.left' && e.participant === gone);
  if (left.reason !== 'disconnected' && left.reason !== 'consent-expired')
    throw new Error(`left for ${gone} with reason ${left.reason}, want disconnected or consent-expired`);
  // A second left would come from the other way of noticing (consent after
  // close_notify): give it a whole consent timeout to show up.
  await sleep(consentMs + 2000);
  evs = await roomEvents(since);
  if (count(evs, 'room.participant.left', gone) !== 1)
    throw new Error(`${count(evs, 'room.participant.left', gone)} left events for ${gone}`);
  step('viewer-left-once', { id: gone, reason: left.reason });

  // The publisher reloads its page and publishes again as the same user.
  current = 'publisher-reload';
  await reloadPage('publisher');
  const pub2 = await pages.publisher.page.evaluate((r) => window.room.publish(r, 'cam', 'cam-1'), opts.room);
  await waitConnected('publisher');
  evs = await waitEvents(
    since,
    (e) => count(e, 'room.participant.left', pub1) >= 1 && count(e, 'room.participant.joined', pub2) >= 1,
    `left for the old publisher ${pub1} and joined for the new ${pub2}`,
    goneWithin,
  );
  const oldLeft = evs.find((e) => e.type === 'room.participant.left' && e.participant === pub1);
  step('publisher-rejoined', { old: pub1, new: pub2, old_left_reason: oldLeft.reason });

  // The rest leave the clean way.
  current = 'leave';
  for (const n of ['viewer1', 'viewer2', 'publisher']) {
    const st = await pages[n].page.evaluate(() => window.room.leave());
    if (st !== 200) throw new Error(`${n}: DELETE of its session: HTTP ${st}`);
  }
  const stayed = [vid.viewer1, vid.viewer2, pub2];
  evs = await waitEvents(
    since,
    (e) => stayed.every((id) => count(e, 'room.participant.left', id) >= 1),
    'left for the viewers and the publisher that left with DELETE',
  );
  for (const id of stayed) {
    const l = evs.find((e) => e.type === 'room.participant.left' && e.participant === id);
    if (l.reason !== 'leave') throw new Error(`left for ${id} with reason ${l.reason}, want leave`);
  }
  step('left', { ids: stayed });

  // Over the whole run: exactly one joined and one left per participant, and
  // nobody else.
  current = 'exactly-once';
  await sleep(2000);
  evs = await roomEvents(since);
  const all = [pub1, pub2, vid.viewer1, vid.viewer2, vid.viewer3];
  const counts = {};
  for (const id of all)
    counts[id] = { joined: count(evs, 'room.participant.joined', id), left: count(evs, 'room.participant.left', id) };
  const strangers = evs.filter((e) => e.type !== 'room.stream.published' && !all.includes(e.participant));
  const bad = Object.entries(counts).filter(([, c]) => c.joined !== 1 || c.left !== 1);
  if (bad.length || strangers.length)
    throw new Error(`not exactly once: ${JSON.stringify(counts)}; others: ${JSON.stringify(strangers)}`);
  step('exactly-once', { counts });
  step('done');
} catch (err) {
  if (err.skip) {
    process.stderr.write(`rooms: SKIP: ${err.message}\n`);
    code = 77;
  } else {
    code = 1;
    await failureReport(err, current, since).catch(() => {});
  }
} finally {
  for (const p of Object.values(pages)) p.log.end();
  if (browser) await browser.close().catch(() => {});
  if (server) server.close();
}
process.exit(code);
