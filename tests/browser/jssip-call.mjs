#!/usr/bin/env node
// jssip-call.mjs — two JsSIP phones in headless Chromium call each other over
// SIP over WebSocket (RFC 7118) through a server under test (cascade).
//
// Steps: serve phone.html on an HTTP origin on 127.0.0.1 (a secure context,
// so getUserMedia works), launch Chromium with fake camera and microphone,
// open alice's and bob's pages, both register, alice calls bob (audio and
// video), bob answers, both see the call confirmed, both receive RTP
// (getStats inbound-rtp packetsReceived > 0, audio and video), alice hangs
// up, both see it ended, then bob's page is closed without unregistering
// (the server should see the transport lost). With --target, alice alone
// calls that URI (e.g. a UDP phone behind the server) instead of bob. With
// --answer-incoming, alice then waits for a call to her (from a phone the
// caller of this script drives), answers it, and waits for the caller to
// hang up.
//
// Prints one JSON line per step on stdout ({"step":..., "ok":true, ...});
// on failure a line with "ok":false, the error, every page's events and
// screenshots in the work dir, and exits 1 (2: bad usage). The work dir also
// gets each page's console log and a screenshot of the call in progress.
//
//   node tests/browser/jssip-call.mjs --ws ws://127.0.0.1:5066 --domain 127.0.0.1 \
//        --alice alice:secret --bob bob:secret [--cert server.pem] [--workdir DIR]
//
// Options (environment variable in brackets):
//   --ws URI            the server's ws:// or wss:// URI [JSSIP_WS]
//   --domain D          the SIP domain of the users' AORs [JSSIP_DOMAIN]
//   --alice U[:P]       caller (default alice; password default --password)
//   --bob U[:P]         callee (default bob)
//   --password P        password for users given without one [JSSIP_PASSWORD]
//   --target URI        alice calls this instead of bob (no bob page)
//   --no-media          do not wait for RTP (e.g. a --target without video)
//   --audio-only        calls with audio alone; RTP awaited for audio alone
//   --answer-incoming   after alice's call to --target (if any), alice waits
//                       for an incoming call, answers it, sees it confirmed
//                       (and RTP unless --no-media), then waits for the
//                       remote end to hang up
//   --no-loopback-ice   no ICE candidates on loopback (see startChromium() below)
//   --cert PEM          the wss server's certificate: trusted by its key (below)
//   --expect-no-register  success is alice failing to connect or register
//   --linger MS         keep alice registered MS ms after bob's page closed
//   --timeout MS        per step (default 20000) [JSSIP_TIMEOUT]
//   --workdir DIR       screenshots and page logs (default a new temp dir)
//   --http-port N       the page's origin port (default: any free port), for
//                       a server with an Origin allow-list
//   --chromium PATH     default /usr/bin/chromium [CHROMIUM]
//   --debug             JsSIP's own debug log into the page logs
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { launch, openLoggedPage, parseArgs, sleep, step, usage, waitUntil } from './chromium.mjs';
import { serveFiles } from './static-server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

