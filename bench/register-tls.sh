#!/usr/bin/env bash
# Authenticated REGISTER over TLS on a reused connection, cascade and
# Kamailio (its tls module) in the same run, and TLS handshakes per second.
#
# Usage: bench/register-tls.sh [BUILD_DIR]
#   RATES="1000 2000 4000 8000"  offered rates (transactions/s; one =
#                       REGISTER, 401, REGISTER with digest, 200)
#   SECS=10             seconds per rate
#   HS_SECS=10          seconds of the handshake test per server (0: none)
#   SERVERS="cascade kamailio"
#   LOADGEN=sipload     the generator: sipload (the default when BUILD_DIR has
#                       it) or sipp (sipp over TCP into stunnel, as before)
#   SERVER_CPUS=0 LOAD_CPUS=1  taskset lists: the server (all its processes)
#                       on one core, the generator (and stunnel) on the other;
#                       empty: no pinning
#   WARMUP_SECS=0       > 0 (sipload only): an unmeasured part first over the
#                       same connection, at the same rate, by the same AoRs
#                       (max(WARMUP_SECS, SECS) seconds, so every AoR of the
#                       measured part is registered): the measured part then
#                       renews bindings, a registrar's steady state, as in
#                       register-cpu.sh. The server's CPU is read once
#                       sipload says `warmed`, in the quiet second it waits
#                       before the measured part
#   KEEP_WORK=1         keep the work dir (configs, logs)
#   PERF=1              also `perf record` the server (cpu-clock, call graph
#                       PERF_CALLGRAPH=fp|dwarf, default fp) over the measured
#                       part of each step (after `warmed` with WARMUP_SECS);
#                       perf.data.<server>.<rate> is kept in the work dir
#
# LOADGEN=sipload: bench/sipload.c (built beside cascade) holds ONE TLS
# connection (TLS 1.2+, the test CA verified, host name checked) straight to
# the server's tls: port and runs the transaction of register-auth.xml at the
# offered rate with at most 3 x rate in flight, AoRs u0.. in turn, digest
# user bench. One process and no proxy in between (about 5 % of a core at
# 2 000/s in a smoke check), where sipp and stunnel ran out of CPU near
# 15 000/s before the server did.
#
# LOADGEN=sipp: Debian's sipp is built without TLS, so sipp speaks TCP (-t t1:
# one connection for every call) to a local stunnel in client mode, which
# holds ONE TLS connection to the server's TLS port. The same stunnel process
# (one service per server, identical settings) carries both servers' traffic,
# so the TLS client side costs the same in both measurements.
#
# In both, the generator's CPU is printed beside the server's and is not part
# of the server's figure.
#
# Servers: cascade with udp: and tls: listeners, the test PKI
# (tests/peers/pki.sh), SQLite persistence and [auth] match_user = no as in
# register-cpu.sh; Kamailio 5.x with a copy of ../shared/bench/kamailio-registrar.cfg
# (2 children, in-memory usrloc, digest) to which this script adds tls.so, a
# tls: listener and a tls.cfg with the same certificate: both written into the
# work dir. One fresh server per rate. Printed per rate and server: achieved
# registrations/s, failed transactions, the generator's p99 latency (sipload
# only), server CPU seconds per 10 000 registrations (user + sys over all its
# processes) and the generator's CPU seconds (sipload, or stunnel for sipp);
# after both servers, the ratios at that rate; last, the highest achieved
# rate each server kept with 0 failures and their ratio.
#
# Handshakes: each server pinned to SERVER_CPUS (taskset; Kamailio's processes
# all inherit it), `openssl s_time -new` (a full handshake per connection, no
# resumption) on LOAD_CPUS for HS_SECS seconds: connections/s as s_time counts
# them, and the server's CPU seconds over that time, i.e. handshakes per
# second of one server core.
# Not a test: it takes both cores for about RATES x SERVERS x SECS + 2 x HS_SECS seconds.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
. "$root/tests/peers/pki.sh"
build=$(cd "${1:-$root/build}" && pwd)
shared=${SHARED:-$root/../shared/bench}
rates=${RATES:-1000 2000 4000 8000}
warmup=${WARMUP_SECS:-0}
servers=${SERVERS:-cascade kamailio}
secs=${SECS:-10}
hs_secs=${HS_SECS:-10}
sipload=${SIPLOAD:-$build/sipload}
if [ -x "$sipload" ]; then loadgen=${LOADGEN:-sipload}; else loadgen=${LOADGEN:-sipp}; fi
case $loadgen in
sipload) [ -x "$sipload" ] || { echo "LOADGEN=sipload: no $sipload (cmake --build $build --target sipload)"; exit 1; } ;;
sipp) [ "$warmup" = 0 ] || { echo "WARMUP_SECS needs LOADGEN=sipload"; exit 1; } ;;
*) echo "LOADGEN must be sipload or sipp"; exit 1 ;;
esac
server_cpus=${SERVER_CPUS-0}
load_cpus=${LOAD_CPUS-1}
load_pre=()
[ -n "$load_cpus" ] && load_pre=(taskset -c "$load_cpus")
work=$(mktemp -d /tmp/cascade-regtls.XXXXXX)
server_pid=
stunnel_pid=

