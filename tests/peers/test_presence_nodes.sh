#!/usr/bin/env bash
# Presence across nodes ([redis] mirror_presence, issue 16): three cascade
# nodes (a, b, c) on one 3-master Redis Cluster of Debian's redis-server,
# loopback ports chosen at run time; sipp as watcher (bob, on A) and as
# publisher (alice, on B and C). Bodies are read with xmllint XPath.
# Every node has presence_policy = allowlist and shares the allow lists
# ([redis] mirror_presence_allow):
#  0. bob's SUBSCRIBE to alice on B: 403 (no list anywhere); alice's list
#     [bob] set through A's API reaches B and C (their API, p:presallow),
#     and B then accepts bob's SUBSCRIBE; carol's list set through C
#     reaches A and B;
#  1. bob watches alice on A: closed (nothing published anywhere);
#  2. alice PUBLISHes on B: A's NOTIFY carries B's tuple; the record is in
#     p:pres:{alice} (node-b, a TTL);
#  3. modified on B (closed): A's NOTIFY follows;
#  4. published on C too: A's NOTIFY holds both tuples, C's (newer) first;
#  5. B's removed (Expires: 0): A's NOTIFY holds C's only;
#  6. bad records planted in the hash and announced, and a message naming
#     no presentity: skipped, counted and logged by A, no NOTIFY;
#  6b. subscription records: bob watches alice on C too (40 s); A's API
#     lists both subscriptions, from the cluster, with their nodes;
#  7. C's set again (same document) for 3 s, no NOTIFY, and C killed -9: A drops it at its expiry by
#     itself (derived: closed), and the key leaves Redis with its TTL;
#  7b. C's subscription taken over (subs_takeover.h): the survivor that
#     reaped C (A or B) sends bob a NOTIFY in C's dialog with its own
#     Contact, once it has read alice's state from Redis: that first NOTIFY
#     already carries it (C's publication while unexpired, else closed), and
#     C's publication never comes back after a NOTIFY without it (no
#     "closed" flash from a survivor's empty view); the record names that
#     node now; bob's refresh SUBSCRIBE to
#     that Contact is answered 200 with a NOTIFY, and he unsubscribes there;
#     two more records of C's planted before the kill (version 1, and one of
#     a TCP subscriber) are deleted by the survivor, not adopted;
#  8. bob unsubscribes: the terminated NOTIFY, his record gone from every
#     node's list; /metrics typed;
#  9. registrations on another node (cluster_route's lookups): bob watches
#     alice on A again, closed; she registers on B: open (derived); she
#     unregisters there: closed.
#  9b. alice watches her watchers on A (presence.winfo); bob watches alice
#     on A and on B (her winfo lists him); her list cleared through B's API:
#     A applies it (its API, the field gone from Redis); both his
#     subscriptions end at once (a NOTIFY terminated;reason=rejected with no
#     document, counted, logged), her winfo no longer lists him, and A
#     refuses his next SUBSCRIBE (403).
# 10. entity tags across nodes (C started again: alice's list, cleared while
#     it was away, dropped; carol's kept): bob watches carol on A and on B;
#     carol's list changed through A to one that still has bob: his
#     subscriptions stay (the NOTIFYs below reach them); carol PUBLISHes on A; refreshed through B with A's tag: 200, a
#     new tag, the record now node-b's (same pid), no NOTIFY; modified
#     through C with B's tag: one NOTIFY on A and on B; removed through A
#     with C's tag: one NOTIFY each (closed), the key gone; a tag of carol's
#     used for alice, and a tag nobody issued: 412; B killed -9 holding a
#     publication: refreshed through C (200, the state stays, no NOTIFY),
#     then modified through A: the next NOTIFY is that modify; a take A
#     missed (the same pid planted under another field, unannounced): A's
#     next write of it lets go instead of writing it twice.
# 11. bad allow-list records and field names planted in p:presallow and
#     announced: A refuses them (counted), its lists unchanged.
# 11b. bob watches carol on C; C restarted takes the subscription up from
#     its store; carol's list cleared through A: C ends it (its watcher
#     found by the From URI, the row keeps no digest name).
source "$(dirname "$0")/lib.sh"

for t in redis-server redis-cli jq python3 sipp xmllint; do
    command -v "$t" >/dev/null || { echo "SKIP: $t not installed (scripts/install-deps.sh)"; exit 77; }
done

check "a Redis Cluster forms (3 masters)" redis_cluster_start 3 0
rcli() { redis-cli -c -h 127.0.0.1 -p "${REDIS_PORTS[0]}" "$@" | tr -d '\r'; }
recs() { # recs AOR: the records of p:pres:{AOR} as [{field, node, exp, ...}]
    rcli hgetall "p:pres:{$1}" | paste - - | jq -R -s -c '[split("\n")[] | select(length > 0) | split("\t") | {field: .[0]} + (.[1] | fromjson)]'
}

API_TOKEN=prestoken
H=127.0.0.1
declare -A SIP API
for n in a b c; do
    SIP[$n]=$(free_port); API[$n]=$(free_port)
    node_ini "$n" "${SIP[$n]}" "${API[$n]}" 127.0.0.1 <<INI
[auth]
realm = cascade.test
[subscriptions]
min_expires = 2
presence_policy = allowlist
[redis]
mirror_presence = yes
mirror_presence_allow = yes
mirror_bindings = yes
cluster_route = yes
heartbeat_ms = 300
nodes = 127.0.0.1:${REDIS_PORTS[0]},127.0.0.1:${REDIS_PORTS[1]}
node_id = node-$n
key_prefix = p:
timeout_ms = 1000
INI
    start_cascade "$n" "$WORK/$n.ini"
