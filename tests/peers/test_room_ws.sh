#!/usr/bin/env bash
# The room WebSocket with join tokens in headless Chromium (issue 12,
# "Signaling"; tests/browser/room-ws.mjs): refused upgrades (401 for missing,
# garbage, tampered, another room's and expired tokens; 400 for a bad room),
# a publisher page and a subscriber page joined with tokens, frames decoded,
# the publishing peer ended alone (not the participant) and published again,
# error replies on a socket that stays usable, the participant cap, a kick,
# 1009 and 1003 closes, the publisher's page closed giving one
# participant.left; then, from the events API independently, exactly one
# joined and one left per participant. Skipped (77) only when Chromium
# cannot start.
source "$(dirname "$0")/lib.sh"

browser_driver room-ws.mjs

CONSENT_S=10
API_TOKEN=roomws
media_node roomws "consent_timeout_s = $CONSENT_S" "max_participants_per_room = 4" \
    "token_secret = a-secret-for-the-test"

OUT=$WORK/room-ws.out
run_driver "$OUT" "$WORK/room-ws-driver.log" --api "http://127.0.0.1:$API_PORT" --token "$API_TOKEN" --room demo \
    --consent-timeout-ms $((CONSENT_S * 1000)) --timeout 30000 --workdir "$WORK/browser"

check "join tokens minted (201) and refused without Bearer" step_ok tokens
check "upgrades: 401 without or with bad/tampered/other-room/expired tokens, 400 bad room, 101 with a token or Bearer" \
    step_ok refusals '.answers | length == 9'
check "B decoded A's rising video frames and audio energy through the WebSocket" step_ok b-decodes \
    '.stats.last.framesDecoded > .stats.first.framesDecoded'
check "bad messages get error replies; the socket stays usable" step_ok bad-messages '.still_open == "pong"'
check "A's publishing peer closed alone: its streams and B's subscription end, A stays, publishes again, B decodes again" \
    step_ok republish '(.publish_ended == "disconnected" or .publish_ended == "consent-expired") and .unsubscribed == "unpublished"
       and .stats.last.framesDecoded > .stats.first.framesDecoded'
check "the join past max_participants_per_room is refused with full" step_ok cap '.refused.code == "full"'
check "a kicked participant is told and closed" step_ok kick
check "oversize message closes with 1009, binary with 1003" step_ok frames '.oversize.code == 1009 and .binary.code == 1003'
check "A's page closed: B got participant.left for A exactly once, every stream unpublished" step_ok a-left-once
check "B left with leave and its socket closed" step_ok b-leaves
check "exactly one joined and one left per participant, with the expected reasons" step_ok exactly-once

# The same from the events API, independently of the driver's reading.
events_json 0 >"$WORK/events.json"
check "events: four participants in demo, each joined once and left once" jq -e '
    [.events[] | select(.room == "demo" and (.type == "room.participant.joined" or .type == "room.participant.left"))]
    | group_by(.participant) | length == 4 and all(
        ([.[] | select(.type == "room.participant.joined")] | length) == 1 and
        ([.[] | select(.type == "room.participant.left")] | length) == 1)' "$WORK/events.json"
check "events: each stream is published and unpublished in turn, twice for A's (it published twice)" jq -e '
    [.events[] | select(.room == "demo" and (.type == "room.stream.published" or .type == "room.stream.unpublished"))]
    | group_by(.participant + "/" + .stream) | length > 0 and all(length == 4 and
        (map(.type) == ["room.stream.published", "room.stream.unpublished", "room.stream.published",
                        "room.stream.unpublished"]))' "$WORK/events.json"
check "metrics: the room websocket gauge is exported" sh -c "curl -s http://127.0.0.1:$API_PORT/metrics | grep -q '^cascade_media_ws_sessions'"

finish
