#!/usr/bin/env bash
# Routing between nodes ([redis] cluster_route, issue 16): three cascade
# nodes (a, b, c) on one 3-master Redis Cluster of Debian's redis-server, on
# loopback ports chosen at run time; every node mirrors its bindings and
# heartbeats into the node registry.
#  1. each node sees the two others live (/stats cluster.peers);
#  2. alice (a sipp UAS) registers on node A only; the caller (sipp UAC)
#     sends its INVITE to node C, is challenged there (407), authenticates,
#     and the call reaches alice through A: C forwards it to A (Route with
#     the peer mark), A — which trusts C as a live node and does not
#     challenge again — delivers it over alice's binding; both record-route,
#     so the ACK and the in-dialog BYE travel UAC -> C -> A -> alice;
#  2b. the dialog package across nodes: a sipp watcher of alice's dialogs
#     on C; a call to alice through A only: A writes the call's states into
#     Redis (alice is watched elsewhere: C announced it), C reads them and
#     its watcher gets partial NOTIFYs (trying) early, confirmed,
#     terminated/remote-bye, versions in order;
#  2c. while that call is up (confirmed): a fetch (Expires: 0) of alice's
#     dialogs on B, which follows none, answers after reading the other
#     nodes' calls (one NOTIFY, terminated, the call confirmed), and B
#     follows nothing after it; a new dialog watcher on B gets its first
#     NOTIFY after the first read (full, the call confirmed: not an empty
#     one followed by a partial), then the call's end as a partial;
#  3. a user registered nowhere: 480 (known on C) / 404 (unknown); the
#     second ask for dave is answered from C's cache (no Redis); then dave
#     registers on B: B's mirror publishes the change, C drops its cached
#     "nowhere" on the message, and a call to dave through C reaches him
#     on B;
#  4. loop protection: a (planted) record says ghost is on A and on B; C
#     forks to both, each routes the marked request to its own bindings
#     only (404 there), never on to the other node; C answers 404;
#  4b. the reg package across nodes: a sipp watcher subscribes on B to reg
#     for alice: its full NOTIFY lists her binding on A (read from Redis at
#     the SUBSCRIBE); she registers another contact on A: a partial NOTIFY
#     with it active/registered; she unregisters it on A: one with it
#     terminated/unregistered (the registration still active: the first
#     binding stays); unsubscribed, B follows nothing;
#  4d. a fetch of alice's reg on B (which follows nothing): its one NOTIFY
#     (terminated) lists her binding on A, read before the answer;
#  4c. a node's death seen by a reg watcher: dave (registered on B in 3)
#     watched on C: the full NOTIFY lists his contact on B; B killed -9: a
#     survivor reaps B's bindings and announces it, C's partial NOTIFY has
#     the contact terminated/deactivated, the registration terminated;
#     exactly one user.offline node-lost for dave across A's and C's own
#     events (the nodes run without [redis] events_stream);
#  5. Redis killed: no node crashes; C falls back to the local answer (480
#     for alice, who is not registered on C), A still connects a call to
#     alice directly; a reg watcher of alice on C gets its full NOTIFY
#     (C's own view: init) once the read of A's bindings fails, and the
#     terminated one at its expiry.
source "$(dirname "$0")/lib.sh"

for t in redis-server redis-cli sipp jq xmllint python3; do
    command -v "$t" >/dev/null || { echo "SKIP: $t not installed (scripts/install-deps.sh)"; exit 77; }
done

check "a Redis Cluster forms (3 masters)" redis_cluster_start 3 0
rcli() { redis-cli -c -h 127.0.0.1 -p "${REDIS_PORTS[0]}" "$@" | tr -d '\r'; }

API_TOKEN=clustertoken
declare -A SIP API
for n in a b c; do
    SIP[$n]=$(free_port); API[$n]=$(free_port)
    node_ini "$n" "${SIP[$n]}" "${API[$n]}" cluster.test <<INI
