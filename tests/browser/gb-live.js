/* gb-live.js — a WHEP viewer of a GB camera's live stream, as window.gbLive,
 * for tests/browser/gb-live.mjs: one POST of a complete offer (recvonly
 * video, and recvonly audio: Chromium offers PCMA/PCMU among its codecs) to
 * the stream's WHEP URL, the answer applied, getStats() of the inbound video
 * and audio, DELETE on the Location to leave. Connection states and the
 * track's end go to window.gbEvents with the time since watch() began, so
 * the driver waits on conditions and can say how long the first frame took. */
'use strict';

window.gbEvents = [];
let pc = null;
let session = null;
let t0 = performance.now();

function note(ev, extra) {
  const e = Object.assign({ ev, ms: Math.round(performance.now() - t0) }, extra || {});
  window.gbEvents.push(e);
  document.getElementById('log').textContent += JSON.stringify(e) + '\n';
}

async function completeOffer() {
  await pc.setLocalDescription(await pc.createOffer());
  if (pc.iceGatheringState !== 'complete') {
    await new Promise((resolve) => {
      pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
      setTimeout(resolve, 5000); // loopback: what was gathered by then is enough
    });
  }
  return pc.localDescription.sdp;
}

window.gbLive = {
  // Watches url (the live answer's "webrtc") with the Bearer token; resolves
  // with the viewer's id once the answer is applied.
  async watch(url, token) {
    t0 = performance.now();
    pc = new RTCPeerConnection();
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addEventListener('connectionstatechange', () => note('connection', { state: pc.connectionState }));
    pc.addEventListener('track', (e) => {
      note('track', { kind: e.track.kind });
      e.track.addEventListener('ended', () => note('track-ended'));
      // The video plays muted; the audio in an element of its own, not
      // muted: Chromium applies the element's volume before it measures
      // audioLevel, so a muted element reports silence.
      const el = document.getElementById(e.track.kind === 'audio' ? 'audio' : 'video');
      el.srcObject = new MediaStream([e.track]);
      el.play().catch((err) => note('play-failed', { kind: e.track.kind, error: String(err) }));
    });
    const offer = await completeOffer();
    const r = await fetch(url, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/sdp' },
      body: offer,
    });
    const body = await r.text();
    if (r.status !== 201) {
      note('refused', { status: r.status, body });
      throw new Error(`WHEP ${url}: HTTP ${r.status} ${body}`);
    }
    const location = r.headers.get('Location');
    if (!location) throw new Error('201 without a readable Location');
    session = { url: new URL(location, url).toString(), token };
    await pc.setRemoteDescription({ type: 'answer', sdp: body });
    note('answered', { location });
    return location.split('/').pop();
  },
  state() {
    return pc ? pc.connectionState : 'none';
  },
  // The DTLS transport's state ('closed' once the server's close_notify came).
  dtlsState() {
    const r = pc && pc.getReceivers()[0];
    return r && r.transport ? r.transport.state : 'none';
  },
  // The inbound video's and audio's counters (zeros before any).
  async stats() {
    const out = { framesDecoded: 0, frameWidth: 0, frameHeight: 0, packetsReceived: 0, ms: 0,
      audioPacketsReceived: 0, totalSamplesReceived: 0, concealedSamples: 0, audioLevel: 0, audioCodec: '' };
    if (!pc) return out;
    const report = await pc.getStats();
    report.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        out.framesDecoded = s.framesDecoded || 0;
        out.frameWidth = s.frameWidth || 0;
        out.frameHeight = s.frameHeight || 0;
        out.packetsReceived = s.packetsReceived || 0;
      }
      if (s.type === 'inbound-rtp' && s.kind === 'audio') {
        out.audioPacketsReceived = s.packetsReceived || 0;
        out.totalSamplesReceived = s.totalSamplesReceived || 0;
        out.concealedSamples = s.concealedSamples || 0;
        out.audioLevel = s.audioLevel || 0;
        const c = s.codecId && report.get(s.codecId);
        out.audioCodec = c ? `${c.mimeType}/${c.clockRate}` : '';
      }
    });
    out.ms = Math.round(performance.now() - t0);
    return out;
  },
  // DELETE on the Location (the server ends the session), then close.
  async leave() {
    if (!session) return 0;
    const r = await fetch(session.url, { method: 'DELETE', headers: { Authorization: `Bearer ${session.token}` } });
    pc.close();
    return r.status;
  },
};
