# lib.sh — shared helpers for peer tests (sourced). Each test starts its own
# cascade on free loopback ports in a temp dir and kills what it started by pid.
set -euo pipefail

BUILD_DIR=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build}
BUILD_DIR=$(cd "$BUILD_DIR" && pwd)
CASCADE=$BUILD_DIR/cascade
CASCADECTL=$BUILD_DIR/cascadectl
PEERS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK=$(mktemp -d /tmp/cascade-peer.XXXXXX)
PIDS=()
FAILS=0
PASSES=0

cleanup() {
    local rc=$? p
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] && [ "$FAILS" -eq 0 ]; then  # 77: skipped, said why
        # The script stopped early (set -e, a signal): say where, keep the logs.
        echo "FAIL - the script stopped early with status $rc after $PASSES checks"
        FAILS=1
    fi
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null || true
    done
    sleep 0.2
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true
    done
    if [ "$FAILS" -ne 0 ] || [ -n "${KEEP_WORK:-}" ]; then
        echo "--- work dir kept: $WORK"
        for f in "$WORK"/*.log; do [ -f "$f" ] && { echo "--- $f (tail)"; tail -40 "$f"; }; done
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
# Under set -e a failing command ends the script: name it (cleanup keeps the logs).
trap 'echo "--- stopped at ${BASH_SOURCE[0]##*/}:$LINENO: $BASH_COMMAND (status $?)"' ERR

# Ports. ctest runs peer tests in parallel, so each test script has its own
# slot of PORT_SLOT_SIZE ports (the script's index among the sorted
# tests/peers/test_*.sh picks it) between 10000 and 200 below the kernel's
# ephemeral range (a port from that range may be taken by any client's
# outgoing connection — curl, the simulator — between a test's stop and
# restart of a node on the same port). Inside its slot a test hands out ports
# in order (the next free one is kept in $WORK/ports.next, under a lock: calls
# run in $(...) subshells), so two tests never race for a port that one of
# them found free. A test using more than its slot stops with an error.
# 280: the first slots (10000 + index x 280) stay below the kernel's ephemeral range (32768 up
# on Linux: 80 slots), the next ones lie above its end (61000-65535 with the usual range: 16
# more), so a port a test frees and binds again (a node restarted on its port) cannot have
# been given meanwhile to some client's outgoing connection. 96 slots in all.
PORT_SLOT_SIZE=280

