#!/usr/bin/env bash
# The HTTP API and the event stream over TLS ([api] tls_cert / tls_key):
# https:// answers with the token and refuses without it, a client that does
# not trust the test CA fails verification, plain http on that port gets no
# answer, and the event stream delivers events over wss://. Certificates
# from make_test_pki (pki.sh).
source "$(dirname "$0")/lib.sh"
source "$PEERS_DIR/pki.sh"

PKI=$WORK/pki
make_test_pki "$PKI"
PORT=$(free_port); API_PORT=$(free_port); API_TOKEN=tlstoken
cat >"$WORK/n.ini" <<INI
[sip]
listen = udp:127.0.0.1:$PORT, tcp:127.0.0.1:$PORT
domain = 127.0.0.1
[auth]
realm = cascade.test
[api]
listen = 127.0.0.1:$API_PORT
token = $API_TOKEN
tls_cert = $PKI/server.pem
tls_key = $PKI/server.key
[store]
path = $WORK/n.db
[log]
level = info
INI
check "cascade -t accepts the config" "$CASCADE" -t -c "$WORK/n.ini"
# A certificate file that is not there: -t names it, and so does a start.
sed -e "s|^tls_cert = .*|tls_cert = $PKI/nothere.pem|" "$WORK/n.ini" >"$WORK/bad.ini"
printf '[tls]\ncert = %s\nkey = %s\n' "$PKI/gone.pem" "$PKI/server.key" >>"$WORK/bad.ini"
check "cascade -t refuses a missing [api] tls_cert, naming it" \
    bash -c "! '$CASCADE' -t -c '$WORK/bad.ini' 2>'$WORK/t.err' && grep -q '\[api\] tls_cert $PKI/nothere.pem: No such file' '$WORK/t.err'"
check "... and a missing [tls] cert, naming it" grep -q "\[tls\] cert $PKI/gone.pem: No such file" "$WORK/t.err"
check "the daemon does not start with them, naming the file" \
    bash -c "! timeout 20 '$CASCADE' -c '$WORK/bad.ini' >'$WORK/bad-start.out' 2>&1 && grep -q 'gone.pem: No such file' '$WORK/bad-start.out'"
start_cascade api "$WORK/n.ini"
check "log: api: listening on https://" grep -q "api: listening on https://127.0.0.1:$API_PORT" "$WORK/api.log"

URL=https://127.0.0.1:$API_PORT
# status [curl args...] PATH_URL: the HTTP status, 000 when there was none.
status() { curl -s -o "$WORK/body" -w '%{http_code}' --max-time 10 "$@" || true; }
check "https GET /api/v1/stats with the token: 200" \
    test "$(status --cacert "$PKI/ca.pem" -H "Authorization: Bearer $API_TOKEN" "$URL/api/v1/stats")" = 200
check "... and the body is a JSON object" jq_ok "$(cat "$WORK/body")" 'type == "object"'
check "https GET /api/v1/stats without the token: 401" \
    test "$(status --cacert "$PKI/ca.pem" "$URL/api/v1/stats")" = 401
check "https by name (localhost) verifies too" \
    test "$(status --cacert "$PKI/ca.pem" -H "Authorization: Bearer $API_TOKEN" "https://localhost:$API_PORT/api/v1/stats")" = 200
check "curl without the test CA fails verification (exit 60)" \
    bash -c "curl -s -o /dev/null --max-time 10 -H 'Authorization: Bearer $API_TOKEN' '$URL/api/v1/stats'; [ \$? -eq 60 ]"
check "curl trusting only the stranger's certificate fails verification" \
    bash -c "curl -s -o /dev/null --max-time 10 --cacert '$PKI/stranger.pem' '$URL/metrics'; [ \$? -eq 60 ]"
PLAIN=$(status -H "Authorization: Bearer $API_TOKEN" "http://127.0.0.1:$API_PORT/api/v1/stats")
check "plain http to the TLS port gets no 200 (got $PLAIN)" test "$PLAIN" != 200

# An event: a REGISTER with a wrong password (auth.failed) from sipsak.
check "POST /users carol over https: 201" \
    test "$(status --cacert "$PKI/ca.pem" -X POST -H "Authorization: Bearer $API_TOKEN" \
        -H 'Content-Type: application/json' --data '{"name":"carol","password":"carolpw"}' "$URL/api/v1/users")" = 201
timeout 20 sipsak -U -C "sip:carol@127.0.0.1:5093" -x 120 -s "sip:carol@127.0.0.1" -r "$PORT" -u carol -a carolpw \
    >"$WORK/sipsak.out" 2>&1 || true
check "the registration shows over https" \
    jq_ok "$(curl -s --cacert "$PKI/ca.pem" -H "Authorization: Bearer $API_TOKEN" "$URL/api/v1/registrations?user=carol")" \
    '.registrations | length == 1'

# The event stream over wss:// (tests/peers/eventsws.py, python's ssl):
# ?since=0 replays the ring, which holds user.online for carol.
# wss_first_event CAFILE TOKEN: prints user.online when the stream delivers
# carol's; fails with the reason on stderr.
wss_first_event() {
    python3 "$PEERS_DIR/eventsws.py" find "$API_PORT" "$2" 0 user.online carol --cafile "$1" --timeout 10
}
check "wss: the event stream delivers user.online for carol" \
    test "$(wss_first_event "$PKI/ca.pem" "$API_TOKEN")" = user.online
wss_first_event "$PKI/ca.pem" wrong >/dev/null 2>"$WORK/wss-token.err" || true
check "wss without the token is refused with 401" grep -q "no upgrade: b'HTTP/1.[01] 401" "$WORK/wss-token.err"
wss_first_event "$PKI/stranger.pem" "$API_TOKEN" >/dev/null 2>"$WORK/wss-stranger.err" || true
check "wss trusting only the stranger fails verification" grep -q CERTIFICATE_VERIFY_FAILED "$WORK/wss-stranger.err"

finish
