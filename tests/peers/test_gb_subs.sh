#!/usr/bin/env bash
# test_gb_subs.sh — GB/T 28181 subscriptions (§9.11 catalog, §9.4 alarm,
# §9.12 mobile position) between cascade as the upper and cascade-gbsim as
# the device:
#  - with [gb] subscribe = catalog,alarm,position the upper SUBSCRIBEs when
#    the device registers; gbsim answers 200 and all three show "active" in
#    the device record;
#  - gbsim's alarm NOTIFY (every 2 s) reaches the event stream as gb.alarm
#    and GET /gb/alarms with every field parsed from the body;
#  - MobilePosition NOTIFYs (Interval 1 s) move the device's position in the
#    API (longitude grows with each notify);
#  - a catalog NOTIFY with Event ADD puts the new channel in the tree;
#  - POST /gb/devices/{id}/alarm/reset sends DeviceControl ResetAlarm, which
#    gbsim logs;
#  - subscribe_expires 12: the refresh (at 3/4, in the same dialog) reaches
#    gbsim and the subscriptions stay active;
#  - two cascade nodes: a lower-role node registers to the same upper, which
#    subscribes to it; the lower takes the three subscriptions, and a channel
#    added at the lower reaches the upper's tree as a catalog NOTIFY within
#    the subscription (notify_without_subscription = no: no MESSAGE is sent,
#    so the channel can only come that way);
#  - the lower is a middle node too: a camera's alarm there (its own
#    subscription to a second gbsim) goes up as an Alarm NOTIFY within the
#    top's alarm subscription and shows in the top's GET /gb/alarms.
source "$(dirname "$0")/lib.sh"

SIP=$(free_port); API_PORT=$(free_port); API_TOKEN=tok
UPPER=34020000002000000001
DEV=34020000001320000001
CH0=34020000001310000001
CH_NEW=34020000001310000002 # gbsim's added channel: the next number after its one channel
gb_upper_ini top "$SIP" "$API_PORT" "$UPPER" dev-secret yes <<EOF
subscribe = catalog,alarm,position
subscribe_expires = 12
position_interval = 1
[media]
enabled = no
EOF
start_cascade top "$WORK/top.ini"
gb_sim "$SIP" "$UPPER" gbsim.log --devices 1 --channels 1 --alarm-every 2 --catalog-add-after 3
check "the device is online" wait_for 30 gb_device_online "$DEV"

sub_active() { api GET "/gb/devices/$DEV" | jq -e ".subscriptions.$1.state == \"active\"" >/dev/null; }
check "catalog subscription active" wait_for 30 sub_active catalog
check "alarm subscription active" wait_for 30 sub_active alarm
check "position subscription active" wait_for 30 sub_active position
check "gbsim took three subscriptions" wait_for 10 grep -q "subscription MobilePosition" "$WORK/gbsim.log"