[proxy]
invite_timeout = 30
[subscriptions]
min_expires = 2
[redis]
mirror_bindings = yes
cluster_route = yes
nodes = 127.0.0.1:${REDIS_PORTS[0]},127.0.0.1:${REDIS_PORTS[1]}
node_id = node-$n
key_prefix = t:
timeout_ms = 1000
heartbeat_ms = 300
lookup_cache_ms = 120000
INI
    start_cascade "$n" "$WORK/$n.ini"
done
on() { API_PORT=${API[$1]}; PORT=${SIP[$1]}; }   # on NODE: api/ctl/sipp_scn toward that node
check "node A logs cluster routing on, reached at its UDP listener" \
    grep -q "cluster routing on: node node-a reached at sip:127.0.0.1:${SIP[a]}" "$WORK/a.log"
for n in a b c; do
    on "$n"
    ctl user add caller --password callerpw >/dev/null
done
on a; ctl user add alice --password alicepw >/dev/null
on b; ctl user add dave --password davepw >/dev/null; ctl user add alice --password alicepw >/dev/null
on c; ctl user add alice --password alicepw >/dev/null; ctl user add dave --password davepw >/dev/null

cstat() { on "$1"; api GET /stats | jq -r ".cluster.$2"; }
pstat() { on "$1"; api GET /stats | jq -r ".proxy.$2"; }
sees_two() { [ "$(cstat "$1" nodes_live)" = 2 ]; }
for n in a b c; do check "1. node $n sees the two others live" wait_for 20 sees_two "$n"; done
subscribed() { [ "$(cstat "$1" cache)" = true ]; }
check "... C subscribed to the change channel (its cache is on)" wait_for 20 subscribed c
check "... C knows A by its SIP address" \
    [ "$(cstat c 'peers[] | select(.id == "node-a") | .sip')" = "sip:127.0.0.1:${SIP[a]}" ]
check "... the registry in Redis: t:node:{node-b} with its sip URI and a TTL" \
    bash -c "[ \"\$(redis-cli -c -h 127.0.0.1 -p ${REDIS_PORTS[0]} hget 't:node:{node-b}' sip | tr -d '\r')\" = sip:127.0.0.1:${SIP[b]} ] &&
        [ \"\$(redis-cli -c -h 127.0.0.1 -p ${REDIS_PORTS[0]} pttl 't:node:{node-b}' | tr -d '\r')\" -gt 0 ]"

# ---- 2. alice on A, the call through C
UAS=$(free_port)
on a
check "2. sipp: alice registers on node A (digest) from port $UAS" \
    sipp_scn reg-alice register.xml -s alice -au alice -ap alicepw -key expires 300 -key cport "$UAS" -p "$UAS"
has_alice() { [ -n "$(rcli hget 't:loc:{alice}' "sip:alice@127.0.0.1:$UAS")" ]; }
check "... her binding is mirrored with node-a" wait_for 20 has_alice
sipp_spawn uas 60 -sf "$PEERS_DIR/sipp/uas-call.xml" -s alice -p "$UAS"
uas_pid=$SIPP_PID
wait_for 10 udp_bound "$UAS"
on c
check "... sipp UAC on node C: INVITE, 407, INVITE with credentials, 180/200/ACK/BYE" \
    sipp_scn call uac-call-auth.xml -s alice -au caller -ap callerpw -auth_uri "alice@127.0.0.1:${SIP[c]}" \
    -p "$(free_port)"
check "... alice (the UAS) got the INVITE, the ACK and the BYE" wait "$uas_pid"
invite=$(awk '/^INVITE sip:alice/,/^$/' "$WORK/uas.msg")
check "... her INVITE carries A's and C's Record-Route" \
    bash -c "grep -q 'Record-Route: .*127.0.0.1:${SIP[a]};lr' <<<\"\$1\" && grep -q 'Record-Route: .*127.0.0.1:${SIP[c]};lr' <<<\"\$1\"" _ "$invite"
check "... and came through A (top Via) after C (second Via)" \
    bash -c "grep '^Via:' <<<\"\$1\" | head -2 | tr '\n' ' ' | grep -q '127.0.0.1:${SIP[a]};branch=z9hG4bKcP.*127.0.0.1:${SIP[c]};branch=z9hG4bKcP'" _ "$invite"
check "... no Route or peer mark left in what alice got, no Proxy-Authorization" \
    bash -c "! grep -qi '^Route:\|cascade-peer\|^Proxy-Authorization' <<<\"\$1\"" _ "$invite"
bye=$(awk '/^BYE sip:alice/,/^$/' "$WORK/uas.msg")
check "... the BYE followed the Record-Route: through C then A" \
    bash -c "grep '^Via:' <<<\"\$1\" | head -2 | tr '\n' ' ' | grep -q '127.0.0.1:${SIP[a]};branch=z9hG4bKcP.*127.0.0.1:${SIP[c]};branch=z9hG4bKcP'" _ "$bye"
check "... C forwarded one request to another node" [ "$(pstat c cluster_forwarded)" -ge 1 ]
check "... A took it as from a peer, asked the cluster nothing" \
    [ "$(pstat a from_peers)" -ge 1 ] && [ "$(pstat a cluster_lookups)" = 0 ]
check "... A challenged nobody" [ "$(pstat a challenged)" = 0 ]

# ---- 2b. the dialog package across nodes: alice's calls on A seen on C
# A looping watcher (a NOTIFY answered 200 again and again; killed once done).
sed -e '/<recv request="NOTIFY" timeout="60000"\/>/,$d' -e '/assign_to="to_hdr,totag"/d' -e '/log message="subscribed/d' "$PEERS_DIR/sipp/sub-dialog.xml" >"$WORK/sub-dialog-loop.xml"
cat >>"$WORK/sub-dialog-loop.xml" <<'XML'
  <label id="1"/>
  <recv request="NOTIFY" timeout="120000"/>
  <send next="1">
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

    ]]>
  </send>
