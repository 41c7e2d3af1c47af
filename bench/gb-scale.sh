#!/usr/bin/env bash
# gb-scale.sh — GB/T 28181 device scale: cascade-gbsim brings N devices online
# against one cascade upper (UDP, digest, keepalives) at RATE registrations/s
# offered, then holds them for HOLD s; cascade and the simulator can be pinned
# to their own CPUs, and a CPU competitor can be started beside cascade. Per
# case:
#   ramp      seconds until the simulator had all N registered (sim clock)
#   503s      REGISTERs cascade refused with 503 + Retry-After (overload control)
#   rss/dev   cascade's RSS growth over its empty start, per device (bytes)
#   trim/dev  the same after malloc_trim(0) in cascade (through gdb; NO_GDB=1 skips)
#   cpu       cascade's CPU share of one core over the HOLD window
#   sim       the simulator's RSS per device and CPU share over its whole run
#   lag       the simulator's own timer lag p99 over the run (ms): when high,
#             the simulator, not cascade, was the bottleneck
#   rtt       cascade's response latency p99 seen by the simulator (ms)
#   ka        keepalives answered 200 / not answered or refused (simulator)
#   false     false offlines: devices that lost their registration (their
#             keepalive refused or unanswered 3 times, as the simulator saw it)
#             plus devices not online at cascade at the end (goal 0)
# Usage: bench/gb-scale.sh [BUILD_DIR]
#   env: N=20000 (or SIZES="10000 100000" for a sweep) RATE=2000 KA=60 HOLD=120 SETTLE=20
#        SERVER_CPUS=0 SIM_CPUS=1       taskset lists (empty: anywhere)
#        THREADS=                       simulator threads (default: CPUs in SIM_CPUS, else 1)
#        COMPETITOR_AT=  COMPETITOR_SECS=60  COMPETITOR_CPUS=$SERVER_CPUS
#                                       a busy loop on those CPUs from COMPETITOR_AT s
#                                       after the simulator starts, for COMPETITOR_SECS
#                                       (COMPETITOR_AT=hold: 10 s into the hold window)
#        OVERLOAD=yes  MAX_REGISTER_RATE=0  RETRY_MIN=5 RETRY_MAX=30  CATALOG=yes
#        CATALOG_CONCURRENCY=32  CHANNELS=1  STRESS=  (N for a 5 s keepalive case)
#        LOG=warn (info logs every device event: large at 1M)  MAX_WAIT= (s for the ramp)
# The 1M target (2 cores): N=1000000 RATE=8000 SERVER_CPUS=0 SIM_CPUS=1 HOLD=300
#   all devices end online, 0 false offlines, cascade RSS < 1 KiB per device.
# Not a test: the ramp loads both cores for N/RATE seconds or more.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
build=$(cd "${1:-$root/build}" && pwd)
sizes=${SIZES:-${N:-20000}}
rate=${RATE:-2000}; hold=${HOLD:-120}; settle=${SETTLE:-20}; channels=${CHANNELS:-1}
server_cpus=${SERVER_CPUS:-}
sim_cpus=${SIM_CPUS:-}
count_cpus() { # "0-2,5" -> 4
    python3 -c 'import sys
n=0
for p in sys.argv[1].split(","):
    a,_,b=p.partition("-"); n+=int(b or a)-int(a)+1
print(n)' "$1"
}
threads=${THREADS:-}
if [ -z "$threads" ]; then threads=1; [ -n "$sim_cpus" ] && threads=$(count_cpus "$sim_cpus"); fi
sim_pre=()
[ -n "$sim_cpus" ] && sim_pre=(taskset -c "$sim_cpus")
results=()
pids=()
cleanup() { kill_quietly "${pids[@]:-}"; }
trap cleanup EXIT

