#!/usr/bin/env bash
# Rooms, WHIP and WHEP as a client on the network sees them, with bad input:
# no token (401), a wrong content type (415), an offer that is not SDP (400
# with the API's JSON error), room names with path characters (400/404 and
# no room made), CORS preflights answered without a token, trickle ICE
# refused (405 with Allow), unknown sessions (404); garbage datagrams on the
# media port are dropped and counted while the API keeps answering; 10 000
# publish attempts into one room stop cleanly at max_participants_per_room
# (503, nothing else); cascadectl room list|show|kick|close. Then the media
# port taken by another daemon: enabled = yes refuses to start and says why,
# enabled = auto starts without rooms (503 media-off).
#
# The offers are real Chromium ones (tests/peers/rooms/*.sdp: a publisher
# sending audio and video, a viewer receiving both), made with puppeteer on
# Chromium 156. Nobody connects here: the media itself is
# test_browser_rooms.sh's.
source "$(dirname "$0")/lib.sh"

PUBLISH_SDP=$PEERS_DIR/rooms/chromium_publish.sdp
VIEW_SDP=$PEERS_DIR/rooms/chromium_view.sdp
CAP=5

PORT=$(free_port); API_PORT=$(free_port); MEDIA_PORT=$(free_port); API_TOKEN=roomstoken
# connect_timeout_s: the publishers admitted below never connect; they must
# stay for the whole run, so that the cap is what refuses the rest.
node_ini n "$PORT" "$API_PORT" 127.0.0.1 <<INI
[media]
enabled = yes
listen = 127.0.0.1
port = $MEDIA_PORT
max_participants_per_room = $CAP
connect_timeout_s = 3600
INI
start_cascade rooms "$WORK/n.ini"
BASE=http://127.0.0.1:$API_PORT/api/v1

# http METHOD PATH [curl args...]: the status; the body in $WORK/body, the
# headers in $WORK/headers.
http() {
    local m=$1 p=$2
    shift 2
    curl -s -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' -X "$m" "$@" "$BASE$p" || true
}
authed() { http "$@" -H "Authorization: Bearer $API_TOKEN"; }
sdp_post() { # PATH FILE [curl args]: POST of FILE as application/sdp with the token
    local p=$1 f=$2
    shift 2
    authed POST "$p" -H 'Content-Type: application/sdp' --data-binary "@$f" "$@"
}
# error_is CODE: the last body is the API's JSON error with that code and a detail.
error_is() { jq -e --arg c "$1" '.error == $c and (.detail | type == "string" and length > 0)' "$WORK/body" >/dev/null; }
header() { grep -i "^$1:" "$WORK/headers" | head -1 | cut -d: -f2- | tr -d '\r' | sed 's/^ *//'; }
rooms_json() { api GET /rooms; }
# status_then ST WANT [JQ]: ST is WANT and, with JQ, the last body satisfies it.
status_then() { [ "$1" = "$2" ] && { [ -z "${3:-}" ] || jq -e "$3" "$WORK/body" >/dev/null; }; }
one_of() { local v=$1; shift; for w in "$@"; do [ "$v" = "$w" ] && return 0; done; return 1; }
contains() { [[ $1 == *"$2"* ]]; }

check "the media port is bound (UDP)" wait_for 10 udp_bound "$MEDIA_PORT"
check "GET /rooms: none yet" jq_ok "$(rooms_json)" '.rooms == []'

# ---- refusals before the SFU sees anything
check "WHIP without a token: 401" test "$(http POST /whip/r1 -H 'Content-Type: application/sdp' \
    --data-binary "@$PUBLISH_SDP")" = 401
check "... with WWW-Authenticate: Bearer" test "$(header www-authenticate)" = Bearer
check "... and Access-Control-Allow-Origin: * (a browser player can read it)" test "$(header access-control-allow-origin)" = '*'
check "WHIP with Content-Type application/json: 415" \
    test "$(authed POST /whip/r1 -H 'Content-Type: application/json' --data '{"sdp":"v=0"}')" = 415
