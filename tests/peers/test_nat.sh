#!/usr/bin/env bash
# NAT help with real peers. A sipp UA "behind NAT" registers over UDP with
# its private address (192.168.1.10) in the Via sent-by and the Contact while
# its packets come from 127.0.0.1 (what a NAT does), so cascade flags the
# binding as behind NAT, as Kamailio's nat_uac_test does; cascade then sends
# keepalive OPTIONS to the source address ([registrar] nat_ping_interval,
# here 1 s) that the UA answers. A UA whose Via is its source address is not
# behind NAT, even when its Contact names another port (it listens on
# another socket): it is neither flagged nor pinged. Calls are tested on a
# second, quiet instance (no pings that could reach a UAS before the INVITE):
# to the NATed UA at its source address, to the other at its Contact. A UA
# behind NAT that stops answering is removed after nat_ping_max_lost pings.
source "$(dirname "$0")/lib.sh"

PORT=$(free_port); API_PORT=$(free_port); API_TOKEN=nattoken
H=127.0.0.1
NAT_IP=192.168.1.10
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
check "cascadectl user add split" ctl user add split --password pw6
SRC=$(free_port); PRIV=$(free_port)
check "natted registers from port $SRC, Via and Contact $NAT_IP:$PRIV" \
    sipp_scn regn register-nat.xml -s natted -au natted -ap pw1 -key expires 300 -key nat_ip "$NAT_IP" \
    -key cport "$PRIV" -p "$SRC"
DSRC=$(free_port)
check "direct registers with its source port as Contact" \
    sipp_scn regd register.xml -s direct -au direct -ap pw2 -key expires 300 -key cport "$DSRC" -p "$DSRC"
OSRC=$(free_port); OPORT=$(free_port)
check "split registers from port $OSRC (its Via) with a Contact naming port $OPORT" \
    sipp_scn rego register.xml -s split -au split -ap pw6 -key expires 300 -key cport "$OPORT" -p "$OSRC"
check "GET /registrations: natted is behind NAT, source port kept" \
    jq_ok "$(api GET '/registrations?user=natted')" ".registrations[0].nat == true and .registrations[0].remote == \"$H:$SRC\""
check "GET /registrations: direct is not" jq_ok "$(api GET '/registrations?user=direct')" '.registrations[0].nat == false'
check "GET /registrations: split is not either (Via = source; only the Contact port differs)" \
    jq_ok "$(api GET '/registrations?user=split')" ".registrations[0].nat == false and .registrations[0].remote == \"$H:$OSRC\""
check "the UA at the source port gets a keepalive OPTIONS for its contact and answers it" \
    bash -c "cd '$WORK' && timeout 15 sipp -sf '$PEERS_DIR/sipp/uas-options.xml' -i 127.0.0.1 -p $SRC -m 1 -nostdin \
        -trace_msg -message_file ping.msg >'$WORK/ping.out' 2>&1"
check "the ping named the registered contact" grep -aq "^OPTIONS sip:natted@$NAT_IP:$PRIV SIP/2.0" "$WORK/ping.msg"
check "GET /stats: pings sent and answered, one binding behind NAT" \
    wait_for 5 bash -c "curl -s -H 'Authorization: Bearer $API_TOKEN' http://127.0.0.1:$API_PORT/api/v1/stats |
        jq -e '.registrar.nat_pings_sent >= 1 and .registrar.nat_pings_answered >= 1 and .registrar.nat_bindings == 1' >/dev/null"
# Three ping rounds go by while UAs listen at direct's and split's ports: nothing comes.
(cd "$WORK" && timeout 3 sipp -sf "$PEERS_DIR/sipp/uas-options.xml" -i 127.0.0.1 -p "$OSRC" -m 1 -nostdin \
    -trace_msg -message_file split.msg >"$WORK/split.out" 2>&1) &
split_pid=$!
(cd "$WORK" && timeout 3 sipp -sf "$PEERS_DIR/sipp/uas-options.xml" -i 127.0.0.1 -p "$DSRC" -m 1 -nostdin \
    -trace_msg -message_file direct.msg >"$WORK/direct.out" 2>&1) && direct_rc=0 || direct_rc=$?
wait "$split_pid" && split_rc=0 || split_rc=$?
check "the direct UA got no ping in 3 s (its listener timed out)" test "$direct_rc" = 124
check "... and saw no OPTIONS at all" bash -c "! grep -aq '^OPTIONS' '$WORK/direct.msg' 2>/dev/null"
check "nor did split at its source port" test "$split_rc" = 124
check "... no OPTIONS there" bash -c "! grep -aq '^OPTIONS' '$WORK/split.msg' 2>/dev/null"

# Calls, on an instance of their own without NAT pings: a UAS waiting for
# an INVITE must not be handed an OPTIONS first (who comes first would be
# a race).
CP=$(free_port); CA=$(free_port)
node_ini c "$CP" "$CA" 127.0.0.1 <<INI
[auth]
realm = cascade.test
[registrar]
nat_ping_interval = 0
[proxy]
authenticate = no
INI
start_cascade calls "$WORK/c.ini"
PORT=$CP API_PORT=$CA
check "calls: cascadectl user add natted" ctl user add natted --password pw1
check "calls: cascadectl user add split" ctl user add split --password pw6
CSRC=$(free_port); CPRIV=$(free_port)
check "calls: natted registers from behind NAT (source $CSRC, Contact $NAT_IP:$CPRIV)" \
    sipp_scn cregn register-nat.xml -s natted -au natted -ap pw1 -key expires 300 -key nat_ip "$NAT_IP" \
    -key cport "$CPRIV" -p "$CSRC"
