#!/usr/bin/env bash
# test_gb_live_webrtc.sh — GB/T 28181 live view over WebRTC (issue 13), with
# cascade-gbsim as the camera and headless Chromium as the player
# (tests/browser/gb-live.mjs):
#  - the live answer names the stream's WHEP URL; a tab plays it: frames
#    decoded, 320 wide, and rising;
#  - a second tab reuses the upstream: exactly one INVITE reaches the device;
#  - both tabs gone (one DELETE, one page closed) → the stream stops after
#    [media] idle_stop with reason idle, the device gets one BYE;
#  - the stream stopped while a tab plays: the tab's peer ends (its DTLS
#    transport closed by our close_notify, the connection down);
#  - cascadectl gb live prints the WHEP URL; refusals (404, 401, 400).
# (A playback watched over WebRTC, and its one-viewer 409: test_console_live.)
# Skipped (77) only when Chromium cannot start.
source "$(dirname "$0")/lib.sh"
GBSIM=$BUILD_DIR/cascade-gbsim
browser_driver gb-live.mjs

SIP=$(free_port); API_PORT=$(free_port); MEDIA_PORT=$(free_port); API_TOKEN=tok
UPPER=34020000002000000001
DEV=34020000001320000001
CH1=34020000001310000001
CH2=34020000001310000002
CONSENT_S=10
gb_live_top 2 <<EOF
[media]
enabled = yes
listen = 127.0.0.1
port = $MEDIA_PORT
consent_timeout_s = $CONSENT_S
idle_stop = 6
EOF

OUT=$WORK/gb-live.out
run_driver "$OUT" "$WORK/driver.log" --api "http://127.0.0.1:$API_PORT" --token "$API_TOKEN" --device "$DEV" \
    --channel "$CH1" --channel2 "$CH2" --timeout 30000 --gone-ms $(((CONSENT_S * 2 + 6) * 1000 + 30000)) \
    --workdir "$WORK/browser"
SID=$(jq -s -r '.[] | select(.step == "live") | .sid' "$OUT")
check "the live answer names the WHEP URL" step_ok live ".webrtc == \"http://127.0.0.1:$API_PORT/api/v1/gb/streams/$SID/whep\""
check "a tab decodes the camera at 320x240" step_ok first '.width == 320 and .height == 240'
check "its framesDecoded keeps rising" step_ok rising '.to > .from'
check "the camera's G.711 plays as PCMA/8000: packets keep coming, samples decoded, the tone's level (about 8000/32767)" \
    step_ok audio '.codec == "audio/PCMA/8000" and .to > .from and .samples > 0 and .level > 0.2 and .level < 0.3'
check "a second tab decodes the same stream" step_ok second '.width == 320'
check "the stream counts two WebRTC viewers" step_ok viewers '.webrtc == 2'
check "viewers got the newest GOP when their peer connected" step_ok viewers '.source.gop_replays >= 1'
check "exactly one INVITE reached the device for the channel" test "$(grep -c "INVITE for $CH1: " "$WORK/gbsim.log")" = 1
check "both tabs gone: the stream stopped with reason idle" step_ok idle '.reason == "idle"'
check "the device saw one BYE" wait_for 10 bash -c "test \$(grep -c 'stream of $CH1 ended: BYE from the upper' '$WORK/gbsim.log') = 1"
check "media.viewer.left events name the webrtc output" \
    has_event "select(.type==\"media.viewer.left\" and .stream_id==\"$SID\" and .output==\"webrtc\")"
check "a tab plays the second channel" step_ok stop-playing '.width == 320'
check "the stream stopped under it: the tab's DTLS transport is closed (close_notify) and its connection down" step_ok stop-seen \
    '.dtls == "closed" and .state != "connected"'

# cascadectl prints the WHEP URL; refusals.
ctl_webrtc() { ctl gb live "$DEV" "$CH1" | grep -q "^webrtc  http://127.0.0.1:$API_PORT/api/v1/gb/streams/[0-9]*/whep"; }
check "cascadectl gb live prints the webrtc (WHEP) URL" ctl_webrtc
whep_code() { curl -s -o /dev/null -w '%{http_code}' -X POST "$@" --data-binary $'v=0\r\n'; }
check "WHEP of an unknown stream: 404" \
    test "$(whep_code -H "Authorization: Bearer $API_TOKEN" -H 'Content-Type: application/sdp' \
        "http://127.0.0.1:$API_PORT/api/v1/gb/streams/0000000000/whep")" = 404
check "WHEP without the token: 401" \
    test "$(whep_code -H 'Content-Type: application/sdp' "http://127.0.0.1:$API_PORT/api/v1/gb/streams/$SID/whep")" = 401
PB=$(api POST "/gb/devices/$DEV/channels/$CH1/play" '{"start":"2026-12-01T10:00:00","end":"2026-12-01T10:10:00"}' | jget 'd.get("stream_id","")')
check "WHEP of a playback with a bad offer: 400 (a playback has a WebRTC output; the offer is refused)" \
    test "$(whep_code -H "Authorization: Bearer $API_TOKEN" -H 'Content-Type: application/sdp' \
        "http://127.0.0.1:$API_PORT/api/v1/gb/streams/$PB/whep")" = 400
api DELETE "/gb/streams/$PB" >/dev/null
finish