check "... a JSON error saying what is wanted" error_is unsupported-media-type
check "... and Accept-Post: application/sdp" test "$(header accept-post)" = application/sdp
check "WHIP without a Content-Type: 415" test "$(authed POST /whip/r1 --data-binary "@$PUBLISH_SDP" -H 'Content-Type:')" = 415
printf 'this is not an offer\r\n' >"$WORK/garbage.sdp"
check "WHIP with garbage as SDP: 400" test "$(sdp_post /whip/r1 "$WORK/garbage.sdp")" = 400
check "... the API's JSON error (bad-offer)" error_is bad-offer
head -c 3000 /dev/urandom >"$WORK/random.sdp"
check "WHIP with random bytes as SDP: 400" test "$(sdp_post /whip/r1 "$WORK/random.sdp")" = 400
check "WHIP with an empty body: 400" test "$(authed POST /whip/r1 -H 'Content-Type: application/sdp')" = 400
check "WHIP with a viewer's (receive-only) offer: 400" test "$(sdp_post /whip/r1 "$VIEW_SDP")" = 400
check "... bad-offer or unsupported-offer, with the reason" \
    jq -e '(.error == "bad-offer" or .error == "unsupported-offer") and (.detail | length > 0)' "$WORK/body"
head -c $((1024 * 1024 + 10)) /dev/zero | tr '\0' 'a' >"$WORK/huge.sdp"
check "WHIP with a body over 1 MiB: 413" test "$(sdp_post /whip/r1 "$WORK/huge.sdp")" = 413

for bad in '..%2F..%2Fetc' '%2E%2E' 'a%2Fb' 'a%20b' 'r%3B1' 'caf%C3%A9' "$(printf 'x%.0s' $(seq 1 65))"; do
    st=$(sdp_post "/whip/$bad" "$PUBLISH_SDP")
    # (a decoded '/' makes the path another route's: 405 there)
    check "WHIP into room '$bad': 400, 404 or 405 ($st)" one_of "$st" 400 404 405
done
st=$(sdp_post "/whip/../../etc/passwd" "$PUBLISH_SDP" --path-as-is)
check "WHIP to /whip/../../etc/passwd (as is): 400 or 404 ($st)" one_of "$st" 400 404
check "... no room was made by any of them" jq_ok "$(rooms_json)" '.rooms == []'
check "GET /rooms/a%20b: 400 bad-room" status_then "$(authed GET /rooms/a%20b)" 400 '.error == "bad-room"'

# ---- CORS and the session resources
check "OPTIONS preflight without a token: 204" test "$(http OPTIONS /whip/r1 -H 'Origin: http://player.example' \
    -H 'Access-Control-Request-Method: POST' -H 'Access-Control-Request-Headers: authorization, content-type')" = 204
check "... Access-Control-Allow-Origin: *" test "$(header access-control-allow-origin)" = '*'
methods=$(header access-control-allow-methods)
check "... Allow-Methods has POST ($methods)" contains "$methods" POST
check "... and OPTIONS" contains "$methods" OPTIONS
allowed=$(header access-control-allow-headers | tr 'A-Z' 'a-z')
check "... Allow-Headers has Authorization" contains "$allowed" authorization
check "... and Content-Type" contains "$allowed" content-type
check "... Expose-Headers has Location" contains "$(header access-control-expose-headers)" Location
check "OPTIONS preflight of a WHEP session: 204" \
    test "$(http OPTIONS /whep/r1/0123456789abcdef -H 'Access-Control-Request-Method: DELETE')" = 204
check "... with DELETE allowed" contains "$(header access-control-allow-methods)" DELETE
check "OPTIONS on a non-CORS route still needs the token: 401" test "$(http OPTIONS /users)" = 401
check "PATCH (trickle ICE) on a WHIP session: 405" test "$(authed PATCH /whip/r1/0123456789abcdef \
    -H 'Content-Type: application/trickle-ice-sdpfrag' --data-binary 'a=candidate:1 1 udp 1 127.0.0.1 9 typ host')" = 405
check "... with Allow naming DELETE" contains "$(header allow)" DELETE
check "DELETE of an unknown WHIP session: 404 JSON" \
    status_then "$(authed DELETE /whip/r1/0123456789abcdef)" 404 '.error == "not-found"'
check "DELETE of a malformed session id: 404" test "$(authed DELETE /whep/r1/nothex)" = 404
check "DELETE /rooms/nosuch: 404" test "$(authed DELETE /rooms/nosuch)" = 404
check "WHEP into a room nobody is in: 404 JSON" \
    status_then "$(sdp_post /whep/nobody "$VIEW_SDP")" 404 '.error == "not-found"'

