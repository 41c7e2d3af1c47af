#!/usr/bin/env bash
# test_gb_lower_bye.sh — issue 9: a real upper platform ends a play with
# "CSeq: N BYE" after "CSeq: N INVITE". RFC 3261 §12.2.2 refuses only a
# lower CSeq, so cascade (lower role) answers 200 and stops the stream it
# sends; before the fix it answered 500 and kept streaming forever.
# sipp stands in for the upper: one sipp answers the lower's REGISTER and
# keepalives with 200, another plays a channel and hangs up that way (-nd:
# no BYE of its own when the answer is wrong). A
# python socket swallows the RTP so that nothing else ends the stream.
source "$(dirname "$0")/lib.sh"

UP_SIP=$(free_port); LO_SIP=$(free_port); LO_API=$(free_port); MEDIA=$(free_port)
UP_ID=34020000002000000001
LO_ID=34020000002000000002
CH=34020000001310000101
API_TOKEN=tok
API_PORT=$LO_API

(cd "$WORK" && exec timeout 120 sipp -sf "$PEERS_DIR/sipp/gb_upper_ok_uas.xml" -i 127.0.0.1 -p "$UP_SIP" \
    -nostdin -trace_err -error_file upper.err >"$WORK/upper.out" 2>&1) &
PIDS+=("$!")
python3 -c "
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', int(sys.argv[1])))
while True: s.recv(65536)
" "$MEDIA" &
PIDS+=("$!")

node_ini lower "$LO_SIP" "$LO_API" 3402000000 <<EOF2
[gb]
id = $LO_ID
domain = 3402000000
media_ip = 127.0.0.1
$(gb_upstream_ini "$UP_ID" "$UP_SIP" udp secret 3600)
keepalive_interval = 3600
EOF2
start_cascade lower "$WORK/lower.ini"
check "lower: registered to the sipp upper" wait_for 20 \
    bash -c "[ \"\$(curl -s -H 'Authorization: Bearer $API_TOKEN' http://127.0.0.1:$LO_API/api/v1/gb/upstreams | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"upstreams\"][0][\"state\"])')\" = registered ]"
check "lower: channel $CH added" \
    test "$(api POST /gb/channels "{\"channels\":[{\"id\":\"$CH\",\"name\":\"gate\"}]}" | jget 'd["imported"]')" = 1

PORT=$LO_SIP
check "sipp upper: INVITE 1, 200, ACK, BYE 1 -> 200 (not 500)" \
    sipp_scn play gb_play_bye_same_cseq.xml -key upper "$UP_ID" -key channel "$CH" -key domain 3402000000 \
    -key media "$MEDIA" -nd -p "$(free_port)"
check "gb.lower.stream.started for $CH" has_event "select(.type==\"gb.lower.stream.started\" and .channel_id==\"$CH\")"
check "gb.lower.stream.stopped for $CH with reason bye" \
    wait_for 5 has_event "select(.type==\"gb.lower.stream.stopped\" and .channel_id==\"$CH\" and .reason==\"bye\")"
check "the lower sends no stream any more" test "$(api GET /gb/upstreams | jget 'len(d["streams"])')" = 0
check "no 500 to the BYE in the lower's log" not grep -q "BYE in dialog .* 500" "$WORK/lower.log"

finish
