#!/usr/bin/env bash
# gb-scale.sh — GB/T 28181 device scale: cascade-gbsim holds N devices online
# against one cascade upper (UDP, digest, keepalives), for a sweep of N with
# 60 s keepalives and a stress variant with 5 s keepalives. For each case:
#   ramp      seconds until the simulator had all N registered (sim clock)
#   rss/dev   cascade's RSS growth over its empty start, per device (bytes)
#   trim/dev  the same after malloc_trim(0) in cascade (through gdb; NO_GDB=1 skips)
#   cpu       cascade's CPU share of one core over a steady window of HOLD s
#   sim       the simulator's RSS per device and CPU share over its whole run
#   ka        keepalives answered 200 / not answered or refused (simulator)
#   false     false offlines: gb.device.offline events at the upper plus
#             devices not online at the end (goal 0)
# Usage: bench/gb-scale.sh [BUILD_DIR]
#   env: SIZES="10000 50000 100000" KA=60 HOLD=120 SETTLE=20 RATE=2000
#        STRESS=10000 STRESS_KA=5 STRESS_HOLD=30 CHANNELS=1 CATALOG=yes
#        (STRESS= empty skips the stress case)
# Not a test: the registration ramp loads both cores for N/RATE seconds, and
# the sweep runs for (ramp + SETTLE + HOLD) per size.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
build=$(cd "${1:-$root/build}" && pwd)
sizes=${SIZES:-10000 50000 100000}
rate=${RATE:-2000}; hold=${HOLD:-120}; settle=${SETTLE:-20}; channels=${CHANNELS:-1}
results=()
pids=()
cleanup() { kill_quietly "${pids[@]:-}"; }
trap cleanup EXIT

# run_case N KEEPALIVE HOLD LABEL
run_case() {
    local n=$1 ka=$2 win=$3 label=$4
    local work port api
    work=$(mktemp -d /tmp/cascade-gbscale.XXXXXX)
    port=$(free_port_pair); api=$((port + 1))
    cascade_gbsim_ini "$port" "$api" "$ka" "${CATALOG:-yes}" info
    start_cascade_ini
    local pid=$server_pid
    pids+=("$pid")
    local i
    for i in $(seq 1 50); do grep -q "cascade ready" "$work/cascade.log" && break; sleep 0.1; done
    sleep 1
    local r0; r0=$(proc_rss_kib "$pid")
    local t0=$SECONDS
    "$build/cascade-gbsim" --target 127.0.0.1:$port --devices "$n" --channels "$channels" --rate "$rate" \
        --sockets 16 --keepalive "$ka" --expires 3600 --json "$work/sim.json" >"$work/sim.log" 2>&1 &
    local sim=$!
    pids+=("$sim")
    # Wait for the ramp: the simulator's per-second line says how many are registered.
    local reg=0
    while :; do
        sleep 1
        reg=$(tail -1 "$work/sim.log" | sed -n 's/.*registered=\([0-9]*\)\/.*/\1/p')
        [ "${reg:-0}" -ge "$n" ] && break
        if [ $((SECONDS - t0)) -gt $((n / rate * 5 + 120)) ]; then echo "$label: only ${reg:-0} of $n registered"; break; fi
    done
    sleep "$settle" # the registration burst settles (catalog queries, store writes, first keepalives)
    local r1 c0 s0 c1 r2
    r1=$(proc_rss_kib "$pid"); c0=$(proc_cpu_ticks "$pid"); s0=$SECONDS
    sleep "$win"
    c1=$(proc_cpu_ticks "$pid"); r2=$(proc_rss_kib "$pid")
    # RSS once glibc gave back what the registration burst freed (what the
    # devices really hold): malloc_trim(0) called in cascade through gdb.
    local r3=$r2
    if command -v gdb >/dev/null && [ -z "${NO_GDB:-}" ]; then
        gdb -p "$pid" -batch -ex 'call (int)malloc_trim(0)' >/dev/null 2>&1 || true
        r3=$(proc_rss_kib "$pid")
    fi
    local cpu_pct
    cpu_pct=$(cpu_percent "$c0" "$c1" $((SECONDS - s0)) 1)
    local online offl
    online=$(curl -s -H 'Authorization: Bearer t' "http://127.0.0.1:$api/api/v1/gb/devices" |
        jq '[.devices[] | select(.online)] | length')
    offl=$(grep -c '"type":"gb.device.offline"' "$work/cascade.log" || true)
    kill -INT "$sim"
    wait "$sim" || true
    local ramp ka_ok ka_fail lost sim_rss sim_cpu
    ramp=$(jq -r '.ramp_s' "$work/sim.json")
    ka_ok=$(jq -r '.ka_ok' "$work/sim.json"); ka_fail=$(jq -r '.ka_fail' "$work/sim.json")
    lost=$(jq -r '.lost' "$work/sim.json")
    sim_rss=$(jq -r '.rss_kib' "$work/sim.json"); sim_cpu=$(jq -r '.cpu_share * 100 | floor' "$work/sim.json")
    local per_dev=$(((r2 - r0) * 1024 / n))
    local false_off=$((offl + n - online))
    local line
    line=$(printf '| %-14s | %6d | %3ss | %6.1fs | %6d B | %6d B | %5s%% | %6d B | %3s%% | %8d / %-5d | %5d |' \
        "$label" "$n" "$ka" "$ramp" "$per_dev" $(((r3 - r0) * 1024 / n)) "$cpu_pct" $((sim_rss * 1024 / n)) "$sim_cpu" \
        "$ka_ok" "$ka_fail" "$false_off")
    echo "$line"
    echo "    cascade RSS ${r0} KiB empty -> ${r1} KiB after the ramp -> ${r2} KiB after ${win}s -> ${r3} KiB trimmed; online $online/$n;" \
        "offline events $offl; simulator re-registrations $lost"
    results+=("$line")
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$work"
}

header='| case           |      N |  ka |   ramp |  rss/dev | trim/dev |    cpu |  sim/dev | sim | ka ok / fail      | false |'
sep='|----------------|--------|-----|--------|----------|----------|--------|----------|-----|-------------------|-------|'
echo "$header"; echo "$sep"
for n in $sizes; do run_case "$n" "${KA:-60}" "$hold" "keepalive ${KA:-60}s"; done
for n in ${STRESS-10000}; do run_case "$n" "${STRESS_KA:-5}" "${STRESS_HOLD:-30}" "stress ${STRESS_KA:-5}s"; done
echo
echo "$header"; echo "$sep"
printf '%s\n' "${results[@]}"
