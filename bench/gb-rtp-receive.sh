#!/usr/bin/env bash
# RTP receive figure for the GB upper role: N live streams (default 100) at R
# Mbit/s each (default 4) into one cascade. A sipp device registers, answers N
# INVITEs (tests/peers/sipp/gb_invite_wait_uas.xml) and waits; bench_gb_rtp
# --send pushes PS-over-RTP to the N media ports for S seconds; cascade's CPU
# is read from /proc before and after, and each stream's packets/loss from the
# API. Usage: bench/gb-rtp-receive.sh [BUILD_DIR]   (env: STREAMS, MBPS, SECS)
# Not a test: it loads both cores for S seconds.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
build=${1:-$root/build}
streams=${STREAMS:-100}; mbps=${MBPS:-4}; secs=${SECS:-10}
work=$(mktemp -d /tmp/cascade-bench.XXXXXX)
port=${PORT:-36060}; api=${API_PORT:-36080}; mp=${MEDIA_PORT:-40000}; dport=${DEVICE_PORT:-36070}
dev=34020000001320000001; cam=34020000001310000001
cascade_write_ini "udp:127.0.0.1:$port" "127.0.0.1:$api" t warn <<INI
domain = 3402000000
[gb]
enabled = yes
password = pw
keepalive_interval = 600
media_ip = 127.0.0.1
media_ports = $mp-$((mp + streams + 50))
catalog_on_register = no
INI
start_cascade_ini
pid=$server_pid
spid=
trap 'kill_and_remove_work "$pid" "${spid:-}"' EXIT
sleep 0.5
call() { curl -s -X "$1" -H 'Authorization: Bearer t' "http://127.0.0.1:$api/api/v1$2" ${3:+--data "$3"}; }
call POST /gb/devices "{\"id\":\"$dev\",\"password\":\"pw\"}" >/dev/null
(cd "$work" && sipp 127.0.0.1:$port -sf "$root/tests/peers/sipp/gb_register.xml" -i 127.0.0.1 -m 1 -nostdin \
    -s $dev -au $dev -ap pw -key upper 34020000002000000001 -key domain 3402000000 -key expires 3600 -p $dport \
    >/dev/null 2>&1)
(cd "$work" && exec sipp 127.0.0.1:$port -sf "$root/tests/peers/sipp/gb_invite_wait_uas.xml" -i 127.0.0.1 \
    -m "$streams" -nostdin -s $cam -p $dport >/dev/null 2>&1) &
spid=$!
sleep 0.5
ports=(); sids=()
for i in $(seq 1 "$streams"); do
    j=$(call POST "/gb/devices/$dev/channels/$cam/play" '{"transport":"udp"}')
    ports+=("$(jq -r .media_port <<<"$j")"); sids+=("$(jq -r .stream_id <<<"$j")")
done
echo "$streams streams playing on ports ${ports[0]}..${ports[-1]}"
cpu() { proc_cpu_ticks "$pid"; }
rss() { proc_rss_kib "$pid"; }
c0=$(cpu)
"$build/bench_gb_rtp" --send "127.0.0.1:$(IFS=,; echo "${ports[*]}")" \
    --ssrc "$(printf '100009999%.0s,' $(seq 1 "$streams"))" --mbps "$mbps" --seconds "$secs" \
    --clip "$root/tests/data/clip.h264"
c1=$(cpu)
sleep 0.5
call GET /gb/streams | jq -r --argjson n "$streams" '
  .streams as $s | [$s[].packets] | add as $p | [$s[].lost] | add as $l | [$s[].bytes] | add as $b |
  "received: \($p) packets, \($b / 1048576 | floor) MiB payload, \($l) lost, \([$s[] | select(.packets > 0)] | length) of \($n) streams with data, codecs \([$s[].codec] | unique)"'
echo "cascade CPU: $(cpu_percent "$c0" "$c1" "$secs" 1)% of one core over ${secs}s; RSS $(rss) KiB"
for s in "${sids[@]}"; do call DELETE "/gb/streams/$s" >/dev/null; done
wait $spid || true
