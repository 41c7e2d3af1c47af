#!/usr/bin/env bash
# CPU cost of authenticated REGISTER at fixed offered rates (cascade, and
# Kamailio side by side when asked).
#
# Usage: bench/register-cpu.sh [BUILD_DIR]
#   RATES="6000 12000"  offered rates (sipp calls/s; one call = REGISTER, 401,
#                       REGISTER with digest, 200)
#   SECS=10             seconds per rate
#   WARMUP_SECS=0       > 0: an unmeasured run first, at the same rate, by
#                       the same users (max(WARMUP_SECS, SECS) x rate calls, so
#                       every user of the measured run is registered): the
#                       measured run then only refreshes bindings (a
#                       registrar's steady state) on a server that has touched
#                       its tables and pools once
#   SIPP_ARGS="-buff_size 4194304"  extra sipp options (default: 4 MiB socket
#                       buffers; with sipp's default 208 KiB it drops the
#                       servers' answers on its own socket above ~12 000/s)
#   EXTRA_INI=...       more lines for cascade's ini (bench/lib.sh)
#   PERF=1              also `perf record` the daemon (cpu-clock, call graph
#                       PERF_CALLGRAPH=fp|dwarf|lbr, default fp) for each
#                       rate; perf.data.<rate> is kept in the work dir
#   SERVER_CPUS=0 LOAD_CPUS=1  taskset CPU lists for the server (every
#                       process and thread) and for sipp; unset: anywhere.
#                       Pinned, the two never share a core and nothing
#                       migrates between them (both servers the same way)
#   KEEP_WORK=1         keep the work dir (logs, databases, perf data)
#   REPEAT=1            runs per rate and server, interleaved (cascade,
#                       Kamailio, cascade, ...); the ratio line then compares
#                       the medians (one server's CPU per registration moved
#                       +-20 % between runs on this VM, mostly system time)
#   SERVERS="cascade kamailio"  which servers to measure (default cascade), each
#                       rate in turn, then a ratio line per rate; Kamailio
#                       runs ../shared/bench/kamailio-registrar.cfg (2 children,
#                       in-memory usrloc) and its CPU is summed over its processes.
#                       Also: cascade-redis (the same cascade with its bindings
#                       mirrored into Redis: [redis] mirror_bindings = yes, a
#                       one-master Redis Cluster holding every slot) and
#                       kamailio-redis (the same Kamailio with usrloc db_mode 1,
#                       write-through, on db_redis and a standalone redis-server:
#                       Debian's db_redis has no cluster support). For these two
#                       the Redis server's CPU over the run is printed beside the
#                       server's, and the ratio line compares server + Redis
#
# One fresh server per rate (cascade with SQLite persistence on, [auth]
# match_user = no, user bench/secret, as in register-sweep.sh), sipp with
# ../shared/bench/register-auth.xml, and the server's CPU seconds (user+sys
# from /proc; cascade also split into its loop thread and the others, i.e.
# the store writer) over the run. Prints, per rate: achieved/s, failed calls,
# retransmissions, CPU seconds per 10 000 registrations (successful calls),
# and the server's RSS at the end (Kamailio: summed over its processes, so
# shared memory counts once per process). Runs longer than 32 s see the
# steady state (Timer J).
# Not a test: it takes both cores for RATES x SECS seconds.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
build=$(cd "${1:-$root/build}" && pwd)
shared=${SHARED:-$root/../shared/bench}
rates=${RATES:-6000 12000}
servers=${SERVERS:-cascade}
kport=5070            # fixed by kamailio-registrar.cfg
secs=${SECS:-10}
repeat=${REPEAT:-1}
warmup=${WARMUP_SECS:-0}
server_cpus=${SERVER_CPUS:-}
load=()
[ -n "${LOAD_CPUS:-}" ] && load=(taskset -c "$LOAD_CPUS")
work=$(mktemp -d /tmp/cascade-regcpu.XXXXXX)
server_pid=
perf_pid=

cleanup() {
    [ -n "$perf_pid" ] && kill -INT "$perf_pid" 2>/dev/null || true
    [ -n "${redis_pid:-}" ] && kill "$redis_pid" 2>/dev/null || true
    kill_server_and_clean
}
trap cleanup EXIT

write_users_csv "$(max_step_calls "$rates" "$secs")"

start_kamailio() {
    cport=$kport
    start_kamailio_cfg kamailio-registrar.cfg 512 "$kport"
}

