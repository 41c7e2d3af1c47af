#!/usr/bin/env bash
# events-stream-write.sh — what one Redis takes of the event stream's writes
# ([redis] events_stream, src/app/events_stream.c): the node's write script
# (INCRBY the seq counter, XADD "<seq>-0" per event, MAXLEN ~) called with 1
# and with 48 events per call, one connection pipelined 16 deep as the
# node's client does, against the anchor in the same run: Redis's own
# "XADD key MAXLEN ~ N * ..." of the same entry, one per command.
# A typical event text (registration.refreshed, ~230 bytes). Prints events/s.
#
#   bash bench/events-stream-write.sh [EVENTS] [ROUNDS]     (default 96000, 3)
set -euo pipefail
N=${1:-96000}
ROUNDS=${2:-3}
dir=$(mktemp -d /tmp/events-stream-bench.XXXXXX)
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" --daemonize no \
    >"$dir/redis.log" 2>&1 &
rpid=$!
trap 'kill $rpid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done
script=$(python3 - "$(dirname "$0")/../src/app/events_stream.c" <<'PY'
import re, sys
src = open(sys.argv[1]).read()
m = re.search(r'static const char WRITE_SCRIPT\[\] =\n(.*?);\n', src, re.S)
print(''.join(p.encode().decode('unicode_escape') for p in re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(1))))
PY
)
body='"time":"2026-12-07T06:00:00.000Z","type":"registration.refreshed","user":"u1","aor":"sip:u1@bench.test","contact":"<sip:u1@127.0.0.1:5000>","remote":"127.0.0.1:5000","transport":"udp","expires":3600}'
rate() { python3 -c "print(round($1 / ($3 - $2)))"; }
for r in $(seq "$ROUNDS"); do
    redis-cli -p "$port" del '{e}:s' '{e}:q' >/dev/null
    t0=$(date +%s.%N)
    redis-benchmark -p "$port" -n "$N" -c 1 -P 16 -q XADD '{e}:s' MAXLEN '~' 100000 '*' e "{\"seq\":1,\"node\":\"n\",$body" n n \
        >/dev/null 2>&1
    t1=$(date +%s.%N)
    done_n=$(redis-cli -p "$port" xlen '{e}:s')
    echo "round $r anchor (XADD *, one per command): $(rate "$done_n" "$t0" "$t1") events/s ($done_n events)"
    for b in 1 48; do
        args=()
        for _ in $(seq "$b"); do args+=("$body"); done
        redis-cli -p "$port" del '{e}:s' '{e}:q' >/dev/null
        t0=$(date +%s.%N)
        redis-benchmark -p "$port" -n $((N / b)) -c 1 -P 16 -q EVAL "$script" 2 '{e}:s' '{e}:q' 100000 n '"n"' \
            "${args[@]}" >/dev/null 2>&1
        t1=$(date +%s.%N)
        done_n=$(redis-cli -p "$port" get '{e}:q')   # redis-benchmark rounds up to whole pipelines
        echo "round $r write script, $b per call: $(rate "$done_n" "$t0" "$t1") events/s ($done_n events)"
    done
done
