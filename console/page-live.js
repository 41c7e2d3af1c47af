// page-live.js — live view: GB channels picked from a device's catalog tree
// play in a grid of 1, 4 or 9 tiles over WebRTC (WHEP: one complete offer,
// recvonly video, POSTed to the URL the live route answers; the session's
// Location is DELETEd when the tile closes). The selected tile has the PTZ
// pad beside it. Below, playback: a record search of the picked channel for
// one day, drawn as a 24-hour timeline; a recording clicked plays in the
// selected tile with pause/resume/speed/seek (the stream control route).
//
// FLV fallback: when WebRTC cannot play a tile (no RTCPeerConnection, the
// WHEP POST refused — 415 for an H.265 camera —, ICE/DTLS failed or never
// connected), or the tile's transport picker says FLV, the same stream is
// read from its live.flv URL by mpegts.js (vendored: /console/vendor/,
// loaded the first time a tile needs it) through Media Source Extensions,
// video only (MSE has no G.711). The tile says which transport plays it
// (data-transport) and why it fell back (data-fallback).
//
// Owns the tiles: each holds at most one peer connection or FLV player and,
// for a playback, the stream it started (stopped with DELETE when the tile
// closes: a playback is its asker's own; a live stream is shared and
// idle-stops). A language switch re-renders the page around the same tiles:
// they keep playing (see mount's `keep`).
import { api, token } from './api.js';
import { clear, h, svg } from './dom.js';
import { t } from './i18n.js';
import { onLive } from './live.js';
import { ptzPad, tree } from './page-devices.js';

const GRIDS = [1, 4, 9];
const STATS_MS = 1000;
const ICE_WAIT_MS = 5000;      // gathering on a LAN takes milliseconds; past this, send what we have
const CONNECT_WAIT_MS = 15000; // a WebRTC session not connected by then falls back to FLV
const MODES = ['auto', 'flv']; // the tile's transport picker: WebRTC first (FLV if it fails), or FLV
const DAY_MIN = 24 * 60;
const SPEEDS = [0.5, 1, 2, 4];
const DEVICE_OPTIONS = 500;    // the datalist shows at most this many device ids

const enc = encodeURIComponent;

// "2026-12-01T10:05:00" -> minutes into the day `day` ("2026-12-01"), clipped to [0, 1440]
function dayMinutes(gbTime, day) {
  const [d, time = '00:00:00'] = String(gbTime).split('T');
  if (d < day) return 0;
  if (d > day) return DAY_MIN;
  const [hh, mm, ss] = time.split(':').map(Number);
  return Math.min(DAY_MIN, (hh || 0) * 60 + (mm || 0) + (ss || 0) / 60);
}

function today() {
  const d = new Date();
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

// A complete offer (every candidate in it): the WHEP server takes no trickle.
async function completeOffer(pc) {
  await pc.setLocalDescription(await pc.createOffer());
  if (pc.iceGatheringState !== 'complete') {
    await new Promise((resolve) => {
      pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
      setTimeout(resolve, ICE_WAIT_MS);
    });
  }
  return pc.localDescription.sdp;
}

// mpegts.js, loaded once by a classic script (its UMD build sets window.mpegts)
let mpegtsLoading = null;
function loadMpegts() {
  if (window.mpegts) return Promise.resolve(window.mpegts);
  mpegtsLoading ??= new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = '/console/vendor/mpegts.js';
    s.onload = () => (window.mpegts ? resolve(window.mpegts) : reject(new Error('mpegts.js did not load')));
    s.onerror = () => { mpegtsLoading = null; s.remove(); reject(new Error('/console/vendor/mpegts.js cannot be loaded')); };
    document.head.append(s);
  });
  return mpegtsLoading;
}

// leaves a WHEP session (its Location URL)
function deleteSession(url) {
  if (url) fetch(url, { method: 'DELETE', headers: { Authorization: `Bearer ${token() || ''}` } }).catch(() => {});
}

// tiles kept across a language switch (the page's unmount with keep, then its next mount)
let kept = null;

