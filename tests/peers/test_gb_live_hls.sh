#!/usr/bin/env bash
# test_gb_live_hls.sh — GB/T 28181 live view over HLS, with cascade-gbsim as
# the camera and ffprobe/ffmpeg as the players:
#  - POST .../channels/{cid}/live answers the playlist URL (cascadectl prints
#    it); ffprobe reads h264 320x240 at 25 fps from it (its first request
#    waits for the first segment) and ffmpeg copies 5 s without an error;
#  - segments are about 1 s (the clip's GOP) and start with a key frame;
#  - two HLS players and an FLV player at once share one INVITE;
#  - the players counted as HLS viewers while they poll; once they stop,
#    the viewers expire and the stream stops after [media] idle_stop
#    (reason idle);
#  - refusals: an unknown segment or stream (404), no token (401);
#  - a playback watched over FLV only has no HLS state (no segment ring):
#    HLS starts at a stream's first HLS request, playback or live;
#  - a playback is watched through its own HLS playlist (ffprobe reads it);
#    one that reaches the end of its recording ends its playlist
#    (EXT-X-ENDLIST): ffmpeg reads it to the end and exits 0 by itself;
#  - a first request abandoned while it waits, and a stop with HLS on.
source "$(dirname "$0")/lib.sh"
GBSIM=$BUILD_DIR/cascade-gbsim
command -v ffprobe >/dev/null && command -v ffmpeg >/dev/null || { echo "skip: ffprobe/ffmpeg not installed"; exit 77; }

SIP=$(free_port); API_PORT=$(free_port); API_TOKEN=tok
UPPER=34020000002000000001
DEV=34020000001320000001
CH1=34020000001310000001
gb_live_top 1 <<EOF
[media]
enabled = no
idle_stop = 15
EOF

AUTH="Authorization: Bearer $API_TOKEN"
BASE="http://127.0.0.1:$API_PORT/api/v1/gb/streams"
probe() { # probe URL: codec,width,height,rate of the first video stream (HLS lists it under its program too)
    timeout 60 ffprobe -v error -headers "$AUTH"$'\r\n' -select_streams v:0 \
        -show_entries stream=codec_name,width,height,r_frame_rate -of csv=p=0 "$1" | awk 'NF && !n++'
}
invites() { grep -c "INVITE for $1: " "$WORK/gbsim.log" || true; }
code() { curl -s -o /dev/null -w '%{http_code}' -H "$AUTH" "$1"; }

L=$(api POST "/gb/devices/$DEV/channels/$CH1/live" '{}')
SID=$(echo "$L" | jget 'd.get("stream_id","")')
URL=$(echo "$L" | jget 'd.get("hls","")')
FLV=$(echo "$L" | jget 'd.get("flv","")')
check "live: the channel's stream started ($SID)" test -n "$SID"
check "live: the answer names the HLS playlist URL" test "$URL" = "$BASE/$SID/hls/index.m3u8"
ctl_live_url() { ctl gb live "$DEV" "$CH1" | grep -qF "hls  $URL"; }
check "cascadectl gb live prints the playlist URL" ctl_live_url

# The first request waits for the first segment: a playable playlist at once.
check "ffprobe reads h264 320x240 at 25 fps from the playlist" test "$(probe "$URL")" = "h264,320,240,25/1"
curl -s -D "$WORK/pl.hdr" -H "$AUTH" "$URL" >"$WORK/pl.m3u8"
check "the playlist is a live playlist (no ENDLIST, relative URIs)" \
    bash -c "head -1 '$WORK/pl.m3u8' | grep -q '^#EXTM3U' && ! grep -q ENDLIST '$WORK/pl.m3u8' && grep -Eq '^[0-9]+\.ts$' '$WORK/pl.m3u8'"
check "the playlist's type is application/vnd.apple.mpegurl, not cached" \
    bash -c "grep -qi '^content-type: application/vnd.apple.mpegurl' '$WORK/pl.hdr' && grep -qi '^cache-control: no-' '$WORK/pl.hdr'"
check "ffmpeg copies 5 s from the playlist without an error" \
    bash -c "timeout 90 ffmpeg -nostdin -v error -headers '$AUTH'$'\r\n' -i '$URL' -t 5 -c copy -f null - 2>'$WORK/ffmpeg.err' && ! [ -s '$WORK/ffmpeg.err' ]"

# Segments: about 1 s (the clip has a key frame every 26 frames), each
# opening with a key frame.
curl -s -H "$AUTH" "$URL" >"$WORK/pl.m3u8"
SEG=$(grep -E '^[0-9]+\.ts$' "$WORK/pl.m3u8" | tail -1 || true)
curl -s -D "$WORK/seg.hdr" -H "$AUTH" -o "$WORK/seg.ts" "$BASE/$SID/hls/$SEG"
check "a segment is video/mp2t" grep -qi '^content-type: video/mp2t' "$WORK/seg.hdr"
check "a segment's first packet is a key frame" \
    test "$(ffprobe -v error -select_streams v:0 -show_packets -show_entries packet=flags -of csv=p=0 "$WORK/seg.ts" | awk '!n++' | cut -c1)" = K
