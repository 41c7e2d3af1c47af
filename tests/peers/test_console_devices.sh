#!/usr/bin/env bash
# test_console_devices.sh — the web console's GB device list with 10 000
# devices (issue 14): cascade-gbsim registers them to a GB upper node; the
# API pages the list (GET /gb/devices?offset=&limit=, with total and online
# counts of every match; bad values 400); then in headless Chromium
# (tests/browser/console-devices.mjs) the devices page shows the total while
# its table holds one page (the API's first page, in order), the next page
# button shows the API's second page, a search by id finds that one device
# through ?q=, and clearing it brings the whole list back. Skipped (77) only
# when Chromium cannot start.
source "$(dirname "$0")/lib.sh"
GBSIM=$BUILD_DIR/cascade-gbsim
ROOT=$(cd "$PEERS_DIR/../.." && pwd)
DRIVER=$ROOT/tests/browser/console-devices.mjs
if [ ! -x /usr/bin/chromium ] || [ ! -d "$ROOT/tests/browser/node_modules/puppeteer-core" ]; then
    echo "chromium or tests/browser/node_modules missing: run scripts/install-deps.sh"; exit 1
fi

N=10000
SIP=$(free_port); API_PORT=$(free_port); API_TOKEN=tok
NODE_ID=34020000002000000001
FIND=34020000001320004568     # the 4568th device of gbsim's range (base 34020000001320000001)
# no catalog query per registration: 10 000 of them are not what this test is about
gb_upper_ini n "$SIP" "$API_PORT" "$NODE_ID" gb-secret yes <<EOF
catalog_on_register = no
keepalive_interval = 120
EOF
start_cascade n "$WORK/n.ini"
"$GBSIM" --target 127.0.0.1:$SIP --target-id $NODE_ID --password gb-secret --devices $N --channels 1 \
    --rate 1000 --sockets 16 --keepalive 60 --expires 3600 --quiet --duration 400 >"$WORK/gbsim.log" 2>&1 &
PIDS+=("$!")

all_online() { [ "$(api GET '/gb/devices?limit=1' | jq "[.total, .online] == [$N, $N]")" = true ]; }
check "$N devices registered and online (the API's total and online)" wait_for 180 all_online

# ---- the API's pages ----
check "offset=100&limit=50: 50 devices from the 101st, total $N" jq_ok "$(api GET '/gb/devices?offset=100&limit=50')" \
    "(.devices | length) == 50 and .devices[0].id == \"34020000001320000101\""
check "the page's fields: total, online, offset, limit" jq_ok "$(api GET '/gb/devices?offset=100&limit=50')" \
    ".total == $N and .online == $N and .offset == 100 and .limit == 50"
check "the last page is short" jq_ok "$(api GET '/gb/devices?offset=9990&limit=100')" '(.devices | length) == 10'
check "an offset past the end: no device, the total still" jq_ok "$(api GET '/gb/devices?offset=20000&limit=10')" \
    "(.devices | length) == 0 and .total == $N"
check "q with a page: the one device, total 1" jq_ok "$(api GET "/gb/devices?q=$FIND&limit=100")" \
    "[.devices[].id] == [\"$FIND\"] and .total == 1 and .online == 1"
check "q alone: the 10 devices whose id holds 132000456" jq_ok "$(api GET '/gb/devices?q=132000456')" \
    '(.devices | length) == 10 and .total == 10'
http_code() { curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $API_TOKEN" "http://127.0.0.1:$API_PORT/api/v1$1"; }
for bad in 'limit=0' 'limit=1001' 'limit=x' 'offset=-1' 'offset=1e3' 'limit='; do
    check "GET /gb/devices?$bad: 400" test "$(http_code "/gb/devices?$bad")" = 400
done

# ---- the page ----
OUT=$WORK/console-devices.out
run_driver "$OUT" "$WORK/driver.log" --api "http://127.0.0.1:$API_PORT" --token "$API_TOKEN" --total $N --find $FIND --page 100 \
    --timeout 60000 --workdir "$WORK/browser"
check "the devices page shows the total ($N) and one page of 100 rows, the API's first" step_ok first-page \
    ".total == $N and .rows == 100 and (.count | contains(\"$N\"))"
check "the next page button: the API's second page" step_ok next-page \
    '.offset == 100 and .rows == 100 and .first == "34020000001320000101"'
check "a search by id finds that one device (through ?q=)" step_ok search ".total == 1 and .ids == [\"$FIND\"]"
check "the search cleared: the whole list again" step_ok cleared ".total == $N and .rows == 100"
check "no page error, nothing refused by the CSP" step_ok safety
check "a PNG of the page" test -s "$WORK/browser/console-devices-10k.png"
finish