// ---- a tile -----------------------------------------------------------------

class Tile {
  constructor(index, onSelect) {
    this.index = index;
    this.onSelect = onSelect;
    this.pc = null;
    this.player = null;         // the mpegts.js player of an FLV tile
    this.flvUrl = null;         // the stream's live.flv, from the live/play answer
    this.webrtcUrl = null;      // its WHEP endpoint
    this.mode = sessionStorage.getItem(`cascade.tilemode${index}`) === 'flv' ? 'flv' : 'auto';
    this.session = null;        // the WHEP resource to DELETE
    this.sid = null;
    this.kind = null;           // 'live' | 'playback' | null (empty)
    this.target = null;         // {device, channel, name}
    this.gen = 0;               // bumped at every start/close: late answers of an older one are dropped
    this.video = h('video', { autoplay: true, muted: true, playsinline: true });
    this.video.muted = true;
    this.title = h('span', { class: 'tile-title', text: t('tileEmpty') });
    this.status = h('span', { class: 'tile-status muted' });
    this.info = h('span', { class: 'tile-info muted small' });
    this.controls = h('div', { class: 'tile-controls' });
    this.modeSel = h('select', { class: 'tile-mode', title: t('tileTransport') },
      MODES.map((m) => h('option', { value: m, text: m === 'flv' ? 'FLV' : 'WebRTC', selected: m === this.mode })));
    this.modeSel.addEventListener('click', (ev) => ev.stopPropagation());
    this.modeSel.addEventListener('change', () => this.setMode(this.modeSel.value));
    this.closeBtn = h('button', { type: 'button', class: 'tile-close', title: t('closeTile'), text: '×',
                                  onclick: (ev) => { ev.stopPropagation(); this.close(); } });
    this.el = h('div', { class: 'tile', 'data-tile': index, 'data-state': 'empty', onclick: () => this.onSelect(this) },
      this.video,
      h('div', { class: 'tile-bar' }, this.title, this.status, this.info, this.modeSel, this.closeBtn),
      this.controls);
  }

  // the texts of the current language, the media untouched (a language switch)
  relabel() {
    this.title.textContent = this.kind === 'playback' && this.recLabel ? this.recLabel : this.label();
    this.setState(this.el.dataset.state || 'empty', this.el.dataset.reason);
    this.modeSel.title = t('tileTransport');
    this.closeBtn.title = t('closeTile');
    if (this.kind === 'playback') this.drawControls();
    this.info.textContent = '';
  }

  // the transport picker: a playing tile switches its stream over at once
  setMode(mode) {
    this.mode = mode === 'flv' ? 'flv' : 'auto';
    this.modeSel.value = this.mode;
    sessionStorage.setItem(`cascade.tilemode${this.index}`, this.mode);
    if (!this.sid) return;
    const gen = ++this.gen;
    this.stopMedia();
    delete this.el.dataset.fallback;
    this.setState('connecting');
    if (this.mode === 'flv') this.playFlv(gen);
    else this.watch(this.webrtcUrl, gen);
  }

  setState(state, reason) {
    this.el.dataset.state = state;
    if (reason) this.el.dataset.reason = reason;
    else delete this.el.dataset.reason;
    this.status.textContent = state === 'empty' ? '' : t(`st_${state}`) + (reason ? ` — ${reason}` : '');
    this.status.className = `tile-status ${state === 'playing' ? 'ok' : state === 'ended' ? 'bad' : 'muted'}`;
  }

  label() { return this.target ? `${this.target.name || this.target.channel}` : t('tileEmpty'); }

  async playLive(target) {
    await this.close();
    const gen = ++this.gen;
    this.kind = 'live';
    this.target = target;
    this.title.textContent = this.label();
    this.setState('connecting');
    let r;
    try {
      r = await api('POST', `/gb/devices/${enc(target.device)}/channels/${enc(target.channel)}/live`, {});
    } catch (e) {
      if (gen === this.gen) this.setState('ended', e.message);
      return;
    }
    if (gen !== this.gen) return;
    this.sid = r.stream_id;
    this.el.dataset.sid = r.stream_id;
    this.start(r, gen);
  }

