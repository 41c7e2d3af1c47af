/* twcc.js — what one browser participant does in the transport-cc test, as
 * window.tw, for the driver (tests/browser/twcc.mjs): publish a 1280x720
 * canvas whose content changes all over every frame (so the encoder uses
 * whatever bitrate its send-side estimate allows, up to 2.5 Mbit/s) with
 * WHIP, or view the room with WHEP. stats() sums getStats() up: what went
 * out and the estimate (candidate-pair availableOutgoingBitrate), or what
 * came in and was decoded. Events go to window.twEvents. The event log and
 * the WHIP/WHEP exchange are whip-page.js's. */
'use strict';

window.twEvents = [];
const note = eventLog(window.twEvents);
let pc = null;
let session = null; // {url, id}: our WHIP/WHEP session's Location
let api = null;
let drawing = null;

async function exchange(kind, room, name) {
  const a = await postOffer(pc, api, note, kind, room, new URLSearchParams({ name }).toString());
  const body = a.body;
  session = a.session;
  window.twAnswer = body; // the driver checks its feedback and extensions
  await pc.setRemoteDescription({ type: 'answer', sdp: body });
  note('answered', { kind, id: session.id });
  return session.id;
}

// Random blocks over the whole canvas each frame: hard to compress, so the
// encoder's output follows its target bitrate.
function draw(ctx) {
  for (let i = 0; i < 300; i++) {
    ctx.fillStyle = `rgb(${(Math.random() * 256) | 0},${(Math.random() * 256) | 0},${(Math.random() * 256) | 0})`;
    ctx.fillRect((Math.random() * 1280) | 0, (Math.random() * 720) | 0, 40 + ((Math.random() * 80) | 0), 40);
  }
}

// The send estimate from the moment the answer is in, every 50 ms for 30 s
// into window.twEstimates: its first value is Chromium's start, which the
// first feedback round trips (probing) leave quickly — a driver polling
// once a second would miss it.
window.twEstimates = [];
function watchEstimate() {
  const started = performance.now();
  const timer = setInterval(async () => {
    if (!pc || performance.now() - started > 30000) return clearInterval(timer);
    const report = await pc.getStats();
    report.forEach((s) => {
      if (s.type === 'candidate-pair' && s.nominated && typeof s.availableOutgoingBitrate === 'number') {
        const last = window.twEstimates[window.twEstimates.length - 1];
        if (!last || last.bps !== s.availableOutgoingBitrate)
          window.twEstimates.push({ ms: Math.round(performance.now() - started), bps: s.availableOutgoingBitrate });
      }
    });
  }, 50);
}

window.tw = {
  setApi(a) {
    api = a;
  },

  async publish(room, name) {
    document.getElementById('who').textContent = `publisher ${name} in ${room}`;
    const canvas = document.getElementById('canvas');
    const ctx = canvas.getContext('2d');
    draw(ctx);
    drawing = setInterval(() => draw(ctx), 33);
    const stream = canvas.captureStream(30);
    const video = stream.getVideoTracks()[0];
    video.contentHint = 'detail';
    pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: 'max-bundle' });
    pc.addEventListener('connectionstatechange', () => note('connection', { state: pc.connectionState }));
    const tr = pc.addTransceiver(video, { direction: 'sendonly', streams: [stream], sendEncodings: [{ maxBitrate: 2500000 }] });
    const id = await exchange('whip', room, name);
    watchEstimate();
    try {
      const p = tr.sender.getParameters();
      p.degradationPreference = 'maintain-resolution';
      await tr.sender.setParameters(p);
    } catch (e) {
      note('degradation-preference', { error: String(e) });
    }
    return id;
  },

  async view(room, name) {
    document.getElementById('who').textContent = `viewer ${name} in ${room}`;
    pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: 'max-bundle' });
    pc.addEventListener('connectionstatechange', () => note('connection', { state: pc.connectionState }));
    pc.addEventListener('track', (e) => {
      note('track', { kind: e.track.kind });
      if (e.track.kind === 'video') document.getElementById('video').srcObject = new MediaStream([e.track]);
    });
    pc.addTransceiver('video', { direction: 'recvonly' });
    return exchange('whep', room, name);
  },

  state() {
    return pc ? pc.connectionState : 'none';
  },

  // What went out (publisher) or came in (viewer), and the send estimate.
  async stats() {
    const out = { at: Date.now(), bytesSent: 0, framesEncoded: 0, frameWidth: 0, targetBitrate: 0,
      availableOutgoingBitrate: null, video: null };
    if (!pc) return out;
    const report = await pc.getStats();
    report.forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'video') {
        out.bytesSent += s.bytesSent || 0;
        out.framesEncoded += s.framesEncoded || 0;
        out.frameWidth = s.frameWidth || 0;
        out.targetBitrate = s.targetBitrate || 0;
        out.qualityLimitationReason = s.qualityLimitationReason;
      }
      if (s.type === 'inbound-rtp' && s.kind === 'video')
        out.video = {
          packetsReceived: s.packetsReceived || 0,
          packetsLost: s.packetsLost || 0,
          bytesReceived: s.bytesReceived || 0,
          framesDecoded: s.framesDecoded || 0,
          frameWidth: s.frameWidth || 0,
        };
      if (s.type === 'candidate-pair' && s.nominated && typeof s.availableOutgoingBitrate === 'number')
        out.availableOutgoingBitrate = s.availableOutgoingBitrate;
    });
    return out;
  },

  async leave() {
    if (drawing) clearInterval(drawing);
    if (!session) return 0;
    const r = await fetch(session.url, { method: 'DELETE', headers: { Authorization: `Bearer ${api.token}` } });
    note('left', { status: r.status });
    if (pc) pc.close();
    return r.status;
  },
};