const opts = parseArgs('jssip-call', {
  ws: { type: 'string', default: process.env.JSSIP_WS },
  domain: { type: 'string', default: process.env.JSSIP_DOMAIN },
  alice: { type: 'string', default: 'alice' },
  bob: { type: 'string', default: 'bob' },
  password: { type: 'string', default: process.env.JSSIP_PASSWORD || '' },
  target: { type: 'string' },
  'no-media': { type: 'boolean', default: false },
  'audio-only': { type: 'boolean', default: false },
  'answer-incoming': { type: 'boolean', default: false },
  'no-loopback-ice': { type: 'boolean', default: false },
  cert: { type: 'string' },
  'expect-no-register': { type: 'boolean', default: false },
  linger: { type: 'string', default: '0' },
  timeout: { type: 'string', default: process.env.JSSIP_TIMEOUT || '20000' },
  'http-port': { type: 'string', default: '0' },
  debug: { type: 'boolean', default: false },
});
if (!opts.ws || !/^wss?:\/\//.test(opts.ws)) usage('jssip-call', '--ws ws://HOST:PORT or wss://HOST:PORT is required');
if (!opts.domain) usage('jssip-call', '--domain is required');
const timeout = Number(opts.timeout);
const workdir = opts.workdir;

function user(spec) {
  const i = spec.indexOf(':');
  const name = i < 0 ? spec : spec.slice(0, i);
  const password = i < 0 ? opts.password : spec.slice(i + 1);
  return { name, uri: `sip:${name}@${opts.domain}`, password, ws: opts.ws, debug: opts.debug, video: !opts['audio-only'] };
}

// ---- the page's origin: a static server for the page and JsSIP's bundle ----

const files = {
  '/phone.html': [path.join(here, 'phone.html'), 'text/html; charset=utf-8'],
  '/phone.js': [path.join(here, 'phone.js'), 'text/javascript; charset=utf-8'],
  '/jssip.min.js': [path.join(here, 'node_modules/jssip/dist/jssip.min.js'), 'text/javascript; charset=utf-8'],
};

// ---- Chromium ----

// Trusting the test CA for wss: Chromium (headless too) takes trust anchors
// only from an NSS database in $HOME/.pki/nssdb, which would mean certutil
// (libnss3-tools) and a private HOME for the browser. --ignore-certificate-errors
// would accept any certificate at all, so a server presenting the wrong one
// would pass. Instead the server's key is pinned: --ignore-certificate-errors-spki-list
// with the base64 SHA-256 of its SubjectPublicKeyInfo accepts that key alone
// (Chromium honours the flag only with a --user-data-dir, which puppeteer
// always gives it).
function spkiHash(certFile) {
  const cert = new crypto.X509Certificate(fs.readFileSync(certFile));
  const der = cert.publicKey.export({ type: 'spki', format: 'der' });
  return crypto.createHash('sha256').update(der).digest('base64');
}

// --no-loopback-ice: a peer whose ICE gathers no loopback candidate (baresip
// 1.0.0 skips lo) is reachable from Chromium's loopback and non-loopback
// host candidates alike, so two pairs succeed and each side may select a
// different one; baresip's DTLS then drops Chromium's handshake arriving on
// the other pair ("dtls already accepted"). Without loopback candidates only
// the host-address pair exists.
function startChromium() {
  const flags = opts.cert ? [`--ignore-certificate-errors-spki-list=${spkiHash(opts.cert)}`] : [];
  return launch(opts, flags, { protocolTimeout: timeout * 3, loopbackIce: !opts['no-loopback-ice'] });
}

// ---- pages ----

const pages = {}; // name -> {page, log}

async function openPhone(browser, origin, u) {
  pages[u.name] = await openLoggedPage(browser, `${origin}/phone.html`, u.name, { workdir, timeout });
  const { page } = pages[u.name];
  const hasJsSIP = await page.evaluate(() => typeof JsSIP === 'object' && typeof window.phone === 'object');
  if (!hasJsSIP) throw new Error(`${u.name}: JsSIP did not load`);
  await page.evaluate((x) => window.phone.start(x), u);
  return page;
}

// Waits until the page's event list, from index `since` on, has one of
// `want` (returned) or one of `fail` (an error naming it).
async function waitEvent(name, want, fail = [], since = 0) {
  const { page } = pages[name];
  let handle;
  try {
    handle = await page.waitForFunction(
      (w, f, from) => window.phoneEvents.slice(from).find((e) => w.includes(e.ev) || f.includes(e.ev)),
      { timeout, polling: 100 },
      want,
      fail,
      since,
    );
  } catch (e) {
    throw new Error(`${name}: no ${want.join('/')} within ${timeout} ms`);
  }
  const ev = await handle.jsonValue();
  if (fail.includes(ev.ev)) throw new Error(`${name}: ${ev.ev} ${JSON.stringify(ev)} while waiting for ${want.join('/')}`);
  return ev;
}

// How many events the page has had so far: waitEvent's `since` for what
// happens from now on.
function eventCount(name) {
  return pages[name].page.evaluate(() => window.phoneEvents.length);
}

async function waitMedia(names) {
  const last = {};
  return waitUntil(
    async () => {
      let all = true;
      for (const n of names) {
        last[n] = await pages[n].page.evaluate(() => window.phone.stats());
        if (!(last[n].audio > 0 && (opts['audio-only'] || last[n].video > 0))) all = false;
      }
      return all ? last : null;
    },
    timeout,
    'RTP',
    { seen: () => JSON.stringify(last) },
  );
}

async function failureReport(err, current) {
  const events = {};
  const screenshots = [];
  for (const [n, p] of Object.entries(pages)) {
    try {
      events[n] = await p.page.evaluate(() => window.phoneEvents);
      const f = path.join(workdir, `fail-${n}.png`);
      await p.page.screenshot({ path: f, fullPage: true });
      screenshots.push(f);
    } catch (e) {
      events[n] = `(page gone: ${e.message})`;
    }
  }
  process.stdout.write(
    JSON.stringify({ step: current, ok: false, error: err.message, events, screenshots, workdir }) + '\n',
  );
}

// ---- the scenario ----

let current = 'start';
let browser = null;
let server = null;
let code = 0;
try {
  current = 'http';
  server = await serveFiles(files, Number(opts['http-port']));
  const origin = `http://127.0.0.1:${server.address().port}`;
  step('http', { origin, workdir });

  current = 'browser';
  browser = await startChromium();
  step('browser', { version: await browser.version(), pinned_spki: opts.cert ? spkiHash(opts.cert) : null });

  const alice = user(opts.alice);
  const bob = opts.target || opts['answer-incoming'] ? null : user(opts.bob);

  if (opts['expect-no-register']) {
    current = 'no-register';
    await openPhone(browser, origin, alice);
    const ev = await waitEvent(alice.name, ['disconnected', 'registrationFailed'], ['registered']);
    step('no-register', { user: alice.name, event: ev });
  } else {
    current = 'register';
    await openPhone(browser, origin, alice);
    if (bob) await openPhone(browser, origin, bob);
    for (const u of [alice, bob].filter(Boolean)) {
      const ev = await waitEvent(u.name, ['registered'], ['registrationFailed']);
      step('registered', { user: u.name, code: ev.code });
    }

    const calling = !!opts.target || !opts['answer-incoming'];
    const both = [alice, bob].filter(Boolean).map((u) => u.name);
    if (calling) {
      current = 'call';
      const target = opts.target || bob.uri;
      await pages[alice.name].page.evaluate((t) => window.phone.call(t), target);
      step('calling', { from: alice.uri, to: target });
      if (bob) {
        await waitEvent(bob.name, ['incoming']);
        await pages[bob.name].page.evaluate(() => window.phone.answer());
        step('answered', { user: bob.name });
      }
      for (const n of both) await waitEvent(n, ['confirmed'], ['failed', 'ended']);
      step('confirmed', { users: both });

      if (!opts['no-media']) {
        current = 'media';
        const stats = await waitMedia(both);
        // What the call looked like (both videos playing), as an artifact.
        const shots = [];
        for (const n of both) {
          const f = path.join(workdir, `call-${n}.png`);
          await pages[n].page.screenshot({ path: f });
          shots.push(f);
        }
        step('media', { stats, screenshots: shots });
      }

      current = 'hangup';
      await pages[alice.name].page.evaluate(() => window.phone.hangup());
      for (const n of both) {
        const ev = await waitEvent(n, ['ended'], ['failed']);
        step('ended', { user: n, originator: ev.originator, cause: ev.cause });
      }
    }

    if (opts['answer-incoming']) {
      // The first call's events stay in the list: look past them.
      current = 'incoming';
      const since = await eventCount(alice.name);
      step('waiting-incoming', { user: alice.name });
      const inc = await waitEvent(alice.name, ['incoming'], [], since);
      step('incoming', { user: alice.name, from: inc.from, ruri: inc.ruri });
      await pages[alice.name].page.evaluate(() => window.phone.answer());
      await waitEvent(alice.name, ['confirmed'], ['failed', 'ended'], since);
      step('incoming-confirmed', { user: alice.name });
      if (!opts['no-media']) {
        current = 'incoming-media';
        const stats = await waitMedia([alice.name]);
        step('incoming-media', { stats });
      }
      current = 'incoming-hangup';
      const ev = await waitEvent(alice.name, ['ended'], ['failed'], since);
      step('incoming-ended', { user: alice.name, originator: ev.originator, cause: ev.cause });
    }

    if (bob) {
      // Closing the page drops bob's WebSocket without an unregistration:
      // the server sees its transport lost.
      current = 'close';
      await pages[bob.name].page.close();
      pages[bob.name].log.end();
      delete pages[bob.name];
      step('bob-closed', { user: bob.name });
      const linger = Number(opts.linger);
      if (linger > 0) await sleep(linger);
    }
  }
  step('done');
} catch (err) {
  code = 1;
  await failureReport(err, current).catch(() => {});
} finally {
  for (const p of Object.values(pages)) p.log.end();
  if (browser) await browser.close().catch(() => {});
  if (server) server.close();
}
process.exit(code);
