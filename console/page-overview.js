// page-overview.js — the node at a glance: the counters of GET /stats (as
// the API gives them), requests per second by method and responses by class
// from the page's own samples, sparklines of the last hour, the node's
// health and the latest events.
import { clear, fmtNum, fmtTime, h } from './dom.js';
import { t } from './i18n.js';
import { coalesced, live, onLive } from './live.js';
import { sparkline } from './spark.js';

// [label key, path in /stats, sample series for the sparkline]
const CARDS = [
  ['usersOnline', 'registrar.aors', 'users'],
  ['bindings', 'bindings', null],
  ['gbOnline', 'gb_upper.online', 'devices'],
  ['gbDevices', 'gb_upper.devices', null],
  ['gbStreams', 'gb_upper.streams', 'streams'],
  ['calls', 'proxy.calls_live', null],
  ['roomsLive', 'media.rooms', null],
  ['participants', 'media.participants', 'participants'],
];

function get(obj, path) {
  return path.split('.').reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

function card(key, path, series) {
  const v = get(live.stats, path);
  return h('div', { class: 'card', 'data-stat': path },
    h('div', { class: 'card-label', text: t(key) }),
    h('div', { class: 'card-value', text: v === undefined ? '—' : fmtNum(v) }),
    series ? sparkline(live.samples.map((s) => s[series]), t(key)) : null);
}

function byMethod() {
  const last = live.samples[live.samples.length - 1];
  const methods = Object.keys(live.stats?.messages_in || {}).sort();
  return h('section', { class: 'panel', id: 'req-rate' },
    h('h2', { text: t('reqRate') }),
    h('div', { class: 'rate-total' }, h('span', { class: 'big', text: fmtNum(last?.reqRate ?? 0, 1) }), t('perSec')),
    sparkline(live.samples.map((s) => s.reqRate), t('reqRate')),
    h('table', {}, h('tbody', {}, methods.map((m) => h('tr', { 'data-method': m },
      h('th', { text: m }),
      h('td', { text: `${fmtNum(last?.byMethod?.[m] ?? 0, 1)}${t('perSec')}` }),
      h('td', { class: 'muted', text: `${fmtNum(live.stats.messages_in[m])} ${t('total')}` }))))));
}

function byClass() {
  const classes = {};
  for (const [code, n] of Object.entries(live.stats?.responses_out || {})) {
    const c = `${String(code)[0]}xx`;
    classes[c] = (classes[c] || 0) + n;
  }
  const total = Object.values(classes).reduce((a, b) => a + b, 0) || 1;
  return h('section', { class: 'panel', id: 'resp-class' },
    h('h2', { text: t('respClass') }),
    h('table', {}, h('tbody', {}, Object.keys(classes).sort().map((c) => h('tr', { 'data-class': c },
      h('th', { text: c }),
      h('td', { text: fmtNum(classes[c]) }),
      h('td', {}, h('meter', { min: 0, max: total, value: classes[c] })))))));
}

function health() {
  const s = live.stats || {};
  const o = s.overload || {};
  const c = s.transport?.connections || {};
  const rows = [
    ['loopLag', fmtNum(o.loop_lag_ms, 1)],
    ['loopBusy', fmtNum(o.loop_busy_pct, 1)],
    ['overloaded', o.loop_overloaded ? t('yes') : t('no')],
    ['serverTx', fmtNum(s.transactions?.server_live)],
    ['connections', `${c.tcp ?? 0} / ${c.tls ?? 0} / ${c.ws ?? 0} / ${c.wss ?? 0}`],
    ['apiRequests', fmtNum(s.api?.requests)],
    ['eventsPublished', fmtNum(s.events)],
  ];
  return h('section', { class: 'panel', id: 'health' },
    h('h2', { text: t('health') }),
    h('table', {}, h('tbody', {}, rows.map(([k, v]) => h('tr', {}, h('th', { text: t(k) }), h('td', { text: v }))))));
}

function latest() {
  const ev = live.events.slice(-8).reverse();
  return h('section', { class: 'panel', id: 'latest' },
    h('h2', { text: t('recentEvents') }),
    ev.length ? h('ul', { class: 'mini-events' }, ev.map((e) => h('li', {},
      h('span', { class: 'muted', text: fmtTime(e.time) }), ' ', h('b', { text: e.type }), ' ',
      h('span', { text: e.device_id || e.user || e.room || e.upstream || '' }))))
      : h('p', { class: 'muted', text: t('nothing') }));
}

export function mount(el) {
  const draw = () => {
    clear(el);
    if (!live.stats) { el.append(h('p', { class: 'muted', text: '…' })); return; }
    el.append(
      h('div', { class: 'cards' }, CARDS.map(([k, p, s]) => card(k, p, s))),
      h('p', { class: 'muted small', text: t('lastHour') }),
      h('div', { class: 'panels' }, byMethod(), byClass(), health(), latest()));
    el.dataset.sampled = String(live.samples.length);
  };
  draw();
  // the counters follow the event stream (live.js fetches /stats after a counted event);
  // one redraw per frame however many events come
  const redraw = coalesced(draw);
  const off = onLive((kind) => { if (kind === 'stats' || kind === 'events') redraw(); });
  return () => { off(); redraw.cancel(); };
}
