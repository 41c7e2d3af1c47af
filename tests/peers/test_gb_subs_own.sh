#!/usr/bin/env bash
# test_gb_subs_own.sh — a GB device's own subscribe list (issue 15: the
# upper's Catalog/Alarm/MobilePosition subscriptions "configurable per
# device"), between cascade as the upper and cascade-gbsim as the device.
# What gbsim received is read from its --subscribe-log (one JSON object per
# SUBSCRIBE: kind new/refresh/end, Event, Call-ID, Expires, our answer):
#  - [gb] subscribe = alarm: the device gets an Alarm SUBSCRIBE on register;
#  - PATCH /gb/devices/{id} {"subscribe":["catalog","position"]} while it is
#    online: Catalog and MobilePosition SUBSCRIBEs go at once, and the Alarm
#    subscription is ended by a SUBSCRIBE with Expires 0 in its own dialog;
#  - bad lists are 400, an unknown device 404;
#  - the list is stored with the device, and the subscriptions' dialogs too:
#    after a restart of the upper the device (restored online) gets a refresh
#    within each dialog (catalog and position), no new SUBSCRIBE;
#  - {"subscribe":null} goes back to [gb] subscribe (Alarm anew, the other
#    two ended).
source "$(dirname "$0")/lib.sh"

SIP=$(free_port); API_PORT=$(free_port); API_TOKEN=tok
UPPER=34020000002000000001
DEV=34020000001320000001
LOG=$WORK/subs.jsonl
gb_upper_ini top "$SIP" "$API_PORT" "$UPPER" dev-secret yes <<EOF2
subscribe = alarm
subscribe_expires = 3600
position_interval = 5
[media]
enabled = no
EOF2
start_cascade top "$WORK/top.ini"
gb_sim "$SIP" "$UPPER" gbsim.log --devices 1 --channels 1 --subscribe-log "$LOG"
check "the device is online" wait_for 30 gb_device_online "$DEV"

# got FILTER [FROM]: gbsim logged a SUBSCRIBE matching FILTER (from line FROM on).
got() { [ -s "$LOG" ] && jq -e -s --argjson from "${2:-0}" "[.[\$from:][] | select($1)] | length > 0" "$LOG" >/dev/null; }
lines() { [ -s "$LOG" ] && wc -l <"$LOG" || echo 0; }
check "[gb] subscribe: gbsim took an Alarm SUBSCRIBE (200)" \
    wait_for 30 got '.kind=="new" and .event=="Alarm" and .status==200 and .expires==3600'
check "and no other kind" not got '.kind=="new" and .event!="Alarm"'
ALARM_CID=$(jq -r -s 'map(select(.kind=="new" and .event=="Alarm"))[0].call_id' "$LOG")
sub_state() { api GET "/gb/devices/$DEV" | jq -e ".subscriptions.$1.state == \"$2\"" >/dev/null; }
check "alarm subscription active at the upper" wait_for 20 sub_state alarm active

R=$(api PATCH "/gb/devices/$DEV" '{"subscribe":["catalog","position"]}')
check "PATCH answers the record with its own list" \
    jq_ok "$R" '.subscribe == ["catalog","position"] and .own_subscribe == true and .id == "'"$DEV"'"'
check "a Catalog SUBSCRIBE reaches gbsim at once" wait_for 20 got '.kind=="new" and .event=="Catalog" and .status==200'
check "a MobilePosition SUBSCRIBE too" wait_for 20 got '.kind=="new" and .event=="MobilePosition" and .status==200'
check "the Alarm subscription is ended: Expires 0 in its dialog" \
    wait_for 20 got ".kind==\"end\" and .event==\"Alarm\" and .expires==0 and .status==200 and .call_id==\"$ALARM_CID\""
listed() {
    api GET "/gb/devices/$DEV" | jq -e '.subscriptions | .catalog.state=="active" and .position.state=="active"
        and (has("alarm") | not)' >/dev/null
}
check "catalog and position active, alarm no longer listed" wait_for 20 listed

check "subscribe with an unknown kind: 400" \
    jq_ok "$(api PATCH "/gb/devices/$DEV" '{"subscribe":["catalog","bogus"]}')" '.error == "bad-request"'
check "subscribe as a string: 400" jq_ok "$(api PATCH "/gb/devices/$DEV" '{"subscribe":"catalog"}')" '.error == "bad-request"'
check "PATCH of an unknown device: 404" \
    jq_ok "$(api PATCH /gb/devices/34020000001320000099 '{"subscribe":[]}')" '.error == "not-found"'
check "the list is unchanged by the refusals" jq_ok "$(api GET "/gb/devices/$DEV")" '.subscribe == ["catalog","position"]'

# Restart of the upper: the list comes back from the store, and so do the
# subscriptions' dialogs (gb_subs): the device (restored online) gets a
# refresh within each, not a new SUBSCRIBE.
CAT_CID=$(jq -r -s 'map(select(.kind=="new" and .event=="Catalog"))[-1].call_id' "$LOG")
POS_CID=$(jq -r -s 'map(select(.kind=="new" and .event=="MobilePosition"))[-1].call_id' "$LOG")
N=$(lines)
kill -TERM "$top_PID"
wait "$top_PID" 2>/dev/null || true
start_cascade top "$WORK/top.ini"
check "after the restart the record keeps its own list" \
    jq_ok "$(api GET "/gb/devices/$DEV")" '.subscribe == ["catalog","position"] and .own_subscribe == true'
check "after the restart gbsim gets a Catalog refresh in the same dialog (200)" \
    wait_for 30 got ".kind==\"refresh\" and .event==\"Catalog\" and .call_id==\"$CAT_CID\" and .status==200" "$N"
check "and a MobilePosition refresh in its dialog" \
    wait_for 30 got ".kind==\"refresh\" and .event==\"MobilePosition\" and .call_id==\"$POS_CID\" and .status==200" "$N"
check "and no new SUBSCRIBE at all" not got '.kind=="new"' "$N"
check "the upper shows both active in those dialogs" jq_ok "$(api GET "/gb/devices/$DEV")" \
    ".subscriptions.catalog.call_id==\"$CAT_CID\" and .subscriptions.position.call_id==\"$POS_CID\""

# Back to [gb] subscribe.
N=$(lines)
R=$(api PATCH "/gb/devices/$DEV" '{"subscribe":null}')
check "subscribe null: the config's list again" jq_ok "$R" '.subscribe == ["alarm"] and .own_subscribe == false'
check "an Alarm SUBSCRIBE goes again" wait_for 20 got '.kind=="new" and .event=="Alarm"' "$N"
check "the Catalog subscription is ended" wait_for 20 got '.kind=="end" and .event=="Catalog" and .expires==0' "$N"
check "the MobilePosition subscription is ended" wait_for 20 got '.kind=="end" and .event=="MobilePosition" and .expires==0' "$N"
check "POST /gb/devices takes subscribe too" \
    jq_ok "$(api POST /gb/devices '{"id":"34020000001320000077","subscribe":[]}')" '.subscribe == [] and .own_subscribe == true'
check "cascadectl gb device add --subscribe catalog,position" \
    ctl gb device add 34020000001320000078 --subscribe catalog,position
check "... gives the device that list" \
    jq_ok "$(api GET /gb/devices/34020000001320000078)" '.subscribe == ["catalog","position"] and .own_subscribe'
check "cascadectl gb device add --subscribe default: back to [gb] subscribe" \
    ctl gb device add 34020000001320000078 --subscribe default
check "... the config's list again" \
    jq_ok "$(api GET /gb/devices/34020000001320000078)" '.subscribe == ["alarm"] and (.own_subscribe | not)'

finish
