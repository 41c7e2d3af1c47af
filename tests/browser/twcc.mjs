// twcc.mjs — transport-wide congestion control with real browsers (issue 12:
// "REMB or transport-cc feedback", "header extensions ... transport-wide-cc"):
// headless Chromium publishes a busy 1280x720 canvas with WHIP; cascade's
// answer agrees the transport-wide-cc extension and transport-cc feedback, so
// Chromium's send-side estimator runs on the feedback cascade sends it every
// 100 ms. Then: the page's availableOutgoingBitrate (getStats candidate-pair)
// is reported and rises above its first value, and the page's outbound video
// reaches 1 Mbit/s — without working feedback the estimate stays at its
// start (~300 kbit/s). A viewer page views with WHEP: its answer has the
// extension and transport-cc too, it decodes frames, and cascade's room API
// shows both sides counting feedback and the viewer's transport-cc estimate.
//
//   --api URL          cascade's HTTP API (required)
//   --token T          its Bearer token
//   --room NAME        default twcc
//   --timeout MS       per short step (default 30000); the ramp waits 4x
//   --workdir DIR      screenshots and page logs (default a new temp dir)
//   --chromium PATH    default /usr/bin/chromium [CHROMIUM]
// Prints one JSON line per step; exit 0, 1 (failed: a last line with ok
// false says where), or 77 when Chromium cannot start.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { launch, openLoggedPage, parseArgs, step, usage, waitUntil } from './chromium.mjs';
import { serveFiles } from './static-server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

