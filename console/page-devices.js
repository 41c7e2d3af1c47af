// page-devices.js — GB devices: the list, one page of PAGE rows at a time
// from the API (GET /gb/devices?offset=&limit=, sorted by id; its total and
// online counts), searched by id or name through the API's ?q= (substring,
// ASCII case folded), so 10 000 devices cost one page of JSON and PAGE rows
// of DOM; and one device: its record, DeviceInfo/DeviceStatus queries, the
// catalog as a tree (GET /gb/devices/{id}/channels) and a PTZ pad for the
// channel picked in it, and a button that watches it (#/live).
import { api } from './api.js';
import { clear, fmtTime, h } from './dom.js';
import { t } from './i18n.js';
import { onLive, onLiveEvents } from './live.js';

const PAGE = 100;
const REFRESH_MS = 30000;    // for the keepalive column: devices coming and going arrive as events
const TYPE_MS = 250;          // the search asks the API once typing pauses this long

export function mount(el, args) {
  return args[0] ? mountDevice(el, args[0]) : mountList(el);
}

// ---- the list ---------------------------------------------------------------

function mountList(el) {
  let devices = [];             // the page shown
  let total = 0, online = 0;    // of every match
  let offset = 0;
  let error = '';
  let query = sessionStorage.getItem('cascade.devq') || '';
  const input = h('input', { id: 'device-search', type: 'search', placeholder: t('searchIdName'), value: query });
  const count = h('p', { class: 'muted small', id: 'device-count' });
  const prev = h('button', { type: 'button', id: 'dev-prev', text: '‹', title: t('prevPage') });
  const next = h('button', { type: 'button', id: 'dev-next', text: '›', title: t('nextPage') });
  const body = h('tbody', {});
  const table = h('table', { class: 'list', id: 'device-list' },
    h('thead', {}, h('tr', {}, ['id', 'name', 'state', 'remote', 'transport', 'channels', 'streams',
                                'lastKeepalive'].map((k) => h('th', { text: t(k) })))), body);
  const errEl = h('p', { class: 'error' });
  clear(el).append(h('h1', { text: t('devices') }),
    h('div', { class: 'toolbar' }, input, prev, next, count), errEl, table);

  const draw = () => {
    errEl.textContent = error;
    // the name is the device's own (DeviceInfo), shown in its own script
    clear(body).append(...devices.map((d) => h('tr', { 'data-id': d.id, class: d.online ? 'on' : 'off' },
      h('td', {}, h('a', { href: `#/devices/${encodeURIComponent(d.id)}`, text: d.id })),
      h('td', { class: 'name', text: d.name || '—' }),
      h('td', {}, h('span', { class: `badge ${d.online ? 'ok' : 'bad'}`, text: d.online ? t('online') : t('offline') })),
      h('td', { text: d.remote || '—' }),
      h('td', { text: d.transport || '—' }),
      h('td', { text: String(d.channels ?? 0) }),
      h('td', { text: String(d.streams ?? 0) }),
      h('td', { text: fmtTime(d.last_keepalive) }))));
    count.textContent = devices.length
      ? t('devRange', offset + 1, offset + devices.length, total, online)
      : t('devNone');
    prev.disabled = offset === 0;
    next.disabled = offset + devices.length >= total;
    el.dataset.total = String(total);
    el.dataset.offset = String(offset);
    el.dataset.q = query.trim();
    el.dataset.loaded = '1';
  };

  let timer = null;
  let alive = true;
  let gen = 0;
  const load = async () => {
    const mine = ++gen;
    clearTimeout(timer);
    const q = query.trim();
    try {
      const r = await api('GET', `/gb/devices?offset=${offset}&limit=${PAGE}${q ? `&q=${encodeURIComponent(q)}` : ''}`);
      if (mine !== gen) return;             // a newer search or page went out meanwhile
      devices = r.devices || [];
      total = r.total ?? devices.length;
      online = r.online ?? 0;
      error = '';
      // the list shrank under the page shown: back to its last page
      if (!devices.length && offset > 0 && total > 0) {
        offset = Math.floor((total - 1) / PAGE) * PAGE;
        load();
        return;
      }
    } catch (e) {
      if (mine !== gen) return;
      error = e.status === 404 ? t('gbOff') : e.message;
    }
    if (!alive) return;
    draw();
    timer = setTimeout(load, REFRESH_MS);
  };
  prev.addEventListener('click', () => { offset = Math.max(0, offset - PAGE); load(); });
  next.addEventListener('click', () => { if (offset + PAGE < total) { offset += PAGE; load(); } });
  let typing = null;
  input.addEventListener('input', () => {
    query = input.value;
    sessionStorage.setItem('cascade.devq', query);
    clearTimeout(typing);
    typing = setTimeout(() => { offset = 0; load(); }, TYPE_MS);
  });
  // live from the event stream: a device coming or going shows at once; at
  // most one reload in 2 s however many register (10 000 in a burst)
  const off = onLiveEvents((e) => e.type.startsWith('gb.device.'), load, 2000);
  load();
  return () => { alive = false; gen++; clearTimeout(timer); clearTimeout(typing); off(); };
}

// ---- one device -------------------------------------------------------------

function kv(rows) {
  return h('table', { class: 'kv' }, h('tbody', {}, rows.map(([k, v]) => h('tr', {},
    h('th', { text: k }), h('td', { text: v === null || v === undefined ? '—' : String(v) })))));
}

