#!/usr/bin/env bash
# Node failure (issue 16): three cascade nodes (a, b, c) on a Redis Cluster
# of 3 masters + 3 replicas (Debian's redis-server, loopback ports chosen at
# run time), every node mirroring its bindings and heartbeating (300 ms, so
# a node is gone 900 ms after its last heartbeat).
#  1. a takeover, planted in Redis: node-x (never started) left incarnation
#     r1 with four AoRs in its index, two already reaped by a claimer
#     ("ghost", dead too) whose claim is still held for 2 s; p4 also has a
#     binding of node-x's next run (r2). The survivors wait for the claim to
#     lapse, one takes over: p3 and p4's r1 fields go, p4's r2 binding stays,
#     one user.offline node-lost for p3 in the event stream,
#     none for p1, p2 (done before) or p4 (still bound), and node-x leaves
#     the registry (A, B and C are all survivors here). node-x's GB device
#     index (five devices): one gb.device.offline node-lost for the one
#     still online on node-x r1, none for one re-registered on node-b, one
#     already offline, one of run r2, one without a record. Planted too,
#     what a claimer that died between its reap and its announcement left
#     (the event stream's marks): p5 marked then bound on node-b (no event),
#     p6 marked (one), p7 marked with its event in the stream already (none
#     again); G6 marked offline (one), G7 marked then registered on node-b
#     (none); every mark gone after. Each event names the node that wrote
#     it (node) and node-x (lost_node), no member twice.
#  2. u1..u8 register on A (sipp, UDP); sh registers on A and on B.
#  3. A killed -9 under a REGISTER load (one AoR per call, durable writes on
#     A: each 200 left after its bindings were on a replica): within a few
#     heartbeats a survivor removes A's fields (sh keeps B's), one
#     user.offline reason node-lost per u1..u8 and per AoR of the load
#     answered 200, exactly once in the event stream (B and C race for the
#     claim), none for sh; each survivor's replay with since= (the stream's
#     last seq before the kill) has those events with the stream's seqs,
#     written by the reaping node's scripts, naming B or C (node) and A
#     (lost_node), no member twice, in the stream and in the replays; A
#     leaves the registry and its index is gone.
#  4. u1..u8 register again on B; a call from C's caller to u1 reaches her
#     through B.
#  5. durable writes ([redis] durable_writes on B): the 200s of step 4
#     waited for a replica; a REGISTER load on B (one AoR per call), a Redis
#     master killed -9 while it runs; after its replica is promoted, every
#     AoR answered 200 is in Redis (read on the promoted master).
#  6. A restarted with the same id and store while its previous run is
#     listed again with its index and a stale claim (as if a survivor were
#     still reaping it): the new run writes the bindings loaded from SQLite
#     with its new incarnation, reaps the old run itself once the claim
#     lapses, and keeps every binding of the load it answered 200, with no
#     node-lost event in the stream.
#  7. node D joins without events_stream: the others count and warn about
#     it once each, and D about each of them (/stats cluster).
# Every node but D runs with [redis] events_stream: the events are counted in the
# stream itself (XRANGE), where each must be exactly once.
source "$(dirname "$0")/lib.sh"

for t in redis-server redis-cli sipp jq; do
    command -v "$t" >/dev/null || { echo "SKIP: $t not installed (scripts/install-deps.sh)"; exit 77; }
done

check "a Redis Cluster forms (3 masters + 3 replicas)" redis_cluster_start 3 1
RCLI_PORT=${REDIS_PORTS[0]}
rcli() { redis-cli -c -h 127.0.0.1 -p "$RCLI_PORT" "$@" | tr -d '\r'; }

API_TOKEN=failtoken
USERS="u1 u2 u3 u4 u5 u6 u7 u8"
declare -A SIP API
for n in a b c; do
    SIP[$n]=$(free_port); API[$n]=$(free_port)
    extra=""
    auth=""
    if [ "$n" != c ]; then
        extra="durable_writes = yes
durable_timeout_ms = 8000"
        auth="[auth]
match_user = no"
    fi
    node_ini "$n" "${SIP[$n]}" "${API[$n]}" fail.test <<INI
