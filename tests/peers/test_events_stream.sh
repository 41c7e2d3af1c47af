#!/usr/bin/env bash
# Events from every node in one stream ([redis] events_stream, issue 16):
# three cascade nodes (a, b, c) on one 3-master Redis Cluster of Debian's
# redis-server, loopback ports chosen at run time, each with the same
# webhook: a small Python HTTP server in this script that logs every POST
# it answers (and answers 503 while $WORK/hook.fail exists).
#  1. registrations on A, B and C: every node's /events/recent shows the
#     same events in the same order with the same seq (1, 2, 3, ... with no
#     gap), each naming the node that published it;
#  2. node B stopped, events published on A and C meanwhile, B started
#     again: a replay from B with since= the last seq seen before the stop
#     gives what A gives, the events published while B was down included,
#     over /events/recent and over B's WebSocket; a WebSocket client on C
#     whose since is ahead of what C has read (it came from a faster node)
#     waits for the next seq instead of being replayed the ring;
#  3. the webhook got each event exactly once, although three nodes POST,
#     and the group has nothing left pending;
#  4. the receiver fails (503) and B and C are stopped (SIGSTOP) while a
#     user registers on A, so A takes her events from the group; node A is
#     killed -9 holding them unacknowledged (XPENDING names node-a), B and C
#     go on (SIGCONT); the receiver recovers: B and C take A's entries
#     over (XAUTOCLAIM) and every event has still been answered 2xx
#     exactly once, nothing is left pending;
#  5. every Redis master killed: a REGISTER on B is still answered at once,
#     its events are counted and logged as not written, B's API still
#     serves what it holds.
source "$(dirname "$0")/lib.sh"

for t in redis-server redis-cli sipp jq python3; do
    command -v "$t" >/dev/null || { echo "SKIP: $t not installed (scripts/install-deps.sh)"; exit 77; }
done

check "a Redis Cluster forms (3 masters)" redis_cluster_start 3 0
rcli() { redis-cli -c -h 127.0.0.1 -p "${REDIS_PORTS[0]}" "$@" | tr -d '\r'; }
STREAM='t:{events}:stream'