</scenario>
XML
# The callee rings 1.5 s before answering: the reads after each write
# (milliseconds) see each state. The caller talks 8 s: B's fetch and B's
# new watcher (2c) come while the call is up.
sed '0,/<\/send>/s//<\/send>\n  <pause milliseconds="1500"\/>/' "$PEERS_DIR/sipp/uas-call.xml" >"$WORK/uas-call-ring.xml"
sed 's/<pause milliseconds="300"\/>/<pause milliseconds="8000"\/>/' "$PEERS_DIR/sipp/uac-call-auth.xml" >"$WORK/uac-call-talk.xml"
dstat() { on "$1"; api GET /stats | jq -r ".redis_dialog.$2"; }
DI="/*[local-name()='dialog-info']"
DD="$DI/*[local-name()='dialog']"
sipp_spawn wdlg 120 "127.0.0.1:${SIP[c]}" -sf "$WORK/sub-dialog-loop.xml" \
    -s alice -au alice -ap alicepw -auth_uri "alice@127.0.0.1:${SIP[c]}" -key expires 600 -p "$(free_port)"
WDLG=$SIPP_PID
N=$WORK/wdlg.n
check "2b. a dialog watcher of alice on C: the full NOTIFY, no call" wait_for 30 got_notifies wdlg 1
check "... full, version 0, no dialog" \
    test "$(xp $N/1.xml "$DI/@state")/$(xp $N/1.xml "$DI/@version")/$(xp $N/1.xml "count($DD)")" = "full/0/0"
elsewhere() { [ "$(dstat a watched_elsewhere)" -ge 1 ]; }
check "... A heard that alice is watched elsewhere" wait_for 20 elsewhere
sipp_spawn uas2 60 -sf "$WORK/uas-call-ring.xml" -s alice -p "$UAS"
uas_pid=$SIPP_PID
wait_for 10 udp_bound "$UAS"
on a
sipp_scn call-a "$WORK/uac-call-talk.xml" -s alice -au caller -ap callerpw -auth_uri "alice@127.0.0.1:${SIP[a]}" \
    -p "$(free_port)" &