$auth
[proxy]
invite_timeout = 30
[redis]
mirror_bindings = yes
cluster_route = yes
nodes = 127.0.0.1:${REDIS_PORTS[0]},127.0.0.1:${REDIS_PORTS[1]}
node_id = node-$n
key_prefix = t:
timeout_ms = 1000
heartbeat_ms = 300
lookup_cache_ms = 0
events_stream = yes
events_poll_ms = 50
$extra
INI
    start_cascade "$n" "$WORK/$n.ini"
done
on() { API_PORT=${API[$1]}; PORT=${SIP[$1]}; }
for n in a b c; do
    on "$n"
    for u in $USERS sh caller; do ctl user add "$u" --password "${u}pw" >/dev/null; done
done
cstat() { on "$1"; api GET /stats | jq -r ".cluster.$2"; }
sees_two() { [ "$(cstat "$1" nodes_live)" = 2 ]; }
for n in a b c; do check "node $n sees the two others live" wait_for 20 sees_two "$n"; done

key() { echo "t:loc:{$1}"; }
# Every node's events are in one stream ([redis] events_stream): the reap's
# offline events are written there by the reaper's own scripts.
SKEY='t:{events}:stream'
stream_json() { rcli --raw xrange "$SKEY" - + | grep '^{"seq":'; } # every event in the stream, one per line
stream_last() { rcli --raw xrevrange "$SKEY" + - count 1 | head -1 | cut -d- -f1; }
node_lost() { # node_lost USER: user.offline reason node-lost events for USER in the stream
    stream_json | jq -s --arg u "$1" '[.[] | select(.type == "user.offline" and .reason == "node-lost" and .user == $u)] | length'
}
field_node() { rcli hget "$(key "$1")" "$2" | jq -r .node; }
fields() { rcli hlen "$(key "$1")"; }

# ---- 1. a takeover (planted)
exp=$(( $(date +%s%3N) + 300000 ))
rec() { echo "{\"node\":\"node-x\",\"inc\":\"$1\",\"flow\":0,\"transport\":\"udp\",\"remote\":\"127.0.0.1:9\",\"expires\":$exp,\"q\":1000}"; }
rcli hset "$(key p3)" "sip:p3@127.0.0.1:9" "$(rec r1)" >/dev/null
rcli hset "$(key p4)" "sip:p4@127.0.0.1:9" "$(rec r1)" "sip:p4@127.0.0.1:10" "$(rec r2)" >/dev/null
rcli sadd 't:node-aors:{node-x}:r1' p1 p2 p3 p4 p5 p6 p7 >/dev/null
# What a claimer that died between its reap and its announcements leaves
# (the event stream's marks, "node-x/r1"): p5 reaped, then bound again on
# node-b (no event; the mark goes), p6 reaped (one event), p7 reaped and
# its event written into the stream before the claimer died (none again).
bexp=$(( $(date +%s%3N) + 300000 ))
rcli hset "$(key p5)" "sip:p5@127.0.0.1:9" "{\"node\":\"node-b\",\"inc\":\"zz\",\"expires\":$bexp}" >/dev/null
for p in p5 p6 p7; do rcli hset "t:reaped:{$p}" node-x/r1 1 >/dev/null; done
rcli hset 't:{events}:reaped:node-x:r1' u:p7 0 >/dev/null
# node-x's GB devices (these nodes have no GB role: the reaper publishes the
# event itself): g1 online on node-x r1 (lost), g2 re-registered on node-b
# (a live node), g3 marked offline already (by the ghost, or by node-x),
# g4 online on node-x's next run r2, g5 without a record.
G1=34020000001320000101; G2=34020000001320000102; G3=34020000001320000103
G4=34020000001320000104; G5=34020000001320000105
G6=34020000001320000106; G7=34020000001320000107
gbrec() { rcli hset "t:gbdev:{$1}" node "$2" inc "$3" online "$4" transport udp remote 127.0.0.1:9 \
    registered 1800000000000 keepalive 1800000000000 expires 1800000300000 >/dev/null; rcli pexpire "t:gbdev:{$1}" 600000 >/dev/null; }