# ---- the webhook receiver
HOOK=$(free_port)
cat >"$WORK/hook.py" <<'PY'
import http.server, json, os, sys
work, port = sys.argv[1], int(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
        code = 503 if os.path.exists(os.path.join(work, 'hook.fail')) else 200
        try:
            ev = json.loads(body)
            line = '%d %s %s %s\n' % (code, ev.get('seq'), ev.get('node'), ev.get('type'))
        except Exception:
            line = '%d bad\n' % code
        with open(os.path.join(work, 'hook.log'), 'a') as f:
            f.write(line)
        self.send_response(code)
        self.send_header('Content-Length', '0')
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(('127.0.0.1', port), H).serve_forever()
PY
python3 "$WORK/hook.py" "$WORK" "$HOOK" >"$WORK/hook.out" 2>&1 &
PIDS+=("$!")
hook_up() { curl -s -o /dev/null -X POST --data '{}' "http://127.0.0.1:$HOOK/probe"; }
check "the webhook receiver listens" wait_for 10 hook_up
: >"$WORK/hook.log"

API_TOKEN=streamtoken
declare -A SIP API
for n in a b c; do
    SIP[$n]=$(free_port); API[$n]=$(free_port)
    node_ini "$n" "${SIP[$n]}" "${API[$n]}" stream.test <<INI
[events]
webhook = http://127.0.0.1:$HOOK/hook
[redis]
events_stream = yes
nodes = 127.0.0.1:${REDIS_PORTS[0]},127.0.0.1:${REDIS_PORTS[1]}
node_id = node-$n
key_prefix = t:
timeout_ms = 1000
events_poll_ms = 50
events_claim_idle_ms = 3000
INI
done
for n in a b c; do start_cascade "$n" "$WORK/$n.ini"; done
on() { API_PORT=${API[$1]}; PORT=${SIP[$1]}; }
sstat() { on "$1"; api GET /stats | jq -r ".events_stream.$2"; }
ready() { [ "$(sstat "$1" synced)" = true ] && [ "$(sstat "$1" webhook_group)" = true ]; }
for n in a b c; do check "node $n caught up with the stream and joined the webhook group" wait_for 20 ready "$n"; done

# reg NODE USER: the user is provisioned on NODE and registers there (user.online, registration.added).
reg() {
    on "$1"
    ctl user add "$2" --password "${2}pw" >/dev/null
    sipp_scn "reg-$2" register.xml -s "$2" -au "$2" -ap "${2}pw" -key expires 300 -key cport "$(free_port)" \
        -p "$(free_port)"
}
# view NODE [SINCE]: seq, node, type and user of every event NODE's API replays, one per line.
view() { on "$1"; api GET "/events/recent?since=${2:-0}" | jq -r '.events[] | "\(.seq) \(.node) \(.type) \(.user)"'; }
last_seq() { on "$1"; api GET "/events/recent?since=0" | jq -r '.last_seq'; }
# stream_last: the last seq in the stream, as Redis holds it; settled NODE...: each NODE has read that far.
stream_last() { rcli xrevrange "$STREAM" + - count 1 | head -1 | cut -d- -f1; }
settled() { local l n; l=$(stream_last); for n in "$@"; do [ "$(last_seq "$n")" = "$l" ] || return 1; done; }
has_n() { [ "$(view "$1" | wc -l)" -ge "$2" ]; }

# ---- 1. one order everywhere
check "1. alice registers on A" reg a alice
check "... bob registers on B" reg b bob
check "... carol registers on C" reg c carol
for n in a b c; do check "... node $n's API shows all 6 events" wait_for 20 has_n "$n" 6; done
view a >"$WORK/view-a.1"; view b >"$WORK/view-b.1"; view c >"$WORK/view-c.1"
check "... the same events in the same order with the same seq on A, B and C" \
    bash -c "cmp -s '$WORK/view-a.1' '$WORK/view-b.1' && cmp -s '$WORK/view-a.1' '$WORK/view-c.1'"
check "... seqs 1..6 with no gap" [ "$(cut -d' ' -f1 "$WORK/view-a.1" | tr '\n' ' ')" = "1 2 3 4 5 6 " ]
check "... alice's user.online published by node-a, bob's by node-b, carol's by node-c" \
    bash -c "grep -q ' node-a user.online alice$' '$WORK/view-a.1' && grep -q ' node-b user.online bob$' '$WORK/view-a.1' &&
             grep -q ' node-c user.online carol$' '$WORK/view-a.1'"
check "... the stream holds entry 6-0" [ "$(rcli xrange "$STREAM" 6-0 6-0 | head -1)" = 6-0 ]

# ---- 2. a replay across B's restart
before=$(last_seq b)
on b
kill -TERM "$b_PID"
wait "$b_PID" 2>/dev/null || true
meanwhile() { reg a dave && reg c erin; }
check "2. node B stopped (at seq $before); dave registers on A and erin on C meanwhile" meanwhile
start_cascade b "$WORK/b.ini"
check "... node B back, caught up" wait_for 20 ready b
has_erin() { view "$1" "$before" | grep -q ' user.online erin$'; }
check "... B's replay since $before reaches erin's event" wait_for 20 has_erin b
check "... A, B and C have read the stream to its end" wait_for 20 settled a b c
view a "$before" >"$WORK/view-a.2"; view b "$before" >"$WORK/view-b.2"; view c "$before" >"$WORK/view-c.2"
check "... B replays since $before the same events as A and C (4: dave's and erin's)" \
    bash -c "[ \$(wc -l <'$WORK/view-b.2') = 4 ] && cmp -s '$WORK/view-a.2' '$WORK/view-b.2' && cmp -s '$WORK/view-a.2' '$WORK/view-c.2'"
check "... and they continue B's seq: $((before + 1)).." [ "$(head -1 "$WORK/view-b.2" | cut -d' ' -f1)" = $((before + 1)) ]

# ws_seqs NODE SINCE COUNT: the seq of the first COUNT events NODE's WebSocket stream sends
# after ?since=SINCE, one per line.
ws_seqs() { python3 "$PEERS_DIR/eventsws.py" seqs "${API[$1]}" "$API_TOKEN" "$2" "$3"; }
check "... B's WebSocket with since=$before replays the same 4 seqs" \
    [ "$(ws_seqs b "$before" 4 | tr '\n' ' ')" = "$(cut -d' ' -f1 "$WORK/view-b.2" | tr '\n' ' ')" ]
# A client that moves to a node that has not read as far yet: its since is ahead of that
# node's last seq, which on a stream (seqs kept in Redis) is no restart: it waits, no replay.
now=$(last_seq c)
ws_seqs c $((now + 1)) 1 >"$WORK/ws-ahead" 2>&1 &
ws_pid=$!
PIDS+=("$ws_pid")
ws_on() { ss -Htn state established "dport = :${API[c]}" | grep -q .; }
wait_for 10 ws_on || true
check "... a WebSocket on C with since=$((now + 1)), ahead of C's last seq $now, is accepted" kill -0 "$ws_pid"
check "... frank registers on B" reg b frank
check "... C's client gets seq $((now + 2)) first (not a replay of the ring)" wait "$ws_pid"
check "... (it got $(cat "$WORK/ws-ahead"))" [ "$(cat "$WORK/ws-ahead")" = $((now + 2)) ]

# ---- 3. the webhook: each event once
check "3. A, B and C have read the stream to its end" wait_for 20 settled a b c
total=$(stream_last)
delivered() { [ "$(awk '$1 == 200 && $2 != "None"' "$WORK/hook.log" | wc -l)" -ge "$1" ]; }
check "... the webhook received the $total events" wait_for 20 delivered "$total"
once() { # every seq 1..$1 answered 200 exactly once
    awk -v n="$1" '$1 == 200 && $2 != "None" { c[$2]++ } END { for (i = 1; i <= n; i++) if (c[i] != 1) exit 1;
        for (k in c) if (k + 0 < 1 || k + 0 > n) exit 1 }' "$WORK/hook.log"
}
check "... each exactly once, though three nodes run the webhook" once "$total"
nothing_pending() { [ "$(rcli xpending "$STREAM" webhook | head -1)" = 0 ]; }
check "... and acknowledged in the group (XPENDING: none left)" wait_for 10 nothing_pending

