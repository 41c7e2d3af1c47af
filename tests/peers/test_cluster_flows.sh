#!/usr/bin/env bash
# Connection-oriented flows across nodes (issue 16): three cascade nodes (a,
# b, c) on a 3-master Redis Cluster (Debian's redis-server, loopback ports
# chosen at run time), each with `[store] backend = redis` and no sharing
# switch of its own: bindings mirrored, cluster routing on, SIP users shared
# and every node's events in one stream; two real softphones (baresip) over
# TCP.
#  0. each node says backend redis (/stats) and runs what it turned on.
#  1. alice registers on A over TCP, bob on C over TCP; both bindings are
#     mirrored with their node and transport.
#  2. bob calls alice: C finds alice's flow on A, hands the INVITE to A,
#     which alone holds her TCP connection; she auto-answers, both sides
#     see the call established, bob hangs up and alice sees the BYE.
#  3. A is killed -9: alice's connection drops with it. Her phone comes
#     back on B (as a phone with a second registrar does) over a new TCP
#     connection; a survivor reaps A's bindings.
#  4. bob calls alice again: C now routes to B, over alice's new flow; the
#     call is established and ended. alice's events in the one stream: at
#     most one user.offline (node-lost, when the reap came before her new
#     registration), never two.
source "$(dirname "$0")/lib.sh"

for t in redis-server redis-cli baresip jq; do
    command -v "$t" >/dev/null || { echo "SKIP: $t not installed (scripts/install-deps.sh)"; exit 77; }
done
baresip_moddir

check "a Redis Cluster forms (3 masters)" redis_cluster_start 3 0
rcli() { redis-cli -c -h 127.0.0.1 -p "${REDIS_PORTS[0]}" "$@" | tr -d '\r'; }

API_TOKEN=flowstoken
declare -A SIP API
for n in a b c; do
    SIP[$n]=$(free_port); API[$n]=$(free_port)
    node_ini "$n" "${SIP[$n]}" "${API[$n]}" 127.0.0.1 <<INI
[auth]
realm = flows.test
[proxy]
invite_timeout = 30
[store]
backend = redis
[redis]
nodes = 127.0.0.1:${REDIS_PORTS[0]},127.0.0.1:${REDIS_PORTS[1]}
node_id = node-$n
key_prefix = t:
timeout_ms = 1000
heartbeat_ms = 300
INI
    start_cascade "$n" "$WORK/$n.ini"
