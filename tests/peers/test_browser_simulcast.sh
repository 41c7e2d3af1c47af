#!/usr/bin/env bash
# Simulcast with real browsers (issue 12: "with simulcast on, a viewer
# limited in bandwidth gets a lower layer"): headless Chromium publishes its
# fake camera at 1280x720 in three layers (q, h, f) with WHIP; one page views
# directly with WHEP, another through a UDP bottleneck of 300 kbit/s
# (tests/browser/shaper.mjs) — its Chromium sends transport-cc feedback,
# cascade's estimate from it (media/twcc.c) falls and moves it to the low
# layer at a key frame while the other viewer stays high, and both keep decoding (tests/browser/simulcast.mjs).
# cascade's log must tell the same story: the shaped viewer went to q, the
# other stayed above. Then the bottleneck is lifted: an estimate cannot show
# a rate never sent, so cascade tries the next layer up after a quiet spell
# (media/forward.c, trials) and the shaped viewer decodes h or f again.
# Skipped (77) only when Chromium cannot start.
source "$(dirname "$0")/lib.sh"

browser_driver simulcast.mjs

API_TOKEN=simbrowser
media_node sim

OUT=$WORK/simulcast.out
run_driver "$OUT" "$WORK/simulcast-driver.log" --api "http://127.0.0.1:$API_PORT" --token "$API_TOKEN" \
    --media-port "$MEDIA_PORT" --room sim --rate 300000 --timeout 30000 --workdir "$WORK/browser"

check "the publisher sends q, h and f (outbound-rtp per rid, frames rising), f at 1280 wide" step_ok publisher-layers \
    '.layers.q.frameWidth > 0 and .layers.h.frameWidth > .layers.q.frameWidth and .layers.f.frameWidth == 1280 and
       (.framesEncodedIn3s | [.q, .h, .f] | all(. > 0))'
check "the view answers agree goog-remb and transport-cc" step_ok viewers-connected \
    '.answer | to_entries | all(.value.remb and .value.transportCc)'
check "the unshaped viewer decodes a layer above the middle one" step_ok viewer1-high '.video.frameWidth > 640'
check "the shaped viewer gets the low layer (<= 320 wide) and decodes it" step_ok viewer2-low \
    '.video.frameWidth <= 320 and .video.framesDecoded > 0'
check "settled: shaped low, unshaped high, both decoding, each on its announced SSRC" step_ok settled \
    '(.widths.viewer2 | all(. <= 320)) and (.widths.viewer1 | all(. > 640)) and .decoded.viewer1 > 0 and .decoded.viewer2 > 0'
check "the bottleneck was one (it dropped what exceeded 300 kbit/s)" step_ok settled \
    '.shaper.toPage.packets > 0 and .shaper.toServer.packets > 0 and .shaper.toPage.dropped > 0'
check "the room (API) holds the publisher and both viewers" step_ok room
check "everyone left with DELETE" step_ok done

# cascade's own account (its log: one line per layer switch of a viewer).
v1=$(jq -s -r '.[] | select(.step == "viewers-connected") | .viewer1' "$OUT")
v2=$(jq -s -r '.[] | select(.step == "viewers-connected") | .viewer2' "$OUT")
last_layer() { grep -o "sfu: $1 receives stream [^ ]* layer [a-z]*" "$WORK/sim.log" | tail -1 | awk '{print $NF}'; }
l1=$(last_layer "$v1"); l2=$(last_layer "$v2")
grep "sfu: .* receives" "$WORK/sim.log" || true
echo "cascade: viewer1 ($v1) last layer '$l1', viewer2 ($v2) last layer '$l2'"
check "cascade: the shaped viewer was switched to q under the bottleneck" \
    grep -q "sfu: $v2 receives stream [^ ]* layer q " "$WORK/sim.log"
check "cascade: the unshaped viewer's last layer is h or f" test "$l1" = h -o "$l1" = f
# The bottleneck lifted, the estimate alone cannot show that f fits (it
# grows only to ~1.5x what arrives): a trial brought viewer2 back to f.
check "the shaped viewer decodes f again once the bottleneck is lifted (a trial)" step_ok recovered \
    '.video.frameWidth > 640 and .bandwidth.layer_trials >= 1'
check "cascade: the shaped viewer was brought back to f by a trial" \
    grep -q "sfu: $v2 receives stream [^ ]* layer f (.*, trial)" "$WORK/sim.log"
check "cascade: the shaped viewer switched at least once after its first layer" \
    test "$(grep -c "sfu: $v2 receives" "$WORK/sim.log")" -ge 2

finish