# ---- garbage on the media port
stat_media() { api GET /stats | jq -r ".media.rtc.$1"; }
g0=$(stat_media dropped_garbage)
python3 - "$MEDIA_PORT" <<'PY'
import os, socket, sys, time
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
# First bytes 64..127 are none of STUN (0-3), DTLS (20-63) or RTP/RTCP
# (128-191), RFC 7983: plain garbage.
for i in range(500):
    s.sendto(bytes([64 + i % 64]) + os.urandom(i % 1400), ("127.0.0.1", port))
    if i % 50 == 49: time.sleep(0.01)   # stay within the socket's receive buffer
PY
garbage_counted() { [ "$(stat_media dropped_garbage)" -ge "$1" ]; }
check "500 garbage datagrams are counted as dropped_garbage" wait_for 20 garbage_counted $((g0 + 500))
python3 - "$MEDIA_PORT" <<'PY'
import os, random, socket, struct, sys, time
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rnd = random.Random(12)
for i in range(1500):
    kind = i % 5
    if kind == 0:    # a STUN Binding request with a made-up USERNAME and a bad integrity
        attr = b"abcd:efgh"
        body = struct.pack("!HH", 0x0006, len(attr)) + attr + b"\0" * ((4 - len(attr) % 4) % 4)
        body += struct.pack("!HH", 0x0008, 20) + os.urandom(20)
        pkt = struct.pack("!HHI", 0x0001, len(body), 0x2112A442) + os.urandom(12) + body
    elif kind == 1:  # a DTLS ClientHello-looking record from a stranger
        pkt = bytes([22, 0xfe, 0xfd]) + os.urandom(rnd.randint(0, 300))
    elif kind == 2:  # RTP from nobody
        pkt = bytes([0x80, 96]) + os.urandom(rnd.randint(10, 1200))
    elif kind == 3:  # RTCP from nobody
        pkt = bytes([0x80, 200]) + os.urandom(rnd.randint(0, 100))
    else:            # truncated anything
        pkt = os.urandom(rnd.randint(0, 3))
    s.sendto(pkt, ("127.0.0.1", port))
    if i % 50 == 49: time.sleep(0.01)
PY
check "after STUN, DTLS, RTP and RTCP from strangers the API still answers" \
    jq_ok "$(api GET /stats)" '.media.rtc | (.stun_refused + .dropped_unknown_source + .dropped_garbage + .dropped_before_dtls) > 500'
check "... and no peer exists because of them" jq_ok "$(api GET /stats)" '.media.rtc.peers == 0'

# ---- 10 000 publish attempts into one room
python3 - "$API_PORT" "$API_TOKEN" "$PUBLISH_SDP" "$WORK/storm.json" <<'PY'
import http.client, json, sys
port, token, offer_file, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
offer = open(offer_file, "rb").read()
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
hdrs = {"Authorization": "Bearer " + token, "Content-Type": "application/sdp"}
statuses, errors, locations, answers_ok = {}, {}, [], True
for i in range(10000):
    try:
        conn.request("POST", "/api/v1/whip/storm?name=p%d" % i, offer, hdrs)
        r = conn.getresponse()
        body = r.read()
    except (http.client.HTTPException, OSError):
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        statuses["conn-error"] = statuses.get("conn-error", 0) + 1
        continue
    statuses[r.status] = statuses.get(r.status, 0) + 1
    if r.status == 201:
        locations.append(r.getheader("Location"))
        answers_ok = answers_ok and r.getheader("Content-Type", "").startswith("application/sdp") and body.startswith(b"v=0")
    else:
        try:
            errors[json.loads(body)["error"]] = errors.get(json.loads(body)["error"], 0) + 1
        except Exception:
            errors["not-json"] = errors.get("not-json", 0) + 1
json.dump({"statuses": {str(k): v for k, v in statuses.items()}, "errors": errors, "locations": locations,
           "answers_ok": answers_ok}, open(out, "w"))
PY
echo "storm: $(jq -c '{statuses, errors}' "$WORK/storm.json")"
check "storm: exactly $CAP publishers admitted (201)" jq -e --argjson c $CAP '.statuses["201"] == $c' "$WORK/storm.json"
check "storm: every other attempt got 503 full (JSON)" \
    jq -e --argjson c $CAP '.statuses["503"] == 10000 - $c and .errors == {"full": (10000 - $c)}' "$WORK/storm.json"
check "storm: the admitted got an SDP answer and a Location under /api/v1/whip/storm/" \
    jq -e '.answers_ok and all(.locations[]; test("^/api/v1/whip/storm/[0-9a-f]{16}$"))' "$WORK/storm.json"
