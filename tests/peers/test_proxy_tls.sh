#!/usr/bin/env bash
# The proxy connects out over TLS (RFC 3261 §26, RFC 5922 §4): a caller on
# UDP at node A calls sip:bob@localhost:P;transport=tls, a user of node B
# that listens on TLS with a certificate for "localhost" from the test CA. A
# looks the name up, opens TLS, checks the certificate against [tls] ca and
# the name (sent as SNI too), and the call goes through: INVITE, 200, ACK and
# BYE over that one connection, the callee (sipp on UDP at B) sees both
# proxies' Record-Routes, A's for the TLS side with ;transport=tls. A node
# C with a certificate no CA signed is never reached: the handshake fails
# (logged with the reason) and the caller gets a 5xx, not a plain-TCP retry.
source "$(dirname "$0")/lib.sh"
source "$PEERS_DIR/pki.sh"
make_test_pki "$WORK/pki" >/dev/null

A=$(free_port); A_API=$(free_port)
B=$(free_port); B_TLS=$(free_port); B_API=$(free_port)
C=$(free_port); C_TLS=$(free_port); C_API=$(free_port)
API_TOKEN=tok

node_conf() { # NAME LISTEN DOMAIN API [extra sections]
    cat >"$WORK/$1.ini" <<INI
[sip]
listen = $2
domain = $3
[proxy]
allow_foreign = yes
authenticate = no
[tls]
ca = $WORK/pki/ca.pem
${5:-}
[api]
listen = 127.0.0.1:$4
token = $API_TOKEN
[store]
path = $WORK/$1.db
[log]
level = info
INI
}
node_conf a "udp:127.0.0.1:$A" 127.0.0.1 "$A_API"
node_conf b "udp:127.0.0.1:$B, tls:127.0.0.1:$B_TLS" localhost "$B_API" \
    "cert = $WORK/pki/server.pem
key = $WORK/pki/server.key"
node_conf c "udp:127.0.0.1:$C, tls:127.0.0.1:$C_TLS" localhost "$C_API" \
    "cert = $WORK/pki/stranger.pem
key = $WORK/pki/stranger.key"
start_cascade a "$WORK/a.ini"
start_cascade b "$WORK/b.ini"
start_cascade c "$WORK/c.ini"

# bob registers at B (AoR sip:bob@localhost) from a sipp UAS port.
API_PORT=$B_API
check "B: user bob" ctl user add bob --password bobpw
UAS=$(free_port)
sed 's/@\[remote_ip\]>/@localhost>/g' "$PEERS_DIR/sipp/register.xml" >"$WORK/register-localhost.xml"
check "bob registers at B over UDP" \
    bash -c "cd '$WORK' && timeout 30 sipp 127.0.0.1:$B -sf register-localhost.xml -i 127.0.0.1 -m 1 -nostdin \
        -s bob -au bob -ap bobpw -key expires 300 -key cport $UAS -p $UAS >reg.out 2>&1"
check "B: bob's binding is there" jq_ok "$(api GET /registrations)" '[.registrations[] | select(.user=="bob")] | length == 1'

# call_scn TLS_PORT: uac-call.xml calling sip:bob@localhost:TLS_PORT;transport=tls (a file in $WORK).
call_scn() {
    sed -e "s|INVITE sip:\[service\]@\[remote_ip\]:\[remote_port\] SIP/2.0|INVITE sip:bob@localhost:$1;transport=tls SIP/2.0|" \
        -e "s|^To: <sip:\[service\]@\[remote_ip\]:\[remote_port\]>|To: <sip:bob@localhost>|" \
        "$PEERS_DIR/sipp/uac-call.xml" >"$WORK/call-$1.xml"
    echo "$WORK/call-$1.xml"
}
sipp_spawn uas 60 -sf "$PEERS_DIR/sipp/uas-call.xml" -s bob -p "$UAS"
UAS_PID=$SIPP_PID
sleep 0.3
check "A -> B over TLS: the call completes (INVITE, 200, ACK, BYE)" \
    bash -c "cd '$WORK' && timeout 60 sipp 127.0.0.1:$A -sf '$(call_scn "$B_TLS")' -i 127.0.0.1 -m 1 -nostdin -s bob -p $(free_port) -trace_err -error_file uac.err >uac.out 2>&1"
check "the callee finished its scenario" wait "$UAS_PID"
check "the callee saw A's Record-Route for the TLS side" grep -aq "^Record-Route: <sip:127.0.0.1:$A;transport=tls;lr>" "$WORK/uas.msg"
check "the callee saw B's Record-Routes (TLS in, UDP out)" \
    bash -c "grep -aq '^Record-Route: <sip:localhost:$B_TLS;transport=tls;lr>\|^Record-Route: <sip:127.0.0.1:$B_TLS;transport=tls;lr>' '$WORK/uas.msg'"
check "A: one outbound TLS connection, its handshake done" \
    jq_ok "$(API_PORT=$A_API api GET /stats)" '.transport.connections.tls == 1 and .transport.tls_handshakes == 1'
check "B: one accepted TLS connection" jq_ok "$(api GET /stats)" '.transport.connections.tls == 1'

check "A -> C (certificate no CA signed): the caller gets a 5xx" \
    bash -c "cd '$WORK' && timeout 60 sipp 127.0.0.1:$A -sf '$(call_scn "$C_TLS")' -i 127.0.0.1 -m 1 -nostdin -s bob -p $(free_port) -trace_msg -message_file uac2.msg >uac2.out 2>&1; grep -aE '^SIP/2.0 5[0-9][0-9] ' uac2.msg"
check "A logged the handshake failure with the reason" \
    grep -qE "TLS connection to 127.0.0.1:$C_TLS: handshake failed: .*verify" "$WORK/a.log"
check "C never got a SIP message" jq_ok "$(API_PORT=$C_API api GET /stats)" '(.messages_in | length) == 0'
finish
