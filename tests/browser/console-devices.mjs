#!/usr/bin/env node
// console-devices.mjs — the web console's GB device list (console/
// page-devices.js) with many devices (issue 14: 10 000 stay responsive),
// in headless Chromium against a GB upper node.
//
// Steps: sign in; #/devices shows the total the API gives (GET
// /gb/devices?limit=1 → total, --total of them) while the table holds one
// page: at most --page rows, the API's first page in its order; the next
// page button shows the API's second page; a search for --find (a device
// id) narrows the list, through the API's ?q=, to that one device; the
// search cleared, the whole total again. No page error, nothing refused by
// the CSP. A PNG in the work dir.
//
// One JSON line per step on stdout ({"step":..., "ok":true, ...}); on
// failure a line with "ok":false and the error, exit 1. Exit 77 (skipped,
// reason on stderr) only when Chromium cannot start; 2: bad usage.
//
//   node tests/browser/console-devices.mjs --api http://127.0.0.1:8080 --token T --total 10000 \
//        --find 34020000001320004568 [--page 100] [--timeout 60000] [--workdir DIR]
import path from 'node:path';

import { launch, parseArgs, step, usage as usageOf, waitUntil } from './chromium.mjs';

const usage = (msg) => usageOf('console-devices', msg);
const opts = parseArgs('console-devices', {
  api: { type: 'string' },
  token: { type: 'string', default: '' },
  total: { type: 'string' },
  find: { type: 'string' },
  page: { type: 'string', default: '100' },
  timeout: { type: 'string', default: '60000' },
});
if (!opts.api || !/^https?:\/\//.test(opts.api)) usage('--api http://HOST:PORT is required');
if (!/^\d+$/.test(opts.total || '')) usage('--total N is required');
if (!opts.find) usage('--find ID is required');
const base = opts.api.replace(/\/+$/, '');
const timeout = Number(opts.timeout);
const total = Number(opts.total);
const pageSize = Number(opts.page);

async function apiGet(p) {
  const r = await fetch(`${base}/api/v1${p}`, { headers: { Authorization: `Bearer ${opts.token}` } });
  if (r.status !== 200) throw new Error(`GET ${p}: ${r.status}`);
  return r.json();
}

let browser = null;
let page = null;
let current = 'browser';
let code = 0;
const cspErrors = [];
const pageErrors = [];

// what the list shows: its counters (data-*) and the ids of its rows, in order
const shown = () => page.evaluate(() => {
  const el = document.querySelector('#page-devices');
  if (!el || !el.dataset.loaded) return null;
  return { total: Number(el.dataset.total), offset: Number(el.dataset.offset), q: el.dataset.q || '',
           count: document.querySelector('#device-count').textContent,
           ids: [...document.querySelectorAll('#device-list tbody tr')].map((r) => r.dataset.id) };
});

const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

try {
  try {
    browser = await launch(opts, ['--lang=en-US'], { protocolTimeout: timeout * 3, loopbackIce: false });
  } catch (e) {
    process.stderr.write(`console-devices: SKIP: ${e.message}\n`);
    code = 77;
    throw Object.assign(new Error('skip'), { skip: true });
  }
  step('browser', { version: await browser.version() });
  page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/.test(m.text())) cspErrors.push(m.text());
  });
  page.on('pageerror', (e) => pageErrors.push(e.message));

  current = 'sign-in';
  await page.goto(`${base}/`, { waitUntil: 'load', timeout });
  await page.waitForSelector('#signin #token', { timeout });
  await page.type('#token', opts.token);
  await page.click('#signin button[type=submit]');
  await page.waitForSelector('#page-overview', { timeout });
  step('signed-in');

  current = 'first-page';
  await page.evaluate(() => { location.hash = '#/devices'; });
  const api0 = await apiGet(`/gb/devices?offset=0&limit=${pageSize}`);
  if (api0.total !== total) throw new Error(`the API lists ${api0.total} devices, not ${total}`);
  const want0 = api0.devices.map((d) => d.id);
  let last = null;
  const first = await waitUntil(async () => {
    last = await shown();
    return last && last.total === total && last.offset === 0 && same(last.ids, want0) ? last : false;
  }, timeout, `the list's first page (${total} devices)`, { seen: () => JSON.stringify(last && { ...last, ids: last.ids.length }) });
  if (!first.count.includes(String(total))) throw new Error(`the count line "${first.count}" does not say ${total}`);
  const shot = path.join(opts.workdir, 'console-devices-10k.png');
  await page.screenshot({ path: shot, fullPage: false });
  step('first-page', { total: first.total, rows: first.ids.length, count: first.count });

  current = 'next-page';
  const api1 = await apiGet(`/gb/devices?offset=${pageSize}&limit=${pageSize}`);
  const want1 = api1.devices.map((d) => d.id);
  await page.click('#dev-next');
  const second = await waitUntil(async () => {
    last = await shown();
    return last && last.offset === pageSize && same(last.ids, want1) ? last : false;
  }, timeout, 'the second page', { seen: () => JSON.stringify(last && { ...last, ids: last.ids.slice(0, 3) }) });
  step('next-page', { offset: second.offset, rows: second.ids.length, first: second.ids[0] });

  current = 'search';
  await page.type('#device-search', opts.find);
  const found = await waitUntil(async () => {
    last = await shown();
    return last && last.q === opts.find && last.total === 1 && same(last.ids, [opts.find]) ? last : false;
  }, timeout, `the search for ${opts.find} to show that one device`, { seen: () => JSON.stringify(last) });
  step('search', { q: found.q, total: found.total, ids: found.ids, count: found.count });

  current = 'cleared';
  await page.evaluate(() => {
    const i = document.querySelector('#device-search');
    i.value = '';
    i.dispatchEvent(new Event('input'));
  });
  const back = await waitUntil(async () => {
    last = await shown();
    return last && last.q === '' && last.total === total && last.offset === 0 && same(last.ids, want0) ? last : false;
  }, timeout, 'the whole list again', { seen: () => JSON.stringify(last && { ...last, ids: last.ids.length }) });
  step('cleared', { total: back.total, rows: back.ids.length });

  current = 'safety';
  if (cspErrors.length) throw new Error(`the CSP refused: ${JSON.stringify(cspErrors)}`);
  if (pageErrors.length) throw new Error(`page errors: ${JSON.stringify(pageErrors)}`);
  step('safety', { screenshot: shot });
} catch (e) {
  if (!e.skip) {
    code = 1;
    let f = null;
    if (page) {
      f = path.join(opts.workdir, `console-devices-failed-${current}.png`);
      await page.screenshot({ path: f }).catch(() => { f = null; });
    }
    process.stdout.write(`${JSON.stringify({ step: current, ok: false, error: e.message, screenshot: f,
                                             csp: cspErrors, page_errors: pageErrors })}\n`);
  }
} finally {
  if (browser) await browser.close().catch(() => {});
}
process.exit(code);
