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

check "the cluster forms (3 masters + 3 replicas)" redis_cluster_start 3 1
PORTS=("${REDIS_PORTS[@]}")
rc() { redis_rc "$@"; }
masters() { redis_masters "$@"; }
owner() { redis_owner "$@"; }
node_id() { redis_node_id "$@"; }
slot_of() { redis_slot_of "$@"; }
cluster_ok() { redis_cluster_ok "$@"; }
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
read -r victim rep < <(redis_pair_for "$(slot_of a:0)")
check "4. master $victim has a replica ($rep)" [ -n "$rep" ]
synced() { [ "$(rc "$victim" dbsize)" = "$(rc "$rep" dbsize)" ] &&
    rc "$rep" info replication | tr -d '\r' | grep -q '^master_link_status:up$'; }
check "... which holds all its keys" wait_for 30 synced
drops0=$(stat drops)
kill -9 "${REDIS_PID[$victim]}"
check "... killed; the replica is promoted" wait_for 60 redis_promoted "$rep"
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
