/* simulcast.js — what one browser participant does in the simulcast test,
 * as window.sim, for the driver (tests/browser/simulcast.mjs): publish the
 * fake camera at 1280x720 in three simulcast layers (rids q, h, f: a
 * quarter, half and full size) with WHIP, or view the room with WHEP —
 * optionally through the driver's UDP bottleneck (tests/browser/shaper.mjs),
 * by pointing the UDP candidate of cascade's answer at the relay's port
 * and dropping the TCP one, so that every packet of this viewer crosses it.
 * getStats() is summed up per layer (publisher) or for the one video stream
 * received (viewer). Events go to window.simEvents, so the driver waits on
 * conditions, not on timing. The event log and the WHIP/WHEP exchange are
 * whip-page.js's. */
'use strict';

window.simEvents = [];
const note = eventLog(window.simEvents);
let pc = null;
let session = null; // {url, id}: our WHIP/WHEP session's Location
let api = null;

// The layers, lowest first (cascade's layer 0 is the first rid of
// a=simulcast, which follows this order).
const LAYERS = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 100000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
  { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1500000 },
];

function watchPc(kind) {
  pc.addEventListener('connectionstatechange', () => note('connection', { state: pc.connectionState }));
  pc.addEventListener('track', (e) => {
    note('track', { kind: e.track.kind });
    if (kind !== 'whep') return;
    const el = document.getElementById(e.track.kind === 'video' ? 'video' : 'audio');
    el.srcObject = new MediaStream([e.track]);
    el.play().catch((err) => note('play-failed', { kind: e.track.kind, error: String(err) }));
  });
}

// Sends every UDP packet to relayPort instead of cascade's port; no TCP.
function throughRelay(sdp, relayPort) {
  const out = [];
  let rewritten = 0;
  for (const line of sdp.split('\r\n')) {
    const m = /^a=candidate:(\S+) (\d+) (udp|tcp) (\d+) (\S+) (\d+) (.*)$/i.exec(line);
    if (m && m[3].toLowerCase() === 'tcp') continue;
    if (m) {
      out.push(`a=candidate:${m[1]} ${m[2]} ${m[3]} ${m[4]} ${m[5]} ${relayPort} ${m[7]}`);
      rewritten++;
      continue;
    }
    out.push(line);
  }
  if (!rewritten) throw new Error('no UDP candidate in the answer to point at the relay');
  return out.join('\r\n');
}

async function exchange(kind, room, query, relayPort) {
  const a = await postOffer(pc, api, note, kind, room, query, () => {
    pc.close();
    pc = null;
  });
  const body = a.body;
  session = a.session;
  window.simAnswer = body; // the driver checks its feedback and extensions
  await pc.setRemoteDescription({ type: 'answer', sdp: relayPort ? throughRelay(body, relayPort) : body });
  note('answered', { kind, id: session.id, relay: relayPort || null });
  return session.id;
}

window.sim = {
  setApi(a) {
    api = a;
  },

  async publish(room, name) {
    document.getElementById('who').textContent = `simulcast publisher ${name} in ${room}`;
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: true,
      video: { width: { exact: 1280 }, height: { exact: 720 }, frameRate: 30 },
    });
    const video = stream.getVideoTracks()[0];
    // Keep the layers' sizes when the (loaded) machine runs short of CPU:
    // the test reads layers by their width.
    video.contentHint = 'detail';
    document.getElementById('video').srcObject = stream;
    pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: 'max-bundle' });
    watchPc('whip');
    pc.addTransceiver(stream.getAudioTracks()[0], { direction: 'sendonly', streams: [stream] });
    const tr = pc.addTransceiver(video, { direction: 'sendonly', streams: [stream], sendEncodings: LAYERS });
    const id = await exchange('whip', room, new URLSearchParams({ name }).toString());
    try {
      const p = tr.sender.getParameters();
      p.degradationPreference = 'maintain-resolution';
      await tr.sender.setParameters(p);
    } catch (e) {
      note('degradation-preference', { error: String(e) });
    }
    return id;
  },

  async view(room, name, relayPort) {
    document.getElementById('who').textContent = `viewer ${name} in ${room}${relayPort ? ' (shaped)' : ''}`;
    pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: 'max-bundle' });
    watchPc('whep');
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addTransceiver('video', { direction: 'recvonly' });
    return exchange('whep', room, new URLSearchParams({ name }).toString(), relayPort);
  },

  state() {
    return pc ? pc.connectionState : 'none';
  },

  // Publisher: per rid what went out. Viewer: the video received.
  async stats() {
    const out = { layers: {}, video: null, audioPackets: 0, outgoingBps: null };
    if (!pc) return out;
    const report = await pc.getStats();
    report.forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'video')
        out.layers[s.rid || '-'] = {
          ssrc: s.ssrc,
          packetsSent: s.packetsSent || 0,
          bytesSent: s.bytesSent || 0,
          framesEncoded: s.framesEncoded || 0,
          frameWidth: s.frameWidth || 0,
          frameHeight: s.frameHeight || 0,
          targetBitrate: s.targetBitrate || 0,
          active: s.active,
          qualityLimitationReason: s.qualityLimitationReason,
        };
      if (s.type === 'inbound-rtp' && s.kind === 'video')
        out.video = {
          ssrc: s.ssrc,
          packetsReceived: s.packetsReceived || 0,
          packetsLost: s.packetsLost || 0,
          bytesReceived: s.bytesReceived || 0,
          framesDecoded: s.framesDecoded || 0,
          keyFramesDecoded: s.keyFramesDecoded || 0,
          frameWidth: s.frameWidth || 0,
          frameHeight: s.frameHeight || 0,
          nackCount: s.nackCount || 0,
          pliCount: s.pliCount || 0,
        };
      if (s.type === 'inbound-rtp' && s.kind === 'audio') out.audioPackets += s.packetsReceived || 0;
      if (s.type === 'candidate-pair' && s.nominated && s.availableOutgoingBitrate)
        out.outgoingBps = s.availableOutgoingBitrate;
    });
    const v = out.video;
    if (v) document.getElementById('size').textContent = `${v.frameWidth}x${v.frameHeight} decoded ${v.framesDecoded}`;
    return out;
  },

  async leave() {
    if (!session) return 0;
    const r = await fetch(session.url, { method: 'DELETE', headers: { Authorization: `Bearer ${api.token}` } });
    note('left', { status: r.status });
    if (pc) pc.close();
    return r.status;
  },
};
