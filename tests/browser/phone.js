/* phone.js — what one browser phone does, as window.phone, for the driver
 * (tests/browser/jssip-call.mjs). Every JsSIP event of interest is pushed to
 * window.phoneEvents as {ev, ...} with the time since the page loaded, so
 * the driver waits on conditions over that list rather than on timing. */
'use strict';

window.phoneEvents = [];
const t0 = performance.now();
let ua = null;
let session = null;

function note(ev, extra) {
  const e = Object.assign({ ev, ms: Math.round(performance.now() - t0) }, extra || {});
  window.phoneEvents.push(e);
  document.getElementById('log').textContent += JSON.stringify(e) + '\n';
}

// start() sets video false for an audio-only phone.
const mediaConstraints = { audio: true, video: true };
// Loopback only: no STUN, host candidates are enough (Chromium runs with
// --allow-loopback-in-peer-connection).
const pcConfig = { iceServers: [] };

function showStreams(s) {
  const pc = s.connection;
  const local = new MediaStream();
  pc.getSenders().forEach((x) => x.track && local.addTrack(x.track));
  document.getElementById('local').srcObject = local;
  const remote = new MediaStream();
  pc.getReceivers().forEach((x) => x.track && remote.addTrack(x.track));
  document.getElementById('remote').srcObject = remote;
}

function watch(s) {
  session = s;
  note('session', { direction: s.direction, remote: s.remote_identity && s.remote_identity.uri.toString() });
  s.on('progress', (e) => note('progress', { code: e.response ? e.response.status_code : null }));
  s.on('accepted', () => note('accepted'));
  s.on('confirmed', () => {
    note('confirmed');
    showStreams(s);
  });
  s.on('ended', (e) => note('ended', { originator: e.originator, cause: e.cause }));
  s.on('failed', (e) => note('failed', { originator: e.originator, cause: e.cause }));
  s.on('peerconnection', () => note('peerconnection'));
}

window.phone = {
  /* user: {uri, password, ws, name, debug, video}: connects and registers. */
  start(user) {
    mediaConstraints.video = user.video !== false;
    document.getElementById('who').textContent = user.uri;
    if (user.debug) JsSIP.debug.enable('JsSIP:*');
    else JsSIP.debug.disable('JsSIP:*');
    const socket = new JsSIP.WebSocketInterface(user.ws);
    ua = new JsSIP.UA({
      sockets: [socket],
      uri: user.uri,
      password: user.password || undefined,
      display_name: user.name || undefined,
      register: true,
      register_expires: 300,
      session_timers: false,
      // JsSIP retries a lost connection forever; the driver decides when a
      // failure is final, so keep the retries slow and quiet.
      connection_recovery_min_interval: 2,
      connection_recovery_max_interval: 30,
    });
    ua.on('connecting', () => note('connecting'));
    ua.on('connected', () => note('connected'));
    ua.on('disconnected', (e) => note('disconnected', { error: !!e.error, code: e.code, reason: e.reason }));
    ua.on('registered', (e) => note('registered', { code: e.response.status_code }));
    ua.on('unregistered', () => note('unregistered'));
    ua.on('registrationFailed', (e) => note('registrationFailed', { cause: e.cause, code: e.response ? e.response.status_code : null }));
    ua.on('newRTCSession', (e) => {
      if (e.originator === 'remote') {
        note('incoming', { from: e.request.from.uri.toString(), ruri: e.request.ruri.toString() });
      }
      watch(e.session);
    });
    ua.start();
  },

  call(target) {
    // newRTCSession fires inside ua.call(), so watch() already has it.
    ua.call(target, { mediaConstraints, pcConfig });
  },

  answer() {
    session.answer({ mediaConstraints, pcConfig });
  },

  hangup() {
    if (session && !session.isEnded()) session.terminate();
  },

  stop() {
    if (ua) ua.stop();
  },

  /* Packets received so far on the call's inbound RTP streams, by kind. */
  async stats() {
    const out = { audio: 0, video: 0, framesDecoded: 0 };
    if (!session || !session.connection) return out;
    const report = await session.connection.getStats();
    report.forEach((r) => {
      if (r.type !== 'inbound-rtp') return;
      const kind = r.kind || r.mediaType;
      if (kind === 'audio' || kind === 'video') out[kind] += r.packetsReceived || 0;
      if (kind === 'video') out.framesDecoded += r.framesDecoded || 0;
    });
    return out;
  },
};
