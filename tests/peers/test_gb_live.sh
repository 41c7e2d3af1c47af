#!/usr/bin/env bash
# test_gb_live.sh — GB/T 28181 live view over HTTP-FLV, with cascade-gbsim as
# the camera and ffprobe/ffmpeg as the players:
#  - POST .../channels/{cid}/live starts the channel's shared stream and
#    answers its FLV URL; ffprobe reads h264 320x240 at 25 fps from it and
#    ffmpeg copies 5 s without an error;
#  - two requests at the same moment and two players at once share one
#    upstream session (exactly one INVITE reaches the device);
#  - when the last player leaves, the stream stops after [media] idle_stop
#    (reason idle) and the device gets its BYE;
#  - a stream stopped while a player reads ends that player cleanly;
#  - GET /media/streams lists the stream (source, viewers per output, codec,
#    the SPS's size, frame rate, bitrate) and cascadectl media streams prints it;
#  - gb.stream.started/stopped carry the viewers of that moment;
#  - a playback (POST .../play {start,end}) is watched through its own
#    live.flv: ffprobe reads it, a live request for the channel gets another
#    stream, it is not idle-stopped, and it ends (its player too) when the
#    recording's range was sent (media-end);
#  - refusals: an unknown stream (404), no token (401).
source "$(dirname "$0")/lib.sh"
command -v ffprobe >/dev/null && command -v ffmpeg >/dev/null || { echo "skip: ffprobe/ffmpeg not installed"; exit 77; }

SIP=$(free_port); API_PORT=$(free_port); API_TOKEN=tok
UPPER=34020000002000000001
DEV=34020000001320000001
CH1=34020000001310000001
CH2=34020000001310000002
gb_live_top 2 <<EOF
[media]
enabled = no
idle_stop = 15
EOF

AUTH="Authorization: Bearer $API_TOKEN"
probe() { # probe URL: codec,width,height,rate of the first video stream
    timeout 60 ffprobe -v error -headers "$AUTH"$'\r\n' -select_streams v:0 \
        -show_entries stream=codec_name,width,height,r_frame_rate -of csv=p=0 "$1"
}
invites() { grep -c "INVITE for $1: " "$WORK/gbsim.log" || true; }

L=$(api POST "/gb/devices/$DEV/channels/$CH1/live" '{}')
SID=$(echo "$L" | jget 'd.get("stream_id","")')
URL=$(echo "$L" | jget 'd.get("flv","")')
check "live: the channel's stream started ($SID)" test -n "$SID"
check "live: the answer names the FLV URL" test "$URL" = "http://127.0.0.1:$API_PORT/api/v1/gb/streams/$SID/live.flv"
# A player that stays through the sharing checks, so that the stream cannot
# go idle between them however slow the machine is; it leaves before the
# idle check.
timeout 120 ffmpeg -nostdin -v error -headers "$AUTH"$'\r\n' -i "$URL" -c copy -f null - 2>/dev/null &
KEEPER=$!
PIDS+=("$KEEPER")
ctl_live_url() { ctl gb live "$DEV" "$CH1" | grep -qF "flv  $URL"; }
check "cascadectl gb live prints the same stream's FLV URL" ctl_live_url
check "live: the stream is shared" jq_ok "$(api GET "/gb/streams/$SID")" '.live_shared == true'
check "ffprobe reads h264 320x240 at 25 fps from the FLV URL" test "$(probe "$URL")" = "h264,320,240,25/1"
check "ffmpeg copies 5 s of it without an error" \
    bash -c "timeout 60 ffmpeg -nostdin -v error -headers '$AUTH'$'\r\n' -i '$URL' -t 5 -c copy -f null - 2>'$WORK/ffmpeg.err' && ! [ -s '$WORK/ffmpeg.err' ]"