write_ini() { # PORT API KEEPALIVE
    cascade_write_ini "udp:127.0.0.1:$1" "127.0.0.1:$2" t "${LOG:-warn}" <<INI
domain = 3402000000
[gb]
enabled = yes
password = 12345678
allow_unknown = yes
keepalive_interval = $3
keepalive_misses = 3
catalog_on_register = ${CATALOG:-yes}
catalog_concurrency = ${CATALOG_CONCURRENCY:-32}
[overload]
enabled = ${OVERLOAD:-yes}
max_register_rate = ${MAX_REGISTER_RATE:-0}
retry_after_min = ${RETRY_MIN:-5}
retry_after_max = ${RETRY_MAX:-30}
INI
}

stats() { curl -s -H 'Authorization: Bearer t' "http://127.0.0.1:$api/api/v1/stats"; }

# competitor SECS CPUS: a busy loop pinned to CPUS for SECS seconds.
competitor() {
    local pre=()
    [ -n "$2" ] && pre=(taskset -c "$2")
    timeout "$1" "${pre[@]}" bash -c 'while :; do :; done' || true
}

# run_case N KEEPALIVE HOLD LABEL
run_case() {
    local n=$1 ka=$2 win=$3 label=$4
    local port i
    work=$(mktemp -d /tmp/cascade-gbscale.XXXXXX)
    port=$(free_port_pair); api=$((port + 1))
    write_ini "$port" "$api" "$ka"
    start_cascade_ini
    local pid=$server_pid
    pids+=("$pid")
    for i in $(seq 1 50); do stats | jq -e . >/dev/null 2>&1 && break; sleep 0.1; done
    sleep 1
    local r0; r0=$(proc_rss_kib "$pid")
    local t0=$SECONDS
    "${sim_pre[@]}" "$build/cascade-gbsim" --target 127.0.0.1:$port --devices "$n" --channels "$channels" \
        --rate "$rate" --threads "$threads" --sockets 16 --keepalive "$ka" --expires 3600 \
        --json "$work/sim.json" >"$work/sim.log" 2>&1 &
    local sim=$!
    pids+=("$sim")
    local comp=
    if [ -n "${COMPETITOR_AT:-}" ] && [ "$COMPETITOR_AT" != hold ]; then
        (sleep "$COMPETITOR_AT"; competitor "${COMPETITOR_SECS:-60}" "${COMPETITOR_CPUS:-$server_cpus}") &
        comp=$!
        pids+=("$comp")
    fi
    # Wait for the ramp: the simulator's per-second line says how many are registered.
    local reg=0 max_wait=${MAX_WAIT:-$((n / rate * 5 + 120))}
    while :; do
        sleep 1
        reg=$(grep '^t=' "$work/sim.log" | tail -1 | sed -n 's/.*registered=\([0-9]*\)\/.*/\1/p')
        [ "${reg:-0}" -ge "$n" ] && break
        if [ $((SECONDS - t0)) -gt "$max_wait" ]; then echo "$label: only ${reg:-0} of $n registered"; break; fi
    done
    sleep "$settle" # the registration burst settles (catalog queries, store writes, first keepalives)
    local r1 c0 s0 c1 r2
    r1=$(proc_rss_kib "$pid"); c0=$(proc_cpu_ticks "$pid"); s0=$SECONDS
    if [ "${COMPETITOR_AT:-}" = hold ]; then # 10 s into the hold, whenever the ramp ended
        (sleep 10; competitor "${COMPETITOR_SECS:-60}" "${COMPETITOR_CPUS:-$server_cpus}") &
        comp=$!
        pids+=("$comp")
    fi
    sleep "$win"
    c1=$(proc_cpu_ticks "$pid"); r2=$(proc_rss_kib "$pid")
    local cpu_pct st online refused offl
    cpu_pct=$(cpu_percent "$c0" "$c1" $((SECONDS - s0)) 1)
    st=$(stats)
    online=$(jq -r '.gb_upper.online' <<<"$st")
    refused=$(jq -r '.overload.refused' <<<"$st")
    offl=$(grep -c '"type":"gb.device.offline"' "$work/cascade.log" || true)
    # The simulator stops (and writes its counters) before gdb freezes cascade
    # below: keepalives unanswered during that freeze are the script's doing.
    kill -INT "$sim"
    wait "$sim" || true
    # RSS once glibc gave back what the registration burst freed (what the
    # devices really hold): malloc_trim(0) called in cascade through gdb.
    local r3=$r2
    if command -v gdb >/dev/null && [ -z "${NO_GDB:-}" ]; then
        gdb -p "$pid" -batch -ex 'call (int)malloc_trim(0)' >/dev/null 2>&1 || true
        r3=$(proc_rss_kib "$pid")
    fi
    [ -n "$comp" ] && { kill "$comp" 2>/dev/null || true; wait "$comp" 2>/dev/null || true; }
    local ramp ka_ok ka_fail lost sim_rss sim_cpu lag rtt
    ramp=$(jq -r '.ramp_s' "$work/sim.json")
    ka_ok=$(jq -r '.ka_ok' "$work/sim.json"); ka_fail=$(jq -r '.ka_fail' "$work/sim.json")
    lost=$(jq -r '.lost' "$work/sim.json")
    lag=$(jq -r '.lag_p99_ms' "$work/sim.json"); rtt=$(jq -r '.rtt_p99_ms' "$work/sim.json")
    sim_rss=$(jq -r '.rss_kib' "$work/sim.json"); sim_cpu=$(jq -r '.cpu_share * 100 | floor' "$work/sim.json")
    local per_dev=$(((r2 - r0) * 1024 / n))
    local false_off=$((lost + n - online))
    local line
    line=$(printf '| %-14s | %7d | %5d | %3ss | %7.1fs | %7d | %6d B | %6d B | %5s%% | %6d B | %3s%% | %5s | %5s | %9d / %-6d | %5d |' \
        "$label" "$n" "$rate" "$ka" "$ramp" "$refused" "$per_dev" $(((r3 - r0) * 1024 / n)) "$cpu_pct" \
        $((sim_rss * 1024 / n)) "$sim_cpu" "$lag" "$rtt" "$ka_ok" "$ka_fail" "$false_off")
    echo "$line"
    echo "    cascade RSS ${r0} KiB empty -> ${r1} KiB after the ramp -> ${r2} KiB after ${win}s -> ${r3} KiB trimmed;" \
        "online $online/$n; offline events (LOG=info only) $offl; simulator re-registrations $lost;" \
        "server cpus '${server_cpus}', sim cpus '${sim_cpus}' x $threads threads${COMPETITOR_AT:+, competitor at ${COMPETITOR_AT/%hold/hold+10}s for ${COMPETITOR_SECS:-60}s}"
    echo "    overload: $(jq -c .overload <<<"$st")"
    echo "    catalog on register: $(jq -c '.gb_upper | {catalog_queued, catalog_in_flight, catalog_started, catalog_paused}' <<<"$st")"
    results+=("$line")
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if [ -n "${KEEP_WORK:-}" ]; then echo "    work dir: $work"; else rm -rf "$work"; fi
}

header='| case           |       N |  rate |  ka |     ramp |    503s |  rss/dev | trim/dev |    cpu |  sim/dev | sim |   lag |   rtt | ka ok / fail       | false |'
sep='|----------------|---------|-------|-----|----------|---------|----------|----------|--------|----------|-----|-------|-------|--------------------|-------|'
echo "$header"; echo "$sep"
for n in $sizes; do run_case "$n" "${KA:-60}" "$hold" "keepalive ${KA:-60}s"; done
for n in ${STRESS:-}; do run_case "$n" "${STRESS_KA:-5}" "${STRESS_HOLD:-30}" "stress ${STRESS_KA:-5}s"; done
echo
echo "$header"; echo "$sep"
printf '%s\n' "${results[@]}"