gbrec "$G1" node-x r1 1; gbrec "$G2" node-b zz 1; gbrec "$G3" node-x r1 0; gbrec "$G4" node-x r2 1
# and, marked by that claimer: G6 (offline, one event), G7 (registered again
# on node-b since: none).
gbrec "$G6" node-x r1 0; gbrec "$G7" node-b zz 1
rcli hset "t:gbdev:{$G6}" reaped node-x/r1 >/dev/null; rcli hset "t:gbdev:{$G7}" reaped node-x/r1 >/dev/null
rcli sadd 't:node-gbdevs:{node-x}:r1' "$G1" "$G2" "$G3" "$G4" "$G5" "$G6" "$G7" >/dev/null
rcli set 't:dead:{node-x}:r1' 'ghost/zz' px 2000 >/dev/null
rcli sadd 't:node-incs:{node-x}' r1 >/dev/null
rcli sadd t:nodes node-x >/dev/null
p3_gone() { [ "$(rcli exists "$(key p3)")" = 0 ]; }
check "1. planted: node-x's run r1, claimed by a dead ghost; the survivors take over once the claim lapses" \
    wait_for 30 p3_gone
check "... p4's r1 binding is gone, its r2 binding (node-x's next run) stays" \
    [ "$(fields p4)" = 1 ] && [ "$(rcli hget "$(key p4)" "sip:p4@127.0.0.1:10" | jq -r .inc)" = r2 ]
one_p3() { [ "$(node_lost p3)" -ge 1 ]; }
check "... user.offline node-lost for p3 on some node" wait_for 10 one_p3
x_out() { [ "$(rcli sismember t:nodes node-x)" = 0 ] && [ "$(rcli exists 't:node-aors:{node-x}:r1')" = 0 ] &&
    [ "$(rcli exists 't:node-gbdevs:{node-x}:r1')" = 0 ] &&
    [ "$(rcli exists 't:dead:{node-x}:r1')" = 0 ] && [ "$(rcli scard 't:node-incs:{node-x}')" = 0 ]; }
check "... node-x's indexes (AoRs, GB devices), claim and incarnation are gone, and it left the registry" wait_for 10 x_out
sleep 1 # three more heartbeats: a second reaper would have reported by now
check "... exactly one event for p3 and p6 in the stream; none for p1, p2, p4 (still bound), p5 (bound again), p7 (in already)" \
    [ "$(node_lost p3)" = 1 ] && [ "$(node_lost p6)" = 1 ] && [ "$(node_lost p1)" = 0 ] && [ "$(node_lost p2)" = 0 ] &&
    [ "$(node_lost p4)" = 0 ] && [ "$(node_lost p5)" = 0 ] && [ "$(node_lost p7)" = 0 ]
marks_gone() { local p; for p in p3 p5 p6 p7; do [ "$(rcli exists "t:reaped:{$p}")" = 0 ] || return 1; done
    [ "$(fields p5)" = 1 ] &&
    [ "$(rcli hexists "t:gbdev:{$G1}" reaped)" = 0 ] && [ "$(rcli hexists "t:gbdev:{$G6}" reaped)" = 0 ] &&
    [ "$(rcli hexists "t:gbdev:{$G7}" reaped)" = 0 ]; }
check "... the marks are gone (p5's binding on node-b stays)" wait_for 10 marks_gone
stream_json | jq -c 'select(.reason == "node-lost")' >"$WORK/events-1.txt"
p3seq=$(jq -s '[.[] | select(.user == "p3")][0].seq' "$WORK/events-1.txt")
same_p3() { local n; for n in a b c; do on "$n"
    [ "$(events_json | jq -c '[.events[] | select(.reason == "node-lost" and .user == "p3") | .seq]')" = "[$p3seq]" ] ||
        return 1; done; }
check "... every node's API shows that one event with the stream's seq ($p3seq)" wait_for 10 same_p3
streamed() { local n t=0; for n in ${2:-a b c}; do t=$((t + $(cstat "$n" "$1"))); done; echo "$t"; }
check "... written by the reaping node's scripts (reap_events_streamed: 4, reap_events_cancelled: 2), not again from its bus" \
    [ "$(streamed reap_events_streamed)" = 4 ] && [ "$(streamed reap_events_cancelled)" = 2 ]
esum() { local n t=0; for n in a b c; do on "$n"; t=$((t + $(api GET /stats | jq -r ".events_stream.$1"))); done; echo "$t"; }
check "... the reaping node's bus got the five (p7's too: its subscribers had not), its stream writer skipped them" \
    [ "$(esum written_elsewhere)" -ge 5 ] # more only when a claim changed hands mid-way (a stalled claimer)
