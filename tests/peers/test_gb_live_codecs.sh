#!/usr/bin/env bash
# test_gb_live_codecs.sh — GB/T 28181 live view of cameras that send other
# codecs than H.264 with A-law audio, cascade-gbsim as the cameras and
# ffprobe/ffmpeg as the players:
#  - a camera with G.711 µ-law audio (gbsim --audio pcmu): its HTTP-FLV
#    carries it (FLV SoundFormat 8); ffprobe reads pcm_mulaw 8000 Hz mono and
#    ffmpeg decodes 3 s of it without an error: the 440 Hz tone, not silence;
#  - an H.265 camera (a clip made by libx265 at test time, gbsim --media):
#    its HLS playlist (fMP4 segments, hvc1) gives hevc 320x240 to ffprobe and
#    ffmpeg decodes at least 25 frames from it without an error; its FLV
#    URL sends enhanced-RTMP tags (FourCC hvc1: only the bytes are checked,
#    Debian's ffmpeg 5.1 cannot read enhanced FLV) and its WHEP offer is
#    refused with 415 unsupported-codec (the browser path is H.264).
# The H.265 part is skipped (with a line saying so) when ffmpeg has no libx265.
source "$(dirname "$0")/lib.sh"
command -v ffprobe >/dev/null && command -v ffmpeg >/dev/null || { echo "skip: ffprobe/ffmpeg not installed"; exit 77; }

SIP=$(free_port); API_PORT=$(free_port); MEDIA_PORT=$(free_port); API_TOKEN=tok
UPPER=34020000002000000001
DEV_U=34020000001320000001   # µ-law audio
CH_U=34020000001310000001
DEV_H=34020000001320000002   # H.265
CH_H=34020000001310000002
gb_upper_ini top "$SIP" "$API_PORT" "$UPPER" dev-secret yes <<EOF2
[media]
enabled = yes
listen = 127.0.0.1
port = $MEDIA_PORT
idle_stop = 15
EOF2
start_cascade top "$WORK/top.ini"
gb_sim "$SIP" "$UPPER" gbsim-pcmu.log --devices 1 --channels 1 --base-id "$DEV_U" --audio pcmu
check "the µ-law camera is online" wait_for 30 gb_device_online "$DEV_U"

AUTH="Authorization: Bearer $API_TOKEN"
probe() { # probe URL SELECTOR ENTRIES: the first stream's entries, comma-separated
    timeout 60 ffprobe -v error -headers "$AUTH"$'\r\n' -select_streams "$2" -show_entries "stream=$3" -of csv=p=0 "$1" |
        awk 'NF && !n++'
}

# µ-law: the tone is about -12 dBFS (amplitude 8000): its mean volume about -15 dB.
L=$(api POST "/gb/devices/$DEV_U/channels/$CH_U/live" '{}')
SID=$(echo "$L" | jget 'd.get("stream_id","")')
FLV=$(echo "$L" | jget 'd.get("flv","")')
check "µ-law: the channel's stream started ($SID)" test -n "$SID"
check "µ-law: ffprobe reads pcm_mulaw 8000 Hz mono from the FLV URL" \
    test "$(probe "$FLV" a:0 codec_name,sample_rate,channels)" = "pcm_mulaw,8000,1"
check "µ-law: the video beside it is h264 320x240" test "$(probe "$FLV" v:0 codec_name,width,height)" = "h264,320,240"
adecode() {
    timeout 90 ffmpeg -nostdin -v info -headers "$AUTH"$'\r\n' -i "$FLV" -map 0:a -t 3 -af volumedetect -f null - \
        >"$WORK/ulaw.out" 2>&1 || return 1
    ! grep -Ei 'error|invalid' "$WORK/ulaw.out"
}
check "µ-law: ffmpeg decodes 3 s of the audio without an error" adecode
decoded_s() { sed -n 's/.*size=N\/A time=\([0-9:.]*\).*/\1/p' "$WORK/ulaw.out" | tail -1 | awk -F: '{ print $1 * 3600 + $2 * 60 + $3 }'; }
check "µ-law: 3 s were decoded ($(decoded_s) s)" awk -v t="$(decoded_s)" 'BEGIN { exit !(t >= 2.9) }'
MEAN=$(sed -n 's/.*mean_volume: \(-[0-9.]*\) dB.*/\1/p' "$WORK/ulaw.out")
check "µ-law: the audio is the tone (mean volume $MEAN dB, between -20 and -10)" \
    awk -v m="${MEAN:-0}" 'BEGIN { exit !(m > -20 && m < -10) }'
