#!/usr/bin/env bash
# The presence package (RFC 3856) with PUBLISH (RFC 3903) on cascade's
# notifier, sipp as publisher, watcher and registering phone: bob watches
# alice; her state is derived from her registrations (closed, then open when
# she registers), then taken from what she PUBLISHes (open, then closed by a
# modify under the entity tag), then derived again after the removal
# (Expires: 0), closed again when she unregisters. Bodies are read with
# xmllint XPath, never by substring. Also: 412 for an unknown SIP-If-Match,
# 489 for a PUBLISH of another event, 400 for a body that is not PIDF, 423
# under min_expires, 403 for publishing another user's presence, and 403 to
# a watcher the allowlist policy refuses.
source "$(dirname "$0")/lib.sh"

API_TOKEN=prestoken
sub_node pres c <<INI
[registrar]
min_expires = 1
[subscriptions]
min_expires = 2
INI

# PIDF documents are read with xp (lib.sh), elements by local name.
P="/*[local-name()='presence']"
T="$P/*[local-name()='tuple']"
BASIC="*[local-name()='status']/*[local-name()='basic']"
register() { # register NAME EXPIRES CPORT
    sipp_scn "$1" register.xml -s alice -au alice -ap alicepw -key expires "$2" -key cport "$3" -p "$(free_port)"
}
pidf() { # pidf TUPLE_ID BASIC: a one-tuple document of alice
    printf '<?xml version="1.0" encoding="UTF-8"?><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:alice@%s"><tuple id="%s"><status><basic>%s</basic></status><note>sipp</note></tuple></presence>' "$H" "$1" "$2"
}
publish() { # publish NAME EVENT EXPIRES COND BODY [USER PASSWORD]
    sipp_scn "$1" publish.xml -s alice -au "${6:-alice}" -ap "${7:-alicepw}" -auth_uri "alice@$H:$PORT" \
        -key event "$2" -key expires "$3" -key cond "$4" -key body "$5" -p "$(free_port)"
}
# status_of NAME: the status code of the last response sipp NAME received.
status_of() { grep -a '^SIP/2.0 ' "$WORK/$1.msg" | tail -1 | awk '{print $2}'; }
etag_of() { grep -a '^SIP-ETag: ' "$WORK/$1.msg" | tail -1 | awk '{print $2}' | tr -d '\r'; }

# 1. bob watches alice (six NOTIFYs, then unsubscribe).
sipp_scn w sub-presence.xml -s alice -key watcher bob -au bob -ap bobpw -auth_uri "alice@$H:$PORT" \
    -key expires 600 -p "$(free_port)" &
W=$!
N=$WORK/w.n
check "NOTIFY 1 reached bob" wait_for 30 got_notifies w 1
check "NOTIFY 1: Event presence, active, application/pidf+xml" \
    first_notify_head "$N/1.hdr" presence application/pidf+xml
check "NOTIFY 1: entity sip:alice@$H, basic closed (no binding, nothing published)" \
    test "$(xp $N/1.xml "$P/@entity")/$(xp $N/1.xml "$T/$BASIC")" = "sip:alice@$H/closed"
check "GET /users/alice/subscriptions: bob's presence subscription, this node's (no cluster)" \
    jq_ok "$(api GET /users/alice/subscriptions)" '.scope == "node" and (.subscriptions | length) == 1 and
        .subscriptions[0].watcher == "sip:bob@127.0.0.1" and .subscriptions[0].event == "presence" and
        .subscriptions[0].expires_in > 500 and .subscriptions[0].node == ""'

check "sipp: alice registers" register r1 60 5097
check "NOTIFY 2 after the registration" wait_for 30 got_notifies w 2
check "NOTIFY 2: derived from the binding: basic open, contact sip:alice@$H:5097" \
    test "$(xp $N/2.xml "$T/$BASIC")/$(xp $N/2.xml "$T/*[local-name()='contact']")" = "open/sip:alice@$H:5097"

check "sipp: alice PUBLISHes open -> 200" publish p1 presence 120 "Subject: initial" "$(pidf sipp-pc open)"
check "PUBLISH 1 answered 200 with a SIP-ETag and Expires 120" \
    bash -c "test '$(status_of p1)' = 200 && test -n '$(etag_of p1)' && grep -aq '^Expires: 120' $WORK/p1.msg"
E1=$(etag_of p1)
check "NOTIFY 3 after the PUBLISH" wait_for 30 got_notifies w 3
check "NOTIFY 3: the published tuple sipp-pc, basic open" \
    test "$(xp $N/3.xml "count($T)")/$(xp $N/3.xml "$T/@id")/$(xp $N/3.xml "$T/$BASIC")" = "1/sipp-pc/open"

check "sipp: PUBLISH with an unknown SIP-If-Match -> 412" publish p2 presence 120 "SIP-If-Match: nosuchtag" ""
check "412 Conditional Request Failed" test "$(status_of p2)" = 412

check "sipp: alice modifies (If-Match, closed) -> 200" publish p3 presence 120 "SIP-If-Match: $E1" "$(pidf sipp-pc closed)"
E2=$(etag_of p3)
check "the modify got a new entity tag" bash -c "test '$(status_of p3)' = 200 && test -n '$E2' && test '$E2' != '$E1'"
check "NOTIFY 4 after the modify" wait_for 30 got_notifies w 4
check "NOTIFY 4: tuple sipp-pc, basic closed" \
    test "$(xp $N/4.xml "$T/@id")/$(xp $N/4.xml "$T/$BASIC")" = "sipp-pc/closed"
check "sipp: the old tag no longer refreshes -> 412" publish p4 presence 120 "SIP-If-Match: $E1" ""
check "412 for the replaced tag" test "$(status_of p4)" = 412

check "sipp: alice removes her publication (Expires: 0) -> 200" publish p5 presence 0 "SIP-If-Match: $E2" ""
check "the removal: 200, Expires 0, no SIP-ETag" \
    bash -c "test '$(status_of p5)' = 200 && grep -aq '^Expires: 0' $WORK/p5.msg && test -z \"\$(grep -a '^SIP-ETag' $WORK/p5.msg)\""
check "NOTIFY 5 after the removal" wait_for 30 got_notifies w 5
check "NOTIFY 5: derived again from the binding: tuple registration, basic open" \
    test "$(xp $N/5.xml "$T/@id")/$(xp $N/5.xml "$T/$BASIC")" = "registration/open"

check "sipp: alice unregisters" register r2 0 5097
check "NOTIFY 6 after the unregistration" wait_for 30 got_notifies w 6
check "NOTIFY 6: basic closed" test "$(xp $N/6.xml "$T/$BASIC")" = "closed"
check "bob unsubscribed and got the terminated NOTIFY (sipp ran the scenario)" wait "$W"
got_notifies w 7 || true
check "NOTIFY 7: terminated;reason=timeout, a PIDF body" \
    bash -c "grep -q '^Subscription-State: terminated;reason=timeout$' $N/7.hdr && test \"\$(xmllint --xpath 'string(/*/@entity)' $N/7.xml)\" = sip:alice@$H"

