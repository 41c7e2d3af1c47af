#!/usr/bin/env bash
# The HTTP API as the network sees it: it listens on exactly the configured
# address (127.0.0.1 here: not [::1], not another local address), refuses to
# start open (no token) anywhere but loopback, and refuses user names its own
# routes could not address (a user "a/b" or ".." could never be deleted),
# through the API and through cascadectl alike.
source "$(dirname "$0")/lib.sh"

PORT=$(free_port); API_PORT=$(free_port); API_TOKEN=apitoken
node_ini n "$PORT" "$API_PORT" 127.0.0.1 <<INI
[auth]
realm = cascade.test
INI
start_cascade api "$WORK/n.ini"

# ---- where it listens
listening() { ss -ltnH "sport = :$API_PORT" | awk '{print $4}'; }
check "ss: the API socket is bound to 127.0.0.1:$API_PORT only" test "$(listening)" = "127.0.0.1:$API_PORT"
status_at() { curl -s -g -o /dev/null -w '%{http_code}' --max-time 5 "http://$1:$API_PORT/metrics" || true; }
check "GET /metrics on 127.0.0.1 answers 200" test "$(status_at 127.0.0.1)" = 200
check "nothing answers on 127.0.0.2:$API_PORT" test "$(status_at 127.0.0.2)" = 000
check "nothing answers on [::1]:$API_PORT" test "$(status_at '[::1]')" = 000

# ---- user names the routes can address
post_user() { # NAME -> HTTP status of POST /users
    curl -s -o "$WORK/post.json" -w '%{http_code}' -X POST -H "Authorization: Bearer $API_TOKEN" \
        -H 'Content-Type: application/json' --data "$(jq -cn --arg n "$1" '{name:$n,password:"pw"}')" \
        "http://127.0.0.1:$API_PORT/api/v1/users"
}
for bad in 'a/b' '..' '.' 'a;b' 'a?b' 'a b' 'a%2Fb' 'a@b' ''; do
    check "POST /users name '$bad': 400 bad-name" \
        bash -c "[ \"\$1\" = 400 ] && jq -e '.error == \"bad-name\"' '$WORK/post.json' >/dev/null" _ "$(post_user "$bad")"
done
check "cascadectl user add a/b is refused" not ctl user add a/b --password pw
check "... and a/b was not created" jq_ok "$(api GET /users)" '[.users[] | select(.name == "a/b")] | length == 0'
odd="a&b+c=d\$e,f!g~h*i'j(k)l-m_n.o"
check "POST /users with every allowed special character: 201" test "$(post_user "$odd")" = 201
check "cascadectl user del of that name" ctl user del "$odd"
check "... it is gone" env ODD="$odd" jq -e "[.users[] | select(.name == \$ENV.ODD)] | length == 0" <<<"$(api GET /users)" >/dev/null
check "cascadectl user add ..x (dots inside a name are fine)" ctl user add ..x --password pw
check "DELETE /users/..x" test "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE \
    -H "Authorization: Bearer $API_TOKEN" "http://127.0.0.1:$API_PORT/api/v1/users/..x")" = 200

# ---- no token: loopback only
OPEN_PORT=$(free_port); OPEN_API=$(free_port)
cat >"$WORK/open.ini" <<INI
[sip]
listen = udp:127.0.0.1:$OPEN_PORT
[api]
listen = 0.0.0.0:$OPEN_API
[store]
path = $WORK/open.db
INI
(cd "$WORK" && timeout 20 "$CASCADE" -c "$WORK/open.ini" >"$WORK/open.log" 2>&1) && rc=0 || rc=$?
check "no token with listen = 0.0.0.0: cascade refuses to start" test "$rc" -ne 0 -a "$rc" -ne 124
check "... and says why" grep -q "without a token" "$WORK/open.log"
check "... and listened nowhere meanwhile" test -z "$(ss -ltnH "sport = :$OPEN_API")"

finish
