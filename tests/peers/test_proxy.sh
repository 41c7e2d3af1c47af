#!/usr/bin/env bash
# Proxy and redirect checks with real peers (RFC 3261 §16, §8.3): a sipp UAS
# registers (digest) and a sipp UAC calls it through cascade —
# INVITE/180/200/ACK/BYE with Record-Route, CANCEL before the answer (487),
# parallel forking to two registered UAS (one answers, the other is
# CANCELled), MESSAGE, callee not registered (480), unknown user (404),
# Max-Forwards 0 (483), a loop through DNS (482); then a redirect-mode
# instance answers 302 with the Contact, and refuses foreign domains (403);
# then an authenticating instance ([proxy] authenticate, the default)
# challenges callers from our domain with 407: no credentials, wrong
# password, another user's credentials (403), a full call with the right
# ones (credentials not passed on), a MESSAGE from another domain that
# needs none, and timer C (a callee ringing too long is CANCELled, its 487
# goes to the caller); last, [proxy] trusted sources are not challenged.
# The first two instances run with authenticate = no.
source "$(dirname "$0")/lib.sh"

PORT=$(free_port); API_PORT=$(free_port); API_TOKEN=proxytoken
node_ini p "$PORT" "$API_PORT" 127.0.0.1 <<INI
[auth]
realm = cascade.test
[proxy]
mode = proxy
allow_foreign = yes
authenticate = no
invite_timeout = 30
INI
start_cascade proxy "$WORK/p.ini"
H=127.0.0.1

# uas_start NAME SCENARIO PORT [sipp args]: a sipp UAS in the background.
uas_start() {
    local name=$1 sf=$2 port=$3
    shift 3
    sipp_spawn "$name" 60 -sf "$PEERS_DIR/sipp/$sf" -s bob -p "$port" "$@"
    eval "${name}_UAS=$SIPP_PID"
    sleep 0.3
}
# uas_ok NAME: the background UAS finished its scenario (exit 0).
uas_ok() {
    local pid
    eval "pid=\$${1}_UAS"
    wait "$pid"
}
# reject_scn STATUS: uac-reject.xml expecting STATUS, written into $WORK.
reject_scn() {
    sed "s/STATUS/$1/g" "$PEERS_DIR/sipp/uac-reject.xml" >"$WORK/reject-$1.xml"
    echo "$WORK/reject-$1.xml"
}
reg() { # reg NAME USER PASSWORD PORT: register USER's contact at 127.0.0.1:PORT from that port
    sipp_scn "$1" register.xml -s "$2" -au "$2" -ap "$3" -key expires 300 -key cport "$4" -p "$4"
}

check "cascadectl user add bob" ctl user add bob --password bobpw
check "cascadectl user add dave (never registers)" ctl user add dave --password davepw
check "cascadectl user add carl" ctl user add carl --password carlpw

# 1. A call through the proxy: INVITE/180/200/ACK/BYE with Record-Route.
UAS1=$(free_port)
check "sipp UAS registers bob (digest) from its own port" reg reg1 bob bobpw "$UAS1"
uas_start uas1 uas-call.xml "$UAS1"
check "sipp UAC: INVITE/180/200/ACK/BYE through cascade" \
    sipp_scn uac1 uac-call.xml -s bob -p "$(free_port)"
check "sipp UAS: got INVITE with our Via and Record-Route, ACK and BYE" uas_ok uas1
check "the UAS saw Max-Forwards decremented" grep -aq '^Max-Forwards: 69' "$WORK/uas1.msg"
check "the BYE reached the UAS through the route set (our Via on top)" \
    bash -c "grep -a -A1 '^BYE sip:bob@$H:$UAS1' '$WORK/uas1.msg' | grep -q 'branch=z9hG4bKcP'"
check "the ACK for the 2xx was routed to the UAS" grep -aq "^ACK sip:bob@$H:$UAS1" "$WORK/uas1.msg"

# 1b. The caller on TCP, the callee on UDP: the transport changes at the
#     proxy, so it record-routes twice (RFC 5658) and pops both on the way back.
uas_start uas1b uas-call.xml "$UAS1"
check "sipp UAC over TCP -> cascade -> UAS over UDP: full call" \
    sipp_scn uac1b uac-call.xml -s bob -t t1 -p "$(free_port)"
check "UAS (UDP) got the call, ACK and BYE" uas_ok uas1b
check "double Record-Route: a tcp and a udp entry for us" \
    bash -c "grep -aq '^Record-Route: <sip:$H:$PORT;transport=tcp;lr>' '$WORK/uas1b.msg' &&
             grep -aq '^Record-Route: <sip:$H:$PORT;lr>' '$WORK/uas1b.msg'"

# 1c. Path (RFC 3327): carl registers through an "edge proxy" (a sipp UAS at
#     EDGE); calls to carl go to the edge with the Path as Route and carl's
#     contact as Request-URI.
EDGE=$(free_port)
check "carl registers with Path and Supported: path; the 200 echoes the Path" \
    sipp_scn regpath register-path.xml -s carl -au carl -ap carlpw -key expires 300 -key cport 5089 \
    -key pport "$EDGE" -p "$(free_port)"
