#!/usr/bin/env bash
# Two real softphones (baresip, headless, TCP) against cascade: both register
# with digest, alice calls bob through the proxy (answering its 407
# challenge), bob auto-answers, alice hangs up; the API shows both bindings and the events both users online;
# then each baresip is killed (kill -9, so no unregister: only the TCP
# connection drops) and cascade reports user.offline reason transport-lost
# at once — long before the 600 s registration could expire (the time it
# took is printed, not asserted: a loaded machine may take longer than 1 s).
source "$(dirname "$0")/lib.sh"

if ! command -v baresip >/dev/null; then
    echo "baresip not installed"; exit 1
fi
baresip_moddir

PORT=$(free_port); API_PORT=$(free_port); API_TOKEN=baresiptoken
node_ini c "$PORT" "$API_PORT" 127.0.0.1 <<INI
[auth]
realm = cascade.test
INI
start_cascade bs "$WORK/c.ini"
check "cascadectl user add alice" ctl user add alice --password alicepw
check "cascadectl user add bob" ctl user add bob --password bobpw

baresip_tone
baresip_phone_start alice alicepw "127.0.0.1:$PORT"
baresip_phone_start bob bobpw "127.0.0.1:$PORT"
check "both baresip register over TCP (bindings in the API)" \
    wait_for 10 bash -c "[ \"\$(curl -s -H 'Authorization: Bearer $API_TOKEN' http://127.0.0.1:$API_PORT/api/v1/registrations |
        jq '[.registrations[] | select(.transport == \"tcp\")] | length')\" = 2 ]"
check "GET /registrations shows alice and bob over tcp" \
    jq_ok "$(api GET /registrations)" '[.registrations[] | select(.transport == "tcp") | .user] | sort == ["alice","bob"]'
check "baresip alice saw 200 for its REGISTER" grep -q "alice@127.0.0.1.*200 OK" "$WORK/baresip-alice.log"
check "events: user.online for alice" has_event 'select(.type=="user.online" and .user=="alice" and .transport=="tcp")'
check "events: user.online for bob" has_event 'select(.type=="user.online" and .user=="bob" and .transport=="tcp")'

# The call: alice dials bob through cascade, bob auto-answers, alice hangs up.
check "alice dials bob (ctrl_tcp)" bctl "$alice_CTRL" dial "sip:bob@127.0.0.1:$PORT"
check "the call is established on both sides" \
    wait_for 10 bash -c "grep -qi 'established' '$WORK/baresip-alice.log' && grep -qi 'established' '$WORK/baresip-bob.log'"
check "the INVITE was proxied and record-routed (stats)" jq_ok "$(api GET /stats)" '.proxy.forwarded >= 1'
check "alice's INVITE was challenged (407) and she answered it ([proxy] authenticate)" \
    jq_ok "$(api GET /stats)" '.proxy.challenged >= 1 and .proxy.auth_failed == 0'
sleep 1
check "alice hangs up (ctrl_tcp)" bctl "$alice_CTRL" hangup
check "bob sees the call closed (BYE routed through cascade)" \
    wait_for 10 bash -c "grep -qiE 'closed|terminated' '$WORK/baresip-bob.log'"
check "the BYE went through the proxy too" jq_ok "$(api GET /stats)" '.proxy.forwarded >= 2'

# kill -9: the TCP connection drops without an unregister.
offline_within() { # NAME PID: kill -9 and wait (up to 20 s, the registration lives 600 s) for user.offline transport-lost
    local name=$1 pid=$2 seq t0 t1
    seq=$(events_json | jq '.last_seq')
    t0=$(date +%s%N)
    kill -9 "$pid"
    local end=$((SECONDS + 20))
    while [ $SECONDS -lt $end ]; do
        if has_event "select(.type==\"user.offline\" and .user==\"$name\" and .reason==\"transport-lost\")" "$seq"; then
            t1=$(date +%s%N)
            echo "  $name offline after $(( (t1 - t0) / 1000000 )) ms"
            return 0
        fi
        sleep 0.01
    done
    return 1
}
check "kill -9 alice: user.offline transport-lost at once" offline_within alice "$alice_PID"
check "the offline event names the contact and remote" \
    has_event 'select(.type=="user.offline" and .user=="alice" and (.contact|startswith("sip:alice")) and (.contact|contains("@127.0.0.1:")) and (.remote|startswith("127.0.0.1:")))'
check "alice's binding is gone, bob's stays" \
    test "$(binding_count alice)" = 0 -a "$(binding_count bob)" = 1
check "kill -9 bob: user.offline transport-lost at once" offline_within bob "$bob_PID"
check "no binding left" jq_ok "$(api GET /registrations)" '.registrations | length == 0'

finish