# 2. Refusals.
check "sipp: PUBLISH Event: dialog -> 489" publish p6 dialog 120 "Subject: initial" "$(pidf x open)"
check "489 with Allow-Events: presence" \
    bash -c "test '$(status_of p6)' = 489 && grep -aq '^Allow-Events: presence' $WORK/p6.msg"
check "sipp: PUBLISH of a body that is not PIDF -> 400" publish p7 presence 120 "Subject: initial" "<presence/>"
check "400 with a Warning naming why" \
    bash -c "test '$(status_of p7)' = 400 && grep -aq '^Warning: 399 cascade \"the root is not a PIDF <presence>\"' $WORK/p7.msg"
check "sipp: PUBLISH with Expires 1 -> 423" publish p8 presence 1 "Subject: initial" "$(pidf x open)"
check "423 with Min-Expires: 2" bash -c "test '$(status_of p8)' = 423 && grep -aq '^Min-Expires: 2' $WORK/p8.msg"
check "sipp: bob PUBLISHes for alice -> 403" publish p9 presence 120 "Subject: initial" "$(pidf x open)" bob bobpw
check "403: a user publishes only its own presence" test "$(status_of p9)" = 403

# 3. presence_policy = allowlist on a second node: bob is refused until
# alice's allow list (API) names him; the list survives a restart.
PORT2=$(free_port); API2=$(free_port)
node_ini c2 "$PORT2" "$API2" 127.0.0.1 <<INI
[auth]
realm = cascade.test
[subscriptions]
min_expires = 2
presence_policy = allowlist
INI
kill "$pres_PID"; wait "$pres_PID" 2>/dev/null || true
PORT=$PORT2; API_PORT=$API2
start_cascade pres2 "$WORK/c2.ini"
ctl user add alice --password alicepw >/dev/null
ctl user add bob --password bobpw >/dev/null
check "GET allow list: policy allowlist, empty" \
    jq_ok "$(api GET /users/alice/presence/allow)" '.user == "alice" and .policy == "allowlist" and .allow == []'
check "sipp: bob SUBSCRIBEs to alice's presence -> 403 (not on her list)" \
    sipp_scn d1 sub-presence-denied.xml -s alice -key watcher bob -au bob -ap bobpw -auth_uri "alice@$H:$PORT" \
    -p "$(free_port)"
check "PUT allow list [bob]" jq_ok "$(api PUT /users/alice/presence/allow '{"allow":["bob"]}')" '.allow == ["bob"]'
check "PUT with a bad name -> 400 bad-allow" \
    jq_ok "$(api PUT /users/alice/presence/allow '{"allow":[""]}')" '.error == "bad-allow"'
check "GET allow list of an unknown user -> 404" jq_ok "$(api GET /users/nobody/presence/allow)" '.error == "not-found"'
kill "$pres2_PID"; wait "$pres2_PID" 2>/dev/null || true
start_cascade pres3 "$WORK/c2.ini"
check "after a restart the allow list is still [bob] (SQLite)" \
    jq_ok "$(api GET /users/alice/presence/allow)" '.allow == ["bob"]'
check "sipp: now bob's subscription is accepted, NOTIFY, unsubscribe" \
    sipp_scn w2 sub-presence-once.xml -s alice -key watcher bob -au bob -ap bobpw -auth_uri "alice@$H:$PORT" \
    -key expires 600 -p "$(free_port)"
got_notifies w2 1 || true
check "bob's NOTIFY: alice closed (nothing bound on this node)" \
    test "$(xp $WORK/w2.n/1.xml "$T/$BASIC")" = closed

finish
