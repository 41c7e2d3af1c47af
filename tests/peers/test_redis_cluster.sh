#!/usr/bin/env bash
# The Redis Cluster client (src/redis, issue 16) against a real cluster: 3
# masters and 3 replicas of Debian's redis-server on loopback ports chosen
# now, driven by tests/peers/redis_cluster_probe.c (one client, one loop,
# kept for the whole run so its slot map goes stale on purpose):
#  1. keys over all slots written and read back; every master holds some;
#  2. a slot resharded under the client (MOVED): the read still answers and
#     the client counted the redirection;
#  3. a slot half-migrated, one key moved (ASK): the moved key, a key left
#     behind and a new key all answer; the map is not changed by ASK;
#  4. a master killed -9: once its replica is promoted, every key reads back
#     and new writes land, without restarting the client.
source "$(dirname "$0")/lib.sh"

command -v redis-server >/dev/null && command -v redis-cli >/dev/null ||
    { echo "SKIP: redis-server/redis-cli not installed (scripts/install-deps.sh)"; exit 77; }
PROBE_BIN=$BUILD_DIR/redis_cluster_probe
[ -x "$PROBE_BIN" ] || { echo "FAIL: $PROBE_BIN not built"; exit 1; }

# Six data ports and six cluster bus ports (the bus would be port+10000 by
# default, outside this test's slot).
base=$(free_range 12)
PORTS=() BUS=()
for i in 0 1 2 3 4 5; do PORTS+=($((base + i))); BUS+=($((base + 6 + i))); done
declare -A RPID
for i in 0 1 2 3 4 5; do
    p=${PORTS[$i]}
    mkdir -p "$WORK/r$p"
    redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes --cluster-port "${BUS[$i]}" \
        --cluster-config-file "$WORK/r$p/nodes.conf" --cluster-node-timeout 1500 \
        --dir "$WORK/r$p" --save '' --appendonly no --daemonize no \
        --logfile "$WORK/redis-$p.log" &
    PIDS+=("$!")
    RPID[$p]=$!
done
rc() { redis-cli -h 127.0.0.1 -p "$@"; }
for p in "${PORTS[@]}"; do
    check "redis $p answers" wait_for 30 bash -c "[ \"\$(redis-cli -h 127.0.0.1 -p $p ping)\" = PONG ]"
done
addrs=()
for p in "${PORTS[@]}"; do addrs+=("127.0.0.1:$p"); done
redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$WORK/create.log" 2>&1
cluster_ok() { # every node: state ok, 6 nodes known
    local p
    for p in "$@"; do
        rc "$p" cluster info | tr -d '\r' | grep -q '^cluster_state:ok$' || return 1
        rc "$p" cluster info | tr -d '\r' | grep -q '^cluster_known_nodes:6$' || return 1
    done
}
check "the cluster forms (3 masters + 3 replicas)" wait_for 60 cluster_ok "${PORTS[@]}"

# masters: "port" for each master holding slots, from CLUSTER NODES.
masters() {
    rc "$1" cluster nodes | tr -d '\r' |
        awk '$3 ~ /master/ && $3 !~ /fail/ && NF >= 9 { split($2, a, "[:@]"); print a[2] }' | sort
}
# owner SLOT: the port of the master serving SLOT (asked of node $2).
owner() {
    rc "$2" cluster nodes | tr -d '\r' | awk -v s="$1" '$3 ~ /master/ && $3 !~ /fail/ {
        split($2, a, "[:@]");
        for (i = 9; i <= NF; i++) {
            if ($i ~ /^\[/) continue;
            n = split($i, r, "-"); lo = r[1]; hi = (n > 1 ? r[2] : r[1]);
            if (s + 0 >= lo + 0 && s + 0 <= hi + 0) print a[2] } }'
}
node_id() { rc "$1" cluster myid | tr -d '\r'; }
slot_of() { rc "${PORTS[0]}" cluster keyslot "$1" | tr -d '\r'; }
mapfile -t MASTERS < <(masters "${PORTS[0]}")
check "three masters hold the slots" [ "${#MASTERS[@]}" -eq 3 ]