done
on() { API_PORT=${API[$1]}; PORT=${SIP[$1]}; }
pstat() { on "$1"; api GET /stats | jq -r ".redis_presence.$2"; }
for n in a b c; do
    on "$n"
    ctl user add alice --password alicepw >/dev/null
    ctl user add bob --password bobpw >/dev/null
    ctl user add carol --password carolpw >/dev/null
done
subscribed() { [ "$(pstat "$1" subscribed)" = true ]; }
for n in a b c; do check "node $n subscribed to the presence change channel" wait_for 20 subscribed "$n"; done

# ---- 0. allow lists across nodes ([redis] mirror_presence_allow)
astat() { on "$1"; api GET /stats | jq -r ".redis_presence_allow.$2"; }
allow_of() { on "$1"; api GET "/users/$2/presence/allow" | jq -c .allow; }
allow_is() { [ "$(allow_of "$1" "$2")" = "$3" ]; }
asubscribed() { [ "$(astat "$1" subscribed)" = true ]; }
for n in a b c; do check "node $n subscribed to the allow-list change channel" wait_for 20 asubscribed "$n"; done
denied() { # denied NODE NAME USER: bob's SUBSCRIBE to USER on NODE is refused 403
    on "$1"
    sipp_scn "$2" sub-presence-denied.xml -s "$3" -key watcher bob -au bob -ap bobpw -auth_uri "$3@$H:$PORT" \
        -p "$(free_port)"
}
check "0. no allow list anywhere: bob's SUBSCRIBE to alice on B -> 403" denied b d0 alice
applied_b=$(astat b applied)
check "... alice's list [bob] set through A's API -> 200" \
    jq_ok "$(on a; api PUT /users/alice/presence/allow '{"allow":["bob"]}')" '.allow == ["bob"] and .policy == "allowlist"'
check "... B's API has it (applied from Redis)" wait_for 20 allow_is b alice '["bob"]'
check "... C's too" wait_for 20 allow_is c alice '["bob"]'
check "... p:presallow holds it (field alice)" test "$(rcli hget p:presallow alice)" = '{"allow":["bob"]}'
check "... B counted it applied, A wrote it" \
    bash -c "[ \"$(astat b applied)\" -gt $applied_b ] && [ \"$(astat a writes_ok)\" -ge 1 ] && [ \"$(astat b lists)\" = 1 ]"
on b
check "... bob's SUBSCRIBE to alice on B is accepted now (NOTIFY, unsubscribed)" \
    sipp_scn d1 sub-presence-once.xml -s alice -key watcher bob -au bob -ap bobpw -auth_uri "alice@$H:$PORT" \
    -key expires 60 -p "$(free_port)"
check "... carol's list [bob] set through C's API -> 200" \
    jq_ok "$(on c; api PUT /users/carol/presence/allow '{"allow":["bob"]}')" '.allow == ["bob"]'
check "... A's API has it" wait_for 20 allow_is a carol '["bob"]'
check "... B's too" wait_for 20 allow_is b carol '["bob"]'

# kill_tree PID: a backgrounded sipp_scn (its subshell, timeout and sipp)
kill_tree() {
    local c
    for c in $(pgrep -P "$1"); do pkill -P "$c" 2>/dev/null || true; kill "$c" 2>/dev/null || true; done
}
P="/*[local-name()='presence']"
T="$P/*[local-name()='tuple']"
BASIC="*[local-name()='status']/*[local-name()='basic']"
pidf() { # pidf TUPLE_ID BASIC
    printf '<?xml version="1.0" encoding="UTF-8"?><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:alice@%s"><tuple id="%s"><status><basic>%s</basic></status><note>%s</note></tuple></presence>' "$H" "$1" "$2" "$1"
}
publish() { # publish NODE NAME EXPIRES COND BODY
    on "$1"
    sipp_scn "$2" publish.xml -s alice -au alice -ap alicepw -auth_uri "alice@$H:$PORT" \
        -key event presence -key expires "$3" -key cond "$4" -key body "$5" -p "$(free_port)"
}
status_of() { grep -a '^SIP/2.0 ' "$WORK/$1.msg" | tail -1 | awk '{print $2}'; }
etag_of() { grep -a '^SIP-ETag: ' "$WORK/$1.msg" | tail -1 | awk '{print $2}' | tr -d '\r'; }
tuples() { # tuples N: "id=basic,..." of NOTIFY N, in document order
    local f=$WORK/w.n/$1.xml i n out=""
    n=$(xp "$f" "count($T)")
    for ((i = 1; i <= n; i++)); do out+="$(xp "$f" "$T[$i]/@id")=$(xp "$f" "$T[$i]/$BASIC"),"; done
    echo "$out"
}

# ---- 1. bob watches alice on A (six NOTIFYs, then unsubscribe)
on a
sipp_scn w sub-presence.xml -s alice -key watcher bob -au bob -ap bobpw -auth_uri "alice@$H:$PORT" \
    -key expires 600 -p "$(free_port)" &
W=$!
check "1. NOTIFY 1 reached bob on A" wait_for 30 got_notifies w 1
check "... closed: nothing published, no binding" test "$(tuples 1)" = "registration=closed,"
follows() { [ "$(pstat a followed)" = 1 ]; }
check "... A follows alice's publications" wait_for 10 follows

# ---- 2. published on B
check "2. alice PUBLISHes open on B -> 200" publish b p1 120 "Subject: initial" "$(pidf on-b open)"
check "... 200 with a SIP-ETag" bash -c "test '$(status_of p1)' = 200 && test -n '$(etag_of p1)'"
E1=$(etag_of p1)
check "... NOTIFY 2 on A" wait_for 30 got_notifies w 2
check "... carries B's tuple on-b, open" test "$(tuples 2)" = "on-b=open,"
check "... p:pres:{alice} holds node-b's record" \
    jq_ok "$(recs alice)" '[.[] | select(.field | test("^node-b/[0-9]+$"))] | length == 1 and .[0].node == "node-b" and (.[0].body | contains("on-b"))'
