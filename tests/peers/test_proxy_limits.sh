#!/usr/bin/env bash
# test_proxy_limits.sh — issue 9, the proxy's bounds with real peers (sipp):
#  1. the domain written as an address, cascade on a port other than 5060:
#     INVITE sip:bob@127.0.0.1 (no port) is a call to our user bob, not
#     403 Relaying Forbidden;
#  2. a MESSAGE to a registered contact that never answers: the sender gets
#     a 408 from the proxy at [proxy] non_invite_timeout_ms, long before its
#     own timer F (before the fix it came at the branch's timer F, 64*T1,
#     too late for a sender with the same T1); with one silent contact and
#     one answering 486, the 486 goes up at that deadline;
#  3. [registrar] max_contacts (default 10): the 11th contact of an AoR is
#     refused 403 Too Many Contacts;
#  4. [proxy] pike_limit: a burst of INVITEs from one source (another
#     domain, not authenticated) to a user with 10 silent contacts — past the
#     limit each is refused 503, so the fan-out stays at limit x 10 branches;
#     another source still gets through, a trusted one is never counted.
source "$(dirname "$0")/lib.sh"

PORT=$(free_port); API_PORT=$(free_port); API_TOKEN=limits
LIMIT=5
node_ini p "$PORT" "$API_PORT" 127.0.0.1 <<INI
[auth]
realm = cascade.test
[registrar]
nat_ping_interval = 0
[proxy]
non_invite_timeout_ms = 1000
pike_limit = $LIMIT
pike_window = 30
trusted = 127.0.0.3
; check 2 is about the proxy's own 408: no offline message store taking it (202)
[messages]
offline = no
INI
start_cascade proxy "$WORK/p.ini"
H=127.0.0.1

# reg NAME USER PASSWORD CPORT [STATUS]: USER registers contact 127.0.0.1:CPORT
# from that port (requests go to the address a REGISTER came from); nothing
# listens there afterwards: a contact that never answers.
reg() {
    local sf=$PEERS_DIR/sipp/register.xml
    if [ -n "${5:-}" ]; then
        sed "s/<recv response=\"200\"\/>/<recv response=\"$5\"\/>/" "$sf" >"$WORK/register-$5.xml"
        sf=$WORK/register-$5.xml
    fi
    sipp_scn "$1" "$sf" -s "$2" -au "$2" -ap "$3" -key expires 300 -key cport "$4" -p "$4"
}
stat() { api GET /stats | jget "d['proxy']['$1']"; }

check "user add bob" ctl user add bob --password bobpw
check "user add max" ctl user add max --password maxpw
check "user add fan" ctl user add fan --password fanpw

# 1. sip:bob@127.0.0.1 without a port, cascade on $PORT.
UAS=$(free_port)
check "bob registers (REGISTER sip:127.0.0.1:$PORT)" reg rbob bob bobpw "$UAS"
sipp_spawn busy 60 -sf "$PEERS_DIR/sipp/uas-busy.xml" -p "$UAS"
BUSY=$SIPP_PID
sleep 0.3
# From another domain: the call is not challenged (RFC 3261 §22.3 as [proxy] authenticate reads it).
sed -e "s/STATUS/486/g" -e 's/caller@\[local_ip\]:\[local_port\]>;tag/caller@example.org>;tag/' \
    "$PEERS_DIR/sipp/uac-reject.xml" >"$WORK/reject-486.xml"
check "INVITE sip:bob@127.0.0.1 (no port) reaches bob: his 486 comes back, not 403" \
    sipp_scn inv1 "$WORK/reject-486.xml" -s bob -key target "$H" -key mf 70 -p "$(free_port)"
check "bob's UAS got the INVITE (R-URI his contact) and the ACK" wait "$BUSY"
check "no 403 Relaying Forbidden logged" not grep -q "403 Relaying Forbidden" "$WORK/proxy.log"

# 2. MESSAGE to a contact that never answers: 408 within non_invite_timeout_ms
#    (1 s here), long before T1 500 ms x 64 = 32 s (the sender's timer F;
#    -key wait is the sender's patience, half of that).
sed -e "s/STATUS/408/" -e "s/WAIT/16000/" "$PEERS_DIR/sipp/uac-message-status.xml" >"$WORK/message-408.xml"
check "MESSAGE to bob's silent contact -> 408 from the proxy before the sender gives up" \
    sipp_scn msg408 "$WORK/message-408.xml" -s bob -p "$(free_port)"
