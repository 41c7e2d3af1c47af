/* whip-page.js — the scaffolding the one-participant WHIP/WHEP test pages
 * share (rooms.js, simulcast.js, twcc.js; each page loads this script
 * first): the event log the drivers wait on, the complete offer, and its
 * POST to the API with the session the answer's Location names. A plain
 * script: its three functions are globals of the page. */
'use strict';

// note(ev, extra) for the page: pushes {ev, ms since now, ...extra} to events
// and shows it in #log, so a failure screenshot says what happened.
function eventLog(events) {
  const t0 = performance.now();
  return (ev, extra) => {
    const e = Object.assign({ ev, ms: Math.round(performance.now() - t0) }, extra || {});
    events.push(e);
    document.getElementById('log').textContent += JSON.stringify(e) + '\n';
  };
}

// pc's complete offer: no trickle (cascade is ICE-lite and answers with
// every candidate in one POST each way), so wait for ICE gathering; loopback
// host candidates come at once, and what was gathered in 5 s is enough.
async function completeOffer(pc) {
  await pc.setLocalDescription(await pc.createOffer());
  if (pc.iceGatheringState !== 'complete') {
    await new Promise((resolve) => {
      const done = () => pc.iceGatheringState === 'complete' && resolve();
      pc.addEventListener('icegatheringstatechange', done);
      setTimeout(resolve, 5000);
    });
  }
  return pc.localDescription.sdp;
}

// POSTs pc's complete offer to the API ({base, token}) as kind (whip or
// whep) for room, with query (a URL query string, may be empty). Anything
// but 201 is noted ('refused'), handed to onRefused (if given) and thrown.
// Returns {body: the answer, session: {url, id} from the Location (readable
// cross-origin thanks to Access-Control-Expose-Headers), location, r}; the
// caller applies the answer.
async function postOffer(pc, api, note, kind, room, query, onRefused) {
  const offer = await completeOffer(pc);
  const url = `${api.base}/api/v1/${kind}/${encodeURIComponent(room)}${query ? '?' + query : ''}`;
  const r = await fetch(url, {
    method: 'POST',
    headers: { Authorization: `Bearer ${api.token}`, 'Content-Type': 'application/sdp' },
    body: offer,
  });
  const body = await r.text();
  if (r.status !== 201) {
    note('refused', { status: r.status, body });
    if (onRefused) onRefused();
    throw new Error(`${kind} ${room}: HTTP ${r.status} ${body}`);
  }
  const location = r.headers.get('Location');
  if (!location) throw new Error(`${kind} ${room}: 201 without a readable Location`);
  const session = { url: new URL(location, api.base).toString(), id: location.split('/').pop() };
  return { body, session, location, r };
}