# ---- the client, for the whole run
coproc PROBE { exec "$PROBE_BIN" "127.0.0.1:${PORTS[0]},127.0.0.1:${PORTS[1]}" 3000 2>"$WORK/probe.log"; }
probe_pid=$PROBE_PID   # bash unsets PROBE_PID once the coprocess ends
PIDS+=("$probe_pid")
ANSWER=""
ask() { # ask COMMAND...: one line to the probe, its one-line answer in $ANSWER
    echo "$*" >&"${PROBE[1]}"
    IFS= read -r -t 120 ANSWER <&"${PROBE[0]}"
    echo "    probe: $* -> $ANSWER" >&2
}
field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$ANSWER"; }   # field NAME (from $ANSWER)
stat() { ask stats; field "$1"; }

N=3000
ask fill a $N
check "1. $N keys written" [ "$ANSWER" = "fill ok=$N err=0" ]
ask check a $N
check "... and read back" [ "$ANSWER" = "check ok=$N bad=0 err=0" ]
for m in "${MASTERS[@]}"; do
    keys=$(rc "$m" dbsize | tr -d '\r')
    check "... master $m holds some of them ($keys)" [ "$keys" -gt 0 ]
done
ask stats
check "... the client mapped all 16384 slots to 3 masters" \
    [ "$(field slots)" = 16384 ] && [ "$(field masters)" = 3 ]
check "... with no redirection yet" [ "$(field moved)" = 0 ] && [ "$(field ask)" = 0 ]

# ---- 2. MOVED: reshard the slot of {mv}k from its master to another
ask set "{mv}k" moved-value
check "2. {mv}k written" [ "$ANSWER" = ok ]
slot=$(slot_of "{mv}k")
src=$(owner "$slot" "${PORTS[0]}")
for m in "${MASTERS[@]}"; do [ "$m" != "$src" ] && { dst=$m; break; }; done
src_id=$(node_id "$src"); dst_id=$(node_id "$dst")
rc "$dst" cluster setslot "$slot" importing "$src_id" >/dev/null
rc "$src" cluster setslot "$slot" migrating "$dst_id" >/dev/null
for k in $(rc "$src" cluster getkeysinslot "$slot" 100 | tr -d '\r'); do
    rc "$src" migrate 127.0.0.1 "$dst" "$k" 0 5000 >/dev/null
done
for m in "${MASTERS[@]}"; do rc "$m" cluster setslot "$slot" node "$dst_id" >/dev/null; done
check "... slot $slot moved from $src to $dst" wait_for 30 bash -c "[ \"\$(redis-cli -p $src cluster countkeysinslot $slot)\" = 0 ]"
moved0=$(stat moved)
ask get "{mv}k"
check "... read through the stale map: the value" [ "$ANSWER" = "value moved-value" ]
check "... after one MOVED followed" [ "$(stat moved)" -eq $((moved0 + 1)) ]
ask get "{mv}k"
check "... and the next read goes straight to the new owner" [ "$ANSWER" = "value moved-value" ] && [ "$(stat moved)" -eq $((moved0 + 1)) ]

