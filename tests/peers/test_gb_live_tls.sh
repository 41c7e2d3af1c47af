#!/usr/bin/env bash
# test_gb_live_tls.sh — a GB live stream's HTTP-FLV over an HTTPS API ([api]
# tls_cert / tls_key), with cascade-gbsim as the camera: read over HTTP/2
# (curl's choice with ALPN h2; an HTTP/2 answer carries no Connection
# header, which lws refused, so the body never came) and over HTTP/1.1 (the
# TLS path copies through lws_write; plain HTTP sends from the ring): both
# answer 200 and ffprobe reads h264 320x240 from what came.
source "$(dirname "$0")/lib.sh"
source "$PEERS_DIR/pki.sh"
command -v ffprobe >/dev/null || { echo "skip: ffprobe not installed"; exit 77; }
PKI=$WORK/pki
make_test_pki "$PKI"
SIP=$(free_port); API_PORT=$(free_port); API_TOKEN=tok
UPPER=34020000002000000001; DEV=34020000001320000001; CH1=34020000001310000001
gb_upper_ini top "$SIP" "$API_PORT" "$UPPER" dev-secret yes <<EOI
[media]
enabled = no
EOI
sed -i "s|^token = tok$|token = tok\ntls_cert = $PKI/server.pem\ntls_key = $PKI/server.key|" "$WORK/top.ini"
start_cascade top "$WORK/top.ini"
gb_sim "$SIP" "$UPPER" gbsim.log --devices 1 --channels 1
AUTH="Authorization: Bearer $API_TOKEN"
BASE="https://127.0.0.1:$API_PORT/api/v1"
online() { curl -s --cacert "$PKI/ca.pem" -H "$AUTH" "$BASE/gb/devices/$DEV" | grep -q '"online": *true'; }
check "the device is online (over https)" wait_for 30 online
L=$(curl -s --cacert "$PKI/ca.pem" -X POST -H "$AUTH" -H 'Content-Type: application/json' -d '{}' \
    "$BASE/gb/devices/$DEV/channels/$CH1/live")
SID=$(echo "$L" | jget 'd.get("stream_id","")')
check "live: the channel's stream started ($SID)" test -n "$SID"
URL="$BASE/gb/streams/$SID/live.flv"
framed() { curl -s --cacert "$PKI/ca.pem" -H "$AUTH" "$BASE/gb/streams/$SID" | grep -q '"frames": *[1-9]'; }
check "the stream has frames" wait_for 30 framed
# fetch VERSION_OPTION FILE: 4 s of the body (curl ends on its time limit)
fetch() { curl -s "$1" --cacert "$PKI/ca.pem" -m 4 -H "$AUTH" -o "$WORK/$2" -w '%{http_version} %{http_code}' "$URL" || true; }
H2=$(fetch --http2 h2.flv)
check "HTTP/2: 200 ($H2)" test "$H2" = "2 200"
H1=$(fetch --http1.1 h1.flv)
check "HTTP/1.1 over TLS: 200 ($H1)" test "$H1" = "1.1 200"
probe() { ffprobe -v error -select_streams v:0 -show_entries stream=codec_name,width,height -of csv=p=0 "$1"; }
check "ffprobe reads h264 320x240 from the HTTP/2 body" test "$(probe "$WORK/h2.flv")" = "h264,320,240"
check "ffprobe reads h264 320x240 from the HTTP/1.1 body" test "$(probe "$WORK/h1.flv")" = "h264,320,240"
finish
