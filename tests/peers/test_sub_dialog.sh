#!/usr/bin/env bash
# The dialog event package (RFC 4235) for busy lamps, with sipp on every
# side: bob (its own user, digest) subscribes to his dialog state; alice
# calls bob through cascade (sipp UAC and UAS, record-routed): the NOTIFYs
# say trying, early, confirmed (both tags), terminated with remote-bye,
# direction recipient and alice as the remote identity; a second call that
# alice CANCELs ends terminated/cancelled/487. Each change is a partial
# document whose version goes up by one. Then bob unsubscribes (terminated
# NOTIFY). Bodies are read with xmllint (xpath), never by substring.
source "$(dirname "$0")/lib.sh"

API_TOKEN=dlgtoken
sub_node dlg d <<INI
[proxy]
authenticate = no
INI

# dialog-info documents are read with xp (lib.sh), elements by local name.
I="/*[local-name()='dialog-info']"
D="$I/*[local-name()='dialog']"
S="$D/*[local-name()='state']"
active_is() { test "$(api GET /stats | jq -r '.subscriptions.active')" = "$1"; }
tracked_is() { test "$(api GET /stats | jq -r '.subscriptions.dialogs_tracked')" = "$1"; }
# from_alice SCENARIO: a copy of a caller scenario whose From is alice of our domain.
from_alice() {
    sed 's/^From: <sip:caller@\[local_ip\]:\[local_port\]>/From: "Alice" <sip:alice@[remote_ip]>/' \
        "$PEERS_DIR/sipp/$1" >"$WORK/alice-$1"
    echo "$WORK/alice-$1"
}
# uas_start NAME SCENARIO PORT: a sipp UAS for bob in the background.
uas_start() {
    sipp_spawn "$1" 60 -sf "$PEERS_DIR/sipp/$2" -s bob -p "$3"
    UAS_PID=$SIPP_PID
    wait_for 20 udp_bound "$3" || echo "note: the UAS on $3 did not bind in time"
}
# one N: NOTIFY N's single dialog as "state/event/code/direction".
one() {
    local f=$WORK/w.n/$1.xml
    echo "$(xp $f "$S")/$(xp $f "$S/@event")/$(xp $f "$S/@code")/$(xp $f "$D/@direction")"
}

UAS=$(free_port)
check "sipp: bob registers from the UAS port" \
    sipp_scn reg register.xml -s bob -au bob -ap bobpw -key expires 300 -key cport "$UAS" -p "$UAS"

# The subscriber runs through both calls: longer than sipp_scn's 60 s cap.
sipp_spawn w 150 "127.0.0.1:$PORT" -sf "$PEERS_DIR/sipp/sub-dialog.xml" \
    -s bob -au bob -ap bobpw -auth_uri "bob@$H:$PORT" -key expires 600 -p "$(free_port)"
W=$SIPP_PID
check "the dialog subscription is active" wait_for 30 active_is 1
check "the full NOTIFY reached bob's watcher" wait_for 30 got_notifies w 1
N=$WORK/w.n
check "NOTIFY 1: Event dialog, application/dialog-info+xml" \
    bash -c "grep -q '^Event: dialog$' $N/1.hdr && grep -q '^Content-Type: application/dialog-info+xml$' $N/1.hdr"
check "NOTIFY 1: full, version 0, entity sip:bob@$H, no dialog" \
    test "$(xp $N/1.xml "$I/@state")/$(xp $N/1.xml "$I/@version")/$(xp $N/1.xml "$I/@entity")/$(xp $N/1.xml "count($D)")" \
    = "full/0/sip:bob@$H/0"

# 1. alice calls bob; bob answers; alice hangs up.
uas_start uas1 uas-call.xml "$UAS"
check "sipp: alice calls bob through cascade (INVITE/180/200/ACK/BYE)" \
    sipp_scn uac1 "$(from_alice uac-call.xml)" -s bob -p "$(free_port)"
check "sipp UAS (bob) ran its side of the call" wait "$UAS_PID"
check "four partial NOTIFYs for the call" wait_for 30 got_notifies w 5
check "NOTIFY 2: trying, recipient" test "$(one 2)" = "trying///recipient"
check "NOTIFY 3: early (180 with bob's tag)" test "$(one 3)" = "early///recipient"
check "NOTIFY 4: confirmed" test "$(one 4)" = "confirmed///recipient"
check "NOTIFY 5: terminated by alice's BYE (remote-bye)" test "$(one 5)" = "terminated/remote-bye//recipient"
check "NOTIFYs 2-5: partial, versions 1-4" \
    test "$(for i in 2 3 4 5; do printf '%s/%s ' "$(xp $N/$i.xml "$I/@state")" "$(xp $N/$i.xml "$I/@version")"; done)" \
    = "partial/1 partial/2 partial/3 partial/4 "
CID=$(xp $N/2.xml "$D/@call-id")
check "the same dialog (call-id $CID, one id) in every NOTIFY of the call" \
    test "$(for i in 2 3 4 5; do xp $N/$i.xml "$D/@call-id"; xp $N/$i.xml "$D/@id"; done | sort -u | wc -l)" = 2
check "the call-id is the INVITE's" grep -aq "^Call-ID: $CID" "$WORK/uac1.msg"
check "confirmed: local-tag is bob's (the UAS's To tag), remote-tag alice's" \
    bash -c "grep -aq 'tag=$(xp $N/4.xml "$D/@local-tag")' '$WORK/uas1.msg' && \
             grep -aq '^From: .*tag=$(xp $N/4.xml "$D/@remote-tag")' '$WORK/uac1.msg'"
check "remote identity: \"Alice\" <sip:alice@$H>" \
    test "$(xp $N/4.xml "$D/*[local-name()='remote']/*[local-name()='identity']")/$(xp $N/4.xml "$D/*[local-name()='remote']/*[local-name()='identity']/@display")" \
    = "sip:alice@$H/Alice"
check "no dialog tracked after the NOTIFY of its end" wait_for 10 tracked_is 0

# 2. alice calls bob and gives up while it rings.
uas_start uas2 uas-cancel.xml "$UAS"
check "sipp: alice calls bob and CANCELs (487)" sipp_scn uac2 "$(from_alice uac-cancel.xml)" -s bob -p "$(free_port)"
check "sipp UAS (bob) saw the CANCEL" wait "$UAS_PID"
check "three partial NOTIFYs for the cancelled call" wait_for 30 got_notifies w 8
check "NOTIFY 6: trying" test "$(one 6)" = "trying///recipient"
check "NOTIFY 7: early" test "$(one 7)" = "early///recipient"
check "NOTIFY 8: terminated, cancelled, code 487" test "$(one 8)" = "terminated/cancelled/487/recipient"
check "NOTIFY 8 is version 7" test "$(xp $N/8.xml "$I/@version")" = 7

# 3. bob unsubscribes.
check "bob's watcher unsubscribed and got the terminated NOTIFY (sipp ran the scenario)" wait "$W"
got_notifies w 9 || true
check "NOTIFY 9: terminated;reason=timeout, full state with no dialog" \
    bash -c "grep -q '^Subscription-State: terminated;reason=timeout$' $N/9.hdr && \
             test \"\$(xmllint --xpath 'string(/*/@state)' $N/9.xml)/\$(xmllint --xpath 'count(/*/*)' $N/9.xml)\" = full/0"
check "no subscription left" wait_for 10 active_is 0
finish