# ---- 3. ASK: {as} half-migrated, one key moved
ask set "{as}moved" m1
ask set "{as}stays" s1
slot=$(slot_of "{as}moved")
src=$(owner "$slot" "${PORTS[0]}")
for m in "${MASTERS[@]}"; do [ "$m" != "$src" ] && { dst=$m; break; }; done
src_id=$(node_id "$src"); dst_id=$(node_id "$dst")
rc "$dst" cluster setslot "$slot" importing "$src_id" >/dev/null
rc "$src" cluster setslot "$slot" migrating "$dst_id" >/dev/null
rc "$src" migrate 127.0.0.1 "$dst" "{as}moved" 0 5000 >"$WORK/migrate.out"
check "3. {as}moved migrated to $dst (slot $slot importing there)" grep -q OK "$WORK/migrate.out"
ask0=$(stat ask); moved0=$(stat moved)
ask get "{as}moved"
check "... the moved key reads back (ASKING on $dst)" [ "$ANSWER" = "value m1" ]
check "... after one ASK" [ "$(stat ask)" -eq $((ask0 + 1)) ]
ask get "{as}stays"
check "... the key left behind reads back from $src" [ "$ANSWER" = "value s1" ]
check "... with no redirection (ASK did not change the map)" [ "$(stat ask)" -eq $((ask0 + 1)) ] && [ "$(stat moved)" -eq "$moved0" ]
ask set "{as}new" n1
check "... a new key is written (to the importing node)" [ "$ANSWER" = ok ]
check "... which now holds it beside {as}moved" [ "$(rc "$dst" cluster countkeysinslot "$slot" | tr -d '\r')" = 2 ]
for k in $(rc "$src" cluster getkeysinslot "$slot" 100 | tr -d '\r'); do
    rc "$src" migrate 127.0.0.1 "$dst" "$k" 0 5000 >/dev/null
done
for m in "${MASTERS[@]}"; do rc "$m" cluster setslot "$slot" node "$dst_id" >/dev/null; done
ask check a $N
check "... all $N first keys still read back" [ "$ANSWER" = "check ok=$N bad=0 err=0" ]
ask get "{as}stays"
check "... {as}stays after the migration ends (MOVED)" [ "$ANSWER" = "value s1" ]

# ---- 4. a master killed -9, its replica promoted
victim=$(owner "$(slot_of a:0)" "${PORTS[0]}")
replica_of() { # the port of a replica of master port $1
    local id; id=$(node_id "$1")
    rc "$1" cluster nodes | tr -d '\r' | awk -v id="$id" '$4 == id { split($2, a, "[:@]"); print a[2] }' | head -1
}
rep=$(replica_of "$victim")
check "4. master $victim has a replica ($rep)" [ -n "$rep" ]
synced() { [ "$(rc "$victim" dbsize)" = "$(rc "$rep" dbsize)" ] &&
    rc "$rep" info replication | tr -d '\r' | grep -q '^master_link_status:up$'; }
check "... which holds all its keys" wait_for 30 synced
drops0=$(stat drops)
kill -9 "${RPID[$victim]}"
promoted() { rc "$rep" role | head -1 | tr -d '\r' | grep -q '^master$'; }
check "... killed; the replica is promoted" wait_for 60 promoted
survivor=${MASTERS[0]}; [ "$survivor" = "$victim" ] && survivor=${MASTERS[1]}
check "... and the cluster is ok again" wait_for 60 cluster_ok "$survivor" "$rep"
all_back() { ask check a $N; [ "$ANSWER" = "check ok=$N bad=0 err=0" ]; }
deadline=$((SECONDS + 60)); ok=0
while [ $SECONDS -le $deadline ]; do
    if all_back; then ok=1; break; fi
    sleep 0.5
done
check "... the same client reads all $N keys again" [ "$ok" = 1 ]
ask fill b 1000
check "... and writes 1000 new keys" [ "$ANSWER" = "fill ok=1000 err=0" ]
ask check b 1000
check "... which read back" [ "$ANSWER" = "check ok=1000 bad=0 err=0" ]
check "... having seen its connection to $victim drop" [ "$(stat drops)" -gt "$drops0" ]
ask stats
check "... and mapping all slots to 3 live masters" [ "$(field slots)" = 16384 ] && [ "$(field masters)" = 3 ]
m=$(owner "$(slot_of a:0)" "$rep")
check "... a:0's slot now served by $rep" [ "$m" = "$rep" ]

# The probe frees its client when its input closes, then exits 0.
exec {PROBE[1]}>&-
check "the probe exits when its input closes" wait_for 30 not kill -0 "$probe_pid"
status=0; wait "$probe_pid" || status=$?
check "... with status 0" [ "$status" -eq 0 ]
finish
