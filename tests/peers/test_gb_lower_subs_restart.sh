#!/usr/bin/env bash
# test_gb_lower_subs_restart.sh — the subscriptions an upper holds with the
# lower role survive a restart of the lower (issue 15: "persisted so that a
# restart does not lose active subscriptions"). Two cascade nodes: "top" (the
# upper, [gb] subscribe = catalog,alarm) and "low" (registered to it as a
# lower platform, notify_without_subscription = no, so that a catalog change
# can reach the top only as a NOTIFY within the subscription):
#  - the top's subscriptions are active, the same dialog on both sides;
#  - low is killed (SIGKILL: no unregister, the top keeps it online and keeps
#    its dialogs) and started again on the same store;
#  - low takes its subscriptions up from the store: the same Call-ID, active;
#  - a channel added at low after the restart reaches the top's tree, as a
#    NOTIFY the top took within the same subscription (its notifies count
#    grows, its Call-ID unchanged, no new SUBSCRIBE was needed);
#  - a clean stop (SIGTERM) unregisters: the top subscribes anew when low is
#    back, and that dialog replaces the stored one;
#  - an unsubscribe (the top's device list drops catalog) ends the stored
#    one: after another restart low holds no catalog subscription.
source "$(dirname "$0")/lib.sh"

SIP=$(free_port); API_PORT=$(free_port); API_TOKEN=tok
TOP_API=$API_PORT
UPPER=34020000002000000001
LO_SIP=$(free_port); LO_API=$(free_port)
LO_ID=34020000002000000002
CH1=34020000001310000201
CH2=34020000001310000202
gb_upper_ini top "$SIP" "$API_PORT" "$UPPER" dev-secret yes <<EOF2
subscribe = catalog,alarm
subscribe_expires = 3600
catalog_on_register = no
[media]
enabled = no
EOF2
start_cascade top "$WORK/top.ini"
gb_subs_lower_ini low "$LO_SIP" "$LO_API" "$LO_ID" "$UPPER" "$SIP"
start_cascade low "$WORK/low.ini"
lo() { API_PORT=$LO_API api "$@"; }
check "the lower platform is online at the top" wait_for 30 gb_device_online "$LO_ID"
lo_sub() { lo GET /gb/upstreams | jq -e ".upstreams[0].subscriptions.$1.state == \"active\"" >/dev/null; }
top_sub() { api GET "/gb/devices/$LO_ID" | jq -e ".subscriptions.$1.state == \"active\"" >/dev/null; }
check "low holds the top's catalog subscription" wait_for 30 lo_sub catalog
check "low holds the top's alarm subscription" wait_for 30 lo_sub alarm
check "the top sees its catalog subscription active" wait_for 30 top_sub catalog
CID=$(lo GET /gb/upstreams | jq -r '.upstreams[0].subscriptions.catalog.call_id')
check "one dialog: the same Call-ID on both sides" \
    jq_ok "$(api GET "/gb/devices/$LO_ID")" ".subscriptions.catalog.call_id == \"$CID\""
lo POST /gb/channels "{\"id\":\"$CH1\",\"name\":\"before\"}" >/dev/null
has_channel() { api GET "/gb/devices/$LO_ID/channels" | grep -q "$1"; }
check "a channel added before the restart arrives" wait_for 30 has_channel "$CH1"
NOTIFIES=$(api GET "/gb/devices/$LO_ID" | jq '.subscriptions.catalog.notifies')

# The crash: no unregister, the top keeps low online and its dialogs.
disown "$low_PID" 2>/dev/null || true
kill -9 "$low_PID"
wait_gone() { ! kill -0 "$low_PID" 2>/dev/null; }
wait_for 10 wait_gone
start_cascade low "$WORK/low.ini"
same_catalog() {
    lo GET /gb/upstreams | jq -e ".upstreams[0].subscriptions.catalog | .state == \"active\" and .call_id == \"$CID\"" \
        >/dev/null
}
check "after the restart low has its catalog subscription again, same Call-ID" wait_for 20 same_catalog
check "and its alarm subscription" lo_sub alarm
registered() { lo GET /gb/upstreams | jq -e '.upstreams[0].state == "registered"' >/dev/null; }
check "low registered to the top again" wait_for 30 registered
lo POST /gb/channels "{\"id\":\"$CH2\",\"name\":\"after\"}" >/dev/null
check "a channel added after the restart reaches the top" wait_for 30 has_channel "$CH2"
R=$(api GET "/gb/devices/$LO_ID")
check "as a NOTIFY the top took within the same subscription" \
    jq_ok "$R" ".subscriptions.catalog.notifies > $NOTIFIES and .subscriptions.catalog.call_id == \"$CID\""
check "the top never saw low offline" not grep -q "gb device $LO_ID offline" "$WORK/top.log"

# A clean stop unregisters: the top drops low and its dialogs, and subscribes
# anew when low is back; the new dialog replaces the stored one at low.
kill -TERM "$low_PID"
wait_for 10 wait_gone
start_cascade low "$WORK/low.ini"
new_dialog() {
    local c
    c=$(lo GET /gb/upstreams | jq -r '.upstreams[0].subscriptions.catalog | select(.state == "active") | .call_id')
    [ -n "$c" ] && [ "$c" != "$CID" ] && api GET "/gb/devices/$LO_ID" | jq -e ".subscriptions.catalog.call_id == \"$c\"" >/dev/null
}
check "after a clean restart: a new catalog dialog, the same on both sides" wait_for 30 new_dialog
CH3=34020000001310000203
lo POST /gb/channels "{\"id\":\"$CH3\",\"name\":\"clean\"}" >/dev/null
check "a channel added then reaches the top" wait_for 30 has_channel "$CH3"

# The top ends its catalog subscription (its own list for low: alarm only):
# low deletes the stored one, so another restart does not bring it back.
api PATCH "/gb/devices/$LO_ID" '{"subscribe":["alarm"]}' >/dev/null
lo_sub_none() { lo GET /gb/upstreams | jq -e '.upstreams[0].subscriptions.catalog.state == "none"' >/dev/null; }
check "low saw the catalog subscription ended" wait_for 20 lo_sub_none
disown "$low_PID" 2>/dev/null || true
kill -9 "$low_PID"
wait_for 10 wait_gone
start_cascade low "$WORK/low.ini"
check "after another restart: alarm taken up again" wait_for 20 lo_sub alarm
check "and no catalog subscription" lo_sub_none

finish
