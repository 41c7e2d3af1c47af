#!/usr/bin/env bash
# NAT help with real peers: a sipp UA registers over UDP from one port with a
# Contact naming another port (what a UA behind NAT does: it advertises its
# private address), so cascade flags the binding as behind NAT; cascade then
# sends keepalive OPTIONS to the source address ([registrar]
# nat_ping_interval, here 1 s) that the UA answers, and a call to the user is
# delivered to the source address, not to the unreachable Contact. A UA whose
# Contact is its source address is neither flagged nor pinged. A UA behind
# NAT that stops answering is removed after nat_ping_max_lost pings.
source "$(dirname "$0")/lib.sh"

PORT=$(free_port); API_PORT=$(free_port); API_TOKEN=nattoken
H=127.0.0.1
node_ini n "$PORT" "$API_PORT" 127.0.0.1 <<INI
[auth]
realm = cascade.test
[registrar]
nat_ping_interval = 1
nat_ping_max_lost = 0
[proxy]
authenticate = no
INI
start_cascade nat "$WORK/n.ini"

check "cascadectl user add natted" ctl user add natted --password pw1
check "cascadectl user add direct" ctl user add direct --password pw2
SRC=$(free_port); PRIV=$(free_port)
check "natted registers from port $SRC with Contact port $PRIV" \
    sipp_scn regn register.xml -s natted -au natted -ap pw1 -key expires 300 -key cport "$PRIV" -p "$SRC"
DSRC=$(free_port)
check "direct registers with its source port as Contact" \
    sipp_scn regd register.xml -s direct -au direct -ap pw2 -key expires 300 -key cport "$DSRC" -p "$DSRC"
check "GET /registrations: natted is behind NAT, source port kept" \
    jq_ok "$(api GET '/registrations?user=natted')" ".registrations[0].nat == true and .registrations[0].remote == \"$H:$SRC\""
check "GET /registrations: direct is not" jq_ok "$(api GET '/registrations?user=direct')" '.registrations[0].nat == false'
check "the UA at the source port gets a keepalive OPTIONS for its contact and answers it" \
    bash -c "cd '$WORK' && timeout 15 sipp -sf '$PEERS_DIR/sipp/uas-options.xml' -i 127.0.0.1 -p $SRC -m 1 -nostdin \
        -trace_msg -message_file ping.msg >'$WORK/ping.out' 2>&1"
check "the ping named the registered contact" grep -aq "^OPTIONS sip:natted@$H:$PRIV SIP/2.0" "$WORK/ping.msg"
check "GET /stats: pings sent and answered, one binding behind NAT" \
    wait_for 5 bash -c "curl -s -H 'Authorization: Bearer $API_TOKEN' http://127.0.0.1:$API_PORT/api/v1/stats |
        jq -e '.registrar.nat_pings_sent >= 1 and .registrar.nat_pings_answered >= 1 and .registrar.nat_bindings == 1' >/dev/null"
# Three ping rounds go by while a UA listens at direct's port: nothing comes.
(cd "$WORK" && timeout 3 sipp -sf "$PEERS_DIR/sipp/uas-options.xml" -i 127.0.0.1 -p "$DSRC" -m 1 -nostdin \
    -trace_msg -message_file direct.msg >"$WORK/direct.out" 2>&1) && direct_rc=0 || direct_rc=$?
check "the direct UA got no ping in 3 s (its listener timed out)" test "$direct_rc" = 124
check "... and saw no OPTIONS at all" bash -c "! grep -aq '^OPTIONS' '$WORK/direct.msg' 2>/dev/null"
# A call to natted goes to the source address: the UA there answers it.
(cd "$WORK" && exec timeout 30 sipp -sf "$PEERS_DIR/sipp/uas-call.xml" -s natted -i 127.0.0.1 -p "$SRC" -m 1 -nostdin \
    -trace_msg -message_file natuas.msg >"$WORK/natuas.out" 2>&1) &
uas_pid=$!
PIDS+=("$uas_pid")
sleep 0.3
check "a call to natted through the proxy completes" sipp_scn natcall uac-call.xml -s natted -p "$(free_port)"
check "the UA at the source port answered the call, got ACK and BYE" wait "$uas_pid"
check "... and the INVITE named its private contact" grep -aq "^INVITE sip:natted@$H:$PRIV SIP/2.0" "$WORK/natuas.msg"