# the node-lost events as the stream holds them (jq would keep the last of a member given twice)
lost_raw() { stream_json | grep '"reason":"node-lost"' | jq -R --argjson s "${1:-0}" 'select((fromjson | .seq) > $s)' -r; }
check "... no member twice in any of them (RFC 8259 §4)" eval 'lost_raw | unique_keys'
check "... the event names the user, the AoR, the reason, the writer (node: a survivor) and the dead node (lost_node)" \
    jq -e -s '[.[] | select(.type == "user.offline" and .user == "p3")] | length == 1 and .[0].aor == "sip:p3@fail.test" and
        .[0].lost_node == "node-x" and (.[0].node | test("^node-[abc]$"))' "$WORK/events-1.txt"
check "... one gb.device.offline node-lost (lost_node node-x) in the stream for G1 and G6 each, none for G2..G5, G7" \
    jq -e -s --arg g "$G1" --arg g6 "$G6" '[.[] | select(.type == "gb.device.offline")] | length == 2 and
        ([.[] | select(.type == "gb.device.offline") | .device_id] | sort) == ([$g, $g6] | sort) and
        all(.[] | select(.type == "gb.device.offline"); .reason == "node-lost" and .lost_node == "node-x" and
            (.node | test("^node-[abc]$")))' "$WORK/events-1.txt"
check "... G1's record says online 0 (still naming node-x, with a TTL); G2's (node-b) and G4's (run r2) stay online" \
    [ "$(rcli hget "t:gbdev:{$G1}" online)" = 0 ] && [ "$(rcli hget "t:gbdev:{$G1}" node)" = node-x ] &&
    [ "$(rcli pttl "t:gbdev:{$G1}")" -gt 0 ] && [ "$(rcli hget "t:gbdev:{$G2}" online)" = 1 ] &&
    [ "$(rcli hget "t:gbdev:{$G4}" online)" = 1 ] && [ "$(rcli exists "t:gbdev:{$G5}")" = 0 ]
gbsum() { local n t=0; for n in a b c; do t=$((t + $(cstat "$n" gb_devices_reaped))); done; echo "$t"; }
check "... the nodes counted one GB device reaped in /stats" [ "$(gbsum)" = 1 ]

# ---- 2. users on A
on a
i=0
for u in $USERS; do
    i=$((i + 1))
    cp=$(free_port)
    eval "CP_$u=$cp"
    sipp_scn "reg-$u" register.xml -s "$u" -au "$u" -ap "${u}pw" -key expires 300 -key cport "$cp" -p "$cp" ||
        fail "2. $u registers on A"
done
SH_A=$(free_port); SH_B=$(free_port)
check "2. u1..u8 and sh registered on A" \
    sipp_scn reg-sh-a register.xml -s sh -au sh -ap shpw -key expires 300 -key cport "$SH_A" -p "$SH_A"
on b
check "... sh registered on B too" \
    sipp_scn reg-sh-b register.xml -s sh -au sh -ap shpw -key expires 300 -key cport "$SH_B" -p "$SH_B"
mirrored() { local u c; for u in $USERS; do eval "c=\$CP_$u"
    [ "$(field_node "$u" "sip:$u@127.0.0.1:$c")" = node-a ] || return 1; done
    [ "$(fields sh)" = 2 ]; }
check "... every binding is mirrored (node-a; sh on node-a and node-b)" wait_for 20 mirrored
inc_a=$(rcli hget "$(key u1)" "sip:u1@127.0.0.1:$CP_u1" | jq -r .inc)
check "... A's records name its incarnation ($inc_a), listed in t:node-incs:{node-a}" \
    [ "$(rcli sismember 't:node-incs:{node-a}' "$inc_a")" = 1 ]
check "... A's index lists the nine AoRs" [ "$(rcli scard "t:node-aors:{node-a}:$inc_a")" = 9 ]

# ---- 3. A killed under a REGISTER load
rb0=$(cstat b bindings_reaped); rc0=$(cstat c bindings_reaped)
sb0=$(streamed reap_events_streamed "b c")
K=${KILL_AORS:-150}
{ echo SEQUENTIAL; for i in $(seq 1 "$K"); do echo "k$i;"; done; } >"$WORK/kill.csv"
on a
(cd "$WORK" && exec timeout 60 sipp "127.0.0.1:$PORT" -sf "$PEERS_DIR/sipp/register-load.xml" -inf kill.csv \
    -au caller -ap callerpw -i 127.0.0.1 -p "$(free_port)" -r 50 -m "$K" -l 100 -nostdin \
    -recv_timeout 4000 -trace_logs -log_file kill-ok.log >"$WORK/kill.out" 2>&1) &
