#!/usr/bin/env node
// console.mjs — drives cascade's web console (console/, served by the
// daemon's API server at /) in headless Chromium and checks what it shows
// against the API (issue 14).
//
// Steps: a wrong token shows the sign-in again with an error; sign in; the
// overview's counters equal GET /api/v1/stats; the GB device list shows the
// given devices online and a search narrows it; a device's catalog tree
// matches GET /gb/devices/{id}/channels (ids, names, nesting) and a PTZ
// command from the pad is sent; the users page lists the registered user,
// its user agent (a <script> text) shown as text, and adds a user from the
// form; the device list's search finds --name-device by --name-search (its
// DeviceInfo name); the events page says it is live over the WebSocket and
// shows the event --event-cmd causes (--event-type naming --event-text)
// while it is, then user.offline (transport-lost) of --user-kill once its
// TCP client --user-kill-pid is killed, over the socket (the page still says
// WebSocket: it has no poller then), then gb.device.offline live once
// --kill-pid is killed; the rooms and upstreams pages load; the language switch turns the
// UI to Chinese. No dialog may open (an executed <script> would) and the CSP
// must not refuse anything the page does. A PNG of every page goes to the
// work dir.
//
// Prints one JSON line per step on stdout ({"step":..., "ok":true, ...}); on
// failure a line with "ok":false and the error, and exits 1. Exits 77
// (skipped, reason on stderr) only when Chromium cannot start; 2: bad usage.
//
//   node tests/browser/console.mjs --api http://127.0.0.1:8080 --token T \
//        --devices ID1,ID2 --catalog-device ID1 --kill-pid PID --kill-device ID2 \
//        --sip-user alice --add-user webuser [--workdir DIR]
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';

import { launch, parseArgs, step, usage as usageOf } from './chromium.mjs';

