#!/usr/bin/env bash
# Edge mode ([proxy] edge_registrar, RFC 3327 Path, RFC 5626 §5.1/§5.3):
# cascade E (UDP + TCP, no users) holds the phones' flows in front of
# cascade R, the registrar with the users. Three baresip phones use E as
# their outbound proxy (alice and bob over TCP, carl over UDP) and register
# through it: R challenges them (401 through E), R's location holds each
# binding with E's Path (a signed token naming the phone's flow), E's holds
# none. alice calls bob: phone→E→R→E→phone, challenged by R (407 through E),
# established on both, and alice's hang-up (BYE) reaches bob along the
# route set. A MESSAGE from a stranger reaches bob (TCP flow) and carl (UDP
# flow) by their Path. bob is killed (his TCP connection closes): a new
# INVITE for him gets 430 Flow Failed from E, which R passes to the caller.
# A Route naming E with a forged Path token gets 403. /stats of E count
# all of it. Last, Kamailio as the registrar (registrar use_path,
# tests/peers/kamailio/registrar.cfg.in) behind a second edge E2: a phone
# registers through E2 and a MESSAGE reaches it by the Path Kamailio kept.
source "$(dirname "$0")/lib.sh"

if ! command -v baresip >/dev/null; then
    echo "baresip not installed"; exit 77
fi
baresip_moddir

API_TOKEN=edgetoken
RP=$(free_port); R_API=$(free_port); EP=$(free_port); E_API=$(free_port)
node_ini r "$RP" "$R_API" edge.test <<INI
[auth]
realm = edge.test
INI
node_ini e "$EP" "$E_API" edge.test <<INI
[proxy]
edge_registrar = sip:127.0.0.1:$RP;transport=udp
INI
start_cascade r "$WORK/r.ini"
start_cascade e "$WORK/e.ini"
rapi() { API_PORT=$R_API api "$@"; }
eapi() { API_PORT=$E_API api "$@"; }
rctl() { API_PORT=$R_API ctl "$@"; }
for u in alice bob carl; do
    check "user $u on R" rctl user add "$u" --password "${u}pw"
done

baresip_tone
# edge_phone NAME TRANSPORT: a baresip for sip:NAME@edge.test with E as its
# outbound proxy over TRANSPORT, auto-answering.
edge_phone() { baresip_phone_start "$1" "${1}pw" edge.test "$2" ";outbound=\"sip:127.0.0.1:$EP;transport=$2\""; }
edge_phone alice tcp
edge_phone bob tcp
edge_phone carl udp

# 1. REGISTER through E: R holds the bindings, each with E's Path.
regs() { rapi GET /registrations; }
check "R holds alice, bob and carl (registered through E, challenged by R)" \
    wait_for 20 bash -c "[ \"\$(curl -s -H 'Authorization: Bearer $API_TOKEN' http://127.0.0.1:$R_API/api/v1/registrations |
        jq '.registrations | length')\" = 3 ]"
# paths_ok: every binding's Path is E's URI with a token, ;lr;ob.
paths_ok() {
    regs | jq -e --arg re "^<sip:pt[0-9a-f]+@127[.]0[.]0[.]1:$EP;transport=udp;lr;ob>\$" \
        '[.registrations[] | select(.path | test($re))] | length == 3' >/dev/null
}
check "each binding on R has E's Path (a token for the phone's flow, ;lr;ob)" paths_ok
check "the three Path tokens differ (one flow each)" jq_ok "$(regs)" '[.registrations[].path] | unique | length == 3'
check "E keeps no binding of its own" jq_ok "$(eapi GET /registrations)" '.registrations | length == 0'
check "E forwarded the REGISTERs (and their challenges) without challenging" \
    jq_ok "$(eapi GET /stats)" '.proxy.edge_registers >= 6 and .proxy.challenged == 0 and .registrar.registers == 0'
check "baresip alice saw 200 for its REGISTER" grep -q "alice@edge.test.*200 OK" "$WORK/baresip-alice.log"

# 2. A call alice -> bob: phone -> E -> R -> E -> phone, and the BYE back.
check "alice dials bob (ctrl_tcp)" bctl "$alice_CTRL" dial "sip:bob@edge.test"
check "the call is established on both sides" \
    wait_for 15 bash -c "grep -qi 'established' '$WORK/baresip-alice.log' && grep -qi 'established' '$WORK/baresip-bob.log'"
check "R challenged alice's INVITE (407 through E) and took her answer" \
    jq_ok "$(rapi GET /stats)" '.proxy.challenged >= 1 and .proxy.auth_failed == 0'
check "E sent the INVITE to R and R's copy to bob's flow by the Path" \
    jq_ok "$(eapi GET /stats)" '.proxy.edge_outbound >= 1 and .proxy.path_routed >= 1'
sleep 1
check "alice hangs up (ctrl_tcp)" bctl "$alice_CTRL" hangup
check "bob sees the call closed (the BYE came along the route set)" \
    wait_for 10 bash -c "grep -qiE 'closed|terminated' '$WORK/baresip-bob.log'"