# Audio: gbsim sends G.711 A-law (a 440 Hz tone) in the PS, as cameras do;
# live.flv carries it as FLV SoundFormat 7, and ffmpeg decodes it cleanly.
aprobe() { # aprobe URL: codec,sample_rate,channels of the first audio stream
    timeout 60 ffprobe -v error -headers "$AUTH"$'\r\n' -select_streams a:0 \
        -show_entries stream=codec_name,sample_rate,channels -of csv=p=0 "$1"
}
check "ffprobe reads the audio as pcm_alaw 8000 Hz mono from the FLV URL" test "$(aprobe "$URL")" = "pcm_alaw,8000,1"
adecode() {
    timeout 60 ffmpeg -nostdin -v error -headers "$AUTH"$'\r\n' -i "$URL" -map 0:a -t 4 -f null - 2>"$WORK/adec.err" &&
        ! [ -s "$WORK/adec.err" ]
}
check "ffmpeg decodes 4 s of the audio without an error" adecode
# The tone at about -12 dBFS (amplitude 8000): RMS about -15 dB, not silence.
arms() {
    timeout 60 ffmpeg -nostdin -v info -headers "$AUTH"$'\r\n' -i "$URL" -map 0:a -t 2 -af volumedetect -f null - 2>&1 |
        sed -n 's/.*mean_volume: \(-[0-9.]*\) dB.*/\1/p' | awk '{ exit !($1 > -20 && $1 < -10) }'
}
check "the audio is the tone (mean volume between -20 and -10 dB)" arms
check "the stream's FLV output counted audio tags" \
    jq_ok "$(api GET "/gb/streams/$SID")" '.flv.audio_frames > 0'
media_row() { api GET "/media/streams" | jq -c ".streams[] | select(.stream_id==\"$SID\")"; }
media_known() { jq_ok "$(media_row)" '.width == 320 and .height == 240 and .frame_rate != null and .bitrate_bps > 0'; }
check "media/streams: the stream's size and frame rate become known" wait_for 30 media_known
ROW=$(media_row)
check "media/streams: source, viewers per output, codec, 320x240, about 25 fps ($ROW)" jq_ok "$ROW" \
    ".source.device_id == \"$DEV\" and .source.channel_id == \"$CH1\" and .source.kind == \"live\"
     and .viewers_by_output.flv >= 1 and .viewers >= 1 and .codec == \"h264\"
     and .frame_rate > 24 and .frame_rate < 26 and (.started_at | type) == \"string\""
ctl_media() { ctl media streams | grep -E "^$SID +$DEV +$CH1 +live +[0-9]+ +0 +0 +h264 +320x240 +25 "; }
check "cascadectl media streams prints it as a table" ctl_media
check "gb.stream.started carries viewers" \
    has_event "select(.type==\"gb.stream.started\" and .stream_id==\"$SID\" and (.viewers|type)==\"number\")"

# Two players at once, and a second live request: one upstream session.
A=$(api POST "/gb/devices/$DEV/channels/$CH1/live" '{}' | jget 'd.get("stream_id","")')
check "a second live request gets the same stream" test "$A" = "$SID"
timeout 60 ffmpeg -nostdin -v error -headers "$AUTH"$'\r\n' -i "$URL" -t 6 -c copy -f null - 2>"$WORK/p1.err" &
P1=$!
timeout 60 ffmpeg -nostdin -v error -headers "$AUTH"$'\r\n' -i "$URL" -t 6 -c copy -f null - 2>"$WORK/p2.err" &
P2=$!
two_viewers() { jq_ok "$(api GET "/gb/streams/$SID")" '.viewers == 3'; }
check "two players read at once beside the first (viewers 3)" wait_for 30 two_viewers
wait $P1; R1=$?
wait $P2; R2=$?
check "both players ended well" test "$R1.$R2" = "0.0"
check "exactly one INVITE reached the device for the channel" test "$(invites $CH1)" = 1
check "media.viewer.joined events name the FLV output" \
    has_event "select(.type==\"media.viewer.joined\" and .stream_id==\"$SID\" and .output==\"flv\")"

# Nobody watches: the stream stops after idle_stop (15 s here: the keeper
# player above must connect within it however loaded the machine), with a BYE.
kill "$KEEPER" 2>/dev/null || true; wait "$KEEPER" 2>/dev/null || true
check "no viewer: the stream stopped with reason idle" wait_for 60 \
    has_event "select(.type==\"gb.stream.stopped\" and .stream_id==\"$SID\" and .reason==\"idle\")"
check "the device saw the BYE" wait_for 10 grep -q "stream of $CH1 ended: BYE from the upper" "$WORK/gbsim.log"
check "gb.stream.stopped (idle) says nobody watched" has_event \
    "select(.type==\"gb.stream.stopped\" and .stream_id==\"$SID\" and .viewers==0 and .viewers_by_output.flv==0)"