  // the stream's outputs from a live/play answer; WebRTC first unless the tile says FLV
  async start(r, gen) {
    this.webrtcUrl = r.webrtc || `/api/v1/gb/streams/${enc(r.stream_id)}/whep`;
    this.flvUrl = r.flv || `/api/v1/gb/streams/${enc(r.stream_id)}/live.flv`;
    if (this.mode === 'flv') await this.playFlv(gen);
    else await this.watch(this.webrtcUrl, gen);
  }

  async playRecord(target, rec) {
    await this.close();
    const gen = ++this.gen;
    this.kind = 'playback';
    this.target = target;
    this.recLabel = `${this.label()} ${rec.start.replace('T', ' ')}`;
    this.title.textContent = this.recLabel;
    this.setState('connecting');
    let r;
    try {
      r = await api('POST', `/gb/devices/${enc(target.device)}/channels/${enc(target.channel)}/play`,
                    { start: rec.start, end: rec.end });
    } catch (e) {
      if (gen === this.gen) this.setState('ended', e.message);
      return;
    }
    this.sid = r.stream_id;            // ours even if the tile moved on: close() below stops it
    if (gen !== this.gen) {
      api('DELETE', `/gb/streams/${enc(r.stream_id)}`).catch(() => {});
      return;
    }
    this.el.dataset.sid = r.stream_id;
    this.drawControls();
    await this.start(r, gen);
  }

  async watch(url, gen) {
    let pc;
    try {
      pc = new RTCPeerConnection();
    } catch (e) {
      this.fallback(gen, `WebRTC: ${e.message}`);
      return;
    }
    this.pc = pc;
    this.el.dataset.transport = 'webrtc';
    pc.addTransceiver('video', { direction: 'recvonly' });
    // never connected in time: FLV instead (a failure before that falls back at once, below)
    const waiting = setTimeout(() => {
      if (this.pc === pc && gen === this.gen && pc.connectionState !== 'connected') this.fallback(gen, t('rtcTimeout'));
    }, CONNECT_WAIT_MS);
    pc.addEventListener('track', (e) => {
      this.video.srcObject = new MediaStream([e.track]);
      this.video.play().catch(() => {});
    });
    pc.addEventListener('connectionstatechange', () => {
      if (this.pc !== pc) return;
      if (pc.connectionState === 'connected') clearTimeout(waiting);
      // ICE or DTLS failed before it ever played: FLV instead
      if (pc.connectionState === 'failed' && this.el.dataset.state === 'connecting') {
        clearTimeout(waiting);
        this.fallback(gen, t('rtcFailed'));
        return;
      }
      // 'disconnected' may come back (consent checks resume); the stream's own end comes as an event
      if (pc.connectionState === 'connected' && this.el.dataset.state !== 'playing') this.setState('playing');
      if (['failed', 'closed', 'disconnected'].includes(pc.connectionState) && this.el.dataset.state === 'playing')
        this.setState('ended', t('peerGone'));
    });
    try {
      const offer = await completeOffer(pc);
      if (gen !== this.gen) return;
      const res = await fetch(url, { method: 'POST', body: offer, cache: 'no-store',
        headers: { Authorization: `Bearer ${token() || ''}`, 'Content-Type': 'application/sdp' } });
      const body = await res.text();
      if (res.status !== 201) {
        let why = `HTTP ${res.status}`;
        try { why = `${why} ${JSON.parse(body).detail || ''}`.trim(); } catch { /* not JSON */ }
        // the stream is gone (404) or not this asker's (409): FLV would not play it either
        const err = new Error(why);
        err.final = res.status === 404 || res.status === 409 || res.status === 401;
        throw err;
      }
      const loc = res.headers.get('Location');
      const where = loc ? new URL(loc, location.href).toString() : null;
      if (gen !== this.gen) { deleteSession(where); return; }   // the tile moved on meanwhile
      this.session = where;
      await pc.setRemoteDescription({ type: 'answer', sdp: body });
    } catch (e) {
      clearTimeout(waiting);
      if (gen !== this.gen) return;
      if (e.final) {
        this.setState('ended', e.message);
        this.dropPeer();
      } else {
        this.fallback(gen, `WebRTC: ${e.message}`);
      }
    }
  }

