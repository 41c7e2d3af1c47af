#!/usr/bin/env bash
# test_gb_tls.sh — the GB/T 28181 lower role connects out over TLS (issue 11):
# cascade as a lower platform registers to cascade as an upper platform on a
# tls: listener, checking the upper's certificate against [tls] ca and the
# name in [upstream] tls_name. The registration, keepalives and the catalog
# go over that one connection; the upper sees the device on transport tls. A
# second lower that expects another name in the certificate never registers:
# the handshake fails (hostname mismatch), logged, and it keeps retrying with
# backoff instead of falling back to plain TCP.
source "$(dirname "$0")/lib.sh"
source "$PEERS_DIR/pki.sh"
make_test_pki "$WORK/pki" >/dev/null

UP_SIP=$(free_port); UP_TLS=$(free_port); UP_API=$(free_port)
LO_SIP=$(free_port); LO_API=$(free_port); BAD_SIP=$(free_port); BAD_API=$(free_port)
UP_MEDIA=$(free_range 41)
UP_ID=34020000002000000001
LO_ID=34020000002000000002
BAD_ID=34020000002000000003
API_TOKEN=tok

cat >"$WORK/upper.ini" <<INI
[sip]
listen = udp:127.0.0.1:$UP_SIP, tls:127.0.0.1:$UP_TLS
domain = 3402000000
[tls]
cert = $WORK/pki/server.pem
key = $WORK/pki/server.key
[gb]
enabled = yes
id = $UP_ID
domain = 3402000000
password = gbsecret
allow_unknown = yes
media_ip = 127.0.0.1
media_ports = $UP_MEDIA-$((UP_MEDIA + 40))
[api]
listen = 127.0.0.1:$UP_API
token = $API_TOKEN
[store]
path = $WORK/upper.db
[log]
level = info
INI

# lower_ini NAME SIP API ID TLS_NAME
lower_ini() {
    cat >"$WORK/$1.ini" <<INI
[sip]
listen = udp:127.0.0.1:$2, tcp:127.0.0.1:$2
domain = 3402000000
[tls]
ca = $WORK/pki/ca.pem
[gb]
id = $4
domain = 3402000000
media_ip = 127.0.0.1
[upstream:$UP_ID]
host = 127.0.0.1
port = $UP_TLS
transport = tls
tls_name = $5
password = gbsecret
expires = 60
keepalive_interval = 1
[api]
listen = 127.0.0.1:$3
token = $API_TOKEN
[store]
path = $WORK/$1.db
[log]
level = info
INI
}
lower_ini lower "$LO_SIP" "$LO_API" "$LO_ID" localhost
lower_ini bad "$BAD_SIP" "$BAD_API" "$BAD_ID" other.example

up() { API_PORT=$UP_API api "$@"; }
lo() { API_PORT=$LO_API api "$@"; }
bad() { API_PORT=$BAD_API api "$@"; }

start_cascade upper "$WORK/upper.ini"
start_cascade lower "$WORK/lower.ini"
start_cascade bad "$WORK/bad.ini"

check "lower: registered to the upper over TLS" \
    wait_for 15 bash -c "[ \"\$(API_PORT=$LO_API; curl -s -H 'Authorization: Bearer $API_TOKEN' http://127.0.0.1:$LO_API/api/v1/gb/upstreams | jq -r '.upstreams[0].state')\" = registered ]"
check "lower: the upstream says transport tls" jq_ok "$(lo GET /gb/upstreams)" '.upstreams[0].transport == "tls"'
check "upper: the lower is online on transport tls" \
    wait_for 5 bash -c "curl -s -H 'Authorization: Bearer $API_TOKEN' http://127.0.0.1:$UP_API/api/v1/gb/devices/$LO_ID | jq -e '.online == true and .transport == \"tls\"' >/dev/null"
check "upper: keepalives arrive over it (last_keepalive set)" \
    wait_for 5 bash -c "curl -s -H 'Authorization: Bearer $API_TOKEN' http://127.0.0.1:$UP_API/api/v1/gb/devices/$LO_ID | jq -e '.last_keepalive != null and .last_keepalive != \"\"' >/dev/null"
check "upper: one TLS connection open, its handshake counted" \
    jq_ok "$(up GET /stats)" '.transport.connections.tls == 1 and .transport.tls_handshakes >= 1'
check "lower: one outbound TLS connection" jq_ok "$(lo GET /stats)" '.transport.connections.tls == 1'
check "events: gb.upstream.registered with transport tls" \
    grep -q '"gb.upstream.registered".*"transport":"tls"' "$WORK/lower.log"

check "bad name: never registered" \
    bash -c "sleep 3; [ \"\$(curl -s -H 'Authorization: Bearer $API_TOKEN' http://127.0.0.1:$BAD_API/api/v1/gb/upstreams | jq -r '.upstreams[0].state')\" != registered ]"
check "bad name: the handshake failure is logged with the reason" \
    grep -qE "TLS connection to 127.0.0.1:$UP_TLS: handshake failed: .*(hostname mismatch|verify)" "$WORK/bad.log"
check "bad name: the upper never saw it" \
    bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer $API_TOKEN' http://127.0.0.1:$UP_API/api/v1/gb/devices/$BAD_ID)\" = 404 ]"
check "bad name: no plain TCP fallback (the upper counts no TCP connection)" \
    jq_ok "$(up GET /stats)" '.transport.connections.tcp == 0'
check "bad name: it retries with backoff (a few handshakes, not a storm)" \
    bash -c "n=\$(grep -c 'handshake failed' '$WORK/bad.log'); [ \$n -ge 1 ] && [ \$n -le 10 ]"

finish
