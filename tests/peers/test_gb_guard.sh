#!/usr/bin/env bash
# GB/T 28181 upper platform against devices that misbehave and against
# whoever pretends to be a device (issue 9):
#  - a device whose 200 to INVITE carries a Contact nobody can reach: the ACK
#    and the BYE both go to the address it registered from (sipp);
#  - a device that streams MPEG-TS over RTP (PT 33) with an SSRC other than
#    the y= agreed: followed, counted, reported as container "ts" with the
#    SSRC it uses (ffmpeg makes the TS, python packetizes it);
#  - MESSAGEs in a registered device's name from another port: a forged
#    keepalive (403, the device still goes offline), a forged Catalog (403,
#    channels untouched); a keepalive naming another DeviceID (400);
#  - a captured REGISTER Authorization replayed from another port: 401 with a
#    fresh nonce, the device stays at its address.
# Devices are sipp scenarios (tests/peers/sipp/gb_*.xml) and python raw UDP
# sockets; outcomes are read back from the API and the SIP answers.
source "$(dirname "$0")/lib.sh"

UPPER=34020000002000000001
DOMAIN=3402000000
E=34020000001320000011      # plays (Contact unreachable, then TS)
F=34020000001320000012      # victim of forged MESSAGEs
G=34020000001320000013      # victim of a REGISTER replay
CAM=34020000001310000011

PORT=$(free_port); API_PORT=$(free_port); API_TOKEN=gbguard
MP=$(free_range 21)
node_ini c "$PORT" "$API_PORT" "$DOMAIN" <<INI
[gb]
enabled = yes
id = $UPPER
domain = $DOMAIN
password = guardpw
allow_unknown = yes
keepalive_interval = 8
keepalive_misses = 2
media_ip = 127.0.0.1
media_ports = $MP-$((MP + 20))
catalog_on_register = no
INI
start_cascade up "$WORK/c.ini"

GBKEYS=(-key upper "$UPPER" -key domain "$DOMAIN")
dev() { api GET "/gb/devices/$1"; }
reg() { sipp_scn "reg$1" gb_register.xml -s "$1" -au "$1" -ap guardpw "${GBKEYS[@]}" -key expires 3600 -p "$2"; }
ka() { sipp_scn "ka$1" gb_keepalive_200.xml -s "$1" "${GBKEYS[@]}" -p "$2"; }
sipp_bg() {
    local name=$1 sf=$2
    shift 2
    sipp_spawn "$name" 60 "127.0.0.1:$PORT" -sf "$PEERS_DIR/sipp/$sf" "$@"
    sleep 0.4
}

# udp_sip PORT FILE: sends the SIP message in FILE (LF line ends, Content-Length
# filled in) to the upper from 127.0.0.1:PORT (0: any), prints the status code
# of the answer (0 if none within 5 s) and, with SHOW_HDR=name, that header.
udp_sip() {
    python3 - "$PORT" "$1" "$2" "${SHOW_HDR:-}" <<'PY'
import socket, sys
up, lport, path, show = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", lport))
p = s.getsockname()[1]
head, _, body = open(path).read().partition("\n\n")
head = head.rstrip("\n").replace("@PORT@", str(p))
body = body.replace("\n", "\r\n")
msg = head.replace("\n", "\r\n") + "\r\nContent-Length: %d\r\n\r\n" % len(body.encode()) + body
s.sendto(msg.encode(), ("127.0.0.1", up))
s.settimeout(5)
try:
    while True:
        r = s.recv(65535).decode(errors="replace")
        code = int(r.split(" ", 2)[1])
        if code >= 200:
            break
except socket.timeout:
    print(0); sys.exit(0)
print(code)
for line in r.split("\r\n"):
    if show and line.lower().startswith(show.lower() + ":"):
        print(line)
PY
}

# message FILE FROM_ID BODY: a MANSCDP MESSAGE from FROM_ID.
message() {
    cat >"$1" <<EOF
MESSAGE sip:$UPPER@$DOMAIN SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:@PORT@;branch=z9hG4bK$RANDOM$RANDOM;rport
From: <sip:$2@$DOMAIN>;tag=f$RANDOM
To: <sip:$UPPER@$DOMAIN>
Call-ID: forged-$RANDOM$RANDOM
CSeq: 20 MESSAGE
Max-Forwards: 70
Content-Type: Application/MANSCDP+xml

$3
EOF
}
keepalive_body() {
    printf '<?xml version="1.0" encoding="GB2312"?>\n<Notify>\n<CmdType>Keepalive</CmdType>\n<SN>%s</SN>\n<DeviceID>%s</DeviceID>\n<Status>OK</Status>\n</Notify>\n' "$RANDOM" "$1"
}