# A UA behind NAT that goes away without unregistering (battery, crash): it
# answers no ping, and after [registrar] nat_ping_max_lost unanswered pings
# in a row its binding is removed with user.offline reason unreachable.
P2=$(free_port); A2=$(free_port)
node_ini m "$P2" "$A2" 127.0.0.1 <<INI
[auth]
realm = cascade.test
[registrar]
nat_ping_interval = 1
nat_ping_max_lost = 2
INI
start_cascade natmax "$WORK/m.ini"
PORT=$P2 API_PORT=$A2
check "natmax: cascadectl user add gone" ctl user add gone --password pw3
check "natmax: cascadectl user add stays" ctl user add stays --password pw4
SSRC=$(free_port); SPRIV=$(free_port)
check "stays registers from behind NAT too" \
    sipp_scn regs register.xml -s stays -au stays -ap pw4 -key expires 300 -key cport "$SPRIV" -p "$SSRC"
# stays answers its pings for 4 s (4 rounds, twice nat_ping_max_lost).
(cd "$WORK" && exec timeout 10 sipp -sf "$PEERS_DIR/sipp/uas-options.xml" -i 127.0.0.1 -p "$SSRC" -m 4 -nostdin \
    >"$WORK/stays.out" 2>&1) &
stays_pid=$!
PIDS+=("$stays_pid")
GSRC=$(free_port); GPRIV=$(free_port)
check "gone registers from behind NAT (Contact port $GPRIV, source $GSRC) and then answers nothing" \
    sipp_scn regg register.xml -s gone -au gone -ap pw3 -key expires 300 -key cport "$GPRIV" -p "$GSRC"
check "gone is online and flagged" jq_ok "$(api GET '/registrations?user=gone')" '.registrations[0].nat == true'
check "after 2 unanswered pings gone's binding is removed (within 6 s)" \
    wait_for 6 bash -c "[ \"\$(curl -s -H 'Authorization: Bearer $API_TOKEN' 'http://127.0.0.1:$A2/api/v1/registrations?user=gone' |
        jq '.registrations | length')\" = 0 ]"
check "events: user.offline for gone, reason unreachable" \
    has_event 'select(.type=="user.offline" and .user=="gone" and .reason=="unreachable")'
check "stays answered 4 pings in a row" wait "$stays_pid"
check "... and is still registered: every answer clears its count" \
    jq_ok "$(api GET '/registrations?user=stays')" '.registrations | length == 1'
# A NAT UA that never answers OPTIONS but refreshes its registration every
# second is alive: each refresh starts its count again, so it is never removed.
check "natmax: cascadectl user add refresher" ctl user add refresher --password pw5
RSRC=$(free_port); RPRIV=$(free_port)
check "refresher registers from behind NAT 5 times, one second apart, answering no ping" \
    sipp_scn regr register.xml -s refresher -au refresher -ap pw5 -key expires 300 -key cport "$RPRIV" -p "$RSRC" \
    -m 5 -r 1
check "... and was never removed as unreachable" \
    bash -c "! curl -s -H 'Authorization: Bearer $API_TOKEN' 'http://127.0.0.1:$A2/api/v1/events/recent?since=0' |
        jq -e '[.events[] | select(.user==\"refresher\" and .reason==\"unreachable\")] | length > 0' >/dev/null"
# Once stays and refresher fall silent too, they go the same way: at the
# end all three NAT bindings were removed as unreachable, none is left.
check "GET /stats: the three silent NAT bindings removed as unreachable, none left (within 6 s)" \
    wait_for 6 bash -c "curl -s -H 'Authorization: Bearer $API_TOKEN' http://127.0.0.1:$A2/api/v1/stats |
        jq -e '.registrar.nat_unreachable_removed == 3 and .registrar.nat_bindings == 0' >/dev/null"
check "the removal is logged" grep -q "gone.*answered none of its last 2 NAT pings: removed" "$WORK/natmax.log"

finish
