#!/usr/bin/env bash
# [log] format = json and file = PATH (issue 17): the daemon writes one JSON
# object per line to the file (nothing to stderr); logrotate's way — move the
# file, send SIGUSR1 — makes it open the path again, new lines land in the new
# file and none in the old one; every line of both files parses, also lines
# carrying a stranger's quotes, backslashes and invalid UTF-8.
source "$(dirname "$0")/lib.sh"

PORT=$(free_port); API_PORT=$(free_port); API_TOKEN=logtoken
node_ini l "$PORT" "$API_PORT" 127.0.0.1 <<INI
[media]
enabled = no
INI
# node_ini ends with [log] level = info: the keys go on in that section.
cat >>"$WORK/l.ini" <<INI
format = json
file = $WORK/cascade.log
INI
LOG=$WORK/cascade.log

(cd "$WORK" && exec "$CASCADE" -c "$WORK/l.ini" >"$WORK/stderr.log" 2>&1) &
PIDS+=("$!")
PID=$!
log_has() { grep -q "$2" "$1" 2>/dev/null; }
check "cascade ready is logged in the [log] file" wait_for 20 log_has "$LOG" '"msg":"cascade ready'
check "nothing goes to stderr" test ! -s "$WORK/stderr.log"

# A stranger's bytes in a logged field: REGISTER with credentials for an
# unknown user whose name holds a quote, a backslash and invalid UTF-8 (a
# control character there is refused with 400 before anything logs the
# name); the registrar logs the name.
stranger() {
    python3 - "$PORT" <<'PY'
import re, socket, sys
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
s.settimeout(5)
me = "127.0.0.1:%d" % s.getsockname()[1]
def register(cseq, extra=b""):
    msg = (b"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP " + me.encode() + b";branch=z9hG4bK-logs%d\r\n" % cseq +
           b"From: <sip:eve@127.0.0.1>;tag=1\r\nTo: <sip:eve@127.0.0.1>\r\nCall-ID: logs-1\r\n" +
           b"CSeq: %d REGISTER\r\nContact: <sip:eve@" % cseq + me.encode() + b">\r\n" + extra +
           b"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    s.sendto(msg, ("127.0.0.1", port))
    return s.recv(4096)
first = register(1)
realm = re.search(rb'realm="([^"]*)"', first).group(1)
nonce = re.search(rb'nonce="([^"]*)"', first).group(1)
bad = b'ev\\"e\\\\[2J\xff\xfe\xc0\xaf'   # quoted-string: \" and \\ are escapes
auth = (b'Authorization: Digest username="' + bad + b'", realm="' + realm + b'", nonce="' + nonce +
        b'", uri="sip:127.0.0.1", response="00000000000000000000000000000000", algorithm=MD5\r\n')
print(register(2, auth).split(b"\r\n")[0].decode())
PY
}
check "a stranger's REGISTER with a bad user name is answered" stranger
# The logged name, decoded from the JSON line, holds the quote and the
# backslash, and U+FFFD for each invalid byte.
stranger_line() {
    python3 - "$LOG" <<'PY'
import json, sys
for raw in open(sys.argv[1], "rb"):
    o = json.loads(raw.decode("utf-8"))
    m = o["msg"]
    if "unknown user" in m and 'ev"e\\[2J\ufffd\ufffd\ufffd\ufffd' in m:
        sys.exit(0)
sys.exit(1)
PY
}
check "the registrar's line with the stranger's name parses, bytes escaped" wait_for 10 stranger_line
check "cascadectl user add (an info line)" ctl user add alice --password alicepw
check "the user line is in the file" wait_for 10 log_has "$LOG" 'user alice added'

# Every line is one JSON object with ts, level, module, file, line and msg.
lines_parse() {
    python3 - "$@" <<'PY'
import json, sys
n = 0
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        for raw in f:
            o = json.loads(raw.decode("utf-8"))   # strict: invalid UTF-8 would raise
            assert raw.endswith(b"\n")
            for k in ("ts", "level", "msg"):
                assert isinstance(o.get(k), str), (k, o)
            assert o["level"] in ("error", "warn", "info", "debug"), o
            assert "module" not in o or isinstance(o["line"], int), o
            n += 1
print(n, "lines parse")
sys.exit(0 if n else 1)
PY
}
check "every line so far parses as JSON" lines_parse "$LOG"

# logrotate: move the file away, SIGUSR1, then new lines.
mv "$LOG" "$LOG.1"
check "a line written before the signal still goes to the moved file" ctl user add bob --password bobpw
check "... it is in the moved file" wait_for 10 log_has "$LOG.1" 'user bob added'
kill -USR1 "$PID"
check "SIGUSR1: a new file at the path says it was reopened" wait_for 10 log_has "$LOG" 'log file reopened'
check "cascadectl user add carol after the reopen" ctl user add carol --password carolpw
check "carol's line is in the new file" wait_for 10 log_has "$LOG" 'user carol added'
check "... and not in the old one" not grep -q 'user carol added' "$LOG.1"
check "the old file keeps its lines (cascade ready)" grep -q 'cascade ready' "$LOG.1"
check "every line of both files parses as JSON" lines_parse "$LOG" "$LOG.1"
api_up() { curl -sf "http://127.0.0.1:$API_PORT/metrics" -o /dev/null; }
check "the daemon still answers after the reopen" wait_for 5 api_up
finish
