#!/usr/bin/env bash
# GB live-view fan-out bench (issue 13, "Benchmark"): GB cameras sending
# H.264 in MPEG-PS over RTP at ~4 Mbit/s (cascade-gbsim streaming a clip that
# ffmpeg/libx264 makes at that rate), played by N viewers per output:
# HTTP-FLV (cascade-flvload, one process holding N connections) and WebRTC
# over WHEP (cascade-rtcload). Cases: one camera and N viewers of one output
# for each N in --sizes; then --cameras cameras with --per-camera viewers
# each, per output.
#
# For each case the server is started fresh with its cameras streaming; the
# viewers join over N x 10 ms (at least 1 s), settle, then the server is
# sampled over a steady window: CPU (utime+stime of all its threads from
# /proc/<pid>/stat) per viewer, RSS growth over the server with its cameras
# and no viewer, per viewer. The viewers report what they got: Mbit/s each,
# FLV stalls (no video tag for 1 s) and timestamp gaps (a step > 200 ms),
# connections the server ended, WebRTC packet loss.
#
# The anchor: ZLMediaKit, when ZLM_BIN names its MediaServer. The same
# cameras (gbsim, same clip) are INVITEd by bench/gb_invite.py (a stand-in
# SIP upper) to the RTP ports ZLMediaKit opens (openRtpServer), and the same
# load tools read its HTTP-FLV (/rtp/<stream>.live.flv) and WHEP
# (/index/api/whep) URLs.
#
# Usage: bench/gb-fanout.sh [--sizes "100 1000"] [--cameras 200] [--per-camera 2]
#                           [--outputs "flv webrtc"] [--window S] [--kbps K]
#                           [--no-single] [--no-multi] [BUILD_DIR]
# env: ZLM_BIN=/path/MediaServer  also run ZLMediaKit, same cases, same run
#      SERVER_CPUS=0  LOAD_CPUS=1  taskset CPU lists of the server and of the
#                     load (viewers, the SIP stand-in); "" = anywhere
#      SIM_CPUS=$LOAD_CPUS  the cameras' (cascade-gbsim's) CPU list
#      AUDIO=none|pcma|pcmu  the cameras' G.711 beside the video (none)
#      RAMP_PER_VIEWER_MS=10  the joins are spread over N x this (at least 1 s)
#      ZLM_ONLY=1     skip cascade;  KEEP_WORK=1  keep the work dir
# Needs: ffmpeg with libx264, jq, curl, python3, and build/cascade,
# cascade-gbsim, cascade-flvload, cascade-rtcload (cmake --build build
# --target cascade cascade-gbsim cascade-flvload cascade-rtcload). Not a
# test: it loads both cores for minutes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"

sizes="100 1000"
cameras=200
per_camera=2
outputs="flv webrtc"
window=15
settle=6
kbps=4000
do_single=1
do_multi=1
build=$root/build
while [ $# -gt 0 ]; do
    case "$1" in
    --sizes) sizes=$2; shift ;;
    --cameras) cameras=$2; shift ;;
    --per-camera) per_camera=$2; shift ;;
    --outputs) outputs=$2; shift ;;
    --window) window=$2; shift ;;
    --kbps) kbps=$2; shift ;;
    --no-single) do_single=0 ;;
    --no-multi) do_multi=0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) build=$1 ;;
    esac
    shift
done

need() { command -v "$1" >/dev/null || { echo "gb-fanout: $1 missing ($2)" >&2; exit 77; }; }
need ffmpeg "apt-get install ffmpeg"
need jq "apt-get install jq"
need curl "apt-get install curl"
for b in cascade cascade-gbsim cascade-flvload cascade-rtcload; do
    [ -x "$build/$b" ] || { echo "gb-fanout: $build/$b missing: cmake --build build --target $b" >&2; exit 77; }
done
if [ -n "${ZLM_BIN:-}" ] && [ ! -x "$ZLM_BIN" ]; then echo "gb-fanout: ZLM_BIN=$ZLM_BIN is not a program" >&2; exit 2; fi

