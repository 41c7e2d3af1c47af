#!/usr/bin/env bash
# GB/T 28181 upper platform against sipp playing GB devices (scenarios in
# tests/peers/sipp/gb_*.xml): REGISTER with MD5 digest and the Date header,
# 403 for an id that is not allowed, 401 again for a wrong password,
# keepalives, Query/Catalog answered in several GB2312 Response MESSAGEs and
# assembled into a tree with the Chinese names decoded, DeviceInfo,
# RecordInfo (assembled), PTZ with its checksum, real-time play with RTP from
# a PS-over-RTP pcap (made by bench_gb_rtp from tests/data/clip.h264) whose
# packet count grows, BYE from either side, keepalive timeout, TCP loss,
# Expires 0, and the device table surviving a restart. Every outcome is read
# back from the API and the event ring.
source "$(dirname "$0")/lib.sh"

UPPER=34020000002000000001
DOMAIN=3402000000
A=34020000001320000001      # the camera used for most checks
B=34020000001320000002      # registers over TCP
C=34020000001320000003      # stays online across a restart
U=34020000001320000099      # not allowed
CAM1=34020000001310000001

PORT=$(free_port); API_PORT=$(free_port); API_TOKEN=gbtoken
MP=$(free_range 21)
node_ini c "$PORT" "$API_PORT" "$DOMAIN" <<INI
[gb]
enabled = yes
id = $UPPER
domain = $DOMAIN
password = defaultpw
allow_unknown = no
keepalive_interval = 5
keepalive_misses = 2
charset = GB2312
media_ip = 127.0.0.1
media_ports = $MP-$((MP + 20))
catalog_on_register = no
INI
start_cascade up "$WORK/c.ini"

GBKEYS=(-key upper "$UPPER" -key domain "$DOMAIN")
dev() { api GET "/gb/devices/$1"; }
# sipp_bg NAME SCENARIO ARGS...: a sipp in the background; its pid in SIPP_PID.
sipp_bg() {
    local name=$1 sf=$2
    shift 2
    sipp_spawn "$name" 60 "127.0.0.1:$PORT" -sf "$PEERS_DIR/sipp/$sf" "$@"
    local port="" a prev=""
    for a in "$@"; do [ "$prev" = "-p" ] && port=$a; prev=$a; done
    if [ -n "$port" ]; then wait_for 20 udp_bound "$port" || true; else sleep 0.4; fi
}
sipp_wait() { wait "$1"; }

# 1. Device records (cascadectl), refusals.
check "cascadectl gb device add A with its own password" ctl gb device add "$A" --password devpw
check "cascadectl gb device add B (default password)" ctl gb device add "$B"
check "cascadectl gb device add C" ctl gb device add "$C" --charset UTF-8
check "GET /gb/devices lists A, B, C offline" jq_ok "$(api GET /gb/devices)" \
    "[.devices[] | select(.online == false) | .id] == [\"$A\",\"$B\",\"$C\"] and .devices[0].own_password"
check "unknown device REGISTER -> 403" sipp_scn unknown gb_register_403.xml -s "$U" "${GBKEYS[@]}" -p "$(free_port)"
check "the 403 is logged with the sender" grep -q "gb REGISTER from $U at 127.0.0.1" "$WORK/up.log"
check "wrong password -> 401, digest -> 401 again" \
    sipp_scn badpw gb_register_badpw.xml -s "$A" -au "$A" -ap wrongpw "${GBKEYS[@]}" -p "$(free_port)"
check "A still offline after the wrong password" jq_ok "$(dev $A)" '.online == false'

# 2. Register with digest; the 200 carries Date (checked by the scenario).
PA=$(free_port)
check "A REGISTER -> 401 (MD5, realm $DOMAIN) -> digest -> 200 with Date" \
    sipp_scn regA gb_register.xml -s "$A" -au "$A" -ap devpw "${GBKEYS[@]}" -key expires 3600 -p "$PA"
check "A online via the API (udp, remote 127.0.0.1:$PA)" jq_ok "$(dev $A)" \
    ".online and .transport == \"udp\" and .remote == \"127.0.0.1:$PA\" and .registered_at != null"