kill_load=$!
PIDS+=("$kill_load")
kthird() { [ "$(grep -c '^OK ' "$WORK/kill-ok.log" 2>/dev/null || echo 0)" -ge $((K / 3)) ]; }
wait_for 60 kthird || true
s0=$(stream_last)
kill -9 "$a_PID"
t0=$(date +%s%3N)
check "3. node A killed -9 under a REGISTER load" wait_for 10 not kill -0 "$a_PID"
kill "$kill_load" 2>/dev/null || true
wait "$kill_load" 2>/dev/null || true
grep '^OK ' "$WORK/kill-ok.log" | awk '{print $2}' | sort -u >"$WORK/k-answered.txt"
k_answered=$(wc -l <"$WORK/k-answered.txt")
check "... $k_answered of $K AoRs of the load were answered 200 before the kill" \
    [ "$k_answered" -gt 0 ] && [ "$k_answered" -lt "$K" ]
a_gone() { local u; for u in $USERS $(cat "$WORK/k-answered.txt"); do
    [ "$(rcli exists "$(key "$u")")" = 0 ] || return 1; done; [ "$(fields sh)" = 1 ]; }
# The promise is "within the TTL" (300 s here); 30 s bounds the test. How fast
# it is (1-3 s idle) is printed, not asserted: on a loaded machine the polling
# below (a redis-cli per AoR per round) alone can take seconds.
check "... a survivor removes A's bindings from Redis, well within their 300 s TTL" wait_for 30 a_gone
t1=$(date +%s%3N)
echo "# A's bindings were out of Redis $((t1 - t0)) ms after the kill (A's registry entry lives 900 ms)"
check "... sh keeps its binding on node-b" [ "$(field_node sh "sip:sh@127.0.0.1:$SH_B")" = node-b ]
all_lost() { local u; for u in $USERS; do [ "$(node_lost "$u")" -ge 1 ] || return 1; done; }
check "... user.offline node-lost for each of u1..u8 on B or C" wait_for 10 all_lost
# every node-lost user.offline in the stream, one line per event: the user
lost_users() { stream_json | jq -r 'select(.type == "user.offline" and .reason == "node-lost") | .user'; }
k_all() { lost_users | sort | uniq -c | awk '$2 ~ /^k/ {print $2}' >"$WORK/k-lost.txt"
    [ -z "$(comm -23 "$WORK/k-answered.txt" <(sort "$WORK/k-lost.txt"))" ]; }
check "... and for each AoR of the load answered 200" wait_for 20 k_all
a_out() { [ "$(rcli sismember t:nodes node-a)" = 0 ] && [ "$(rcli exists "t:node-aors:{node-a}:$inc_a")" = 0 ]; }
check "... A's index is gone and A left the registry" wait_for 10 a_out
sleep 1
counts=""
ok=1
for u in $USERS; do k=$(node_lost "$u"); counts="$counts $u:$k"; [ "$k" = 1 ] || ok=0; done
check "... exactly one each in the stream ($counts), none for sh ($(node_lost sh))" \
    [ "$ok" = 1 ] && [ "$(node_lost sh)" = 0 ]
dups=$(lost_users | grep '^k' | sort | uniq -d | wc -l)
k_events=$(lost_users | grep -c '^k' || true)
check "... and exactly one per AoR of the load ($k_events events for AoRs of the load, $dups AoRs twice)" \
    [ "$dups" = 0 ]
# A replay with since= on each survivor: the same node-lost events, with the stream's seqs.
stream_json | jq -c --argjson s "$s0" 'select(.seq > $s and .reason == "node-lost") | [.seq, .user]' >"$WORK/s3.txt"
n3=$(wc -l <"$WORK/s3.txt")
for n in b c; do
    on "$n"
    events_json "$s0" | jq -c '.events[] | select(.reason == "node-lost") | [.seq, .user]' >"$WORK/s3-$n.txt"
    check "... node $n's replay since $s0 (before the kill) has the stream's $n3 node-lost events, same seqs" \
        cmp -s "$WORK/s3.txt" "$WORK/s3-$n.txt"
done
check "... each names B or C (node, the writer) and A (lost_node)" \
    jq -e -s --argjson s "$s0" '[.[] | select(.seq > $s and .reason == "node-lost")] | length > 0 and
        all(.[] | select(.seq > $s and .reason == "node-lost"); .lost_node == "node-a" and
            (.node == "node-b" or .node == "node-c"))' <(stream_json)
