#!/usr/bin/env bash
# GET /metrics (issue 17): the exposition passes a strict reader of the text
# format (promcheck.py, in place of `promtool check metrics`) with no untyped
# family; every number of GET /stats has a family; the histograms move: REGISTER
# and INVITE handling after sipp requests, store commits after a binding is
# stored, loop lag from the sampler; and every metric the Grafana dashboard
# (docs/grafana/cascade.json) queries is in the output.
source "$(dirname "$0")/lib.sh"

PORT=$(free_port); API_PORT=$(free_port); API_TOKEN=metricstoken
MEDIA=$(free_port); UP=$(free_port)
# The GB upper role, rooms, and a lower role whose upper never answers: every
# module that adds to /stats is on.
gb_upper_ini m "$PORT" "$API_PORT" 34020000002000000001 dev-secret yes <<INI
[media]
enabled = yes
listen = 127.0.0.1
port = $MEDIA
$(gb_upstream_ini 34020000002000000009 "$UP" udp secret 3600)
domain = 3402000000
INI
start_cascade m "$WORK/m.ini"
PROM=$PEERS_DIR/promcheck.py

scrape() { curl -s "http://127.0.0.1:$API_PORT/metrics" >"$WORK/$1.prom"; }
value() { python3 "$PROM" value "$WORK/$1.prom" "$2"; }
# moved NAME SERIES MIN: a fresh scrape shows SERIES at MIN or more.
moved() { scrape "$1" && [ "$(value "$1" "$2" | cut -d. -f1)" -ge "$3" ]; }

check "GET /metrics answers without a token" scrape m0
check "the exposition is well-formed (promcheck, no untyped family)" python3 "$PROM" check "$WORK/m0.prom" --no-untyped
python3 "$PROM" check "$WORK/m0.prom" --no-untyped | head -20

# Every number of /stats has a family: cascade_<path with _>[_total], except
# the members written under another name (labelled families, the histogram).
api GET /stats >"$WORK/stats.json"
python3 "$PROM" names "$WORK/m0.prom" >"$WORK/names.txt"
uncovered() {
    python3 - "$WORK/stats.json" "$WORK/names.txt" <<'PY'
import json, sys
stats = json.load(open(sys.argv[1]))
names = set(open(sys.argv[2]).read().split())
elsewhere = {"messages_in": "cascade_sip_requests_in_total", "responses_out": "cascade_sip_responses_out_total",
             "transport.connections": "cascade_transport_connections",
             "media.forward_delay_us": "cascade_media_forward_delay_seconds_count"}
bad = []
def walk(o, path):
    for k, v in o.items():
        p = path + "." + k if path else k
        if p in elsewhere:
            if elsewhere[p] not in names and not any(n.startswith(elsewhere[p]) for n in names):
                bad.append(p)
        elif isinstance(v, dict):
            walk(v, p)
        elif isinstance(v, (int, float, bool)):
            n = "cascade_" + p.replace(".", "_")
            if n not in names and n + "_total" not in names:
                bad.append(p)
walk(stats, "")
print("\n".join(bad))
sys.exit(1 if bad else 0)
PY
}
check "every number of GET /stats has a family in /metrics" uncovered
N_STATS=$(python3 -c "
import json,sys
def c(o): return sum(c(v) if isinstance(v,dict) else isinstance(v,(int,float,bool)) for v in o.values())
print(c(json.load(open('$WORK/stats.json'))))")
check "... and /stats has the members of every module on ($N_STATS numbers)" test "$N_STATS" -ge 140
# A counter read between two /stats readings lies between their values.
between() {
    local a b m
    a=$(api GET /stats | jq .transactions.created)
    scrape mb
    b=$(api GET /stats | jq .transactions.created)
    m=$(value mb cascade_transactions_created_total)
    echo "transactions.created: /stats $a, /metrics $m, /stats $b"
    [ "$a" -le "$m" ] && [ "$m" -le "$b" ]
}
check "a counter in /metrics carries the value /stats shows (transactions.created)" between

R0=$(value m0 'cascade_sip_handling_seconds_count{method="REGISTER"}')
I0=$(value m0 'cascade_sip_handling_seconds_count{method="INVITE"}')
C0=$(value m0 cascade_store_commit_seconds_count)
check "histograms start empty for REGISTER and INVITE" test "$R0" = 0 -a "$I0" = 0

check "cascadectl user add alice" ctl user add alice --password alicepw
check "sipp: alice REGISTER -> 401 -> 200" \
    sipp_scn reg register.xml -s alice -au alice -ap alicepw -key expires 60 -key cport 5099 -p "$(free_port)"
# Two REGISTER transactions got a final response (401, then 200).
check "REGISTER handling count moved by 2" wait_for 10 moved m1 'cascade_sip_handling_seconds_count{method="REGISTER"}' 2
check "REGISTER handling sum is above 0" \
    python3 -c "import sys; sys.exit(0 if float('$(value m1 'cascade_sip_handling_seconds_sum{method="REGISTER"}')') > 0 else 1)"
check "the store committed the binding (commit count moved)" \
    wait_for 10 moved m2 cascade_store_commit_seconds_count "$((C0 + 1))"
check "cascade_registrar_ok_total equals registrar.ok of /stats" \
    test "$(value m2 cascade_registrar_ok_total)" = "$(api GET /stats | jq .registrar.ok)"
sed "s/STATUS/407/g" "$PEERS_DIR/sipp/uac-reject.xml" >"$WORK/reject-407.xml"
check "sipp: INVITE from a stranger -> 407" \
    sipp_scn inv "$WORK/reject-407.xml" -s bob -key target "127.0.0.1:$PORT" -key mf 70 -p "$(free_port)"
check "INVITE handling count moved" wait_for 10 moved m3 'cascade_sip_handling_seconds_count{method="INVITE"}' 1
check "loop lag samples are counted" wait_for 10 moved m4 cascade_loop_lag_seconds_count 5
check "the media forwarding delay histogram is there (rooms on)" \
    grep -q '^cascade_media_forward_delay_seconds_bucket{le="+Inf"} ' "$WORK/m4.prom"
check "the scrape after traffic is still well-formed" python3 "$PROM" check "$WORK/m4.prom" --no-untyped

# The dashboard queries only metrics the endpoint has.
dashboard_ok() {
    python3 - "$PEERS_DIR/../../docs/grafana/cascade.json" "$WORK/names.txt" "$WORK/m4.prom" <<'PY'
import json, re, sys
dash = json.load(open(sys.argv[1]))
names = set(open(sys.argv[2]).read().split()) | set(re.findall(r"^(cascade_\w+)", open(sys.argv[3]).read(), re.M))
exprs = []
def walk(o):
    if isinstance(o, dict):
        for k, v in o.items():
            if k == "expr" and isinstance(v, str):
                exprs.append(v)
            else:
                walk(v)
    elif isinstance(o, list):
        for v in o:
            walk(v)
walk(dash)
used = {m for e in exprs for m in re.findall(r"\bcascade_\w+", e)}
missing = sorted(used - names)
print("%d queries, %d metrics, missing: %s" % (len(exprs), len(used), missing))
sys.exit(1 if missing or len(exprs) < 10 else 0)
PY
}
check "every metric the Grafana dashboard queries is in /metrics" dashboard_ok

finish
