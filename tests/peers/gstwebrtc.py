#!/usr/bin/python3
"""gstwebrtc.py — a second WebRTC stack (GStreamer's webrtcbin with libnice, Debian packages)
publishing into cascade over WHIP or viewing over WHEP, for the interop test.

  gstwebrtc.py publish URL TOKEN SECONDS       # VP8 test pattern + Opus sine, sendonly
                                               # (--h264: the benchmark's 2 Mbit/s H.264 source)
  gstwebrtc.py view URL TOKEN SECONDS MIN      # recvonly; exits 0 when MIN video frames decoded

Both create the offer (as WHIP/WHEP clients do), wait for ICE gathering to complete (no trickle:
cascade is ICE-lite and answers with all its candidates), POST it with Content-Type
application/sdp, and apply the 201's answer. Prints one line per second: connection state and
counters. Exit codes: 0 success, 1 failure (with the reason on stderr), 77 GStreamer's WebRTC
elements are missing."""
import sys
import time
import urllib.error
import urllib.request

try:
    import gi
    gi.require_version("Gst", "1.0")
    gi.require_version("GstWebRTC", "1.0")
    gi.require_version("GstSdp", "1.0")
    from gi.repository import GLib, Gst, GstSdp, GstWebRTC
except (ImportError, ValueError) as e:
    print(f"gstwebrtc: GStreamer WebRTC bindings missing: {e}", file=sys.stderr)
    sys.exit(77)

ICE_TCP = False  # set by --tcp: ICE over TCP only (RFC 6544)

# --h264: the benchmark's source (bench/fanout.sh), the one its Janus side
# gets as plain RTP: 640x360 30 fps H.264 constrained baseline at 2 Mbit/s
# (x264enc, gstreamer1.0-plugins-ugly; "snow" so the encoder spends its
# rate; a key frame every 2 s with SPS/PPS) and Opus at 64 kbit/s.
PUBLISH_H264 = (
    "webrtcbin name=w bundle-policy=max-bundle "
    "videotestsrc is-live=true pattern=snow ! video/x-raw,width=640,height=360,framerate=30/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast bitrate=2000 vbv-buf-capacity=500 key-int-max=60 "
    "! video/x-h264,profile=constrained-baseline ! rtph264pay pt=102 config-interval=-1 mtu=1200 "
    "! application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000 ! w. "
    "audiotestsrc is-live=true wave=pink-noise ! audioconvert ! audioresample ! opusenc bitrate=64000 "
    "! rtpopuspay pt=111 ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000 ! w. "
)
H264 = False

PUBLISH = (
    "webrtcbin name=w bundle-policy=max-bundle "
    "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=15/1 "
    "! videoconvert ! vp8enc deadline=1 keyframe-max-dist=30 target-bitrate=300000 ! rtpvp8pay pt=96 "
    "! application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000 ! w. "
    "audiotestsrc is-live=true wave=sine freq=440 ! audioconvert ! audioresample ! opusenc "
    "! rtpopuspay pt=111 ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000 ! w. "
)


