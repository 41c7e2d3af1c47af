#!/usr/bin/env bash
# Reload without a restart (issue 17): node "main" (registrar and proxy, no
# GB role at start) holds a registration over one TCP connection
# (sipdialog.py) and a call between a caller (sipdialog.py) and a sipp UAS
# through its proxy. Then, behind its back, a user is added to its SQLite
# file and an [upstream:ID] pointing at a second cascade (GB upper role) and
# a changed [registrar] key are written into its config -> SIGHUP: the new
# user registers, the upper sees the lower registered, the restart key is
# named, and the TCP registration (refreshed on the same connection) and the
# call (BYE -> 200 at both ends) are still there. Then the upstream is
# removed -> `cascadectl reload`: the upper sees it unregister (Expires: 0).
# Last, a broken file (by SIGHUP and by the API) is refused whole: the old
# config stays in effect.
source "$(dirname "$0")/lib.sh"
command -v sipp >/dev/null || { echo "SKIP: sipp (Debian sip-tester) not installed"; exit 77; }
command -v jq >/dev/null || { echo "SKIP: jq not installed"; exit 77; }

# The interpreter itself, not a version manager's shim, for the many calls below.
PY=$(python3 -c 'import sys; print(sys.executable)')
API_TOKEN=reloadtoken
UPPER=34020000002000000009          # the upper node's GB id
LOWER=34020000001320000001          # main's [gb] id, as it registers upward
UP_SIP=$(free_port); UP_API=$(free_port)
gb_upper_ini upper "$UP_SIP" "$UP_API" "$UPPER" dev-secret yes </dev/null
start_cascade upper "$WORK/upper.ini"

PORT=$(free_port); API_PORT=$(free_port)
# main_ini [EXTRA]: main's config; EXTRA (sections) goes after the fixed ones.
main_ini() {
    node_ini main "$PORT" "$API_PORT" 127.0.0.1 <<INI
[auth]
realm = cascade.test
[proxy]
mode = proxy
authenticate = no
invite_timeout = 30
[gb]
id = $LOWER
${1:-}
INI
}
main_ini "[registrar]
max_expires = 3600"
start_cascade main "$WORK/main.ini"

upper_api() { curl -s -H "Authorization: Bearer $API_TOKEN" "http://127.0.0.1:$UP_API/api/v1$1"; }
lower_online_at_upper() { upper_api "/gb/devices/$LOWER" | jq -e '.online == true' >/dev/null; }
lower_offline_at_upper() { upper_api "/gb/devices/$LOWER" | jq -e '.online == false' >/dev/null; }
upper_event() { upper_api "/events/recent?since=0" | jq -e "[.events[] | $1] | length > 0" >/dev/null; }
step() { grep -q "^$2" "$WORK/$1.out" 2>/dev/null; }    # step NAME "refresh 200"
sipreg() { "$PY" "$PEERS_DIR/sipreg.py" --server "127.0.0.1:$PORT" --user "$1" --password "$2" register; }
registers() { [ "$(sipreg "$1" "$2")" = 200 ]; }
upstreams() { api GET /gb/upstreams; }

check "cascadectl user add alice" ctl user add alice --password alicepw
check "cascadectl user add bob" ctl user add bob --password bobpw

# ---- state that must survive: a TCP registration and a call ----
UAS=$(free_port)
check "sipp UAS registers bob (digest, UDP)" \
    sipp_scn regbob register.xml -s bob -au bob -ap bobpw -key expires 300 -key cport "$UAS" -p "$UAS"
sipp_spawn uas 280 -sf "$PEERS_DIR/sipp/uas-call.xml" -s bob -p "$UAS"
UAS_PID=$SIPP_PID
check "the UAS is listening" wait_for 10 udp_bound "$UAS"

"$PY" "$PEERS_DIR/sipdialog.py" tcpreg --server "127.0.0.1:$PORT" --user alice --password alicepw \
    --domain 127.0.0.1 --out "$WORK/tcpreg.out" --go "$WORK/tcpreg.go" --stop "$WORK/tcpreg.stop" &