cleanup() {
    [ -n "$stunnel_pid" ] && kill "$stunnel_pid" 2>/dev/null || true
    kill_server_and_clean
}
trap cleanup EXIT

make_test_pki "$work/pki"
write_users_csv "$(max_step_calls "$rates" "$secs")"

# Ports: the servers' TLS ports, stunnel's two plain-TCP entry points.
c_tls=$(free_port); k_udp=$(free_port); k_tls=$(free_port)
st_c=$(free_port); st_k=$(free_port)

# --- Kamailio: the registrar cfg plus TLS, written here ---
sed -e "s|^listen=udp:127.0.0.1:5070|listen=udp:127.0.0.1:$k_udp\nlisten=tls:127.0.0.1:$k_tls\nenable_tls=yes\ntcp_connection_lifetime=3605|" \
    -e "0,/^loadmodule/s|^loadmodule|loadmodule \"tls.so\"\nmodparam(\"tls\", \"config\", \"$work/kamailio-tls.cfg\")\nloadmodule|" \
    "$shared/kamailio-registrar.cfg" >"$work/kamailio-registrar-tls.cfg"
cat >"$work/kamailio-tls.cfg" <<CFG
[server:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
certificate = $work/pki/server.pem
private_key = $work/pki/server.key

[client:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
CFG

# --- stunnel (LOADGEN=sipp only): one client-mode process, a service per server ---
[ "$loadgen" = sipp ] && cat >"$work/stunnel.conf" <<CONF
foreground = yes
pid =
debug = 3
output = $work/stunnel.log
[cascade]
client = yes
accept = 127.0.0.1:$st_c
connect = 127.0.0.1:$c_tls
CAfile = $work/pki/ca.pem
verifyChain = yes
checkHost = localhost
sslVersionMin = TLSv1.2
[kamailio]
client = yes
accept = 127.0.0.1:$st_k
connect = 127.0.0.1:$k_tls
CAfile = $work/pki/ca.pem
verifyChain = yes
checkHost = localhost
sslVersionMin = TLSv1.2
CONF
if [ "$loadgen" = sipp ]; then
    "${load_pre[@]}" stunnel "$work/stunnel.conf" >"$work/stunnel.out" 2>&1 &
    stunnel_pid=$!
fi

wait_tcp_listen() {
    for _ in $(seq 1 50); do
        ss -Htnl "sport = :$1" | grep -q . && return 0
        sleep 0.1
    done
    return 1
}
[ "$loadgen" = sipp ] && { wait_tcp_listen "$st_c" || fail_start stunnel; }

cascade_tls_ini() {
    cascade_write_ini "udp:127.0.0.1:$1, tls:127.0.0.1:$c_tls" "127.0.0.1:$2" bench "${LOG_LEVEL:-warn}" <<INI
domain = 127.0.0.1
[tls]
cert = $work/pki/server.pem
key = $work/pki/server.key
[auth]
realm = 127.0.0.1
match_user = no
[registrar]
max_expires = 3600
INI
}

# start_server NAME: a fresh server; sets server_pid, tls_port (its tls: port) and entry
# (stunnel's port for it).
start_server() {
    if [ "$1" = kamailio ]; then
        server_exec kamailio -f "$work/kamailio-registrar-tls.cfg" -DD -E -w "$work" -m 512 -M 32 >"$work/kamailio.log" 2>&1 &
        server_pid=$!
        wait_tcp_listen "$k_tls" || fail_start kamailio
        entry=$st_k tls_port=$k_tls
    else
        start_fresh_cascade cascade_tls_ini bench
        wait_tcp_listen "$c_tls" || fail_start cascade
        entry=$st_c tls_port=$c_tls
    fi
}

# run_sipp SERVER RATE: one step through stunnel; sets ok, bad, p99 (none), gen_ach
# (successful calls over sipp's start to the statistics row where the last one
# is counted: sipp's own wall time, without its start and exit) and gen_cpu
# (stunnel's CPU s).
run_sipp() {
    local s0 s1
    rm -f "$work/s.csv"
    s0=$(proc_cpu_ticks "$stunnel_pid")
    (cd "$work" && timeout $((secs + 60)) "${load_pre[@]}" sipp "127.0.0.1:$entry" -t t1 -sf "$shared/register-auth.xml" \
        -inf users.csv -au bench -ap secret -i 127.0.0.1 -p "$(free_port)" -r "$2" -m $(($2 * secs)) \
        -l $(($2 * 3)) -nostdin -trace_stat -stf s.csv -fd 1 >"$work/sipp-$1-$2.out" 2>&1) || true
    s1=$(proc_cpu_ticks "$stunnel_pid")
    read -r ok bad _ < <(sipp_csv_counts "$work/s.csv")
    p99=-
    gen_ach=$(python3 - "$work/s.csv" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1]), delimiter=';')); h = rows[0]