class Client:
    def __init__(self, mode, url, token, seconds, min_frames=0):
        self.mode, self.url, self.token = mode, url, token
        self.seconds, self.min_frames = seconds, min_frames
        self.frames = 0
        self.audio_buffers = 0
        self.error = None
        self.location = None
        self.loop = GLib.MainLoop()
        if mode == "publish":
            self.pipe = Gst.parse_launch(PUBLISH_H264 if H264 else PUBLISH)
            self.w = self.pipe.get_by_name("w")
        else:
            self.pipe = Gst.Pipeline.new("viewer")
            self.w = Gst.ElementFactory.make("webrtcbin", "w")
            self.w.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
            self.pipe.add(self.w)
            for caps in ("application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000",
                         "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000"):
                self.w.emit("add-transceiver", GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY,
                            Gst.Caps.from_string(caps))
            self.w.connect("pad-added", self.on_pad)
        # RFC 7675 consent: keepalives as authenticated Binding requests on the
        # selected pair (libnice's default keepalives are unauthenticated
        # indications, which an ICE-lite server must not count as consent;
        # its consent-freshness mode can only be chosen at construction).
        # (kept on self: PyGObject drops a reference it was not given when
        # these wrappers die, which would free webrtcbin's own agent)
        self.ice = self.w.get_property("ice-agent")
        self.nice = self.ice.get_property("agent")
        self.nice.set_property("keepalive-conncheck", True)
        self.ice.set_property("ice-tcp", ICE_TCP)
        self.ice.set_property("ice-udp", not ICE_TCP)
        self.w.connect("on-negotiation-needed", self.on_negotiation_needed)
        self.w.connect("notify::ice-gathering-state", self.on_gathering)
        bus = self.pipe.get_bus()
        bus.add_signal_watch()
        bus.connect("message::error", self.on_error)
        self.offer_sent = False
        self.started = time.monotonic()

    # -- negotiation ---------------------------------------------------------------------
    def on_negotiation_needed(self, _w):
        if self.mode == "publish":
            for i in range(8):
                t = self.w.emit("get-transceiver", i)
                if t is None:
                    break
                t.set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
        promise = Gst.Promise.new_with_change_func(self.on_offer, None)
        self.w.emit("create-offer", None, promise)

    def on_offer(self, promise, _data):
        reply = promise.get_reply()
        offer = reply.get_value("offer")
        self.w.emit("set-local-description", offer, Gst.Promise.new())
        self.maybe_send()

    def on_gathering(self, _w, _pspec):
        self.maybe_send()

    def maybe_send(self):
        if self.offer_sent:
            return
        if self.w.get_property("ice-gathering-state") != GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            return
        local = self.w.get_property("local-description")
        if local is None:
            return
        self.offer_sent = True
        GLib.idle_add(self.post_offer, local.sdp.as_text())

    def post_offer(self, text):
        req = urllib.request.Request(self.url, data=text.encode(), method="POST")
        req.add_header("Content-Type", "application/sdp")
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status, answer = r.status, r.read().decode()
                self.location = r.headers.get("Location")
        except urllib.error.HTTPError as e:
            self.fail(f"{self.mode}: POST {self.url} -> {e.code} {e.read().decode(errors='replace')[:300]}")
            return False
        except OSError as e:
            self.fail(f"{self.mode}: POST {self.url}: {e}")
            return False
        if status != 201 or not self.location:
            self.fail(f"{self.mode}: expected 201 with a Location, got {status} {self.location}")
            return False
        ok, sdp = GstSdp.SDPMessage.new_from_text(answer)
        if ok != GstSdp.SDPResult.OK:
            self.fail(f"{self.mode}: the answer does not parse as SDP")
            return False
        desc = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, sdp)
        self.w.emit("set-remote-description", desc, Gst.Promise.new())
        print(f"{self.mode}: answer applied, resource {self.location}", flush=True)
        return False

    # -- media (viewer) ------------------------------------------------------------------
    def on_pad(self, _w, pad):
        if pad.direction != PAD_SRC:
            return
        caps = pad.get_current_caps() or pad.query_caps(None)
        media = caps.get_structure(0).get_string("media") if caps and caps.get_size() else None
        dec = Gst.ElementFactory.make("decodebin")
        sink = Gst.ElementFactory.make("fakesink")
        sink.set_property("signal-handoffs", True)
        sink.set_property("sync", False)
        sink.connect("handoff", self.on_video_frame if media == "video" else self.on_audio_buffer)
        conv = Gst.ElementFactory.make("videoconvert" if media == "video" else "audioconvert")
        for e in (dec, conv, sink):
            self.pipe.add(e)
            e.sync_state_with_parent()
        conv.link(sink)
        dec.connect("pad-added", lambda _d, p: p.link(conv.get_static_pad("sink")))
        pad.link(dec.get_static_pad("sink"))

    def on_video_frame(self, *_a):
        self.frames += 1

    def on_audio_buffer(self, *_a):
        self.audio_buffers += 1

    # -- run -----------------------------------------------------------------------------
    def on_error(self, _bus, msg):
        err, dbg = msg.parse_error()
        self.fail(f"{self.mode}: pipeline error: {err.message} ({dbg})")

    def fail(self, why):
        if self.error is None:
            self.error = why
        self.loop.quit()

    def tick(self):
        state = self.w.get_property("connection-state").value_nick
        print(f"{self.mode}: t={time.monotonic() - self.started:.0f}s state={state} "
              f"video_frames={self.frames} audio_buffers={self.audio_buffers}", flush=True)
        if self.mode == "view" and self.frames >= self.min_frames and self.audio_buffers > 0:
            self.loop.quit()
            return False
        if time.monotonic() - self.started > self.seconds:
            if self.mode == "view":
                self.fail(f"view: only {self.frames} video frames and {self.audio_buffers} audio buffers "
                          f"decoded in {self.seconds} s (wanted {self.min_frames} and some audio)")
            else:
                self.loop.quit()
            return False
        return True

    def delete(self):
        if not self.location:
            return
        base = self.url.split("/api/")[0]
        req = urllib.request.Request(base + self.location, method="DELETE")
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        try:
            urllib.request.urlopen(req, timeout=5).read()
        except OSError as e:
            print(f"{self.mode}: DELETE {self.location}: {e}", file=sys.stderr)

    def run(self):
        self.pipe.set_state(Gst.State.PLAYING)
        GLib.timeout_add(1000, self.tick)
        self.loop.run()
        self.delete()
        self.pipe.set_state(Gst.State.NULL)
        if self.error:
            print(self.error, file=sys.stderr)
            return 1
        return 0


# Gst.PadDirection.SRC, looked up once on the main thread: on_pad runs on a
# streaming thread, and PyGObject's lazy attribute lookup there once raised
# "type object 'PadDirection' has no attribute 'SRC'" (ASan CI rehearsal).
PAD_SRC = None


def main():
    global PAD_SRC
    Gst.init(None)
    PAD_SRC = Gst.PadDirection.SRC
    if Gst.ElementFactory.find("webrtcbin") is None or Gst.ElementFactory.find("nicesrc") is None:
        print("gstwebrtc: webrtcbin or libnice elements not installed", file=sys.stderr)
        return 77
    if len(sys.argv) < 5 or sys.argv[1] not in ("publish", "view"):
        print(__doc__, file=sys.stderr)
        return 2
    global ICE_TCP, H264
    if "--h264" in sys.argv:
        sys.argv.remove("--h264")
        H264 = True
    if "--tcp" in sys.argv:
        sys.argv.remove("--tcp")
        ICE_TCP = True
    mode, url, token, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    min_frames = int(sys.argv[5]) if mode == "view" and len(sys.argv) > 5 else 30
    return Client(mode, url, token, seconds, min_frames).run()


if __name__ == "__main__":
    sys.exit(main())
