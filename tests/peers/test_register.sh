#!/usr/bin/env bash
# Registrar checks with real peers (RFC 3261 §10.3): sipp REGISTER with digest
# (challenge then 200), refresh, unregister with Expires 0 and with
# "Contact: *", wrong password, replayed credentials, 423 with Min-Expires;
# sipsak REGISTER with -a as a second peer; every outcome read back from
# GET /api/v1/registrations and the event ring, and bindings surviving a
# restart.
source "$(dirname "$0")/lib.sh"

PORT=$(free_port); API_PORT=$(free_port); API_TOKEN=regtoken
node_ini c "$PORT" "$API_PORT" 127.0.0.1 <<INI
[auth]
realm = cascade.test
nonce_ttl = 5
[registrar]
min_expires = 10
max_expires = 3600
INI
start_cascade reg "$WORK/c.ini"
H=127.0.0.1

# Users (HA1 only is stored; the API computes it from the password).
check "cascadectl user add alice" ctl user add alice --password alicepw
check "cascadectl user add bob" ctl user add bob --password bobpw
check "cascadectl user add carol" ctl user add carol --password carolpw
check "GET /users lists the three users" jq_ok "$(api GET /users)" '[.users[].name] | sort == ["alice","bob","carol"]'

# 1. Challenge then 200; the 200 lists the contact with its expiry and a Date.
P1=$(free_port)
check "sipp: alice REGISTER -> 401 -> REGISTER with digest -> 200" \
    sipp_scn alice1 register.xml -s alice -au alice -ap alicepw -key expires 60 -key cport 5099 -p "$P1"
check "the 200 lists the contact with expires=60 and carries Date" \
    bash -c "grep -aq 'Contact: <sip:alice@$H:5099>;expires=60' '$WORK/alice1.msg' && grep -aq '^Date: ' '$WORK/alice1.msg'"
check "GET /registrations shows alice's binding (udp, expires <= 60)" jq_ok "$(api GET '/registrations?user=alice')" \
    ".registrations | length == 1 and .[0].contact == \"sip:alice@$H:5099\" and .[0].transport == \"udp\"
     and .[0].expires <= 60 and .[0].expires > 50 and .[0].remote == \"$H:$P1\""
check "event user.online for alice" has_event 'select(.type=="user.online" and .user=="alice")'
check "event registration.added for alice with contact and expires" \
    has_event "select(.type==\"registration.added\" and .user==\"alice\" and .contact==\"sip:alice@$H:5099\" and .expires==60)"

# 2. Refresh (a new Call-ID each sipp run: allowed), longer expiry; still one binding.
check "sipp: alice refresh with Expires 600 -> 200" \
    sipp_scn alice2 register.xml -s alice -au alice -ap alicepw -key expires 600 -key cport 5099 -p "$(free_port)"
check "refresh keeps one binding with the new expiry" jq_ok "$(api GET '/registrations?user=alice')" \
    '.registrations | length == 1 and .[0].expires > 590'
check "event registration.refreshed for alice" has_event 'select(.type=="registration.refreshed" and .user=="alice")'

# 3. Wrong password: re-challenged (401), nothing bound, refusal logged with the sender.
PW=$(free_port)
check "sipp: alice with a wrong password -> 401 again" \
    sipp_scn alice_bad register-fail.xml -s alice -au alice -ap wrongpw -key expires 60 -key cport 5097 -p "$PW"
check "no binding from the wrong password" test "$(binding_count alice "sip:alice@$H:5097")" = 0
check "the refusal is logged with the sender's address" grep -q "401 to REGISTER from $H:$PW: user alice: bad response" "$WORK/reg.log"

# 4. Replayed Authorization: bob registers (his credentials are seen once),
#    then the same Authorization header (same nonce, same nc) arrives again
#    for another contact: refused, no binding.
check "sipp: bob REGISTER with digest -> 200" \
    sipp_scn bob1 register.xml -s bob -au bob -ap bobpw -key expires 300 -key cport 5096 -p "$(free_port)"
AUTHZ=$(grep -a '^Authorization: ' "$WORK/bob1.msg" | tail -1 | sed 's/^Authorization: //; s/\r$//')
CALLID=$(grep -a '^Call-ID: ' "$WORK/bob1.msg" | tail -1 | sed 's/^Call-ID: //; s/\r$//')
check "captured bob's Authorization (nc=00000001)" bash -c "[[ '$AUTHZ' == *nc=00000001* ]]"
check "sipp: replayed Authorization for a new contact -> 401" \
    sipp_scn bob_replay register-replay.xml -s bob -key auth "$AUTHZ" -cid_str "$CALLID" -key cport 5095 \
    -p "$(free_port)"
check "no binding from the replay; bob's own binding stays" \
    test "$(binding_count bob "sip:bob@$H:5095")" = 0 -a "$(binding_count bob "sip:bob@$H:5096")" = 1
check "the replay is logged" grep -q "user bob: replay" "$WORK/reg.log"

# 4b. A stale nonce (older than [auth] nonce_ttl = 5 s) is re-challenged with stale=true.
check "sipp: credentials for a 6 s old nonce -> 401 stale=true" \
    sipp_scn alice_stale register-stale.xml -s alice -au alice -ap alicepw -key expires 60 -key cport 5093 -p "$(free_port)"
check "no binding from the stale answer" test "$(binding_count alice "sip:alice@$H:5093")" = 0

# 5. Interval too brief: 423 with Min-Expires.
check "sipp: Expires 5 < min_expires -> 423 with Min-Expires" \
    sipp_scn alice_brief register-brief.xml -s alice -au alice -ap alicepw -key expires 5 -key cport 5098 -p "$(free_port)"
