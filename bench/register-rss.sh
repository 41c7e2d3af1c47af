#!/usr/bin/env bash
# Memory per binding in the daemon: cascade's RSS growth for N bindings made
# by real authenticated REGISTERs (sipp, ../shared/bench/register-auth.xml,
# one AoR per call), read once the answers' Timer J records have run out
# (64*T1 = 32 s after the last one), so what is left is the location service,
# its SQLite reader cache and whatever the allocator keeps.
# Usage: bench/register-rss.sh [BUILD_DIR]   (env: BINDINGS=100000 RATE=10000)
# Not a test: the REGISTER storm loads both cores for BINDINGS/RATE seconds.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
build=$(cd "${1:-$root/build}" && pwd)
shared=${SHARED:-$root/../shared/bench}
n=${BINDINGS:-100000}; rate=${RATE:-10000}
work=$(mktemp -d /tmp/cascade-regrss.XXXXXX)
port=${PORT:-37160}; api=${API_PORT:-37180}
cascade_registrar_ini "$port" "$api"
write_users_csv "$n"
start_cascade_ini
pid=$server_pid
trap 'kill_and_remove_work "$pid"' EXIT
api_call() { curl -sf -H 'Authorization: Bearer bench' "$@"; }
cascade_add_user "$api" bench || true
rss() { proc_rss_kib "$pid"; }
sleep 1
r0=$(rss)
(cd "$work" && sipp "127.0.0.1:$port" -sf "$shared/register-auth.xml" -inf users.csv -au bench -ap secret \
    -i 127.0.0.1 -p $((port + 1)) -r "$rate" -m "$n" -l $((rate * 3)) -buff_size 4194304 -nostdin \
    -trace_stat -stf s.csv >/dev/null 2>&1) || true
r_peak=$(rss)
sleep 34
r1=$(rss)
bindings=$(api_call "http://127.0.0.1:$api/api/v1/stats" | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["registrar"]["bindings"] if "registrar" in s and "bindings" in s["registrar"] else s.get("bindings", 0))')
read -r ok _ < <(sipp_csv_counts "$work/s.csv")
echo "REGISTER calls ok: $ok, bindings: $bindings"
echo "RSS before: $((r0 / 1024)) MiB, right after the storm: $((r_peak / 1024)) MiB, 34 s later: $((r1 / 1024)) MiB"
python3 -c 'import sys; r0, r1, n = map(int, sys.argv[1:]); print("RESULT RSS growth per binding: %.0f B" % ((r1 - r0) * 1024.0 / n if n else 0))' "$r0" "$r1" "$bindings"