check "event gb.device.online for A (reason register)" \
    has_event "select(.type==\"gb.device.online\" and .device_id==\"$A\" and .reason==\"register\")"
ctl_list_has() { ctl gb device list | grep -q "$1"; }
check "cascadectl gb device list shows A" ctl_list_has "$A"

# 3. Keepalives come from where A registered (PA); the upper takes a
# device's MESSAGEs from nowhere else. So A keeps alive between the sections
# below, from the port its UAS scenarios use (the keepalive window is 5 s x 2).
# A play scenario holds PA until its pcap ran out, which may outlast the
# window: A_alive then registers A again.
ka_A() { sipp_scn ka gb_keepalive_200.xml -s "$A" "${GBKEYS[@]}" -p "$PA"; }
A_alive() {
    ka_A || sipp_scn regA_again gb_register.xml -s "$A" -au "$A" -ap devpw "${GBKEYS[@]}" -key expires 3600 -p "$PA"
}
check "keepalive from A's registered address answered 200" ka_A
check "last_keepalive set" jq_ok "$(dev $A)" '.online and .last_keepalive != null'
check "a keepalive in A's name from another port -> 403" \
    sipp_scn ka_other gb_keepalive_403.xml -s "$A" "${GBKEYS[@]}" -p "$(free_port)"

# 4. Catalog: 7 items in 3 GB2312 MESSAGEs, assembled; the API call waits for it.
check "A online (keepalive, else register)" A_alive
sipp_bg cat gb_catalog_uas.xml -s "$A" -p "$PA" -m 1
CAT=$(api POST "/gb/devices/$A/catalog")
check "POST catalog returns the assembled list (sum_num 7, 7 channels)" jq_ok "$CAT" \
    ".device_id == \"$A\" and .sum_num == 7 and (.channels | length) == 7"
check "names decoded from GB2312 to UTF-8" jq_ok "$CAT" \
    '[.channels[].name] | index("大门摄像机") != null and index("停车场入口") != null and index("监控中心") != null'
check "channel status and fields kept" jq_ok "$CAT" \
    "[.channels[] | select(.id == \"34020000001310000004\")][0] | .status == \"OFF\" and .manufacturer == \"cascade-test\" and .address == \"合肥\""
check "sipp device saw its 3 Response MESSAGEs answered" sipp_wait "$SIPP_PID"
TREE=$(api GET "/gb/devices/$A/channels")
check "GET channels: tree roots are the business group and the camera under the device" jq_ok "$TREE" \
    '[.channels[].id] == ["34020000002150000001","34020000001310000004"]'
check "tree: group -> 2 virtual organisations -> cameras" jq_ok "$TREE" \
    '.channels[0].children | length == 2 and .[0].name == "一楼大厅" and ([.[0].children[].name] == ["大门摄像机","前台摄像机"]) and (.[1].children[0].id == "34020000001310000003")'
check "device shows 7 channels" jq_ok "$(dev $A)" '.channels == 7'
check "event gb.catalog.updated (complete)" \
    has_event "select(.type==\"gb.catalog.updated\" and .device_id==\"$A\" and .complete==true and .channels==7)"

# 5. DeviceInfo, RecordInfo, PTZ.
check "A online (keepalive, else register)" A_alive
sipp_bg info gb_info_uas.xml -s "$A" -p "$PA" -m 1
check "POST info returns the parsed DeviceInfo" jq_ok "$(api POST "/gb/devices/$A/info")" \
    '.device_name == "sipp-ipc" and .firmware == "V1.2.3" and .channel == 4 and .result == "OK"'
sipp_wait "$SIPP_PID" || true
check "GET device carries the info" jq_ok "$(dev $A)" '.info.model == "IPC-T1"'
check "A online (keepalive, else register)" A_alive
sipp_bg rec gb_records_uas.xml -s "$A" -p "$PA" -m 1
REC=$(api POST "/gb/devices/$A/records" "{\"channel\":\"$CAM1\",\"start\":\"2026-01-02T08:00:00\",\"end\":\"2026-01-02T10:00:00\"}")
check "POST records: 3 records assembled from 2 MESSAGEs" jq_ok "$REC" \
    '.sum_num == 3 and (.records | length) == 3 and .records[2].type == "alarm" and .records[0].file_path == "/rec/1.ps"'
