#!/usr/bin/env bash
# Overload control ([overload], issue 9): a cascade whose sustainable rate of
# new registrations is set tiny (max_register_rate = 1) meets a REGISTER
# storm — 30 simulated GB devices (cascade-gbsim, 2 threads) and 20 new SIP
# AoRs (sipp) offered at once. New REGISTERs get 503 with a Retry-After,
# statelessly (sipp sees numeric Retry-After values, gbsim counts 503s and
# honours them); meanwhile a GB device registered before the storm keeps
# getting 200 to its keepalives and refreshes, a registered SIP user
# refreshes with 200, and a call to it (sipp UAC -> UAS) completes. After
# the storm every device ends registered (gbsim came back when told), and
# /stats counts the refusals. Nothing here depends on timing: the rate cap
# admits one new registration a second, so a burst of 30 cannot all pass.
source "$(dirname "$0")/lib.sh"
GBSIM=$BUILD_DIR/cascade-gbsim

PORT=$(free_port); API_PORT=$(free_port); API_TOKEN=ovtoken
MEDIA=$(free_range 41)
node_ini ov "$PORT" "$API_PORT" 127.0.0.1 <<INI
[auth]
realm = cascade.test
[proxy]
authenticate = no
[gb]
enabled = yes
domain = 3402000000
password = 12345678
allow_unknown = yes
keepalive_interval = 2
keepalive_misses = 3
media_ip = 127.0.0.1
media_ports = $MEDIA-$((MEDIA + 40))
catalog_on_register = yes
catalog_concurrency = 2
[overload]
max_register_rate = 1
retry_after_min = 1
retry_after_max = 3
INI
start_cascade ov "$WORK/ov.ini"

check "cascadectl user add bob" ctl user add bob --password bobpw
# Registrations before the storm may meet the (tiny) cap too; each is retried
# until it passes, so they are in place whatever the timing.
reg_bob() { sipp_scn "reg-$1" register.xml -s bob -au bob -ap bobpw -key expires 300 -key cport "$UAS" -p "$UAS"; }
UAS=$(free_port)
check "bob (sipp UAS) registers before the storm" wait_for 60 reg_bob pre
PRE=34020000001320009001
"$GBSIM" --target "127.0.0.1:$PORT" --devices 1 --base-id "$PRE" --keepalive 1 --expires 4 \
    --json "$WORK/pre.json" >"$WORK/pre.log" 2>&1 &
PRE_PID=$!
PIDS+=("$PRE_PID")
device_online() { api GET "/gb/devices/$1" | jq -e '.online == true' >/dev/null; }
check "a GB device registers before the storm" wait_for 60 device_online "$PRE"
# pre_count NAME: a counter from the pre-storm device's last per-second line.
pre_count() { grep 'KiB$' "$WORK/pre.log" | grep '^t=' | tail -1 | sed -n "s/.* $1=\([0-9]*\)(.*/\1/p"; }
pre_has_line() { test -n "$(pre_count ka_ok)"; }
wait_for 10 pre_has_line || true
PRE_REG_OK0=$(pre_count reg_ok); PRE_503_0=$(pre_count reg_503); PRE_KA0=$(pre_count ka_ok)

# ---- the storm ----
STATS0=$(api GET /stats)
"$GBSIM" --target "127.0.0.1:$PORT" --devices 30 --threads 2 --rate 300 --keepalive 2 \
    --json "$WORK/storm.json" >"$WORK/storm.log" 2>&1 &
STORM_PID=$!
PIDS+=("$STORM_PID")
NEWREG_RC=0
(cd "$WORK" && timeout 60 sipp "127.0.0.1:$PORT" -sf "$PEERS_DIR/sipp/register-new-overload.xml" -i 127.0.0.1 \
    -p "$(free_port)" -m 20 -r 100 -nostdin -trace_msg -message_file newreg.msg -trace_err -error_file newreg.err \
    >"$WORK/newreg.out" 2>&1) || NEWREG_RC=$?
check "sipp: each new REGISTER was either challenged (admitted) or refused 503 with a numeric Retry-After" \
    test "$NEWREG_RC" = 0
check "sipp: some new REGISTERs were refused 503 (20 offered at once, 1/s admitted)" \
    grep -aq '^SIP/2.0 503 ' "$WORK/newreg.msg"
check "every 503 carries a Retry-After within [1, 3]" \
    bash -c "test \$(grep -ac '^SIP/2.0 503 ' '$WORK/newreg.msg') = \$(grep -a '^Retry-After:' '$WORK/newreg.msg' | grep -cE '^Retry-After: [123]\s*$')"
check "cascade logged the refusal with the sender's address" \
    grep -q 'overload (rate): new REGISTER from 127.0.0.1:' "$WORK/ov.log"

# A registered user is no new registration: its refresh gets 200 during the storm.
check "during the storm: bob's refresh (a bound AoR) gets 401/200, not 503" reg_bob refresh
uas_call() {
    sipp_spawn uas 60 -sf "$PEERS_DIR/sipp/uas-call.xml" -s bob -p "$UAS"
    UAS_PID=$SIPP_PID
    sleep 0.3
}
uas_call
check "during the storm: a call to bob (sipp UAC -> cascade -> UAS) completes" \
    sipp_scn uac uac-call.xml -s bob -p "$(free_port)"
check "the UAS got INVITE, ACK and BYE" wait "$UAS_PID"
STATS1=$(api GET /stats)
check "/stats: new registrations were refused for rate during the storm" \
    jq_ok "$STATS1" '.overload.refused_rate > 0'
storm_done() { grep -q 'registered=30/30' "$WORK/storm.log"; }
check "after the storm every simulated device ends registered (Retry-After honoured)" wait_for 150 storm_done
sleep 1.5 # one more per-second line of the pre-storm device
check "the device registered before the storm kept getting 200 to its keepalives" \
    test "$(pre_count ka_ok)" -gt "${PRE_KA0:-0}"
check "... and to its REGISTER refreshes (every ~3 s), none refused 503 during the storm" \
    bash -c "test '$(pre_count reg_ok)' -gt '${PRE_REG_OK0:-0}' && test '$(pre_count reg_503)' = '${PRE_503_0:-x}'"
kill -INT "$STORM_PID" "$PRE_PID" 2>/dev/null || true
wait "$STORM_PID" || true
wait "$PRE_PID" || true
SJ=$(cat "$WORK/storm.json" 2>/dev/null || echo '{}')
check "gbsim (storm): 503s counted, each with a Retry-After it waited, all 30 registered in the end" \
    jq_ok "$SJ" '.reg_503 > 0 and .reg_retry_after == .reg_503 and .registered == 30'
PJ=$(cat "$WORK/pre.json" 2>/dev/null || echo '{}')
check "gbsim (registered before the storm): never lost its registration" \
    jq_ok "$PJ" '.ka_ok > 0 and .registered == 1 and .lost == 0'
check "cascade: all 31 devices online" \
    jq_ok "$(api GET /gb/devices)" '[.devices[] | select(.online)] | length == 31'
check "/stats: catalog queries went through the bounded queue" \
    jq_ok "$(api GET /stats)" '.gb_upper.catalog_in_flight <= 2'
echo "storm: $(jq -c '{reg_sent,reg_ok,reg_503,ramp_s,rtt_p99_ms,lag_max_ms}' <<<"$SJ"); overload: $(jq -c .overload <<<"$STATS1")"
: "$STATS0"
finish