# free_range N: the first of N consecutive ports, each free for both UDP and
# TCP on 127.0.0.1, taken from this test's slot (never handed out again).
free_range() {
    python3 - "$WORK/ports.next" "$PEERS_DIR" "$0" "$PORT_SLOT_SIZE" "$1" <<'PY'
import fcntl, glob, os, socket, sys
state, peers, script, size, want = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
try:
    low, high = (int(x) for x in open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[:2])
except (OSError, ValueError):
    low, high = 32768, 60999
tests = sorted(os.path.basename(t) for t in glob.glob(os.path.join(peers, "test_*.sh")))
# Slot bases: below the ephemeral range, then above it.
bases = [10000 + i * size for i in range(max(0, (low - 200 - 10000) // size))]
bases += [high + 1 + i * size for i in range(max(0, (65535 - high) // size))]
name = os.path.basename(script)
index = tests.index(name) if name in tests else len(tests)  # a script not in the list: the spare slot
if index < len(bases):
    base = bases[index]
else:
    # More tests than slots outside the ephemeral range: the rest go into it
    # (disjoint between tests still matters more; the probe below skips what
    # a client took).
    base = 10000 + index * size
    if base + size > 65536:
        base = 10000 + (index % ((65536 - 10000) // size)) * size

# Ports a node takes by default whatever its test asked ([media] port 20000,
# on in the embedded default: any test's node may hold it at any time). The
# probe below would only see it free between two such nodes.
DEFAULTS = {20000}

def free(p):
    if p in DEFAULTS:
        return False
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            return False
        finally:
            s.close()
    return True

with open(state, "a+") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    f.seek(0)
    text = f.read().strip()
    p = int(text) if text else base
    while p + want <= base + size:
        bad = [q for q in range(p, p + want) if not free(q)]
        if not bad:
            f.seek(0); f.truncate(); f.write(str(p + want))
            print(p)
            sys.exit(0)
        p = bad[-1] + 1
    sys.stderr.write("free_range: %s used up its port slot %d-%d (PORT_SLOT_SIZE in lib.sh)\n"
                     % (name, base, base + size - 1))
    sys.exit(1)
PY
}

# free_port: a port free for both UDP and TCP on 127.0.0.1, with the next three
# free too (baresip binds its SIP port + 1 for TLS; sipp's -mp takes audio and
# video RTP/RTCP at +0..+3).
free_port() { free_range 4; }

pass() { PASSES=$((PASSES + 1)); echo "ok   - $*"; }
fail() { FAILS=$((FAILS + 1)); echo "FAIL - $*"; }
check() { # check "description" command...
    local d=$1; shift
    if "$@"; then pass "$d"; else fail "$d"; fi
}

# start_cascade NAME CONFIG_FILE: starts the daemon in $WORK, waits for the API or SIP port.
start_cascade() {
    local name=$1 conf=$2
    (cd "$WORK" && exec "$CASCADE" -c "$conf" >"$WORK/$name.log" 2>&1) &
    local pid=$!
    PIDS+=("$pid")
    eval "${name}_PID=$pid"
    local i
    for i in $(seq 1 100); do
        if grep -q "cascade ready" "$WORK/$name.log" 2>/dev/null; then return 0; fi
        if ! kill -0 "$pid" 2>/dev/null; then echo "cascade $name died:"; cat "$WORK/$name.log"; return 1; fi
        sleep 0.1
    done
    echo "cascade $name did not become ready"; cat "$WORK/$name.log"; return 1
}

# node_ini NAME SIP_PORT API_PORT DOMAIN: writes $WORK/NAME.ini for one node:
# SIP on UDP and TCP 127.0.0.1:SIP_PORT for DOMAIN, then the sections read from
# stdin (they may go on with [sip] keys), then the API on 127.0.0.1:API_PORT
# with $API_TOKEN, the store in $WORK/NAME.db and log level info.
node_ini() {
    local name=$1 sip=$2 api=$3 domain=$4
    {
        cat <<INI
[sip]
listen = udp:127.0.0.1:$sip, tcp:127.0.0.1:$sip
domain = $domain
INI
        cat
        cat <<INI
[api]
listen = 127.0.0.1:$api
token = $API_TOKEN
[store]
path = $WORK/$name.db
[log]
level = info
INI
    } >"$WORK/$name.ini"
}

# gb_upper_ini NAME SIP_PORT API_PORT GB_ID PASSWORD ALLOW_UNKNOWN: node_ini for
# a node with the GB/T 28181 upper role on (domain 3402000000, media on 41
# ports of 127.0.0.1 from free_range); stdin goes on in its [gb] section and
# may add sections after it.
gb_upper_ini() {
    local name=$1 sip=$2 api=$3 id=$4 password=$5 allow_unknown=$6 media
    media=$(free_range 41)
    {
        cat <<INI
[gb]
enabled = yes
id = $id
domain = 3402000000
password = $password
allow_unknown = $allow_unknown
media_ip = 127.0.0.1
media_ports = $media-$((media + 40))
INI
        cat
    } | node_ini "$name" "$sip" "$api" 3402000000
}

# gb_sim SIP_PORT TARGET_ID LOG [cascade-gbsim options...]: cascade-gbsim in the
# background, registering with password dev-secret to the node at
# 127.0.0.1:SIP_PORT whose GB id is TARGET_ID (1 s keepalives, 300 s at most),
# its output in $WORK/LOG; its pid in SIM (and in PIDS).
gb_sim() {
    local sip=$1 target=$2 log=$3
    shift 3
    "$BUILD_DIR/cascade-gbsim" --target "127.0.0.1:$sip" --target-id "$target" --password dev-secret \
        --keepalive 1 --quiet --log-level info --duration 300 "$@" >"$WORK/$log" 2>&1 &
    SIM=$!
    PIDS+=("$SIM")
}

# gb_device_online ID: the node at $API_PORT shows GB device ID online.
gb_device_online() {
    curl -s -H "Authorization: Bearer $API_TOKEN" "http://127.0.0.1:$API_PORT/api/v1/gb/devices/$1" |
        grep -q '"online": *true'
}

# gb_live_top CHANNELS: the live-view tests' setup: node "top" (gb_upper_ini
# on $SIP and $API_PORT as $UPPER, password dev-secret, unknown devices
# allowed; stdin goes on in its [gb] section, e.g. a [media] section) started,
# one cascade-gbsim device with CHANNELS channels registered to it (gb_sim,
# log gbsim.log), and a check that device $DEV comes online.
gb_live_top() {
    gb_upper_ini top "$SIP" "$API_PORT" "$UPPER" dev-secret yes
    start_cascade top "$WORK/top.ini"
    gb_sim "$SIP" "$UPPER" gbsim.log --devices 1 --channels "$1"
    check "the device is online" wait_for 30 gb_device_online "$DEV"
}

# gb_upstream_ini UPPER_ID UPPER_SIP_PORT TRANSPORT PASSWORD EXPIRES: prints the
# start of an [upstream:UPPER_ID] section (the lower role registering to the
# upper at 127.0.0.1:UPPER_SIP_PORT); the caller adds the section's other keys.
gb_upstream_ini() {
    cat <<INI
[upstream:$1]
host = 127.0.0.1
port = $2
transport = $3
password = $4
expires = $5
INI
}

# gb_subs_lower_ini NAME SIP_PORT API_PORT GB_ID UPPER_ID UPPER_SIP_PORT [GB_LINES]:
# the ini of a lower platform for the GB subscription tests: allow_unknown,
# no catalog on register, 41 media ports of its own, GB_LINES added to [gb],
# one upstream to 127.0.0.1:UPPER_SIP_PORT (udp, dev-secret, 60 s, keepalive
# every second) that sends changes only within the upper's subscriptions.
gb_subs_lower_ini() {
    local media
    media=$(free_range 41)
    node_ini "$1" "$2" "$3" 3402000000 <<INI
[gb]
enabled = yes
id = $4
domain = 3402000000
password = dev-secret
allow_unknown = yes
catalog_on_register = no
${7:-}
media_ip = 127.0.0.1
media_ports = $media-$((media + 40))
$(gb_upstream_ini "$5" "$6" udp dev-secret 60)
keepalive_interval = 1
notify_without_subscription = no
INI
}

# api METHOD PATH [JSON]: calls the HTTP API of the instance at $API_PORT with $API_TOKEN.
api() {
    local m=$1 p=$2 body=${3:-}
    if [ -n "$body" ]; then
        curl -s -X "$m" -H "Authorization: Bearer ${API_TOKEN:-}" -H 'Content-Type: application/json' \
            --data "$body" "http://127.0.0.1:$API_PORT/api/v1$p"
    else
        curl -s -X "$m" -H "Authorization: Bearer ${API_TOKEN:-}" "http://127.0.0.1:$API_PORT/api/v1$p"
    fi
}

# wait_for SECONDS command...: polls until the command succeeds.
wait_for() {
    local t=$1; shift
    local end=$((SECONDS + t))
    while [ $SECONDS -le $end ]; do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    return 1
}

# udp_bound PORT: something is bound to UDP 127.0.0.1:PORT (a peer is ready to
# receive; wait for this instead of sleeping).
udp_bound() { ss -Hlun "sport = :$1" | grep -q .; }

finish() {
    # Stop every daemon we started with SIGTERM (a clean stop: under ASan this
    # is when leaks are reported), then look for sanitizer reports in the logs.
    local p i
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
    for i in $(seq 1 100); do
        local alive=0
        for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive -eq 0 ] && break
        sleep 0.1
    done
    local f
    for f in "$WORK"/*.log; do
        [ -f "$f" ] || continue
        if grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$f"; then
            fail "sanitizer report in $(basename "$f")"
            grep -E -A30 "ERROR: (Address|Leak)Sanitizer|runtime error:" "$f" | head -60
        fi
    done
    echo "$PASSES passed, $FAILS failed"
    [ "$FAILS" -eq 0 ]
}

# ---- added for the registrar/proxy tests ----

# ctl ARGS...: cascadectl against the instance at $API_PORT with $API_TOKEN.
ctl() { "$CASCADECTL" --url "http://127.0.0.1:$API_PORT" --token "${API_TOKEN:-}" "$@"; }

# sipp_scn NAME SCENARIO [sipp args...]: one sipp call against 127.0.0.1:$PORT
# (SCENARIO: a file in tests/peers/sipp, or an absolute path) from $WORK, logging to NAME.msg / NAME.err / NAME.out; returns sipp's status
# (0: the scenario went as written). Pass -p PORT for sipp's local port.
sipp_scn() {
    local name=$1 sf=$2
    shift 2
    [[ $sf == /* ]] || sf=$PEERS_DIR/sipp/$sf
    (cd "$WORK" && timeout 60 sipp "127.0.0.1:$PORT" -sf "$sf" -i 127.0.0.1 -m 1 -nostdin \
        -trace_msg -message_file "$name.msg" -trace_err -error_file "$name.err" "$@" >"$WORK/$name.out" 2>&1)
}

# sipp_spawn NAME SECONDS ARGS...: sipp in the background from $WORK (ended by
# timeout after SECONDS), its arguments ARGS (the remote host first, if any;
# -sf with a path, e.g. "$PEERS_DIR/sipp/uas-call.xml"; -p PORT for a UAS)
# then -i 127.0.0.1 and -m 1 (unless ARGS give -i or -m) and -nostdin, tracing
# to NAME.msg / NAME.err, its output in NAME.out. Its pid goes into PIDS (the
# exit trap and finish end it) and SIPP_PID (for wait or kill).
sipp_spawn() {
    local name=$1 secs=$2 a ip=(-i 127.0.0.1) calls=(-m 1)
    shift 2
    for a in "$@"; do
        case $a in -i) ip=() ;; -m) calls=() ;; esac
    done
    (cd "$WORK" && exec timeout "$secs" sipp "$@" "${ip[@]}" "${calls[@]}" -nostdin \
        -trace_msg -message_file "$name.msg" -trace_err -error_file "$name.err" >"$WORK/$name.out" 2>&1) &
    SIPP_PID=$!
    PIDS+=("$SIPP_PID")
}

# events_json [SINCE]: the event ring after SINCE as {"events":[...]}.
events_json() { api GET "/events/recent?since=${1:-0}"; }

# has_event JQ_FILTER [SINCE]: some event matches (e.g. 'select(.type=="user.online" and .user=="bob")').
has_event() { events_json "${2:-0}" | jq -e "[.events[] | $1] | length > 0" >/dev/null; }

# binding_count USER [CONTACT]: bindings of USER (with that contact) in GET /registrations.
binding_count() {
    api GET "/registrations?user=$1" | jq -r --arg c "${2:-}" \
        '[.registrations[] | select($c == "" or .contact == $c)] | length'
}

# jget EXPR < JSON: jq-free JSON probe, prints the python expression EXPR on d.
jget() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# gb_play_dump API_FUNCTION DEVICE CHANNEL TRANSPORT: asks the node that
# API_FUNCTION (api with that node's port) calls to play CHANNEL of DEVICE over
# TRANSPORT with the PS dumped, and waits (up to 30 s, however loaded the
# machine) until more than 40 packets arrived and the codec is known. Sets SID
# (empty when no stream started), DUMP (the dump file) and PK (packets received
# by then).
gb_play_dump() {
    local api_fn=$1 device=$2 channel=$3 transport=$4 answer i
    answer=$("$api_fn" POST "/gb/devices/$device/channels/$channel/play" "{\"transport\":\"$transport\",\"dump\":true}")
    SID=$(echo "$answer" | jget 'd.get("stream_id","")')
    DUMP=$(echo "$answer" | jget 'd.get("dump_path","")')
    PK=0
    [ -n "$SID" ] || return 0
    for i in $(seq 1 300); do
        PK=$("$api_fn" GET "/gb/streams/$SID" | jget 'd["packets"] if d.get("codec") else 0' 2>/dev/null || echo 0)
        [ "${PK:-0}" -gt 40 ] && break
        sleep 0.1
    done
}

# ffprobe_codec FILE: the codec ffprobe reads in FILE's first video stream.
ffprobe_codec() {
    ffprobe -v error -select_streams v:0 -show_entries stream=codec_name -of csv=p=0 "$1" 2>/dev/null
}

# jq_ok JSON FILTER: the filter is true for JSON.
jq_ok() { printf '%s' "$1" | jq -e "$2" >/dev/null; }
# unique_keys: every line of stdin is one JSON text whose objects have no
# member twice (RFC 8259 §4: jq and most parsers keep the last one
# silently); a repeated one is printed on stderr and fails. No line fails.
unique_keys() {
    python3 -c '
import json, sys
def pairs(kv):
    names = [k for k, _ in kv]
    dup = {k for k in names if names.count(k) > 1}
    if dup: raise ValueError("member %s twice" % ", ".join(sorted(dup)))
    return dict(kv)
n = 0
for line in sys.stdin:
    if not line.strip(): continue
    n += 1
    try: json.loads(line, object_pairs_hook=pairs)
    except ValueError as e: sys.exit("%s: %s" % (e, line.strip()))
sys.exit(0 if n else "no event")'
}
# not COMMAND...: succeeds when the command fails.
not() { ! "$@"; }

# ---- browser tests (a puppeteer driver in tests/browser) ----

# browser_driver FILE: DRIVER is tests/browser/FILE (ROOT the source tree); the
# test stops (1) when Chromium or the npm modules are missing.
browser_driver() {
    ROOT=$(cd "$PEERS_DIR/../.." && pwd)
    DRIVER=$ROOT/tests/browser/$1
    if [ ! -x /usr/bin/chromium ] || [ ! -d "$ROOT/tests/browser/node_modules/puppeteer-core" ]; then
        echo "chromium or tests/browser/node_modules missing: run scripts/install-deps.sh"; exit 1
    fi
}

# media_node NAME [LINE...]: node_ini n (SIP on $PORT, API on $API_PORT with
# $API_TOKEN, domain 127.0.0.1) with [media] on 127.0.0.1:$MEDIA_PORT and the
# LINEs (more [media] keys), started as NAME.
media_node() {
    local name=$1
    shift
    PORT=$(free_port); API_PORT=$(free_port); MEDIA_PORT=$(free_port)
    {
        printf '[media]\nenabled = yes\nlisten = 127.0.0.1\nport = %s\n' "$MEDIA_PORT"
        [ $# -eq 0 ] || printf '%s\n' "$@"
    } | node_ini n "$PORT" "$API_PORT" 127.0.0.1
    start_cascade "$name" "$WORK/n.ini"
}

# run_driver OUT LOG ARGS...: node $DRIVER ARGS, its lines in OUT (shown) and
# its stderr in LOG. Status 77 (Chromium cannot start) skips the test with LOG
# shown; any other status is checked to be 0.
run_driver() {
    local out=$1 log=$2 rc
    shift 2
    node "$DRIVER" "$@" >"$out" 2>"$log" && rc=0 || rc=$?
    cat "$out"
    if [ "$rc" = 77 ]; then
        cat "$log"
        echo "SKIP - Chromium cannot start here (see above)"
        exit 77
    fi
    check "the driver exits 0" test "$rc" = 0
}

# step_ok STEP [JQ]: the driver printed STEP with ok true in $OUT (and JQ holds on it).
step_ok() { jq -e -s --arg s "$1" "[.[] | select(.step == \$s and .ok) | ${2:-.}] | length > 0 and all" "$OUT" >/dev/null; }

# ---- subscription tests (sipp subscribers, bodies read with xmllint) ----

# sub_node NAME INI: skips (77) without sipp or xmllint; else writes
# $WORK/INI.ini (node_ini on $PORT and $API_PORT with $API_TOKEN, domain
# 127.0.0.1, [auth] realm cascade.test; stdin goes on in that section and may
# add others), starts it as NAME and adds users alice (alicepw) and bob
# (bobpw) with cascadectl. H is 127.0.0.1.
sub_node() {
    command -v sipp >/dev/null || { echo "skip: sipp is not installed"; exit 77; }
    command -v xmllint >/dev/null || { echo "skip: xmllint is not installed"; exit 77; }
    PORT=$(free_port); API_PORT=$(free_port)
    { printf '[auth]\nrealm = cascade.test\n'; cat; } | node_ini "$2" "$PORT" "$API_PORT" 127.0.0.1
    start_cascade "$1" "$WORK/$2.ini"
    H=127.0.0.1
    check "cascadectl user add alice" ctl user add alice --password alicepw
    check "cascadectl user add bob" ctl user add bob --password bobpw
}

# xp FILE XPATH: the XPath's string value in an XML file.
xp() { xmllint --xpath "string($2)" "$1" 2>/dev/null; }

# got_notifies NAME N: sipp NAME's trace ($WORK/NAME.msg) holds N NOTIFY
# bodies or more (notify_bodies.py writes them to $WORK/NAME.n/1.xml, ...).
got_notifies() { [ "$(python3 "$PEERS_DIR/notify_bodies.py" "$WORK/$1.msg" "$WORK/$1.n" 2>/dev/null)" -ge "$2" ]; }

# first_notify_head HDR_FILE EVENT CONTENT_TYPE: a subscription's first NOTIFY
# (its headers as notify_bodies.py wrote them) names the package, says active
# with the 600 s asked for (or a few seconds less), and carries the type.
first_notify_head() {
    grep -q "^Event: $2\$" "$1" && grep -Eq '^Subscription-State: active;expires=(600|59[0-9])$' "$1" &&
        grep -q "^Content-Type: $3\$" "$1"
}

# ---- Redis Cluster (issue 16): Debian's redis-server on loopback ports of
# this test's slot. redis_cluster_start MASTERS REPLICAS: MASTERS x
# (1 + REPLICAS) nodes, each with its cluster bus port from the slot too (the
# default, port + 10000, is outside it; node timeout 3 s: on a loaded machine
# a node stalled past a shorter one is failed over by its peers on their own)
# sets REDIS_PORTS (all data ports)
# and REDIS_PID[port]; returns once every node says cluster_state:ok.
redis_cluster_start() {
    local n=$(($1 * (1 + $2))) i p base
    base=$(free_range $((2 * n)))
    REDIS_PORTS=()
    declare -gA REDIS_PID=()
    for ((i = 0; i < n; i++)); do
        p=$((base + i))
        REDIS_PORTS+=("$p")
        mkdir -p "$WORK/r$p"
        redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes --cluster-port $((base + n + i)) \
            --cluster-config-file "$WORK/r$p/nodes.conf" --cluster-node-timeout 3000 \
            --dir "$WORK/r$p" --save '' --appendonly no --daemonize no \
            --logfile "$WORK/redis-$p.log" &
        PIDS+=("$!")
        REDIS_PID[$p]=$!
    done
    for p in "${REDIS_PORTS[@]}"; do
        wait_for 30 bash -c "[ \"\$(redis-cli -h 127.0.0.1 -p $p ping)\" = PONG ]" || return 1
    done
    local addrs=()
    for p in "${REDIS_PORTS[@]}"; do addrs+=("127.0.0.1:$p"); done
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas "$2" --cluster-yes >"$WORK/create.log" 2>&1 || return 1
    wait_for 60 redis_cluster_ok "${REDIS_PORTS[@]}"
}
redis_rc() { redis-cli -h 127.0.0.1 -p "$@"; }
# redis_cluster_ok PORT...: each node says state ok and knows every node started.
redis_cluster_ok() {
    local p
    for p in "$@"; do
        redis_rc "$p" cluster info | tr -d '\r' | grep -q '^cluster_state:ok$' || return 1
        redis_rc "$p" cluster info | tr -d '\r' | grep -q "^cluster_known_nodes:${#REDIS_PORTS[@]}\$" || return 1
    done
}
# redis_masters PORT: the ports of the live masters holding slots, as PORT sees them.
redis_masters() {
    redis_rc "$1" cluster nodes | tr -d '\r' |
        awk '$3 ~ /master/ && $3 !~ /fail/ && NF >= 9 { split($2, a, "[:@]"); print a[2] }' | sort
}
# redis_owner SLOT PORT: the port of the master serving SLOT, as PORT sees it.
redis_owner() {
    redis_rc "$2" cluster nodes | tr -d '\r' | awk -v s="$1" '$3 ~ /master/ && $3 !~ /fail/ {
        split($2, a, "[:@]");
        for (i = 9; i <= NF; i++) {
            if ($i ~ /^\[/) continue;
            n = split($i, r, "-"); lo = r[1]; hi = (n > 1 ? r[2] : r[1]);
            if (s + 0 >= lo + 0 && s + 0 <= hi + 0) print a[2] } }'
}
redis_node_id() { redis_rc "$1" cluster myid | tr -d '\r'; }
redis_slot_of() { redis_rc "${REDIS_PORTS[0]}" cluster keyslot "$1" | tr -d '\r'; }
# redis_replica_of PORT: the port of a replica of the master on PORT.
redis_replica_of() {
    local id; id=$(redis_node_id "$1")
    redis_rc "$1" cluster nodes | tr -d '\r' | awk -v id="$id" '$4 == id { split($2, a, "[:@]"); print a[2] }' | head -1
}
# redis_pair_for SLOT: "MASTER REPLICA", the ports of the master serving SLOT
# and of a replica linked to it, once the topology agrees on them: the master
# says it is one and lists the replica, the replica's link to it is up. Waits
# up to 60 s, so a failover the cluster made on its own (a node stalled past
# the node timeout) has settled before a test picks its victim.
redis_pair_for() {
    local deadline=$((SECONDS + 60)) m r p
    while [ $SECONDS -le $deadline ]; do
        m=""
        for p in "${REDIS_PORTS[@]}"; do
            m=$(redis_owner "$1" "$p" 2>/dev/null | head -1)
            [ -n "$m" ] && break
        done
        if [ -n "$m" ] && redis_promoted "$m"; then
            r=$(redis_replica_of "$m")
            if [ -n "$r" ] && redis_rc "$r" info replication | tr -d '\r' |
                awk -v m="$m" '/^master_port:/ { split($0, a, ":"); port = a[2] }
                               /^master_link_status:up$/ { up = 1 }
                               END { exit !(up && port == m) }'; then
                echo "$m $r"
                return 0
            fi
        fi
        sleep 0.5
    done
    return 1
}
# plant_fake_nodes RCLI PREFIX: two fake node APIs (tests/peers/fake_http.py) —
# node-x's accepts and never answers, node-y's answers what is not HTTP —
# planted as live nodes (SIP 127.0.0.1:9) in the Redis node registry under
# PREFIX through the command RCLI (a test's redis-cli wrapper). Sets XPORT and
# YPORT; 1 when they do not listen within 10 s.
plant_fake_nodes() {
    local rcli=$1 prefix=$2
    XPORT=$(free_port); YPORT=$(free_port)
    python3 "$PEERS_DIR/fake_http.py" "$XPORT" silent >"$WORK/fake-x.log" 2>&1 &
    PIDS+=($!)
    python3 "$PEERS_DIR/fake_http.py" "$YPORT" garbage >"$WORK/fake-y.log" 2>&1 &
    PIDS+=($!)
    wait_for 10 bash -c "ss -Hltn 'sport = :$XPORT' | grep -q . && ss -Hltn 'sport = :$YPORT' | grep -q ." || return 1
    "$rcli" hset "${prefix}node:{node-x}" sip sip:127.0.0.1:9 api "127.0.0.1:$XPORT" >/dev/null
    "$rcli" hset "${prefix}node:{node-y}" sip sip:127.0.0.1:9 api "127.0.0.1:$YPORT" >/dev/null
    "$rcli" sadd "${prefix}nodes" node-x node-y >/dev/null
}
# redis_promoted PORT: the node on PORT is a master now.
redis_promoted() { redis_rc "$1" role | head -1 | tr -d '\r' | grep -q '^master$'; }

# ---- baresip as a softphone (test_baresip, test_cluster_flows) ----
# baresip_phone_start NAME PASSWORD REGISTRAR [TRANSPORT [EXTRA]]: a headless baresip
# in $WORK/NAME (module directory $MODDIR) registering sip:NAME@REGISTRAR
# ("127.0.0.1:PORT") over TRANSPORT (default tcp), auto-answering, playing
# $WORK/tone.wav (baresip_tone makes it) as its microphone; sets NAME_PID
# and NAME_CTRL (its ctrl_tcp port, for bctl); EXTRA (5th, optional) ends
# its account line (";outbound=..."). A second start of NAME (a
# phone moving to another registrar) replaces its account and log.
baresip_phone_start() {
    local name=$1 pw=$2 registrar=$3 transport=${4:-tcp} extra=${5:-} dir=$WORK/$1 sip ctrl
    mkdir -p "$dir"
    # baresip also binds sip_listen + 1 (TLS): keep clear of it
    while :; do sip=$(free_port); [ "$(ss -Htanl "sport = :$((sip + 1))" | wc -l)" = 0 ] && break; done
    ctrl=$(free_port)
    cat >"$dir/config" <<CONF
poll_method		epoll
sip_listen		127.0.0.1:$sip
audio_player		aufile,$dir/play.wav
audio_source		aufile,$WORK/tone.wav
audio_alert		aufile,$dir/alert.wav
module_path		$MODDIR
module			g711.so
module			aufile.so
module_app		account.so
module_app		menu.so
module_app		ctrl_tcp.so
ctrl_tcp_listen		127.0.0.1:$ctrl
CONF
    echo "<sip:$name@$registrar;transport=$transport>;auth_pass=$pw;answermode=auto;regint=600$extra" >"$dir/accounts"
    (cd "$dir" && exec baresip -f "$dir" -v >"$WORK/baresip-$name.log" 2>&1) &
    PIDS+=("$!")
    eval "${name}_PID=$! ${name}_CTRL=$ctrl"
    disown "$!" # no "Killed" job notice when the test kill -9s it
}
# baresip_tone: $WORK/tone.wav, a 2 s 440 Hz tone, 8 kHz mono (ausine only does 48 kHz).
baresip_tone() {
    python3 - "$WORK/tone.wav" <<'PY'
import math, struct, sys, wave
w = wave.open(sys.argv[1], "wb"); w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000)
w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / 8000))) for i in range(16000)))
w.close()
PY
}
# baresip_moddir: sets MODDIR, baresip's module directory.
baresip_moddir() {
    MODDIR=/usr/lib/baresip/modules
    [ -f "$MODDIR/ctrl_tcp.so" ] || MODDIR=$(dirname "$(find / -name ctrl_tcp.so -path '*baresip*' 2>/dev/null | head -1)")
}
# bctl PORT COMMAND [PARAMS]: one ctrl_tcp command to a baresip (netstring JSON); prints the answer.
bctl() { python3 "$PEERS_DIR/bctl.py" "$@"; }

# ---- baresip with its presence module (test_baresip_presence, test_linphone_presence) ----
# contact.so before presence.so: the presence module subscribes, when it
# starts, to the contacts marked presence=p2p.
# baresip_presence_start NAME PASSWORD PEER: a headless baresip in $WORK/NAME
# registering sip:NAME@127.0.0.1 over TCP to cascade on $PORT (with $MODDIR,
# its module directory), publishing its presence every
# 60 s and watching PEER's.
baresip_presence_start() {
    local name=$1 pw=$2 peer=$3 dir=$WORK/$1 sip ctrl
    mkdir -p "$dir"
    # baresip also binds sip_listen + 1 (TLS): keep clear of it
    while :; do sip=$(free_port); [ "$(ss -Htanl "sport = :$((sip + 1))" | wc -l)" = 0 ] && break; done
    ctrl=$(free_port)
    cat >"$dir/config" <<CONF
poll_method		epoll
sip_listen		127.0.0.1:$sip
module_path		$MODDIR
module			g711.so
module_app		account.so
module_app		contact.so
module_app		presence.so
module_app		menu.so
module_app		ctrl_tcp.so
ctrl_tcp_listen		127.0.0.1:$ctrl
CONF
    echo "<sip:$name@127.0.0.1:$PORT;transport=tcp>;auth_pass=$pw;regint=600;pubint=60" >"$dir/accounts"
    echo "\"$peer\" <sip:$peer@127.0.0.1:$PORT;transport=tcp>;presence=p2p" >"$dir/contacts"
    (cd "$dir" && exec baresip -f "$dir" -v </dev/null >"$WORK/baresip-$name.log" 2>&1) &
    PIDS+=("$!")
    eval "${name}_PID=$! ${name}_CTRL=$ctrl"
    disown "$!" # no "Killed" job notice when the test kill -9s it
}
# baresip_sees NAME PEER STATUS: baresip NAME's last status change of contact PEER
# ("<sip:bob@...> changed status from Offline to Online", colours and all)
# ends in STATUS.
baresip_sees() {
    grep -a "<sip:$2@.*changed status from" "$WORK/baresip-$1.log" | tail -1 | sed 's/\x1b\[[0-9;]*m//g' |
        grep -qi " to $3\$"
}