# ---- the location in Redis (SERVERS cascade-redis / kamailio-redis) ----
redis_pid=
redis_port=
# A fresh redis-server on a free port, in memory only; CLUSTER=1: cluster
# mode with every slot on it (what cascade's client needs).
start_redis() {
    if [ "$1" = 1 ]; then redis_start cluster:1 "${LOAD_CPUS:-}"; else redis_start standalone "${LOAD_CPUS:-}"; fi
    redis_port=${redis_ports[-1]}
    redis_pid=${redis_pids[-1]}
}
stop_redis() {
    [ -n "$redis_pid" ] && { kill "$redis_pid" 2>/dev/null; wait "$redis_pid" 2>/dev/null || true; }
    redis_pid=
}

start_kamailio_redis() {
    start_redis 0
    redis-cli -p "$redis_port" hset "version:entry::location" table_version 9 >/dev/null
    sed -e 's|^modparam("usrloc", "db_mode", 0)|loadmodule "db_redis.so"\
modparam("db_redis", "schema_path", "/usr/share/kamailio/db_redis/kamailio")\
modparam("db_redis", "keys", "version=entry:table_name;location=entry:ruid\&usrdom:username,domain\&timer:partition,keepalive")\
modparam("db_redis", "verbosity", 0)\
modparam("usrloc", "db_url", "redis://127.0.0.1:'"$redis_port"'/0")\
modparam("usrloc", "db_mode", 1)|' "$shared/kamailio-registrar.cfg" >"$work/kamailio-redis.cfg"
    grep -q db_redis "$work/kamailio-redis.cfg" || { echo "kamailio-registrar.cfg: no usrloc db_mode line to replace"; exit 1; }
    cport=$kport
    local sh=$shared
    shared=$work
    start_kamailio_cfg kamailio-redis.cfg 512 "$kport"
    shared=$sh
}

start_cascade_redis() {
    start_redis 1
    local extra=${EXTRA_INI:-}
    EXTRA_INI="$extra"$'\n[redis]\nnodes = 127.0.0.1:'"$redis_port"$'\nmirror_bindings = yes'
    start_fresh_cascade cascade_registrar_ini bench
    EXTRA_INI=$extra
}

# CPU ticks of the loop thread (the main thread) and of the other threads (store writer, ...).
threads_of() {
    local main=0 other=0 t v
    for t in /proc/$1/task/*; do
        v=$(awk '{print $14 + $15}' "$t/stat" 2>/dev/null) || continue
        if [ "${t##*/}" = "$1" ]; then main=$v; else other=$((other + v)); fi
    done
    echo "$main $other"
}

