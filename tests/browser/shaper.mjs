// shaper.mjs — a UDP bottleneck between one Chromium peer connection and
// cascade's media port, for tests/browser/simulcast.mjs: the page sends to
// the relay's port instead of cascade's (its answer's candidate rewritten),
// the relay forwards everything it gets from the page to cascade from a
// socket of its own, and what cascade sends back goes to the page's address
// through a token bucket of rate bits per second. Packets wait in a queue
// (so delay rises before anything is lost, as at a real bottleneck) bounded
// in bytes; a packet that does not fit is dropped. The page → cascade way
// (STUN, RTCP, nothing heavy) is not limited.
//
//   const sh = await startShaper({ target: { host: '127.0.0.1', port }, rate: 300000, queueBytes: 30000 });
//   sh.port   // where the page must send
//   sh.stats()  // {toPage: {packets, bytes, dropped}, toServer: {packets, bytes}, queued}
//   sh.close()
import dgram from 'node:dgram';

const TICK_MS = 5;

function bind(sock, port) {
  return new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(port, '127.0.0.1', () => {
      sock.off('error', reject);
      resolve();
    });
  });
}

export async function startShaper({ target, rate, queueBytes, burstBytes = 1500 }) {
  const front = dgram.createSocket('udp4'); // faces the page
  const back = dgram.createSocket('udp4'); // faces cascade
  await bind(front, 0);
  await bind(back, 0);

  let page = null; // the page's address, from its first packet
  const queue = []; // packets for the page, oldest first
  let queued = 0;
  let tokens = burstBytes; // bytes the bucket lets through now
  let last = process.hrtime.bigint();
  const st = { toPage: { packets: 0, bytes: 0, dropped: 0 }, toServer: { packets: 0, bytes: 0 } };

  front.on('message', (msg, rinfo) => {
    page = { address: rinfo.address, port: rinfo.port };
    st.toServer.packets++;
    st.toServer.bytes += msg.length;
    back.send(msg, target.port, target.host);
  });

  back.on('message', (msg) => {
    if (queued + msg.length > queueBytes) {
      st.toPage.dropped++;
      return;
    }
    queue.push(msg);
    queued += msg.length;
    drain();
  });

  // Refills the bucket for the time gone by and sends what it covers.
  function drain() {
    const now = process.hrtime.bigint();
    tokens = Math.min(burstBytes, tokens + (Number(now - last) / 1e9) * (rate / 8));
    last = now;
    while (queue.length && tokens >= queue[0].length && page) {
      const m = queue.shift();
      queued -= m.length;
      tokens -= m.length;
      st.toPage.packets++;
      st.toPage.bytes += m.length;
      front.send(m, page.port, page.address);
    }
  }
  const timer = setInterval(drain, TICK_MS);

  return {
    port: front.address().port,
    stats: () => ({ toPage: { ...st.toPage }, toServer: { ...st.toServer }, queued, rate }),
    // The bottleneck widens or narrows from now on (bits per second).
    setRate(bps) {
      drain();
      rate = bps;
    },
    close() {
      clearInterval(timer);
      front.close();
      back.close();
    },
  };
}