SERVER_CPUS=${SERVER_CPUS-0}
LOAD_CPUS=${LOAD_CPUS-1}
SIM_CPUS=${SIM_CPUS-$LOAD_CPUS}
[ "$(nproc)" -lt 2 ] && { SERVER_CPUS=; LOAD_CPUS=; SIM_CPUS=; }
server_cpus=$SERVER_CPUS
AUDIO=${AUDIO:-none}
work=$(mktemp -d /tmp/cascade-gb-fanout.XXXXXX)
server_pid='' sim_pid='' upper_pid=''
cleanup() {
    kill_quietly "$upper_pid" "$sim_pid" "$server_pid"
    if [ "${KEEP_WORK:-0}" = 1 ]; then echo "gb-fanout: work dir kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# Become a load-side program on LOAD_CPUS: `(load_exec PROG ARGS) &` so that
# $! is the program itself (taskset execs it) and killing it stops it.
load_exec() { if [ -n "$LOAD_CPUS" ]; then exec taskset -c "$LOAD_CPUS" "$@"; else exec "$@"; fi; }
# The same for the cameras (cascade-gbsim), on SIM_CPUS.
sim_exec() { if [ -n "$SIM_CPUS" ]; then exec taskset -c "$SIM_CPUS" "$@"; else exec "$@"; fi; }
free_tcp_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# A free block of UDP ports P..P+COUNT-1 on 127.0.0.1 (checked now).
free_udp_block() {
    python3 - "$1" <<'PY'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(100):
    p = random.randrange(20000, 60000 - n)
    ok = True
    for q in range(p, p + n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(("127.0.0.1", q))
        except OSError:
            ok = False
        s.close()
        if not ok:
            break
    if ok:
        print(p); break
PY
}
# wait_until SECONDS command...: poll every 0.2 s.
wait_until() {
    local end=$((SECONDS + $1)); shift
    while [ $SECONDS -le $end ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
    return 1
}

# The camera: a 1280x720 25 fps H.264 clip at --kbps (CBR, a key frame every
# 2 s, constrained baseline: what every WebRTC receiver takes), noise over
# a test pattern so the encoder spends the rate. Made once per rate, kept in
# /tmp (CLIP=FILE uses another Annex B file).
clip=${CLIP:-/tmp/cascade-gb-fanout-${kbps}k.h264}
if [ ! -s "$clip" ]; then
    ffmpeg -nostdin -v error -y -f lavfi -i "testsrc2=size=1280x720:rate=25,noise=alls=30:allf=t" -t 10 \
        -c:v libx264 -preset ultrafast -profile:v baseline -pix_fmt yuv420p -g 50 -keyint_min 50 -sc_threshold 0 \
        -b:v "${kbps}k" -minrate "${kbps}k" -maxrate "${kbps}k" -bufsize "${kbps}k" -x264-params nal-hrd=cbr \
        -bsf:v h264_mp4toannexb -f h264 "$clip.tmp" && mv "$clip.tmp" "$clip"
fi
clip_kbps=$(( $(stat -c %s "$clip") * 8 / 10 / 1000 ))

# Channel id of camera K (0-based) of cascade-gbsim --channels 1 (its numbering).
chan_of() { printf '3402000000131%07d' $(($1 + 1)); }
dev_of() { printf '3402000000132%07d' $(($1 + 1)); }

# Set by each server's start: the URL lists the viewers read (line k: camera k).
flv_urls=$work/flv.urls
whep_urls=$work/whep.urls
token=''
in_lost() { echo '-'; }

# ---- cascade ----
capi=''
cascade_start() {
    local ncam=$1 d=$work/cascade sip mp mb k j
    rm -rf "$d"; mkdir -p "$d"
    capi=$(free_tcp_port); sip=$(free_port); mp=$(free_port); mb=$(free_udp_block $((ncam * 2 + 20)))
    cat >"$d/cascade.ini" <<INI
[sip]
listen = udp:127.0.0.1:$sip
domain = 3402000000
[gb]
enabled = yes
id = 34020000002000000001
domain = 3402000000
password = 12345678
allow_unknown = yes
media_ip = 127.0.0.1
media_ports = $mb-$((mb + ncam * 2 + 19))
keepalive_interval = 60
catalog_on_register = no
[media]
enabled = yes
listen = 127.0.0.1
port = $mp
ice_tcp = no
max_peers = 20000
idle_stop = 300
[api]
listen = 127.0.0.1:$capi
token = bench
[store]
path = $d/cascade.db
[log]
level = warn
INI
    (ulimit -n 65536 2>/dev/null || true; server_exec "$build/cascade" -c "$d/cascade.ini" >"$d/cascade.log" 2>&1) &
    server_pid=$!
    wait_until 10 curl -fs -H 'Authorization: Bearer bench' "http://127.0.0.1:$capi/api/v1/stats" ||
        { echo "gb-fanout: cascade did not start" >&2; cat "$d/cascade.log" >&2; return 1; }
    (sim_exec "$build/cascade-gbsim" --target "127.0.0.1:$sip" --devices "$ncam" --channels 1 --media "$clip" \
        --audio "$AUDIO" --keepalive 60 --rate 200 --quiet >"$d/gbsim.log" 2>&1) &
    sim_pid=$!
    online() { [ "$(curl -fs -H 'Authorization: Bearer bench' "http://127.0.0.1:$capi/api/v1/gb/devices?limit=1" | jq .online)" = "$ncam" ]; }
    wait_until 60 online || { echo "gb-fanout: cascade: not all $ncam cameras online" >&2; return 1; }
    : >"$flv_urls"; : >"$whep_urls"
    for k in $(seq 0 $((ncam - 1))); do
        j=$(curl -fs -X POST -H 'Authorization: Bearer bench' -H 'Content-Type: application/json' -d '{}' \
            "http://127.0.0.1:$capi/api/v1/gb/devices/$(dev_of "$k")/channels/$(chan_of "$k")/live") ||
            { echo "gb-fanout: cascade: live of camera $k failed" >&2; return 1; }
        echo "$j" | jq -r .flv >>"$flv_urls"
        echo "$j" | jq -r .webrtc >>"$whep_urls"
    done
    streaming() {
        [ "$(curl -fs -H 'Authorization: Bearer bench' "http://127.0.0.1:$capi/api/v1/gb/streams" |
            jq '[.streams[] | select(.frames > 0)] | length')" = "$ncam" ]
    }
    wait_until 30 streaming || { echo "gb-fanout: cascade: not all $ncam streams have frames" >&2; return 1; }
    token=bench
}
cascade_in_lost() {
    curl -fs -H 'Authorization: Bearer bench' "http://127.0.0.1:$capi/api/v1/gb/streams" | jq '[.streams[].lost] | add // 0'
}
cascade_in_kbps() {
    curl -fs -H 'Authorization: Bearer bench' "http://127.0.0.1:$capi/api/v1/gb/streams" |
        jq --argjson n "$1" '[.streams[].bitrate_bps] | add // 0 | . / 1000 / $n | round'
}
cascade_stop() {
    kill_quietly "$sim_pid"; wait "$sim_pid" 2>/dev/null || true; sim_pid=
    stop_server
}

# ---- ZLMediaKit ----
zapi=''
zlm_start() {
    local ncam=$1 d=$work/zlm hp rtc sip gp k port threads
    rm -rf "$d"; mkdir -p "$d"
    hp=$(free_tcp_port); rtc=$(free_port); sip=$(free_port); gp=$(free_port)
    zapi="http://127.0.0.1:$hp/index/api"
    # one event loop per CPU it may use, as cascade gets one loop
    threads=1
    if [ -n "$SERVER_CPUS" ]; then threads=$(taskset -c "$SERVER_CPUS" nproc); else threads=$(nproc); fi
    # Only what the bench uses: HTTP (API, HTTP-FLV, WHEP) and WebRTC on
    # UDP; no RTSP/RTMP listeners, no HLS/MP4/TS/fMP4 muxers, no hooks.
    cat >"$d/config.ini" <<INI
[api]
apiDebug=0
secret=bench
[general]
mediaServerId=bench
enableVhost=0
[hook]
enable=0
[protocol]
enable_hls=0
enable_hls_fmp4=0
enable_mp4=0
enable_ts=0
enable_fmp4=0
enable_rtsp=1
enable_rtmp=1
auto_close=0
[http]
port=$hp
sslport=0
[rtmp]
port=0
sslport=0
[rtsp]
port=0
sslport=0
[shell]
port=0
[srt]
port=0
[rtp_proxy]
port=0
timeoutSec=60
[rtc]
port=$rtc
tcpPort=0
externIP=127.0.0.1
signalingPort=0
signalingSslPort=0
icePort=0
iceTcpPort=0
INI
    (ulimit -n 65536 2>/dev/null || true; cd "$d" && server_exec "$ZLM_BIN" -c "$d/config.ini" -l 3 -t "$threads" \
        --log-dir "$d/log/" >"$d/zlm.log" 2>&1) &
    server_pid=$!
    wait_until 15 curl -fs "$zapi/getServerConfig?secret=bench" ||
        { echo "gb-fanout: ZLMediaKit did not start" >&2; tail -20 "$d/zlm.log" >&2; return 1; }
    : >"$d/targets"; : >"$flv_urls"; : >"$whep_urls"
    for k in $(seq 0 $((ncam - 1))); do
        port=$(curl -fs "$zapi/openRtpServer?secret=bench&port=0&tcp_mode=0&stream_id=cam$k" | jq -r '.port // empty')
        [ -n "$port" ] || { echo "gb-fanout: ZLMediaKit: openRtpServer failed" >&2; return 1; }
        echo "$(chan_of "$k") $port" >>"$d/targets"
        echo "http://127.0.0.1:$hp/rtp/cam$k.live.flv" >>"$flv_urls"
        echo "http://127.0.0.1:$hp/index/api/whep?app=rtp&stream=cam$k" >>"$whep_urls"
    done
    (load_exec python3 -u "$root/bench/gb_invite.py" --listen "$sip" --device "127.0.0.1:$gp" --targets "$d/targets" \
        >"$d/invite.log" 2>&1) &
    upper_pid=$!
    (sim_exec "$build/cascade-gbsim" --target "127.0.0.1:$sip" --local-port "$gp" --sockets 1 --devices "$ncam" \
        --channels 1 --media "$clip" --audio "$AUDIO" --keepalive 60 --rate 200 --quiet >"$d/gbsim.log" 2>&1) &
    sim_pid=$!
    wait_until 60 grep -q '^ok ' "$d/invite.log" || { echo "gb-fanout: ZLMediaKit: INVITEs not all answered" >&2; return 1; }
    zonline() {
        [ "$(curl -fs "$zapi/getMediaList?secret=bench&schema=rtmp&app=rtp" | jq '.data // [] | length')" = "$ncam" ]
    }
    wait_until 30 zonline || { echo "gb-fanout: ZLMediaKit: not all $ncam streams registered" >&2; return 1; }
    token=''
}
zlm_in_lost() { echo '-'; }
zlm_in_kbps() {
    curl -fs "$zapi/getMediaList?secret=bench&schema=rtmp&app=rtp" |
        jq --argjson n "$1" '[.data[]?.bytesSpeed] | add // 0 | . * 8 / 1000 / $n | round'
}
zlm_stop() {
    kill_quietly "$upper_pid" "$sim_pid"; wait "$upper_pid" "$sim_pid" 2>/dev/null || true; upper_pid='' sim_pid=''
    stop_server
}

# ---- one measurement ----
clk=$(getconf CLK_TCK)

# ns the threads of a process spent runnable but waiting for a CPU
# (/proc/<pid>/task/*/schedstat, second field): a server that waits much was
# starved by other load on its CPUs, and its figures are not its own.
run_wait_ns() {
    cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $2} END {printf "%.0f\n", s}'
}

# run_point SERVER OUTPUT CAMERAS VIEWERS_PER_CAMERA: one table row.
run_point() {
    local srv=$1 out=$2 ncam=$3 per=$4 n rss0 rss1 c0 c1 l0 l1 ramp w0 dur lpid res ta tb q0 q1
    n=$((ncam * per))
    "${srv}_start" "$ncam" || { "${srv}_stop"; echo "$srv $out $ncam $n: did not start"; return 0; }
    sleep 2
    rss0=$(proc_rss_kib "$server_pid")
    ramp=$((n * ${RAMP_PER_VIEWER_MS:-10} > 1000 ? n * ${RAMP_PER_VIEWER_MS:-10} : 1000))
    w0=$(( (ramp + 999) / 1000 + settle ))
    dur=$(( w0 + window + 2 ))
    res=$work/$srv-$out-$ncam-$n.jsonl
    # viewer i reads camera i mod ncam: each camera gets per viewers
    if [ "$out" = flv ]; then
        (ulimit -n 65536 2>/dev/null || true
         load_exec "$build/cascade-flvload" --url-file "$flv_urls" \
             -n "$n" ${token:+--token "$token"} --ramp "$ramp" --duration "$dur" --quiet) >"$res" 2>"$res.err" &
    else
        (ulimit -n 65536 2>/dev/null || true
         load_exec "$build/cascade-rtcload" --whep-file "$whep_urls" \
             -n "$n" ${token:+--token "$token"} --ramp "$ramp" --duration "$dur" --quiet) >"$res" 2>"$res.err" &
    fi
    lpid=$!
    sleep "$w0"
    c0=$(tree_cpu_ticks "$server_pid"); ta=$(date +%s.%N); q0=$(run_wait_ns "$server_pid"); l0=$("${srv}_in_lost")
    sleep "$window"
    c1=$(tree_cpu_ticks "$server_pid"); tb=$(date +%s.%N); q1=$(run_wait_ns "$server_pid"); l1=$("${srv}_in_lost")
    # what the cameras delivered, kbit/s per camera as the server measured it
    # at the window's end: below the clip's rate, the cameras (gbsim) were
    # starved, not the server
    local camkbps
    camkbps=$("${srv}_in_kbps" "$ncam" || echo -)
    rss1=$(proc_rss_kib "$server_pid")
    wait "$lpid" || true
    "${srv}_stop"
    local lost='-'
    [ "$l0" != '-' ] && lost=$((l1 - l0))
    jq -rs --arg srv "$srv" --arg out "$out" --argjson ncam "$ncam" --argjson n "$n" --argjson ticks $((c1 - c0)) \
        --argjson clk "$clk" --argjson win "$window" --argjson w0 "$w0" --argjson rss0 "$rss0" \
        --argjson rss1 "$rss1" --arg inlost "$lost" --argjson real "$(echo "$tb - $ta" | bc)" --arg camkbps "${camkbps:--}" --argjson qwait $((q1 - q0)) '
        def r(d): if . == null then "-" else (. * pow(10; d) | round / pow(10; d) | tostring) end;
        (map(select(.summary == true)) | first // {}) as $s
        | [.[] | select(.t != null and .t >= $w0 and .t <= $w0 + $win)] as $w
        | ($ticks / $clk / $real * 100) as $cpu
        | (if ($w | length) > 1 then ($w | first) else null end) as $a
        | (if ($w | length) > 1 then ($w | last) else null end) as $b
        | (if $a and $out == "webrtc" and $b.expected > $a.expected
             then 100 * ($b.lost - $a.lost) / ($b.expected - $a.expected) else null end) as $loss
        | (if $a then ($w[1:] | map(.mbps) | add / length) else null end) as $mbps
        | [$srv, $out, $ncam, $n, ($s.connected // 0), ($cpu | r(1)), ($cpu * 10 / $n | r(3)),
           ($rss1 / 1024 | r(1)), (($rss1 - $rss0) / $n | r(1)),
           (if $mbps then $mbps / $n else null end | r(2)),
           (if $out == "webrtc" then ($loss | r(3)) else "-" end),
           (if $out == "flv" and $a then ($b.stalls - $a.stalls) else "-" end),
           (if $out == "flv" and $a then ($b.gaps - $a.gaps) else "-" end),
           (if $out == "flv" then ($s.ended // 0) else "-" end),
           (if $out == "webrtc" then ($s.socket_drops // "-") else "-" end),
           $inlost, $camkbps, ($s.all_keyframed_ms | r(0)), ($s.client_cpu_pct | r(0)), ($real | r(1)),
           ($qwait / 1e9 / $real * 100 | r(1)),
           # a window much longer than asked: the processes were stopped (another
           # bench froze them) or starved; the row is not a measurement
           (if $real > $win + 2 then "late" elif $qwait / 1e9 / $real > 0.1 then "starved" else "ok" end)]
        | @tsv' "$res"
}

header() {
    printf 'server\toutput\tcameras\tviewers\tconnected\tCPU%%\tCPUms/viewer/s\tRSS_MiB\tKiB/viewer\tMbps/viewer\tloss%%_window\tstalls_window\tgaps_window\tended\tviewer_drops\tsrv_in_lost\tcam_in_kbps\tall_key_ms\tload_CPU%%\twindow_s\tsrv_wait%%\tcheck\n'
}

echo "# GB live-view fan-out $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg);" \
     "clip $clip_kbps kbit/s 1280x720 25 fps H.264 audio $AUDIO; window ${window}s; server CPUs ${SERVER_CPUS:-any}," \
     "load CPUs ${LOAD_CPUS:-any}, cameras' CPUs ${SIM_CPUS:-any}"
servers=()
[ "${ZLM_ONLY:-0}" = 1 ] || servers+=(cascade)
[ -n "${ZLM_BIN:-}" ] && servers+=(zlm)
header
for srv in "${servers[@]}"; do
    for out in $outputs; do
        if [ "$do_single" = 1 ]; then
            for n in $sizes; do run_point "$srv" "$out" 1 "$n"; done
        fi
        [ "$do_multi" = 1 ] && run_point "$srv" "$out" "$cameras" "$per_camera"
    done
done
echo "# end $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
