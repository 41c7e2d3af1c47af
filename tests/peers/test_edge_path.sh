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
# INVITE for him gets 430 Flow Failed from E, upon which R removes bob's
# binding at once (registration.removed, reason flow-failed) and answers
# the caller 480. A Route naming E with a forged Path token gets 403.
# E restarts (alice killed first, so that she does not register again):
# its token key was kept in its store, so carl's UDP Path still reaches
# him, and alice's TCP Path, naming a connection of E's earlier run, gets
# 430 (not 403): R drops her binding too. R has [proxy] trusted_edges = E:
# its pike limit counts the phones behind E apart (one phone over the
# limit is refused, another is not). A second edge ET talks to R over TCP:
# erin registers through it and calls carl (erin -> ET -> R -> E -> carl).
# /stats count all of it. Last, Kamailio as the registrar (registrar use_path,
# tests/peers/kamailio/registrar.cfg.in) behind a second edge E2: a phone
# registers through E2 and a MESSAGE reaches it by the Path Kamailio kept.
source "$(dirname "$0")/lib.sh"

if ! command -v baresip >/dev/null; then
    echo "baresip not installed"; exit 77
fi
baresip_moddir

API_TOKEN=edgetoken
RP=$(free_port); R_API=$(free_port); EP=$(free_port); E_API=$(free_port)
R_PIKE=40
node_ini r "$RP" "$R_API" edge.test <<INI
[auth]
realm = edge.test
[proxy]
trusted_edges = 127.0.0.1
pike_limit = $R_PIKE
pike_window = 3600
INI
node_ini e "$EP" "$E_API" edge.test <<INI
[proxy]
edge_registrar = sip:127.0.0.1:$RP;transport=udp
pike_limit = 1000
INI
start_cascade r "$WORK/r.ini"
start_cascade e "$WORK/e.ini"
rapi() { API_PORT=$R_API api "$@"; }
eapi() { API_PORT=$E_API api "$@"; }
rctl() { API_PORT=$R_API ctl "$@"; }
for u in alice bob carl erin; do
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

# 4. bob's TCP connection closes: 430 Flow Failed from E; R drops the
# binding (RFC 5626 §5.3) and, having no other, answers 480.
check "bob's binding on R still holds (its expiry is 600 s)" \
    jq_ok "$(regs)" '[.registrations[] | select(.user == "bob")] | length == 1'
check "E holds the two phones' TCP connections" jq_ok "$(eapi GET /stats)" '.transport.tcp_open == 2'
kill -9 "$bob_PID"
tcp_open() { [ "$(eapi GET /stats | jq .transport.tcp_open)" = "$1" ]; }
check "E saw bob's connection close" wait_for 10 tcp_open 1
F430=$(sip_req INVITE bob)
check "INVITE for bob after his connection closed: 480 from R after E's 430 (got $F430)" test "$F430" = 480
check "E counted the failed flow" jq_ok "$(eapi GET /stats)" '.proxy.flow_failed >= 1'
check "R removed bob's binding at once" jq_ok "$(regs)" '[.registrations[] | select(.user == "bob")] | length == 0'
check "R counted the binding removed for a failed flow" jq_ok "$(rapi GET /stats)" '.proxy.flow_failed_removed == 1'
rhas_event() { API_PORT=$R_API has_event "$@"; }
check "R sent registration.removed for bob, reason flow-failed" \
    rhas_event 'select(.type == "registration.removed" and .user == "bob" and .reason == "flow-failed")'

# 5. A forged Path token (one digit of carl's changed): 403 from E.
CARL_PATH=$(regs | jq -r '.registrations[] | select(.user == "carl") | .path')
FORGED=$(python3 -c "import sys; p=sys.argv[1]; i=p.index('pt')+4; print(p[:i] + ('1' if p[i] == '0' else '0') + p[i+1:])" "$CARL_PATH")
check "INVITE with a forged Path token in its Route: 403" test "$(sip_req INVITE carl "$FORGED")" = 403
check "the real token still reaches carl (OPTIONS over his UDP flow)" test "$(sip_req OPTIONS carl "$CARL_PATH")" = 200

# 6. E restarts. Its token key is in its store (no [proxy] edge_secret):
# the Paths R keeps still verify. alice is killed first (else her phone,
# seeing its connection close, registers again through E).
ALICE_PATH=$(regs | jq -r '.registrations[] | select(.user == "alice") | .path')
kill -9 "$alice_PID"
check "E made its token key once and kept it in its store" grep -q "a new token key, kept in the store" "$WORK/e.log"
kill -TERM "$e_PID"
check "E stopped" wait_for 10 bash -c "! kill -0 $e_PID"
start_cascade e2nd "$WORK/e.ini"
check "E, restarted, read its key back (made none)" not grep -q "a new token key" "$WORK/e2nd.log"
check "carl's Path from before the restart still reaches him (OPTIONS over his UDP flow): 200" \
    test "$(sip_req OPTIONS carl "$CARL_PATH")" = 200