sipp_wait "$SIPP_PID" || true
check "records with a bad time range -> 400" jq_ok "$(api POST "/gb/devices/$A/records" '{"start":"yesterday","end":"now"}')" \
    '.error == "bad-request"'
check "A online (keepalive, else register)" A_alive
sipp_bg ptz gb_ptz_uas.xml -s "$A" -p "$PA" -m 1
check "POST ptz left 128 -> sent, A50F010280000037" \
    jq_ok "$(api POST "/gb/devices/$A/channels/$CAM1/ptz" '{"cmd":"left","speed":128}')" \
    '.sent == true and .ptz_cmd == "A50F010280000037"'
check "the device got that PTZCmd for the channel" sipp_wait "$SIPP_PID"
check "ptz with an unknown command -> 400" \
    jq_ok "$(api POST "/gb/devices/$A/channels/$CAM1/ptz" '{"cmd":"sideways"}')" '.error == "bad-request"'

# 6. Real-time play: RTP from the pcap, packet count grows, upper's BYE ends it.
"$BUILD_DIR/bench_gb_rtp" --pcap "$WORK/ps.pcap" --ssrc 100009999 --loops 4 \
    --clip "$PEERS_DIR/../data/clip.h264" >"$WORK/pcap.out" 2>&1
check "pcap of PS over RTP made" test -s "$WORK/ps.pcap"
check "A online (keepalive, else register)" A_alive
sipp_bg play gb_invite_uas.xml -s "$CAM1" -p "$PA" -m 1 -key pcap "$WORK/ps.pcap" -mp "$(free_port)"
PLAY=$(api POST "/gb/devices/$A/channels/$CAM1/play" '{"transport":"udp","dump":true}')
SID=$(printf '%s' "$PLAY" | jq -r '.stream_id // empty')
check "POST play returns stream_id, ssrc, transport, media_ip, media_port" jq_ok "$PLAY" \
    ".stream_id != null and (.ssrc | test(\"^0[0-9]{9}$\")) and .transport == \"udp\" and .media_ip == \"127.0.0.1\" and .media_port >= $MP and .media_port <= $((MP + 20))"
stream_packets() { api GET "/gb/streams/$SID" | jq -r '.packets // 0'; }
packets_above() { [ "$(stream_packets)" -gt "$1" ]; }
wait_for 20 packets_above 0 || true
N1=$(stream_packets)
wait_for 20 packets_above "$N1" || true
S2=$(api GET "/gb/streams/$SID")
N2=$(printf '%s' "$S2" | jq -r '.packets // 0')
check "RTP arrives and the packet count grows ($N1 -> $N2)" test "$N1" -gt 0 -a "$N2" -gt "$N1"
stream_counted() {
    jq_ok "$(api GET "/gb/streams/$SID")" \
        '.ps == true and .codec == "h264" and .lost == 0 and .bytes > 10000 and .bitrate_bps > 0 and .state == "playing"'
}
check "stream: PS detected, codec h264, no loss, bytes and bitrate counted" wait_for 20 stream_counted
check "GET /gb/streams lists it" jq_ok "$(api GET /gb/streams)" "[.streams[].stream_id] == [\"$SID\"]"
check "event gb.stream.started" has_event "select(.type==\"gb.stream.started\" and .stream_id==\"$SID\")"
check "DELETE stream -> stopped (BYE sent)" jq_ok "$(api DELETE "/gb/streams/$SID")" '.stopped == true'
check "the device got the BYE and answered it" sipp_wait "$SIPP_PID"
check "the stream is gone" jq_ok "$(api GET "/gb/streams/$SID")" '.error == "not-found"'
check "event gb.stream.stopped (reason api)" \
    has_event "select(.type==\"gb.stream.stopped\" and .stream_id==\"$SID\" and .reason==\"api\" and .packets > 0)"
DUMP=$(ls "$WORK"/gb-stream-*.ps 2>/dev/null | head -1)
check "the dumped PS is read by ffprobe as H.264" \
    bash -c "ffprobe -v error -show_entries stream=codec_name -of csv=p=0 '$DUMP' | grep -q h264"

