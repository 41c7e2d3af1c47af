#!/usr/bin/env node
// console-live.mjs — drives the web console's live view page (console/
// page-live.js, #/live) in headless Chromium against a GB upper node and
// checks what it plays against the API (issues 13 and 14).
//
// Steps: sign in; open #/live, load --device's catalog tree, a 4-tile grid;
// pick --channel and --channel2 in the tree: two tiles play over WebRTC
// (WHEP), their framesDecoded (getStats, on the tile as data-frames) rises
// and the video element has a width; GET /media/streams counts one WebRTC
// viewer each; tile 1's transport picker set to FLV: the same stream plays
// through mpegts.js (HTTP-FLV into Media Source Extensions): the video's
// getVideoPlaybackQuality().totalVideoFrames rises and the API counts an FLV
// viewer instead of the WebRTC one; a second tab whose browser has no
// RTCPeerConnection opens #/live/DEVICE/CHANNEL: the tile falls back to FLV
// by itself and decodes frames; the language switch re-renders the page in
// Chinese around the same playing tiles (the same video elements, the same
// streams, frames still rising); a PTZ click beside the selected tile is sent; then load
// --pb-device, pick --pb-channel, search the records of --day: the timeline
// has as many segments as the API's RecordInfo answer; a click on one starts
// a playback that plays in the selected tile (a second WHEP viewer of it
// is refused, 409); pause: the frame count stops
// (two reads agree, and still after 3 s), resume: it rises again; speed 2
// answered; close every tile: the playback stream is gone, the live
// streams' WebRTC viewers drop to 0; the devices page's Watch button opens
// the live page playing the channel, which shows "ended" with the reason
// when the stream is stopped through the API; the language switch names
// the page in Chinese. No page error, nothing refused by the CSP. PNGs in
// the work dir.
//
// One JSON line per step on stdout ({"step":..., "ok":true, ...}); on
// failure a line with "ok":false and the error, exit 1. Exit 77 (skipped,
// reason on stderr) only when Chromium cannot start; 2: bad usage.
//
//   node tests/browser/console-live.mjs --api http://127.0.0.1:8080 --token T \
//        --device ID --channel CH1 --channel2 CH2 --pb-device ID --pb-channel CH --day 2026-12-01 \
//        [--timeout 30000] [--workdir DIR]
import path from 'node:path';

import { launch, parseArgs, sleep, step, usage as usageOf } from './chromium.mjs';