check "423 carried Min-Expires: 10" grep -aq '^Min-Expires: 10' "$WORK/alice_brief.msg"
check "no binding from the refused REGISTER" test "$(binding_count alice "sip:alice@$H:5098")" = 0

# 6. Several contacts; Expires 0 removes one; "Contact: *" removes the rest.
check "sipp: alice adds a second contact" \
    sipp_scn alice3 register.xml -s alice -au alice -ap alicepw -key expires 300 -key cport 5094 -p "$(free_port)"
check "the 200 lists both contacts" \
    bash -c "grep -aq 'Contact: <sip:alice@$H:5094>;expires=300' '$WORK/alice3.msg' && grep -aq 'Contact: <sip:alice@$H:5099>;expires=' '$WORK/alice3.msg'"
check "alice has two bindings" test "$(binding_count alice)" = 2
SEQ=$(events_json | jq '.last_seq')
check "sipp: alice unregisters one contact with Expires 0 -> 200" \
    sipp_scn alice4 register.xml -s alice -au alice -ap alicepw -key expires 0 -key cport 5094 -p "$(free_port)"
check "one binding left, user still online" test "$(binding_count alice)" = 1
check "registration.removed reason unregister" \
    has_event 'select(.type=="registration.removed" and .user=="alice" and .reason=="unregister")' "$SEQ"
check "no user.offline while a binding remains" \
    not has_event 'select(.type=="user.offline" and .user=="alice")' "$SEQ"
check "sipp: alice 'Contact: *' with Expires 0 -> 200" \
    sipp_scn alice5 register-star.xml -s alice -au alice -ap alicepw -key expires 0 -key cport 0 -p "$(free_port)"
check "alice has no binding left" test "$(binding_count alice)" = 0
check "event user.offline reason unregister for alice" \
    has_event 'select(.type=="user.offline" and .user=="alice" and .reason=="unregister")' "$SEQ"

# 7. sipsak as a second peer (its own digest code), right and wrong password.
check "sipsak: carol REGISTER with -a -> OK" \
    bash -c "timeout 20 sipsak -U -C sip:carol@$H:5093 -x 120 -s sip:carol@$H -r $PORT -u carol -a carolpw -vv >'$WORK/sipsak.out' 2>&1"
check "GET /registrations shows carol's binding from sipsak" jq_ok "$(api GET '/registrations?user=carol')" \
    "[.registrations[] | select(.contact == \"sip:carol@$H:5093\" and (.user_agent | startswith(\"sipsak\")))] | length == 1"
check "sipsak: wrong password fails" \
    bash -c "! timeout 20 sipsak -U -C sip:carol@$H:5092 -x 120 -s sip:carol@$H -r $PORT -u carol -a nope >'$WORK/sipsak2.out' 2>&1"
check "no binding from sipsak's wrong password" test "$(binding_count carol "sip:carol@$H:5092")" = 0

# 8. Kick through the API (user.offline reason kicked).
check "DELETE /registrations/carol removes 1" jq_ok "$(api DELETE /registrations/carol)" '.removed == 1'
check "carol has no binding" test "$(binding_count carol)" = 0
check "event user.offline reason kicked for carol" has_event 'select(.type=="user.offline" and .user=="carol" and .reason=="kicked")'
check "API without the token is refused" \
    bash -c "test \"\$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$API_PORT/api/v1/registrations)\" = 401"

# 9. TCP: a binding remembers its connection; when the connection closes
#    (sipp exits without unregistering) the binding goes at once.
SEQ=$(events_json | jq '.last_seq')
check "sipp over TCP: carol REGISTER -> 200" \
    sipp_scn carol_tcp register.xml -t t1 -s carol -au carol -ap carolpw -key expires 300 -key cport 5091 -p "$(free_port)"
check "user.offline reason transport-lost for carol once sipp's connection closed" \
    wait_for 20 has_event 'select(.type=="user.offline" and .user=="carol" and .reason=="transport-lost" and .transport=="tcp")' "$SEQ"
check "carol's TCP binding is gone" test "$(binding_count carol)" = 0

# 10. Restart: bob's binding (answered 200) is loaded back from the store.
kill "$reg_PID"; wait "$reg_PID" 2>/dev/null || true
start_cascade reg2 "$WORK/c.ini"
check "after a restart bob's binding is back" test "$(binding_count bob "sip:bob@$H:5096")" = 1

# 11. [registrar] keep_on_transport_loss = yes: the TCP binding stays, flagged,
#     and the user is reported offline (kept).
kill "$reg2_PID"; wait "$reg2_PID" 2>/dev/null || true
sed -i 's/^\[registrar\]$/[registrar]\nkeep_on_transport_loss = yes/' "$WORK/c.ini"
start_cascade reg3 "$WORK/c.ini"
SEQ=$(events_json | jq '.last_seq')
check "keep mode: sipp over TCP: carol REGISTER -> 200" \
    sipp_scn carol_keep register.xml -t t1 -s carol -au carol -ap carolpw -key expires 300 -key cport 5090 -p "$(free_port)"
check "keep mode: user.offline transport-lost (kept) for carol" \
    wait_for 20 has_event 'select(.type=="user.offline" and .user=="carol" and .reason=="transport-lost" and .kept==true)' "$SEQ"
check "keep mode: the binding stays, flagged transport_lost" \
    jq_ok "$(api GET '/registrations?user=carol')" '.registrations | length == 1 and .[0].transport_lost == true'

finish
