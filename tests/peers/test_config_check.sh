#!/usr/bin/env bash
# `cascade -t -c FILE` as an operator uses it before a restart (like nginx -t):
# exit 0 and "configuration ok" for a good file, exit 1 with every error (file,
# line, key, allowed values) for a bad one, without binding a socket or opening
# the database; the daemon refuses to start on the same errors. Also:
# cascade.ini.example is exactly what `cascade --help-config=ini` prints from
# the key tables (so the two cannot drift), and --help-config lists every key.
source "$(dirname "$0")/lib.sh"
ROOT=$(cd "$PEERS_DIR/../.." && pwd)

run_t() { # run_t FILE: cascade -t -c FILE in $WORK; output in $WORK/t.out, status in RC
    RC=0
    (cd "$WORK" && "$CASCADE" -t -c "$1") >"$WORK/t.out" 2>&1 || RC=$?
}
out_has() { grep -qF -- "$1" "$WORK/t.out"; }

# ---- a good file
PORT=$(free_port); API_PORT=$(free_port); API_TOKEN=tok
node_ini good "$PORT" "$API_PORT" cascade.test <<INI
t1_ms = 250
[registrar]
max_contacts = 5
[auth]
algorithm = sha-256
[upstream:34020000002000000002]
host = 127.0.0.1
transport = tcp
INI
run_t "$WORK/good.ini"
check "-t on a good file exits 0" test "$RC" = 0
check "... and says configuration ok" out_has "configuration ok"
check "... without creating the database" test ! -e "$WORK/good.db"
check "... nor binding the SIP port" not udp_bound "$PORT"

# ---- the example file and the defaults
run_t "$ROOT/cascade.ini.example"
check "-t on cascade.ini.example exits 0" test "$RC" = 0
"$CASCADE" --help-config=ini >"$WORK/generated.ini"
check "cascade.ini.example is what --help-config=ini prints (scripts/config-example.sh)" \
    diff -u "$ROOT/cascade.ini.example" "$WORK/generated.ini"
"$CASCADE" --help-config >"$WORK/help.txt"
check "--help-config lists [sip] listen with its default" grep -q 'udp:127.0.0.1:5060, tcp:127.0.0.1:5060' "$WORK/help.txt"
check "--help-config names [upstream:<id>]" grep -qF '[upstream:<id>]' "$WORK/help.txt"
check "--help-config gives t1_ms's range" grep -qE '^  t1_ms +integer 1\.\.60000; default "500"' "$WORK/help.txt"
RC=0; "$CASCADE" -t >"$WORK/t.out" 2>&1 || RC=$?
check "-t without -c checks the embedded defaults: 0" test "$RC" = 0

# ---- a bad file: every error, with file and line
cat >"$WORK/bad.ini" <<'INI'
[sip]
domain = cascade.test
t1_ms = 0
tcp_idle_timout = 60

[registar]
min_expires = 30
[auth]
algorithm = SHA-512
[proxy]
trusted = 10.0.0.0/33
INI
run_t "$WORK/bad.ini"
check "-t on a bad file exits 1" test "$RC" = 1
check "... not saying configuration ok" not out_has "configuration ok"
check "... a value out of range: file, line, key, range" \
    out_has "cascade: $WORK/bad.ini:3: [sip] t1_ms: bad value '0' (integer 1..60000)"
check "... a misspelt key: file and line" out_has "cascade: $WORK/bad.ini:4: [sip] tcp_idle_timout: unknown key"
check "... a misspelt section: file and line" out_has "cascade: $WORK/bad.ini:6: unknown section [registar]"
check "... a value not among the choices: the choices" \
    out_has "cascade: $WORK/bad.ini:9: [auth] algorithm: bad value 'SHA-512' (MD5|SHA-256|both)"
check "... a bad address block" out_has "cascade: $WORK/bad.ini:11: [proxy] trusted: bad value '10.0.0.0/33'"
check "... five errors, no more" test "$(grep -c "^cascade: $WORK/bad.ini:" "$WORK/t.out")" = 5

printf '[registrar]\nmin_expires = 600\nmax_expires = 60\n' >"$WORK/rule.ini"
run_t "$WORK/rule.ini"
check "-t: a rule between keys (min_expires > max_expires) exits 1" test "$RC" = 1
check "... and names it" out_has "cascade: $WORK/rule.ini: [registrar] min_expires > max_expires"

printf '[sip]\nnot a key line\n' >"$WORK/syntax.ini"
run_t "$WORK/syntax.ini"
check "-t: a syntax error exits 1 with its line" bash -c "[ $RC = 1 ] && grep -qF '$WORK/syntax.ini:2: syntax error' '$WORK/t.out'"

# ---- [store] backend = redis: the sharing switches in effect; the seeds it needs
printf '[store]\nbackend = redis\n[redis]\nnodes = 127.0.0.1:7000\nevents_stream = no\n' >"$WORK/cluster.ini"
run_t "$WORK/cluster.ini"
check "-t: backend = redis exits 0 and prints the switches it turned on (the file's no kept)" \
    bash -c "[ $RC = 0 ] && grep -qF 'cascade: [store] backend = redis; mirror_bindings on cluster_route on \
mirror_users on events_stream off (set) mirror_gb_devices off mirror_presence on mirror_gb_admin off mirror_mwi on mirror_presence_allow on' '$WORK/t.out'"
printf '[store]\nbackend = redis\n' >"$WORK/noseeds.ini"
run_t "$WORK/noseeds.ini"
check "-t: backend = redis without [redis] nodes exits 1 naming the key" \
    bash -c "[ $RC = 1 ] && grep -qF '$WORK/noseeds.ini: [store] backend = redis needs [redis] nodes' '$WORK/t.out'"

run_t "$WORK/missing.ini"
check "-t: a missing file exits 1" bash -c "[ $RC = 1 ] && grep -qF 'missing.ini: cannot open' '$WORK/t.out'"

# ---- the daemon refuses to start on the same errors
RC=0; (cd "$WORK" && timeout 10 "$CASCADE" -c "$WORK/bad.ini") >"$WORK/serve.out" 2>&1 || RC=$?
check "serving with the bad file: exit 1 at once" test "$RC" = 1
check "... with the same errors" grep -qF "$WORK/bad.ini:6: unknown section [registar]" "$WORK/serve.out"

# ---- and serves with the good one
start_cascade good "$WORK/good.ini"
check "the good file serves (SIP bound)" udp_bound "$PORT"
finish