# ---- 4. a node killed -9 while holding unacknowledged entries
touch "$WORK/hook.fail"
held_by_a() { [ "$(rcli xpending "$STREAM" webhook - + 100 node-a | grep -c -- '-0$')" -ge 1 ]; }
# Whichever node reads the group first takes a new entry: B and C are stopped (SIGSTOP) while
# fay registers on A, so A takes her events.
kill -STOP "$b_PID" "$c_PID"
check "4. receiver failing, B and C stopped: fay registers on A" reg a fay
check "... node-a holds unacknowledged entries (XPENDING)" wait_for 20 held_by_a
pend_a=$(rcli xpending "$STREAM" webhook - + 100 node-a | grep -c -- '-0$')
kill -9 "$a_PID"
st=0
wait "$a_PID" 2>/dev/null || st=$?
check "... node A killed -9 holding $pend_a (exit status $st)" [ "$st" = 137 ]
kill -CONT "$b_PID" "$c_PID"
rm -f "$WORK/hook.fail"
check "... B and C have read the stream to its end" wait_for 20 settled b c
total=$(stream_last)
check "... the receiver recovers: all $total events delivered" wait_for 60 delivered "$total"
check "... each exactly once" once "$total"
claimed() { [ $(($(sstat b webhook_claimed) + $(sstat c webhook_claimed))) -ge "$pend_a" ]; }
check "... B and C took A's entries over (XAUTOCLAIM)" wait_for 20 claimed
check "... nothing left pending in the group" wait_for 20 nothing_pending
on c
curl -s "http://127.0.0.1:$API_PORT/metrics" >"$WORK/c.prom"
check "C's /metrics with the stream on: well-formed, no untyped family (promcheck)" \
    python3 "$PEERS_DIR/promcheck.py" check "$WORK/c.prom" --no-untyped
check "... it carries the stream's counters" \
    grep -q "^cascade_events_stream_written" "$WORK/c.prom" && grep -q "^cascade_events_stream_webhook_claimed" "$WORK/c.prom"
check "... no event write failed or was dropped on B and C" \
    [ "$(sstat b write_failed)$(sstat b write_dropped)$(sstat c write_failed)$(sstat c write_dropped)" = 0000 ]

# ---- 5. Redis gone: the SIP path does not wait, the events are counted lost
failed0=$(sstat b write_failed)
for p in "${REDIS_PORTS[@]}"; do kill -9 "${REDIS_PID[$p]}" 2>/dev/null || true; done
t0=$SECONDS
check "5. every Redis master killed -9: zed still registers on B" reg b zed
check "... answered within 3 s (the REGISTER never waits for Redis)" [ $((SECONDS - t0)) -le 3 ]
lost_counted() { [ $(($(sstat b write_failed) + $(sstat b write_dropped))) -gt "$failed0" ]; }
check "... B counts zed's events as not written (write_failed/write_dropped)" wait_for 20 lost_counted
check "... B's API still answers replays from what it holds" \
    bash -c "curl -s -H 'Authorization: Bearer $API_TOKEN' 'http://127.0.0.1:${API[b]}/api/v1/events/recent?since=0' |
        jq -e '.events | length > 0' >/dev/null"
check "... and logged it" grep -q "events stream: .*events were not written" "$WORK/b.log"

finish
