#!/usr/bin/env bash
# The SFU with real browsers (issue 12): headless Chromium publishes its fake
# camera and microphone into a room with WHIP and three pages view it with
# WHEP (tests/browser/rooms.mjs, from an origin of its own, so through CORS);
# every viewer decodes rising video frames and audio energy; a viewer page
# closed abruptly gives exactly one room.participant.left (disconnected or
# consent-expired); a publisher reloading its page gives one left and one
# joined; every participant is joined and left exactly once. Skipped (77)
# only when Chromium cannot start.
source "$(dirname "$0")/lib.sh"

browser_driver rooms.mjs

CONSENT_S=10   # a vanished peer is gone this soon; healthy ones refresh consent every few seconds
API_TOKEN=roomsbrowser
media_node rooms "consent_timeout_s = $CONSENT_S"

OUT=$WORK/rooms.out
run_driver "$OUT" "$WORK/rooms-driver.log" --api "http://127.0.0.1:$API_PORT" --token "$API_TOKEN" --room demo \
    --consent-timeout-ms $((CONSENT_S * 1000)) --timeout 30000 --workdir "$WORK/browser"

check "the publisher connected" step_ok publisher-connected
check "three viewers connected" step_ok viewers-connected '.ids | length == 3'
check "every viewer decoded rising video frames and audio energy (getStats)" step_ok media \
    '.stats | to_entries | length == 3 and all(.value.last.framesDecoded > .value.first.framesDecoded and
       .value.last.totalAudioEnergy > .value.first.totalAudioEnergy)'
check "room.participant.joined for all four" step_ok joined
check "the closed viewer page: exactly one left, disconnected or consent-expired" step_ok viewer-left-once \
    '.reason == "disconnected" or .reason == "consent-expired"'
check "the publisher's reload: one left (old) and one joined (new)" step_ok publisher-rejoined
check "the others left with DELETE (reason leave)" step_ok left
check "exactly one joined and one left per participant over the run" step_ok exactly-once

# The same from the events API, independently of the driver's reading.
since=$(jq -s -r '.[] | select(.step == "http") | .since' "$OUT")
events_json "${since:-0}" >"$WORK/events.json"
check "events: five participants, each joined once and left once" jq -e '
    [.events[] | select(.room == "demo" and (.type == "room.participant.joined" or .type == "room.participant.left"))]
    | group_by(.participant) | length == 5 and all(
        ([.[] | select(.type == "room.participant.joined")] | length) == 1 and
        ([.[] | select(.type == "room.participant.left")] | length) == 1)' "$WORK/events.json"
check "events: room.created once for demo" \
    jq -e '[.events[] | select(.type == "room.created" and .room == "demo")] | length == 1' "$WORK/events.json"
check "stats: the SFU forwarded RTP and completed DTLS handshakes" \
    jq_ok "$(api GET /stats)" '.media.rtp_forwarded > 0 and .media.rtc.dtls_handshakes >= 5'
# Chromium offers AEAD_AES_128_GCM, which cascade prefers: every handshake agreed on it
check "stats: every DTLS-SRTP handshake agreed on AEAD_AES_128_GCM" \
    jq_ok "$(api GET /stats)" '.media.rtc.srtp_gcm >= 5 and .media.rtc.srtp_cm == 0'

finish