ok = int(rows[-1][h.index("SuccessfulCall(C)")])
row = next(r for r in rows[1:] if int(r[h.index("SuccessfulCall(C)")]) == ok)
secs = float(row[h.index("CurrentTime")].split()[-1]) - float(row[h.index("StartTime")].split()[-1])
print("%.0f" % (ok / secs) if ok and secs > 0 else 0)
PY
)
    gen_cpu=$(python3 -c 'import sys; print("%.2f" % (float(sys.argv[1]) / float(sys.argv[2])))' "$((s1 - s0))" "$(getconf CLK_TCK)")
}

# perf_start SERVER RATE / perf_stop: PERF=1 records the server (every process).
perf_pid=
perf_start() {
    [ -n "${PERF:-}" ] || return 0
    local pids
    pids=$(pgrep -d, -P "$server_pid" || true)
    perf record -e cpu-clock --call-graph "${PERF_CALLGRAPH:-fp}" -p "$server_pid${pids:+,$pids}" \
        -o "$work/perf.data.$1.$2" >/dev/null 2>&1 &
    perf_pid=$!
}
perf_stop() {
    [ -n "$perf_pid" ] || return 0
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" 2>/dev/null || true
    perf_pid=
}

# run_sipload SERVER RATE: one step straight to the server's tls: port; sets ok,
# bad, p99 (ms), gen_ach (sipload's achieved/s: ok over its first send to its
# last answer, without process start and TLS handshake) and gen_cpu (sipload's
# user + sys CPU s).
run_sipload() {
    local out=$work/sipload-$1-$2.out fin gen wsecs=0 i
    [ "$warmup" -gt 0 ] && wsecs=$((warmup > secs ? warmup : secs))
    timeout $((wsecs + secs + 90)) /usr/bin/time -f 'cpu %U %S' -o "$work/sipload-$1-$2.time" "${load_pre[@]}" "$sipload" \
        "tls:127.0.0.1:$tls_port" --ca "$work/pki/ca.pem" --tls-name localhost --rate "$2" --duration "$secs" \
        --users "$users" --window $(($2 * 3)) --prefix u --auth-user bench --password secret --warmup "$wsecs" \
        >"$out" 2>&1 &
    gen=$!
    if [ "$wsecs" -gt 0 ]; then
        # The measured part starts one second after `warmed`: read the server's CPU in it.
        for ((i = 0; i < (wsecs + 60) * 20; i++)); do
            grep -q '^warmed ' "$out" && break
            kill -0 "$gen" 2>/dev/null || break
            sleep 0.05
        done
        c0=$(tree_cpu_ticks "$server_pid"); t0=$(date +%s.%N)
        perf_start "$1" "$2"
        grep '^warmed ' "$out" | grep -q ' failed=0 ' || echo "NOTE: $1 warm-up at $2/s: $(grep '^warmed ' "$out" || echo 'no warmed line')"
    fi
    [ "$wsecs" -gt 0 ] || perf_start "$1" "$2"
    wait "$gen" || true
    perf_stop
    fin=$(grep '^final ' "$out" || true)
    ok=$(sed -n 's/.* ok=\([0-9]*\).*/\1/p' <<<"$fin"); ok=${ok:-0}
    bad=$(sed -n 's/.* attempted=\([0-9]*\).*/\1/p' <<<"$fin"); bad=$((${bad:-0} - ok))
    [ -n "$fin" ] || bad=$((bad + 1))  # no final line: count the step as failed
    p99=$(sed -n 's/.* p99_ms=\([0-9.]*\).*/\1/p' <<<"$fin"); p99=${p99:--}
    gen_ach=$(sed -n 's/.* achieved_per_s=\([0-9]*\).*/\1/p' <<<"$fin")
    gen_cpu=$(awk '/^cpu / {printf "%.2f", $2 + $3}' "$work/sipload-$1-$2.time")
}

users=$(max_step_calls "$rates" "$secs")
if [ "$loadgen" = sipload ]; then
    echo "REGISTER over TLS (sipload, one TLS connection straight to the server), $secs s per rate$([ "$warmup" -gt 0 ] && echo ", after an unmeasured warm-up by the same AoRs (renewals measured)")"
