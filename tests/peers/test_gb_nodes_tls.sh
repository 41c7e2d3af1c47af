#!/usr/bin/env bash
# GB queries across nodes whose API serves TLS only (issue 16): three cascade
# nodes with the GB upper role on a 3-master Redis Cluster (loopback ports
# chosen at run time), devices mirrored, each node's API on https:// only
# ([api] tls_cert, the test PKI: a certificate for localhost and 127.0.0.1),
# the nodes trusting the test CA through [tls] ca. A cascade-gbsim camera
# registers on A.
#  1. A advertises its API in the registry as https://127.0.0.1:PORT.
#  2. GET /gb/devices/{id} and its channels through B (https): B forwards
#     them to A over TLS, the certificate checked against A's address; the
#     answers are A's (the device online, its channel).
#  3. C expects another name in the nodes' certificates ([redis]
#     api_tls_name = api.other.test): its hop is refused by the certificate
#     check, C answers 503 node-unavailable saying why, and A never got the
#     request.
source "$(dirname "$0")/lib.sh"
source "$PEERS_DIR/pki.sh"

for t in redis-server redis-cli jq; do
    command -v "$t" >/dev/null || { echo "SKIP: $t not installed (scripts/install-deps.sh)"; exit 77; }
done

PKI=$WORK/pki
make_test_pki "$PKI"
check "a Redis Cluster forms (3 masters)" redis_cluster_start 3 0
rcli() { redis-cli -c -h 127.0.0.1 -p "${REDIS_PORTS[0]}" "$@" | tr -d '\r'; }

API_TOKEN=gbtlstoken
UPPER=34020000002000000001
DEV=34020000001320000001
CH1=34020000001310000001
declare -A SIP API
for n in a b c; do
    SIP[$n]=$(free_port); API[$n]=$(free_port)
    name_line=
    [ "$n" = c ] && name_line="api_tls_name = api.other.test"
    gb_upper_ini "$n" "${SIP[$n]}" "${API[$n]}" "$UPPER" dev-secret yes <<INI
keepalive_interval = 1
keepalive_misses = 30
catalog_on_register = no
[media]
enabled = no
[tls]
ca = $PKI/ca.pem
[redis]
mirror_bindings = yes
cluster_route = yes
mirror_gb_devices = yes
nodes = 127.0.0.1:${REDIS_PORTS[0]},127.0.0.1:${REDIS_PORTS[1]}
node_id = node-$n
key_prefix = t:
timeout_ms = 1000
heartbeat_ms = 300
api_forward_timeout_ms = 4000
$name_line
INI
    # the API on https:// only
    sed -i "s|^token = $API_TOKEN\$|token = $API_TOKEN\ntls_cert = $PKI/server.pem\ntls_key = $PKI/server.key|" "$WORK/$n.ini"
    start_cascade "$n" "$WORK/$n.ini"
done
# sapi NODE METHOD PATH: the node's API over https (the test CA trusted); the body is printed.
sapi() {
    curl -s --max-time 20 --cacert "$PKI/ca.pem" -X "$2" -H "Authorization: Bearer $API_TOKEN" \
        "https://127.0.0.1:${API[$1]}/api/v1$3"
}
# sstatus NODE PATH: the status code of a GET.
sstatus() {
    curl -s -o "$WORK/body" -w '%{http_code}' --max-time 20 --cacert "$PKI/ca.pem" \
        -H "Authorization: Bearer $API_TOKEN" "https://127.0.0.1:${API[$1]}/api/v1$2" || true
}
sees_two() { [ "$(sapi "$1" GET /stats | jq -r '.cluster.nodes_live')" = 2 ]; }
for n in a b c; do check "node $n (API on https only) sees the two others live" wait_for 20 sees_two "$n"; done
check "... plain http is not served" bash -c "! curl -s --max-time 5 http://127.0.0.1:${API[a]}/api/v1/stats | grep -q '{'"

gb_sim "${SIP[a]}" "$UPPER" gbsim.log --devices 1 --channels 1
online_on_a() { sapi a GET "/gb/devices/$DEV" | jq -e '.online == true' >/dev/null; }
check "the camera is online on node A" wait_for 30 online_on_a
rec_online() { [ "$(rcli hget "t:gbdev:{$DEV}" online)" = 1 ]; }
check "... its record is online in Redis" wait_for 10 rec_online

# ---- 1. the advertised API
check "1. A advertises its API as https://127.0.0.1:${API[a]} (registry field api)" \
    test "$(rcli hget 't:node:{node-a}' api)" = "https://127.0.0.1:${API[a]}"
check "... and logs it" grep -q "this node's API reached by its peers at https://127.0.0.1:${API[a]}" "$WORK/a.log"

# ---- 2. through B, over TLS to A
code=$(sstatus b "/gb/devices/$DEV")
check "2. GET /gb/devices/$DEV through B: 200 ($code)" test "$code" = 200
check "... A's answer: the device, online" jq_ok "$(cat "$WORK/body")" ".id == \"$DEV\" and .online == true"
check "... B forwarded it to A over https" \
    grep -q "forwarded to node node-a (https://127.0.0.1:${API[a]})" "$WORK/b.log"
code=$(sstatus b "/gb/devices/$DEV/channels")
cp "$WORK/body" "$WORK/channels-b.json"
check "... its channel tree through B: 200, the same JSON A answers itself ($code)" \
    bash -c "[ '$code' = 200 ] && [ \"\$(jq -S . '$WORK/channels-b.json')\" = \"\$(curl -s --cacert '$PKI/ca.pem' \
        -H 'Authorization: Bearer $API_TOKEN' https://127.0.0.1:${API[a]}/api/v1/gb/devices/$DEV/channels | jq -S .)\" ]"
check "... B counted two node queries" test "$(sapi b GET /stats | jq '.gb_upper.node_queries')" -ge 2
check "... A saw them as peer queries" test "$(sapi a GET /stats | jq '.gb_upper.peer_queries')" -ge 2

# ---- 3. C checks for a name the certificates do not carry
peer_q0=$(sapi a GET /stats | jq '.gb_upper.peer_queries')
code=$(sstatus c "/gb/devices/$DEV")
check "3. through C (api_tls_name = api.other.test): 503 ($code)" test "$code" = 503
check "... node-unavailable, saying the certificate did not verify" \
    jq_ok "$(cat "$WORK/body")" '.error == "node-unavailable" and (.detail | test("verify"))'
check "... A never got the request" test "$(sapi a GET /stats | jq '.gb_upper.peer_queries')" = "$peer_q0"

finish
