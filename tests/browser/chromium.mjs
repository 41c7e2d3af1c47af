// chromium.mjs — what the browser drivers (rooms, simulcast, room-ws, gb-live,
// jssip-call) share: their command line, headless Chromium with fake media,
// pages whose console goes to a log file, the JSON step lines and polling.
// Each driver keeps its scenario, its page scripts and its failure report.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs as nodeParseArgs } from 'node:util';

import puppeteer from 'puppeteer-core';

const here = path.dirname(fileURLToPath(import.meta.url));

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Bad usage: the reason on stderr, exit 2.
export function usage(tag, msg) {
  process.stderr.write(`${tag}: ${msg}\n(see the options at the top of ${path.join(here, `${tag}.mjs`)})\n`);
  process.exit(2);
}

// The driver's options (node:util parseArgs `options`) plus the two every
// driver has: --workdir DIR (page logs and screenshots; made if missing, a
// new temp dir by default, always set in the result) and --chromium PATH
// (default $CHROMIUM or /usr/bin/chromium). tag names the driver in errors.
export function parseArgs(tag, options) {
  let opts;
  try {
    opts = nodeParseArgs({
      options: Object.assign(
        {
          workdir: { type: 'string' },
          chromium: { type: 'string', default: process.env.CHROMIUM || '/usr/bin/chromium' },
        },
        options,
      ),
    }).values;
  } catch (e) {
    usage(tag, e.message);
  }
  opts.workdir = opts.workdir || fs.mkdtempSync(path.join(os.tmpdir(), `${tag}-`));
  fs.mkdirSync(opts.workdir, { recursive: true });
  return opts;
}

// One JSON line per step on stdout: {"step": name, "ok": true, ...fields}.
export function step(name, fields) {
  process.stdout.write(JSON.stringify(Object.assign({ step: name, ok: true }, fields || {})) + '\n');
}

// Headless Chromium at opts.chromium with a fake camera and microphone that
// needs no permission prompt, media that plays without a gesture, and ICE
// candidates on loopback (cascade's are 127.0.0.1 here) unless loopbackIce is
// false; extraFlags are added. protocolTimeout bounds one DevTools call: a
// page.evaluate that waits on the network must fit in it. When Chromium does
// not start the error has skip set: the machine lacks it, the test did not fail.
export async function launch(opts, extraFlags = [], { protocolTimeout = 60000, loopbackIce = true } = {}) {
  const args = [
    '--no-sandbox', // runs as root in CI containers
    '--use-fake-device-for-media-stream',
    '--use-fake-ui-for-media-stream',
    '--autoplay-policy=no-user-gesture-required',
    '--disable-gpu',
    '--disable-dev-shm-usage',
  ];
  if (loopbackIce) args.push('--allow-loopback-in-peer-connection');
  args.push(...extraFlags);
  try {
    return await puppeteer.launch({ executablePath: opts.chromium, headless: true, args, protocolTimeout });
  } catch (e) {
    throw Object.assign(new Error(`Chromium (${opts.chromium}) cannot start here: ${e.message}`), { skip: true });
  }
}

// A new tab whose console messages and uncaught errors go to
// workdir/page-<name>.log, loaded with url (waiting for its load event at
// most timeout ms). Returns {page, log}; the caller ends log.
export async function openLoggedPage(browser, url, name, { workdir, timeout }) {
  const page = await browser.newPage();
  const log = fs.createWriteStream(path.join(workdir, `page-${name}.log`), { flags: 'a' });
  page.on('console', (m) => log.write(`${m.type()}: ${m.text()}\n`));
  page.on('pageerror', (e) => log.write(`pageerror: ${e.message}\n`));
  await page.goto(url, { waitUntil: 'load', timeout });
  return { page, log };
}

// Calls fn every `every` ms until it returns something truthy, and returns
// that. Past within ms: an Error "no <what> within <within> ms", followed by
// seen() when given (what was last seen, for the failure report).
export async function waitUntil(fn, within, what, { every = 250, seen } = {}) {
  const deadline = Date.now() + within;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`no ${what} within ${within} ms${seen ? `; ${seen()}` : ''}`);
    await sleep(every);
  }
}
