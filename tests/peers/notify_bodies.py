#!/usr/bin/env python3
"""notify_bodies.py MSGFILE OUTDIR — splits a sipp -trace_msg file: every
NOTIFY sipp received is written to OUTDIR/N.xml (its body) and OUTDIR/N.hdr
(its start line and headers), N from 1 in arrival order; prints how many.
A retransmitted NOTIFY (same Call-ID and CSeq) is counted once.
Used by tests/peers/test_sub_reg.sh."""
import os
import re
import sys

text = open(sys.argv[1], encoding="latin-1").read()
out = sys.argv[2]
os.makedirs(out, exist_ok=True)
n = 0
seen = set()
for chunk in re.split(r"^-{20,}.*$", text, flags=re.M):
    chunk = chunk.lstrip("\r\n")
    first, _, rest = chunk.partition("\n")
    if "received" not in first:
        continue
    msg = rest.lstrip("\r\n")
    if not msg.startswith("NOTIFY "):
        continue
    msg = msg.replace("\r\n", "\n")
    head, _, body = msg.partition("\n\n")
    # A retransmission (same Call-ID and CSeq, the answer was slow) is the
    # same NOTIFY: counted once.
    key = tuple(l.split(":", 1)[1].strip() for l in head.split("\n")
                if l.lower().startswith(("call-id:", "cseq:")))
    if key in seen:
        continue
    seen.add(key)
    n += 1
    with open(os.path.join(out, "%d.hdr" % n), "w") as f:
        f.write(head + "\n")
    with open(os.path.join(out, "%d.xml" % n), "w") as f:
        f.write(body.strip() + "\n")
print(n)
