#!/usr/bin/env bash
# A dead node's GB devices reaped (issue 16, node death): how long one
# survivor takes to mark DEVICES devices of a dead node offline, and whether
# its loop stays responsive meanwhile.
#
# Usage: bench/gb-node-death.sh [BUILD_DIR]
#   DEVICES=100000   devices planted for the dead node
#   NODES=2          survivors (cascade nodes with the GB upper role)
#   EVENTS_STREAM=no yes: [redis] events_stream on every survivor (the events
#                    written into the stream by the reap's scripts, one
#                    heartbeat after the marking walk, by a second walk)
#
# A one-master Redis Cluster (so the records can be planted with one
# redis-cli --pipe); node-x, never started, is planted as a node that died
# with DEVICES online devices: its registry entry, its incarnation r1, a
# record t:gbdev:{id} per device naming it, and its device index
# t:node-gbdevs:{node-x}:r1. The survivors see its hash missing, one claims
# it, walks the index (SSCAN COUNT 128, at most 128 scripts in flight) and
# marks each device offline with one gb.device.offline node-lost.
# Printed: seconds from the plant to the index's deletion (the reap's end;
# detection takes 3 heartbeats of 300 ms first), devices reaped summed over
# the survivors' /stats (must be DEVICES), records still online (must be
# 0), and the largest /stats answer time seen on each survivor while it ran
# (curl, one request per 50 ms per node: a blocked loop shows here).
# Not a test: it loads the machine for the length of the reap.
source "$(dirname "$0")/../tests/peers/lib.sh"
devices=${DEVICES:-100000}
nodes=${NODES:-2}
stream_ini=""
[ "${EVENTS_STREAM:-no}" = yes ] && stream_ini="events_stream = yes"

for t in redis-server redis-cli jq curl; do
    command -v "$t" >/dev/null || { echo "SKIP: $t not installed"; exit 77; }
done
# One master holding every slot (redis-cli --cluster create wants three).
P=$(free_range 2)
mkdir -p "$WORK/r$P"
redis-server --port "$P" --bind 127.0.0.1 --cluster-enabled yes --cluster-port $((P + 1)) \
    --cluster-config-file "$WORK/r$P/nodes.conf" --dir "$WORK/r$P" --save '' --appendonly no \
    --logfile "$WORK/redis-$P.log" &
PIDS+=("$!")
rcli() { redis-cli -h 127.0.0.1 -p "$P" "$@" | tr -d '\r'; }
wait_for 30 bash -c "[ \"\$(redis-cli -h 127.0.0.1 -p $P ping)\" = PONG ]"
rcli cluster addslotsrange 0 16383 >/dev/null
cluster_up() { rcli cluster info | grep -q '^cluster_state:ok$'; }
wait_for 30 cluster_up || { echo "the cluster did not form"; exit 1; }

API_TOKEN=gbdeathtoken
declare -A SIPP APIP
names=()
for ((i = 0; i < nodes; i++)); do
    n=s$i
    names+=("$n")
    SIPP[$n]=$(free_port); APIP[$n]=$(free_port)
    gb_upper_ini "$n" "${SIPP[$n]}" "${APIP[$n]}" 34020000002000000001 dev-secret yes <<INI
[media]
enabled = no
[redis]
mirror_bindings = yes
cluster_route = yes
mirror_gb_devices = yes
nodes = 127.0.0.1:$P
node_id = node-$n
key_prefix = t:
timeout_ms = 2000
heartbeat_ms = 300
$stream_ini
[log]
level = warn
INI
    start_cascade "$n" "$WORK/$n.ini"
done
stat_of() { curl -s -H "Authorization: Bearer $API_TOKEN" "http://127.0.0.1:${APIP[$1]}/api/v1/stats"; }
live() { [ "$(stat_of "$1" | jq -r .cluster.nodes_live)" = $((nodes - 1)) ]; }
for n in "${names[@]}"; do wait_for 30 live "$n" || { echo "node $n does not see its peers"; exit 1; }; done

echo "planting $devices devices of node-x ..."
now=$(date +%s%3N)
python3 - "$devices" "$now" <<'PY' | redis-cli -h 127.0.0.1 -p "$P" --pipe >"$WORK/pipe.log"
import sys
n, now = int(sys.argv[1]), int(sys.argv[2])
out = sys.stdout.buffer
def cmd(*a):
    out.write(b"*%d\r\n" % len(a))
    for x in a:
        x = x if isinstance(x, bytes) else str(x).encode()
        out.write(b"$%d\r\n%s\r\n" % (len(x), x))
ids = ["3402000000132%07d" % (i + 1) for i in range(n)]
for d in ids:
    k = "t:gbdev:{%s}" % d
    cmd("HSET", k, "node", "node-x", "inc", "r1", "transport", "udp", "remote", "127.0.0.1:9", "online", "1",
        "registered", now, "keepalive", now, "expires", now + 3600000)
    cmd("PEXPIRE", k, 3600000)
for i in range(0, n, 1000):
    cmd("SADD", "t:node-gbdevs:{node-x}:r1", *ids[i:i + 1000])
PY
[ "$(rcli scard 't:node-gbdevs:{node-x}:r1')" = "$devices" ] || { echo "planting failed"; cat "$WORK/pipe.log"; exit 1; }
r0=$(for n in "${names[@]}"; do stat_of "$n" | jq -r .cluster.gb_devices_reaped; done | paste -sd+ | bc)
rcli sadd 't:node-incs:{node-x}' r1 >/dev/null
t0=$(date +%s%3N)
rcli sadd t:nodes node-x >/dev/null

declare -A MAXMS
for n in "${names[@]}"; do MAXMS[$n]=0; done
while [ "$(rcli exists 't:node-gbdevs:{node-x}:r1')" = 1 ]; do
    for n in "${names[@]}"; do
        ms=$(curl -s -o /dev/null -w '%{time_total}' -H "Authorization: Bearer $API_TOKEN" \
            "http://127.0.0.1:${APIP[$n]}/api/v1/stats" | awk '{printf "%d", $1 * 1000}')
        [ "$ms" -gt "${MAXMS[$n]}" ] && MAXMS[$n]=$ms
    done
    sleep 0.05
    if [ $(( $(date +%s%3N) - t0 )) -gt 600000 ]; then echo "not reaped in 600 s"; exit 1; fi
done
t1=$(date +%s%3N)
r1=$(for n in "${names[@]}"; do stat_of "$n" | jq -r .cluster.gb_devices_reaped; done | paste -sd+ | bc)
still=$(redis-cli -h 127.0.0.1 -p "$P" --scan --pattern 't:gbdev:*' | head -n "$devices" |
    awk '{print "HGET " $0 " online"}' | redis-cli -h 127.0.0.1 -p "$P" | grep -c '^1$' || true)
echo "devices $devices, survivors $nodes"
echo "reap: $(( (t1 - t0) )) ms from the plant to the index deleted (detection: 3 heartbeats of 300 ms + 3 rounds)"
echo "devices reaped (summed over survivors' /stats): $((r1 - r0)); records still online: $still"
for n in "${names[@]}"; do echo "node $n: largest /stats answer during the reap ${MAXMS[$n]} ms"; done
if [ -n "$stream_ini" ]; then
    lost=$(redis-cli -c -h 127.0.0.1 -p "$P" --raw xrange 't:{events}:stream' - + | grep -c '"reason":"node-lost"' || true)
    echo "events stream: $lost gb.device.offline node-lost entries (must be $devices)"
fi
finish