check "... no member twice in the stream's node-lost events since $s0" eval 'lost_raw "$s0" | unique_keys'
for n in b c; do
    on "$n"
    check "... nor in node $n's replay of them" eval 'events_json "$s0" | unique_keys'
done
sb=$(($(streamed reap_events_streamed "b c") - sb0))
check "... the reaping node's scripts wrote them ($sb streamed by B and C)" [ "$sb" = "$n3" ]
rb=$(($(cstat b bindings_reaped) - rb0)); rc=$(($(cstat c bindings_reaped) - rc0))
check "... B and C removed A's bindings between them (B $rb, C $rc; nine + $k_answered of the load at least)" \
    [ $((rb + rc)) -ge $((9 + k_answered)) ] && [ $((rb + rc)) = $((9 + k_events)) ]

# ---- 4. back on B, called from C
on b
ok=1
for u in $USERS; do
    eval "cp=\$CP_$u"
    sipp_scn "rereg-$u" register.xml -s "$u" -au "$u" -ap "${u}pw" -key expires 300 -key cport "$cp" -p "$cp" || ok=0
done
check "4. u1..u8 register again, on B" [ "$ok" = 1 ]
on_b() { local u c; for u in $USERS; do eval "c=\$CP_$u"
    [ "$(field_node "$u" "sip:$u@127.0.0.1:$c")" = node-b ] || return 1; done; }
check "... mirrored with node-b" wait_for 20 on_b
sipp_spawn uas 60 -sf "$PEERS_DIR/sipp/uas-call.xml" -s u1 -p "$CP_u1"
uas_pid=$SIPP_PID
wait_for 10 udp_bound "$CP_u1"
on c
check "... a call from C's caller to u1 (INVITE, 407, INVITE, 180/200/ACK/BYE)" \
    sipp_scn call uac-call-auth.xml -s u1 -au caller -ap callerpw -auth_uri "u1@127.0.0.1:${SIP[c]}" -p "$(free_port)"
check "... u1 got it" wait "$uas_pid"
check "... through B after C" \
    bash -c "awk '/^INVITE sip:u1/,/^\$/' '$WORK/uas.msg' | grep '^Via:' | head -2 | tr '\n' ' ' |
        grep -q '127.0.0.1:${SIP[b]};branch=z9hG4bKcP.*127.0.0.1:${SIP[c]};branch=z9hG4bKcP'"

# ---- 5. durable writes through a master failover
mstat() { on b; api GET /stats | jq -r ".redis_mirror.$1"; }
check "5. B's 200s waited for a replica (durable_ok $(mstat durable_ok) >= 9, durable_failed 0)" \
    [ "$(mstat durable_ok)" -ge 9 ] && [ "$(mstat durable_failed)" = 0 ]
N=${DURABLE_AORS:-200}
RATE=${DURABLE_RATE:-40}
{ echo SEQUENTIAL; for i in $(seq 1 "$N"); do echo "l$i;"; done; } >"$WORK/load.csv"
read -r victim rep < <(redis_pair_for "$(redis_slot_of "$(key l1)")")
check "... l1's slot is on master $victim, replicated on $rep" [ -n "$victim" ] && [ -n "$rep" ]
synced() { redis_rc "$rep" info replication | tr -d '\r' | grep -q '^master_link_status:up$'; }
check "... the replica is linked" wait_for 30 synced
on b
(cd "$WORK" && exec timeout 120 sipp "127.0.0.1:$PORT" -sf "$PEERS_DIR/sipp/register-load.xml" -inf load.csv \
    -au caller -ap callerpw -i 127.0.0.1 -p "$(free_port)" -r "$RATE" -m "$N" -l 200 -nostdin \
    -recv_timeout 15000 -trace_logs -log_file load-ok.log >"$WORK/load.out" 2>&1) &