else
    echo "REGISTER over TLS (sipp -t t1 -> stunnel -> one TLS connection), $secs s per rate"
fi
echo "server on CPUs ${server_cpus:-any}, generator on CPUs ${load_cpus:-any}"
gen_name=sipload; [ "$loadgen" = sipp ] && gen_name=stunnel
printf '%-8s %-8s | %10s %6s %8s | %s | %s\n' server offered "achieved/s" fail "p99 ms" \
    "server cpu s per 10k REGISTER" "$gen_name cpu s"
declare -A best achieved cpu10k
for rate in $rates; do
    for server in $servers; do
        start_server "$server"
        c0=$(tree_cpu_ticks "$server_pid")
        t0=$(date +%s.%N)
        "run_$loadgen" "$server" "$rate"
        t1=$(date +%s.%N)
        c1=$(tree_cpu_ticks "$server_pid")
        kill -0 "$server_pid" 2>/dev/null || echo "NOTE: $server exited during the run (see its log in $work)"
        stop_server
        # achieved: the generator's own figure, else over the wall time of the step
        read -r ach per10k < <(python3 - "$ok" "$t0" "$t1" "$c0" "$c1" "$(getconf CLK_TCK)" "${gen_ach:-}" <<'PY'
import sys
ok = int(sys.argv[1]); t0, t1, c0, c1, hz = map(float, sys.argv[2:7])
cpu = (c1 - c0) / hz
ach = float(sys.argv[7]) if sys.argv[7] else ok / (t1 - t0)
print("%.0f %.3f" % (ach, cpu * 10000 / ok if ok else 0))
PY
)
        printf '%-8s %-8s | %10s %6s %8s | %30s | %s\n' "$server" "$rate" "$ach" "$bad" "$p99" "$per10k" "$gen_cpu"
        achieved[$server]=$ach; cpu10k[$server]=$per10k
        if [ "$bad" -eq 0 ] && [ "$ok" -gt 0 ] && [ "$ach" -gt "${best[$server]:-0}" ]; then best[$server]=$ach; fi
    done
    if [ -n "${achieved[cascade]:-}" ] && [ -n "${achieved[kamailio]:-}" ]; then
        python3 -c 'import sys; ac, ak, cc, ck = map(float, sys.argv[2:]); print("ratio at %s/s offered: achieved cascade/kamailio %.2f, CPU per registration cascade/kamailio %.2f" % (sys.argv[1], ac / ak if ak else 0, cc / ck if ck else 0))' \
            "$rate" "${achieved[cascade]}" "${achieved[kamailio]}" "${cpu10k[cascade]}" "${cpu10k[kamailio]}"
    fi
done
for server in $servers; do echo "highest achieved/s with 0 failures: $server ${best[$server]:-none}"; done
if [ -n "${best[cascade]:-}" ] && [ -n "${best[kamailio]:-}" ]; then print_ratio "${best[kamailio]}" "${best[cascade]}"; fi

# --- handshakes per second, server on SERVER_CPUS, s_time on LOAD_CPUS ---
[ "$hs_secs" -gt 0 ] || exit 0
echo
echo "TLS handshakes (openssl s_time -new, $hs_secs s; server on CPUs ${server_cpus:-any}, client on CPUs ${load_cpus:-any})"
printf '%-8s | %12s | %s\n' server "handshakes/s" "per server CPU second"
for server in $servers; do
    start_server "$server"
    port=$c_tls; [ "$server" = kamailio ] && port=$k_tls
    c0=$(tree_cpu_ticks "$server_pid"); t0=$(date +%s.%N)
    "${load_pre[@]}" openssl s_time -connect "127.0.0.1:$port" -new -time "$hs_secs" -CAfile "$work/pki/ca.pem" \
        >"$work/s_time-$server.out" 2>&1 || true
    t1=$(date +%s.%N); c1=$(tree_cpu_ticks "$server_pid")
    kill -0 "$server_pid" 2>/dev/null || echo "NOTE: $server exited during the run (see its log in $work)"
    stop_server
    n=$(awk '/connections in .* real seconds/ {print $1; exit}' "$work/s_time-$server.out")
    python3 - "$server" "${n:-0}" "$t0" "$t1" "$c0" "$c1" "$(getconf CLK_TCK)" <<'PY'
import sys
name, n = sys.argv[1], int(sys.argv[2])
t0, t1, c0, c1, hz = map(float, sys.argv[3:])
cpu = (c1 - c0) / hz
print("%-8s | %12.0f | %.0f (server cpu %.2f s for %d handshakes)" % (name, n / (t1 - t0), n / cpu if cpu else 0, cpu, n))
PY
done
