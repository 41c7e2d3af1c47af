#!/usr/bin/env node
// gb-live.mjs — a GB camera's live stream watched in headless Chromium over
// WebRTC through cascade's SFU (issue 13), the camera being cascade-gbsim.
//
// Steps (one JSON line each on stdout, {"step":..., "ok":true, ...}):
//   live         POST .../channels/{channel}/live answers the stream and its
//                WHEP URL ("webrtc");
//   first        tab A plays it: connected, frames decoded at 320 wide (with
//                the time from watch() to the first decoded frame);
//   rising       tab A's framesDecoded keeps going up;
//   second       tab B plays the same URL (the same upstream) and decodes;
//   viewers      the stream counts 2 webrtc viewers;
//   closed       tab A leaves with DELETE, tab B's page is closed abruptly;
//   idle         gb.stream.stopped with reason idle follows;
//   stop-*       on channel2 a tab plays, the stream is stopped with DELETE
//                /gb/streams/{sid}: what the tab sees (its connection state
//                the DTLS transport's, whether its track ended) is
//                printed as stop-seen once the connection is no longer up.
// On failure: a line with "ok":false and the error, screenshots and page
// logs in the work dir, exit 1. Exit 77 only when Chromium cannot start.
//
//   node tests/browser/gb-live.mjs --api http://127.0.0.1:PORT --token T \
//        --device ID --channel CID --channel2 CID2 [--timeout MS] [--workdir DIR]
//        [--gone-ms MS] (how long a closed page may take to be noticed and
//        the idle stop to follow; default 60000)
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { launch, openLoggedPage, parseArgs, step, usage, waitUntil } from './chromium.mjs';
import { serveFiles } from './static-server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const opts = parseArgs('gb-live', {
  api: { type: 'string' },
  token: { type: 'string', default: '' },
  device: { type: 'string' },
  channel: { type: 'string' },
  channel2: { type: 'string' },
  timeout: { type: 'string', default: '30000' },
  'gone-ms': { type: 'string', default: '60000' },
});
if (!opts.api || !opts.device || !opts.channel || !opts.channel2)
  usage('gb-live', '--api, --device, --channel and --channel2 are required');
const apiBase = opts.api.replace(/\/+$/, '');
const timeout = Number(opts.timeout);
const goneMs = Number(opts['gone-ms']);
const workdir = opts.workdir;

