#!/usr/bin/env bash
# The message-summary event package (RFC 3842): cascade relays what a
# configured voicemail source sends (an out-of-dialog NOTIFY for a user) to
# that user's subscriptions. sipp as alice's watcher (digest) gets the full
# state "Messages-Waiting: no" first, then the source's summary as sent;
# the same NOTIFY from a port not in [subscriptions] voicemail_source is
# refused 403, a bad body 400 with the reason; a SUBSCRIBE to a node with no
# voicemail source gets 489 (its Allow-Events without message-summary).
source "$(dirname "$0")/lib.sh"
command -v sipp >/dev/null || { echo "skip: sipp is not installed"; exit 77; }

PORT=$(free_port); API_PORT=$(free_port); API_TOKEN=mwitoken
VM=$(free_port)
node_ini m "$PORT" "$API_PORT" 127.0.0.1 <<INI
[auth]
realm = cascade.test
[subscriptions]
voicemail_source = 127.0.0.1:$VM
INI
start_cascade mwi "$WORK/m.ini"
H=127.0.0.1
check "cascadectl user add alice" ctl user add alice --password alicepw

got_notifies() { [ "$(python3 "$PEERS_DIR/notify_bodies.py" "$WORK/$1.msg" "$WORK/$1.n" 2>/dev/null)" -ge "$2" ]; }
active_is() { test "$(api GET /stats | jq -r '.subscriptions.active')" = "$1"; }
# source NAME STATUS WAITING COUNTS PORT: the voicemail NOTIFY for alice from PORT, expecting STATUS.
source_notify() {
    sed "s/STATUS/$2/" "$PEERS_DIR/sipp/mwi-source.xml" >"$WORK/mwi-$2.xml"
    sipp_scn "$1" "$WORK/mwi-$2.xml" -s alice -key waiting "$3" -key counts "$4" -p "$5"
}
# line FILE NAME: the value of the body line NAME: in FILE (the body as a list of lines, not a substring).
line() { python3 -c 'import sys
for l in open(sys.argv[1]).read().splitlines():
    k, _, v = l.partition(":")
    if k.strip().lower() == sys.argv[2].lower(): print(v.strip())' "$1" "$2"; }

sipp_spawn w 90 "127.0.0.1:$PORT" -sf "$PEERS_DIR/sipp/sub-mwi.xml" \
    -s alice -au alice -ap alicepw -auth_uri "alice@$H:$PORT" -key expires 600 -p "$(free_port)"
W=$SIPP_PID
check "the message-summary subscription is active" wait_for 30 active_is 1
check "the full NOTIFY reached alice's watcher" wait_for 30 got_notifies w 1
N=$WORK/w.n
check "NOTIFY 1: Event message-summary, application/simple-message-summary" \
    bash -c "grep -q '^Event: message-summary$' $N/1.hdr && grep -q '^Content-Type: application/simple-message-summary$' $N/1.hdr"
check "NOTIFY 1: nothing known yet: Messages-Waiting no" test "$(line $N/1.xml Messages-Waiting)" = no

check "a NOTIFY from a port that is not the source: 403" source_notify stranger 403 yes "2/8 (0/2)" "$(free_port)"
check "a bad summary from the source: 400" source_notify bad 400 maybe "2/8" "$VM"
check "the 400 says why (Bad Messages-Waiting)" grep -aq '^SIP/2.0 400 Bad Messages-Waiting' "$WORK/bad.msg"
check "bad counts from the source: 400" source_notify badcount 400 yes "2-8" "$VM"
check "the source's summary: 200" source_notify vm 200 yes "2/8 (0/2)" "$VM"
check "the summary reached the watcher" wait_for 30 got_notifies w 2
check "NOTIFY 2: Messages-Waiting yes, Voice-Message 2/8 (0/2), the account" \
    test "$(line $N/2.xml Messages-Waiting)|$(line $N/2.xml Voice-Message)|$(line $N/2.xml Message-Account)" \
    = "yes|2/8 (0/2)|sip:alice@$H"
check "alice's watcher unsubscribed and got the terminated NOTIFY (sipp ran the scenario)" wait "$W"
check "three NOTIFYs in all: the refused summaries reached nobody" \
    test "$(python3 "$PEERS_DIR/notify_bodies.py" "$WORK/w.msg" "$WORK/w.n")" = 3
check "NOTIFY 3: terminated;reason=timeout with the latest summary" \
    bash -c "grep -q '^Subscription-State: terminated;reason=timeout$' $N/3.hdr && test \"\$(python3 -c 'import sys
for l in open(sys.argv[1]).read().splitlines():
    if l.lower().startswith(\"messages-waiting:\"): print(l.split(\":\",1)[1].strip())' $N/3.xml)\" = yes"

# A node with no voicemail source does not serve the package.
PORT=$(free_port); API_PORT=$(free_port)
node_ini n "$PORT" "$API_PORT" 127.0.0.1 <<INI
[auth]
realm = cascade.test
INI
start_cascade nomwi "$WORK/n.ini"
check "no source: SUBSCRIBE message-summary -> 489" \
    sipp_scn off sub-bad-event.xml -s alice -key event message-summary -p "$(free_port)"
check "its Allow-Events lists reg, dialog and presence, not message-summary" \
    bash -c "grep -a '^Allow-Events: ' '$WORK/off.msg' | tail -1 | tr -d '\r' | grep -qx 'Allow-Events: reg, dialog, presence, presence.winfo'"
finish
