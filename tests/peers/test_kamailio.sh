#!/usr/bin/env bash
# Interop with Kamailio (Debian's kamailio, a record-routing stateful proxy,
# tests/peers/kamailio/proxy.cfg.in) on both sides of cascade's proxy:
#  A. sipp UAC -> cascade -> Kamailio -> sipp UAS: cascade relays a call for
#     another domain (allow_foreign) once the caller answered its 407; both
#     proxies record-route, ACK and BYE follow the route set through both.
#  B. sipp UAC -> Kamailio (as outbound proxy) -> cascade -> sipp UAS
#     registered as bob (Request-URI sip:bob@cascade): the 407 goes back
#     through Kamailio, the retried INVITE reaches bob's binding, ACK and BYE
#     come back through Kamailio and cascade.
source "$(dirname "$0")/lib.sh"

if ! command -v kamailio >/dev/null; then
    echo "kamailio not installed"; exit 1
fi
H=127.0.0.1
PORT=$(free_port); API_PORT=$(free_port); API_TOKEN=kamtoken
node_ini c "$PORT" "$API_PORT" 127.0.0.1 <<INI
[auth]
realm = cascade.test
[proxy]
allow_foreign = yes
INI
start_cascade cascade "$WORK/c.ini"
CPORT=$PORT

# start_kamailio NAME PORT NEXT_HOSTPORT: a Kamailio proxy on PORT sending new requests to NEXT.
start_kamailio() {
    local name=$1 port=$2 next=$3 i
    sed -e "s/@PORT@/$port/" -e "s/@NEXT@/$next/" "$PEERS_DIR/kamailio/proxy.cfg.in" >"$WORK/$name.cfg"
    kamailio -f "$WORK/$name.cfg" -DD -E -w "$WORK" -m 32 -M 8 >"$WORK/$name.log" 2>&1 &
    PIDS+=("$!")
    for i in $(seq 1 50); do
        ss -Hunl "sport = :$port" | grep -q . && return 0
        sleep 0.1
    done
    echo "kamailio $name did not start"; cat "$WORK/$name.log"; return 1
}
# uas NAME PORT: a sipp UAS (uas-call.xml, user bob) in the background on PORT.
uas() {
    sipp_spawn "$1" 60 -sf "$PEERS_DIR/sipp/uas-call.xml" -s bob -p "$2"
    eval "${1}_PID=$SIPP_PID"
    wait_for 20 udp_bound "$2" || true
}
# call_to TARGET: uac-call-auth.xml with the Request-URI and To at TARGET (host:port).
call_to() {
    sed 's/\[service\]@\[remote_ip\]:\[remote_port\]/[service]@[target]/g' "$PEERS_DIR/sipp/uac-call-auth.xml" \
        >"$WORK/uac-call-target.xml"
    echo "$WORK/uac-call-target.xml"
}

check "cascadectl user add caller" ctl user add caller --password callerpw
check "cascadectl user add bob" ctl user add bob --password bobpw

# A. cascade relays to Kamailio.
KPORT=$(free_port); UASA=$(free_port)
check "Kamailio A starts (next hop: the UAS)" start_kamailio kamA "$KPORT" "$H:$UASA"
uas uasA "$UASA"
check "A: sipp -> cascade (407, credentials) -> Kamailio -> UAS: INVITE/180/200/ACK/BYE" \
    sipp_scn callA "$(call_to)" -s bob -key target "localhost:$KPORT" -au caller -ap callerpw \
    -auth_uri "bob@localhost:$KPORT" -p "$(free_port)"
check "A: the UAS got the call, ACK and BYE" wait "$uasA_PID"
check "A: the INVITE at the UAS was record-routed by Kamailio and by cascade" \
    bash -c "grep -a -A30 '^INVITE sip:bob@localhost:$KPORT' '$WORK/uasA.msg' | grep -aiq '^Record-Route:.*$H:$KPORT' &&
             grep -a -A30 '^INVITE sip:bob@localhost:$KPORT' '$WORK/uasA.msg' | grep -aiq '^Record-Route: <sip:$H:$CPORT;lr>'"
check "A: cascade consumed its credentials (none reached Kamailio's side)" \
    bash -c "! grep -aqi '^Proxy-Authorization' '$WORK/uasA.msg'"
check "A: the BYE came through both proxies (three Vias)" \
    bash -c "test \$(grep -a -A12 '^BYE sip:' '$WORK/uasA.msg' | grep -aci '^Via:') -ge 3"

# B. Kamailio in front of cascade; bob registered with cascade.
UASB=$(free_port)
check "B: bob registers with cascade (digest)" \
    sipp_scn regB register.xml -s bob -au bob -ap bobpw -key expires 300 -key cport "$UASB" -p "$UASB"
K2PORT=$(free_port)
check "Kamailio B starts (next hop: cascade)" start_kamailio kamB "$K2PORT" "$H:$CPORT"
uas uasB "$UASB"
PORT=$K2PORT
check "B: sipp -> Kamailio -> cascade (407 back through Kamailio) -> bob: INVITE/180/200/ACK/BYE" \
    sipp_scn callB "$(call_to)" -s bob -key target "$H:$CPORT" -au caller -ap callerpw \
    -auth_uri "bob@$H:$CPORT" -p "$(free_port)"
check "B: bob's UAS got the call, ACK and BYE" wait "$uasB_PID"
check "B: the INVITE reached bob's contact (the Request-URI cascade looked up)" \
    grep -aq "^INVITE sip:bob@$H:$UASB" "$WORK/uasB.msg"
check "B: the 407 reached the caller through Kamailio" grep -aq '^SIP/2.0 407' "$WORK/callB.msg"
PORT=$CPORT
check "GET /stats: cascade challenged twice and forwarded the calls" \
    jq_ok "$(api GET /stats)" '.proxy.challenged >= 2 and .proxy.auth_failed == 0 and .proxy.forwarded >= 4'

finish