check "µ-law: the stream's FLV output counted audio tags" jq_ok "$(api GET "/gb/streams/$SID")" '.flv.audio_frames > 0'
api DELETE "/gb/streams/$SID" >/dev/null

# H.265: a 2 s clip, a key frame every 25 frames, no B-frames (as cameras send).
if ! ffmpeg -hide_banner -encoders 2>/dev/null | grep -c libx265 >/dev/null; then
    echo "SKIP (part): this ffmpeg has no libx265, no H.265 clip: the H.265 checks are not run"
    finish
    exit
fi
ffmpeg -nostdin -v error -y -f lavfi -i testsrc=size=320x240:rate=25 -t 2 -c:v libx265 -pix_fmt yuv420p \
    -x265-params log-level=error:keyint=25:min-keyint=25:bframes=0:scenecut=0 -f hevc "$WORK/clip.h265"
check "an H.265 clip was made" test -s "$WORK/clip.h265"
gb_sim "$SIP" "$UPPER" gbsim-h265.log --devices 1 --channels 1 --base-id "$DEV_H" --media "$WORK/clip.h265" --audio none
check "the H.265 camera is online" wait_for 30 gb_device_online "$DEV_H"
L=$(api POST "/gb/devices/$DEV_H/channels/$CH_H/live" '{}')
SID=$(echo "$L" | jget 'd.get("stream_id","")')
HLS=$(echo "$L" | jget 'd.get("hls","")')
FLV=$(echo "$L" | jget 'd.get("flv","")')
WHEP=$(echo "$L" | jget 'd.get("webrtc","")')
check "H.265: the channel's stream started ($SID)" test -n "$SID"
check "H.265: the live answer names its HLS and FLV URLs" test -n "$HLS" -a -n "$FLV"
check "H.265: ffprobe reads hevc 320x240 from the HLS playlist" \
    test "$(probe "$HLS" v:0 codec_name,width,height)" = "hevc,320,240"
hdecode() {
    timeout 90 ffmpeg -nostdin -v error -headers "$AUTH"$'\r\n' -i "$HLS" -map 0:v -frames:v 50 \
        -f framemd5 "$WORK/h265.md5" 2>"$WORK/h265.err" && ! [ -s "$WORK/h265.err" ]
}
check "H.265: ffmpeg decodes frames from the HLS playlist without an error" hdecode
NF=$(grep -vc '^#' "$WORK/h265.md5" || true)
check "H.265: at least 25 frames were decoded ($NF)" test "${NF:-0}" -ge 25
check "H.265: the stream says hevc and its HLS output is fMP4" \
    jq_ok "$(api GET "/gb/streams/$SID")" '.codec == "h265" and .hls.format == "fmp4" and .hls.segments > 0'
flv_hvc1() {
    curl -s -m 5 -H "$AUTH" -o "$WORK/h265.flv" "$FLV" || true
    head -c 3 "$WORK/h265.flv" | grep -q FLV && grep -qa hvc1 "$WORK/h265.flv"
}
check "H.265: the FLV output sends enhanced-RTMP tags (FourCC hvc1)" flv_hvc1
whep_code() {
    curl -s -o "$WORK/whep.json" -w '%{http_code}' -H "$AUTH" -H 'Content-Type: application/sdp' \
        --data-binary $'v=0\r\n' "$WHEP"
}
check "H.265: a WHEP offer is refused with 415 unsupported-codec" \
    bash -c "test \"\$1\" = 415 && grep -q unsupported-codec '$WORK/whep.json'" _ "$(whep_code)"

finish