# Alarms: the event and the API, every field from the body.
alarm_event() {
    has_event "select(.type==\"gb.alarm\" and .device==\"$DEV\" and .channel==\"$CH0\" and .priority==1
                      and .method==5 and .alarm_type==2 and (.alarm_time | test(\"^[0-9]{4}-\"))
                      and (.description | startswith(\"模拟报警\")))"
}
check "an alarm reaches the event stream as gb.alarm" wait_for 30 alarm_event
alarm_api() {
    api GET "/gb/alarms?device=$DEV" | jq -e ".alarms | length > 0 and (.[0] | .device==\"$DEV\" and .channel==\"$CH0\"
        and .priority==1 and .method==5 and .alarm_type==2 and (.alarm_time | test(\"^[0-9]{4}-\")))" >/dev/null
}
check "GET /gb/alarms lists it with priority, method, alarm_type, alarm_time" alarm_api
check "GET /gb/alarms?limit=1 gives one" jq_ok "$(api GET '/gb/alarms?limit=1')" '.alarms | length == 1'
check "GET /gb/alarms?device=bad is a 400" jq_ok "$(api GET '/gb/alarms?device=x')" '.error == "bad-request"'

# Positions: they move.
lon() { api GET "/gb/devices/$DEV" | jq -r '.position.longitude // 0'; }
check "a position arrives" wait_for 30 jq_ok "$(sleep 3; api GET "/gb/devices/$DEV")" '.position.latitude > 39.9'
L1=$(lon)
moved() { python3 -c "import sys; sys.exit(0 if float('$(lon)') > float('$L1') else 1)"; }
check "the position moves with the next notifies" wait_for 30 moved
check "gb.position events" has_event "select(.type==\"gb.position\" and .device==\"$DEV\")"

# Catalog NOTIFY within the subscription: the new channel appears.
new_channel() { api GET "/gb/devices/$DEV/channels" | grep -q "$CH_NEW"; }
check "a channel added at the device (catalog NOTIFY ADD) appears in the tree" wait_for 30 new_channel

# Alarm reset.
R=$(api POST "/gb/devices/$DEV/alarm/reset" "{\"channel\":\"$CH0\"}")
check "alarm reset answered (the device took it)" jq_ok "$R" '.sent == true'
check "gbsim got ResetAlarm for the channel" wait_for 10 grep -q "ResetAlarm for $CH0" "$WORK/gbsim.log"
check "alarm reset of an unknown device is a 404" \
    jq_ok "$(api POST /gb/devices/34020000001320000099/alarm/reset '{}')" '.error != null'

# Refresh: Expires 12 is refreshed at 9 s, in the same dialog (gbsim says so).
check "the subscriptions are refreshed before expiry" wait_for 40 grep -q "refreshed (expires" "$WORK/gbsim.log"
check "still active after the refresh" sub_active alarm
check "no subscription expired at gbsim" not grep -q "expired" "$WORK/gbsim.log"

# ---- two cascade nodes: the lower serves the upper's subscriptions ----
LO_SIP=$(free_port); LO_API=$(free_port)
LO_ID=34020000002000000002
LO_CH=34020000001310000201
MID_DEV=34020000001320000005   # a camera behind the lower (a middle node)
MID_CH=34020000001310000005
gb_subs_lower_ini low "$LO_SIP" "$LO_API" "$LO_ID" "$UPPER" "$SIP" "subscribe = alarm"
start_cascade low "$WORK/low.ini"
lo() { API_PORT=$LO_API api "$@"; }
check "the lower platform is online at the upper" wait_for 30 gb_device_online "$LO_ID"
lo_sub() { lo GET /gb/upstreams | jq -e ".upstreams[0].subscriptions.$1.state == \"active\"" >/dev/null; }
check "the lower holds the upper's catalog subscription" wait_for 30 lo_sub catalog
check "the lower holds the upper's alarm subscription" wait_for 30 lo_sub alarm
check "the lower holds the upper's position subscription" wait_for 30 lo_sub position
up_lo_active() { api GET "/gb/devices/$LO_ID" | jq -e '.subscriptions.catalog.state == "active"' >/dev/null; }
check "the upper sees its catalog subscription to the lower active" wait_for 30 up_lo_active
lo POST /gb/channels "{\"id\":\"$LO_CH\",\"name\":\"订阅通道\"}" >/dev/null
lo_channel() { api GET "/gb/devices/$LO_ID/channels" | grep -q "$LO_CH"; }
check "a channel added at the lower appears at the upper" wait_for 30 lo_channel
check "it came as a NOTIFY within the subscription (lower side)" \
    jq_ok "$(lo GET /gb/upstreams)" '.upstreams[0].subscriptions.catalog.notifies >= 1'
check "it came as a NOTIFY within the subscription (upper side)" \
    jq_ok "$(api GET "/gb/devices/$LO_ID")" '.subscriptions.catalog.notifies >= 1'

# The middle node relays its camera's alarms up within the upper's alarm subscription.
gb_sim "$LO_SIP" "$LO_ID" gbsim2.log --devices 1 --channels 1 --base-id "$MID_DEV" --alarm-every 2
mid_alarm() {
    api GET "/gb/alarms?device=$LO_ID" | jq -e ".alarms | map(select(.channel==\"$MID_CH\" and .priority==1
        and .alarm_type==2)) | length > 0" >/dev/null
}
check "a camera's alarm at the middle node reaches the top (NOTIFY relayed up)" wait_for 40 mid_alarm

finish