done
on() { API_PORT=${API[$1]}; PORT=${SIP[$1]}; }   # on NODE: api/ctl toward that node
cstat() { on "$1"; api GET /stats | jq -r ".cluster.$2"; }
sees_two() { [ "$(cstat "$1" nodes_live)" = 2 ]; }
for n in a b c; do check "node $n sees the two others live" wait_for 20 sees_two "$n"; done
# backend = redis: the backend in /stats, and the mirror, users and stream it turned on running
shares() { on "$1"; api GET /stats | jq -e '.store.backend == "redis" and (.redis_mirror | type == "object")
    and (.redis_users | type == "object") and (.events_stream | type == "object")' >/dev/null; }
for n in a b c; do check "0. node $n: backend redis, bindings, users and events shared" shares "$n"; done

on a
add_users() { ctl user add alice --password alicepw >/dev/null && ctl user add bob --password bobpw >/dev/null; }
check "alice and bob added once (on A), shared through Redis" add_users
user_on() { on "$1"; ctl user list 2>/dev/null | grep -qw "$2"; }
both_on_c() { user_on c alice && user_on c bob; }
check "... C knows both users" wait_for 20 both_on_c

# binding_node USER: the node holding USER's binding in Redis (one binding), and its transport.
binding_of() { rcli hgetall "t:loc:{$1}" | awk 'NR % 2 == 0' | grep -o '"node":"[^"]*"\|"transport":"[^"]*"' | tr '\n' ' '; }
mirrored() { binding_of "$1" | grep -q "\"node\":\"$2\""; }

# ---- 1. alice on A, bob on C, over TCP
baresip_tone
baresip_phone_start alice alicepw "127.0.0.1:${SIP[a]}"
baresip_phone_start bob bobpw "127.0.0.1:${SIP[c]}"
check "1. alice's TCP binding is mirrored with node-a" wait_for 20 mirrored alice node-a
check "... bob's with node-c" wait_for 20 mirrored bob node-c
on a
check "... A lists alice over tcp" \
    jq_ok "$(api GET /registrations)" '[.registrations[] | select(.user == "alice" and .transport == "tcp")] | length == 1'

# established N NAME: NAME's log shows at least N established calls; closed likewise.
established() { [ "$(grep -aci 'established' "$WORK/baresip-$2.log")" -ge "$1" ]; }
closed() { [ "$(grep -aciE 'call closed|terminated' "$WORK/baresip-$2.log")" -ge "$1" ]; }

# ---- 2. bob (C) calls alice (TCP flow on A)
fwd0=$(on c; api GET /stats | jq '.proxy.cluster_forwarded')
check "2. bob dials alice through C (ctrl_tcp)" bctl "$bob_CTRL" dial "sip:alice@127.0.0.1:${SIP[c]}"
both_established() { established "$1" bob && established "$2" alice; }
check "... the call is established on both phones" wait_for 15 both_established 1 1
check "... C handed it to another node" [ "$(on c; api GET /stats | jq '.proxy.cluster_forwarded')" -gt "$fwd0" ]
check "... A took it from a peer" [ "$(on a; api GET /stats | jq '.proxy.from_peers')" -ge 1 ]
sleep 1
check "... bob hangs up" bctl "$bob_CTRL" hangup
check "... alice sees the call end (the BYE reached her flow through A)" \
    wait_for 10 closed 1 alice

# ---- 3. A dies; alice's phone comes back on B
seq_b=$(on b; events_json | jq '.last_seq')
kill -9 "$a_PID"
check "3. node A killed -9" wait_for 10 not kill -0 "$a_PID"
kill -9 "$alice_PID" 2>/dev/null || true
cp "$WORK/baresip-alice.log" "$WORK/baresip-alice-1.log"
baresip_phone_start alice alicepw "127.0.0.1:${SIP[b]}"
check "... alice registers again, on B over a new TCP connection" wait_for 20 mirrored alice node-b
check "... a survivor reaped A: A's binding for alice is gone" wait_for 30 not mirrored alice node-a
on b
check "... B lists alice over tcp" \
    jq_ok "$(api GET /registrations)" '[.registrations[] | select(.user == "alice" and .transport == "tcp")] | length == 1'

# ---- 4. bob calls alice again: now through B
fwd1=$(on c; api GET /stats | jq '.proxy.cluster_forwarded')
check "4. bob dials alice again" bctl "$bob_CTRL" dial "sip:alice@127.0.0.1:${SIP[c]}"
check "... established on both phones (alice on her flow to B)" \
    wait_for 15 both_established 2 1
check "... C handed it to another node" [ "$(on c; api GET /stats | jq '.proxy.cluster_forwarded')" -gt "$fwd1" ]
check "... B took it from a peer" [ "$(on b; api GET /stats | jq '.proxy.from_peers')" -ge 1 ]
sleep 1
check "... bob hangs up" bctl "$bob_CTRL" hangup
check "... alice sees the call end (the BYE reached her flow through B)" wait_for 10 closed 1 alice
# One stream for every node (events_stream): B's API serves C's events too.
offline_count() { (on b; events_json "$seq_b") |
    jq '[.events[] | select(.type == "user.offline" and .user == "alice")] | length'; }
n_off=$(offline_count)
echo "  alice's user.offline events in the stream since the kill: $n_off"
check "... at most one user.offline for alice across the survivors" [ "$n_off" -le 1 ]
offline_is_node_lost() { [ "$n_off" = 0 ] || (on b; events_json "$seq_b") |
    jq -e '[.events[] | select(.type == "user.offline" and .user == "alice")][0] | .reason == "node-lost"' >/dev/null; }
check "... and, if one, with reason node-lost" offline_is_node_lost

finish
