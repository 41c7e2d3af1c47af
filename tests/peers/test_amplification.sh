#!/usr/bin/env bash
# Issue 9: what a stranger gets for one datagram, and what a flood costs.
# 1. Amplification: one request over UDP per kind of answer (OPTIONS 200,
#    404, 403, 407, 405, 501, 420, 416, 483, 481, 400); every response that
#    comes back within 3 s (T1 = 100 ms here: Timer G would have re-sent a
#    stateful final 4 times by then) is counted. Each must be answered
#    exactly once, with bytes out / bytes in <= 1.5.
# 2. The ACK for a stateless 4xx to INVITE is absorbed: nothing comes back.
# 3. A bounded flood (20 000 distinct INVITEs and OPTIONS to unknown users at
#    ~4 000/s) leaves the daemon's RSS within +60 MB of its start and
#    transactions.server_live in GET /stats small all along.
# 4. [sip] max_server_transactions: past the cap (50 here) new requests get a
#    stateless 503 with Retry-After, logged rate-limited; server_live stays at
#    or under the cap.
source "$(dirname "$0")/lib.sh"
export PYTHONPATH="$PEERS_DIR${PYTHONPATH:+:$PYTHONPATH}"

PORT=$(free_port); API_PORT=$(free_port); API_TOKEN=amptoken
node_ini amp "$PORT" "$API_PORT" amp.test <<INI
t1_ms = 100
max_server_transactions = 50
[proxy]
authenticate = yes
pike_limit = 0    ; one source floods here on purpose: the per-source limit is test_proxy_limits's
INI
start_cascade amp "$WORK/amp.ini"

# 1 + 2. One request each; collect 3 s; report the factor.
check "each refusal and the OPTIONS 200 is sent once, amplification <= 1.5" python3 - "$PORT" <<'PY'
import sys
from sipprobe import *
port = int(sys.argv[1])
me = "127.0.0.1:%d" % port
cases = [  # name, expected status, builder(lport)
    ("OPTIONS ping", 200, lambda p: request("OPTIONS", "sip:%s" % me, p)),
    ("OPTIONS unknown user", 200, lambda p: request("OPTIONS", "sip:ghost@amp.test", p)),
    ("INVITE unknown user", 404, lambda p: request("INVITE", "sip:ghost@amp.test", p)),
    ("MESSAGE unknown user", 404, lambda p: request("MESSAGE", "sip:ghost@amp.test", p)),
    ("INVITE relay", 403, lambda p: request("INVITE", "sip:bob@elsewhere.example", p)),
    ("INVITE as our user", 407,
     lambda p: request("INVITE", "sip:ghost@amp.test", p, frm="<sip:alice@amp.test>")),
    ("PUBLISH to us", 405, lambda p: request("PUBLISH", "sip:%s" % me, p)),
    ("FOO to us", 501, lambda p: request("FOO", "sip:%s" % me, p)),
    ("Require to us", 420, lambda p: request("OPTIONS", "sip:%s" % me, p, extra=["Require: x-nothing"])),
    ("INVITE tel URI", 416, lambda p: request("INVITE", "tel:+15550100", p, to="<sip:x@amp.test>")),
    ("INVITE Max-Forwards 0", 483,
     lambda p: request("INVITE", "sip:ghost@amp.test", p).replace(b"Max-Forwards: 70", b"Max-Forwards: 0")),
    ("CANCEL unknown", 481, lambda p: request("CANCEL", "sip:ghost@amp.test", p)),
    ("INVITE CSeq mismatch", 400, lambda p: request("INVITE", "sip:ghost@amp.test", p, cseq="1 BYE")),
]
socks, sent = [], {}
for name, want, build in cases:
    s = udp_socket()
    data = build(s.getsockname()[1])
    sent[s] = (name, want, data)
    s.sendto(data, ("127.0.0.1", port))
    socks.append(s)
got = collect(socks, 3.0)
ok = True
print("  %-24s %6s %9s %9s %7s  %s" % ("request", "in", "responses", "out", "factor", "status"))
for s in socks:
    name, want, data = sent[s]
    r = got[s]
    out = sum(len(x) for x in r)
    f = out / len(data)
    good = len(r) == 1 and status(r[0]) == want and f <= 1.5
    ok &= good
    print("  %-24s %6d %9d %9d %7.2f  %s%s" % (name, len(data), len(r), out, f,
                                              status_line(r[0]) if r else "(none)", "" if good else "  <-- FAIL"))
# 2. the ACK for the 404 to INVITE: the same branch, the To tag we got; nothing comes back
for s in socks:
    name, want, data = sent[s]
    if name != "INVITE unknown user" or not got[s]:
        continue
    branch = header(data, "Via").split("branch=")[1]
    ack = request("ACK", "sip:ghost@amp.test", s.getsockname()[1], branch=branch,
                  to_tag=to_tag(got[s][0]), cseq="1 ACK")
    s.sendto(ack, ("127.0.0.1", port))
    back = collect([s], 1.0)[s]
    print("  ACK for the 404 -> %d response(s)" % len(back))
    ok &= back == []
sys.exit(0 if ok else 1)
PY
check "the ACK was absorbed by the transaction layer (stateless_acks_absorbed >= 1)" \
    bash -c "curl -s -H 'Authorization: Bearer $API_TOKEN' http://127.0.0.1:$API_PORT/api/v1/stats | jq -e '.transactions.stateless_acks_absorbed >= 1' >/dev/null"