const usage = (msg) => usageOf('console', msg);
const opts = parseArgs('console', {
  api: { type: 'string' },
  token: { type: 'string', default: '' },
  devices: { type: 'string', default: '' },
  'catalog-device': { type: 'string' },
  'kill-pid': { type: 'string' },
  'kill-device': { type: 'string' },
  'user-kill-pid': { type: 'string' },
  'user-kill': { type: 'string' },
  'sip-user': { type: 'string' },
  'name-search': { type: 'string' },
  'name-device': { type: 'string' },
  'event-cmd': { type: 'string' },
  'event-type': { type: 'string' },
  'event-text': { type: 'string' },
  'add-user': { type: 'string', default: 'webuser' },
  'script-text': { type: 'string', default: '<script>alert(1)</script>' },
  timeout: { type: 'string', default: '30000' },
});
if (!opts.api || !/^https?:\/\//.test(opts.api)) usage('--api http://HOST:PORT is required');
const base = opts.api.replace(/\/+$/, '');
const timeout = Number(opts.timeout);
const devices = opts.devices.split(',').filter(Boolean);
const workdir = opts.workdir;

async function apiGet(p) {
  const r = await fetch(`${base}/api/v1${p}`, { headers: { Authorization: `Bearer ${opts.token}` } });
  if (!r.ok) throw new Error(`GET ${p}: ${r.status}`);
  return r.json();
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
const dialogs = [];
const cspErrors = [];
const pageErrors = [];

async function shot(name) {
  const f = path.join(workdir, `console-${name}.png`);
  await page.screenshot({ path: f, fullPage: true });
  return f;
}

async function go(hash, ready) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  await page.waitForSelector(ready, { timeout });
}

// the catalog tree as the page shows it: [{id, name, children}]
function domTree() {
  const walk = (ul) => [...ul.children].map((li) => {
    const sub = li.querySelector(':scope > ul.tree');
    return { id: li.dataset.id, name: li.querySelector(':scope > button .node-name').textContent,
             children: sub ? walk(sub) : [] };
  });
  const top = document.querySelector('#catalog > ul.tree');
  return top ? walk(top) : null;
}

function apiTree(channels) {
  return channels.map((c) => ({ id: c.id, name: c.name ?? c.id, children: apiTree(c.children || []) }));
}

try {
  current = 'browser';
  try {
    browser = await launch(opts, ['--lang=en-US'], { protocolTimeout: timeout * 3, loopbackIce: false });
  } catch (e) {
    process.stderr.write(`console: SKIP: ${e.message}\n`);
    code = 77;
    throw Object.assign(new Error('skip'), { skip: true });
  }
  step('browser', { version: await browser.version() });
  page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 860 });
  page.on('dialog', async (d) => {
    dialogs.push({ type: d.type(), message: d.message() });
    await d.dismiss().catch(() => {});
  });
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/.test(m.text())) cspErrors.push(m.text());
  });
  page.on('pageerror', (e) => pageErrors.push(e.message));

  current = 'wrong-token';
  await page.goto(`${base}/`, { waitUntil: 'load', timeout });
  await page.waitForSelector('#signin #token', { timeout });
  await page.type('#token', `${opts.token}-wrong`);
  await page.click('#signin button[type=submit]');
  await page.waitForSelector('#signin-error', { timeout });
  const err = await page.$eval('#signin-error', (e) => e.textContent);
  if (!(await page.$('#signin #token'))) throw new Error('the sign-in form is gone after a wrong token');
  if (await page.evaluate(() => sessionStorage.getItem('cascade.token'))) throw new Error('a wrong token was kept');
  await shot('signin');
  step('wrong-token', { error: err });

  current = 'sign-in';
  await page.type('#token', opts.token);
  await page.click('#signin button[type=submit]');
  await page.waitForSelector('#page-overview .cards', { timeout });
  step('signed-in');

  current = 'overview';
  // the page's cards against /stats: equal once both read the same state
  const agreed = await until(async () => {
    const stats = await apiGet('/stats');
    const shown = await page.$$eval('[data-stat]', (els) => els.map((e) => [e.dataset.stat,
      e.querySelector('.card-value').textContent.replace(/,/g, '')]));
    if (!shown.length) return false;
    for (const [p, v] of shown) {
      const want = p.split('.').reduce((o, k) => (o == null ? undefined : o[k]), stats);
      if (String(want === undefined ? '—' : want) !== v) return false;
    }
    return Object.fromEntries(shown);
  }, 'the overview to show the counts of GET /stats');
  await until(() => page.$eval('#page-overview', (e) => Number(e.dataset.sampled) >= 4), 'four samples');
  if (Number(agreed['gb_upper.online']) < devices.length) throw new Error(`overview: ${agreed['gb_upper.online']} online`);
  await shot('overview');
  step('overview', { cards: agreed });

  current = 'devices';
  await go('#/devices', '#device-list');
  await until(() => page.evaluate((ids) => ids.every((id) =>
    document.querySelector(`#device-list tr[data-id="${id}"].on`)), devices), 'every device listed online');
  await shot('devices');
  // the search goes through the API (?q=): the list shows its answer once #page-devices says which q it drew
  const clearSearch = async () => {
    await page.evaluate(() => { const i = document.querySelector('#device-search'); i.value = ''; i.dispatchEvent(new Event('input')); });
    await until(() => page.$eval('#page-devices', (e) => e.dataset.q === ''), 'the list without a search');
  };
  const q = devices[devices.length - 1];
  await page.type('#device-search', q);
  const narrowed = await until(() => page.evaluate((want) => {
    if (document.querySelector('#page-devices').dataset.q !== want) return false;
    const rows = document.querySelectorAll('#device-list tbody tr');
    return rows.length === 1 ? rows[0].dataset.id : false;
  }, q), 'the search to narrow the list to one device');
  if (narrowed !== q) throw new Error(`search for ${q} showed ${narrowed}`);
  await clearSearch();
  let byName = null;
  if (opts['name-search']) {
    // by name, in its own script (a substring, any case): the one device, its name shown
    await page.type('#device-search', opts['name-search']);
    byName = await until(() => page.evaluate((want) => {
      if (document.querySelector('#page-devices').dataset.q !== want) return false;
      const rows = document.querySelectorAll('#device-list tbody tr');
      return rows.length === 1 ? { id: rows[0].dataset.id, name: rows[0].querySelector('td.name').textContent } : false;
    }, opts['name-search']), `the search by name "${opts['name-search']}" to narrow the list to one device`);
    if (byName.id !== opts['name-device'] || !byName.name.toLowerCase().includes(opts['name-search'].toLowerCase()))
      throw new Error(`search by name ${opts['name-search']} showed ${JSON.stringify(byName)}`);
    await clearSearch();
  }
  step('devices', { online: devices, search: narrowed, byName });

  current = 'catalog';
  const cdev = opts['catalog-device'] || devices[0];
  await go(`#/devices/${cdev}`, '#catalog[data-loaded] ul.tree');
  const want = apiTree((await apiGet(`/gb/devices/${cdev}/channels`)).channels);
  const got = await page.evaluate(domTree);
  if (JSON.stringify(got) !== JSON.stringify(want))
    throw new Error(`tree differs: page ${JSON.stringify(got)} api ${JSON.stringify(want)}`);
  // PTZ: pick the first leaf channel and send "left"
  await page.click('#catalog ul.tree li button.node');
  await page.click('#ptz button[data-ptz="left"]');
  const ptz = await until(() => page.$eval('#ptz-out', (e) => (/sent|已发送/.test(e.textContent) ? e.textContent : false)),
    'the PTZ command to be sent');
  await page.click('#btn-info');
  await until(() => page.$eval('#device-answer', (e) => e.textContent.length > 2 && e.textContent !== '…'), 'a DeviceInfo answer');
  await shot('device');
  step('catalog', { device: cdev, nodes: JSON.stringify(got).match(/"id"/g).length, ptz });

  current = 'users';
  await go('#/users', '#page-users[data-loaded]');
  const sipUser = opts['sip-user'];
  let ua = null;
  if (sipUser) {
    ua = await until(() => page.evaluate((u) => {
      const tr = document.querySelector(`#regs-body tr[data-user="${u}"]`);
      return tr ? { ua: tr.children[6].textContent, scripts: tr.querySelectorAll('script').length,
                    countdown: tr.querySelector('.countdown').textContent } : false;
    }, sipUser), `the registration of ${sipUser}`);
    if (ua.ua !== opts['script-text'] || ua.scripts) throw new Error(`user agent not shown as text: ${JSON.stringify(ua)}`);
  }
  await page.type('#user-name', opts['add-user']);
  await page.type('#user-password', 'web-secret-1');
  await page.click('#user-add button[type=submit]');
  await page.waitForSelector(`#users-body tr[data-user="${opts['add-user']}"]`, { timeout });
  await shot('users');
  step('users', { registration: ua, added: opts['add-user'] });

  current = 'events';
  await go('#/events', '#ev-table');
  const mode = await until(() => page.$eval('#ev-conn', (e) => (e.dataset.mode === 'websocket' ? e.textContent : false)),
    'the events page to say it is live over the WebSocket');
  if (opts['event-cmd']) {
    // While the socket is up the poller's events are not shown: this row came over it.
    execFileSync('sh', ['-c', opts['event-cmd']], { stdio: ['ignore', 'ignore', 'inherit'] });
    const row = await until(() => page.evaluate((ty, tx) => {
      for (const tr of document.querySelectorAll(`#ev-body tr[data-type="${ty}"]`))
        if (tr.querySelector('.details').textContent.includes(tx)) return tr.querySelector('.details').textContent;
      return false;
    }, opts['event-type'], opts['event-text']), `${opts['event-type']} for ${opts['event-text']} over the WebSocket`);
    const still = await page.$eval('#ev-conn', (e) => e.dataset.mode);
    if (still !== 'websocket') throw new Error(`the events page fell back to ${still}`);
    step('events-ws', { indicator: mode, details: row });
  }
  if (opts['user-kill-pid']) {
    // a SIP user's TCP client dies: its binding goes at once, user.offline comes over the socket
    const u = opts['user-kill'];
    process.kill(Number(opts['user-kill-pid']), 'SIGKILL');
    const row = await until(() => page.evaluate((name) => {
      for (const tr of document.querySelectorAll('#ev-body tr[data-type="user.offline"]')) {
        const d = tr.querySelector('.details').textContent;
        if (d.split(/\s+/).includes(`user=${name}`) && d.includes('reason=transport-lost')) return d;
      }
      return false;
    }, u), `user.offline (transport-lost) for ${u} on the events page`);
    const still = await page.$eval('#ev-conn', (e) => e.dataset.mode);
    if (still !== 'websocket') throw new Error(`the events page fell back to ${still}`);
    step('events-user-offline', { details: row, mode: still });
  }
  if (opts['kill-pid']) {
    process.kill(Number(opts['kill-pid']), 'SIGKILL');
    const dev = opts['kill-device'];
    const row = await until(() => page.evaluate((d) => {
      for (const tr of document.querySelectorAll('#ev-body tr[data-type="gb.device.offline"]'))
        if (tr.querySelector('.details').textContent.includes(d)) return tr.querySelector('.details').textContent;
      return false;
    }, dev), `gb.device.offline for ${dev} on the events page`);
    // the type filter keeps it, another type hides it
    await page.type('#ev-type', 'gb.device.off');
    const kept = await page.$$eval('#ev-body tr', (r) => r.every((x) => x.dataset.type === 'gb.device.offline') && r.length > 0);
    await page.evaluate(() => { const i = document.querySelector('#ev-type'); i.value = ''; i.dispatchEvent(new Event('input')); });
    if (!kept) throw new Error('the type filter did not keep only gb.device.offline');
    // the user/device text filter: only rows naming that device
    await page.type('#ev-who', dev);
    const only = await page.$$eval('#ev-body tr', (r, d) => r.length > 0 && r.every((x) => x.textContent.includes(d)), dev);
    await page.evaluate(() => { const i = document.querySelector('#ev-who'); i.value = ''; i.dispatchEvent(new Event('input')); });
    if (!only) throw new Error(`the user/device filter did not keep only ${dev}`);
    step('events-live', { details: row });
  }
  await page.$eval('#ev-since', (e) => { e.value = '0'; });
  await page.click('#ev-replay');
  await until(() => page.$$eval('#ev-body tr', (r) => r.some((x) => x.dataset.seq === '1')), 'the replay from seq 0');
  await shot('events');
  step('events-replay');

  current = 'rooms';
  await go('#/rooms', '#page-rooms[data-loaded]');
  await shot('rooms');
  current = 'upstreams';
  await go('#/upstreams', '#page-upstreams[data-loaded]');
  await shot('upstreams');
  step('other-pages');

  current = 'language';
  await page.click('#lang');
  await until(() => page.$eval('#nav-overview', (e) => e.textContent === '概览'), 'the Chinese navigation');
  await go('#/overview', '#page-overview .cards');
  await shot('overview-zh');
  await page.click('#lang');
  step('language');

  current = 'safety';
  await new Promise((r) => setTimeout(r, 500));
  if (dialogs.length) throw new Error(`a dialog opened: ${JSON.stringify(dialogs)}`);
  if (cspErrors.length) throw new Error(`the CSP refused: ${JSON.stringify(cspErrors)}`);
  if (pageErrors.length) throw new Error(`page errors: ${JSON.stringify(pageErrors)}`);
  step('safety', { dialogs: 0, screenshots: fs.readdirSync(workdir).filter((f) => f.endsWith('.png')) });
} catch (e) {
  if (!e.skip) {
    code = 1;
    let f = null;
    if (page) f = await shot(`failed-${current}`).catch(() => null);
    process.stdout.write(`${JSON.stringify({ step: current, ok: false, error: e.message, screenshot: f, dialogs,
                                             csp: cspErrors, page_errors: pageErrors })}\n`);
  }
} finally {
  if (browser) await browser.close().catch(() => {});
}
process.exit(code);