# 1. Contact unreachable: ACK and BYE to the registered address.
PE=$(free_port)
check "E registers from 127.0.0.1:$PE" reg "$E" "$PE"
sipp_bg play1 gb_invite_ack_bye_uas.xml -s "$CAM" -p "$PE" -m 1 -key contact 192.0.2.55:5099 -mp "$(free_port)"
P1=$(api POST "/gb/devices/$E/channels/$CAM/play" '{"transport":"udp"}')
SID1=$(printf '%s' "$P1" | jq -r '.stream_id // empty')
check "play answered by the device (200 with Contact 192.0.2.55:5099)" test -n "$SID1"
check "DELETE the stream" jq_ok "$(api DELETE "/gb/streams/$SID1")" '.stopped == true'
check "the device got the ACK and the BYE at its registered address, not at its Contact" wait "$SIPP_PID"

# 2. MPEG-TS over RTP (PT 33) with an SSRC of the device's own.
ffmpeg -loglevel error -f h264 -i "$PEERS_DIR/../data/clip.h264" -c copy -f mpegts "$WORK/clip.ts"
check "ffmpeg made an MPEG-TS from the clip" test -s "$WORK/clip.ts"
check "E keeps alive" ka "$E" "$PE"
sipp_bg play2 gb_invite_ack_bye_uas.xml -s "$CAM" -p "$PE" -m 1 -key contact "127.0.0.1:$PE" -mp "$(free_port)"
P2=$(api POST "/gb/devices/$E/channels/$CAM/play" '{"transport":"udp"}')
SID2=$(printf '%s' "$P2" | jq -r '.stream_id // empty')
MPORT2=$(printf '%s' "$P2" | jq -r '.media_port // 0')
check "TS play started" test -n "$SID2" -a "$MPORT2" -gt 0
python3 - "$WORK/clip.ts" "$MPORT2" >"$WORK/ts_sender.out" 2>&1 <<'PY'
import socket, struct, sys, time
data = open(sys.argv[1], "rb").read()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
seq, ts, n = 1000, 0, 0
for off in range(0, len(data) - 187, 7 * 188):
    chunk = data[off:off + 7 * 188]
    chunk = chunk[:len(chunk) // 188 * 188]
    hdr = struct.pack(">BBHII", 0x80, 33, seq & 0xffff, ts, 0x12345678)   # PT 33 (MP2T), SSRC 305419896
    s.sendto(hdr + chunk, ("127.0.0.1", int(sys.argv[2])))
    seq += 1; ts += 3000; n += 1
    if n % 20 == 0:
        time.sleep(0.02)
print("sent", n)
PY
ts_counted() { jq_ok "$(api GET "/gb/streams/$SID2")" '.packets > 20'; }
check "RTP with the device's own SSRC is counted" wait_for 10 ts_counted
S2=$(api GET "/gb/streams/$SID2")
check "stream info: container ts, rtp_ssrc 305419896 (the one it sends), codec h264 from the PMT" jq_ok "$S2" \
    '.container == "ts" and .rtp_ssrc == 305419896 and .codec == "h264" and .bytes > 10000'
check "the SSRC followed is logged" grep -q "the device sends SSRC 305419896" "$WORK/up.log"
check "DELETE the TS stream" jq_ok "$(api DELETE "/gb/streams/$SID2")" '.stopped == true'
check "event gb.stream.stopped with container ts and the SSRC" \
    wait_for 5 has_event "select(.type==\"gb.stream.stopped\" and .stream_id==\"$SID2\" and .container==\"ts\" and .rtp_ssrc==305419896)"
wait "$SIPP_PID" || true

# 3. Forged MESSAGEs in F's name.
PF=$(free_port)
check "F registers from 127.0.0.1:$PF" reg "$F" "$PF"
message "$WORK/ka_forged.sip" "$F" "$(keepalive_body "$F")"
check "a keepalive in F's name from another port -> 403" test "$(udp_sip 0 "$WORK/ka_forged.sip")" = 403
check "the refusal is logged with the sender" grep -q "gb MESSAGE in the name of $F from UDP 127.0.0.1:" "$WORK/up.log"
message "$WORK/ka_other.sip" "$F" "$(keepalive_body "$E")"
check "a keepalive from F's own address naming DeviceID $E -> 400" test "$(udp_sip "$PF" "$WORK/ka_other.sip")" = 400
check "F's own keepalive from its address -> 200" test "$(udp_sip "$PF" "$WORK/ka_forged.sip")" = 200
CATALOG='<?xml version="1.0" encoding="GB2312"?>
<Response>
<CmdType>Catalog</CmdType>
<SN>77</SN>
<DeviceID>'$F'</DeviceID>
<SumNum>1</SumNum>
<DeviceList Num="1">
<Item>
<DeviceID>34020000001310000666</DeviceID>
<Name>forged</Name>
<Status>ON</Status>
</Item>
</DeviceList>
</Response>'
message "$WORK/cat_forged.sip" "$F" "$CATALOG"
check "a Catalog in F's name from another port -> 403" test "$(udp_sip 0 "$WORK/cat_forged.sip")" = 403
check "F's channels untouched" jq_ok "$(api GET "/gb/devices/$F")" '.channels == 0'
# Forged keepalives every 0.5 s do not keep the silent F online.
python3 - "$PORT" "$WORK/ka_forged.sip" >"$WORK/forger.out" 2>&1 <<'PY' &
import socket, sys, time, random
up = int(sys.argv[1]); text = open(sys.argv[2]).read()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0))
head, _, body = text.partition("\n\n")
head = head.rstrip("\n")
body = body.replace("\n", "\r\n")
for i in range(100):
    h = head.replace("@PORT@", str(s.getsockname()[1])).replace("z9hG4bK", "z9hG4bK%d" % random.randrange(1 << 30))
    msg = h.replace("\n", "\r\n") + "\r\nContent-Length: %d\r\n\r\n" % len(body.encode()) + body
    s.sendto(msg.encode(), ("127.0.0.1", up))
    time.sleep(0.5)