CSSRC=$(free_port); CSPORT=$(free_port)
check "calls: split registers from port $CSSRC with Contact port $CSPORT" \
    sipp_scn cregs register.xml -s split -au split -ap pw6 -key expires 300 -key cport "$CSPORT" -p "$CSSRC"
check "calls: natted flagged, split not" bash -c "
    curl -s -H 'Authorization: Bearer $API_TOKEN' 'http://127.0.0.1:$CA/api/v1/registrations' |
        jq -e '[.registrations[] | select(.user==\"natted\" and .nat)] | length == 1' >/dev/null &&
    curl -s -H 'Authorization: Bearer $API_TOKEN' 'http://127.0.0.1:$CA/api/v1/registrations?user=split' |
        jq -e '.registrations[0].nat == false' >/dev/null"
# A call to natted goes to the source address: the UA there answers it.
sipp_spawn natuas 30 -sf "$PEERS_DIR/sipp/uas-call.xml" -s natted -p "$CSRC"
uas_pid=$SIPP_PID
wait_for 5 bash -c "ss -lun | grep -q ':$CSRC '"
check "a call to natted through the proxy completes" sipp_scn natcall uac-call.xml -s natted -p "$(free_port)"
check "the UA at the source port answered the call, got ACK and BYE" wait "$uas_pid"
check "... and the INVITE named its private contact" grep -aq "^INVITE sip:natted@$NAT_IP:$CPRIV SIP/2.0" "$WORK/natuas.msg"
# A call to split goes to its Contact port, where it listens.
sipp_spawn splituas 30 -sf "$PEERS_DIR/sipp/uas-call.xml" -s split -p "$CSPORT"
suas_pid=$SIPP_PID
wait_for 5 bash -c "ss -lun | grep -q ':$CSPORT '"
check "a call to split through the proxy completes" sipp_scn splitcall uac-call.xml -s split -p "$(free_port)"
check "the UA at split's Contact port answered the call, got ACK and BYE" wait "$suas_pid"
check "... and the INVITE named that contact" grep -aq "^INVITE sip:split@$H:$CSPORT SIP/2.0" "$WORK/splituas.msg"

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
    sipp_scn regs register-nat.xml -s stays -au stays -ap pw4 -key expires 300 -key nat_ip "$NAT_IP" \
    -key cport "$SPRIV" -p "$SSRC"
# stays answers every ping until we stop it (below), so that no check
# depends on how long the steps in between take.
(cd "$WORK" && exec timeout 120 sipp -sf "$PEERS_DIR/sipp/uas-options.xml" -i 127.0.0.1 -p "$SSRC" -m 100000 -nostdin \
    >"$WORK/stays.out" 2>&1) &
stays_pid=$!
PIDS+=("$stays_pid")
GSRC=$(free_port); GPRIV=$(free_port)
check "gone registers from behind NAT (Contact port $GPRIV, source $GSRC) and then answers nothing" \
    sipp_scn regg register-nat.xml -s gone -au gone -ap pw3 -key expires 300 -key nat_ip "$NAT_IP" \
    -key cport "$GPRIV" -p "$GSRC"
check "gone is online and flagged" jq_ok "$(api GET '/registrations?user=gone')" '.registrations[0].nat == true'
check "after 2 unanswered pings gone's binding is removed (within 15 s)" \
    wait_for 15 bash -c "[ \"\$(curl -s -H 'Authorization: Bearer $API_TOKEN' 'http://127.0.0.1:$A2/api/v1/registrations?user=gone' |
        jq '.registrations | length')\" = 0 ]"
check "events: user.offline for gone, reason unreachable" \
    has_event 'select(.type=="user.offline" and .user=="gone" and .reason=="unreachable")'
check "stays answered 4 pings (twice nat_ping_max_lost; gone answers none)" \
    wait_for 15 bash -c "curl -s -H 'Authorization: Bearer $API_TOKEN' http://127.0.0.1:$A2/api/v1/stats |
        jq -e '.registrar.nat_pings_answered >= 4' >/dev/null"
check "... and is still registered: every answer clears its count" \
    jq_ok "$(api GET '/registrations?user=stays')" '.registrations | length == 1'
kill "$stays_pid" 2>/dev/null || true # stays falls silent now
# A NAT UA that never answers OPTIONS but refreshes its registration every
# second is alive: each refresh starts its count again, so it is never removed.
check "natmax: cascadectl user add refresher" ctl user add refresher --password pw5
RSRC=$(free_port); RPRIV=$(free_port)
check "refresher registers from behind NAT 5 times, one second apart, answering no ping" \
    sipp_scn regr register-nat.xml -s refresher -au refresher -ap pw5 -key expires 300 -key nat_ip "$NAT_IP" \
    -key cport "$RPRIV" -p "$RSRC" -m 5 -r 1
check "... and was never removed as unreachable" \
    bash -c "! curl -s -H 'Authorization: Bearer $API_TOKEN' 'http://127.0.0.1:$A2/api/v1/events/recent?since=0' |
        jq -e '[.events[] | select(.user==\"refresher\" and .reason==\"unreachable\")] | length > 0' >/dev/null"
# Once stays and refresher fall silent too, they go the same way: at the
# end all three NAT bindings were removed as unreachable, none is left.
check "GET /stats: the three silent NAT bindings removed as unreachable, none left (within 15 s)" \
    wait_for 15 bash -c "curl -s -H 'Authorization: Bearer $API_TOKEN' http://127.0.0.1:$A2/api/v1/stats |
        jq -e '.registrar.nat_unreachable_removed == 3 and .registrar.nat_bindings == 0' >/dev/null"
check "the removal is logged" grep -q "gone.*answered none of its last 2 NAT pings: removed" "$WORK/natmax.log"

finish
