#!/usr/bin/env bash
# Transport-wide congestion control with real browsers (issue 12): headless
# Chromium publishes a busy 1280x720 canvas with WHIP and its own send-side
# estimator runs on the transport-cc feedback cascade sends it; its
# availableOutgoingBitrate rises above its first value and its video reaches
# 1 Mbit/s. A WHEP viewer page agrees transport-cc too, decodes, and the room
# API shows feedback counted both ways and the viewer's estimate
# (tests/browser/twcc.mjs). Skipped (77) only when Chromium cannot start.
source "$(dirname "$0")/lib.sh"

ROOT=$(cd "$PEERS_DIR/../.." && pwd)
DRIVER=$ROOT/tests/browser/twcc.mjs
if [ ! -x /usr/bin/chromium ] || [ ! -d "$ROOT/tests/browser/node_modules/puppeteer-core" ]; then
    echo "chromium or tests/browser/node_modules missing: run scripts/install-deps.sh"; exit 1
fi

PORT=$(free_port); API_PORT=$(free_port); MEDIA_PORT=$(free_port); API_TOKEN=twccbrowser
node_ini n "$PORT" "$API_PORT" 127.0.0.1 <<INI
[media]
enabled = yes
listen = 127.0.0.1
port = $MEDIA_PORT
INI
start_cascade tw "$WORK/n.ini"

OUT=$WORK/twcc.out
node "$DRIVER" --api "http://127.0.0.1:$API_PORT" --token "$API_TOKEN" --room twcc \
    --timeout 30000 --workdir "$WORK/browser" >"$OUT" 2>"$WORK/twcc-driver.log" && rc=0 || rc=$?
cat "$OUT"
if [ "$rc" = 77 ]; then
    cat "$WORK/twcc-driver.log"
    echo "SKIP - Chromium cannot start here (see above)"
    exit 77
fi
check "the driver exits 0" test "$rc" = 0

# step_ok STEP [JQ]: the driver printed STEP with ok true (and JQ holds on it).
step_ok() { jq -e -s --arg s "$1" "[.[] | select(.step == \$s and .ok) | ${2:-.}] | length > 0 and all" "$OUT" >/dev/null; }

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
