#!/usr/bin/env bash
# test_gb_live_slow.sh — a slow HTTP-FLV viewer of a GB live stream is moved
# forward, not dropped, and the others do not notice. The camera:
# cascade-gbsim sending a ~3 Mbit/s 640x360 H.264 clip made at test time (a
# key frame a second). Three viewers (tests/peers/flvslow.py) of one stream,
# [media] flv_max_lag_ms = 2000:
#  - one stops reading for 6 s (a 4 KiB receive buffer), then reads on: it
#    is skipped forward when it reads again (the stream's flv.skips and
#    /stats gb_upper.flv_skips count it, not flv.viewers_dropped), its
#    connection stays up, and what it saved is whole FLV tags with, after
#    the jump, a sequence header then a key frame of the same time; ffmpeg
#    decodes it without an error;
#  - one stops reading for 18 s, longer than the stream's 4 MiB ring lasts
#    at this rate: moved forward while it stalls (the rest of the frame it
#    was in kept for it), not dropped; the same checks;
#  - the third reads all the time: no jump in its timestamps, no resent
#    sequence header, decoded without an error.
source "$(dirname "$0")/lib.sh"
command -v ffprobe >/dev/null && command -v ffmpeg >/dev/null || { echo "skip: ffprobe/ffmpeg not installed"; exit 77; }

SIP=$(free_port); API_PORT=$(free_port); API_TOKEN=tok
UPPER=34020000002000000001
DEV=34020000001320000001
CH1=34020000001310000001
gb_upper_ini top "$SIP" "$API_PORT" "$UPPER" dev-secret yes <<EOF
[media]
enabled = no
idle_stop = 15
flv_max_lag_ms = 2000
EOF
start_cascade top "$WORK/top.ini"
ffmpeg -nostdin -v error -y -f lavfi -i "testsrc2=size=640x360:rate=25,noise=alls=20:allf=t" -t 2 \
    -c:v libx264 -preset ultrafast -profile:v baseline -pix_fmt yuv420p -g 25 -keyint_min 25 -sc_threshold 0 \
    -b:v 3000k -bsf:v h264_mp4toannexb -f h264 "$WORK/clip.h264"
check "a 3 Mbit/s clip was made" test -s "$WORK/clip.h264"
gb_sim "$SIP" "$UPPER" gbsim.log --devices 1 --channels 1 --media "$WORK/clip.h264" --audio none
check "the device is online" wait_for 30 gb_device_online "$DEV"

L=$(api POST "/gb/devices/$DEV/channels/$CH1/live" '{}')
SID=$(echo "$L" | jget 'd.get("stream_id","")')
URL=$(echo "$L" | jget 'd.get("flv","")')
check "live: the channel's stream started ($SID)" test -n "$SID"
framed() { jq_ok "$(api GET "/gb/streams/$SID")" '.frames > 0'; }
check "the stream has frames" wait_for 30 framed

python3 "$(dirname "$0")/flvslow.py" "$URL" --token "$API_TOKEN" --out "$WORK/normal.flv" --duration 24 \
    >"$WORK/normal.json" 2>"$WORK/normal.err" &
PN=$!
python3 "$(dirname "$0")/flvslow.py" "$URL" --token "$API_TOKEN" --out "$WORK/slow.flv" --duration 14 \
    --pause-after 2 --pause 6 --rcvbuf 4096 >"$WORK/slow.json" 2>"$WORK/slow.err" &
PS=$!
python3 "$(dirname "$0")/flvslow.py" "$URL" --token "$API_TOKEN" --out "$WORK/stall.flv" --duration 24 \
    --pause-after 2 --pause 18 --rcvbuf 4096 >"$WORK/stall.json" 2>"$WORK/stall.err" &
PT=$!
PIDS+=("$PN" "$PS" "$PT")
wait "$PN" "$PS" "$PT" || true
N=$(cat "$WORK/normal.json"); S=$(cat "$WORK/slow.json"); T=$(cat "$WORK/stall.json")
echo "normal viewer:  $N"
echo "slow viewer:    $S"
echo "stalled viewer: $T"

check "the slow and the stalled viewers were skipped forward, not dropped (flv.skips, viewers_dropped 0)" \
    jq_ok "$(api GET "/gb/streams/$SID")" '.flv.skips >= 2 and .flv.viewers_skipped == 2 and .flv.viewers_dropped == 0'
check "/stats counts it (gb_upper.flv_skips)" jq_ok "$(api GET /stats)" '.gb_upper.flv_skips >= 1 and .gb_upper.flv_dropped == 0'
check "the slow viewer's connection stayed up" jq_ok "$S" '.ended_by_server == false'
check "the slow viewer got whole tags, the FLV header once" jq_ok "$S" '.flv_header and .bad_prev_size == 0 and .video > 100'
check "after its jump: a sequence header, then a key frame of the same time" \
    jq_ok "$S" '.resent_seq >= 1 and .resent_seq_then_key == .resent_seq and .jumps >= 1 and .back == 0'
check "the slow viewer kept receiving after the skip (> 4 s of frames after the pause)" jq_ok "$S" '.video > 150'
decodes() { timeout 60 ffmpeg -nostdin -v error -i "$1" -f null - 2>"$1.err" && ! [ -s "$1.err" ]; }
check "ffmpeg decodes what the slow viewer saved without an error" decodes "$WORK/slow.flv"
check "the stalled viewer's connection stayed up, whole tags, the FLV header once" \
    jq_ok "$T" '.ended_by_server == false and .flv_header and .bad_prev_size == 0'
check "the stalled viewer: after its jump a sequence header, then a key frame of the same time" \
    jq_ok "$T" '.resent_seq >= 1 and .resent_seq_then_key == .resent_seq and .jumps >= 1 and .back == 0 and .video > 100'
check "ffmpeg decodes what the stalled viewer saved without an error" decodes "$WORK/stall.flv"
check "the normal viewer: no jump, no resent sequence header, ~24 s of frames" \
    jq_ok "$N" '.jumps == 0 and .back == 0 and .resent_seq == 0 and .bad_prev_size == 0 and .video >= 400'
check "ffmpeg decodes what the normal viewer saved without an error" decodes "$WORK/normal.flv"
check "the log says so, rate-limited" grep -q "resumes at the newest key frame" "$WORK/top.log"

finish