check "... with a TTL (the publication's expiry)" bash -c "t=\$(redis-cli -c -h 127.0.0.1 -p ${REDIS_PORTS[0]} pttl 'p:pres:{alice}'); [ \"\$t\" -gt 100000 ] && [ \"\$t\" -le 120000 ]"

# ---- 3. modified on B
check "3. alice modifies on B (closed) -> 200" publish b p2 120 "SIP-If-Match: $E1" "$(pidf on-b closed)"
E2=$(etag_of p2)
check "... NOTIFY 3 on A" wait_for 30 got_notifies w 3
check "... its document" test "$(tuples 3)" = "on-b=closed,"

# ---- 4. published on C too
check "4. alice PUBLISHes open on C -> 200" publish c p3 120 "Subject: initial" "$(pidf on-c open)"
E3=$(etag_of p3)
check "... NOTIFY 4 on A" wait_for 30 got_notifies w 4
check "... both tuples, C's (the newer) first" test "$(tuples 4)" = "on-c=open,on-b=closed,"

# ---- 5. B's removed
check "5. alice removes B's publication (Expires: 0) -> 200" publish b p4 0 "SIP-If-Match: $E2" ""
check "... 200" test "$(status_of p4)" = 200
check "... NOTIFY 5 on A" wait_for 30 got_notifies w 5
check "... C's tuple only" test "$(tuples 5)" = "on-c=open,"
check "... node-b's field gone from Redis" jq_ok "$(recs alice)" '[.[] | select(.node == "node-b")] | length == 0'

# ---- 6. bad records and messages
rej=$(pstat a rejected)
exp_ms=$(( $(date +%s) * 1000 + 4000 )) # short: they must not keep the key alive in 7
rcli hset 'p:pres:{alice}' evil/1 'not json' >/dev/null
rcli hset 'p:pres:{alice}' evil/2 "{\"node\":\"evil\",\"exp\":$exp_ms,\"set\":1,\"ver\":1,\"body\":\"<presence/>\"}" >/dev/null
rcli hset 'p:pres:{alice}' evil/3 "{\"node\":\"node-b\",\"exp\":$exp_ms,\"set\":1,\"ver\":1,\"body\":\"x\"}" >/dev/null
rcli publish p:pres-changes 'p:pres:{alice}' >/dev/null
rcli publish p:pres-changes 'junk' >/dev/null
skipped() { [ "$(pstat a rejected)" -ge $((rej + 4)) ]; }
check "6. three bad records and a message naming no presentity: A counts them rejected" wait_for 20 skipped
check "... and logs them" bash -c "grep -q 'redis presence: 3 records of alice skipped' '$WORK/a.log' &&
    grep -q 'redis presence: a change message that names no presentity' '$WORK/a.log'"
check "... no NOTIFY for them" not got_notifies w 6

# ---- 6b. subscription records across nodes
on c
sipp_scn w3 sub-presence-takeover.xml -s alice -key watcher bob -au bob -ap bobpw -auth_uri "alice@$H:$PORT" \
    -key expires 40 -p "$(free_port)" &
W3=$!
check "6b. bob watches alice on C too (40 s): NOTIFY 1" wait_for 30 got_notifies w3 1
subs_of() { on "$1"; api GET /users/alice/subscriptions; }
both_listed() {
    jq_ok "$(subs_of a)" '.scope == "cluster" and ([.subscriptions[] | select(.event == "presence" and
        .watcher == "sip:bob@127.0.0.1" and .node_alive == true and .expires_in > 0)] | map(.node) | sort) == ["node-a", "node-c"]'
}
check "... A's API lists both subscriptions (nodes a and c, alive), read from the cluster" wait_for 10 both_listed
check "... B's API the same" jq_ok "$(subs_of b)" '[.subscriptions[].node] | sort == ["node-a", "node-c"]'
check "... an unknown user: 404" jq_ok "$(on a; api GET /users/nobody/subscriptions)" '.error == "not-found"'

# ---- 7. C's refreshed to 3 s, C killed: A drops it at its expiry
# (publish.xml always sends a body: the same document again, which changes
# nothing a watcher sees, stands for a refresh)
check "7. alice sets C's publication again, same document, for 3 s -> 200" \
    publish c p5 3 "SIP-If-Match: $E3" "$(pidf on-c open)"