const usage = (msg) => usageOf('console-live', msg);
const opts = parseArgs('console-live', {
  api: { type: 'string' },
  token: { type: 'string', default: '' },
  device: { type: 'string' },
  channel: { type: 'string' },
  channel2: { type: 'string' },
  'pb-device': { type: 'string' },
  'pb-channel': { type: 'string' },
  day: { type: 'string' },
  timeout: { type: 'string', default: '30000' },
});
if (!opts.api || !/^https?:\/\//.test(opts.api)) usage('--api http://HOST:PORT is required');
for (const k of ['device', 'channel', 'channel2', 'pb-device', 'pb-channel', 'day'])
  if (!opts[k]) usage(`--${k} is required`);
const base = opts.api.replace(/\/+$/, '');
const timeout = Number(opts.timeout);
const workdir = opts.workdir;

async function apiCall(method, p, body) {
  const headers = { Authorization: `Bearer ${opts.token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(`${base}/api/v1${p}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: r.status, json: await r.json().catch(() => null) };
}

async function apiGet(p) {
  const r = await apiCall('GET', p);
  if (r.status !== 200) throw new Error(`GET ${p}: ${r.status}`);
  return r.json;
}

// until(fn, what): polls fn (async) until it returns a truthy value; the
// deadline is generous (a loaded machine), the check is on the condition.
async function until(fn, what, ms = timeout) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

let browser = null;
let page = null;
let current = 'start';
let code = 0;
const cspErrors = [];
const pageErrors = [];
// Uncaught exceptions whose every stack frame is inside the vendored mpegts.js
// (its own timers and stream callbacks, none of the console's code on the
// stack): listed in the output, not counted as the console's page errors.
const vendorErrors = [];
function pageError(e, where) {
  const frames = String(e.stack || '').split('\n').slice(1).map((l) => l.trim()).filter((l) => l.startsWith('at '));
  const text = `${where}${e.message}${frames.length ? ` (${frames.slice(0, 4).join(' | ')})` : ''}`;
  if (frames.length && frames.every((l) => l.includes('/console/vendor/mpegts.js'))) vendorErrors.push(text);
  else pageErrors.push(text);
}

async function shot(name) {
  const f = path.join(workdir, `console-${name}.png`);
  await page.screenshot({ path: f, fullPage: true });
  return f;
}

// a tile as the page (pg, the main tab by default) shows it; quality: the
// video element's own count of decoded frames (what an FLV tile plays through)
function tileState(i, pg = page) {
  return pg.evaluate((n) => {
    const t = document.querySelector(`#live-grid .tile[data-tile="${n}"]`);
    if (!t) return null;
    const v = t.querySelector('video');
    return { state: t.dataset.state, reason: t.dataset.reason || null, sid: t.dataset.sid || null,
             frames: Number(t.dataset.frames || 0), width: Number(t.dataset.width || 0),
             videoWidth: v.videoWidth, paused: t.dataset.paused || null, scale: t.dataset.scale || null,
             transport: t.dataset.transport || null, fallback: t.dataset.fallback || null,
             quality: v.getVideoPlaybackQuality().totalVideoFrames, probe: v.dataset.probe || null };
  }, i);
}

// the tile plays over HTTP-FLV: its video element decodes frames, more and more
async function playsFlv(i, what, pg = page) {
  const first = await until(async () => {
    const s = await tileState(i, pg);
    return s && s.transport === 'flv' && s.state === 'playing' && s.quality > 0 && s.videoWidth > 0 ? s : false;
  }, `${what}: tile ${i} playing FLV with frames decoded`);
  const later = await until(async () => {
    const s = await tileState(i, pg);
    return s.transport === 'flv' && s.quality > first.quality ? s : false;
  }, `${what}: tile ${i}'s totalVideoFrames rising`);
  return { sid: first.sid, width: first.videoWidth, from: first.quality, to: later.quality, fallback: first.fallback };
}

async function signIn(pg) {
  await pg.goto(`${base}/`, { waitUntil: 'load', timeout });
  await pg.waitForSelector('#signin #token', { timeout });
  await pg.type('#token', opts.token);
  await pg.click('#signin button[type=submit]');
  await pg.waitForSelector('#page-overview', { timeout });
}

// the tile plays: connected, frames decoded, and the count rises
async function plays(i, what) {
  const first = await until(async () => {
    const s = await tileState(i);
    return s && s.state === 'playing' && s.frames > 0 && s.videoWidth > 0 ? s : false;
  }, `${what}: tile ${i} playing with frames decoded`);
  const later = await until(async () => {
    const s = await tileState(i);
    return s.frames > first.frames ? s : false;
  }, `${what}: tile ${i}'s framesDecoded rising`);
  return { sid: first.sid, width: first.videoWidth, from: first.frames, to: later.frames };
}

async function loadDevice(id) {
  await page.$eval('#live-device', (e, v) => { e.value = v; }, id);
  await page.evaluate(() => { delete document.querySelector('#live-catalog').dataset.loaded; });
  await page.click('#live-load');
  await page.waitForSelector(`#live-catalog[data-loaded] button.node`, { timeout });
}

async function clickTile(i) {
  await page.click(`#live-grid .tile[data-tile="${i}"] .tile-title`);
}

try {
  current = 'browser';
  try {
    browser = await launch(opts, ['--lang=en-US'], { protocolTimeout: timeout * 3, loopbackIce: false });
  } catch (e) {
    process.stderr.write(`console-live: SKIP: ${e.message}\n`);
    code = 77;
    throw Object.assign(new Error('skip'), { skip: true });
  }
  step('browser', { version: await browser.version() });
  page = await browser.newPage();
  await page.setViewport({ width: 1400, height: 1000 });
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/.test(m.text())) cspErrors.push(m.text());
  });
  page.on('pageerror', (e) => pageError(e, ''));

  current = 'sign-in';
  await signIn(page);
  step('signed-in');

  current = 'live-page';
  await page.click('#nav-live');
  await page.waitForSelector('#page-live #live-grid', { timeout });
  await page.click('#grid-4');
  const ntiles = await page.$$eval('#live-grid .tile', (t) => t.length);
  if (ntiles !== 4) throw new Error(`a 4-tile grid has ${ntiles} tiles`);
  await loadDevice(opts.device);
  step('live-page', { tiles: ntiles });

  current = 'live';
  await page.click(`#live-catalog button.node[data-channel="${opts.channel}"]`);
  await page.click(`#live-catalog button.node[data-channel="${opts.channel2}"]`);
  const t0 = await plays(0, opts.channel);
  const t1 = await plays(1, opts.channel2);
  const viewers = await until(async () => {
    const ms = (await apiGet('/media/streams')).streams || [];
    const w = (sid) => ms.find((s) => s.stream_id === sid)?.viewers_by_output?.webrtc;
    return w(t0.sid) === 1 && w(t1.sid) === 1 ? { [t0.sid]: 1, [t1.sid]: 1 } : false;
  }, 'GET /media/streams to count one WebRTC viewer per tile');
  await shot('live');
  step('live', { tiles: [t0, t1], viewers });

  current = 'flv';
  // tile 1's picker to FLV: the same stream, now read by mpegts.js from its live.flv
  await page.select('#live-grid .tile[data-tile="1"] .tile-mode', 'flv');
  const f1 = await playsFlv(1, 'the FLV pick');
  if (f1.sid !== t1.sid) throw new Error(`the FLV tile plays stream ${f1.sid}, not ${t1.sid}`);
  const flvViewers = await until(async () => {
    const ms = (await apiGet('/media/streams')).streams || [];
    const o = ms.find((s) => s.stream_id === t1.sid)?.viewers_by_output;
    return o && o.flv === 1 && !o.webrtc ? o : false;
  }, 'GET /media/streams to count one FLV viewer (and no WebRTC one) for tile 1');
  await shot('live-flv');
  step('flv', { ...f1, viewers: flvViewers });

  current = 'fallback';
  // a tab whose browser has no WebRTC: the tile falls back to FLV by itself
  {
    const tab = await browser.newPage();
    await tab.setViewport({ width: 1400, height: 1000 });
    tab.on('pageerror', (e) => pageError(e, 'fallback tab: '));
    await tab.evaluateOnNewDocument(() => { delete window.RTCPeerConnection; });
    await signIn(tab);
    await tab.evaluate((d, c) => { location.hash = `#/live/${d}/${c}`; }, opts.device, opts.channel);
    await tab.waitForSelector('#page-live #live-grid', { timeout });
    const fb = await playsFlv(0, 'the fallback', tab);
    if (!/WebRTC/.test(fb.fallback || '')) throw new Error(`the tile fell back for no reason given: ${JSON.stringify(fb)}`);
    await tab.close();
    step('fallback', fb);
  }

  current = 'lang-keeps';
  // the language switch re-renders the page around the same tiles: they play on
  await page.$$eval('#live-grid .tile video', (vs) => vs.forEach((v) => { v.dataset.probe = 'kept'; }));
  const before = [await tileState(0), await tileState(1)];
  await page.click('#lang');
  await until(() => page.$eval('#nav-live', (e) => e.textContent === '实时预览'), 'the Chinese navigation');
  await page.waitForSelector('#page-live #live-grid', { timeout });
  const kept = [];
  for (const i of [0, 1]) {
    const b = before[i];
    kept.push(await until(async () => {
      const s = await tileState(i);
      const n = b.transport === 'flv' ? s.quality - b.quality : s.frames - b.frames;
      return s.probe === 'kept' && s.sid === b.sid && s.state === 'playing' && s.transport === b.transport && n > 0
        ? { tile: i, sid: s.sid, transport: s.transport, status: await page.$eval(
            `#live-grid .tile[data-tile="${i}"] .tile-status`, (e) => e.textContent), more: n } : false;
    }, `tile ${i} still playing after the language switch`));
  }
  await shot('live-zh-playing');
  await page.click('#lang');
  await until(() => page.$eval('#nav-live', (e) => e.textContent === 'Live view'), 'the English navigation');
  // tile 1 back to WebRTC for what follows
  await page.select('#live-grid .tile[data-tile="1"] .tile-mode', 'auto');
  await plays(1, 'tile 1 back on WebRTC');
  step('lang-keeps', { tiles: kept });

  current = 'ptz';
  await clickTile(0);
  await page.waitForSelector('#live-ptz #ptz button[data-ptz="left"]', { timeout });
  await page.click('#live-ptz #ptz button[data-ptz="left"]');
  const ptz = await until(() => page.$eval('#ptz-out', (e) => (/sent|已发送/.test(e.textContent) ? e.textContent : false)),
    'the PTZ command to be sent');
  step('ptz', { out: ptz });

  current = 'records';
  await clickTile(2);
  await loadDevice(opts['pb-device']);
  // picking the channel plays it live in the selected (empty) tile 2 and makes it the record search's channel
  await page.click(`#live-catalog button.node[data-channel="${opts['pb-channel']}"]`);
  await page.$eval('#rec-day', (e, v) => { e.value = v; }, opts.day);
  await page.click('#rec-search');
  const segs = await until(() => page.$eval('#timeline', (e) => e.dataset.segments ?? false), 'the timeline');
  const drawn = await page.$$eval('#timeline-svg rect.tl-seg', (r) => r.length);
  const rec = await apiCall('POST', `/gb/devices/${opts['pb-device']}/records`,
    { channel: opts['pb-channel'], start: `${opts.day}T00:00:00`, end: `${opts.day}T23:59:59` });
  const want = (rec.json?.records || []).length;
  if (!want || drawn !== want || Number(segs) !== want)
    throw new Error(`timeline: ${drawn} segments drawn (${segs} counted), the API answered ${want} records`);
  step('records', { segments: drawn, api: want });

  current = 'playback';
  const pbTile = await page.evaluate(() => Number(document.querySelector('#live-grid .tile.selected').dataset.tile));
  await page.click('#timeline-svg rect.tl-seg');
  const pb = await until(async () => {
    const s = await tileState(pbTile);
    if (!s.sid) return false;
    const st = await apiCall('GET', `/gb/streams/${s.sid}`);
    return st.status === 200 && st.json.playback ? s : false;
  }, 'a playback stream in the selected tile');
  const pbPlay = await plays(pbTile, 'playback');
  await shot('live-playback');
  // a playback is its asker's own: a second WebRTC viewer is refused
  const second = await page.evaluate(async (sid, tok) => {
    const pc = new RTCPeerConnection();
    pc.addTransceiver('video', { direction: 'recvonly' });
    await pc.setLocalDescription(await pc.createOffer());
    const r = await fetch(`/api/v1/gb/streams/${sid}/whep`, { method: 'POST', body: pc.localDescription.sdp,
      headers: { Authorization: `Bearer ${tok}`, 'Content-Type': 'application/sdp' } });
    pc.close();
    return { status: r.status, body: await r.json().catch(() => null) };
  }, pb.sid, opts.token);
  if (second.status !== 409) throw new Error(`a second WHEP viewer of the playback: ${JSON.stringify(second)}`);
  step('playback', { tile: pbTile, sid: pb.sid, ...pbPlay, second: second.status });

  current = 'pause';
  await page.click(`#live-grid .tile[data-tile="${pbTile}"] .pb-pause`);
  await until(async () => (await tileState(pbTile)).paused === '1', 'the pause answered');
  // what was in flight may still come: wait for two reads 2 s apart to agree, then 3 s more of nothing
  const still = await until(async () => {
    const a = (await tileState(pbTile)).frames;
    await sleep(2000);
    const b = (await tileState(pbTile)).frames;
    return a === b ? { frames: b } : false;
  }, 'the frame count to stop while paused', timeout * 2);
  await sleep(3000);
  const after = (await tileState(pbTile)).frames;
  if (after !== still.frames) throw new Error(`frames decoded while paused: ${still.frames} -> ${after}`);
  step('pause', { frames: after });

  current = 'resume';
  await page.click(`#live-grid .tile[data-tile="${pbTile}"] .pb-resume`);
  await until(async () => (await tileState(pbTile)).paused === '0', 'the resume answered');
  const resumed = await until(async () => {
    const s = await tileState(pbTile);
    return s.frames > after ? s.frames : false;
  }, 'frames decoded again after resume', timeout * 2);
  await page.select(`#live-grid .tile[data-tile="${pbTile}"] .pb-speed`, '2');
  const scale = await until(async () => ((await tileState(pbTile)).scale === '2' ? '2' : false), 'speed 2 answered');
  step('resume', { from: after, to: resumed, scale: Number(scale) });

  current = 'close';
  const liveSids = [t0.sid, t1.sid];
  await page.click('#close-all');
  await until(async () => (await page.$$eval('#live-grid .tile', (t) => t.every((x) => x.dataset.state === 'empty'))),
    'every tile empty');
  const gone = await until(async () => {
    const st = await apiCall('GET', `/gb/streams/${pb.sid}`);
    return st.status === 404 || st.json?.state === 'stopped' ? st.status : false;
  }, 'the playback stream to stop');
  const dropped = await until(async () => {
    const ms = (await apiGet('/media/streams')).streams || [];
    return liveSids.every((sid) => !(ms.find((s) => s.stream_id === sid)?.viewers_by_output?.webrtc)) ? ms.length : false;
  }, 'the live streams\' WebRTC viewers to drop to 0');
  step('close', { playback: gone, live: liveSids, media_streams: dropped });

  current = 'watch-button';
  // the devices page's Watch button opens the live page playing the channel picked there
  await page.evaluate((d) => { location.hash = `#/devices/${d}`; }, opts.device);
  await page.waitForSelector(`#catalog[data-loaded] button.node[data-channel="${opts.channel}"]`, { timeout });
  await page.click(`#catalog button.node[data-channel="${opts.channel}"]`);
  await page.click('#btn-watch');
  await page.waitForSelector('#page-live #live-grid', { timeout });
  const watched = await plays(0, 'the Watch button');
  // the stream stopped under the tile: it shows ended, with the reason the API gave (gb.stream.stopped)
  await apiCall('DELETE', `/gb/streams/${watched.sid}`);
  const ended = await until(async () => {
    const st = await tileState(0);
    return st.state === 'ended' && st.reason ? st.reason : false;
  }, 'the tile to show the stream ended');
  step('watch-button', { ...watched, ended });

  current = 'language';
  await page.click('#lang');
  await until(() => page.$eval('#nav-live', (e) => e.textContent === '实时预览'), 'the Chinese navigation');
  await page.waitForSelector('#page-live #live-grid', { timeout });
  const zh = await page.$eval('#page-live h1', (e) => e.textContent);
  await shot('live-zh');
  await page.click('#lang');
  step('language', { title: zh });

  current = 'safety';
  if (cspErrors.length) throw new Error(`the CSP refused: ${JSON.stringify(cspErrors)}`);
  if (pageErrors.length) throw new Error(`page errors: ${JSON.stringify(pageErrors)}`);
  step('safety', { vendor_errors: vendorErrors });
} catch (e) {
  if (!e.skip) {
    code = 1;
    let f = null;
    if (page) f = await shot(`failed-${current}`).catch(() => null);
    process.stdout.write(`${JSON.stringify({ step: current, ok: false, error: e.message, screenshot: f,
                                             csp: cspErrors, page_errors: pageErrors,
                                             vendor_errors: vendorErrors })}\n`);
  }
} finally {
  if (browser) await browser.close().catch(() => {});
}
process.exit(code);
