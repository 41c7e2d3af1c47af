#!/usr/bin/env bash
# The reg event package (RFC 3680) on cascade's RFC 6665 notifier, with sipp
# as the subscriber and sipp registering: 401 then 200 to SUBSCRIBE, the full
# state in the first NOTIFY, a partial NOTIFY for a registration (event
# registered) and for its removal (event unregistered), unsubscribe with a
# terminated NOTIFY; a subscription that survives a restart (a NOTIFY after
# it, CSeq and version still increasing); a terminated NOTIFY at expiry; 489
# for a package we do not serve; 405 to a MESSAGE for the domain with an Allow
# that does not list MESSAGE. Bodies are read with xmllint (xpath), never by
# substring.
source "$(dirname "$0")/lib.sh"
command -v sipp >/dev/null || { echo "skip: sipp is not installed"; exit 77; }
command -v xmllint >/dev/null || { echo "skip: xmllint is not installed"; exit 77; }

PORT=$(free_port); API_PORT=$(free_port); API_TOKEN=subtoken
node_ini c "$PORT" "$API_PORT" 127.0.0.1 <<INI
[auth]
realm = cascade.test
[registrar]
min_expires = 1
[subscriptions]
min_expires = 2
INI
start_cascade sub "$WORK/c.ini"
H=127.0.0.1
check "cascadectl user add alice" ctl user add alice --password alicepw

# xp FILE XPATH: the XPath's string value in a reginfo document (elements by local name).
xp() { xmllint --xpath "string($2)" "$1" 2>/dev/null; }
R="/*[local-name()='reginfo']"
REG="$R/*[local-name()='registration']"
C="$REG/*[local-name()='contact']"
active_subs() { api GET /stats | jq -r '.subscriptions.active'; }
active_is() { test "$(active_subs)" = "$1"; }
# got_notifies NAME N: sipp NAME has received at least N NOTIFYs (split into $WORK/NAME.n/).
got_notifies() { [ "$(python3 "$PEERS_DIR/notify_bodies.py" "$WORK/$1.msg" "$WORK/$1.n" 2>/dev/null)" -ge "$2" ]; }
register() { # register NAME EXPIRES CPORT
    sipp_scn "$1" register.xml -s alice -au alice -ap alicepw -key expires "$2" -key cport "$3" -p "$(free_port)"
}

# 1. Subscribe, registrations change, unsubscribe.
SP=$(free_port)
sipp_scn w1 sub-reg.xml -s alice -au alice -ap alicepw -auth_uri "alice@$H:$PORT" -key expires 600 -p "$SP" &
W1=$!
check "the subscription is active (200 sent)" wait_for 30 active_is 1
check "the full NOTIFY reached the subscriber" wait_for 30 got_notifies w1 1
N=$WORK/w1.n
check "NOTIFY 1: Event reg, Subscription-State active;expires<=600, reginfo+xml" \
    first_notify_head "$N/1.hdr" reg application/reginfo+xml
check "NOTIFY 1: full state, version 0, registration init (nothing bound)" \
    test "$(xp $N/1.xml "$R/@state")/$(xp $N/1.xml "$R/@version")/$(xp $N/1.xml "$REG/@state")" = "full/0/init"
check "NOTIFY 1: the AoR is sip:alice@$H" test "$(xp $N/1.xml "$REG/@aor")" = "sip:alice@$H"

check "sipp: alice registers (contact port 5099)" register r1 60 5099
check "a partial NOTIFY for the registration" wait_for 30 got_notifies w1 2
check "NOTIFY 2: partial, version 1, registration active" \
    test "$(xp $N/2.xml "$R/@state")/$(xp $N/2.xml "$R/@version")/$(xp $N/2.xml "$REG/@state")" = "partial/1/active"