PIDS+=("$!")
check "alice registers over TCP" wait_for 30 step tcpreg "register 200"
check "alice's binding is over TCP" jq_ok "$(api GET '/registrations?user=alice')" \
    '[.registrations[] | select(.transport == "tcp")] | length == 1'

"$PY" "$PEERS_DIR/sipdialog.py" call --server "127.0.0.1:$PORT" --user alice --to bob --domain 127.0.0.1 \
    --out "$WORK/call.out" --go "$WORK/call.go" &
PIDS+=("$!")
check "alice calls bob through the proxy: 200" wait_for 30 step call "invite 200"
check "carol is not a user yet: her REGISTER is refused" not registers carol carolpw

# ---- behind the daemon's back: a user in the database, an upstream in the file ----
"$PY" - "$WORK/main.db" <<'PY'
import hashlib, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=30)
ha1 = hashlib.md5(b"carol:cascade.test:carolpw").hexdigest()
db.execute("INSERT INTO users(name, realm, ha1_md5, ha1_sha256, created_at) VALUES(?,?,?,?,?)",
           ("carol", "cascade.test", ha1, "", int(time.time() * 1000)))
db.commit()
PY
check "carol is in the database, not in the running table" not registers carol carolpw
main_ini "[registrar]
max_expires = 7200
$(gb_upstream_ini "$UPPER" "$UP_SIP" udp dev-secret 300)"
kill -HUP "$main_PID"
check "SIGHUP: the reload is logged" wait_for 20 grep -q "reload: users re-read" "$WORK/main.log"
check "the restart key is named in the log" grep -q "restart needed for \[registrar\] max_expires" "$WORK/main.log"
check "the upstream is applied without a restart" grep -q "GB lower role started for 1 upstream" "$WORK/main.log"
check "carol (added to the database) registers" wait_for 20 registers carol carolpw
check "the upper shows the lower registered" wait_for 60 lower_online_at_upper
check "main shows its upstream registered" \
    wait_for 30 bash -c "curl -s -H 'Authorization: Bearer $API_TOKEN' http://127.0.0.1:$API_PORT/api/v1/gb/upstreams |
        jq -e '.upstreams[0].state == \"registered\"'"
check "alice's TCP binding is still there" jq_ok "$(api GET '/registrations?user=alice')" \
    '[.registrations[] | select(.transport == "tcp")] | length == 1'
touch "$WORK/tcpreg.go"
check "alice refreshes on the same TCP connection: 200" wait_for 30 step tcpreg "refresh 200"
check "no connection was lost" not grep -q "SIP connection .* lost" "$WORK/main.log"
touch "$WORK/call.go"
check "the call is still up: the caller's BYE gets 200" wait_for 30 step call "bye 200"
check "the UAS got the BYE and ended its scenario" wait "$UAS_PID"

# ---- the upstream removed, through the API ----
main_ini "[registrar]
max_expires = 7200"
OUT=$(ctl --json reload)
check "cascadectl reload: the upstream's removal applied" jq_ok "$OUT" \
    ".applied | index(\"[upstream:$UPPER] removed\") != null"
check "cascadectl reload: [registrar] max_expires still needs a restart" jq_ok "$OUT" \
    '.restart_needed == ["[registrar] max_expires"]'
check "cascadectl reload: users re-read" jq_ok "$OUT" '.users.stored == 3 and .users.added == 0'
check "the upper sees the lower unregister" wait_for 30 lower_offline_at_upper
check "the upper's offline event says unregister" \
    upper_event "select(.type == \"gb.device.offline\" and .device_id == \"$LOWER\" and .reason == \"unregister\")"
check "main lists no upstream" jq_ok "$(upstreams)" '.upstreams | length == 0'
ctl reload >"$WORK/reload.txt"
check "cascadectl reload prints what needs a restart" grep -q "^  \[registrar\] max_expires" "$WORK/reload.txt"

