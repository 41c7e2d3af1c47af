#!/usr/bin/python3
"""whep_gst.py — a throw-away WHEP endpoint on GStreamer's webrtcbin, to smoke-test
cascade-rtcload's --whep mode while cascade's own WHEP is being written. Not a bench
anchor: each POST gets its own webrtcbin (VP8 test pattern + Opus), so it holds a few
viewers at most.

  whep_gst.py PORT SECONDS      # serves POST /whep (201 + answer + Location), DELETE

The answer carries all candidates (gathering completes before the 201). webrtcbin is a
full ICE agent (libnice), so this also exercises rtcload answering the server's checks
in WHEP mode. Exit codes: 0, 77 when GStreamer's WebRTC bindings are missing."""
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    import gi
    gi.require_version("Gst", "1.0")
    gi.require_version("GstWebRTC", "1.0")
    gi.require_version("GstSdp", "1.0")
    from gi.repository import GLib, Gst, GstSdp, GstWebRTC
except (ImportError, ValueError) as e:
    print(f"whep_gst: GStreamer WebRTC bindings missing: {e}", file=sys.stderr)
    sys.exit(77)

SEND = (
    "webrtcbin name=w bundle-policy=max-bundle "
    "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=15/1 "
    "! videoconvert ! vp8enc deadline=1 keyframe-max-dist=30 target-bitrate=300000 ! rtpvp8pay pt=96 "
    "! application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000 ! w. "
    "audiotestsrc is-live=true wave=sine freq=440 ! audioconvert ! audioresample ! opusenc "
    "! rtpopuspay pt=111 ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000 ! w. "
)


class Session:
    """One viewer: a pipeline answering one offer."""

    def __init__(self, offer_text):
        self.done = threading.Event()
        self.answer = None
        self.pipe = Gst.parse_launch(SEND)
        self.w = self.pipe.get_by_name("w")
        self.w.connect("notify::ice-gathering-state", self.on_gathering)
        self.pipe.set_state(Gst.State.PLAYING)
        for t in self.transceivers():
            t.set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
        _, sdp = GstSdp.SDPMessage.new_from_text(offer_text)
        offer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.OFFER, sdp)
        self.w.emit("set-remote-description", offer, Gst.Promise.new_with_change_func(self.on_remote, None))

    def transceivers(self):
        out, i = [], 0
        while True:
            t = self.w.emit("get-transceiver", i)
            if t is None:
                return out
            out.append(t)
            i += 1

    def on_remote(self, promise, _):
        reply = promise.get_reply()
        if reply is not None and reply.has_field("error"):
            print(f"whep_gst: offer refused: {reply.get_value('error')}", file=sys.stderr)
            self.done.set()
            return
        self.w.emit("create-answer", None, Gst.Promise.new_with_change_func(self.on_answer, None))

    def on_answer(self, promise, _):
        reply = promise.get_reply()
        answer = reply.get_value("answer") if reply is not None and reply.has_field("answer") else None
        if answer is None:
            print(f"whep_gst: no answer: {reply}", file=sys.stderr)
            self.done.set()
            return
        self.w.emit("set-local-description", answer, Gst.Promise.new())

    def on_gathering(self, *args):
        if self.w.get_property("ice-gathering-state") == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            self.answer = self.w.get_property("local-description").sdp.as_text()
            self.done.set()

    def stop(self):
        self.pipe.set_state(Gst.State.NULL)


sessions = {}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        if self.headers.get("Content-Type") != "application/sdp":
            self.send_error(415)
            return
        box = {}
        GLib.idle_add(lambda: box.setdefault("s", Session(body)) and False)
        deadline = time.time() + 10
        while "s" not in box and time.time() < deadline:
            time.sleep(0.01)
        s = box.get("s")
        if not s or not s.done.wait(max(0.1, deadline - time.time())) or not s.answer:
            self.send_error(500)
            return
        with lock:
            sid = len(sessions) + 1
            sessions[sid] = s
        data = s.answer.encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/sdp")
        self.send_header("Location", f"/whep/{sid}")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_DELETE(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    Gst.init(None)
    srv = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    loop = GLib.MainLoop()
    GLib.timeout_add_seconds(int(sys.argv[2]), loop.quit)
    loop.run()
    for s in sessions.values():
        s.stop()


if __name__ == "__main__":
    main()
