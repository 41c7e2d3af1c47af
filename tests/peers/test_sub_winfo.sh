#!/usr/bin/env bash
# presence.winfo (RFC 3857, watcherinfo RFC 3858) on cascade's notifier, with
# sipp: alice subscribes to the watchers of her own presentity; bob then
# watches her presence (subscribe, one NOTIFY, unsubscribe). alice's NOTIFYs
# carry the whole list each time: empty, bob active, empty again (read with
# xmllint XPath, never by substring). bob asking for alice's watchers gets
# 403 (only the user may see who watches them).
source "$(dirname "$0")/lib.sh"

API_TOKEN=winfotoken
sub_node winfo c <<INI
[subscriptions]
min_expires = 2
INI

W="/*[local-name()='watcherinfo']"
L="$W/*[local-name()='watcher-list']"
WA="$L/*[local-name()='watcher']"

sipp_scn a sub-winfo.xml -s alice -key watcher alice -au alice -ap alicepw -auth_uri "alice@$H:$PORT" \
    -key expires 600 -p "$(free_port)" &
A=$!
N=$WORK/a.n
check "NOTIFY 1 reached alice" wait_for 30 got_notifies a 1
check "NOTIFY 1: Event presence.winfo, active, application/watcherinfo+xml" \
    first_notify_head "$N/1.hdr" presence.winfo application/watcherinfo+xml
check "NOTIFY 1: full state of sip:alice@$H's presence watchers, none yet" \
    test "$(xp $N/1.xml "$W/@state")/$(xp $N/1.xml "$L/@resource")/$(xp $N/1.xml "$L/@package")/$(xp $N/1.xml "count($WA)")" \
    = "full/sip:alice@$H/presence/0"

check "sipp: bob watches alice's presence (subscribe, NOTIFY, unsubscribe)" \
    sipp_scn b sub-presence-once.xml -s alice -key watcher bob -au bob -ap bobpw -auth_uri "alice@$H:$PORT" \
    -key expires 600 -p "$(free_port)"
check "NOTIFY 2 and 3 reached alice" wait_for 30 got_notifies a 3
check "NOTIFY 2: one watcher, sip:bob@$H, status active, event subscribe" \
    test "$(xp $N/2.xml "count($WA)")/$(xp $N/2.xml "$WA")/$(xp $N/2.xml "$WA/@status")/$(xp $N/2.xml "$WA/@event")" \
    = "1/sip:bob@$H/active/subscribe"
check "NOTIFY 2: version 1, NOTIFY 3: version 2" \
    test "$(xp $N/2.xml "$W/@version")/$(xp $N/3.xml "$W/@version")" = "1/2"
check "NOTIFY 3 (bob left): no watcher" test "$(xp $N/3.xml "count($WA)")" = 0
check "alice unsubscribed and got the terminated NOTIFY (sipp ran the scenario)" wait "$A"
got_notifies a 4 || true
check "NOTIFY 4: terminated;reason=timeout" grep -q '^Subscription-State: terminated;reason=timeout$' "$N/4.hdr"
check "NOTIFY 4: a watcherinfo body for sip:alice@$H, version 3" \
    test "$(xp $N/4.xml "$L/@resource")/$(xp $N/4.xml "$W/@version")" = "sip:alice@$H/3"

check "sipp: bob asks for alice's watchers -> 403" \
    sipp_scn d sub-winfo-denied.xml -s alice -key watcher bob -au bob -ap bobpw -auth_uri "alice@$H:$PORT" \
    -p "$(free_port)"

finish
