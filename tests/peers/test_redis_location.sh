#!/usr/bin/env bash
# The location service mirrored into Redis Cluster ([redis] mirror_bindings,
# issue 16): a real 3-master cluster (with a replica each) of Debian's
# redis-server, cascade writing its bindings behind into it; sipp registers
# users over UDP and one over TCP and the test reads the keys back with
# redis-cli -c:
#  1. each UDP registration: the key t:loc:{user} holds the contact
#     with this node's id, the transport and the source, and a TTL;
#  2. the TCP registration carries its flow (connection id); when the
#     connection closes the binding goes and so does the key;
#  3. an unregister (Expires 0) removes the key;
#  4. a Redis master killed -9, its replica promoted: new registrations on
#     its slots are still mirrored (the client follows the new map);
#  4b. Redis paused for writes: REGISTER still answered, the writes fail
#     (counted), and a resync follows once Redis takes writes again;
#  5. cascade killed -9: a short-lived binding's key expires on its TTL
#     while a long-lived one stays (nobody deleted them: the TTL did);
#  6. cascade restarted on its database: the bindings it loads are written
#     into the cluster again (a key deleted meanwhile comes back).
source "$(dirname "$0")/lib.sh"

for t in redis-server redis-cli sipp; do
    command -v "$t" >/dev/null || { echo "SKIP: $t not installed (scripts/install-deps.sh)"; exit 77; }
done

check "a Redis Cluster forms (3 masters + 3 replicas)" redis_cluster_start 3 1
RCLI_PORT=${REDIS_PORTS[0]}
rcli() { redis-cli -c -h 127.0.0.1 -p "$RCLI_PORT" "$@" | tr -d '\r'; }

PORT=$(free_port); API_PORT=$(free_port); API_TOKEN=mirrortoken
node_ini a "$PORT" "$API_PORT" 127.0.0.1 <<INI
[registrar]
min_expires = 5
[redis]
mirror_bindings = yes
nodes = 127.0.0.1:${REDIS_PORTS[0]},127.0.0.1:${REDIS_PORTS[1]}
node_id = node-a
key_prefix = t:
timeout_ms = 1000
INI
start_cascade a "$WORK/a.ini"
check "the mirror says it started" grep -q "bindings mirrored into the cluster" "$WORK/a.log"
for u in u1 u2 u3 u4 u5 u6 u7 u8; do ctl user add "$u" --password "${u}pw" >/dev/null; done

key() { echo "t:loc:{$1}"; }  # the location keys an AoR by its user
# field USER CONTACT JQ: JQ over the mirrored record of USER's CONTACT
field() { rcli hget "$(key "$1")" "$2" | jq -r "$3"; }
has_field() { [ -n "$(rcli hget "$(key "$1")" "$2")" ]; }
no_key() { [ "$(rcli exists "$(key "$1")")" = 0 ]; }
pttl() { rcli pttl "$(key "$1")"; }
reg() { # reg USER CPORT EXPIRES [sipp args]
    local u=$1 cp=$2 ex=$3; shift 3
    sipp_scn "$u-$cp-$ex" register.xml -s "$u" -au "$u" -ap "${u}pw" -key expires "$ex" -key cport "$cp" \
        -p "$(free_port)" "$@"
}

# ---- 1. three users over UDP
for i in 1 2 3; do
    u=u$i; c="sip:$u@127.0.0.1:50$i$i"
    check "1. sipp UDP: $u REGISTER -> 200" reg "$u" "50$i$i" 300
    check "... $u's binding is mirrored ($(key $u) field $c)" wait_for 20 has_field "$u" "$c"
    check "... with node id node-a" [ "$(field "$u" "$c" .node)" = node-a ]
    check "... transport udp, flow 0, the source address" \
        [ "$(field "$u" "$c" '.transport + " " + (.flow|tostring) + " " + (.remote|split(":")[0])')" = "udp 0 127.0.0.1" ]
    t=$(pttl "$u")
    check "... and a TTL ($t ms) within the granted 300 s" [ "$t" -gt 0 ] && [ "$t" -le 300000 ]
done

# ---- 2. one over TCP, the connection held open by sipp
(cd "$WORK" && exec timeout 90 sipp "127.0.0.1:$PORT" -sf "$PEERS_DIR/sipp/register-hold.xml" -t t1 -i 127.0.0.1 \
    -m 1 -nostdin -s u4 -au u4 -ap u4pw -key expires 300 -key cport 5044 -p "$(free_port)" >"$WORK/u4tcp.out" 2>&1) &
tcp_pid=$!
PIDS+=("$tcp_pid")
c4="sip:u4@127.0.0.1:5044"
check "2. sipp TCP: u4's binding is mirrored" wait_for 30 has_field u4 "$c4"
check "... transport tcp with its flow (a connection id)" \
    [ "$(field u4 "$c4" '.transport + " " + ((.flow > 0)|tostring)')" = "tcp true" ]
check "... node id node-a, TTL > 0" [ "$(field u4 "$c4" .node)" = node-a ] && [ "$(pttl u4)" -gt 0 ]
kill "$tcp_pid" 2>/dev/null || true
check "... sipp gone, the connection closed: the key is removed" wait_for 20 no_key u4