PY
FORGER=$!
PIDS+=("$FORGER")
f_offline() { jq_ok "$(dev "$F")" '.online == false'; }
check "F goes offline (keepalive-timeout) despite forged keepalives" wait_for 45 f_offline
check "event gb.device.offline for F, reason keepalive-timeout" \
    has_event "select(.type==\"gb.device.offline\" and .device_id==\"$F\" and .reason==\"keepalive-timeout\")"
kill "$FORGER" 2>/dev/null; wait "$FORGER" 2>/dev/null || true

# 4. REGISTER replay: G's Authorization re-sent from another port.
PG=$(free_port)
check "G registers from 127.0.0.1:$PG (no qop)" reg "$G" "$PG"
AUTH=$(grep -m1 '^Authorization: ' "$WORK/reg$G.msg" | tr -d '\r')
NONCE=$(printf '%s' "$AUTH" | sed -n 's/.*nonce="\([^"]*\)".*/\1/p')
check "the captured REGISTER carries digest credentials" test -n "$NONCE"
cat >"$WORK/replay.sip" <<EOF
REGISTER sip:$UPPER@$DOMAIN SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:@PORT@;branch=z9hG4bKreplay$RANDOM;rport
From: <sip:$G@$DOMAIN>;tag=replay$RANDOM
To: <sip:$G@$DOMAIN>
Call-ID: replay-$RANDOM$RANDOM
CSeq: 7 REGISTER
Contact: <sip:$G@127.0.0.1:@PORT@>
Max-Forwards: 70
Expires: 3600
$AUTH
EOF
REPLAY=$(SHOW_HDR=WWW-Authenticate udp_sip 0 "$WORK/replay.sip")
check "the replayed REGISTER from another port -> 401" test "$(printf '%s\n' "$REPLAY" | head -1)" = 401
fresh_nonce() { printf '%s' "$REPLAY" | grep -q 'nonce=' && ! printf '%s' "$REPLAY" | grep -qF "nonce=\"$NONCE\""; }
check "with a fresh challenge (another nonce)" fresh_nonce
check "G is still at 127.0.0.1:$PG" jq_ok "$(dev "$G")" ".online and .remote == \"127.0.0.1:$PG\""
check "the replay is logged with the sender" grep -q "gb REGISTER from $G at 127.0.0.1:.* refused: nonce" "$WORK/up.log"
check "G itself registers again from its address" reg "$G" "$PG"

finish