# 7. Play ended by the device's BYE.
check "A online (keepalive, else register)" A_alive
sipp_bg play2 gb_invite_bye_uas.xml -s "$CAM1" -p "$PA" -m 1 -key pcap "$WORK/ps.pcap" \
    -mp "$(free_port)"
PLAY2=$(api POST "/gb/devices/$A/channels/$CAM1/play" '{}')
SID2=$(printf '%s' "$PLAY2" | jq -r '.stream_id // empty')
check "second play started" test -n "$SID2"
check "the device's BYE was answered 200" sipp_wait "$SIPP_PID"
check "event gb.stream.stopped (reason bye)" \
    wait_for 5 has_event "select(.type==\"gb.stream.stopped\" and .stream_id==\"$SID2\" and .reason==\"bye\")"
check "no stream left" jq_ok "$(api GET /gb/streams)" '.streams == []'

# 7b. Play over TCP (passive on our side): RTP framed per RFC 4571 by the test.
check "A online (keepalive, else register)" A_alive
sipp_bg play3 gb_invite_tcp_uas.xml -s "$CAM1" -p "$PA" -m 1
PLAY3=$(api POST "/gb/devices/$A/channels/$CAM1/play" '{"transport":"tcp"}')
SID3=$(printf '%s' "$PLAY3" | jq -r '.stream_id // empty')
MPORT3=$(printf '%s' "$PLAY3" | jq -r '.media_port // 0')
check "TCP play answered: transport tcp, a listening media port" jq_ok "$PLAY3" '.transport == "tcp" and .media_port > 0'
python3 - "$WORK/ps.pcap" "$MPORT3" >"$WORK/tcp_sender.out" 2>&1 <<'PY' &
import socket, struct, sys, time
data = open(sys.argv[1], "rb").read()
s = socket.create_connection(("127.0.0.1", int(sys.argv[2])))
off, n = 24, 0
while off + 16 <= len(data):
    incl = struct.unpack("<IIII", data[off:off + 16])[2]
    rtp = data[off + 16 + 42: off + 16 + incl]
    off += 16 + incl
    s.sendall(struct.pack(">H", len(rtp)) + rtp)   # RFC 4571 framing
    n += 1
    if n % 10 == 0:
        time.sleep(0.05)
print("sent", n, flush=True)
time.sleep(10)   # keep the connection: its close would end the stream
PY
TCP_SENDER=$!
PIDS+=("$TCP_SENDER")
tcp_stream_seen() {
    jq_ok "$(api GET "/gb/streams/$SID3")" \
        '.packets > 10 and .transport == "tcp" and .ps == true and .codec == "h264" and .lost == 0'
}
check "RTP over TCP counted (RFC 4571 deframed), PS/h264 seen" wait_for 20 tcp_stream_seen
check "DELETE the TCP stream" jq_ok "$(api DELETE "/gb/streams/$SID3")" '.stopped == true'
check "the device got the BYE" sipp_wait "$SIPP_PID"
kill "$TCP_SENDER" 2>/dev/null || true; wait "$TCP_SENDER" 2>/dev/null || true

# 7c. Playback: s=Playback, u=, t= range, history SSRC (checked by the scenario).
check "A online (keepalive, else register)" A_alive
sipp_bg pb gb_playback_uas.xml -s "$CAM1" -p "$PA" -m 1
PB=$(api POST "/gb/devices/$A/channels/$CAM1/play" '{"start":"2026-01-02T08:00:00","end":"2026-01-02T08:30:00"}')
SIDPB=$(printf '%s' "$PB" | jq -r '.stream_id // empty')
check "playback answered: a history SSRC (1...)" jq_ok "$PB" '.playback == true and (.ssrc | startswith("1"))'
check "DELETE the playback stream" jq_ok "$(api DELETE "/gb/streams/$SIDPB")" '.stopped == true'
check "the device saw a proper playback offer and the BYE" sipp_wait "$SIPP_PID"
check "playback with end before start -> 400" \
    jq_ok "$(api POST "/gb/devices/$A/channels/$CAM1/play" '{"start":"2026-01-02T09:00:00","end":"2026-01-02T08:00:00"}')" \
    '.error == "bad-request"'