check "no final was retransmitted (retransmissions_sent 0)" \
    bash -c "curl -s -H 'Authorization: Bearer $API_TOKEN' http://127.0.0.1:$API_PORT/api/v1/stats | jq -e '.transactions.retransmissions_sent == 0' >/dev/null"

# 3. The flood, with RSS and server_live sampled while it runs.
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$amp_PID/status"; }
RSS0=$(rss_kb)
check "flood: 20 000 requests at ~4 000/s, RSS within +60 MB, server_live small" python3 - "$PORT" "$API_PORT" "$API_TOKEN" "$amp_PID" "$RSS0" <<'PY'
import json, sys, threading, time, urllib.request
from sipprobe import *
port, api_port, tok, pid, rss0 = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
def rss():
    for line in open("/proc/%s/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
def live():
    rq = urllib.request.Request("http://127.0.0.1:%d/api/v1/stats" % api_port, headers={"Authorization": "Bearer " + tok})
    return json.load(urllib.request.urlopen(rq, timeout=5))["transactions"]["server_live"]
samples, done = [], False
def sampler():
    while not done:
        samples.append((live(), rss()))
        time.sleep(0.2)
th = threading.Thread(target=sampler); th.start()
s = udp_socket(); lport = s.getsockname()[1]
s.setblocking(False)
received, codes = 0, {}
def count(r):
    global received
    received += 1
    codes[status(r)] = codes.get(status(r), 0) + 1
N, RATE = 20000, 4000
start = time.monotonic()
for i in range(N):
    # bounded rate: never ahead of i/RATE seconds
    while time.monotonic() - start < i / RATE:
        time.sleep(0.0005)
    m = "INVITE" if i % 2 else "OPTIONS"
    s.sendto(request(m, "sip:user%d@amp.test" % i, lport), ("127.0.0.1", port))
    try:
        while True:
            count(s.recv(65535))
    except BlockingIOError:
        pass
t = time.monotonic() - start
s.setblocking(True); s.settimeout(1.0)
try:
    while True:
        count(s.recv(65535))
except socket.timeout:
    pass
done = True; th.join()
peak_live = max(l for l, _ in samples)
peak_rss = max(r for _, r in samples + [(0, rss())])
print("  sent %d in %.1f s, %d responses read %s, server_live peak %d, RSS %d -> peak %d kB (+%.1f MB)" %
      (N, t, received, codes, peak_live, rss0, peak_rss, (peak_rss - rss0) / 1024))
# No 503: the rejections themselves kept nothing, the cap (50) was never reached.
ok = peak_rss - rss0 <= 60 * 1024 and peak_live <= 10 and codes.get(503, 0) == 0
sys.exit(0 if ok else 1)
PY

# 4. The cap: 120 re-INVITEs for dialogs nobody knows are answered 481
#    statefully (a full INVITE transaction each until Timer H, 6.4 s at
#    T1 = 100 ms; compact Timer J records of answered non-INVITEs do not
#    count); past 50 live, 503.
check "over max_server_transactions: 503 with Retry-After, server_live <= cap" python3 - "$PORT" "$API_PORT" "$API_TOKEN" <<'PY'
import json, sys, urllib.request
from sipprobe import *
port, api_port, tok = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
s = udp_socket(); lport = s.getsockname()[1]
for i in range(120):
    s.sendto(request("INVITE", "sip:ghost@amp.test", lport, to_tag="t%d" % i), ("127.0.0.1", port))
got = collect([s], 2.0)[s]
# A stateful 481 is re-sent by Timer G until an ACK that never comes: count
# each request's first answer.
first = {}
for r in got:
    first.setdefault(header(r, "Call-ID"), r)
got = list(first.values())
codes = {}
for r in got:
    codes[status(r)] = codes.get(status(r), 0) + 1
retry = [header(r, "Retry-After") for r in got if status(r) == 503]
rq = urllib.request.Request("http://127.0.0.1:%d/api/v1/stats" % api_port, headers={"Authorization": "Bearer " + tok})
tx = json.load(urllib.request.urlopen(rq, timeout=5))["transactions"]
print("  answers by status %s, Retry-After %s, server_live %d (max %d), refused_over_cap %d" %
      (codes, retry[:1], tx["server_live"], tx["server_max"], tx["refused_over_cap"]))
ok = (len(got) == 120 and codes.get(503, 0) >= 1 and codes.get(481, 0) >= 1 and all(retry)
      and tx["server_live"] <= 50 and tx["server_max"] == 50 and tx["refused_over_cap"] == codes.get(503, 0))
sys.exit(0 if ok else 1)
PY
check "the refusals over the cap are logged with the sender, rate-limited" \
    bash -c "n=\$(grep -c 'max_server_transactions' '$WORK/amp.log'); grep -q '127.0.0.1.*max_server_transactions.*answering 503' '$WORK/amp.log' && [ \$n -ge 1 ] && [ \$n -le 5 ]"
check "a stateless refusal awaits no ACK (no timer H line for the flood's 404s)" \
    bash -c "! grep -q 'timer H: no ACK .* for the 404 to INVITE' '$WORK/amp.log'"
check "daemon still alive" kill -0 "$amp_PID"
finish
