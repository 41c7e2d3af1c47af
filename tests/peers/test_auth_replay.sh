#!/usr/bin/env bash
# Replayed and re-used digest answers (issue 9). Nonces are bound to the IP
# they were issued to: an answer on a nonce taken by 127.0.0.1 gets 401
# stale=true from 127.0.0.2, for SIP users and for GB/T 28181 devices (whose
# default RFC 2069 answers, without qop, are replayable as they are). A
# REGISTER on a nonce accepted before refreshes a binding in place but may
# not move it to another source address: re-challenged, while a fresh nonce
# moves it. GB answers without qop live [auth] nonce_ttl_noqop seconds.
source "$(dirname "$0")/lib.sh"

PORT=$(free_port); API_PORT=$(free_port); API_TOKEN=replaytoken
GB_ID=34020000002000000001
DEV=34020000001320000001
gb_upper_ini rp "$PORT" "$API_PORT" "$GB_ID" 12345678 yes <<INI
catalog_on_register = no
[auth]
realm = cascade.test
nonce_ttl_noqop = 5
INI
start_cascade replay "$WORK/rp.ini"
reg() { python3 "$PEERS_DIR/sipreg.py" --server "127.0.0.1:$PORT" "$@"; }
remote_of() { api GET "/registrations?user=$1" | jq -r '.registrations[0].remote'; }

# ---- SIP (qop=auth) ----
check "cascadectl user add bob" ctl user add bob --password bobpw
P1=$(free_port); P2=$(free_port)
check "bob registers from 127.0.0.1:$P1 (contact port 5099), keeping the nonce" \
    test "$(reg --bind "127.0.0.1:$P1" --contact-port 5099 --user bob --password bobpw save "$WORK/bob.json")" = 200
check "bob's nonce answered (right password, next nc) from 127.0.0.2: 401 stale=true" \
    test "$(reg --bind 127.0.0.2 --contact-port 5099 --user bob --password bobpw reuse "$WORK/bob.json")" = "401 stale"
check "... and bob's binding did not move" test "$(remote_of bob)" = "127.0.0.1:$P1"
check "the same nonce from where it was issued refreshes the binding in place: 200" \
    test "$(reg --bind "127.0.0.1:$P1" --contact-port 5099 --user bob --password bobpw reuse "$WORK/bob.json")" = 200
check "the same nonce from another port of that IP may not move the binding: 401 stale=true" \
    test "$(reg --bind "127.0.0.1:$P2" --contact-port 5099 --user bob --password bobpw reuse "$WORK/bob.json")" = "401 stale"
check "... the binding still points at port $P1" test "$(remote_of bob)" = "127.0.0.1:$P1"
check "... nor may it add a contact: 401 stale=true" \
    test "$(reg --bind "127.0.0.1:$P1" --contact-port 5098 --user bob --password bobpw reuse "$WORK/bob.json")" = "401 stale"
check "a fresh nonce from port $P2 moves it: 200" \
    test "$(reg --bind "127.0.0.1:$P2" --contact-port 5099 --user bob --password bobpw register)" = 200
check "... now at port $P2" test "$(remote_of bob)" = "127.0.0.1:$P2"
check "the refusal from another address is logged as such" \
    grep -q "stale nonce (user bob, nonce issued to another address)" "$WORK/replay.log"

# ---- GB/T 28181 (no qop, the default) ----
GP=$(free_port)
gbreg() { reg --user "$DEV" --domain 3402000000 --gb-id "$GB_ID" --password 12345678 "$@"; }
check "GB device registers from 127.0.0.1:$GP, its Authorization captured" \
    test "$(gbreg --bind "127.0.0.1:$GP" save "$WORK/dev.json")" = 200
check "GET /gb/devices: the device is at 127.0.0.1:$GP" \
    jq_ok "$(api GET "/gb/devices/$DEV")" ".remote == \"127.0.0.1:$GP\""
check "the captured Authorization replayed verbatim from 127.0.0.2: 401" \
    bash -c "gbr=\$(python3 '$PEERS_DIR/sipreg.py' --server 127.0.0.1:$PORT --bind 127.0.0.2 --user $DEV --domain 3402000000 \
        --gb-id $GB_ID replay '$WORK/dev.json'); echo \"# \$gbr\"; [[ \$gbr == 401* ]]"
check "... and the device did not move" jq_ok "$(api GET "/gb/devices/$DEV")" ".remote == \"127.0.0.1:$GP\""
sleep 6 # past [auth] nonce_ttl_noqop = 5
check "after nonce_ttl_noqop the capture is stale even from the device's own address: 401 stale=true" \
    test "$(gbreg --bind "127.0.0.1:$GP" replay "$WORK/dev.json")" = "401 stale"
check "the device registers again with a fresh nonce: 200" test "$(gbreg --bind "127.0.0.1:$GP" register)" = 200

finish