# 8. Keepalives stop -> offline after interval x misses (5 s x 2).
check "a last keepalive from A (else a registration)" A_alive
T0=$(date +%s.%N)
check "A still online right after the last keepalive" jq_ok "$(dev $A)" '.online'
a_offline() { jq_ok "$(dev $A)" '.online == false'; }
check "A goes offline for missed keepalives" wait_for 25 a_offline
T1=$(date +%s.%N)
ELAPSED=$(echo "$T1 - $T0" | bc)
check "not offline before 7.5 s of silence (took $ELAPSED s)" \
    bash -c "[ \$(echo '$ELAPSED >= 7.5' | bc) = 1 ]"
check "event gb.device.offline (reason keepalive-timeout)" \
    has_event "select(.type==\"gb.device.offline\" and .device_id==\"$A\" and .reason==\"keepalive-timeout\")"
check "a keepalive from the offline device gets 403" \
    sipp_scn ka403 gb_keepalive_403.xml -s "$A" "${GBKEYS[@]}" -p "$(free_port)"

# 9. Expires 0 -> offline (unregister).
check "A registers again" sipp_scn regA2 gb_register.xml -s "$A" -au "$A" -ap devpw "${GBKEYS[@]}" -key expires 3600 -p "$PA"
check "A REGISTER with Expires 0 -> 200" sipp_scn unregA gb_unregister.xml -s "$A" -au "$A" -ap devpw "${GBKEYS[@]}" -p "$PA"
check "A offline, event reason unregister" \
    has_event "select(.type==\"gb.device.offline\" and .device_id==\"$A\" and .reason==\"unregister\")"

# 10. TCP: B registers over TCP; sipp exits, the connection closes -> offline at once.
check "B REGISTER over TCP (default password) -> 200" \
    sipp_scn regB gb_register.xml -t t1 -s "$B" -au "$B" -ap defaultpw "${GBKEYS[@]}" -key expires 3600 -p "$(free_port)"
check "event gb.device.online for B over tcp" \
    has_event "select(.type==\"gb.device.online\" and .device_id==\"$B\" and .transport==\"tcp\")"
check "B offline when its TCP connection closes (reason transport-lost)" \
    wait_for 5 has_event "select(.type==\"gb.device.offline\" and .device_id==\"$B\" and .reason==\"transport-lost\")"

# 11. Restart: records, channels and a live UDP registration come back.
PC=$(free_port)
check "C registers (UDP)" sipp_scn regC gb_register.xml -s "$C" -au "$C" -ap defaultpw "${GBKEYS[@]}" -key expires 3600 -p "$PC"
kill -TERM "$up_PID"
wait_for 10 not kill -0 "$up_PID"
check "cascade stopped cleanly" grep -q "cascade stopped" "$WORK/up.log"
mv "$WORK/up.log" "$WORK/up1.log"
start_cascade up "$WORK/c.ini"
check "after restart: C online, A and B offline" jq_ok "$(api GET /gb/devices)" \
    "[.devices[] | select(.online) | .id] == [\"$C\"] and (.devices | length) == 3"
check "after restart: A's 7 channels and tree restored with names" jq_ok "$(api GET "/gb/devices/$A/channels")" \
    '([.channels[].id] | sort) == ["34020000001310000004","34020000002150000001"]
     and ([.channels[] | select(.id == "34020000002150000001")][0].children[0].children[0].name == "大门摄像机")'
check "after restart: A keeps its own password and info; C its charset" \
    bash -c "jq -e '.own_password and .info.firmware == \"V1.2.3\"' <<<'$(dev $A)' >/dev/null && jq -e '.charset == \"UTF-8\"' <<<'$(dev $C)' >/dev/null"
check "C goes offline without keepalives after the restart too" \
    wait_for 25 has_event "select(.type==\"gb.device.offline\" and .device_id==\"$C\" and .reason==\"keepalive-timeout\")"

# 12. Deleting a device record.
check "DELETE /gb/devices/B" jq_ok "$(api DELETE "/gb/devices/$B")" '.removed == 1'
check "B is gone" jq_ok "$(dev $B)" '.error == "not-found"'
check "B's REGISTER is now refused (403)" sipp_scn regB403 gb_register_403.xml -s "$B" "${GBKEYS[@]}" -p "$(free_port)"

finish