async function api(method, p, body) {
  const r = await fetch(`${apiBase}/api/v1${p}`, {
    method,
    headers: { Authorization: `Bearer ${opts.token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (r.status !== 200) throw new Error(`${method} ${p}: HTTP ${r.status} ${text}`);
  return JSON.parse(text);
}

// Polls fn until its answer has done set; returns that answer.
function until(what, within, fn) {
  let last;
  return waitUntil(async () => ((last = await fn()) && last.done ? last : null), within, what, {
    seen: () => `last ${JSON.stringify(last)}`,
  });
}

const pages = {};

async function openTab(browser, origin, name) {
  const { page } = await openLoggedPage(browser, `${origin}/gb-live.html`, name, { workdir, timeout });
  pages[name] = page;
  return page;
}

// Watches url in tab page; waits for the first decoded frame.
async function play(page, url) {
  const id = await page.evaluate((u, t) => window.gbLive.watch(u, t), url, opts.token);
  await until('connected', timeout, async () => ({ done: (await page.evaluate(() => window.gbLive.state())) === 'connected' }));
  const st = await until('a decoded frame', timeout, async () => {
    const s = await page.evaluate(() => window.gbLive.stats());
    return Object.assign(s, { done: s.framesDecoded > 0 && s.frameWidth > 0 });
  });
  return { id, first: st };
}

async function streamJson(sid) {
  return api('GET', `/gb/streams/${sid}`);
}

async function stopped(sid) {
  const j = await api('GET', '/events/recent?since=0');
  return (j.events || []).find((e) => e.type === 'gb.stream.stopped' && e.stream_id === sid);
}

let browser = null;
let server = null;
let current = 'launch';
try {
  server = await serveFiles({
    '/gb-live.html': [path.join(here, 'gb-live.html'), 'text/html; charset=utf-8'],
    '/gb-live.js': [path.join(here, 'gb-live.js'), 'text/javascript; charset=utf-8'],
  });
  const origin = `http://127.0.0.1:${server.address().port}`;
  browser = await launch(opts, [], { protocolTimeout: timeout * 3 });

  current = 'live';
  const live = await api('POST', `/gb/devices/${opts.device}/channels/${opts.channel}/live`, {});
  const sid = live.stream_id;
  if (!sid || !live.webrtc) throw new Error(`live answer without stream_id/webrtc: ${JSON.stringify(live)}`);
  step('live', { sid, webrtc: live.webrtc });

  current = 'first';
  const a = await openTab(browser, origin, 'a');
  const pa = await play(a, live.webrtc);
  step('first', { id: pa.id, width: pa.first.frameWidth, height: pa.first.frameHeight, first_frame_ms: pa.first.ms });

  current = 'rising';
  const base = pa.first.framesDecoded;
  const r = await until('framesDecoded rising', timeout, async () => {
    const s = await a.evaluate(() => window.gbLive.stats());
    return Object.assign(s, { done: s.framesDecoded >= base + 25 });
  });
  step('rising', { from: base, to: r.framesDecoded });

  // The camera's G.711 arrives as PCMA: packets keep coming, samples are
  // decoded and the tone has a level.
  current = 'audio';
  const a0 = await a.evaluate(() => window.gbLive.stats());
  const au = await until('audio received and decoded', timeout, async () => {
    const s = await a.evaluate(() => window.gbLive.stats());
    return Object.assign(s, {
      done: s.audioPacketsReceived >= a0.audioPacketsReceived + 50 && s.totalSamplesReceived > 0 && s.audioLevel > 0,
    });
  });
  step('audio', { codec: au.audioCodec, from: a0.audioPacketsReceived, to: au.audioPacketsReceived,
    samples: au.totalSamplesReceived, level: au.audioLevel });

  current = 'second';
  const again = await api('POST', `/gb/devices/${opts.device}/channels/${opts.channel}/live`, {});
  if (again.stream_id !== sid) throw new Error(`a second live request got another stream ${again.stream_id}`);
  const b = await openTab(browser, origin, 'b');
  const pb = await play(b, again.webrtc);
  step('second', { id: pb.id, width: pb.first.frameWidth, first_frame_ms: pb.first.ms });

  current = 'viewers';
  const v = await until('2 webrtc viewers', timeout, async () => {
    const j = await streamJson(sid);
    return { done: j.viewers_by_output && j.viewers_by_output.webrtc === 2, j };
  });
  step('viewers', { webrtc: v.j.viewers_by_output.webrtc, source: v.j.webrtc });

  current = 'closed';
  const del = await a.evaluate(() => window.gbLive.leave());
  await b.close(); // abruptly: no DELETE
  delete pages.b;
  step('closed', { delete_status: del });

  current = 'idle';
  const ev = await until('gb.stream.stopped', goneMs, async () => {
    const e = await stopped(sid);
    return { done: !!e, e };
  });
  step('idle', { reason: ev.e.reason });

  current = 'stop';
  const live2 = await api('POST', `/gb/devices/${opts.device}/channels/${opts.channel2}/live`, {});
  const c = await openTab(browser, origin, 'c');
  const pc = await play(c, live2.webrtc);
  step('stop-playing', { sid: live2.stream_id, id: pc.id, width: pc.first.frameWidth });
  await api('DELETE', `/gb/streams/${live2.stream_id}`);
  const seen = await until('the tab to see the end', timeout, async () => {
    const evs = await c.evaluate(() => window.gbEvents);
    const state = await c.evaluate(() => window.gbLive.state());
    const dtls = await c.evaluate(() => window.gbLive.dtlsState());
    const ended = evs.some((e) => e.ev === 'track-ended');
    return { done: (dtls === 'closed' && state !== 'connected') || ended, state, dtls, ended };
  });
  step('stop-seen', { state: seen.state, dtls: seen.dtls, track_ended: seen.ended });
} catch (err) {
  if (err.skip) process.stderr.write(`gb-live: SKIP: ${err.message}\n`);
  else {
    process.stdout.write(JSON.stringify({ step: current, ok: false, error: String(err.stack || err) }) + '\n');
    for (const [name, page] of Object.entries(pages)) {
      await page.screenshot({ path: path.join(workdir, `fail-${name}.png`) }).catch(() => {});
      const evs = await page.evaluate(() => window.gbEvents).catch(() => null);
      process.stdout.write(JSON.stringify({ page: name, events: evs }) + '\n');
    }
  }
  process.exitCode = err.skip ? 77 : 1;
}
if (browser) await browser.close().catch(() => {});
if (server) server.close();
