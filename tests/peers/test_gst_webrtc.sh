#!/usr/bin/env bash
# Interop with a second, independent WebRTC stack: GStreamer's webrtcbin
# (libnice ICE, its own DTLS/SRTP; Debian packages) publishes a VP8 test
# pattern and an Opus tone into a room over WHIP, and two webrtcbin viewers
# watch it over WHEP — one over UDP, one over ICE-TCP (RFC 6544) — each
# decoding video frames and audio. The room's events come exactly once per
# participant: joined when its peer connects, left with reason leave when it
# DELETEs its resource, the publisher's streams published and unpublished,
# the room created and closed.
#
# libnice gathers no loopback candidates, so the media port listens on the
# host's non-loopback IPv4 address (skipped, exit 77, where there is none).
source "$(dirname "$0")/lib.sh"

GST=$PEERS_DIR/gstwebrtc.py
HOST_IP=$(ip -4 -o addr show scope global 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | head -1)
if [ -z "$HOST_IP" ]; then
    echo "SKIPPED: no non-loopback IPv4 address: libnice (webrtcbin) gathers no loopback candidate"
    exit 77
fi
if ! /usr/bin/python3 -c 'import gi; gi.require_version("GstWebRTC", "1.0")' 2>/dev/null ||
    ! gst-inspect-1.0 webrtcbin >/dev/null 2>&1 || ! gst-inspect-1.0 nicesrc >/dev/null 2>&1; then
    echo "GStreamer WebRTC (webrtcbin, libnice, python3-gi) missing: run scripts/install-deps.sh"
    exit 1
fi

PORT=$(free_port); API_PORT=$(free_port); MEDIA_PORT=$(free_port); API_TOKEN=gsttoken
node_ini n "$PORT" "$API_PORT" 127.0.0.1 <<INI
[media]
enabled = yes
listen = $HOST_IP
port = $MEDIA_PORT
ice_tcp = yes
INI
start_cascade gst "$WORK/n.ini"
BASE=http://127.0.0.1:$API_PORT/api/v1
check "the media port is bound" wait_for 10 udp_bound "$MEDIA_PORT"

# count_events JQ_FILTER: how many recent events match.
count_events() { events_json 0 | jq "[.events[] | $1] | length"; }

# The publisher runs in the background for the whole test (the test
# DELETEs its resource at the end).
"$GST" publish "$BASE/whip/live" "$API_TOKEN" 120 >"$WORK/pub.log" 2>&1 &
PUB=$!
check "publisher: joined once its peer connected (ICE + DTLS)" \
    wait_for 30 has_event '.type == "room.participant.joined" and .room == "live"'
check "publisher: its video and audio streams published" \
    wait_for 10 sh -c "[ \$(curl -s -H 'Authorization: Bearer $API_TOKEN' '$BASE/events/recent?since=0' | jq '[.events[] | select(.type == \"room.stream.published\")] | length') -eq 2 ]"
PUB_ID=$(events_json 0 | jq -r '[.events[] | select(.type == "room.participant.joined")][0].participant')

check "viewer over UDP decodes 45 video frames and audio" \
    "$GST" view "$BASE/whep/live" "$API_TOKEN" 40 45
check "viewer over ICE-TCP decodes 30 video frames and audio" \
    "$GST" view "$BASE/whep/live" "$API_TOKEN" 40 30 --tcp
STATS=$(api GET /stats)
check "an ICE-TCP connection was used" jq_ok "$STATS" '.media.rtc.tcp_connections >= 1'
check "RTP was forwarded, none failed to unprotect" jq_ok "$STATS" '.media.rtp_forwarded > 100 and .media.rtc.srtp_errors == 0'
# GStreamer's dtlssrtpenc offers only AES128_CM_SHA1_80: the fallback profile works with a real peer
check "the GStreamer peers agreed on AES128_CM_SHA1_80" jq_ok "$STATS" '.media.rtc.srtp_cm >= 1 and .media.rtc.srtp_gcm == 0'
check "the publisher is still in the room" jq_ok "$(api GET /rooms/live)" "[.participants[] | select(.id == \"$PUB_ID\")] | length == 1"

# The publisher's resource DELETEd by its URL (as a WHIP client ends), then
# the process stopped: it leaves once, with reason leave.
check "DELETE of the publisher's WHIP resource" [ "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE \
    -H "Authorization: Bearer $API_TOKEN" "$BASE/whip/live/$PUB_ID")" = 200 ]
kill -TERM $PUB 2>/dev/null || true
wait $PUB 2>/dev/null || true
check "publisher: left once, reason leave" \
    wait_for 10 has_event ".type == \"room.participant.left\" and .participant == \"$PUB_ID\" and .reason == \"leave\""
check "the room closed" wait_for 15 has_event '.type == "room.closed" and .room == "live"'

check "three participants joined, each exactly once" \
    [ "$(count_events 'select(.type == "room.participant.joined") | .participant' | tr -d ' ')" = 3 ]
check "each joined participant left exactly once" \
    [ "$(events_json 0 | jq '[.events[] | select(.type == "room.participant.left") | .participant] | (length == 3 and (unique | length) == 3)')" = true ]
check "all three left with reason leave (their DELETE)" \
    [ "$(count_events 'select(.type == "room.participant.left" and .reason == "leave")')" = 3 ]
check "two streams unpublished, one room created and closed" \
    [ "$(count_events 'select(.type == "room.stream.unpublished")')/$(count_events 'select(.type == "room.created")')/$(count_events 'select(.type == "room.closed")')" = 2/1/1 ]

finish