check "NOTIFY 2: contact sip:alice@$H:5099 state active, event registered, expires 60" \
    test "$(xp $N/2.xml "$C/*[local-name()='uri']")/$(xp $N/2.xml "$C/@state")/$(xp $N/2.xml "$C/@event")/$(xp $N/2.xml "$C/@expires")" \
    = "sip:alice@$H:5099/active/registered/60"

check "sipp: alice unregisters" register r2 0 5099
check "a partial NOTIFY for the removal" wait_for 30 got_notifies w1 3
check "NOTIFY 3: contact terminated, event unregistered, registration terminated, version 2" \
    test "$(xp $N/3.xml "$C/@state")/$(xp $N/3.xml "$C/@event")/$(xp $N/3.xml "$REG/@state")/$(xp $N/3.xml "$R/@version")" \
    = "terminated/unregistered/terminated/2"
check "the subscriber unsubscribed and got the terminated NOTIFY (sipp ran the scenario)" wait "$W1"
got_notifies w1 4 || true
check "NOTIFY 4: Subscription-State terminated;reason=timeout, full state" \
    bash -c "grep -q '^Subscription-State: terminated;reason=timeout$' $N/4.hdr && test \"\$(xmllint --xpath 'string(/*/@state)' $N/4.xml)\" = full"
check "NOTIFY CSeqs 1..4 in order" \
    bash -c "for i in 1 2 3 4; do grep -q \"^CSeq: \$i NOTIFY\$\" $N/\$i.hdr || exit 1; done"
check "no subscription left" test "$(active_subs)" = 0

# 2. A package we do not serve: 489 with Allow-Events.
check "sipp: SUBSCRIBE Event: foo -> 489" sipp_scn bad sub-bad-event.xml -s alice -key event foo -p "$(free_port)"
check "489 carries Allow-Events: reg" grep -aq '^Allow-Events: reg' "$WORK/bad.msg"

# 3. The domain itself: 405 whose Allow lists what is served, not MESSAGE.
check "sipp: MESSAGE to the domain -> 405" sipp_scn dom message-domain.xml -p "$(free_port)"
ALLOW=$(grep -a '^Allow: ' "$WORK/dom.msg" | tail -1 | tr -d '\r')
check "405 Allow lists REGISTER and SUBSCRIBE and not MESSAGE ($ALLOW)" \
    bash -c "[[ '$ALLOW' == *REGISTER* && '$ALLOW' == *SUBSCRIBE* && '$ALLOW' != *MESSAGE* ]]"

# 4. Expiry: a 3 s subscription ends with a terminated NOTIFY.
sipp_scn w3 sub-reg-expire.xml -s alice -au alice -ap alicepw -auth_uri "alice@$H:$PORT" -key expires 3 -p "$(free_port)" &
W3=$!
check "the 3 s subscription ran to its expiry (sipp ran the scenario)" wait "$W3"
got_notifies w3 2 || true
check "its last NOTIFY: terminated;reason=timeout" grep -q '^Subscription-State: terminated;reason=timeout$' "$WORK/w3.n/2.hdr"
check "no subscription left after expiry" wait_for 10 active_is 0

# 5. A restart: the subscription comes back from the store and notifies.
sipp_scn w2 sub-reg-wait.xml -s alice -au alice -ap alicepw -auth_uri "alice@$H:$PORT" -key expires 600 -p "$(free_port)" &
W2=$!
check "second subscription: full NOTIFY" wait_for 30 got_notifies w2 1
kill "$sub_PID"; wait "$sub_PID" 2>/dev/null || true
start_cascade sub2 "$WORK/c.ini"
check "after the restart the subscription is back" test "$(active_subs)" = 1
check "sipp: alice registers after the restart" register r3 60 5098
check "the subscriber got a NOTIFY from the restarted node" wait_for 30 got_notifies w2 2
N=$WORK/w2.n
check "NOTIFY after restart: CSeq 2, version 1, contact sip:alice@$H:5098 active/registered" \
    test "$(grep -c '^CSeq: 2 NOTIFY$' $N/2.hdr)/$(xp $N/2.xml "$R/@version")/$(xp $N/2.xml "$C/*[local-name()='uri']")/$(xp $N/2.xml "$C/@event")" \
    = "1/1/sip:alice@$H:5098/registered"
check "unsubscribe after the restart ends it (sipp ran the scenario)" wait "$W2"
check "the subscription is gone from the store too" test "$(active_subs)" = 0

finish