not_listed() { ! api GET /media/streams | grep -q "$SID"; }
check "media/streams no longer lists it" not_listed

# Two requests at the same moment for a channel not playing: one INVITE.
api POST "/gb/devices/$DEV/channels/$CH2/live" '{}' >"$WORK/r1.json" &
Q1=$!
api POST "/gb/devices/$DEV/channels/$CH2/live" '{}' >"$WORK/r2.json" &
Q2=$!
wait $Q1 $Q2
S1=$(jget 'd.get("stream_id","")' <"$WORK/r1.json"); S2=$(jget 'd.get("stream_id","")' <"$WORK/r2.json")
check "two simultaneous live requests: one stream ($S1 $S2)" test -n "$S1" -a "$S1" = "$S2"
check "two simultaneous live requests: one INVITE" test "$(invites $CH2)" = 1

# The stream stops while a player reads: the player ends (no hang).
URL2="http://127.0.0.1:$API_PORT/api/v1/gb/streams/$S1/live.flv"
timeout 60 ffmpeg -nostdin -v error -headers "$AUTH"$'\r\n' -i "$URL2" -c copy -f null - 2>"$WORK/p3.err" &
P3=$!
one_viewer() { jq_ok "$(api GET "/gb/streams/$S1")" '.viewers == 1'; }
check "a player reads the second channel" wait_for 30 one_viewer
api DELETE "/gb/streams/$S1" >/dev/null
ended() { ! kill -0 "$P3" 2>/dev/null; }
check "the player ends when the stream stops" wait_for 30 ended
check "gb.stream.stopped (api) counts the player that was reading" has_event \
    "select(.type==\"gb.stream.stopped\" and .stream_id==\"$S1\" and .reason==\"api\" and .viewers==1 and .viewers_by_output.flv==1)"

# Refusals.
check "live.flv of an unknown stream: 404" \
    test "$(curl -s -o /dev/null -w '%{http_code}' -H "$AUTH" "http://127.0.0.1:$API_PORT/api/v1/gb/streams/0000000000/live.flv")" = 404
check "live.flv without the token: 401" \
    test "$(curl -s -o /dev/null -w '%{http_code}' "$URL")" = 401

# A playback of 20 s of recording (gbsim sends it in 20 s, then MediaStatus).
PBJ=$(api POST "/gb/devices/$DEV/channels/$CH1/play" '{"start":"2026-12-01T10:00:00","end":"2026-12-01T10:00:20"}')
PB=$(echo "$PBJ" | jget 'd.get("stream_id","")')
PB_URL=$(echo "$PBJ" | jget 'd.get("flv","")')
check "a playback's answer names its live.flv ($PB)" \
    test "$PB_URL" = "http://127.0.0.1:$API_PORT/api/v1/gb/streams/$PB/live.flv"
check "ffprobe reads h264 320x240 at 25 fps from the playback's live.flv" test "$(probe "$PB_URL")" = "h264,320,240,25/1"
timeout 120 ffmpeg -nostdin -v error -headers "$AUTH"$'\r\n' -i "$PB_URL" -c copy -f null - 2>/dev/null &
P4=$!
PIDS+=("$P4")
pb_watched() { jq_ok "$(api GET "/media/streams")" ".streams[] | select(.stream_id==\"$PB\") | .source.kind == \"playback\" and .viewers_by_output.flv == 1"; }
check "media/streams lists the playback with its FLV viewer" wait_for 30 pb_watched
LV=$(api POST "/gb/devices/$DEV/channels/$CH1/live" '{}' | jget 'd.get("stream_id","")')
check "a live request for the channel gets its own stream, not the playback ($LV)" test -n "$LV" -a "$LV" != "$PB"
api DELETE "/gb/streams/$LV" >/dev/null
check "the playback ends when its range was sent (media-end), not idle" wait_for 60 \
    has_event "select(.type==\"gb.stream.stopped\" and .stream_id==\"$PB\" and .reason==\"media-end\" and .viewers_by_output.flv==1)"
check "its player ends with it" wait_for 30 bash -c "! kill -0 $P4 2>/dev/null"
check "live of an unknown device: 404" jq_ok "$(api POST "/gb/devices/34020000001320000099/channels/$CH1/live" '{}')" \
    '.error == "not-found"'

finish
