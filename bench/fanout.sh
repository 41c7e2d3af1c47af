#!/usr/bin/env bash
# Fan-out bench (issue 12, "Benchmark"): one 2 Mbit/s H.264 + Opus source,
# N WebRTC viewers held by one cascade-rtcload process, against Janus (the
# anchor: Debian's janus with its streaming plugin) and, with --cascade,
# against cascade (WHIP publisher in, WHEP viewers out).
#
# For each N (default 100 500 1000) the server is started fresh, fed, and
# rtcload joins N viewers over N/100 s, lets them settle, and the server's
# CPU (utime+stime from /proc/<pid>/stat, threads included) and RSS are
# sampled over a steady window. Then a join storm: 200 viewers within 2 s,
# time until all have a key frame. Prints one table per server.
#
# Usage: bench/fanout.sh [--cascade] [--janus-only] [--sizes "100 500"]
#                        [--window S] [--storm N] [BUILD_DIR]
# env: JANUS_EVENT_LOOPS=k  Janus with a static pool of k media loops (default:
#                           Janus's own default, a loop and thread per handle)
#      JANUS_RELAY_THREADS=k the streaming mountpoint's helper threads for
#                           relaying (its "threads"; default 0, as Janus ships)
#      KEEP_WORK=1          keep the work dir (logs, rtcload's JSON lines)
#      RTCLOAD_ARGS="..."   more rtcload options (e.g. --decrypt-all, --srtp cm)
# Columns srtp (the profile the viewers agreed on) and load1 (the machine's
# 1-minute load average as the point started: the machine may be shared).
# Needs: janus, gst-launch-1.0 with x264enc (gstreamer1.0-plugins-ugly) and
# opusenc, jq, and build/cascade-rtcload (cmake --build build --target
# cascade-rtcload). Not a test: it loads both cores for minutes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"

sizes="100 500 1000"
window=15          # seconds of steady state sampled
settle=8           # seconds after the last join before sampling
storm=200
do_janus=1
do_cascade=0
build=$root/build
while [ $# -gt 0 ]; do
    case "$1" in
    --cascade) do_cascade=1 ;;
    --cascade-only) do_cascade=1; do_janus=0 ;;
    --janus-only) do_cascade=0 ;;
    --sizes) sizes=$2; shift ;;
    --window) window=$2; shift ;;
    --storm) storm=$2; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) build=$1 ;;
    esac
    shift
done

rtcload=$build/cascade-rtcload
need() { command -v "$1" >/dev/null || { echo "fanout: $1 missing ($2)" >&2; exit 77; }; }
need gst-launch-1.0 "apt-get install gstreamer1.0-tools"
need jq "apt-get install jq"
[ -x "$rtcload" ] || { echo "fanout: $rtcload missing: cmake --build build --target cascade-rtcload" >&2; exit 77; }
gst-inspect-1.0 x264enc >/dev/null 2>&1 || { echo "fanout: x264enc missing (gstreamer1.0-plugins-ugly)" >&2; exit 77; }

work=$(mktemp -d /tmp/cascade-fanout.XXXXXX)
server_pid=
feeder_pid=
# The address the viewers and the server meet on. Janus never gathers on
# loopback, so both use the host's own address (still no wire: the kernel
# routes a local address through lo).
host_ip=$(ip -4 route get 1.1.1.1 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "src") print $(i + 1)}')
host_ip=${host_ip:-127.0.0.1}