printf '%-8s %-8s | %10s %6s %6s %8s | %s\n' server offered "achieved/s" fail retr "cpu s" "cpu s per 10k REGISTER (user + sys; by thread)"
declare -A per10k
for rate in $rates; do
for rep in $(seq 1 "$repeat"); do
for server in $servers; do
    case $server in
    kamailio) start_kamailio ;;
    kamailio-redis) start_kamailio_redis ;;
    cascade-redis) start_cascade_redis ;;
    *) start_fresh_cascade cascade_registrar_ini bench ;;
    esac
    if [ -n "${PERF:-}" ]; then
        perf record -e cpu-clock --call-graph "${PERF_CALLGRAPH:-fp}" -p "$server_pid" -o "$work/perf.data.$rate" >/dev/null 2>&1 &
        perf_pid=$!
        sleep 0.3
    fi
    # One sipp port for the warm-up and the measured run: sipp's Contact and
    # source carry it, so the measured run renews the same bindings from the
    # same address, as phones do, instead of adding a second contact per user.
    sport=$(free_port)
    if [ "$warmup" -gt 0 ]; then
        # Unmeasured: every user of the measured run registers once before
        # it (at least rate x SECS of them: users.csv is read from u0 both
        # times), so the measured run only refreshes bindings (a registrar's
        # steady state), and each server has touched its tables and pools.
        wcalls=$((rate * (warmup > secs ? warmup : secs)))
        (cd "$work" && timeout $((wcalls / rate + 60)) "${load[@]}" sipp "127.0.0.1:$cport" -sf "$shared/register-auth.xml" -inf users.csv \
            -au bench -ap secret -i 127.0.0.1 -p "$sport" -r "$rate" -m "$wcalls" -l $((rate * 3)) \
            -nostdin -fd 1 ${SIPP_ARGS--buff_size 4194304} >/dev/null 2>&1) || true
    fi
    rm -f "$work/s.csv"
    c0=$(tree_cpu_user_sys "$server_pid"); th0=$(threads_of "$server_pid"); x0=$(tree_ctxsw "$server_pid")
    r0="0 0"; [ -n "$redis_pid" ] && r0=$(tree_cpu_user_sys "$redis_pid")
    t0=$(date +%s.%N)
    (cd "$work" && timeout $((secs + 60)) "${load[@]}" sipp "127.0.0.1:$cport" -sf "$shared/register-auth.xml" -inf users.csv \
        -au bench -ap secret -i 127.0.0.1 -p "$sport" -r "$rate" -m $((rate * secs)) -l $((rate * 3)) \
        -nostdin -trace_stat -stf s.csv -fd 1 ${SIPP_ARGS--buff_size 4194304} >/dev/null 2>&1) || true
    t1=$(date +%s.%N)
    c1=$(tree_cpu_user_sys "$server_pid"); th1=$(threads_of "$server_pid"); x1=$(tree_ctxsw "$server_pid")
    r1="0 0"; [ -n "$redis_pid" ] && r1=$(tree_cpu_user_sys "$redis_pid")
    keys=; [ -n "$redis_pid" ] && keys=$(redis-cli -p "$redis_port" dbsize 2>/dev/null)
    rss=0
    for p in $(proc_tree "$server_pid"); do
        rss=$((rss + $(proc_rss_kib "$p" 2>/dev/null || echo 0)))
    done
    if [ -n "$perf_pid" ]; then kill -INT "$perf_pid" 2>/dev/null || true; wait "$perf_pid" 2>/dev/null || true; perf_pid=; fi
    stop_server
    stop_redis
    line=$(python3 - "$(sipp_csv_counts "$work/s.csv")" "$t0" "$t1" "$c0" "$c1" "$(getconf CLK_TCK)" "$rate" "$th0" "$th1" "$server" "$rss" "$x0" "$x1" "$r0" "$r1" "$keys" <<'PY'
import sys
ok, bad, rt = map(int, sys.argv[1].split())
wall = float(sys.argv[3]) - float(sys.argv[2])
u0, s0 = map(int, sys.argv[4].split()); u1, s1 = map(int, sys.argv[5].split())
hz = float(sys.argv[6])
user, sys_ = (u1 - u0) / hz, (s1 - s0) / hz
cpu = user + sys_
k = 10000.0 / ok if ok else 0
m0, o0 = map(int, sys.argv[8].split()); m1, o1 = map(int, sys.argv[9].split())
threads = "; loop thread %.3f, others %.3f" % ((m1 - m0) / hz * k, (o1 - o0) / hz * k) if sys.argv[10].startswith("cascade") else ""
ctxsw = (int(sys.argv[13]) - int(sys.argv[12])) / ok if ok else 0
ru0, rs0 = map(int, sys.argv[14].split()); ru1, rs1 = map(int, sys.argv[15].split())
redis = ((ru1 - ru0) + (rs1 - rs0)) / hz
extra = " | redis %.3f, server + redis %.3f (%s keys)" % (redis * k, (cpu + redis) * k, sys.argv[16]) if sys.argv[16] else ""
print("%-8s %-8s | %10.0f %6d %6d %8.2f | %.3f (%.3f + %.3f%s) | %.2f ctx switches per registration | RSS %d MiB%s" % (
    sys.argv[10], sys.argv[7], ok / wall, bad, rt, cpu, cpu * k, user * k, sys_ * k, threads, ctxsw, int(sys.argv[11]) // 1024, extra))
PY
)
    echo "$line"
    if [ -n "$keys" ]; then # server + Redis
        per10k[$server]="${per10k[$server]:-} $(echo "$line" | sed -n 's/.*server + redis \([0-9.]*\).*/\1/p')"
    else
        per10k[$server]="${per10k[$server]:-} $(echo "$line" | awk -F'|' '{split($3, a, " "); print a[1]}')"
    fi
done
done
# Both servers measured at this rate: cascade's CPU per registration over
# Kamailio's (with REPEAT > 1, of the medians of the interleaved runs); the
# Redis pair likewise, server + Redis.
for pair in "cascade kamailio" "cascade-redis kamailio-redis"; do
set -- $pair
if [ -n "${per10k[$1]:-}" ] && [ -n "${per10k[$2]:-}" ]; then
    python3 - "$rate" "${per10k[$1]}" "${per10k[$2]}" "$1" "$2" <<'PY'
import statistics, sys
c = [float(x) for x in sys.argv[2].split()]
k = [float(x) for x in sys.argv[3].split()]
mc, mk = statistics.median(c), statistics.median(k)
a, b = sys.argv[4], sys.argv[5]
runs = "" if len(c) == 1 else "; medians of %d interleaved runs, %s %s, %s %s" % (
    len(c), a, " ".join("%.3f" % x for x in c), b, " ".join("%.3f" % x for x in k))
print("ratio    %-8s | %s/%s CPU per registration %.2f (%.3f / %.3f%s)" % (sys.argv[1], a, b, mc / mk if mk else 0, mc, mk, runs))
PY
fi
done
unset per10k; declare -A per10k
done