CALLA=$!
PIDS+=("$CALLA")
saw_confirmed() {
    local k i
    k=$(python3 "$PEERS_DIR/notify_bodies.py" "$WORK/wdlg.msg" "$N" 2>/dev/null) || return 1
    for ((i = 2; i <= k; i++)); do [ "$(xp "$N/$i.xml" "$DD/*[local-name()='state']")" = confirmed ] && return 0; done
    return 1
}
check "... a call to alice through A only (C not on its path): C's watcher sees it confirmed" wait_for 30 saw_confirmed
# 2c. B follows none of alice's calls: a fetch there reads them before it
# answers; then a first watcher on B gets its first NOTIFY after the read
on b
check "2c. a fetch (Expires: 0) of alice's dialogs on B, which follows none: 200 and one NOTIFY" \
    sipp_scn fdlg sub-fetch.xml -s alice -au alice -ap alicepw -auth_uri "alice@127.0.0.1:${SIP[b]}" \
    -key event dialog -key accept application/dialog-info+xml -p "$(free_port)"
FN=$WORK/fdlg.n
check "... its NOTIFY: terminated;reason=timeout" \
    bash -c "[ \"\$(python3 '$PEERS_DIR/notify_bodies.py' '$WORK/fdlg.msg' '$FN')\" = 1 ] &&
        grep -q '^Subscription-State: terminated;reason=timeout\$' '$FN/1.hdr'"
check "... full, the call on A listed confirmed (read before the answer)" \
    test "$(xp $FN/1.xml "$DI/@state")/$(xp $FN/1.xml "count($DD)")/$(xp $FN/1.xml "$DD/*[local-name()='state']")" \
    = "full/1/confirmed"
check "... B follows nothing after it" test "$(dstat b followed)" = 0
sipp_spawn wdlgb 120 "127.0.0.1:${SIP[b]}" -sf "$WORK/sub-dialog-loop.xml" \
    -s alice -au alice -ap alicepw -auth_uri "alice@127.0.0.1:${SIP[b]}" -key expires 600 -p "$(free_port)"
WDLGB=$SIPP_PID
BN=$WORK/wdlgb.n
check "... a dialog watcher of alice on B: its first NOTIFY" wait_for 30 got_notifies wdlgb 1
check "... waited for the first read: full, version 0, the call confirmed (not an empty one and a partial)" \
    test "$(xp $BN/1.xml "$DI/@state")/$(xp $BN/1.xml "$DI/@version")/$(xp $BN/1.xml "count($DD)")/$(xp $BN/1.xml "$DD/*[local-name()='state']")" \
    = "full/0/1/confirmed"
check "... the call: INVITE, 407, 180, 200, ACK, BYE (sipp ran the scenario)" wait "$CALLA"
check "... alice (the UAS) took the call" wait "$uas_pid"
b_ended() {
    python3 "$PEERS_DIR/notify_bodies.py" "$WORK/wdlgb.msg" "$BN" >/dev/null 2>&1 && [ -f "$BN/2.xml" ] &&
        [ "$(xp "$BN/2.xml" "$DD/*[local-name()='state']")" = terminated ]
}
check "... B's watcher: NOTIFY 2 is the call's end (partial, version 1)" wait_for 30 b_ended
check "... partial/1" test "$(xp $BN/2.xml "$DI/@state")/$(xp $BN/2.xml "$DI/@version")" = partial/1
kill "$WDLGB" 2>/dev/null; wait "$WDLGB" 2>/dev/null
last_terminated() {
    local k
    k=$(python3 "$PEERS_DIR/notify_bodies.py" "$WORK/wdlg.msg" "$N" 2>/dev/null) || return 1
    [ "$k" -ge 2 ] && [ "$(xp "$N/$k.xml" "$DD/*[local-name()='state']")" = terminated ]
}
check "... C's watcher got partial NOTIFYs up to the call's end" wait_for 30 last_terminated
k=$(python3 "$PEERS_DIR/notify_bodies.py" "$WORK/wdlg.msg" "$N")
states="" versions="" shape=""
for i in $(seq 2 "$k"); do
    states+="$(xp "$N/$i.xml" "$DD/*[local-name()='state']") "
    versions+="$(xp "$N/$i.xml" "$DI/@version") "
    shape+="$(xp "$N/$i.xml" "$DI/@state")/$(xp "$N/$i.xml" "count($DD)")/$(xp "$N/$i.xml" "$DD/@direction") "
done
check "... states: (trying) early confirmed terminated [$states]" \
    bash -c "grep -Eq '^(trying )?early confirmed terminated \$' <<<\"\$1\"" _ "$states"
check "... versions 1, 2, ... in order [$versions]" [ "$versions" = "$(seq -s ' ' 1 $((k - 1))) " ]
check "... each partial, one dialog, alice the recipient [$shape]" \
    bash -c "[ -z \"\$(tr ' ' '\n' <<<\"\$1\" | grep -v '^\$' | grep -v '^partial/1/recipient\$')\" ]" _ "$shape"
check "... ended by the caller's BYE: terminated/remote-bye; the remote party is the caller" \
    bash -c "[ \"\$(xmllint --xpath \"string($DD/*[local-name()='state']/@event)\" \"\$1\")\" = remote-bye ] &&
        xmllint --xpath \"string($DD/*[local-name()='remote']/*[local-name()='identity'])\" \"\$1\" | grep -q '^sip:caller@'" _ "$N/$k.xml"
check "... the call id is the caller's" \
    grep -q "call-id=\"$(awk '/^INVITE sip:alice/{f=1} f && /^Call-ID:/{print $2; exit}' "$WORK/uas2.msg" | tr -d '\r')\"" "$N/$k.xml"
check "... A wrote the call (writes $(dstat a writes)), C read it (reads $(dstat c reads)), nothing refused" \
    [ "$(dstat a writes)" -ge 3 ] && [ "$(dstat c reads)" -ge 3 ] && [ "$(dstat c rejected)" = 0 ] &&
    [ "$(dstat c read_failures)" = 0 ] && [ "$(dstat a write_failures)" = 0 ] && [ "$(dstat c followed)" = 1 ]
kill "$WDLG" 2>/dev/null; wait "$WDLG" 2>/dev/null

# ---- 3. registered nowhere (From another domain: not challenged)
reject_scn() {
    sed -e "s/STATUS/$1/g" -e 's/caller@\[local_ip\]:\[local_port\]>;tag/caller@example.org>;tag/' \
        "$PEERS_DIR/sipp/uac-reject.xml" >"$WORK/reject-$1.xml"
    echo "$WORK/reject-$1.xml"
}
on c
check "3. dave (known on C, registered nowhere) via C -> 480" \
    sipp_scn r480 "$(reject_scn 480)" -s dave -key target "127.0.0.1:${SIP[c]}" -key mf 70 -p "$(free_port)"
check "... nobody (unknown) via C -> 404" \
    sipp_scn r404 "$(reject_scn 404)" -s nobody -key target "127.0.0.1:${SIP[c]}" -key mf 70 -p "$(free_port)"
hits=$(cstat c cache_hits)
check "... dave via C again -> 480, answered from C's cache" \
    sipp_scn r480x "$(reject_scn 480)" -s dave -key target "127.0.0.1:${SIP[c]}" -key mf 70 -p "$(free_port)"
check "... (cache_hits $hits -> $(cstat c cache_hits))" [ "$(cstat c cache_hits)" -gt "$hits" ]
inv=$(cstat c invalidations)
DAVE=$(free_port)
on b
check "... sipp: dave registers on node B" \
    sipp_scn reg-dave register.xml -s dave -au dave -ap davepw -key expires 300 -key cport "$DAVE" -p "$DAVE"
inv_more() { [ "$(cstat c invalidations)" -gt "$inv" ]; }
check "... C gets the change message" wait_for 20 inv_more
sed 's/caller@\[local_ip\]:\[local_port\]>;tag/caller@example.org>;tag/' "$PEERS_DIR/sipp/uac-call.xml" \
    >"$WORK/uac-call-foreign.xml"
sipp_spawn uas-dave 60 -sf "$PEERS_DIR/sipp/uas-call.xml" -s dave -p "$DAVE"
dave_pid=$SIPP_PID
wait_for 10 udp_bound "$DAVE"
on c
check "... a call to dave through C now reaches him on B (the cached 480 is gone)" \
    sipp_scn call-dave "$WORK/uac-call-foreign.xml" -s dave -p "$(free_port)"
check "... dave got the INVITE, ACK and BYE" wait "$dave_pid"
check "... through B after C" \
    bash -c "awk '/^INVITE sip:dave/,/^\$/' '$WORK/uas-dave.msg' | grep '^Via:' | head -2 | tr '\n' ' ' |
        grep -q '127.0.0.1:${SIP[b]};branch=z9hG4bKcP.*127.0.0.1:${SIP[c]};branch=z9hG4bKcP'"

# ---- 4. loop protection: ghost "registered" on A and on B (planted records)
exp=$(( $(date +%s%3N) + 120000 ))
rcli hset 't:loc:{ghost}' "sip:ghost@127.0.0.1:1" "{\"node\":\"node-a\",\"expires\":$exp}" \
    "sip:ghost@127.0.0.1:2" "{\"node\":\"node-b\",\"expires\":$exp}" >/dev/null
la=$(pstat a cluster_lookups); lb=$(pstat b cluster_lookups); pa=$(pstat a from_peers); pb=$(pstat b from_peers)
on c
check "4. ghost via C: forked to A and B, each 404 -> 404" \
    sipp_scn rghost "$(reject_scn 404)" -s ghost -key target "127.0.0.1:${SIP[c]}" -key mf 70 -p "$(free_port)"
check "... A and B each got it from a peer" [ "$(pstat a from_peers)" -gt "$pa" ] && [ "$(pstat b from_peers)" -gt "$pb" ]
check "... and neither asked the cluster (nothing forwarded on)" \
    [ "$(pstat a cluster_lookups)" = "$la" ] && [ "$(pstat b cluster_lookups)" = "$lb" ]

# ---- 4b. reg watchers on B see alice's bindings on A
R="/*[local-name()='reginfo']"
REG="$R/*[local-name()='registration']"
C="$REG/*[local-name()='contact']"
rstat() { on "$1"; api GET /stats | jq -r ".redis_reg.$2"; }
on b
sipp_scn wreg sub-reg.xml -s alice -au alice -ap alicepw -auth_uri "alice@127.0.0.1:${SIP[b]}" -key expires 600 \
    -p "$(free_port)" &
WREG=$!
N=$WORK/wreg.n
check "4b. a reg watcher of alice on B: the full NOTIFY" wait_for 30 got_notifies wreg 1
check "... full, registration active, one contact: sip:alice@127.0.0.1:$UAS (A's, from Redis), active" \
    test "$(xp $N/1.xml "$R/@state")/$(xp $N/1.xml "$REG/@state")/$(xp $N/1.xml "count($C)")/$(xp $N/1.xml "$C/*[local-name()='uri']")/$(xp $N/1.xml "$C/@state")" \
    = "full/active/1/sip:alice@127.0.0.1:$UAS/active"
RP=$(free_port)
on a
check "... alice registers a second contact on A (port $RP)" \
    sipp_scn reg-alice2 register.xml -s alice -au alice -ap alicepw -key expires 60 -key cport "$RP" -p "$(free_port)"
check "... a partial NOTIFY on B" wait_for 30 got_notifies wreg 2
check "... partial, version 1, registration active, the new contact active/registered" \
    test "$(xp $N/2.xml "$R/@state")/$(xp $N/2.xml "$R/@version")/$(xp $N/2.xml "$REG/@state")/$(xp $N/2.xml "count($C)")/$(xp $N/2.xml "$C/*[local-name()='uri']")/$(xp $N/2.xml "$C/@state")/$(xp $N/2.xml "$C/@event")" \
    = "partial/1/active/1/sip:alice@127.0.0.1:$RP/active/registered"
check "... with its expiry (50..60 s)" \
    bash -c "e=\$(xmllint --xpath \"string($C/@expires)\" $N/2.xml); [ \"\$e\" -ge 50 ] && [ \"\$e\" -le 60 ]"
on a
check "... alice unregisters it on A" \
    sipp_scn reg-alice3 register.xml -s alice -au alice -ap alicepw -key expires 0 -key cport "$RP" -p "$(free_port)"
check "... a partial NOTIFY on B" wait_for 30 got_notifies wreg 3
check "... version 2, the contact terminated/unregistered, the registration still active (A's first binding)" \
    test "$(xp $N/3.xml "$R/@version")/$(xp $N/3.xml "$REG/@state")/$(xp $N/3.xml "$C/*[local-name()='uri']")/$(xp $N/3.xml "$C/@state")/$(xp $N/3.xml "$C/@event")" \
    = "2/active/sip:alice@127.0.0.1:$RP/terminated/unregistered"
check "... the watcher unsubscribed and got the terminated NOTIFY (sipp ran the scenario)" wait "$WREG"
check "... B read Redis (reads $(rstat b reads)), told 2 changes, refused nothing, follows nothing now" \
    [ "$(rstat b reads)" -ge 3 ] && [ "$(rstat b changes)" = 2 ] && [ "$(rstat b rejected)" = 0 ] &&
    [ "$(rstat b read_failures)" = 0 ] && [ "$(rstat b followed)" = 0 ]
# 4d. a fetch on B, which follows nothing: read before it answers
on b
check "4d. a fetch (Expires: 0) of alice's reg on B, which follows nothing: 200 and one NOTIFY" \
    sipp_scn freg sub-fetch.xml -s alice -au alice -ap alicepw -auth_uri "alice@127.0.0.1:${SIP[b]}" \
    -key event reg -key accept application/reginfo+xml -p "$(free_port)"
FN=$WORK/freg.n
check "... its NOTIFY: terminated;reason=timeout" \
    bash -c "[ \"\$(python3 '$PEERS_DIR/notify_bodies.py' '$WORK/freg.msg' '$FN')\" = 1 ] &&
        grep -q '^Subscription-State: terminated;reason=timeout\$' '$FN/1.hdr'"
check "... full, registration active, alice's binding on A listed (read before the answer)" \
    test "$(xp $FN/1.xml "$R/@state")/$(xp $FN/1.xml "$REG/@state")/$(xp $FN/1.xml "count($C)")/$(xp $FN/1.xml "$C/*[local-name()='uri']")" \
    = "full/active/1/sip:alice@127.0.0.1:$UAS"
check "... B follows nothing after it" test "$(rstat b followed)" = 0

# ---- 4c. B dies: dave's contact there ends for his watcher on C
on c
sipp_scn wdave sub-reg-wait.xml -s dave -au dave -ap davepw -auth_uri "dave@127.0.0.1:${SIP[c]}" -key expires 600 \
    -p "$(free_port)" &
WDAVE=$!
N=$WORK/wdave.n
check "4c. a reg watcher of dave on C: the full NOTIFY lists his contact on B" wait_for 30 got_notifies wdave 1
check "... sip:dave@127.0.0.1:$DAVE active, the registration active" \
    test "$(xp $N/1.xml "$C/*[local-name()='uri']")/$(xp $N/1.xml "$C/@state")/$(xp $N/1.xml "$REG/@state")" \
    = "sip:dave@127.0.0.1:$DAVE/active/active"
kill -9 "$b_PID"
check "... B killed -9: a partial NOTIFY on C once B's bindings are reaped" wait_for 30 got_notifies wdave 2
check "... the contact terminated/deactivated (its node is gone), the registration terminated" \
    test "$(xp $N/2.xml "$R/@state")/$(xp $N/2.xml "$C/@state")/$(xp $N/2.xml "$C/@event")/$(xp $N/2.xml "$REG/@state")" \
    = "partial/terminated/deactivated/terminated"
check "... dave's key left Redis" test "$(rcli exists 't:loc:{dave}')" = 0
# Without [redis] events_stream the reaper publishes the event on its own bus.
dave_lost() { local n t=0; for n in a c; do on "$n"; t=$((t + $(events_json | jq \
    '[.events[] | select(.type == "user.offline" and .user == "dave" and .reason == "node-lost" and .lost_node == "node-b" and (has("node") | not))] | length'))); done; echo "$t"; }
some_lost() { [ "$(dave_lost)" -ge 1 ]; }
check "... one user.offline node-lost (lost_node node-b) for dave on A or C (no event stream: the reaper's bus)" \
    wait_for 10 some_lost
sleep 1 # three more heartbeats: a second reaper would have published by now
check "... exactly one across A and C ($(dave_lost))" test "$(dave_lost)" = 1
check "... the watcher unsubscribed (sipp ran the scenario)" wait "$WDAVE"

on c
curl -s "http://127.0.0.1:$API_PORT/metrics" >"$WORK/c.prom"
check "C's /metrics with the cluster on: well-formed, no untyped family (promcheck)" \
    python3 "$PEERS_DIR/promcheck.py" check "$WORK/c.prom" --no-untyped
check "... it carries the cluster and mirror counters" \
    grep -q "^cascade_cluster_lookups" "$WORK/c.prom" && grep -q "^cascade_redis_mirror_writes_ok" "$WORK/c.prom"

# ---- 5. Redis down
for p in "${REDIS_PORTS[@]}"; do kill -9 "${REDIS_PID[$p]}"; wait "${REDIS_PID[$p]}" 2>/dev/null || true; done
no_peers() { [ "$(cstat c nodes_live)" = 0 ]; }
check "5. Redis killed: C's peers drop out within 3 heartbeats" wait_for 20 no_peers
check "... alice via C -> 480 (the local answer)" \
    sipp_scn r480b "$(reject_scn 480)" -s alice -key target "127.0.0.1:${SIP[c]}" -key mf 70 -p "$(free_port)"
check "... dave via C -> 480" \
    sipp_scn r480c "$(reject_scn 480)" -s dave -key target "127.0.0.1:${SIP[c]}" -key mf 70 -p "$(free_port)"
check "... C counted its fallbacks" [ "$(pstat c cluster_fallbacks)" -ge 1 ]
check "... and its cache is off (the change channel is down)" [ "$(cstat c cache)" = false ]
sipp_spawn uas2 60 -sf "$PEERS_DIR/sipp/uas-call.xml" -s alice -p "$UAS"
uas_pid=$SIPP_PID
wait_for 10 udp_bound "$UAS"
on a
check "... a call to alice through A (her own node) still connects" \
    sipp_scn call2 "$WORK/uac-call-foreign.xml" -s alice -p "$(free_port)"
check "... alice got it" wait "$uas_pid"
on c
check "... a reg watcher of alice on C (3 s): the full NOTIFY and the terminated one at expiry" \
    sipp_scn wreg2 sub-reg-expire.xml -s alice -au alice -ap alicepw -auth_uri "alice@127.0.0.1:${SIP[c]}" \
    -key expires 3 -p "$(free_port)"
got_notifies wreg2 2 || true
check "... the first: full, registration init (C's own view; Redis does not answer)" \
    test "$(xp $WORK/wreg2.n/1.xml "$R/@state")/$(xp $WORK/wreg2.n/1.xml "$REG/@state")" = "full/init"
check "... C counted the read it could not make" [ $(( $(rstat c read_failures) + $(rstat c refused) )) -ge 1 ]
for n in a c; do
    eval "pid=\$${n}_PID"
    check "... node $n is still running" kill -0 "$pid"
done
check "... C logged the failed lookups (rate-limited)" grep -q "cluster: lookup of .* failed\|lookup of .* refused" "$WORK/c.log"

finish