# ---- a broken file is refused whole ----
main_ini "[registrar]
max_expires = 7200
[log]
level = debug
$(gb_upstream_ini "$UPPER" "$UP_SIP" udp dev-secret 300)
[sip]
t1_ms = 0"
check "cascadectl reload of a bad file fails" not ctl reload
BAD=$(curl -s -w '\n%{http_code}' -X POST -H "Authorization: Bearer $API_TOKEN" "http://127.0.0.1:$API_PORT/api/v1/reload")
check "POST /reload of a bad file: 400" [ "$(echo "$BAD" | tail -1)" = 400 ]
check "its JSON names the bad key" jq_ok "$(echo "$BAD" | head -1)" \
    '.error == "bad-config" and (.detail | contains("t1_ms"))'
kill -HUP "$main_PID"
check "SIGHUP of a bad file: refused, logged" wait_for 20 grep -q "SIGHUP: reload refused.*t1_ms" "$WORK/main.log"
check "the upstream of the refused file was not added" jq_ok "$(upstreams)" '.upstreams | length == 0'
check "the lower stays unregistered at the upper" lower_offline_at_upper
check "the log level of the refused file was not applied" not grep -q "reload: log level debug" "$WORK/main.log"
check "the registrar still serves (carol registers)" registers carol carolpw

# ---- [log] format and file switched by a reload, and back ----
main_ini "[registrar]
max_expires = 7200
[log]
format = json
file = $WORK/main-json.log"
OUT=$(ctl --json reload)
check "cascadectl reload: [log] format and file applied" jq_ok "$OUT" \
    '(.applied | index("[log] format") != null) and (.applied | index("[log] file") != null)'
check "the old destination names the new file" grep -q "reload: log file $WORK/main-json.log" "$WORK/main.log"
check "carol registers (logged to the new file)" registers carol carolpw
check "the new file has lines" wait_for 10 test -s "$WORK/main-json.log"
check "every line of the new file is a JSON object with ts, level and msg" \
    jq -se 'length > 0 and all(.[]; type == "object" and has("ts") and has("level") and has("msg"))' "$WORK/main-json.log"
main_ini "[registrar]
max_expires = 7200
[log]
file = $WORK/no-such-dir/x.log"
check "a log file that cannot be opened refuses the reload" not ctl reload
main_ini "[registrar]
max_expires = 7200"
OUT=$(ctl --json reload)
check "back to text on standard error" jq_ok "$OUT" '(.applied | index("[log] file") != null)'
check "the JSON file's last line names standard error" \
    bash -c "tail -1 '$WORK/main-json.log' | jq -e '.msg | contains(\"standard error\")' >/dev/null"
N0=$(wc -l <"$WORK/main-json.log")
check "dave is unknown: refused" not registers dave davepw
check "nothing more went to the JSON file" [ "$(wc -l <"$WORK/main-json.log")" = "$N0" ]

# ---- the upper's GB devices, changed in its database: SIGHUP re-reads them ----
"$PY" - "$WORK/upper.db" "$LOWER" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=30)
db.execute("INSERT INTO gb_devices(id, password) VALUES('34020000001320000077', 'devpw')")
db.execute("DELETE FROM gb_devices WHERE id = ?", (sys.argv[2],))
db.commit()
PY
check "before the reload the upper knows the lower, not the new device" \
    bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer $API_TOKEN' \
        http://127.0.0.1:$UP_API/api/v1/gb/devices/34020000001320000077)\" = 404 ]"
kill -HUP "$upper_PID"
check "SIGHUP on the upper: devices re-read (1 added, 1 dropped)" \
    wait_for 20 grep -q "gb: devices re-read: 1 stored, 1 added, 0 changed, 1 dropped" "$WORK/upper.log"
check "the new device is known" jq_ok "$(upper_api /gb/devices/34020000001320000077)" \
    '.id == "34020000001320000077" and .online == false'
check "the deleted device is gone" \
    bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer $API_TOKEN' \
        http://127.0.0.1:$UP_API/api/v1/gb/devices/$LOWER)\" = 404 ]"

touch "$WORK/tcpreg.stop"
finish
