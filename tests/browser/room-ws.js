/* room-ws.js — browser participants of cascade's room WebSocket
 * (GET /api/v1/rooms/{room}/ws, docs/api.md), as window.rws, for the
 * driver tests/browser/room-ws.mjs. A page holds named sockets; each
 * socket is one participant that can publish the fake camera and
 * microphone and subscribe to others, one RTCPeerConnection each, with
 * complete (non-trickle) offers as cascade is ICE-lite. Every message a
 * socket gets is kept in order, so the driver waits on conditions. */
'use strict';

const socks = {}; // name -> {ws, msgs, closed, nextId, pcs: {key: pc}}

function log(line) {
  document.getElementById('log').textContent += line + '\n';
}

function sock(name) {
  const s = socks[name];
  if (!s) throw new Error(`no socket ${name}`);
  return s;
}

async function completeOffer(pc) {
  await pc.setLocalDescription(await pc.createOffer());
  if (pc.iceGatheringState !== 'complete') {
    await new Promise((resolve) => {
      pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
      setTimeout(resolve, 5000); // loopback host candidates: whatever came by then is enough
    });
  }
  return pc.localDescription.sdp;
}

// Sends msg with a fresh id and resolves with the reply that names it ("re").
function request(name, msg, timeoutMs = 20000) {
  const s = sock(name);
  const id = `r${s.nextId++}`;
  const from = s.msgs.length;
  s.ws.send(JSON.stringify(Object.assign({ id }, msg)));
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const poll = () => {
      const m = s.msgs.slice(from).find((x) => x.re === id);
      if (m) return resolve(m);
      if (s.closed) return reject(new Error(`${name}: closed (${s.closed.code} ${s.closed.reason}) before a reply to ${msg.type}`));
      if (Date.now() > deadline) return reject(new Error(`${name}: no reply to ${msg.type} in ${timeoutMs} ms`));
      setTimeout(poll, 50);
    };
    poll();
  });
}

function playTrack(e) {
  const el = document.createElement(e.track.kind === 'video' ? 'video' : 'audio');
  el.autoplay = true;
  el.muted = false;
  el.srcObject = new MediaStream([e.track]);
  document.getElementById('media').appendChild(el);
  el.play().catch((err) => log(`play failed: ${err}`));
}

window.rws = {
  // Opens socket name on url; resolves once open, rejects if it closes first.
  open(name, url) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      const s = { ws, msgs: [], closed: null, nextId: 1, pcs: {} };
      socks[name] = s;
      ws.onmessage = (ev) => {
        let m;
        try {
          m = JSON.parse(ev.data);
        } catch (e) {
          m = { type: 'unparsable', data: String(ev.data) };
        }
        s.msgs.push(m);
        log(`${name} < ${ev.data.length > 300 ? ev.data.slice(0, 300) + '…' : ev.data}`);
      };
      ws.onopen = () => resolve(true);
      ws.onclose = (ev) => {
        s.closed = { code: ev.code, reason: ev.reason };
        log(`${name} closed ${ev.code} ${ev.reason}`);
        reject(new Error(`${name}: closed ${ev.code} before opening`));
      };
    });
  },

  request,
  send(name, text) {
    sock(name).ws.send(text);
  },
  sendBinary(name, n) {
    sock(name).ws.send(new Uint8Array(n));
  },
  msgs(name) {
    return sock(name).msgs;
  },
  closed(name) {
    return sock(name).closed;
  },
  close(name) {
    sock(name).ws.close(1000, 'bye');
  },

  async join(name, display) {
    return request(name, { type: 'join', name: display });
  },

  // The fake camera and microphone, published through the socket.
  async publish(name) {
    const s = sock(name);
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 320, height: 240 } });
    const pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: 'max-bundle' });
    s.pcs.pub = pc;
    for (const t of stream.getTracks()) pc.addTransceiver(t, { direction: 'sendonly', streams: [stream] });
    const r = await request(name, { type: 'publish', sdp: await completeOffer(pc) });
    if (r.type !== 'answer') throw new Error(`publish: ${JSON.stringify(r)}`);
    await pc.setRemoteDescription({ type: 'answer', sdp: r.sdp });
    return r.type;
  },

  async subscribe(name, participant) {
    const s = sock(name);
    const pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: 'max-bundle' });
    s.pcs[participant] = pc;
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addEventListener('track', playTrack);
    const r = await request(name, { type: 'subscribe', participant, sdp: await completeOffer(pc) });
    if (r.type !== 'answer' || r.participant !== participant) throw new Error(`subscribe: ${JSON.stringify(r)}`);
    await pc.setRemoteDescription({ type: 'answer', sdp: r.sdp });
    return r.type;
  },

  // Closes one peer connection (DTLS close_notify): the socket stays.
  closePc(name, key) {
    const s = sock(name);
    if (s.pcs[key]) s.pcs[key].close();
    delete s.pcs[key];
  },

  state(name, key) {
    const pc = sock(name).pcs[key];
    return pc ? pc.connectionState : 'none';
  },

  async stats(name, key) {
    const out = { framesDecoded: 0, totalAudioEnergy: 0 };
    const pc = sock(name).pcs[key];
    if (!pc) return out;
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') out.framesDecoded += s.framesDecoded || 0;
      if (s.type === 'inbound-rtp' && s.kind === 'audio') out.totalAudioEnergy += s.totalAudioEnergy || 0;
    });
    return out;
  },
};