check "... 200, Expires 3" bash -c "test '$(status_of p5)' = 200 && grep -aq '^Expires: 3' '$WORK/p5.msg'"
check "... the write pruned the record that is not JSON" wait_for 10 bash -c "[ \"\$(redis-cli -c -h 127.0.0.1 -p ${REDIS_PORTS[0]} hexists 'p:pres:{alice}' evil/1)\" = 0 ]"
cindex() { local p; for p in "${REDIS_PORTS[@]}"; do redis-cli -h 127.0.0.1 -p "$p" --scan --pattern 'p:node-subs:{node-c}:*'; done; }
cindex_gone() { [ -z "$(cindex)" ]; }
CIDX=$(cindex | head -1)
check "... C's run indexes alice (p:node-subs:{node-c}:<run>)" test "$(rcli sismember "$CIDX" alice)" = 1
CINC=${CIDX##*:}
pexp=$(( $(date +%s) * 1000 + 60000 ))
# two records of C's a survivor cannot continue: an old one (version 1), and
# one whose subscriber came over TCP (its connection died with C)
rcli hset 'p:subs:{alice}' node-c/old1 "{\"node\":\"node-c\",\"watcher\":\"sip:x@h\",\"event\":\"presence\",\"exp\":$pexp}" >/dev/null
rcli hset 'p:subs:{alice}' node-c/tcp1 "{\"v\":2,\"node\":\"node-c\",\"inc\":\"$CINC\",\"watcher\":\"sip:x@h\",\"event\":\"presence\",\"exp\":$pexp,\"cid\":\"c1\",\"ftag\":\"f1\",\"target\":\"sip:x@127.0.0.1:9\",\"routes\":\"\",\"accept\":\"application/pidf+xml\",\"tp\":\"tcp\",\"remote\":\"127.0.0.1:9\",\"cseq\":1,\"rcseq\":1,\"ver\":1}" >/dev/null
kill -9 "$c_PID"
check "... C killed -9; NOTIFY 6 on A after the expiry" wait_for 30 got_notifies w 6
check "... derived again: closed" test "$(tuples 6)" = "registration=closed,"
check "... A's log says the other node's publication expired" grep -Eq "presence: the publication node-c/[0-9]+ of alice \(another node's\) expired" "$WORK/a.log"
check "... the key left Redis with its TTL" wait_for 20 bash -c "[ \"\$(redis-cli -c -h 127.0.0.1 -p ${REDIS_PORTS[0]} exists 'p:pres:{alice}')\" = 0 ]"
# the takeover of C's subscription (subs_takeover.h): the survivor that
# reaped C (A or B: one of them) sends NOTIFY 2 with its own Contact, and
# w3's refresh goes there (sub-presence-takeover.xml)
# notifies_not_from PORT: the NOTIFYs w3 received whose Contact is not on
# PORT, each as its header block, separated by "--"
notifies_not_from() {
    python3 - "$WORK/w3.msg" "$1" <<'PY'
import re, sys
text = open(sys.argv[1], encoding="latin-1").read().replace("\r", "")
seen = set()
for m in re.finditer(r"^NOTIFY .*?\n\n", text, re.S | re.M):
    c = re.search(r"^Contact: <sip:[^@>]*@[0-9.]+:([0-9]+)>", m.group(0), re.M)
    k = re.search(r"^CSeq: .*$", m.group(0), re.M)
    if c and c.group(1) != sys.argv[2] and k and k.group(0) not in seen:  # a retransmission once
        seen.add(k.group(0))
        print(m.group(0) + "--")
PY
}
from_survivor() { [ -n "$(notifies_not_from "${SIP[c]}")" ]; }
check "7b. a NOTIFY to C's watcher from a survivor" wait_for 40 from_survivor
# the first of them (awk reads to the end: an early exit would break the
# pipe under the Python writer when there are several)
NOT2=$(notifies_not_from "${SIP[c]}" | awk '!done { print } /^--$/ { done = 1 }')
nport=$(printf '%s\n' "$NOT2" | grep '^Contact:' | head -1 | sed -E 's/.*@[0-9.]+:([0-9]+).*/\1/')
ADOPTER="" OTHER=""
for n in a b; do [ "$nport" = "${SIP[$n]}" ] && ADOPTER=$n; done
[ "$ADOPTER" = a ] && OTHER=b || OTHER=a
check "... its Contact is the survivor's (A's or B's SIP port)" test -n "$ADOPTER"
# (grep reads the file itself: with -m1 it stops early, and a writer before it
# in the pipe could die of SIGPIPE, ending the script under pipefail)
CID3=$(grep -m1 '^Call-ID:' "$WORK/w3.msg" | tr -d '\r')
TAG3=$(printf '%s\n' "$NOT2" | grep '^From:' | sed -E 's/.*tag=([^;>]+).*/\1/')
check "... in C's dialog: the SUBSCRIBE's Call-ID" bash -c 'printf "%s\n" "$1" | grep -qxF "$2"' _ "$NOT2" "$CID3"
check "... the survivor counted it adopted, the other survivor nothing" \
    bash -c "[ \"$(pstat "$ADOPTER" subs_adopted)\" = 1 ] && [ \"$(pstat "$OTHER" subs_adopted)\" = 0 ]"
subrec() { rcli hgetall 'p:subs:{alice}' | paste - - | jq -R -s -c '[split("\n")[] | select(length > 0) | split("\t") | {field: .[0]} + (.[1] | fromjson)]'; }
adopted_rec() { jq_ok "$(subrec)" "([.[] | select(.field == \"node-c/$TAG3\")] | length) == 0 and ([.[] | select(.field == \"node-$ADOPTER/$TAG3\" and .node == \"node-$ADOPTER\" and .v == 2 and .tp == \"udp\")] | length) == 1"; }
survivor_notifies() { notifies_not_from "${SIP[c]}" | grep -c '^--$'; }
refreshed() { tr -d '\r' <"$WORK/w3.msg" | grep -A12 '^SIP/2.0 200' | grep -q '^CSeq: 3 SUBSCRIBE'; }
check "... the watcher's refresh SUBSCRIBE to that Contact answered 200" wait_for 30 refreshed
check "... the record (C's To tag $TAG3) names node-$ADOPTER now (v2, udp), C's field gone" adopted_rec
check "... alice PUBLISHes on node-$ADOPTER -> 200" publish "$ADOPTER" p7b 60 "Subject: initial" "$(pidf mark7b open)"
E7B=$(etag_of p7b)
check "... the next NOTIFY in the dialog carries it; then the watcher unsubscribed there (sipp ran the scenario)" \
    wait "$W3"
check "... at least four NOTIFYs from node-$ADOPTER: the takeover's, the refresh's, the change's, the terminated one" \
    test "$(survivor_notifies)" -ge 4
check "... CSeq going up" bash -c '
    prev=0; for c in $(printf "%s\n" "$1" | grep "^CSeq:" | awk "{print \$2}"); do [ "$c" -gt "$prev" ] || exit 1; prev=$c; done' \
    _ "$(notifies_not_from "${SIP[c]}")"
check "... the last one terminated" bash -c 'printf "%s\n" "$1" | grep "^Subscription-State:" | tail -1 | grep -q terminated' \
    _ "$(notifies_not_from "${SIP[c]}")"
n3=$(python3 "$PEERS_DIR/notify_bodies.py" "$WORK/w3.msg" "$WORK/w3.n")
check "... the one before carries the publication" test "$(xp "$WORK/w3.n/$((n3 - 1)).xml" "$T/@id")" = mark7b
# survivor_states: "id=basic,..." of each NOTIFY w3 got from the survivor, in order
survivor_states() {
    local i f j nt out
    for ((i = 1; i <= n3; i++)); do
        grep -Eq "^Contact: <sip:[^@>]*@[0-9.]+:${SIP[c]}>" "$WORK/w3.n/$i.hdr" && continue
        f=$WORK/w3.n/$i.xml out=""
        nt=$(xp "$f" "count($T)")
        for ((j = 1; j <= nt; j++)); do out+="$(xp "$f" "$T[$j]/@id")=$(xp "$f" "$T[$j]/$BASIC"),"; done
        echo "$out"
    done
}
SURV=$(survivor_states)
echo "     (node-$ADOPTER's NOTIFYs to C's watcher: $(printf '%s' "$SURV" | tr '\n' ' '))"
# The survivor's first NOTIFY waits for its first read of alice from Redis
# (when it did not follow her yet): C's publication if the read came before
# its expiry, else closed. What follows may legitimately differ (RFC 6665
# lets a notifier send each change): C's publication expiring there.
check "... the survivor's first NOTIFY carries alice's state as read from Redis (C's on-c, or closed once expired)" \
    bash -c '[ "$1" = "on-c=open," ] || [ "$1" = "registration=closed," ]' _ "$(printf '%s\n' "$SURV" | head -1)"
check "... and no view without C's publication came before one with it (it can only expire: C is dead)" \
    bash -c 'printf "%s\n" "$1" | awk "/on-c=/ { if (gone) bad = 1; next } { gone = 1 } END { exit bad }"' _ "$SURV"
check "... alice removes it -> 200" publish "$ADOPTER" p7c 0 "SIP-If-Match: $E7B" ""
check "... the old and the TCP record deleted, not adopted (node-$ADOPTER counted 2 dropped)" \
    bash -c "[ \"$(pstat "$ADOPTER" subs_dropped)\" = 2 ] && [ \"$(rcli hexists 'p:subs:{alice}' node-c/old1)$(rcli hexists 'p:subs:{alice}' node-c/tcp1)\" = 00 ]"
check "... C's listing on A: no node-c subscription left" \
    jq_ok "$(subs_of a)" '.scope == "cluster" and ([.subscriptions[] | select(.node == "node-c")] | length) == 0'
check "... node-$ADOPTER logged the takeover" grep -q 'subs: presence subscription of sip:bob@127.0.0.1 to alice taken over' "$WORK/$ADOPTER.log"
check "... C's index of its run gone from Redis (walked)" wait_for 10 cindex_gone

# ---- 8. the end
check "8. bob unsubscribed and got the terminated NOTIFY (sipp ran the scenario)" wait "$W"
none_left() { jq_ok "$(subs_of b)" '.subscriptions == []'; }
check "... no subscription of alice's left in B's list (A's record removed)" wait_for 10 none_left
curl -s "http://127.0.0.1:${API[a]}/metrics" >"$WORK/a.prom"
check "... /metrics: redis_presence typed (promcheck, no untyped family)" \
    python3 "$PEERS_DIR/promcheck.py" check "$WORK/a.prom" --no-untyped
check "... cascade_redis_presence_fetches_total counted" grep -q '^cascade_redis_presence_fetches_total [1-9]' "$WORK/a.prom"
check "... B wrote its changes (writes_ok >= 3)" [ "$(pstat b writes_ok)" -ge 3 ]

# ---- 9. registered on another node
register() { # register NODE NAME EXPIRES CPORT
    on "$1"
    sipp_scn "$2" register.xml -s alice -au alice -ap alicepw -key expires "$3" -key cport "$4" -p "$(free_port)"
}
on a
sipp_scn w2 sub-presence-3.xml -s alice -key watcher bob -au bob -ap bobpw -auth_uri "alice@$H:$PORT" \
    -key expires 600 -p "$(free_port)" &
W2=$!
tuples2() { local f=$WORK/w2.n/$1.xml; echo "$(xp "$f" "$T/@id")=$(xp "$f" "$T/$BASIC")"; }
check "9. bob watches alice on A again: NOTIFY 1, closed" wait_for 30 got_notifies w2 1
check "... closed" test "$(tuples2 1)" = "registration=closed"
check "... alice registers on B" register b r1 60 5097
check "... NOTIFY 2 on A (B's binding, through the cluster's lookup)" wait_for 30 got_notifies w2 2
check "... derived: open" test "$(tuples2 2)" = "registration=open"
check "... alice unregisters on B" register b r2 0 5097
check "... NOTIFY 3 on A" wait_for 30 got_notifies w2 3
check "... closed again" test "$(tuples2 3)" = "registration=closed"
check "... bob unsubscribed (sipp ran the scenario)" wait "$W2"
check "... no lookup failed on A" [ "$(pstat a lookup_failures)" = 0 ]

# ---- 9b. a list cleared through another node: the subscriptions it no
# longer allows end at once, on B (its API) and on A (applied from Redis)
sstat() { on "$1"; api GET /stats | jq -r ".subscriptions.$2"; }
WW="count(//*[local-name()='watcher'])"
on a
sipp_scn wi sub-winfo.xml -s alice -key watcher alice -au alice -ap alicepw -auth_uri "alice@$H:$PORT" \
    -key expires 600 -p "$(free_port)" &
WI=$!
check "9b. alice watches her watchers on A (presence.winfo): NOTIFY 1, none" wait_for 30 got_notifies wi 1
check "... no watcher" test "$(xp "$WORK/wi.n/1.xml" "$WW")" = 0
for n in a b; do
    on "$n"
    sipp_scn "we$n" sub-presence-ended.xml -s alice -key watcher bob -au bob -ap bobpw -auth_uri "alice@$H:$PORT" \
        -key expires 600 -p "$(free_port)" &
    eval "WE$n=\$!"
done
for n in a b; do check "... bob watches alice on $n: NOTIFY 1" wait_for 30 got_notifies "we$n" 1; done
check "... alice's winfo NOTIFY 2 lists bob (A's watcher)" wait_for 30 got_notifies wi 2
check "... one watcher, bob, active" \
    test "$(xp "$WORK/wi.n/2.xml" "$WW")/$(xp "$WORK/wi.n/2.xml" "string(//*[local-name()='watcher']/@status)")" = 1/active
check "... alice's list cleared through B's API -> 200" \
    jq_ok "$(on b; api PUT /users/alice/presence/allow '{"allow":[]}')" '.allow == []'
check "... A's API has it cleared" wait_for 20 allow_is a alice '[]'
check "... the field left p:presallow" test "$(rcli hexists p:presallow alice)" = 0
for n in a b; do
    check "... bob's subscription on $n ended: NOTIFY 2" wait_for 20 got_notifies "we$n" 2
    check "... terminated;reason=rejected, without a document" \
        bash -c "grep -q '^Subscription-State: terminated;reason=rejected\$' '$WORK/we$n.n/2.hdr' &&
            ! grep -qi '^Content-Type:' '$WORK/we$n.n/2.hdr' && grep -qi '^Content-Length: 0\$' '$WORK/we$n.n/2.hdr'"
    eval "wpid=\$WE$n"
    check "... sipp ran its scenario (no more NOTIFY)" wait "$wpid"
    check "... counted on $n (subscriptions.ended_rejected)" test "$(sstat "$n" ended_rejected)" = 1
done
check "... logged on A" grep -q 'subs: presence subscription of .* to alice ended: no longer in its allow list' "$WORK/a.log"
check "... alice's winfo NOTIFY 3: bob is no longer listed" wait_for 20 got_notifies wi 3
check "... no watcher" test "$(xp "$WORK/wi.n/3.xml" "$WW")" = 0
check "... alice unsubscribed her winfo (sipp ran the scenario)" wait "$WI"
check "... bob's SUBSCRIBE to alice on A -> 403 (as after a local clear)" denied a d2 alice

# ---- 10. entity tags across nodes
check "10. node C started again" start_cascade c "$WORK/c.ini"
check "... subscribed to the change channel" wait_for 20 subscribed c
check "... alice's list, cleared while C was away, dropped by C's load" wait_for 20 allow_is c alice '[]'
check "... carol's kept" allow_is c carol '["bob"]'
check "... C's log: its load removed one list (C had stored alice's)" \
    grep -Eq 'redis presence allow: loaded .* 1 removed here\)' "$WORK/c.log"
cpidf() { # cpidf TUPLE_ID BASIC
    printf '<?xml version="1.0" encoding="UTF-8"?><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:carol@%s"><tuple id="%s"><status><basic>%s</basic></status></tuple></presence>' "$H" "$1" "$2"
}
cpublish() { # cpublish NODE NAME EXPIRES COND BODY ("": none, a refresh or a removal)
    on "$1"
    local sf=publish.xml
    [ -n "$5" ] || sf=publish-refresh.xml
    sipp_scn "$2" "$sf" -s carol -au carol -ap carolpw -auth_uri "carol@$H:$PORT" \
        -key event presence -key expires "$3" -key cond "$4" -key body "$5" -p "$(free_port)"
}
ctuples() { local f=$WORK/$1.n/$2.xml i n out=""
    n=$(xp "$f" "count($T)")
    for ((i = 1; i <= n; i++)); do out+="$(xp "$f" "$T[$i]/@id")=$(xp "$f" "$T[$i]/$BASIC"),"; done
    echo "$out"
}
crec() { recs carol; }
for n in a b; do
    on "$n"
    sipp_scn "w$n" sub-presence.xml -s carol -key watcher bob -au bob -ap bobpw -auth_uri "carol@$H:$PORT" \
        -key expires 600 -p "$(free_port)" &
    eval "W$n=\$!"
done
for n in a b; do
    check "... bob watches carol on $n: NOTIFY 1, closed" wait_for 30 got_notifies "w$n" 1
    check "... closed" test "$(ctuples "w$n" 1)" = "registration=closed,"
done
check "... carol's list [erin, bob] set through A's API -> 200" \
    jq_ok "$(on a; api PUT /users/carol/presence/allow '{"allow":["erin","bob"]}')" '.allow == ["erin","bob"]'
check "... B's API has it" wait_for 20 allow_is b carol '["erin","bob"]'
check "... still allowed: bob's subscriptions to carol on A and B stay (their NOTIFYs below)" \
    test "$(sstat a ended_rejected)/$(sstat b ended_rejected)" = 1/1
check "10a. carol PUBLISHes open on A -> 200 with a tag" cpublish a q1 120 "Subject: initial" "$(cpidf c1 open)"
Q1=$(etag_of q1)
check "... 200, a tag" bash -c "test '$(status_of q1)' = 200 && test -n '$Q1'"
for n in a b; do
    check "... NOTIFY 2 on $n: c1 open" wait_for 30 got_notifies "w$n" 2
    check "... its document" test "$(ctuples "w$n" 2)" = "c1=open,"
done
PID1=$(crec | jq -r '.[0].pid')
check "... the record is node-a's, with a pid and a tag hash (not the tag)" \
    jq_ok "$(crec)" "length == 1 and (.[0].field | startswith(\"node-a/\")) and (.[0].pid | test(\"^[0-9a-f]{32}\$\")) and (.[0].tag | test(\"^[0-9a-f]{64}\$\")) and .[0].tag != \"$Q1\""

check "10b. refreshed through B with A's tag (no body) -> 200" cpublish b q2 120 "SIP-If-Match: $Q1" ""
Q2=$(etag_of q2)
check "... 200, a new tag, Expires 120" bash -c "test '$(status_of q2)' = 200 && test -n '$Q2' && test '$Q2' != '$Q1' && grep -aq '^Expires: 120' '$WORK/q2.msg'"
check "... the record is node-b's now, the same pid, node-a's field gone" \
    jq_ok "$(crec)" "length == 1 and (.[0].field | startswith(\"node-b/\")) and .[0].pid == \"$PID1\" and (.[0].body | contains(\"c1\"))"
given_up() { [ "$(pstat a given_up)" -ge 1 ]; }
check "... A was told its publication is B's now" wait_for 10 given_up
check "... B took it (taken counted)" [ "$(pstat b taken)" -ge 1 ]
check "... A's tag no longer works on A: 412" cpublish a q2x 120 "SIP-If-Match: $Q1" ""
check "... 412" test "$(status_of q2x)" = 412

check "10c. modified through C with B's tag (closed) -> 200" cpublish c q3 120 "SIP-If-Match: $Q2" "$(cpidf c1 closed)"
Q3=$(etag_of q3)
check "... 200, a new tag" bash -c "test '$(status_of q3)' = 200 && test -n '$Q3' && test '$Q3' != '$Q2'"
for n in a b; do
    check "... NOTIFY 3 on $n (none for the refresh): c1 closed" wait_for 30 got_notifies "w$n" 3
    check "... its document, one tuple" test "$(ctuples "w$n" 3)" = "c1=closed,"
done
check "... the record is node-c's, the same pid" \
    jq_ok "$(crec)" "length == 1 and (.[0].field | startswith(\"node-c/\")) and .[0].pid == \"$PID1\""

check "10d. removed through A with C's tag (Expires: 0) -> 200" cpublish a q4 0 "SIP-If-Match: $Q3" ""
check "... 200, no tag" bash -c "test '$(status_of q4)' = 200 && test -z '$(etag_of q4)'"
for n in a b; do
    check "... NOTIFY 4 on $n: closed (derived)" wait_for 30 got_notifies "w$n" 4
    check "... its document" test "$(ctuples "w$n" 4)" = "registration=closed,"
done
check "... the key left Redis" test "$(rcli exists 'p:pres:{carol}')" = 0
check "... C's tag is gone too: 412 through B" cpublish b q4x 120 "SIP-If-Match: $Q3" ""
check "... 412" test "$(status_of q4x)" = 412

check "10e. carol PUBLISHes open on B -> 200" cpublish b q5 120 "Subject: initial" "$(cpidf c5 open)"
Q5=$(etag_of q5)
for n in a b; do
    check "... NOTIFY 5 on $n is it (the removal was notified once)" wait_for 30 got_notifies "w$n" 5
    check "... its document" test "$(ctuples "w$n" 5)" = "c5=open,"
done
on c
check "... carol's tag used for alice through C: 412" sipp_scn q6 publish-refresh.xml -s alice -au alice -ap alicepw \
    -auth_uri "alice@$H:$PORT" -key event presence -key expires 120 -key cond "SIP-If-Match: $Q5" -p "$(free_port)"
check "... 412" test "$(status_of q6)" = 412
check "... a tag nobody issued, through A: 412" cpublish a q7 120 "SIP-If-Match: AAAAAAAAAAAAAAAAAAAAAAAA" ""
check "... 412" test "$(status_of q7)" = 412
check "... carol's record untouched (node-b's)" jq_ok "$(crec)" 'length == 1 and (.[0].field | startswith("node-b/"))'

adopted0=$(( $(pstat a subs_adopted) + $(pstat c subs_adopted) ))
kill -9 "$b_PID"
check "10f. B killed -9; carol refreshes through C with B's tag -> 200" cpublish c q8 120 "SIP-If-Match: $Q5" ""
Q8=$(etag_of q8)
check "... 200, a new tag" bash -c "test '$(status_of q8)' = 200 && test -n '$Q8' && test '$Q8' != '$Q5'"
check "... the record is node-c's, its document kept" \
    jq_ok "$(crec)" 'length == 1 and (.[0].field | startswith("node-c/")) and (.[0].body | contains("c5"))'
check "10g. modified through A with C's tag -> 200" cpublish a q9 120 "SIP-If-Match: $Q8" "$(cpidf c5 closed)"
check "... 200" test "$(status_of q9)" = 200
check "... NOTIFY 6 on A is that modify (the state stayed, the refresh notified nobody)" wait_for 30 got_notifies wa 6
check "... its document" test "$(ctuples wa 6)" = "c5=closed,"
check "... bob unsubscribed on A (sipp ran the scenario)" wait "$Wa"
b_adopted() { [ $(( $(pstat a subs_adopted) + $(pstat c subs_adopted) )) -gt "$adopted0" ]; }
check "... B's watcher of carol (UDP) taken over by A or C" wait_for 30 b_adopted
kill_tree "$Wb" # its node is dead
wait "$Wb" 2>/dev/null || true
# a take whose change message A missed: A's next write of it finds its pid
# under another field and lets go instead of writing it twice
check "10h. carol PUBLISHes on A -> 200" cpublish a q10 120 "Subject: initial" "$(cpidf c10 open)"
Q10=$(etag_of q10)
tag10=$(printf 'carol\n%s' "$Q10" | sha256sum | cut -c1-64) # the record's tag: SHA-256 of "<aor>\n<tag>"
rec10=$(crec | jq -c --arg t "$tag10" '.[] | select(.tag == $t) | del(.field)')
check "... its record read (found by the hash of its tag)" test -n "$rec10"
pid10=$(printf '%s' "$rec10" | jq -r .pid)
rcli hset 'p:pres:{carol}' node-z/1 "$(printf '%s' "$rec10" | jq -c '.node = "node-z" | .tag = ("0" * 64)')" >/dev/null
gu=$(pstat a given_up)
check "... the same pid planted under node-z/1, unannounced; refreshed on A -> 200" \
    cpublish a q11 120 "SIP-If-Match: $Q10" ""
check "... 200" test "$(status_of q11)" = 200
let_go() { [ "$(pstat a given_up)" -gt "$gu" ]; }
check "... A's write found it under another field and let go" wait_for 10 let_go
check "... logged" grep -q "redis presence: the publication node-a/[0-9]* of carol is another node's now: let go" "$WORK/a.log"
check "... not written twice: under node-z/1 only" \
    jq_ok "$(crec)" "[.[] | select(.pid == \"$pid10\") | .field] == [\"node-z/1\"]"
check "... no take failed on A or C" bash -c "[ \"$(pstat a take_failures)\" = 0 ] && [ \"$(pstat c take_failures)\" = 0 ]"

# ---- 11. bad allow-list records and names
check "11. carol's list [bob, erin] set through C -> 200" \
    jq_ok "$(on c; api PUT /users/carol/presence/allow '{"allow":["bob","erin"]}')" '.allow == ["bob","erin"]'
check "... A has it" wait_for 20 allow_is a carol '["bob","erin"]'
arej=$(astat a rejected)
rcli hset p:presallow carol 'not json' >/dev/null
rcli publish p:presallow-changes carol >/dev/null
rcli hset p:presallow carol '{"allow":["a,b"]}' >/dev/null
rcli publish p:presallow-changes carol >/dev/null
rcli hset p:presallow 'x#y' '{"allow":["bob"]}' >/dev/null
rcli publish p:presallow-changes 'x#y' >/dev/null
refused() { [ "$(astat a rejected)" -ge $((arej + 3)) ]; }
check "... two bad records of carol's and a field name with '#' announced: A refuses them (counted)" wait_for 20 refused
check "... and logs them" grep -q 'redis presence allow: refused the record of "carol"' "$WORK/a.log"
check "... A's list of carol's unchanged" allow_is a carol '["bob","erin"]'
curl -s "http://127.0.0.1:${API[a]}/metrics" >"$WORK/a2.prom"
check "... /metrics: redis_presence_allow typed (no untyped family)" \
    bash -c "python3 '$PEERS_DIR/promcheck.py' check '$WORK/a2.prom' --no-untyped && grep -q '^cascade_redis_presence_allow_applied_total [1-9]' '$WORK/a2.prom'"

# ---- 11b. a subscription taken up from the store (its row keeps no digest
# name: the watcher is the user of its From URI) ends as well. A watcher that
# answers every NOTIFY (C sends one more after its restart: the other nodes'
# publications read again), killed once done.
sed -e '/<recv request="NOTIFY" timeout="60000"\/>/,$d' "$PEERS_DIR/sipp/sub-presence-ended.xml" >"$WORK/sub-presence-loop.xml"
cat >>"$WORK/sub-presence-loop.xml" <<'XML'
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
on c
sipp_spawn wr 120 "127.0.0.1:$PORT" -sf "$WORK/sub-presence-loop.xml" \
    -s carol -key watcher bob -au bob -ap bobpw -auth_uri "carol@$H:$PORT" -key expires 600 -p "$(free_port)"
WR=$SIPP_PID
check "11b. bob watches carol on C: NOTIFY 1" wait_for 30 got_notifies wr 1
kill "$c_PID"; wait "$c_PID" 2>/dev/null || true
check "... C stopped and started again" start_cascade c "$WORK/c.ini"
check "... it took the subscription up from its store" grep -Eq 'subs: [1-9][0-9]* subscriptions taken up from the store' "$WORK/c.log"
check "... subscribed to the allow-list change channel" wait_for 20 asubscribed c
check "... carol's list cleared through A's API -> 200" \
    jq_ok "$(on a; api PUT /users/carol/presence/allow '{"allow":[]}')" '.allow == []'
wr_ended() {
    local k
    k=$(python3 "$PEERS_DIR/notify_bodies.py" "$WORK/wr.msg" "$WORK/wr.n" 2>/dev/null) || return 1
    grep -q '^Subscription-State: terminated;reason=rejected$' "$WORK/wr.n/$k.hdr"
}
check "... C (applied from Redis) ends it: its last NOTIFY terminated;reason=rejected" wait_for 20 wr_ended
# (at least 1: C may also hold bob's subscription to carol that B held in
# step 10, taken over when B was killed there; it ends the same way)
check "... counted on C" test "$(sstat c ended_rejected)" -ge 1
kill "$WR" 2>/dev/null; wait "$WR" 2>/dev/null

finish