// channels: nodes with children; onPick(channel); the live page uses it too
export function tree(channels, onPick) {
  const ul = h('ul', { class: 'tree' });
  for (const c of channels) {
    const label = h('button', { type: 'button', class: 'node', 'data-channel': c.id,
                                onclick: () => onPick(c, label) },
      h('span', { class: `dot ${c.status === 'ON' ? 'ok' : 'bad'}` }),
      h('span', { class: 'node-name', text: c.name ?? c.id }), ' ',
      h('span', { class: 'muted small', text: c.id }));
    ul.append(h('li', { 'data-id': c.id }, label, c.children?.length ? tree(c.children, onPick) : null));
  }
  return ul;
}

// the pad for one channel (getChannel() → its id); the live page uses it too
export function ptzPad(deviceId, getChannel, out) {
  const speed = h('input', { type: 'number', min: 0, max: 255, value: 128, id: 'ptz-speed' });
  const send = async (cmd) => {
    const cid = getChannel();
    if (!cid) { out.textContent = t('pickChannel'); return; }
    out.textContent = '…';
    try {
      const r = await api('POST', `/gb/devices/${encodeURIComponent(deviceId)}/channels/${encodeURIComponent(cid)}/ptz`,
                          { cmd, speed: Number(speed.value) });
      out.textContent = `${cmd}: ${t('sent')} ${r.ptz_cmd || ''}`;
    } catch (e) {
      out.textContent = `${cmd}: ${e.message}`;
    }
  };
  const b = (cmd, label) => h('button', { type: 'button', 'data-ptz': cmd, text: label, onclick: () => send(cmd) });
  return h('div', { class: 'ptz', id: 'ptz' },
    h('div', { class: 'pad' },
      b('upleft', '↖'), b('up', '↑'), b('upright', '↗'),
      b('left', '←'), b('stop', '■'), b('right', '→'),
      b('downleft', '↙'), b('down', '↓'), b('downright', '↘')),
    h('div', { class: 'zoom' }, b('zoomin', t('zoomin')), b('zoomout', t('zoomout'))),
    h('label', {}, t('speed'), ' ', speed));
}

function mountDevice(el, id) {
  let alive = true;
  let channel = null;
  const path = `/gb/devices/${encodeURIComponent(id)}`;
  const info = h('div', { id: 'device-info' });
  const treeBox = h('div', { id: 'catalog' });
  const answer = h('pre', { class: 'answer', id: 'device-answer' });
  const ptzOut = h('p', { class: 'muted', id: 'ptz-out', text: t('pickChannel') });
  const chosen = h('span', { id: 'ptz-channel', class: 'muted' });
  const watchBtn = h('button', { type: 'button', id: 'btn-watch', text: t('watch'), disabled: true, onclick: () => {
    if (channel) location.hash = `#/live/${encodeURIComponent(id)}/${encodeURIComponent(channel)}`;
  } });

  const ask = (what) => async () => {
    answer.textContent = '…';
    try {
      const r = await api('POST', `${path}/${what}`, {});
      answer.textContent = JSON.stringify(r, null, 2);
      loadDevice();
    } catch (e) {
      answer.textContent = e.message;
    }
  };

  const loadDevice = async () => {
    try {
      const d = await api('GET', path);
      if (!alive) return;
      clear(info).append(
        h('h1', {}, h('span', { class: `dot ${d.online ? 'ok' : 'bad'}` }), ' ', h('span', { text: d.id })),
        kv([[t('state'), d.online ? t('online') : t('offline')], [t('remote'), d.remote], [t('transport'), d.transport],
            [t('registeredAt'), fmtTime(d.registered_at)], [t('lastKeepalive'), fmtTime(d.last_keepalive)],
            [t('channels'), d.channels], [t('streams'), d.streams], ['charset', d.charset], [t('contact'), d.contact],
            [t('info'), d.info ? JSON.stringify(d.info) : null], [t('status'), d.status ? JSON.stringify(d.status) : null]]));
    } catch (e) {
      clear(info).append(h('h1', { text: id }), h('p', { class: 'error', text: e.status === 404 ? t('noDevice') : e.message }));
    }
  };

  let picked = null;
  const loadTree = async () => {
    try {
      const r = await api('GET', `${path}/channels`);
      if (!alive) return;
      clear(treeBox).append(tree(r.channels || [], (c, btn) => {
        channel = c.id;
        picked?.classList.remove('picked');
        picked = btn;
        btn.classList.add('picked');
        chosen.textContent = `${t('ptzChannel')} ${c.name ?? ''} (${c.id})`;
        watchBtn.disabled = false;
      }));
      treeBox.dataset.loaded = '1';
    } catch (e) {
      clear(treeBox).append(h('p', { class: 'error', text: e.message }));
    }
  };

  clear(el).append(
    h('a', { href: '#/devices', text: t('back') }), info,
    h('div', { class: 'actions' },
      h('button', { type: 'button', id: 'btn-info', text: t('queryInfo'), onclick: ask('info') }),
      h('button', { type: 'button', id: 'btn-status', text: t('queryStatus'), onclick: ask('status') }),
      h('button', { type: 'button', id: 'btn-catalog', text: t('queryCatalog'),
                    onclick: async () => { await ask('catalog')(); loadTree(); } })),
    answer,
    h('div', { class: 'split' },
      h('section', { class: 'panel' }, h('h2', { text: t('catalog') }), treeBox),
      h('section', { class: 'panel' }, h('h2', { text: t('ptz') }), chosen, ' ', watchBtn, ptzPad(id, () => channel, ptzOut), ptzOut)));
  loadDevice();
  loadTree();
  const off = onLive((kind, evs) => {
    if (kind !== 'events') return;
    if (evs.some((e) => e.device_id === id && e.type.startsWith('gb.device.'))) loadDevice();
    if (evs.some((e) => e.device_id === id && e.type === 'gb.catalog.updated')) loadTree();
  });
  return () => { alive = false; off(); };
}