load_pid=$!
PIDS+=("$load_pid")
third() { [ "$(grep -c '^OK ' "$WORK/load-ok.log" 2>/dev/null || echo 0)" -ge $((N / 3)) ]; }
wait_for 60 third || true
retries0=$(mstat durable_retries)
kill -9 "${REDIS_PID[$victim]}"
at_kill=$(grep -c '^OK ' "$WORK/load-ok.log" || true)
check "... master $victim killed -9 with $at_kill of $N REGISTERs answered" [ "$at_kill" -lt "$N" ]
check "... its replica is promoted" wait_for 60 redis_promoted "$rep"
wait "$load_pid" 2>/dev/null || true
grep '^OK ' "$WORK/load-ok.log" | awk '{print $2}' | sort -u >"$WORK/answered.txt"
answered=$(wc -l <"$WORK/answered.txt")
echo "# $answered of $N answered 200; durable_ok $(mstat durable_ok), durable_failed $(mstat durable_failed) (500: the"
echo "# promoted master has no replica left to acknowledge), retries $(mstat durable_retries)"
check "... the load went on after the kill ($answered answered 200)" [ "$answered" -gt "$at_kill" ]
check "... some REGISTERs waited through the failover (durable_retries $retries0 -> $(mstat durable_retries))" \
    [ "$(mstat durable_retries)" -gt "$retries0" ]
RCLI_PORT=$rep
missing=0
while read -r u; do
    [ "$(rcli hlen "$(key "$u")")" -ge 1 ] || { missing=$((missing + 1)); echo "# missing: $u"; }
done <"$WORK/answered.txt"
check "... every AoR answered 200 is in Redis after the failover ($missing missing of $answered)" [ "$missing" = 0 ]
check "... including l1's, on the promoted master" [ "$(redis_rc "$rep" hlen "$(key l1)" | tr -d '\r')" -ge 1 ] ||
    ! grep -qx l1 "$WORK/answered.txt"

# ---- 6. A restarted while a stale claim on its previous run is held
RCLI_PORT=$rep
s6=$(stream_last)
rcli sadd "t:node-aors:{node-a}:$inc_a" $(cat "$WORK/k-answered.txt") >/dev/null
rcli set "t:dead:{node-a}:$inc_a" 'ghost/zz' px 1500 >/dev/null
rcli sadd 't:node-incs:{node-a}' "$inc_a" >/dev/null
start_cascade a2 "$WORK/a.ini"
k_back() { local k i; while read -r k; do
    i=$(rcli hvals "$(key "$k")" | jq -r 'select(.node == "node-a") | .inc' | head -1)
    [ -n "$i" ] && [ "$i" != "$inc_a" ] || return 1; done <"$WORK/k-answered.txt"; }
check "6. A restarted: the load's AoRs it answered 200 are back in Redis, with its new incarnation" wait_for 30 k_back
old_gone() { [ "$(rcli sismember 't:node-incs:{node-a}' "$inc_a")" = 0 ]; }
check "... its previous run is reaped once the stale claim lapses (by A itself: B and C see it live)" \
    wait_for 30 old_gone
check "... and every one of those bindings is still there" k_back
check "... no node-lost event in the stream since A restarted" \
    [ "$(stream_json | jq -s --argjson s "$s6" '[.[] | select(.seq > $s and .reason == "node-lost")] | length')" = 0 ]

# ---- 7. a node that does not write into the events stream joins
SIP[d]=$(free_port); API[d]=$(free_port)
node_ini d "${SIP[d]}" "${API[d]}" fail.test <<INI
[redis]
mirror_bindings = yes
cluster_route = yes
nodes = 127.0.0.1:${REDIS_PORTS[0]},127.0.0.1:${REDIS_PORTS[1]}
node_id = node-d
key_prefix = t:
timeout_ms = 1000
heartbeat_ms = 300
INI
start_cascade d "$WORK/d.ini"
differs() { on "$1"; [ "$(api GET /stats | jq -r '.cluster.peers_stream_differs')" = "$2" ]; }
peer_stream() { on "$1"; api GET /stats | jq -r --arg p "$2" '.cluster.peers[] | select(.id == $p) | .events_stream'; }
check "7. node D joins without events_stream: B counts one peer whose setting differs from its own" \
    wait_for 20 differs b 1
check "... B's /stats lists node-d with events_stream false, node-c with true" \
    [ "$(peer_stream b node-d)/$(peer_stream b node-c)" = false/true ]
check "... B warned once" \
    [ "$(grep -c 'cluster: node node-d does not write its events into the events stream' "$WORK/b.log")" = 1 ]
check "... D counts A, B and C as differing" wait_for 20 differs d 3
check "... and warned once for each" \
    [ "$(grep -c 'writes its events into the events stream and this node does not' "$WORK/d.log")" = 3 ]

finish
