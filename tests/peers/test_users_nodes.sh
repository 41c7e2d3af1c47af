#!/usr/bin/env bash
# SIP users shared between nodes ([redis] mirror_users, issue 16): three
# cascade nodes (a, b, c) on one 3-master Redis Cluster of Debian's
# redis-server, loopback ports chosen at run time; a user is provisioned on
# one node's API only, and a real REGISTER with digest (tests/peers/sipreg.py)
# is answered by the others.
#  1. bob, a node's own user from before the mirror was on (in its SQLite),
#     is seeded into the empty hash and known to the others;
#  2. alice created through A: B and C answer her REGISTER 200;
#  3. her password changed through C: the old one refused on A and B (401),
#     the new one takes 200 on A, B and C;
#  4. deleted through B: refused everywhere (each node's table lost her),
#     and her binding on A is gone with her;
#  5. node D started after all this (empty SQLite) knows carol (made on A)
#     and not alice; node A restarted knows a user made on C while it was
#     down, and has lost one deleted meanwhile (the reload at start);
#  5b. a user written into Redis unannounced (a missed announcement) is
#     known after the change channel is cut and comes back (reload);
#  6. Redis killed: no node crashes, digest checks still answered from the
#     local table.
# With sipp, message-summary across nodes ([redis] mirror_mwi, RFC 3842):
#  1b. bob's MWI watcher (sipp) subscribed on B (no voicemail source of its
#      own) gets "Messages-Waiting: no", then the summary the voicemail
#      source sent to A, then the terminated NOTIFY: three NOTIFYs, no more;
#      a record stamped before the one held (written straight into Redis and
#      announced) is not applied by any node; with a later-stamped record in
#      Redis (written unannounced), A's next summary is not taken by Redis
#      (the stamped write) and every node applies Redis's record; the one
#      after that is stamped above it and taken.
source "$(dirname "$0")/lib.sh"

for t in redis-server redis-cli jq python3; do
    command -v "$t" >/dev/null || { echo "SKIP: $t not installed (scripts/install-deps.sh)"; exit 77; }
done

check "a Redis Cluster forms (3 masters)" redis_cluster_start 3 0
rcli() { redis-cli -c -h 127.0.0.1 -p "${REDIS_PORTS[0]}" "$@" | tr -d '\r'; }

API_TOKEN=userstoken
declare -A SIP API
mk_ini() { # mk_ini NODE MIRROR(yes|no)
    node_ini "$1" "${SIP[$1]}" "${API[$1]}" users.test <<INI
[auth]
max_failures = 100
$([ "$1" = a ] && printf '[subscriptions]\nvoicemail_source = 127.0.0.1:%s\n' "$VM")
[redis]
mirror_users = $2
mirror_mwi = $2
nodes = 127.0.0.1:${REDIS_PORTS[0]},127.0.0.1:${REDIS_PORTS[1]}
node_id = node-$1
key_prefix = u:
timeout_ms = 1000
INI
}
on() { API_PORT=${API[$1]}; PORT=${SIP[$1]}; }
reg() { # reg NODE USER PASSWORD: the final status of one REGISTER with digest
    python3 "$PEERS_DIR/sipreg.py" --server "127.0.0.1:${SIP[$1]}" --user "$2" --password "$3" \
        --domain users.test --expires 60 register 2>/dev/null | awk '{print $1}'
}
status_is() { [ "$(reg "$2" "$3" "$4")" = "$1" ]; }
ustat() { on "$1"; api GET /stats | jq -r ".redis_users.$2"; }
knows() { on "$1"; ctl user list 2>/dev/null | grep -qw "$2"; }

stop_a() { kill -TERM "$a_PID"; wait "$a_PID"; }
for n in a b c d; do SIP[$n]=$(free_port); API[$n]=$(free_port); done
VM=$(free_port)

