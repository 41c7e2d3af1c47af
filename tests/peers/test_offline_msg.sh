#!/usr/bin/env bash
# Offline instant messages (issue 15) with sipp on both ends: alice's
# MESSAGEs to bob, who has never registered, are answered 202 and listed as
# queued in the API; they survive a restart of cascade; one over bob's
# quota is refused 480 with a reason that says so; when bob registers (his
# phone a sipp UAS) it receives exactly the kept MESSAGEs, in order, once
# (From alice, a Date header, the body as sent), and the API lists them as
# delivered. Then bob's sipp is gone but his binding is not (registered,
# unreachable): the next MESSAGE is kept too and reaches his next
# registration.
source "$(dirname "$0")/lib.sh"
command -v sipp >/dev/null || { echo "skip: sipp is not installed"; exit 77; }
command -v jq >/dev/null || { echo "skip: jq is not installed"; exit 77; }

PORT=$(free_port); API_PORT=$(free_port); API_TOKEN=offtoken
node_ini c "$PORT" "$API_PORT" 127.0.0.1 <<INI
[auth]
realm = cascade.test
[registrar]
min_expires = 1
[proxy]
non_invite_timeout_ms = 3000
[messages]
max_per_user = 3
INI
start_cascade off "$WORK/c.ini"
check "cascadectl user add alice" ctl user add alice --password alicepw
check "cascadectl user add bob" ctl user add bob --password bobpw

# say NAME SCENARIO BODY: alice's MESSAGE with BODY to bob.
say() { sipp_scn "$1" "$2" -s bob -au alice -ap alicepw -auth_uri "bob@127.0.0.1:$PORT" -key body "$3" -p "$(free_port)"; }
# count STATE: bob's messages in that state, from the API.
count() { api GET "/messages?user=bob&state=$1" | jq '.messages | length'; }
count_is() { test "$(count "$1")" = "$2"; }
# received NAME: one line per MESSAGE sipp NAME received: "from|date|body".
received() {
    python3 - "$WORK/$1.msg" <<'PY'
import re, sys
text = open(sys.argv[1], encoding="latin-1").read()
for chunk in re.split(r"^-{20,}.*$", text, flags=re.M):
    chunk = chunk.lstrip("\r\n")
    first, _, rest = chunk.partition("\n")
    msg = rest.lstrip("\r\n").replace("\r\n", "\n")
    if "received" not in first or not msg.startswith("MESSAGE "):
        continue
    head, _, body = msg.partition("\n\n")
    hdr = {}
    for line in head.split("\n")[1:]:
        k, _, v = line.partition(":")
        hdr.setdefault(k.strip().lower(), v.strip())
    date = "date" if re.match(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT$", hdr.get("date", "")) else "no-date"
    print("%s|%s|%s" % (re.sub(r";tag=.*", "", hdr.get("from", "")), date, body.strip()))
PY
}

# 1. bob has never registered: kept, 202.
check "MESSAGE 1 to offline bob: 202" say m1 message-offline.xml "offline message one"
check "MESSAGE 2 to offline bob: 202" say m2 message-offline.xml "offline message two"
check "the API lists 2 queued for bob" count_is queued 2
check "the API shows alice as sender and the body size (sipp ends it with CRLF)" \
    jq_ok "$(api GET '/messages?user=bob')" '.messages[0].from == "\"Alice\" <sip:alice@127.0.0.1>" and .messages[0].size == 21 and .messages[0].state == "queued"'
check "event message.stored for bob" has_event 'select(.type=="message.stored" and .user=="bob")'

# 2. A restart between store and delivery keeps them.
kill "$off_PID"; wait "$off_PID" 2>/dev/null || true
start_cascade off2 "$WORK/c.ini"
check "after a restart 2 are still queued" count_is queued 2
check "MESSAGE 3 after the restart: 202" say m3 message-offline.xml "offline message three"

# 3. bob's quota is 3 messages: the fourth is refused with the reason.
check "MESSAGE 4 over the quota: 480" say m4 message-offline-full.xml "offline message refused"
check "the 480 says why" grep -aq '^SIP/2.0 480 Offline Message Quota Exceeded' "$WORK/m4.msg"
check "still 3 queued" count_is queued 3

# 4. bob registers with his phone (a sipp UAS) as Contact: the three arrive
# in order, each once.
# uas NAME PORT N: bob's phone on PORT taking N MESSAGEs, in the background
# (its pid in SIPP_PID).
uas() {
    sipp_spawn "$1" 90 -sf "$PEERS_DIR/sipp/uas-offline-message.xml" -p "$2" -m "$3"
}
register() { sipp_scn "$1" register.xml -s bob -au bob -ap bobpw -key expires 60 -key cport "$2" -p "$(free_port)"; }
BP=$(free_port)
uas bob1 "$BP" 3
UAS=$SIPP_PID
check "bob's phone listens" wait_for 30 udp_bound "$BP"
check "bob registers" register r1 "$BP"
check "bob's phone took 3 MESSAGEs and answered them (sipp ran the scenario)" wait "$UAS"
GOT=$(received bob1)
WANT=$(printf '%s\n' '"Alice" <sip:alice@127.0.0.1>|date|offline message one' \
    '"Alice" <sip:alice@127.0.0.1>|date|offline message two' '"Alice" <sip:alice@127.0.0.1>|date|offline message three')
check "bob got exactly the kept MESSAGEs, in order, from alice, with a Date" test "$GOT" = "$WANT"
check "the API lists 3 delivered" wait_for 30 count_is delivered 3
check "and none queued" count_is queued 0
check "a refresh of bob's registration" register r2 "$BP"
check "the refused one was never kept, none was sent twice" \
    jq_ok "$(api GET /stats)" '.offline_messages.delivered == 3 and .offline_messages.refused == 1 and .offline_messages.queued == 0'
check "event message.delivered for bob" has_event 'select(.type=="message.delivered" and .user=="bob")'

# 5. bob's binding remains but his phone is gone: kept all the same (the
# proxy's branch fails or times out, [proxy] non_invite_timeout_ms).
check "MESSAGE 5 to registered-but-unreachable bob: 202" say m5 message-offline.xml "offline message four"
check "1 queued again" count_is queued 1
BP2=$(free_port)
uas bob2 "$BP2" 1
UAS=$SIPP_PID
check "bob's new phone listens" wait_for 30 udp_bound "$BP2"
check "bob registers from it" register r3 "$BP2"
check "it took one MESSAGE (sipp ran the scenario)" wait "$UAS"
check "that one MESSAGE was message four" test "$(received bob2)" = '"Alice" <sip:alice@127.0.0.1>|date|offline message four'
check "nothing queued" wait_for 30 count_is queued 0

finish