durations_ok() { # every EXTINF between 0.5 and 2.5 s
    grep '^#EXTINF:' "$WORK/pl.m3u8" | sed 's/#EXTINF:\([0-9.]*\),.*/\1/' |
        awk 'BEGIN{n=0} {n++; if ($1 < 0.5 || $1 > 2.5) bad=1} END{exit (bad || n == 0)}'
}
check "segments last about 1 s (EXTINF 0.5..2.5)" durations_ok
check "the target duration is 1 or 2 s" grep -Eq '^#EXT-X-TARGETDURATION:(1|2)$' "$WORK/pl.m3u8"

# Two HLS players and an FLV one at once: one upstream session.
# Each player names its session: the playlist's URIs carry it, so the
# segment requests count for the same viewer.
session_uris() { curl -s -H "$AUTH" "$URL?session=p9" | grep -Eq '^[0-9]+\.ts\?session=p9$'; }
check "a playlist asked with ?session= carries it in its URIs" session_uris
hls_player() { timeout 120 ffmpeg -nostdin -v error -headers "$AUTH"$'\r\n' -i "$URL?session=p$1" \
    -t 8 -c copy -f null - 2>"$WORK/h$1.err"; }
hls_player 1 & P1=$!
hls_player 2 & P2=$!
timeout 120 ffmpeg -nostdin -v error -headers "$AUTH"$'\r\n' -i "$FLV" -t 8 -c copy -f null - 2>"$WORK/f.err" &
P3=$!
viewers() { jq_ok "$(api GET "/gb/streams/$SID")" '.viewers_by_output.hls >= 2 and .viewers_by_output.flv == 1'; }
check "two HLS players and an FLV one watch at once" wait_for 60 viewers
wait $P1; R1=$?
wait $P2; R2=$?
wait $P3; R3=$?
check "the three players ended well" test "$R1.$R2.$R3" = "0.0.0"
check "the HLS players read without an error" bash -c "! [ -s '$WORK/h1.err' ] && ! [ -s '$WORK/h2.err' ]"
check "exactly one INVITE reached the device for the channel" test "$(invites $CH1)" = 1
check "media.viewer.joined events name the HLS output" \
    has_event "select(.type==\"media.viewer.joined\" and .stream_id==\"$SID\" and .output==\"hls\")"

# Refusals, while the stream still plays.
check "an unknown segment: 404" test "$(code "$BASE/$SID/hls/999999.ts")" = 404
check "a segment name that is no segment: 404" test "$(code "$BASE/$SID/hls/junk.txt")" = 404
check "the playlist of an unknown stream: 404" test "$(code "$BASE/0000000000/hls/index.m3u8")" = 404
check "the playlist without the token: 401" \
    test "$(curl -s -o /dev/null -w '%{http_code}' "$URL")" = 401

# The players stopped: their viewers expire (3 target durations), then the
# stream stops after idle_stop (15 s here: the first HLS request must come
# within it after the live request, on a loaded machine too).
check "no HLS viewer once the players stopped" wait_for 30 \
    has_event "select(.type==\"media.viewer.left\" and .stream_id==\"$SID\" and .output==\"hls\" and .viewers_total==0)"
check "nobody watches: the stream stopped with reason idle" wait_for 60 \
    has_event "select(.type==\"gb.stream.stopped\" and .stream_id==\"$SID\" and .reason==\"idle\")"
check "the device saw the BYE" wait_for 10 grep -q "stream of $CH1 ended: BYE from the upper" "$WORK/gbsim.log"
check "the stopped stream's playlist: 404" test "$(code "$URL")" = 404

# A playback watched over FLV only: nobody asked its HLS, so it has no HLS
# state at all (the stream object has no "hls": no segment, no byte).
PBJ=$(api POST "/gb/devices/$DEV/channels/$CH1/play" '{"start":"2026-12-01T10:00:00","end":"2026-12-01T10:10:00"}')
PB=$(echo "$PBJ" | jget 'd.get("stream_id","")')
PB_FLV=$(echo "$PBJ" | jget 'd.get("flv","")')
timeout 90 ffmpeg -nostdin -v error -headers "$AUTH"$'\r\n' -i "$PB_FLV" -t 4 -c copy -f null - 2>"$WORK/pbflv.err" &
P4=$!
PIDS+=("$P4")
flv_only() { jq_ok "$(api GET "/gb/streams/$PB")" '.flv.frames > 50 and .viewers_by_output.flv == 1 and .hls == null'; }
check "a playback watched over FLV only: frames flow, no HLS state" wait_for 60 flv_only
wait $P4 && R4=0 || R4=$?
check "its FLV player read 4 s and ended well (rc $R4)" test "$R4" = 0
check "after the FLV player, still no HLS state" jq_ok "$(api GET "/gb/streams/$PB")" '.hls == null and .flv.frames > 90'
api DELETE "/gb/streams/$PB" >/dev/null

