#!/usr/bin/env python3
"""flvslow.py — an HTTP-FLV viewer that can stall, for the live-view tests.

GETs an FLV URL (plain HTTP/1.1, a bearer token), saves the body up to its last whole tag, and walks
its tags from the FLV header on: every tag whole, its PreviousTagSize
matching. With --pause-after A --pause P it stops reading for P seconds
after A seconds (a small receive buffer, --rcvbuf, so the server sees it),
then reads on until --duration. Prints one JSON line: tags, video tags,
key frames, sequence headers after the first, how many of those were
followed at once by a key frame of the same time, video timestamp jumps
(> --gap-ms forward, or back), the largest jump, whether the saved bytes
end on a tag boundary, and whether the body started with the FLV header.
"""
import argparse
import json
import socket
import struct
import sys
import time
from urllib.parse import urlparse


def walk(b):
    r = {"flv_header": b[:4] == b"FLV\x01", "tags": 0, "video": 0, "keys": 0, "seq_headers": 0,
         "resent_seq": 0, "resent_seq_then_key": 0, "jumps": 0, "back": 0, "max_jump_ms": 0,
         "whole": False, "bad_prev_size": 0, "bytes": len(b)}
    if not r["flv_header"] or len(b) < 13:
        return r
    off = 13
    last_ts = None
    pending_seq = None  # ts of a resent sequence header waiting for its key frame
    while off + 15 <= len(b):
        ttype = b[off]
        size = int.from_bytes(b[off + 1:off + 4], "big")
        ts = int.from_bytes(b[off + 4:off + 7], "big") | b[off + 7] << 24
        if off + 15 + size > len(b):
            break
        prev = struct.unpack(">I", b[off + 11 + size:off + 15 + size])[0]
        if prev != 11 + size:
            r["bad_prev_size"] += 1
            break
        body = b[off + 11:off + 11 + size]
        r["tags"] += 1
        if ttype == 9 and len(body) >= 2:
            if body[1] == 0:
                r["seq_headers"] += 1
                if r["video"] > 0:
                    r["resent_seq"] += 1
                    pending_seq = ts
            else:
                r["video"] += 1
                key = body[0] >> 4 == 1
                if key:
                    r["keys"] += 1
                if pending_seq is not None:
                    if key and ts == pending_seq:
                        r["resent_seq_then_key"] += 1
                    pending_seq = None
                if last_ts is not None:
                    d = ts - last_ts
                    if d < 0:
                        r["back"] += 1
                    elif d > args.gap_ms:
                        r["jumps"] += 1
                    r["max_jump_ms"] = max(r["max_jump_ms"], d)
                last_ts = ts
        off += 15 + size
    r["whole"] = off == len(b)
    r["whole_bytes"] = off
    return r


ap = argparse.ArgumentParser()
ap.add_argument("url")
ap.add_argument("--token", default="")
ap.add_argument("--out", required=True)
ap.add_argument("--duration", type=float, default=10)
ap.add_argument("--pause-after", type=float, default=0)
ap.add_argument("--pause", type=float, default=0)
ap.add_argument("--rcvbuf", type=int, default=0)
ap.add_argument("--gap-ms", type=int, default=200)
args = ap.parse_args()

u = urlparse(args.url)
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
if args.rcvbuf:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf)
s.settimeout(10)
s.connect((u.hostname, u.port or 80))
req = "GET %s HTTP/1.1\r\nHost: %s\r\n" % (u.path + ("?" + u.query if u.query else ""), u.netloc)
if args.token:
    req += "Authorization: Bearer %s\r\n" % args.token
s.sendall((req + "\r\n").encode())
data = b""
while b"\r\n\r\n" not in data:
    c = s.recv(4096)
    if not c:
        print(json.dumps({"error": "no answer"}))
        sys.exit(1)
    data += c
head, body = data.split(b"\r\n\r\n", 1)
status = head.split(b"\r\n")[0]
if b" 200 " not in status:
    print(json.dumps({"error": status.decode(errors="replace")}))
    sys.exit(1)
buf = bytearray(body)
start = time.monotonic()
paused = False
ended = False
while True:
    now = time.monotonic() - start
    if now >= args.duration:
        break
    if args.pause and not paused and now >= args.pause_after:
        paused = True
        time.sleep(args.pause)
        continue
    s.settimeout(max(0.05, args.duration - now))
    try:
        c = s.recv(65536)
    except socket.timeout:
        continue
    if not c:
        ended = True
        break
    buf += c
s.close()
r = walk(bytes(buf))
with open(args.out, "wb") as f:  # up to the last whole tag (reading stopped anywhere)
    f.write(buf[:r.get("whole_bytes", len(buf))])
r["ended_by_server"] = ended
print(json.dumps(r))