  // WebRTC could not play this tile: the same stream over HTTP-FLV
  fallback(gen, why) {
    if (gen !== this.gen || !this.flvUrl) return;
    const next = ++this.gen;     // what the WebRTC attempt still has in flight is dropped
    this.el.dataset.fallback = why;
    this.leave();
    this.dropPeer();
    this.playFlv(next);
  }

  async playFlv(gen) {
    this.el.dataset.transport = 'flv';
    let mpegts;
    try {
      mpegts = await loadMpegts();
      if (!mpegts.isSupported() || !mpegts.getFeatureList().mseLivePlayback) throw new Error(t('noMse'));
    } catch (e) {
      if (gen === this.gen) this.setState('ended', `FLV: ${e.message}`);
      return;
    }
    if (gen !== this.gen) return;
    const player = mpegts.createPlayer(
      { type: 'flv', isLive: true, url: this.flvUrl, hasAudio: false, hasVideo: true },
      { enableWorker: false, lazyLoad: false, liveBufferLatencyChasing: true,
        headers: { Authorization: `Bearer ${token() || ''}` } });
    this.player = player;
    player.on(mpegts.Events.ERROR, (type, detail, info) => {
      if (this.player !== player || gen !== this.gen) return;
      this.setState('ended', `FLV: ${info?.msg || detail || type}`);
      // not from inside the player's own emit: it goes on using what destroy() frees
      setTimeout(() => { if (this.player === player) this.dropPlayer(); }, 0);
    });
    player.on(mpegts.Events.LOADING_COMPLETE, () => {
      // the body ends when the stream stops (its event gives the reason, if it comes first)
      if (this.player === player && gen === this.gen && this.el.dataset.state !== 'ended') this.setState('ended', t('peerGone'));
    });
    const onPlaying = () => {
      if (this.player === player && gen === this.gen && this.el.dataset.state === 'connecting') this.setState('playing');
    };
    this.video.addEventListener('playing', onPlaying, { once: true });
    player.attachMediaElement(this.video);
    player.load();
    Promise.resolve(player.play()).catch(() => {});
  }

  drawControls() {
    const ctl = (action, extra) => async () => {
      if (!this.sid) return;
      try {
        const r = await api('POST', `/gb/streams/${enc(this.sid)}/control`, { action, ...extra });
        this.el.dataset.paused = r.paused ? '1' : '0';
        this.el.dataset.scale = String(r.scale ?? '');
        this.info.textContent = r.paused ? t('paused') : `×${r.scale ?? 1}`;
      } catch (e) {
        this.info.textContent = `${action}: ${e.message}`;
      }
    };
    const speed = h('select', { class: 'pb-speed', title: t('speed') },
      SPEEDS.map((s) => h('option', { value: String(s), text: `×${s}`, selected: s === 1 })));
    speed.addEventListener('change', () => ctl('speed', { speed: Number(speed.value) })());
    const pos = h('input', { type: 'number', class: 'pb-pos', min: 0, value: 0, title: t('seekPos') });
    clear(this.controls).append(
      h('button', { type: 'button', class: 'pb-pause', text: t('pause'), onclick: ctl('pause') }),
      h('button', { type: 'button', class: 'pb-resume', text: t('resume'), onclick: ctl('resume') }),
      speed, pos,
      h('button', { type: 'button', class: 'pb-seek', text: t('seek'),
                    onclick: () => ctl('seek', { position: Number(pos.value) })() }));
    for (const c of this.controls.children) c.addEventListener('click', (ev) => ev.stopPropagation());
  }

