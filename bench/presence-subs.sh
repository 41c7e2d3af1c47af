#!/usr/bin/env bash
# Active presence subscriptions on one node (issue 15's benchmark): memory per
# subscription and CPU for a rate of state changes, cascade and Kamailio's
# presence module in the same run.
#
# Each server is a presence server without digest: cascade with [auth]
# require_auth = no (presence_policy domain: every SUBSCRIBE admitted) and
# PRESENTITIES users p0..; Kamailio 5.6 with presence + presence_xml in memory
# only (bench/kamailio-presence.cfg.in; force_active). bench/presload
# (build/presload) makes PRESENTITIES x WATCHERS presence subscriptions
# (SUBSCRIBE_RATE a second), answers every NOTIFY 200, idles PAUSE s (so that
# the SUBSCRIBEs' transaction records, 64*T1 = 32 s, run out), then
# PUBLISHes PUBLISH_RATE state changes a second (open/closed under the entity
# tag, round robin over the presentities) for DURATION s: each change is
# WATCHERS NOTIFYs.
#
# Measured on each server (its process tree): proportional set size (PSS:
# Kamailio's workers share its memory, PSS counts each page once) before the
# subscriptions and after the pause — the growth over the subscriptions held
# is the memory per subscription — and CPU (user + sys, % of one core) for
# the PUBLISH phase, its ticks over DURATION. presload's own CPU is printed
# too (it shares the machine).
#
# Usage: bench/presence-subs.sh [BUILD_DIR]
#   env: PRESENTITIES=1000 WATCHERS=100 (100 000 subscriptions) SUBSCRIBE_RATE=5000
#        PUBLISH_RATE=1000 DURATION=30 PAUSE=34 KAMAILIO=auto|no KAMAILIO_CHILDREN=2
#        KAMAILIO_SHM_MB=2048
# Small-scale check: PRESENTITIES=100 WATCHERS=10 DURATION=5 PAUSE=2 bench/presence-subs.sh
# Kamailio needs kamailio-presence-modules (installed by hand for this bench,
# not by scripts/install-deps.sh). Not a test: on a quiet machine only.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
build=$(cd "${1:-$root/build}" && pwd)
np=${PRESENTITIES:-1000}; nw=${WATCHERS:-100}
sub_rate=${SUBSCRIBE_RATE:-5000}; pub_rate=${PUBLISH_RATE:-1000}
duration=${DURATION:-30}; pause=${PAUSE:-34}
total=$((np * nw))
work=$(mktemp -d /tmp/cascade-pres.XXXXXX)
server_pid=
load_pid=
trap 'kill_quietly "$load_pid"; kill_server_and_clean' EXIT

# PSS of a process and its children, KiB.
tree_pss_kib() {
    local p t=0 v
    for p in $(proc_tree "$1"); do
        v=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
        t=$((t + ${v:-0}))
    done
    echo "$t"
}

# run_load NAME PORT: presload against 127.0.0.1:PORT, server $server_pid;
# prints the figures with NAME.
run_load() {
    local name=$1 port=$2 m0 m1 c1 c2 l1 l2 t1 t2
    sleep 1
    m0=$(tree_pss_kib "$server_pid")
    PRESLOAD_HOLD=5 "$build/presload" "127.0.0.1:$port" --domain 127.0.0.1 --presentities "$np" --watchers "$nw" \
        --sub-rate "$sub_rate" --publish-rate "$pub_rate" --duration "$duration" --pause "$pause" --expires 7200 \
        >"$work/$name.out" 2>&1 &  # PRESLOAD_HOLD: it stays (answering) 5 s after its final line
    load_pid=$!
    while ! grep -q '^phase=publish start' "$work/$name.out"; do
        kill -0 "$load_pid" 2>/dev/null || { cat "$work/$name.out"; return 1; }
        sleep 0.05
    done
    m1=$(tree_pss_kib "$server_pid"); c1=$(tree_cpu_ticks "$server_pid"); l1=$(proc_cpu_ticks "$load_pid")
    t1=$(date +%s.%N)
    while ! grep -q '^final ' "$work/$name.out"; do
        kill -0 "$load_pid" 2>/dev/null || break
        sleep 0.05
    done
    c2=$(tree_cpu_ticks "$server_pid"); l2=$(proc_cpu_ticks "$load_pid" 2>/dev/null || echo "$l1"); t2=$(date +%s.%N)
    kill "$load_pid" 2>/dev/null || true
    wait "$load_pid" 2>/dev/null || true
    load_pid=
    echo "== $name"
    grep -E '^(subscribed|final)' "$work/$name.out"
    local subscribed wall
    subscribed=$(grep -oP '^final subscribed=\K[0-9]+' "$work/$name.out")
    wall=$(echo "$t2 - $t1" | bc)
    echo "memory (PSS): before $((m0 / 1024)) MiB, with the subscriptions $((m1 / 1024)) MiB"
    python3 -c 'import sys; m0, m1, n = map(int, sys.argv[2:]); print("RESULT %s memory per subscription: %.0f B" % (sys.argv[1], (m1 - m0) * 1024.0 / n if n else 0))' \
        "$name" "$m0" "$m1" "$subscribed"
    echo "RESULT $name CPU for $pub_rate PUBLISH/s x $nw watchers: $(cpu_percent "$c1" "$c2" "$duration" 1) % of one core (ticks over ${wall%.*} s / $duration s of load)"
    echo "presload CPU meanwhile: $(cpu_percent "$l1" "$l2" "$duration" 1) % of one core; load: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# ---- cascade ----
port=$(free_port_pair); api=$((port + 1))
EXTRA_INI=$'[overload]\nenabled = no' cascade_write_ini "udp:127.0.0.1:$port" "127.0.0.1:$api" bench "${LOG_LEVEL:-warn}" <<INI
domain = 127.0.0.1
[auth]
realm = 127.0.0.1
require_auth = no
[subscriptions]
max_total = $((total + 1000))
max_expires = 7200
presence_max_publications = $((np * 2 + 100))
INI
start_cascade_ini
cascade_add_user "$api" p0 || { echo "cascade did not start"; cat "$work/cascade.log"; exit 1; }
for i in $(seq 1 $((np - 1))); do
    curl -sf -X POST -H 'Authorization: Bearer bench' -d "{\"name\":\"p$i\",\"password\":\"secret\"}" \
        "http://127.0.0.1:$api/api/v1/users" >/dev/null
done
run_load cascade "$port"
echo "cascade: subscriptions active at the end (GET /stats): $(curl -sf -H 'Authorization: Bearer bench' \
    "http://127.0.0.1:$api/api/v1/stats" | jq '.subscriptions.active')"
stop_server

# ---- Kamailio ----
if [ "${KAMAILIO:-auto}" != no ] && [ -f /usr/lib/x86_64-linux-gnu/kamailio/modules/presence.so ] && command -v kamailio >/dev/null; then
    kport=$(free_port)
    sed "s/@PORT@/$kport/g; s/@CHILDREN@/${KAMAILIO_CHILDREN:-2}/g" "$root/bench/kamailio-presence.cfg.in" >"$work/k.cfg"
    server_exec kamailio -f "$work/k.cfg" -DD -E -w "$work" -m "${KAMAILIO_SHM_MB:-2048}" -M 32 >"$work/kamailio.log" 2>&1 &
    server_pid=$!
    wait_udp_listen "$kport" || fail_start kamailio
    run_load kamailio "$kport"
    stop_server
else
    echo "== kamailio: skipped (KAMAILIO=no, or kamailio-presence-modules not installed)"
fi
