#!/usr/bin/env bash
# Durability of registrations (group commit): sipp registers a few thousand
# AoRs with digest while cascade is killed with SIGKILL in the middle of the
# load; after a restart every AoR whose REGISTER sipp saw answered 200 must
# be in GET /api/v1/registrations (the 200 leaves only after the store
# committed the binding).
source "$(dirname "$0")/lib.sh"

N=${CRASH_AORS:-6000}
RATE=${CRASH_RATE:-2000}
PORT=$(free_port); API_PORT=$(free_port); API_TOKEN=crashtoken
node_ini c "$PORT" "$API_PORT" 127.0.0.1 <<INI
[auth]
realm = cascade.test
match_user = no
[registrar]
max_expires = 3600
INI
start_cascade crash "$WORK/c.ini"
disown "$crash_PID" # killed on purpose below: no job notice
check "cascadectl user add bench" ctl user add bench --password secret

{ echo SEQUENTIAL; for i in $(seq 0 $((N - 1))); do echo "u$i;"; done; } >"$WORK/users.csv"
(cd "$WORK" && exec timeout 120 sipp "127.0.0.1:$PORT" -sf "$PEERS_DIR/sipp/register-load.xml" -inf users.csv \
    -au bench -ap secret -i 127.0.0.1 -p "$(free_port)" -r "$RATE" -m "$N" -l 2000 -nostdin \
    -recv_timeout 4000 -trace_logs -log_file ok.log >"$WORK/sipp.out" 2>&1) &
SIPP=$!
PIDS+=("$SIPP")

# Kill once a good share of the load has been answered.
wait_for 30 bash -c "[ \$(grep -c '^OK ' '$WORK/ok.log' 2>/dev/null || echo 0) -ge $((N / 3)) ]" || true
kill -9 "$crash_PID"
killed_at=$(grep -c '^OK ' "$WORK/ok.log" || true)
wait "$SIPP" 2>/dev/null || true
grep '^OK ' "$WORK/ok.log" | awk '{print $2}' | sort -u >"$WORK/answered.txt"
answered=$(wc -l <"$WORK/answered.txt")
echo "  sipp saw $answered of $N REGISTERs answered 200 ($killed_at when the kill was sent)"
check "the kill came in the middle of the load" test "$answered" -gt 0 -a "$answered" -lt "$N"

start_cascade crash2 "$WORK/c.ini"
api GET /registrations | jq -r '.registrations[].user' | sort -u >"$WORK/restored.txt"
restored=$(wc -l <"$WORK/restored.txt")
missing=$(comm -23 "$WORK/answered.txt" "$WORK/restored.txt" | wc -l)
echo "  restored $restored bindings; answered but missing: $missing"
[ "$missing" -eq 0 ] || comm -23 "$WORK/answered.txt" "$WORK/restored.txt" | head -5
check "every AoR answered 200 before the kill is back after the restart" test "$missing" -eq 0
check "the restored bindings carry their contact" \
    jq_ok "$(api GET '/registrations?user=u0')" '.registrations | length == 1 and (.[0].contact | startswith("sip:u0@127.0.0.1:"))'

finish