check "MESSAGE to carl through R by his old Path: 200" test "$(sip_req MESSAGE carl)" = 200
check "alice's Path (a TCP connection of E's earlier run) in a Route: 430, not 403" \
    test "$(sip_req OPTIONS alice "$ALICE_PATH")" = 430
FA=$(sip_req INVITE alice)
check "INVITE for alice through R: E answers 430, R drops her binding and answers 480 (got $FA)" test "$FA" = 480
check "R holds carl alone now" jq_ok "$(regs)" '[.registrations[].user] == ["carl"]'
check "registration.removed for alice, reason flow-failed" \
    rhas_event 'select(.type == "registration.removed" and .user == "alice" and .reason == "flow-failed")'

# 7. [proxy] trusted_edges on R: pike counts the phones behind E apart.
# "phone" 127.0.0.2 sends R_PIKE + 5 MESSAGEs (to nobody: 404) through E:
# the last ones get 503 from R (E passes them on as 500); then 127.0.0.3, behind the same E, is not
# refused (without trusted_edges all of them are E's, 127.0.0.1, one source).
# pike_probe SRC_IP COUNT: COUNT MESSAGEs for nobody from SRC_IP through E; the finals, space-separated.
pike_probe() {
    PYTHONPATH="$PEERS_DIR" python3 - "$EP" "$1" "$2" <<'PY'
import socket, sys, time, sipprobe as sp
port, ip, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((ip, 0))
lport = s.getsockname()[1]
out = []
for i in range(n):
    s.sendto(sp.request("MESSAGE", "sip:nobody@edge.test", lport, body="x", extra=["Content-Type: text/plain"]),
             ("127.0.0.1", port))
    end, final = time.monotonic() + 8, 0
    while time.monotonic() < end and not final:
        for m in sp.collect([s], 0.2)[s]:
            if sp.status(m) >= 200:
                final = sp.status(m)
    out.append(str(final))
print(" ".join(out))
PY
}
P2=$(pike_probe 127.0.0.2 $((R_PIKE + 5)))
echo "# finals for 127.0.0.2: $P2"
# (R's 503 reaches the phone as 500: a proxy does not pass a 503 on, RFC 3261 §16.7 step 6.)
check "phone 127.0.0.2 behind E: 404 up to R's pike_limit, then R's 503 (500 from E)" \
    python3 -c "import sys; f=sys.argv[1].split(); n=int(sys.argv[2]); sys.exit(not (f[:n] == ['404']*n and set(f[n:]) == {'500'}))" "$P2" "$R_PIKE"
check "phone 127.0.0.3 behind the same E is not refused: 404" test "$(pike_probe 127.0.0.3 1)" = 404
check "R refused only 127.0.0.2's extra requests" jq_ok "$(rapi GET /stats)" '.proxy.pike_refused == 5'

# 8. A second edge ET talks to R over TCP ([proxy] edge_registrar with
# transport=tcp): erin registers through it (UDP phone), her Path on R names
# ET over TCP, and she calls carl: erin -> ET -> R -> E -> carl, the hops
# between the edges and R over TCP and UDP.
ETP=$(free_port); ET_API=$(free_port)
node_ini et "$ETP" "$ET_API" edge.test <<INI
[proxy]
edge_registrar = sip:127.0.0.1:$RP;transport=tcp
INI
start_cascade et "$WORK/et.ini"
etapi() { API_PORT=$ET_API api "$@"; }
baresip_phone_start erin erinpw edge.test udp ";outbound=\"sip:127.0.0.1:$ETP;transport=udp\""
check "erin registered through ET (over TCP to R): 200" wait_for 15 grep -q "erin@edge.test.*200 OK" "$WORK/baresip-erin.log"
erin_path_ok() {
    regs | jq -e --arg re "^<sip:pt[0-9a-f]+@127[.]0[.]0[.]1:$ETP;transport=tcp;lr;ob>\$" \
        '[.registrations[] | select(.user == "erin" and (.path | test($re)))] | length == 1' >/dev/null
}
check "erin's binding on R has ET's Path over TCP" erin_path_ok
check "erin dials carl (ctrl_tcp)" bctl "$erin_CTRL" dial "sip:carl@edge.test"
check "the call is established on both sides (erin -> ET -tcp-> R -> E -> carl)" \
    wait_for 15 bash -c "grep -qi 'established' '$WORK/baresip-erin.log' && grep -qi 'established' '$WORK/baresip-carl.log'"
check "ET forwarded the REGISTER and the INVITE to R over TCP" \
    jq_ok "$(etapi GET /stats)" '.proxy.edge_registers >= 1 and .proxy.edge_outbound >= 1 and .transport.tcp_open >= 1'
check "erin hangs up (ctrl_tcp)" bctl "$erin_CTRL" hangup
check "carl sees the call closed" wait_for 10 bash -c "grep -qiE 'closed|terminated' '$WORK/baresip-carl.log'"

# 9. The registrar behind an edge is Kamailio (registrar with use_path): dave
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