# ---- 3. unregister
check "3. sipp UDP: u1 unregisters (Expires 0) -> 200" reg u1 5011 0
check "... u1's key is removed" wait_for 20 no_key u1
check "... u2's is still there" has_field u2 "sip:u2@127.0.0.1:5022"

stats() { api GET /stats | jq -r ".redis_mirror.$1"; }
check "/stats: redis_mirror writes_ok > 0, none failed or dropped" \
    [ "$(stats writes_ok)" -gt 0 ] && [ "$(stats writes_failed)" = 0 ] && [ "$(stats writes_dropped)" = 0 ]
check "/stats: redis_mirror node_id node-a" [ "$(stats node_id)" = node-a ]

# ---- 4. the master of u2's slot killed -9, its replica promoted
slot=$(redis_slot_of "$(key u2)")
read -r victim rep < <(redis_pair_for "$slot")
check "4. u2's slot $slot is on master $victim, replicated on $rep" [ -n "$victim" ] && [ -n "$rep" ]
synced() { redis_rc "$rep" info replication | tr -d '\r' | grep -q '^master_link_status:up$' &&
    [ "$(redis_rc "$victim" dbsize)" = "$(redis_rc "$rep" dbsize)" ]; }
check "... the replica is in sync" wait_for 30 synced
kill -9 "${REDIS_PID[$victim]}"
check "... master killed; the replica is promoted" wait_for 60 redis_promoted "$rep"
live=()
for p in "${REDIS_PORTS[@]}"; do [ "$p" != "$victim" ] && live+=("$p"); done
RCLI_PORT=$rep
all_ok() { local p; for p in "${live[@]}"; do
    redis_rc "$p" cluster info | tr -d '\r' | grep -q '^cluster_state:ok$' || return 1; done; }
check "... the cluster is ok again" wait_for 60 all_ok
check "... u2's first binding survived the failover" has_field u2 "sip:u2@127.0.0.1:5022"
check "... sipp UDP: u2 registers a second contact -> 200" reg u2 5023 300
check "... which is mirrored on the promoted master" wait_for 30 has_field u2 "sip:u2@127.0.0.1:5023"
check "... sipp UDP: u5 (new) registers -> 200" reg u5 5055 300
check "... and is mirrored" wait_for 30 has_field u5 "sip:u5@127.0.0.1:5055"
check "... /stats still counts no dropped write" [ "$(stats writes_dropped)" = 0 ]

# ---- 4b. Redis takes no writes for a while (CLIENT PAUSE WRITE on every
#      master, lifted by hand): REGISTER is still answered, the mirror's
#      writes time out and are counted failed; once writes are taken again,
#      the next answered write starts a resync of every binding
mapfile -t LIVE_MASTERS < <(redis_masters "$rep")
check "4b. three live masters after the failover" [ "${#LIVE_MASTERS[@]}" -eq 3 ]
failed0=$(stats writes_failed); resync0=$(stats resyncs)
for p in "${LIVE_MASTERS[@]}"; do redis_rc "$p" client pause 120000 write >/dev/null; done
check "... every master paused for writes; sipp UDP: u7 registers -> 200 all the same" reg u7 5077 300
failed_more() { [ "$(stats writes_failed)" -gt "$failed0" ]; }
check "... the mirror's writes time out (writes_failed grows)" wait_for 30 failed_more
for p in "${LIVE_MASTERS[@]}"; do redis_rc "$p" client unpause >/dev/null; done
check "... writes taken again: sipp UDP: u8 registers -> 200" reg u8 5088 300
resynced() { [ "$(stats resyncs)" -gt "$resync0" ]; }
check "... the mirror counts a resync" wait_for 30 resynced
check "... u7's binding is in the cluster" wait_for 30 has_field u7 "sip:u7@127.0.0.1:5077"
check "... and u8's" wait_for 30 has_field u8 "sip:u8@127.0.0.1:5088"

# ---- 5. cascade killed -9: the TTL cleans up after it
check "5. sipp UDP: u6 registers for 5 s -> 200" reg u6 5066 5
check "... mirrored" wait_for 20 has_field u6 "sip:u6@127.0.0.1:5066"
t=$(pttl u6)
check "... with a TTL ($t ms) of at most 5 s" [ "$t" -gt 0 ] && [ "$t" -le 5000 ]
kill -9 "$a_PID"
check "... cascade killed -9" wait_for 10 not kill -0 "$a_PID"
check "... u6's key expires on its own" wait_for 30 no_key u6
check "... u3's (300 s) is still there" has_field u3 "sip:u3@127.0.0.1:5033"
check "... with its TTL" [ "$(pttl u3)" -gt 0 ]

# ---- 6. restarted on the same database: the bindings loaded from SQLite
#      (no callbacks) are written again at start-up
rcli del "$(key u3)" >/dev/null
check "6. u3's key deleted by hand while cascade is down" no_key u3
start_cascade a2 "$WORK/a.ini"
check "... restarted: u3's binding (loaded from the store) is mirrored again" \
    wait_for 30 has_field u3 "sip:u3@127.0.0.1:5033"
check "... with node id node-a and a TTL" [ "$(field u3 "sip:u3@127.0.0.1:5033" .node)" = node-a ] && [ "$(pttl u3)" -gt 0 ]
finish