check "counted as a non-INVITE deadline" test "$(stat non_invite_timeouts)" = 1
# bob gets a second contact that answers 486: at the deadline that answer,
# the best one, goes up rather than a 408 (RFC 3261 §16.7 step 6).
UAS2=$(free_port)
check "bob registers a second contact" reg rbob2 bob bobpw "$UAS2"
sed 's/SIP\/2.0 200 OK/SIP\/2.0 486 Busy Here/' "$PEERS_DIR/sipp/uas-message.xml" >"$WORK/uas-message-486.xml"
sipp_spawn busy2 60 -sf "$WORK/uas-message-486.xml" -p "$UAS2"
BUSY2=$SIPP_PID
sleep 0.3
sed -e "s/STATUS/486/" -e "s/WAIT/16000/" "$PEERS_DIR/sipp/uac-message-status.xml" >"$WORK/message-486.xml"
check "MESSAGE to bob (one contact silent, one busy) -> the 486, at the deadline" \
    sipp_scn msg486 "$WORK/message-486.xml" -s bob -p "$(free_port)"
check "the busy contact got the MESSAGE" wait "$BUSY2"
check "counted as a second non-INVITE deadline" test "$(stat non_invite_timeouts)" = 2

# 3. max_contacts = 10 (the default): the 11th contact is refused.
ok=0
for i in $(seq 1 10); do
    CP[$i]=$(free_port)
    reg "rmax$i" max maxpw "${CP[$i]}" && ok=$((ok + 1))
done
check "max registers 10 contacts" test "$ok" = 10
check "the 11th contact -> 403" reg rmax11 max maxpw "$(free_port)" 403
check "the 403 says Too Many Contacts" grep -aq "^SIP/2.0 403 Too Many Contacts" "$WORK/rmax11.msg"
check "max keeps 10 bindings" test "$(binding_count max)" = 10
check "a refresh of a bound contact still passes" reg rmax1b max maxpw "${CP[1]}"
check "the refusal is logged with the sender" grep -q "registrar: 403 Too Many Contacts to REGISTER from $H:" "$WORK/proxy.log"

# 4. fan has 10 contacts, none answers. 20 INVITEs from one source in a burst.
ok=0
for i in $(seq 1 10); do
    reg "rfan$i" fan fanpw "$(free_port)" && ok=$((ok + 1))
done
check "fan registers 10 contacts" test "$ok" = 10
F0=$(stat forwarded)
(cd "$WORK" && timeout 60 sipp "$H:$PORT" -sf "$PEERS_DIR/sipp/uac-invite-burst.xml" -s fan -key target "$H:$PORT" \
    -i 127.0.0.1 -p "$(free_port)" -m 20 -r 200 -nostdin -trace_msg -message_file burst.msg \
    -trace_err -error_file burst.err >"$WORK/burst.out" 2>&1) || true
N503=$(grep -ac "^SIP/2.0 503 Too Many Requests" "$WORK/burst.msg" || true)
# The window is fixed (30 s from the first request counted, which may be an
# earlier test's): on a slow machine it may end inside the burst, and the
# next window lets LIMIT more through. Either way at most 2 x LIMIT pass.
check "burst: the requests past the limit of $LIMIT are refused 503 ($N503)" test "$N503" -ge $((20 - 2 * LIMIT))
check "burst: the proxy counted them" test "$(stat pike_refused)" -ge $((20 - 2 * LIMIT))
F1=$(stat forwarded)
check "burst: fan-out bounded to $LIMIT x 10 branches per window ($((F1 - F0)))" test $((F1 - F0)) -le $((2 * LIMIT * 10))
check "burst: the 503 carries Retry-After" grep -aq "^Retry-After: 30" "$WORK/burst.msg"
check "burst: one refusal line for that source, with its address" \
    bash -c "n=\$(grep -c 'proxy: 503 to INVITE from $H:.*pike_limit' '$WORK/proxy.log'); [ \$n -ge 1 ] && [ \$n -le 2 ]"
# Another source (127.0.0.2) is not held back by the first one's burst.
sipp_scn other uac-invite-burst.xml -s fan -key target "$H:$PORT" -i 127.0.0.2 -p "$(free_port)" || true
check "another source's INVITE is taken (100 Trying, no 503)" \
    bash -c "grep -aq '^SIP/2.0 100' '$WORK/other.msg' && ! grep -aq '^SIP/2.0 503' '$WORK/other.msg'"
# A trusted source is exempt: 20 INVITEs to nobody (404 each, nothing forked).
(cd "$WORK" && timeout 60 sipp "$H:$PORT" -sf "$PEERS_DIR/sipp/uac-invite-burst.xml" -s nobody -key target "$H:$PORT" \
    -i 127.0.0.3 -p "$(free_port)" -m 20 -r 200 -nostdin -trace_msg -message_file trusted.msg \
    >"$WORK/trusted.out" 2>&1) || true
check "trusted source: 20 answers 404, none 503" \
    bash -c "[ \"\$(grep -ac '^SIP/2.0 404' '$WORK/trusted.msg')\" = 20 ] && ! grep -aq '^SIP/2.0 503' '$WORK/trusted.msg'"

finish
