#!/usr/bin/env bash
# Authenticated REGISTER over TLS on a reused connection, cascade and
# Kamailio (its tls module) in the same run, and TLS handshakes per second.
#
# Usage: bench/register-tls.sh [BUILD_DIR]
#   RATES="1000 2000 4000 8000"  offered rates (sipp calls/s; one call =
#                       REGISTER, 401, REGISTER with digest, 200)
#   SECS=10             seconds per rate
#   HS_SECS=10          seconds of the handshake test per server
#   SERVERS="cascade kamailio"
#   KEEP_WORK=1         keep the work dir (configs, logs)
#
# Debian's sipp is built without TLS, so sipp speaks TCP (-t t1: one
# connection for every call) to a local stunnel in client mode, which holds
# ONE TLS connection to the server's TLS port. The same stunnel process (one
# service per server, identical settings: TLS 1.2+, the test CA verified,
# host name checked) carries both servers' traffic, so the TLS client side
# costs the same in both measurements; its CPU is printed beside the server's
# and is not part of the server's figure. Everything runs on this machine's
# 2 cores: sipp, stunnel and the server share them.
#
# Servers: cascade with udp: and tls: listeners, the test PKI
# (tests/peers/pki.sh), SQLite persistence and [auth] match_user = no as in
# register-cpu.sh; Kamailio 5.x with a copy of ../shared/bench/kamailio-registrar.cfg
# (2 children, in-memory usrloc, digest) to which this script adds tls.so, a
# tls: listener and a tls.cfg with the same certificate: both written into the
# work dir. One fresh server per rate. Printed per rate and server: achieved
# registrations/s, failed calls, server CPU seconds per 10 000 registrations
# (user + sys over all its processes), stunnel's CPU seconds over the run;
# last, the highest rate each server kept with 0 failures.
#
# Handshakes: each server pinned to CPU 0 (taskset; Kamailio's processes all
# inherit it), `openssl s_time -new` (a full handshake per connection, no
# resumption) on CPU 1 for HS_SECS seconds: connections/s as s_time counts
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
servers=${SERVERS:-cascade kamailio}
secs=${SECS:-10}
hs_secs=${HS_SECS:-10}
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

# --- stunnel: one client-mode process, a service per server ---
cat >"$work/stunnel.conf" <<CONF
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
stunnel "$work/stunnel.conf" >"$work/stunnel.out" 2>&1 &
stunnel_pid=$!

wait_tcp_listen() {
    for _ in $(seq 1 50); do
        ss -Htnl "sport = :$1" | grep -q . && return 0
        sleep 0.1
    done
    return 1
}
wait_tcp_listen "$st_c" || fail_start stunnel

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

# start_server NAME: a fresh server; sets server_pid and entry (stunnel's port for it).
start_server() {
    if [ "$1" = kamailio ]; then
        server_exec kamailio -f "$work/kamailio-registrar-tls.cfg" -DD -E -w "$work" -m 512 -M 32 >"$work/kamailio.log" 2>&1 &
        server_pid=$!
        wait_tcp_listen "$k_tls" || fail_start kamailio
        entry=$st_k
    else
        start_fresh_cascade cascade_tls_ini bench
        wait_tcp_listen "$c_tls" || fail_start cascade
        entry=$st_c
    fi
}

echo "REGISTER over TLS (sipp -t t1 -> stunnel -> one TLS connection), $secs s per rate"
printf '%-8s %-8s | %10s %6s | %s | %s\n' server offered "achieved/s" fail "server cpu s per 10k REGISTER" "stunnel cpu s"
declare -A best
for rate in $rates; do
    for server in $servers; do
        start_server "$server"
        rm -f "$work/s.csv"
        c0=$(tree_cpu_ticks "$server_pid"); s0=$(proc_cpu_ticks "$stunnel_pid")
        t0=$(date +%s.%N)
        (cd "$work" && timeout $((secs + 60)) sipp "127.0.0.1:$entry" -t t1 -sf "$shared/register-auth.xml" \
            -inf users.csv -au bench -ap secret -i 127.0.0.1 -p "$(free_port)" -r "$rate" -m $((rate * secs)) \
            -l $((rate * 3)) -nostdin -trace_stat -stf s.csv -fd 1 >"$work/sipp-$server-$rate.out" 2>&1) || true
        t1=$(date +%s.%N)
        c1=$(tree_cpu_ticks "$server_pid"); s1=$(proc_cpu_ticks "$stunnel_pid")
        kill -0 "$server_pid" 2>/dev/null || echo "NOTE: $server exited during the run (see its log in $work)"
        stop_server
        read -r ok bad _ < <(sipp_csv_counts "$work/s.csv")
        python3 - "$server" "$rate" "$ok" "$bad" "$t0" "$t1" "$c0" "$c1" "$s0" "$s1" "$(getconf CLK_TCK)" <<'PY'
import sys
name, rate, ok, bad = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
t0, t1, c0, c1, s0, s1, hz = map(float, sys.argv[5:])
cpu = (c1 - c0) / hz
print("%-8s %-8s | %10.0f %6d | %30.3f | %.2f" % (name, rate, ok / (t1 - t0), bad, cpu * 10000 / ok if ok else 0,
                                                 (s1 - s0) / hz))
PY
        if [ "$bad" -eq 0 ] && [ "$ok" -gt 0 ]; then best[$server]=$rate; fi
    done
done
for server in $servers; do echo "highest offered rate with 0 failures: $server ${best[$server]:-none}"; done

# --- handshakes per second, server on CPU 0, s_time on CPU 1 ---
echo
echo "TLS handshakes (openssl s_time -new, $hs_secs s; server pinned to CPU 0, client on CPU 1)"
printf '%-8s | %12s | %s\n' server "handshakes/s" "per server CPU second"
server_cpus=0
for server in $servers; do
    start_server "$server"
    port=$c_tls; [ "$server" = kamailio ] && port=$k_tls
    c0=$(tree_cpu_ticks "$server_pid"); t0=$(date +%s.%N)
    taskset -c 1 openssl s_time -connect "127.0.0.1:$port" -new -time "$hs_secs" -CAfile "$work/pki/ca.pem" \
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