# ---- 1. bob on A before the mirror (its own SQLite), then the mirror on
mk_ini a no
start_cascade a "$WORK/a.ini"
on a; ctl user add bob --password bobpw >/dev/null
check "... A stopped cleanly (exit 0)" stop_a
for n in a b c; do mk_ini "$n" yes; start_cascade "$n" "$WORK/$n.ini"; done
subscribed() { [ "$(ustat "$1" subscribed)" = true ] && [ "$(ustat "$1" loads)" -ge 1 ]; }
for n in a b c; do check "node $n subscribed to the change channel and loaded the users" wait_for 20 subscribed "$n"; done
check "1. bob (A's from before) seeded into u:users, with the marker" \
    bash -c "[ -n \"\$(redis-cli -c -h 127.0.0.1 -p ${REDIS_PORTS[0]} hget u:users bob)\" ] &&
        [ -n \"\$(redis-cli -c -h 127.0.0.1 -p ${REDIS_PORTS[0]} hget u:users '#')\" ]"
check "... no clear password in the record" bash -c "! redis-cli -c -h 127.0.0.1 -p ${REDIS_PORTS[0]} hget u:users bob | grep -q bobpw"
check "... bob registers on C: 200" wait_for 10 status_is 200 c bob bobpw

# ---- 1b. message-summary: the source's summary sent to A reaches bob's watcher on B
mstat() { on "$1"; api GET /stats | jq -r ".redis_mwi.$2"; }
if command -v sipp >/dev/null; then
    got_notifies() { [ "$(python3 "$PEERS_DIR/notify_bodies.py" "$WORK/$1.msg" "$WORK/$1.n" 2>/dev/null)" -ge "$2" ]; }
    line() { python3 -c 'import sys
for l in open(sys.argv[1]).read().splitlines():
    k, _, v = l.partition(":")
    if k.strip().lower() == sys.argv[2].lower(): print(v.strip())' "$1" "$2"; }
    mwi_active() { on b; [ "$(api GET /stats | jq -r '.subscriptions.active')" = 1 ]; }
    mstat_is() { [ "$(mstat "$1" "$2")" = "$3" ]; }
    for n in a b c; do check "1b. node $n: message summaries shared (subscribed)" wait_for 20 mstat_is "$n" subscribed true; done
    sipp_spawn w 90 "127.0.0.1:${SIP[b]}" -sf "$PEERS_DIR/sipp/sub-mwi.xml" \
        -s bob -au bob -ap bobpw -auth_uri "bob@127.0.0.1:${SIP[b]}" -key expires 600 -p "$(free_port)"
    W=$SIPP_PID
    check "... bob's message-summary watcher subscribed on B (B has no voicemail source)" wait_for 30 mwi_active
    check "... its first NOTIFY: Messages-Waiting no" wait_for 30 got_notifies w 1
    check "... ... body" test "$(line "$WORK/w.n/1.xml" Messages-Waiting)" = no
    on a
    sed "s/STATUS/200/" "$PEERS_DIR/sipp/mwi-source.xml" >"$WORK/mwi-200.xml"
    check "... the voicemail source's summary for bob to A: 200" \
        sipp_scn vm "$WORK/mwi-200.xml" -s bob -key waiting yes -key counts "3/5 (1/0)" -p "$VM"
    check "... the watcher on B got the summary" wait_for 30 got_notifies w 2
    check "... NOTIFY 2: Messages-Waiting yes, Voice-Message 3/5 (1/0)" \
        test "$(line "$WORK/w.n/2.xml" Messages-Waiting)|$(line "$WORK/w.n/2.xml" Voice-Message)" = "yes|3/5 (1/0)"
    check "... the watcher unsubscribed (sipp ran its scenario)" wait "$W"
    check "... three NOTIFYs in all (full, the summary, terminated): no echo, no storm" \
        test "$(python3 "$PEERS_DIR/notify_bodies.py" "$WORK/w.msg" "$WORK/w.n")" = 3
    mwi_field=$(rcli hkeys u:mwi | grep -v '^#$' | head -1)
    check "... u:mwi holds bob's record, stamped ($mwi_field)" \
        bash -c "redis-cli -c -h 127.0.0.1 -p ${REDIS_PORTS[0]} hget u:mwi '$mwi_field' | head -1 | grep -qE '^[0-9]{13}$'"
    check "... C applied it too" wait_for 10 mstat_is c applied 1
    check "... B applied it once; A did not apply its own (no echo); nobody failed a write" \
        test "$(mstat b applied)|$(mstat a applied)|$(mstat a writes_failed)" = "1|0|0"
    check "... an older record (stamp 1) written straight into Redis and announced" \
        bash -c "redis-cli -c -h 127.0.0.1 -p ${REDIS_PORTS[0]} hset u:mwi '$mwi_field' \"\$(printf '1\nMessages-Waiting: no\r\n')\" >/dev/null &&
            redis-cli -c -h 127.0.0.1 -p ${REDIS_PORTS[0]} publish u:mwi-changes '$mwi_field' >/dev/null"
    for n in a b c; do check "... not applied on $n (older)" wait_for 10 mstat_is "$n" older 1; done
    check "... B still holds one summary, none refused" test "$(mstat b summaries)|$(mstat b rejected)" = "1|0"
    rhget_stamp() { redis-cli -c -h 127.0.0.1 -p "${REDIS_PORTS[0]}" hget u:mwi "$mwi_field" | head -1; }
    check "... a record stamped later (9000000000000) written straight into Redis, unannounced" \
        bash -c "redis-cli -c -h 127.0.0.1 -p ${REDIS_PORTS[0]} hset u:mwi '$mwi_field' \"\$(printf '9000000000000\nMessages-Waiting: yes\r\nVoice-Message: 9/9\r\n')\" >/dev/null"
    on a
    check "... the source's next summary to A: 200" \
        sipp_scn vm2 "$WORK/mwi-200.xml" -s bob -key waiting yes -key counts "4/5 (1/0)" -p "$VM"
    check "... Redis kept the later-stamped record (the write is stamped)" test "$(rhget_stamp)" = 9000000000000
    check "... A applied Redis's record over its own (its first apply)" wait_for 10 mstat_is a applied 1
    for n in b c; do check "... $n applied Redis's record" wait_for 10 mstat_is "$n" applied 2; done
    check "... the summary after it is stamped above it and taken" \
        sipp_scn vm3 "$WORK/mwi-200.xml" -s bob -key waiting yes -key counts "5/5 (1/0)" -p "$VM"
    check "... ... Redis holds it (stamp 9000000000001)" wait_for 10 bash -c "[ \"\$(redis-cli -c -h 127.0.0.1 -p ${REDIS_PORTS[0]} hget u:mwi '$mwi_field' | head -1)\" = 9000000000001 ]"
    for n in b c; do check "... $n applied it" wait_for 10 mstat_is "$n" applied 3; done
else
    echo "skip 1b: sipp is not installed"
fi

# ---- 2. alice made on A
on a; check "2. alice created through A's API" ctl user add alice --password old-pw
check "... B answers her REGISTER 200" wait_for 10 status_is 200 b alice old-pw
check "... C answers her REGISTER 200" status_is 200 c alice old-pw
check "... a wrong password is 401 on B" status_is 401 b alice nope

# ---- 3. the password changed on C
on c; check "3. alice's password changed through C's API" ctl user add alice --password new-pw
check "... the old one refused on A (401)" wait_for 10 status_is 401 a alice old-pw
check "... the old one refused on B (401)" wait_for 10 status_is 401 b alice old-pw
for n in a b c; do check "... the new one takes 200 on $n" status_is 200 "$n" alice new-pw; done

# ---- 4. deleted on B
bindings() { on "$1"; [ "$(binding_count alice)" "$2" 0 ]; }
check "4. alice holds a binding on A (from her REGISTER there)" bindings a -gt
on b; check "... alice deleted through B's API" ctl user del alice
for n in a b c; do
    check "... refused on $n" wait_for 10 bash -c "s=\$(python3 '$PEERS_DIR/sipreg.py' --server 127.0.0.1:${SIP[$n]} \
        --user alice --password new-pw --domain users.test --expires 60 register 2>/dev/null | awk '{print \$1}');
        [ \"\$s\" = 401 ] || [ \"\$s\" = 403 ]"
    check "... gone from $n's table" not knows "$n" alice
done
check "... her binding on A removed with her (kicked, as for a local delete)" wait_for 10 bindings a -eq

# ---- 5. a node started later; a node restarted
on a; ctl user add carol --password carolpw >/dev/null
on a; ctl user add erin --password erinpw >/dev/null
check "... erin known on C" wait_for 10 knows c erin
mk_ini d yes
start_cascade d "$WORK/d.ini"
check "5. node D, started now with an empty store, loaded the users" wait_for 20 subscribed d
check "... carol registers on D: 200" status_is 200 d carol carolpw
check "... alice (deleted before D started) refused on D" not status_is 200 d alice new-pw
check "... A stopped cleanly (exit 0)" stop_a
on c; ctl user add frank --password frankpw >/dev/null; ctl user del erin >/dev/null
start_cascade a "$WORK/a.ini"
check "... A restarted: loaded again" wait_for 20 subscribed a
check "... frank (made on C while A was down) registers on A: 200" status_is 200 a frank frankpw
check "... erin (deleted on C while A was down) is gone from A" not knows a erin
check "... bob still known on A" status_is 200 a bob bobpw
if command -v sipp >/dev/null; then
    for n in a d; do check "... $n holds bob's summary (loaded from u:mwi, summaries are kept in memory only)" \
        wait_for 10 mstat_is "$n" summaries 1; done
fi
for n in a b c d; do check "... node $n refused no record" [ "$(ustat "$n" rejected)" = 0 ]; done

curl -s "http://127.0.0.1:${API[b]}/metrics" >"$WORK/b.prom"
check "... /metrics: redis_users typed (promcheck, no untyped family)" \
    python3 "$PEERS_DIR/promcheck.py" check "$WORK/b.prom" --no-untyped
check "... /metrics: cascade_redis_users_users and _loads_total" \
    bash -c "grep -q '^cascade_redis_users_users ' '$WORK/b.prom' && grep -q '^cascade_redis_users_loads_total ' '$WORK/b.prom'"

# ---- 5b. an announcement missed: reloaded on reconnect
zed_md5=$(printf 'zed:users.test:zedpw' | md5sum | cut -d' ' -f1)
loads_b=$(ustat b loads)
check "5b. zed written straight into u:users, unannounced (a change a node missed)" \
    [ "$(rcli hset u:users zed "{\"realm\":\"users.test\",\"md5\":\"$zed_md5\",\"sha256\":\"\",\"created\":1}")" = 1 ]
check "... B does not know zed yet (401)" status_is 401 b zed zedpw
for p in "${REDIS_PORTS[@]}"; do redis-cli -h 127.0.0.1 -p "$p" client kill type pubsub >/dev/null; done
reloaded() { [ "$(ustat b loads)" -gt "$loads_b" ] && [ "$(ustat b subscribed)" = true ]; }
check "... the change channels cut (CLIENT KILL TYPE pubsub): B resubscribes and reloads" wait_for 20 reloaded
check "... zed registers on B: 200" status_is 200 b zed zedpw

# ---- 6. Redis gone
for p in "${REDIS_PORTS[@]}"; do kill -9 "${REDIS_PID[$p]}" 2>/dev/null; done
check "6. Redis killed: B still answers carol 200 from its table" status_is 200 b carol carolpw
check "... and frank on D" status_is 200 d frank frankpw
unsubscribed() { [ "$(ustat "$1" subscribed)" = false ]; }
check "... B's change channel is down" wait_for 10 unsubscribed b
for n in a b c d; do
    check "... node $n still running" kill -0 "$(eval echo "\$${n}_PID")"
done

finish