check "GET /registrations shows carl's Path" \
    jq_ok "$(api GET '/registrations?user=carl')" ".registrations[0].path == \"<sip:$H:$EDGE;lr>\""
sipp_spawn edge 60 -sf "$PEERS_DIR/sipp/uas-call.xml" -s carl -p "$EDGE"
edge_UAS=$SIPP_PID
sleep 0.3
check "sipp UAC: call to carl goes through the Path" sipp_scn uac1c uac-call.xml -s carl -p "$(free_port)"
check "the edge got the INVITE for carl's contact with the Path as Route" \
    bash -c "grep -aq '^INVITE sip:carl@$H:5089 SIP/2.0' '$WORK/edge.msg' && grep -aq '^Route: <sip:$H:$EDGE;lr>' '$WORK/edge.msg'"
check "the edge finished the call" uas_ok edge

# 2. CANCEL before the answer: 200 to the CANCEL, the UAS gets a CANCEL, 487 back.
uas_start uas2 uas-cancel.xml "$UAS1"
check "sipp UAC: INVITE, 180, CANCEL -> 200, 487, ACK" sipp_scn uac2 uac-cancel.xml -s bob -p "$(free_port)"
check "sipp UAS: CANCEL arrived, 487 sent, ACK received" uas_ok uas2

# 3. Parallel forking: bob registered from two UAS; one answers, the other is CANCELled.
UAS2=$(free_port)
check "bob registers a second contact" reg reg2 bob bobpw "$UAS2"
check "bob has two bindings" test "$(binding_count bob)" = 2
uas_start uas3a uas-call.xml "$UAS1"
uas_start uas3b uas-cancel.xml "$UAS2"
check "sipp UAC: forked INVITE answered by one UAS, ACK/BYE follow it" \
    sipp_scn uac3 uac-call.xml -s bob -p "$(free_port)"
check "UAS A answered and got the BYE" uas_ok uas3a
check "UAS B rang and got the CANCEL (487)" uas_ok uas3b

# 4. MESSAGE to a registered user is proxied too (both contacts get it; both answer).
uas_start uas4a uas-message.xml "$UAS1"
uas_start uas4b uas-message.xml "$UAS2"
check "sipp: MESSAGE to bob -> 200" sipp_scn uac4 uac-message.xml -s bob -p "$(free_port)"
check "UAS A got the MESSAGE" uas_ok uas4a
check "UAS B got the MESSAGE" uas_ok uas4b

# 5. Refusals.
check "callee known but not registered -> 480" \
    sipp_scn r480 "$(reject_scn 480)" -s dave -key target "$H:$PORT" -key mf 70 -p "$(free_port)"
check "unknown user -> 404" \
    sipp_scn r404 "$(reject_scn 404)" -s nobody -key target "$H:$PORT" -key mf 70 -p "$(free_port)"
check "Max-Forwards 0 -> 483" \
    sipp_scn r483 "$(reject_scn 483)" -s bob -key target "$H:$PORT" -key mf 0 -p "$(free_port)"
# localhost is not a name of ours: the request goes out (DNS) and comes back
# unchanged with our Via in it: a loop (RFC 3261 §16.3 step 4).
check "a request that comes back to us unchanged -> 482" \
    sipp_scn r482 "$(reject_scn 482)" -s loop -key target "localhost:$PORT" -key mf 70 -p "$(free_port)"
check "the loop was detected (log)" grep -q "482 Loop Detected" "$WORK/proxy.log"
check "GET /stats counts the proxy's work" \
    jq_ok "$(api GET /stats)" '.proxy.not_found >= 1 and .proxy.unavailable >= 1 and .proxy.loops >= 1 and .proxy.cancels >= 1'

# 6. Redirect mode: 302 with the registered contact; foreign domains refused.
RPORT=$(free_port); RAPI=$(free_port)
node_ini r "$RPORT" "$RAPI" 127.0.0.1 <<INI
[auth]
realm = cascade.test
[proxy]
mode = redirect
authenticate = no
INI
start_cascade redirect "$WORK/r.ini"
PORT=$RPORT API_PORT=$RAPI
UAS3=$(free_port)
check "redirect: cascadectl user add bob" ctl user add bob --password bobpw
check "redirect: bob registers" reg reg3 bob bobpw "$UAS3"
check "redirect: INVITE bob -> 302" \
    sipp_scn r302 "$(reject_scn 302)" -s bob -key target "$H:$RPORT" -key mf 70 -p "$(free_port)"
check "the 302 carries bob's contact" grep -aq "^Contact: <sip:bob@$H:$UAS3>" "$WORK/r302.msg"
check "redirect: unknown user -> 404" \
    sipp_scn r404b "$(reject_scn 404)" -s nobody -key target "$H:$RPORT" -key mf 70 -p "$(free_port)"
check "redirect: foreign domain (allow_foreign off) -> 403" \
    sipp_scn r403 "$(reject_scn 403)" -s bob -key target "192.0.2.1:5060" -key mf 70 -p "$(free_port)"