  // the inbound video's counters on the tile (data-frames, data-width: the tests read them too)
  async sample() {
    if (this.player) {
      const q = this.video.getVideoPlaybackQuality();
      const width = this.video.videoWidth || 0;
      this.el.dataset.frames = String(q.totalVideoFrames);
      this.el.dataset.width = String(width);
      if (this.kind === 'live' || !this.el.dataset.paused || this.el.dataset.paused === '0')
        this.info.textContent = width ? t('tileInfo', `FLV ${width}×${this.video.videoHeight}`, q.totalVideoFrames) : 'FLV';
      return;
    }
    if (!this.pc) return;
    let frames = 0, width = 0, height = 0;
    try {
      (await this.pc.getStats()).forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') {
          frames = s.framesDecoded || 0;
          width = s.frameWidth || 0;
          height = s.frameHeight || 0;
        }
      });
    } catch { return; }
    this.el.dataset.frames = String(frames);
    this.el.dataset.width = String(width || this.video.videoWidth || 0);
    if (this.kind === 'live' || !this.el.dataset.paused || this.el.dataset.paused === '0')
      this.info.textContent = width ? t('tileInfo', `${width}×${height}`, frames) : '';
  }

  onStreamStopped(sid, reason) {
    if (sid === this.sid && this.el.dataset.state !== 'ended') this.setState('ended', reason || t('peerGone'));
  }

  leave() {
    const url = this.session;
    this.session = null;
    deleteSession(url);
  }

  dropPeer() {
    if (this.pc) {
      const pc = this.pc;
      this.pc = null;
      pc.close();
    }
    this.video.srcObject = null;
  }

  dropPlayer() {
    if (!this.player) return;
    const p = this.player;
    this.player = null;
    try { p.pause(); p.unload(); p.detachMediaElement(); p.destroy(); } catch { /* already torn down */ }
    this.video.removeAttribute('src');
    this.video.load();
  }

  // whatever carries the stream to this tile (the stream itself stays)
  stopMedia() {
    this.leave();
    this.dropPeer();
    this.dropPlayer();
    for (const k of ['frames', 'width', 'transport']) delete this.el.dataset[k];
  }

  async close() {
    this.gen++;
    this.stopMedia();
    if (this.kind === 'playback' && this.sid) api('DELETE', `/gb/streams/${enc(this.sid)}`).catch(() => {});
    this.sid = null;
    this.kind = null;
    this.target = null;
    this.flvUrl = this.webrtcUrl = this.recLabel = null;
    for (const k of ['sid', 'frames', 'width', 'paused', 'scale', 'fallback']) delete this.el.dataset[k];
    this.title.textContent = t('tileEmpty');
    this.info.textContent = '';
    clear(this.controls);
    this.setState('empty');
  }
}

// ---- the page ---------------------------------------------------------------