const opts = parseArgs('twcc', {
  api: { type: 'string' },
  token: { type: 'string', default: '' },
  room: { type: 'string', default: 'twcc' },
  timeout: { type: 'string', default: '30000' },
});
if (!opts.api || !/^https?:\/\//.test(opts.api)) usage('twcc', '--api http://HOST:PORT is required');
const apiBase = opts.api.replace(/\/+$/, '');
const timeout = Number(opts.timeout);
const rampWithin = timeout * 4;
const workdir = opts.workdir;
const WANT_BPS = 1000000;

async function apiGet(p) {
  const r = await fetch(`${apiBase}/api/v1${p}`, { headers: { Authorization: `Bearer ${opts.token}` } });
  if (r.status !== 200) throw new Error(`GET ${p}: HTTP ${r.status} ${await r.text()}`);
  return r.json();
}

const files = {
  '/twcc.html': [path.join(here, 'twcc.html'), 'text/html; charset=utf-8'],
  '/twcc.js': [path.join(here, 'twcc.js'), 'text/javascript; charset=utf-8'],
  '/whip-page.js': [path.join(here, 'whip-page.js'), 'text/javascript; charset=utf-8'],
};

const pages = {}; // name -> {page, log, samples}

async function openPage(browser, origin, name) {
  pages[name] = await openLoggedPage(browser, `${origin}/twcc.html`, name, { workdir, timeout });
  pages[name].samples = [];
  const { page } = pages[name];
  if (!(await page.evaluate(() => typeof window.tw === 'object'))) throw new Error(`${name}: twcc.js did not load`);
  await page.evaluate((a) => window.tw.setApi(a), { base: apiBase, token: opts.token });
  return page;
}

async function waitConnected(name) {
  const { page } = pages[name];
  try {
    await page.waitForFunction(() => window.tw.state() === 'connected', { timeout, polling: 100 });
  } catch (e) {
    const state = await page.evaluate(() => window.tw.state()).catch(() => '?');
    throw new Error(`${name}: not connected within ${timeout} ms (state ${state})`);
  }
}

async function sample(name) {
  const p = pages[name];
  const s = await p.page.evaluate(() => window.tw.stats());
  p.samples.push(s);
  if (p.samples.length > 40) p.samples.shift();
  return s;
}

// What cascade's answer says about transport-cc on its video m-line.
async function answerFeedback(name) {
  const sdp = await pages[name].page.evaluate(() => window.twAnswer);
  const video = sdp.split(/\r\nm=/).find((m) => m.startsWith('video')) || '';
  return {
    transportCc: /a=rtcp-fb:\d+ transport-cc/.test(video),
    extension: /a=extmap:\d+ http:\/\/www\.ietf\.org\/id\/draft-holmer-rmcat-transport-wide-cc-extensions-01/.test(video),
    remb: /a=rtcp-fb:\d+ goog-remb/.test(video),
  };
}

function needTransportCc(name, f) {
  if (!f.transportCc || !f.extension || !f.remb)
    throw new Error(`${name}: the answer must agree transport-cc, its extension and goog-remb: ${JSON.stringify(f)}`);
}

async function failureReport(err, current) {
  const out = {};
  for (const [n, p] of Object.entries(pages)) {
    try {
      out[n] = { events: await p.page.evaluate(() => window.twEvents), samples: p.samples.slice(-6) };
      await p.page.screenshot({ path: path.join(workdir, `fail-${n}.png`), fullPage: true });
    } catch (e) {
      out[n] = `(page gone: ${e.message})`;
    }
  }
  process.stdout.write(JSON.stringify({ step: current, ok: false, error: err.message, pages: out, workdir }) + '\n');
}

let current = 'start';
let browser = null;
let server = null;
let code = 0;
try {
  current = 'http';
  server = await serveFiles(files);
  const origin = `http://127.0.0.1:${server.address().port}`;
  step('http', { origin, api: apiBase, workdir });

  current = 'browser';
  const background = ['--disable-background-timer-throttling', '--disable-renderer-backgrounding',
    '--disable-backgrounding-occluded-windows'];
  browser = await launch(opts, background, { protocolTimeout: rampWithin * 2 });
  step('browser', { version: await browser.version() });

  current = 'publish';
  await openPage(browser, origin, 'publisher');
  const pub = await pages.publisher.page.evaluate((r) => window.tw.publish(r, 'canvas'), opts.room);
  await waitConnected('publisher');
  const pubAnswer = await answerFeedback('publisher');
  needTransportCc('publisher', pubAnswer);
  step('publisher-connected', { id: pub, answer: pubAnswer });

  // Chromium's estimate starts low; fed by cascade's feedback it grows, and
  // the encoder follows. The first estimate comes from the page's own 50 ms
  // watch (twcc.js); each sample's rate is over the time since the one
  // before (about a second).
  current = 'ramp';
  let initial = null;
  let prev = null;
  let best = { available: 0, outBps: 0 };
  const ramp = await waitUntil(
    async () => {
      const s = await sample('publisher');
      if (initial === null) {
        const first = await pages.publisher.page.evaluate(() => window.twEstimates[0]);
        if (first) initial = first.bps;
      }
      let held = null;
      if (prev && s.at - prev.at >= 500) {
        const outBps = ((s.bytesSent - prev.bytesSent) * 8 * 1000) / (s.at - prev.at);
        const available = s.availableOutgoingBitrate || 0;
        best = { available: Math.max(best.available, available), outBps: Math.max(best.outBps, outBps) };
        if (initial !== null && available > initial && outBps >= WANT_BPS)
          held = { initial, available, outBps: Math.round(outBps), frameWidth: s.frameWidth, targetBitrate: s.targetBitrate };
      }
      prev = s;
      return held;
    },
    rampWithin,
    `an availableOutgoingBitrate above its first value and ${WANT_BPS} bit/s of video going out`,
    { every: 1000, seen: () => `first estimate ${initial}, best ${JSON.stringify(best)}, last ${JSON.stringify(prev)}` },
  );
  ramp.estimates = (await pages.publisher.page.evaluate(() => window.twEstimates)).slice(0, 20);
  step('ramp', ramp);

  current = 'view';
  await openPage(browser, origin, 'viewer');
  const viewer = await pages.viewer.page.evaluate((r) => window.tw.view(r, 'viewer'), opts.room);
  await waitConnected('viewer');
  const viewAnswer = await answerFeedback('viewer');
  needTransportCc('viewer', viewAnswer);
  step('viewer-connected', { id: viewer, answer: viewAnswer });

  current = 'viewer-decoding';
  let before = null;
  const decoding = await waitUntil(
    async () => {
      const s = await sample('viewer');
      const ok = before && s.video && before.video && s.video.framesDecoded > before.video.framesDecoded && s.video.frameWidth > 0;
      const r = ok ? { before: before.video, last: s.video } : null;
      before = s;
      return r;
    },
    timeout * 2,
    'frames decoded rising on the viewer',
    { every: 500, seen: () => JSON.stringify(before) },
  );
  step('viewer-decoding', decoding);

  // cascade's account: feedback both ways and the viewer's estimate.
  current = 'api-bandwidth';
  let last = null;
  const bw = await waitUntil(
    async () => {
      const room = await apiGet(`/rooms/${encodeURIComponent(opts.room)}`);
      const find = (id) => (room.participants || []).find((p) => p.id === id);
      const p = find(pub);
      const v = find(viewer);
      last = { publisher: p && p.media && p.media.bandwidth, viewer: v && v.media && v.media.bandwidth };
      const pb = last.publisher;
      const vb = last.viewer;
      return pb && vb && pb.transport_cc && pb.twcc_feedbacks > 0 && vb.transport_cc && vb.twcc_feedbacks > 0 &&
        vb.twcc_bps > 0 && vb.estimate_bps > 0 ? last : null;
    },
    timeout,
    'transport-cc feedback counted both ways and a viewer estimate in the room API',
    { every: 500, seen: () => JSON.stringify(last) },
  );
  step('api-bandwidth', bw);

  current = 'leave';
  for (const n of ['viewer', 'publisher']) {
    const st = await pages[n].page.evaluate(() => window.tw.leave());
    if (st !== 200) throw new Error(`${n}: DELETE of its session: HTTP ${st}`);
  }
  step('done');
} catch (err) {
  if (err.skip) {
    process.stderr.write(`twcc: SKIP: ${err.message}\n`);
    code = 77;
  } else {
    code = 1;
    await failureReport(err, current).catch(() => {});
  }
} finally {
  for (const p of Object.values(pages)) p.log.end();
  if (browser) await browser.close().catch(() => {});
  if (server) server.close();
}
process.exit(code);