check "storm: GET /rooms shows the room with $CAP participants" \
    jq_ok "$(rooms_json)" "[.rooms[] | select(.name == \"storm\" and .participants == $CAP)] | length == 1"
check "the daemon is alive and answering" test "$(api GET /stats | jq '.media.rooms')" -ge 1

# ---- cascadectl
ctl_out_has() { # REGEX ARGS...: cascadectl ARGS prints a line matching REGEX
    local re=$1
    shift
    ctl "$@" >"$WORK/ctl.out" && grep -qE "$re" "$WORK/ctl.out"
}
check "cascadectl room list names the room" ctl_out_has "^storm +$CAP +" room list
check "cascadectl room show storm lists the participants" \
    test "$(ctl room show storm | grep -cE '^[0-9a-f]{16} ')" = "$CAP"
FIRST=$(jq -r '.locations[0] | split("/") | last' "$WORK/storm.json")
SECOND=$(jq -r '.locations[1] | split("/") | last' "$WORK/storm.json")
check "cascadectl room kick of a participant of another room fails" not ctl room kick r1 "$FIRST"
check "cascadectl room kick storm $FIRST" ctl room kick storm "$FIRST"
check "... it is gone from the room" jq_ok "$(api GET /rooms/storm)" "[.participants[] | select(.id == \"$FIRST\")] | length == 0"
check "DELETE of a WHIP session under /whep/: 404 (not that kind of session)" \
    test "$(authed DELETE "/whep/storm/$SECOND")" = 404
check "DELETE of a WHIP session ends it: 200" test "$(authed DELETE "/whip/storm/$SECOND")" = 200
check "... a second DELETE: 404" test "$(authed DELETE "/whip/storm/$SECOND")" = 404
check "with two places free a publish is admitted again: 201" test "$(sdp_post /whip/storm "$PUBLISH_SDP")" = 201
check "... with a Location under /api/v1/whip/storm/" contains "$(header location)" /api/v1/whip/storm/
check "... and Content-Type application/sdp" contains "$(header content-type)" application/sdp
check "cascadectl room close storm" ctl room close storm
check "... GET /rooms is empty again" jq_ok "$(rooms_json)" '.rooms == []'
check "cascadectl room show of a closed room fails" not ctl room show storm
curl -s "http://127.0.0.1:$API_PORT/metrics" >"$WORK/metrics.txt"
for m in 'cascade_media_rooms 0' cascade_media_participants cascade_media_rtp_forwarded_total \
    'cascade_media_stun_total{result="ok"}' 'cascade_media_dtls_handshakes_total{result="ok"}'; do
    check "metrics: $m" grep -qF "$m" "$WORK/metrics.txt"
done

# ---- the media port taken
bad_ini() { # NAME ENABLED: a second node on the first one's media port
    local sip api
    sip=$(free_port); api=$(free_port)
    printf '[media]\nenabled = %s\nport = %s\n' "$2" "$MEDIA_PORT" | node_ini "$1" "$sip" "$api" 127.0.0.1
    echo "$api"
}
bad_ini strict yes >/dev/null
(cd "$WORK" && timeout 30 "$CASCADE" -c "$WORK/strict.ini" >"$WORK/strict.log" 2>&1) && rc=0 || rc=$?
check "enabled = yes on a taken media port: cascade refuses to start" test "$rc" -ne 0 -a "$rc" -ne 124
check "... and says why" grep -q "media: cannot start" "$WORK/strict.log"
AUTO_API=$(bad_ini auto auto)
start_cascade auto "$WORK/auto.ini"
check "enabled = auto on a taken media port: cascade starts and says why" grep -q "media: cannot start" "$WORK/auto.log"
st=$(curl -s -o "$WORK/body" -w '%{http_code}' -X POST -H "Authorization: Bearer $API_TOKEN" \
    -H 'Content-Type: application/sdp' --data-binary "@$PUBLISH_SDP" "http://127.0.0.1:$AUTO_API/api/v1/whip/r1")
check "... WHIP there answers 503 media-off" status_then "$st" 503 '.error == "media-off"'

# ---- a bad [media] section
printf '[media]\nlisten = localhost\n' >"$WORK/badmedia.ini"
"$CASCADE" -t -c "$WORK/badmedia.ini" >"$WORK/badmedia.out" 2>&1 && rc=0 || rc=$?
check "[media] listen = localhost: cascade -t fails" test "$rc" = 1
check "... saying it is not an IP address" grep -qF "[media] listen: 'localhost' is not an IP address" "$WORK/badmedia.out"

finish