check "alice sees it closed too (200 to her BYE)" grep -qiE 'closed|terminated' "$WORK/baresip-alice.log"

# 3. MESSAGE from a stranger, to bob (TCP flow) and carl (UDP flow).
# sip_req METHOD USER [ROUTE]: one request over UDP to E (to port $SIP_TO if set) from 127.0.0.1;
# prints the final status (0: none within 8 s).
sip_req() {
    PYTHONPATH="$PEERS_DIR" python3 - "${SIP_TO:-$EP}" "$1" "$2" "${3:-}" <<'PY'
import sys, time, sipprobe as sp
port, method, user, route = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
s = sp.udp_socket()
lport = s.getsockname()[1]
extra = ["Route: " + route] if route else []
body = "hello through the edge" if method == "MESSAGE" else ""
if body: extra.append("Content-Type: text/plain")
s.sendto(sp.request(method, "sip:%s@edge.test" % user, lport, extra=extra, body=body), ("127.0.0.1", port))
end, final = time.monotonic() + 8, 0
while time.monotonic() < end and not final:
    for m in sp.collect([s], 0.2)[s]:
        st = sp.status(m)
        if st >= 200:
            final = st
            if method == "INVITE":  # ACK for a non-2xx is hop by hop: same branch
                pass
print(final)
PY
}
check "MESSAGE to bob over his TCP flow: 200" test "$(sip_req MESSAGE bob)" = 200
check "MESSAGE to carl over his UDP flow: 200" test "$(sip_req MESSAGE carl)" = 200
check "E sent the INVITE and both MESSAGEs over the phones' flows by their Path" \
    jq_ok "$(eapi GET /stats)" '.proxy.path_routed >= 3 and .proxy.edge_outbound >= 3'

# 4. bob's TCP connection closes: 430 Flow Failed from E, passed on by R.
check "bob's binding on R still holds (its expiry is 600 s)" \
    jq_ok "$(regs)" '[.registrations[] | select(.user == "bob")] | length == 1'
check "E holds the two phones' TCP connections" jq_ok "$(eapi GET /stats)" '.transport.tcp_open == 2'
kill -9 "$bob_PID"
tcp_open() { [ "$(eapi GET /stats | jq .transport.tcp_open)" = "$1" ]; }
check "E saw bob's connection close" wait_for 10 tcp_open 1
F430=$(sip_req INVITE bob)
check "INVITE for bob after his connection closed: 430 from E through R (got $F430)" test "$F430" = 430
check "E counted the failed flow" jq_ok "$(eapi GET /stats)" '.proxy.flow_failed >= 1'

# 5. A forged Path token (one digit of carl's changed): 403 from E.
CARL_PATH=$(regs | jq -r '.registrations[] | select(.user == "carl") | .path')
FORGED=$(python3 -c "import sys; p=sys.argv[1]; i=p.index('pt')+4; print(p[:i] + ('1' if p[i] == '0' else '0') + p[i+1:])" "$CARL_PATH")
check "INVITE with a forged Path token in its Route: 403" test "$(sip_req INVITE carl "$FORGED")" = 403
check "the real token still reaches carl (OPTIONS over his UDP flow)" test "$(sip_req OPTIONS carl "$CARL_PATH")" = 200

# 6. The registrar behind an edge is Kamailio (registrar with use_path): dave
# registers through a second edge E2 over TCP; a MESSAGE for him goes
# stranger -> E2 -> Kamailio -> E2 (by the Path Kamailio stored) -> dave.
if command -v kamailio >/dev/null; then
    KP=$(free_port); E2P=$(free_port); E2_API=$(free_port)
    sed -e "s/@PORT@/$KP/" "$PEERS_DIR/kamailio/registrar.cfg.in" >"$WORK/kam.cfg"
    kamailio -f "$WORK/kam.cfg" -DD -E -w "$WORK" -m 32 -M 8 >"$WORK/kam.log" 2>&1 &
    PIDS+=("$!")
    check "Kamailio (registrar, use_path) listens" wait_for 10 udp_bound "$KP"
    node_ini e2 "$E2P" "$E2_API" edge.test <<INI
[proxy]
edge_registrar = sip:127.0.0.1:$KP
INI
    start_cascade e2 "$WORK/e2.ini"
    e2api() { API_PORT=$E2_API api "$@"; }
    baresip_phone_start dave davepw edge.test tcp ";outbound=\"sip:127.0.0.1:$E2P;transport=tcp\""
    check "dave registered through E2 at Kamailio (200)" \
        wait_for 15 grep -q "dave@edge.test.*200 OK" "$WORK/baresip-dave.log"
    check "E2 forwarded it" jq_ok "$(e2api GET /stats)" '.proxy.edge_registers >= 1'
    check "MESSAGE to dave through Kamailio and E2: 200" test "$(SIP_TO=$E2P sip_req MESSAGE dave)" = 200
    check "Kamailio sent it to dave's flow through E2's Path" jq_ok "$(e2api GET /stats)" '.proxy.path_routed >= 1'
else
    echo "kamailio not installed: the Kamailio registrar part is left out"
fi

finish