PBJ=$(api POST "/gb/devices/$DEV/channels/$CH1/play" '{"start":"2026-12-01T10:00:00","end":"2026-12-01T10:10:00"}')
PB=$(echo "$PBJ" | jget 'd.get("stream_id","")')
PB_HLS=$(echo "$PBJ" | jget 'd.get("hls","")')
check "a playback's answer names its HLS playlist and its WHEP URL" \
    jq_ok "$PBJ" ".playback == true and .hls == \"$BASE/$PB/hls/index.m3u8\" and .webrtc == \"$BASE/$PB/whep\""
check "ffprobe reads h264 320x240 from the playback's HLS playlist" test "$(probe "$PB_HLS" | cut -d, -f1-3)" = "h264,320,240"
check "the playback asked over HLS has its segments now" jq_ok "$(api GET "/gb/streams/$PB")" '.hls.segments > 0 and .hls.bytes > 0'
api DELETE "/gb/streams/$PB" >/dev/null

# A playback that reaches the end of its recording (10 s; MediaStatus 121):
# its playlist gets EXT-X-ENDLIST, so ffmpeg, reading from the first
# segment, copies it to the end and exits 0 by itself; the final playlist
# (VOD: every segment since the first HLS request still held) is served
# after the stream stopped. HLS starts at the first request, at the next key
# frame: a page asks for the playlist at once (a quick curl here), the
# player (ffmpeg, slower to start on a loaded machine) then reads from
# segment 0 whatever its own start-up cost.
PB=$(api POST "/gb/devices/$DEV/channels/$CH1/play" '{"start":"2026-12-01T10:00:00","end":"2026-12-01T10:00:10"}' |
    jget 'd.get("stream_id","")')
check "a 10 s playback started ($PB)" test -n "$PB"
curl -s -m 30 -o /dev/null -H "$AUTH" "$BASE/$PB/hls/index.m3u8" &
timeout 120 ffmpeg -nostdin -v error -headers "$AUTH"$'\r\n' -live_start_index 0 -i "$BASE/$PB/hls/index.m3u8" \
    -c copy -f mpegts -y "$WORK/playback.ts" 2>"$WORK/ffmpeg-playback.log" && rc=0 || rc=$?
check "ffmpeg read the playback's HLS to its end and exited 0 by itself (rc $rc)" test "$rc" = 0
check "the stream stopped with reason media-end" wait_for 30 \
    has_event "select(.type==\"gb.stream.stopped\" and .stream_id==\"$PB\" and .reason==\"media-end\")"
frames() { ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of csv=p=0 "$1" | awk 'NF && !n++'; }
NF=$(frames "$WORK/playback.ts")
curl -s -H "$AUTH" -o "$WORK/final.m3u8" "$BASE/$PB/hls/index.m3u8"
check "after the end, the final playlist: VOD, from segment 0, EXT-X-ENDLIST last" bash -c \
    'grep -q "^#EXT-X-PLAYLIST-TYPE:VOD" "$1" && grep -q "^#EXT-X-MEDIA-SEQUENCE:0" "$1" && tail -n1 "$1" | grep -qx "#EXT-X-ENDLIST"' \
    _ "$WORK/final.m3u8"
LISTED=$(sed -n 's/^#EXTINF:\([0-9.]*\),.*/\1/p' "$WORK/final.m3u8" | awk '{ t += $1 } END { printf "%d", t * 25 + 0.5 }')
check "ffmpeg copied every frame the final playlist lists ($NF of $LISTED)" test "${NF:-0}" -ge "$((LISTED - 1))"
check "the playlist holds at least 3 s of the recording ($LISTED frames of 250)" test "${LISTED:-0}" -ge 75
SEG0=$(grep -m1 -v '^#' "$WORK/final.m3u8")
check "its segments are still served ($SEG0)" test "$(code "$BASE/$PB/hls/$SEG0")" = 200
check "ffprobe reads the ended playback's playlist" test "$(probe "$BASE/$PB/hls/index.m3u8" | cut -d, -f1)" = h264

# A player that gives up while its first request waits for the first
# segment, then one that stays: answered; the daemon then stops with the HLS
# output on (under ASan: no leak, no use after free).
S2=$(api POST "/gb/devices/$DEV/channels/$CH1/live" '{}' | jget 'd.get("stream_id","")')
curl -s -m 0.3 -H "$AUTH" "$BASE/$S2/hls/index.m3u8" >/dev/null || true
check "a new stream's playlist is answered once its first segment is done" test "$(code "$BASE/$S2/hls/index.m3u8")" = 200

finish