# 7. Proxy authentication (RFC 3261 §22.3), [proxy] authenticate at its default.
APORT=$(free_port); AAPI=$(free_port)
node_ini a "$APORT" "$AAPI" 127.0.0.1 <<INI
[auth]
realm = cascade.test
[proxy]
invite_timeout = 2
INI
start_cascade authproxy "$WORK/a.ini"
PORT=$APORT API_PORT=$AAPI
# auth_scn STATUS: uac-auth-reject.xml expecting STATUS after the credentials.
auth_scn() {
    sed "s/STATUS/$1/g" "$PEERS_DIR/sipp/uac-auth-reject.xml" >"$WORK/auth-$1.xml"
    echo "$WORK/auth-$1.xml"
}
check "auth: cascadectl user add bob" ctl user add bob --password bobpw
check "auth: cascadectl user add caller" ctl user add caller --password callerpw
UAS4=$(free_port)
check "auth: bob registers (REGISTER is the registrar's, 401 as before)" reg reg4 bob bobpw "$UAS4"
check "auth: INVITE from caller@our domain without credentials -> 407" \
    sipp_scn a407 "$(reject_scn 407)" -s bob -key target "$H:$APORT" -key mf 70 -p "$(free_port)"
check "the 407 carries Proxy-Authenticate for our realm" \
    grep -aq '^Proxy-Authenticate: Digest realm="cascade.test"' "$WORK/a407.msg"
check "auth: wrong password -> 407 again" \
    sipp_scn abad "$(auth_scn 407)" -s bob -au caller -ap wrong -auth_uri "bob@$H:$APORT" -p "$(free_port)"
check "the refusal is logged with the sender's address" grep -q "proxy: 407 to INVITE from $H:.*: user caller: bad response" "$WORK/authproxy.log"
check "auth: bob's credentials with From caller -> 403" \
    sipp_scn a403 "$(auth_scn 403)" -s bob -au bob -ap bobpw -auth_uri "bob@$H:$APORT" -p "$(free_port)"
uas_start uas5 uas-call.xml "$UAS4"
check "auth: INVITE, 407, INVITE with credentials, 180/200/ACK/BYE" \
    sipp_scn acall uac-call-auth.xml -s bob -au caller -ap callerpw -auth_uri "bob@$H:$APORT" -p "$(free_port)"
check "auth: the UAS got the call, ACK and BYE" uas_ok uas5
check "the credentials were consumed: the UAS saw no Proxy-Authorization" \
    bash -c "grep -aq '^INVITE sip:bob' '$WORK/uas5.msg' && ! grep -aqi '^Proxy-Authorization' '$WORK/uas5.msg'"
sed 's/caller@\[local_ip\]:\[local_port\]>;tag/caller@example.org>;tag/' "$PEERS_DIR/sipp/uac-message.xml" >"$WORK/uac-message-foreign.xml"
uas_start uas6 uas-message.xml "$UAS4"
check "auth: MESSAGE from another domain to bob needs no credentials -> 200" \
    sipp_scn aforeign "$WORK/uac-message-foreign.xml" -s bob -p "$(free_port)"
check "auth: bob got the MESSAGE" uas_ok uas6
check "GET /stats counts the challenges" \
    jq_ok "$(api GET /stats)" '.proxy.challenged >= 2 and .proxy.auth_failed >= 2'
# Timer C (invite_timeout = 2 s here, RFC 3261 §16.8): bob rings and never
# answers; cascade CANCELs the ringing branch and relays bob's 487.
uas_start uas7 uas-cancel.xml "$UAS4"
check "timer C: INVITE rings past invite_timeout -> the caller gets the callee's 487" \
    sipp_scn atimerc "$(auth_scn 487)" -s bob -au caller -ap callerpw -auth_uri "bob@$H:$APORT" -p "$(free_port)"
check "timer C: bob got the CANCEL, answered 200 and 487, got the ACK" uas_ok uas7
check "timer C counted" jq_ok "$(api GET /stats)" '.proxy.timer_c == 1'

# 8. [proxy] trusted: a gateway's requests are not challenged (here 127.0.0.1,
#    inside a list with other blocks); the same INVITE the authenticating
#    instance answered 407 reaches routing (480: dave has no binding).
TPORT=$(free_port); TAPI=$(free_port)
node_ini t "$TPORT" "$TAPI" 127.0.0.1 <<INI
[auth]
realm = cascade.test
[proxy]
trusted = 192.0.2.0/24, 127.0.0.1, 2001:db8::/32
INI
start_cascade trusted "$WORK/t.ini"
PORT=$TPORT API_PORT=$TAPI
check "trusted: cascadectl user add dave" ctl user add dave --password davepw
check "trusted: INVITE from a trusted source without credentials -> 480 (routed, not challenged)" \
    sipp_scn t480 "$(reject_scn 480)" -s dave -key target "$H:$TPORT" -key mf 70 -p "$(free_port)"
check "trusted: nothing was challenged" jq_ok "$(api GET /stats)" '.proxy.challenged == 0 and .proxy.unavailable == 1'

finish
