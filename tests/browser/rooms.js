/* rooms.js — what one browser participant does, as window.room, for the
 * driver (tests/browser/rooms.mjs): publish the fake camera and microphone
 * with WHIP, or view a room with WHEP (RFC 9725 style: one POST of a complete
 * offer, 201 with the answer and a Location; no trickle ICE, as cascade is
 * ICE-lite and its answer holds every candidate), report getStats(), and
 * leave with DELETE on the Location. Events of interest go to
 * window.roomEvents as {ev, ...} with the time since the page loaded, so the
 * driver waits on conditions, not on timing. The event log and the POST of
 * the offer are whip-page.js's. */
'use strict';

window.roomEvents = [];
const note = eventLog(window.roomEvents);
let pc = null;
let session = null; // {url, id}: the Location of our WHIP/WHEP session
let api = null;

function watchPc(kind) {
  pc.addEventListener('connectionstatechange', () => note('connection', { state: pc.connectionState }));
  pc.addEventListener('iceconnectionstatechange', () => note('ice', { state: pc.iceConnectionState }));
  pc.addEventListener('track', (e) => {
    note('track', { kind: e.track.kind });
    if (kind !== 'whep') return;
    // Each track on its own element, played: Chromium decodes remote audio
    // (and counts totalAudioEnergy) only while something plays it out.
    const el = document.getElementById(e.track.kind === 'video' ? 'video' : 'audio');
    el.srcObject = new MediaStream([e.track]);
    el.play().catch((err) => note('play-failed', { kind: e.track.kind, error: String(err) }));
  });
}

// POSTs the offer to base/kind/room (with query), applies the answer.
async function exchange(kind, room, query) {
  // a refused offer leaves nothing on the server: start afresh next time
  const { body, session: s, location, r } = await postOffer(pc, api, note, kind, room, query, () => pc.close());
  session = s;
  await pc.setRemoteDescription({ type: 'answer', sdp: body });
  note('answered', { kind, location, id: session.id, contentType: r.headers.get('Content-Type') });
  return session.id;
}

window.room = {
  // {base, token}: the API's origin (http://127.0.0.1:PORT) and Bearer token.
  setApi(a) {
    api = a;
  },

  async publish(room, name, user) {
    document.getElementById('who').textContent = `publisher ${name} in ${room}`;
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 320, height: 240 } });
    document.getElementById('video').srcObject = stream;
    pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: 'max-bundle' });
    watchPc('whip');
    for (const t of stream.getTracks()) pc.addTransceiver(t, { direction: 'sendonly', streams: [stream] });
    const q = new URLSearchParams({ name, user }).toString();
    return exchange('whip', room, q);
  },

  async view(room, name, publisher) {
    document.getElementById('who').textContent = `viewer ${name} in ${room}`;
    pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: 'max-bundle' });
    watchPc('whep');
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addTransceiver('video', { direction: 'recvonly' });
    const q = new URLSearchParams({ name });
    if (publisher) q.set('participant', publisher);
    return exchange('whep', room, q.toString());
  },

  state() {
    return pc ? pc.connectionState : 'none';
  },

  // What arrived so far: video frames decoded, audio energy, packets, and
  // the SRTP cipher the transport agreed on.
  async stats() {
    const out = {
      framesDecoded: 0,
      totalAudioEnergy: 0,
      videoPackets: 0,
      audioPackets: 0,
      sentPackets: 0,
      srtpCipher: null, // the transport's negotiated DTLS-SRTP profile
    };
    if (!pc) return out;
    const report = await pc.getStats();
    report.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        out.framesDecoded += s.framesDecoded || 0;
        out.videoPackets += s.packetsReceived || 0;
      }
      if (s.type === 'inbound-rtp' && s.kind === 'audio') {
        out.totalAudioEnergy += s.totalAudioEnergy || 0;
        out.audioPackets += s.packetsReceived || 0;
      }
      if (s.type === 'outbound-rtp') out.sentPackets += s.packetsSent || 0;
      if (s.type === 'transport' && s.srtpCipher) out.srtpCipher = s.srtpCipher;
    });
    return out;
  },

  // DELETE on our Location: the clean way out (reason leave).
  async leave() {
    if (!session) return 0;
    const r = await fetch(session.url, { method: 'DELETE', headers: { Authorization: `Bearer ${api.token}` } });
    note('left', { status: r.status });
    if (pc) pc.close();
    return r.status;
  },
};
