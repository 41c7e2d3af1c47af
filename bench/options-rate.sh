#!/usr/bin/env bash
# OPTIONS round trips/s through cascade with sipp on loopback, UDP and TCP.
# Usage: bench/options-rate.sh [BUILD_DIR] — a rate sweep; prints the highest
# rate with 0 failed calls for each transport. Not a test: it takes both cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
build=${1:-$root/build}
work=$(mktemp -d /tmp/cascade-bench.XXXXXX)
port=${PORT:-35060}
cascade_write_ini "udp:127.0.0.1:$port, tcp:127.0.0.1:$port" "" "" warn </dev/null
start_cascade_ini
pid=$server_pid
trap 'kill_and_remove_work "$pid"' EXIT
sleep 0.5
run() { # transport rate seconds -> "achieved failed" (from sipp's final screen)
    local tr=$1 rate=$2 secs=$3
    (cd "$work" && timeout $((secs * 4 + 30)) sipp 127.0.0.1:$port -sf "$root/tests/peers/sipp/options.xml" -t "$tr" \
        -i 127.0.0.1 -r "$rate" -m $((rate * secs)) -l $((rate * 2)) -nostdin >"$work/sipp.out" 2>&1) || true
    python3 - "$work/sipp.out" <<'PY'
import re, sys
t = open(sys.argv[1], errors="replace").read()
def last(name):
    m = re.findall(name + r"\s*\|[^|]*\|\s*([0-9.]+)", t)
    return float(m[-1]) if m else -1
print("%.0f %d" % (last("Call Rate"), int(last("Failed call"))))
PY
}
for tr in u1 t1; do
    best=0
    for rate in ${RATES:-5000 10000 15000 20000 25000 30000}; do
        read -r got bad < <(run "$tr" "$rate" "${SECONDS_PER_STEP:-5}")
        echo "$tr offered $rate/s: achieved $got/s, failed $bad"
        if [ "$bad" = 0 ]; then best=$got; else break; fi
    done
    echo "RESULT $tr: $best OPTIONS/s with 0 failures"
done