cleanup() {
    kill_quietly "$feeder_pid" "$server_pid"
    if [ "${KEEP_WORK:-0}" = 1 ]; then echo "fanout: work dir kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

free_tcp_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The source: a 640x360 30 fps H.264 constrained baseline stream at 2 Mbit/s
# (videotestsrc "snow" so the encoder really spends its rate; a key frame
# every 2 s, SPS/PPS with each) and Opus at 64 kbit/s, as plain RTP to
# 127.0.0.1 AUDIO_PORT and VIDEO_PORT.
start_feeder() {
    gst-launch-1.0 -q \
        videotestsrc is-live=true pattern=snow ! video/x-raw,width=640,height=360,framerate=30/1 \
        ! x264enc tune=zerolatency speed-preset=ultrafast bitrate=2000 vbv-buf-capacity=500 key-int-max=60 \
        ! video/x-h264,profile=constrained-baseline ! rtph264pay pt=96 config-interval=-1 mtu=1200 \
        ! udpsink host=127.0.0.1 port="$2" \
        audiotestsrc is-live=true wave=pink-noise ! audioconvert ! opusenc bitrate=64000 ! rtpopuspay pt=111 \
        ! udpsink host=127.0.0.1 port="$1" >"$work/feeder.log" 2>&1 &
    feeder_pid=$!
}

# ---- Janus ----

janus_port='' janus_mount=1
rtcload_args=()
# UDP ports where the server takes the source in: their kernel drop counters
# tell loss before the fan-out (the server not draining its input) from
# loss after it.
server_in_ports=

# Datagrams the kernel dropped on the 127.0.0.1 UDP sockets of these ports
# (/proc/net/udp, last column), summed.
udp_drops() {
    local p hex sum=0 d
    for p in "$@"; do
        hex=$(printf '%04X' "$p")
        d=$(awk -v h=":$hex" 'NR > 1 && substr($2, length($2) - 4) == h {s += $NF} END {print s + 0}' /proc/net/udp)
        sum=$((sum + d))
    done
    echo "$sum"
}

# delay_buckets: the server's forwarding-delay histogram, [[upper_us, count],
# ...] (cascade's /api/v1/stats media.forward_delay_us: packet in on the
# media port → out in sendmmsg); [] for a server without one (Janus).
stats_url=
delay_buckets() {
    if [ -n "$stats_url" ]; then
        curl -fs -H 'Authorization: Bearer bench' "$stats_url" | jq -c '.media.forward_delay_us.buckets // []'
    else
        echo '[]'
    fi
}

janus_start() {
    stats_url=
    local d=$work/janus lib=/usr/lib/x86_64-linux-gnu/janus ap vp f loops_sed
    need janus "apt-get install janus"
    mkdir -p "$d"
    janus_port=$(free_tcp_port); ap=$(free_port); vp=$(free_port)
    if [ -n "${JANUS_EVENT_LOOPS:-}" ]; then loops_sed="s|@EVENT_LOOPS@|$JANUS_EVENT_LOOPS|"
    else loops_sed="/event_loops = @EVENT_LOOPS@/d"; fi
    for f in "$root"/bench/janus/*.jcfg; do
        sed -e "s|@LIB@|$lib|; s|@CONFIGS@|$d|; s|@LOG@|$d/janus.log|; s|@HTTP_PORT@|$janus_port|" \
            -e "s|@MOUNT_ID@|$janus_mount|; s|@AUDIO_PORT@|$ap|; s|@VIDEO_PORT@|$vp|" \
            -e "s|@RELAY_THREADS@|${JANUS_RELAY_THREADS:-0}|" \
            -e "s|ice_enforce_list = \"lo\"|ice_enforce_list = \"$host_ip\"|" -e "$loops_sed" \
            "$f" >"$d/$(basename "$f")"
    done
    # A socket and (by default) a thread per viewer.
    (ulimit -n 65536 2>/dev/null || true; exec janus -F "$d" -C "$d/janus.jcfg" >"$d/stdout.log" 2>&1) &
    server_pid=$!
    local i
    for i in $(seq 100); do
        curl -fs -o /dev/null "http://127.0.0.1:$janus_port/janus/info" && break
        kill -0 "$server_pid" 2>/dev/null || { echo "fanout: janus died, see $d" >&2; KEEP_WORK=1; exit 1; }
        sleep 0.1
    done
    start_feeder "$ap" "$vp"
    rtcload_args=(--janus "http://127.0.0.1:$janus_port/janus" --mountpoint "$janus_mount")
    server_in_ports="$ap $vp"
}

janus_stop() {
    kill_quietly "$feeder_pid"; wait "$feeder_pid" 2>/dev/null || true; feeder_pid=
    stop_server
}

# ---- cascade ----
#
# cascade with rooms on the host address (the same meeting point as Janus's),
# the same 2 Mbit/s H.264 + Opus source published into room "bench" over
# WHIP by GStreamer's webrtcbin (tests/peers/gstwebrtc.py --h264: the same
# x264enc settings as start_feeder), the viewers over WHEP. cascade's media
# input is its one UDP media port, which also carries every viewer's RTCP.
cascade_start() {
    local d=$work/cascade api sip mp i
    [ -x "$build/cascade" ] || { echo "fanout: $build/cascade not built" >&2; return 1; }
    mkdir -p "$d"
    api=$(free_tcp_port); sip=$(free_port); mp=$(free_port)
    cat >"$d/cascade.ini" <<INI
[sip]
listen = udp:127.0.0.1:$sip
[api]
listen = 127.0.0.1:$api
token = bench
[store]
path = $d/cascade.db
[log]
level = warn
[media]
enabled = yes
listen = $host_ip
port = $mp
ice_tcp = no
max_peers = 20000
max_participants_per_room = 20000
INI
    (ulimit -n 65536 2>/dev/null || true; exec "$build/cascade" -c "$d/cascade.ini" >"$d/cascade.log" 2>&1) &
    server_pid=$!
    for i in $(seq 100); do
        curl -fs -o /dev/null -H 'Authorization: Bearer bench' "http://127.0.0.1:$api/api/v1/stats" && break
        kill -0 "$server_pid" 2>/dev/null || { echo "fanout: cascade died, see $d" >&2; KEEP_WORK=1; exit 1; }
        sleep 0.1
    done
    /usr/bin/python3 "$root/tests/peers/gstwebrtc.py" publish --h264 "http://127.0.0.1:$api/api/v1/whip/bench" bench 100000 \
        >"$d/publisher.log" 2>&1 &
    feeder_pid=$!
    for i in $(seq 150); do
        curl -fs -H 'Authorization: Bearer bench' "http://127.0.0.1:$api/api/v1/rooms/bench" 2>/dev/null |
            jq -e '[.participants[] | select(.state == "publishing")] | length == 1' >/dev/null && break
        sleep 0.2
    done
    rtcload_args=(--whep "http://127.0.0.1:$api/api/v1/whep/bench" --token bench)
    stats_url=http://127.0.0.1:$api/api/v1/stats
    server_in_ports=$mp
}

cascade_stop() {
    kill_quietly "$feeder_pid"; wait "$feeder_pid" 2>/dev/null || true; feeder_pid=
    stop_server
}

# ---- one measurement ----

clk=$(getconf CLK_TCK)

# run_point SERVER N RAMP_MS -> one table row on stdout, rtcload's lines in the work dir.
run_point() {
    local srv=$1 n=$2 ramp=$3 out rss0 rss1 c0 c1 d0 d1 dur w0 b0 b1 load1
    "${srv}_start" || return 1
    sleep 2                       # the source is flowing and the server settled
    rss0=$(proc_rss_kib "$server_pid")
    load1=$(cut -d' ' -f1 /proc/loadavg)   # the machine's load as the point starts
    out=$work/$srv-$n.jsonl
    w0=$(( (ramp + 999) / 1000 + settle ))
    dur=$(( w0 + window + 2 ))
    # shellcheck disable=SC2086 # options, one a word
    "$rtcload" "${rtcload_args[@]}" -n "$n" --ramp "$ramp" --duration "$dur" --quiet ${RTCLOAD_ARGS:-} \
        >"$out" 2>"$out.err" &
    local lpid=$!
    sleep "$w0"
    c0=$(tree_cpu_ticks "$server_pid")
    b0=$(delay_buckets)
    # shellcheck disable=SC2086 # one port a word
    d0=$(udp_drops $server_in_ports)
    sleep "$window"
    c1=$(tree_cpu_ticks "$server_pid")
    b1=$(delay_buckets)
    # shellcheck disable=SC2086 # one port a word
    d1=$(udp_drops $server_in_ports)
    rss1=$(proc_rss_kib "$server_pid")
    wait "$lpid" || true
    "${srv}_stop"
    # Loss and rates over the sampled window, from rtcload's cumulative
    # per-second lines; connection times from its summary.
    jq -rs --arg srv "$srv" --argjson n "$n" --argjson ticks $((c1 - c0)) --argjson clk "$clk" \
        --argjson win "$window" --argjson w0 "$w0" --argjson rss0 "$rss0" --argjson rss1 "$rss1" \
        --argjson indrops $((d1 - d0)) --argjson b0 "$b0" --argjson b1 "$b1" --arg load1 "$load1" '
        def r(d): if . == null then "-" else (. * pow(10; d) | round / pow(10; d) | tostring) end;
        # the delay histogram of the window: second reading less the first
        ($b0 | map({key: (.[0] | tostring), value: .[1]}) | from_entries) as $m0
        | [$b1[] | [.[0], (.[1] - ($m0[.[0] | tostring] // 0))] | select(.[1] > 0)] as $dh
        | ($dh | map(.[1]) | add // 0) as $dn
        | def dq($f): if $dn == 0 then null else
            (reduce $dh[] as $x ({seen: 0, v: null};
               if .v == null then (.seen += $x[1]) | (if .seen > $f * $dn then .v = $x[0] else . end) else . end) | .v)
          end;
        (map(select(.summary == true)) | first // {}) as $s
        | [.[] | select(.t != null and .t >= $w0 and .t <= $w0 + $win)] as $w
        | ($ticks / $clk / $win * 100) as $cpu
        | (if ($w | length) > 1 then ($w | last) as $b | ($w | first) as $a
             | (if $b.expected > $a.expected then 100 * ($b.lost - $a.lost) / ($b.expected - $a.expected) else null end)
           else null end) as $loss
        | (if ($w | length) > 1 then ($w[1:] | map(.pps) | add / length) else null end) as $pps
        | (if ($w | length) > 1 then ($w[1:] | map(.mbps) | add / length) else null end) as $mbps
        | [$srv, $n, ($s.connected // 0), ($cpu | r(1)), ($cpu * 10 / $n | r(3)),
           ($rss1 / 1024 | r(1)), (($rss1 - $rss0) / $n | r(1)),
           ($loss | r(3)), ($s.loss_pct | r(3)), $indrops, ($s.socket_drops // "-"),
           (if $pps then $pps / $n else null end | r(0)), (if $mbps then $mbps / $n else null end | r(2)),
           ($s.all_connected_ms | r(0)), ($s.all_keyframed_ms | r(0)), ($s.client_cpu_pct | r(0)),
           (dq(0.5) | r(0)), (dq(0.99) | r(0)),
           # the SRTP profile the viewers agreed on (rtcload offers GCM, then CM)
           (if ($s.srtp_gcm // 0) == ($s.connected // -1) then "gcm"
            elif ($s.srtp_cm // 0) == ($s.connected // -1) then "cm"
            else "gcm:\($s.srtp_gcm // "-")/cm:\($s.srtp_cm // "-")" end),
           $load1]
        | @tsv' "$out"
}

header() {
    printf 'server\tN\tconnected\tCPU%%\tCPUms/viewer/s\tRSS_MiB\tKiB/viewer\tloss%%_window\tloss%%_run\tsrv_in_drops\tviewer_drops\tpps/viewer\tMbps/viewer\tall_conn_ms\tall_key_ms\trtcload_CPU%%\tfwd_p50_us\tfwd_p99_us\tsrtp\tload1\n'
}

# The join storm: N viewers within 2 s; the figure is all_keyframed_ms.
run_storm() {
    local srv=$1 out
    "${srv}_start" || return 1
    sleep 2
    out=$work/$srv-storm.jsonl
    # shellcheck disable=SC2086 # options, one a word
    "$rtcload" "${rtcload_args[@]}" -n "$storm" --ramp 2000 --duration 12 --quiet ${RTCLOAD_ARGS:-} \
        >"$out" 2>"$out.err" || true
    "${srv}_stop"
    grep '"summary":true' "$out" | jq -r --arg srv "$srv" '
        "\($srv) join storm: \(.viewers) viewers in 2 s: connected \(.connected), key-framed \(.keyframed); " +
        "all connected after \(.all_connected_ms // "-") ms, all key-framed after \(.all_keyframed_ms // "-") ms " +
        "(per viewer p50/p99: connect \(.connect_ms_p50)/\(.connect_ms_p99) ms, key frame \(.keyframe_ms_p50)/\(.keyframe_ms_p99) ms)"'
}

echo "# fan-out bench $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); window ${window}s" \
     "; janus event_loops=${JANUS_EVENT_LOOPS:-per-handle} relay threads=${JANUS_RELAY_THREADS:-0}"
servers=()
[ "$do_janus" = 1 ] && servers+=(janus)
[ "$do_cascade" = 1 ] && servers+=(cascade)
for srv in "${servers[@]}"; do
    header
    for n in $sizes; do
        run_point "$srv" "$n" $(( n * 10 )) || { echo "$srv: skipped"; break; }
    done
    run_storm "$srv" || true
done