export function mount(el, args) {
  let alive = true;
  const reuse = kept;           // the tiles of the page this one replaces for a language switch
  kept = null;
  let tiles = reuse ? reuse.tiles : [];
  let selected = null;
  let picked = null;            // {device, channel, name}: the channel picked in the tree
  let device = args[0] || sessionStorage.getItem('cascade.livedev') || '';

  const gridEl = h('div', { class: 'grid g4', id: 'live-grid' });
  const treeBox = h('div', { id: 'live-catalog' });
  const devInput = h('input', { id: 'live-device', list: 'live-devices', placeholder: t('deviceId'), value: device });
  const devList = h('datalist', { id: 'live-devices' });
  const ptzBox = h('div', { id: 'live-ptz' });
  const ptzOut = h('p', { class: 'muted', id: 'ptz-out' });
  const dayInput = h('input', { type: 'date', id: 'rec-day', value: sessionStorage.getItem('cascade.recday') || today() });
  const recOut = h('p', { class: 'muted small', id: 'rec-out', text: t('pickChannel') });
  const timeline = h('div', { class: 'timeline', id: 'timeline' });

  const select = (tile) => {
    selected?.el.classList.remove('selected');
    selected = tile;
    tile.el.classList.add('selected');
    drawPtz();
  };

  const drawPtz = () => {
    const tg = selected?.target;
    if (!tg) {
      clear(ptzBox).append(h('p', { class: 'muted', text: t('ptzSelect') }));
      ptzOut.textContent = '';
      return;
    }
    clear(ptzBox).append(h('p', { class: 'small', id: 'ptz-channel', text: `${tg.name || ''} (${tg.channel})` }),
      ptzPad(tg.device, () => tg.channel, ptzOut));
  };

  const setGrid = (n) => {
    sessionStorage.setItem('cascade.grid', String(n));
    while (tiles.length > n) tiles.pop().close();
    while (tiles.length < n) tiles.push(new Tile(tiles.length, select));
    gridEl.className = `grid g${n}`;
    clear(gridEl).append(...tiles.map((x) => x.el));
    for (const b of gridButtons) b.classList.toggle('active', Number(b.dataset.grid) === n);
    if (!tiles.includes(selected)) select(tiles[0]);
  };

  // a channel picked: the selected tile plays it when empty, else the first empty one, else the selected one
  const watch = (target) => {
    const tile = (selected && !selected.kind) ? selected : tiles.find((x) => !x.kind) || selected || tiles[0];
    select(tile);
    tile.playLive(target).then(drawPtz);
    drawPtz();
  };

  const loadTree = async () => {
    device = devInput.value.trim();
    if (!device) return;
    sessionStorage.setItem('cascade.livedev', device);
    clear(treeBox).append(h('p', { class: 'muted', text: '…' }));
    try {
      const r = await api('GET', `/gb/devices/${enc(device)}/channels`);
      if (!alive) return;
      const dev = device;
      let pickedBtn = null;
      clear(treeBox).append(tree(r.channels || [], (c, btn) => {
        pickedBtn?.classList.remove('picked');
        pickedBtn = btn;
        btn.classList.add('picked');
        picked = { device: dev, channel: c.id, name: c.name ?? c.id };
        recOut.textContent = t('recFor', picked.name, picked.channel);
        watch(picked);
      }));
      treeBox.dataset.loaded = '1';
    } catch (e) {
      clear(treeBox).append(h('p', { class: 'error', text: e.status === 404 ? t('noDevice') : e.message }));
    }
  };

  const loadDevices = async () => {
    try {
      const r = await api('GET', `/gb/devices?limit=${DEVICE_OPTIONS}`);
      if (!alive) return;
      const ids = (r.devices || []).filter((d) => d.online).slice(0, DEVICE_OPTIONS).map((d) => d.id);
      clear(devList).append(...ids.map((id) => h('option', { value: id })));
      if (!devInput.value && ids.length) { devInput.value = ids[0]; loadTree(); }
    } catch { /* the tree load says what is wrong */ }
  };

  // ---- playback: the record search and its timeline ----
  const drawTimeline = (records, day) => {
    const bar = svg('svg', { class: 'tl', viewBox: `0 0 ${DAY_MIN} 34`, preserveAspectRatio: 'none', id: 'timeline-svg' });
    bar.append(svg('rect', { class: 'tl-bg', x: 0, y: 0, width: DAY_MIN, height: 22 }));
    let n = 0;
    for (const rec of records) {
      const a = dayMinutes(rec.start, day), b = dayMinutes(rec.end, day);
      if (b <= a && !(b === a && a < DAY_MIN)) continue;
      n++;
      const seg = svg('rect', { class: `tl-seg ${rec.type === 'alarm' ? 'alarm' : ''}`, x: a, y: 2,
                                width: Math.max(2, b - a), height: 18, 'data-start': rec.start, 'data-end': rec.end },
        svg('title', { text: `${rec.start} – ${rec.end} ${rec.name || ''}` }));
      seg.addEventListener('click', () => {
        if (!picked) return;
        const tile = selected || tiles[0];
        tile.playRecord(picked, rec).then(drawPtz);
        drawPtz();
      });
      bar.append(seg);
    }
    for (let hr = 0; hr <= 24; hr += 3) {
      bar.append(svg('line', { class: 'tl-tick', x1: hr * 60, x2: hr * 60, y1: 22, y2: 26 }));
    }
    const labels = h('div', { class: 'tl-labels small muted' },
      [0, 3, 6, 9, 12, 15, 18, 21, 24].map((hr) => h('span', { text: `${String(hr).padStart(2, '0')}:00` })));
    clear(timeline).append(bar, labels);
    timeline.dataset.segments = String(n);
    return n;
  };

  const searchRecords = async () => {
    if (!picked) { recOut.textContent = t('pickChannel'); return; }
    const day = dayInput.value || today();
    sessionStorage.setItem('cascade.recday', day);
    recOut.textContent = '…';
    delete timeline.dataset.segments;
    try {
      const r = await api('POST', `/gb/devices/${enc(picked.device)}/records`,
                          { channel: picked.channel, start: `${day}T00:00:00`, end: `${day}T23:59:59` });
      if (!alive) return;
      const n = drawTimeline(r.records || [], day);
      recOut.textContent = t('recFound', n, picked.name);
    } catch (e) {
      recOut.textContent = e.message;
    }
  };

  const gridButtons = GRIDS.map((n) => h('button', { type: 'button', id: `grid-${n}`, 'data-grid': n, text: `${n}`,
                                                      title: t('gridOf', n), onclick: () => setGrid(n) }));
  devInput.addEventListener('change', loadTree);
  clear(el).append(
    h('h1', { text: t('live') }),
    h('div', { class: 'toolbar' },
      h('span', { class: 'muted', text: t('grid') }), ...gridButtons,
      h('button', { type: 'button', id: 'close-all', text: t('closeAll'), onclick: () => tiles.forEach((x) => x.close()) })),
    h('div', { class: 'live-layout' },
      h('section', { class: 'panel live-side' },
        h('h2', { text: t('catalog') }),
        h('div', { class: 'toolbar' }, devInput, devList,
          h('button', { type: 'button', id: 'live-load', text: t('load'), onclick: loadTree })),
        treeBox),
      gridEl,
      h('section', { class: 'panel live-side' }, h('h2', { text: t('ptz') }), ptzBox, ptzOut)),
    h('section', { class: 'panel', id: 'playback' },
      h('h2', { text: t('playbackTitle') }),
      h('div', { class: 'toolbar' }, h('label', {}, t('day'), ' ', dayInput),
        h('button', { type: 'button', id: 'rec-search', text: t('searchRecords'), onclick: searchRecords }), recOut),
      timeline));

  if (reuse) {
    for (const x of tiles) {
      x.onSelect = select;
      x.relabel();
    }
  }
  setGrid(reuse ? tiles.length : Number(sessionStorage.getItem('cascade.grid')) || 4);
  if (reuse) {
    if (reuse.selected && tiles.includes(reuse.selected)) select(reuse.selected);
    // moved into the new page in this same task, so they were never paused; play() in case
    for (const x of tiles) if (x.kind) x.video.play().catch(() => {});
  }
  if (args[0]) devInput.value = args[0];
  loadDevices();
  if (devInput.value) loadTree();
  if (args[0] && args[1] && !reuse) {
    picked = { device: args[0], channel: args[1], name: args[1] };
    recOut.textContent = t('recFor', picked.name, picked.channel);
    watch(picked);
  }

  const timer = setInterval(() => tiles.forEach((x) => x.sample()), STATS_MS);
  const off = onLive((kind, evs) => {
    if (kind !== 'events') return;
    for (const e of evs)
      if (e.type === 'gb.stream.stopped') tiles.forEach((x) => x.onStreamStopped(e.stream_id, e.reason));
  });
  el.dataset.loaded = '1';
  // keep: the page is re-rendered at once in another language; its tiles go on playing in it
  return ({ keep = false } = {}) => {
    alive = false;
    clearInterval(timer);
    off();
    if (keep) kept = { tiles, selected };
    else tiles.forEach((x) => x.close());
  };
}
