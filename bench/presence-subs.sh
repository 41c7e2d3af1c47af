#!/usr/bin/env bash
# Active presence subscriptions on one node (issue 15's benchmark): RSS per
# subscription and CPU for a rate of state changes.
#
# cascade runs as a presence server without digest ([auth] require_auth = no,
# presence_policy domain: every SUBSCRIBE is admitted) with PRESENTITIES
# users p0..; bench/presload (build/presload) makes PRESENTITIES x WATCHERS
# presence subscriptions (SUBSCRIBE_RATE a second), answers every NOTIFY 200,
# idles PAUSE s (so that the SUBSCRIBEs' transaction records, 64*T1 = 32 s,
# run out), then PUBLISHes PUBLISH_RATE state changes a second (open/closed
# under the entity tag, round robin over the presentities) for DURATION s:
# each change is WATCHERS NOTIFYs.
#
# Measured on the server: RSS before the subscriptions and after the pause
# (the growth over the subscriptions held is the RSS per subscription), and
# CPU (user + sys, % of one core) during the PUBLISH phase. presload's own CPU
# is printed too (it shares the machine).
#
# Usage: bench/presence-subs.sh [BUILD_DIR]
#   env: PRESENTITIES=1000 WATCHERS=100 (100 000 subscriptions) SUBSCRIBE_RATE=5000
#        PUBLISH_RATE=1000 DURATION=30 PAUSE=34
# Small-scale check: PRESENTITIES=100 WATCHERS=10 DURATION=5 PAUSE=2 bench/presence-subs.sh
# Not a test: on a quiet machine only. Kamailio's presence module is not part
# of this script (see docs/benchmarks.md).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
build=$(cd "${1:-$root/build}" && pwd)
np=${PRESENTITIES:-1000}; nw=${WATCHERS:-100}
sub_rate=${SUBSCRIBE_RATE:-5000}; pub_rate=${PUBLISH_RATE:-1000}
duration=${DURATION:-30}; pause=${PAUSE:-34}
total=$((np * nw))
work=$(mktemp -d /tmp/cascade-pres.XXXXXX)
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
pid=$server_pid
load_pid=
trap 'kill_quietly "$load_pid"; kill_and_remove_work "$pid"' EXIT
for i in $(seq 0 $((np - 1))); do
    if [ "$i" -eq 0 ]; then cascade_add_user "$api" p0 || { echo "cascade did not start"; cat "$work/cascade.log"; exit 1; }
    else curl -sf -X POST -H 'Authorization: Bearer bench' -d "{\"name\":\"p$i\",\"password\":\"secret\"}" \
        "http://127.0.0.1:$api/api/v1/users" >/dev/null; fi
done
sleep 1
r0=$(proc_rss_kib "$pid")
PRESLOAD_HOLD=5 "$build/presload" "127.0.0.1:$port" --domain 127.0.0.1 --presentities "$np" --watchers "$nw" \
    --sub-rate "$sub_rate" --publish-rate "$pub_rate" --duration "$duration" --pause "$pause" --expires 7200 \
    >"$work/load.out" 2>&1 &  # PRESLOAD_HOLD: it stays (answering) 5 s after its final line, to be measured
load_pid=$!
# The boundary: after the pause, right before the PUBLISHes.
while ! grep -q '^phase=publish start' "$work/load.out"; do
    kill -0 "$load_pid" 2>/dev/null || { cat "$work/load.out"; exit 1; }
    sleep 0.05
done
r1=$(proc_rss_kib "$pid"); c1=$(proc_cpu_ticks "$pid"); l1=$(proc_cpu_ticks "$load_pid"); t1=$(date +%s.%N)
while ! grep -q '^final ' "$work/load.out"; do
    kill -0 "$load_pid" 2>/dev/null || break
    sleep 0.05
done
c2=$(proc_cpu_ticks "$pid"); l2=$(proc_cpu_ticks "$load_pid" 2>/dev/null || echo "$l1"); t2=$(date +%s.%N)
r2=$(proc_rss_kib "$pid")
kill "$load_pid" 2>/dev/null || true
wait "$load_pid" 2>/dev/null || true
load_pid=
grep -E '^(subscribed|final)' "$work/load.out"
active=$(curl -sf -H 'Authorization: Bearer bench' "http://127.0.0.1:$api/api/v1/stats" | jq '.subscriptions.active')
secs=$duration  # the ticks include the last answers (2 s tail): per second of offered load
wall=$(echo "$t2 - $t1" | bc)
echo "subscriptions active at the end (GET /stats): $active"
echo "RSS: before $((r0 / 1024)) MiB, with the subscriptions $((r1 / 1024)) MiB, after the PUBLISH phase $((r2 / 1024)) MiB"
python3 -c 'import sys; r0, r1, n = map(int, sys.argv[1:]); print("RESULT RSS per subscription: %.0f B" % ((r1 - r0) * 1024.0 / n if n else 0))' \
    "$r0" "$r1" "$(grep -oP '^final subscribed=\K[0-9]+' "$work/load.out")"
echo "RESULT cascade CPU for $pub_rate PUBLISH/s x $nw watchers: $(cpu_percent "$c1" "$c2" "$secs" 1) % of one core (ticks over ${wall%.*} s / $duration s of load)"
echo "presload CPU meanwhile: $(cpu_percent "$l1" "$l2" "$secs" 1) % of one core; load: $(cut -d' ' -f1-3 /proc/loadavg)"
