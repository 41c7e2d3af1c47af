#!/usr/bin/env bash
# Transport-wide congestion control with real browsers (issue 12): headless
# Chromium publishes a busy 1280x720 canvas with WHIP and its own send-side
# estimator runs on the transport-cc feedback cascade sends it; its
# availableOutgoingBitrate rises above its first value and its video reaches
# 1 Mbit/s. A WHEP viewer page agrees transport-cc too, decodes, and the room
# API shows feedback counted both ways and the viewer's estimate
# (tests/browser/twcc.mjs). Skipped (77) only when Chromium cannot start.
source "$(dirname "$0")/lib.sh"

browser_driver twcc.mjs

API_TOKEN=twccbrowser
media_node tw

OUT=$WORK/twcc.out
run_driver "$OUT" "$WORK/twcc-driver.log" --api "http://127.0.0.1:$API_PORT" --token "$API_TOKEN" --room twcc \
    --timeout 30000 --workdir "$WORK/browser"

check "the publish answer agrees transport-cc, its extension and goog-remb" step_ok publisher-connected \
    '.answer.transportCc and .answer.extension and .answer.remb'
check "the publisher's availableOutgoingBitrate rose above its first value" step_ok ramp \
    '.initial > 0 and .available > .initial'
check "the publisher sent >= 1 Mbit/s of video" step_ok ramp '.outBps >= 1000000'
check "the view answer agrees transport-cc and its extension" step_ok viewer-connected \
    '.answer.transportCc and .answer.extension'
check "the viewer decodes frames" step_ok viewer-decoding '.last.framesDecoded > .before.framesDecoded'
check "the API: feedback sent to the publisher, received from the viewer, a viewer estimate" step_ok api-bandwidth \
    '.publisher.twcc_feedbacks > 0 and .viewer.twcc_feedbacks > 0 and .viewer.twcc_bps > 0'
check "everyone left with DELETE" step_ok done

finish
