#!/usr/bin/env bash
# What an operator installs (issue 17): `cmake --install --prefix P` puts the
# programs, the console's files, the manual pages, the example config and the
# systemd unit under P, and the installed daemon runs from there with no source
# tree (-t on the example, a start, OPTIONS answered by sipsak, the console
# served, a clean stop); with DESTDIR and prefix /usr the config goes to /etc
# and the unit names /usr/bin/cascade. The manual pages render without a groff
# warning and cascade.ini(5) lists every key of every section the daemon
# accepts; `systemd-analyze verify` passes on the installed unit (skipped, with
# a note, where the command is missing).
source "$(dirname "$0")/lib.sh"

# The manual pages are built with the programs (target man, in ALL).
[ -s "$BUILD_DIR/man/cascade.ini.5" ] || { echo "FAIL - no $BUILD_DIR/man/: build the target man (or all)"; exit 1; }

P=$WORK/prefix
cmake --install "$BUILD_DIR" --prefix "$P" >"$WORK/install.out"
for f in bin/cascade bin/cascadectl bin/cascade-gbsim share/cascade/console/index.html \
    share/cascade/console/vendor/mpegts.js share/cascade/console/vendor/LICENSE-mpegts.js.txt \
    share/man/man8/cascade.8 share/man/man1/cascadectl.1 share/man/man5/cascade.ini.5 \
    etc/cascade/cascade.ini.example lib/systemd/system/cascade.service; do
    check "installed: $f" test -s "$P/$f"
done
check "the console's npm files stay out (node_modules, package.json, its lockfile)" \
    test -z "$(ls -d "$P"/share/cascade/console/node_modules "$P"/share/cascade/console/package*.json 2>/dev/null)"
check "the unit runs the installed binary with the installed config" \
    grep -qxF "ExecStart=$P/bin/cascade -c $P/etc/cascade/cascade.ini" "$P/lib/systemd/system/cascade.service"

# ---- DESTDIR, prefix /usr: a package's staging root
DESTDIR=$WORK/dest cmake --install "$BUILD_DIR" --prefix /usr >"$WORK/install-dest.out"
check "DESTDIR: the programs under DESTDIR/usr/bin" test -x "$WORK/dest/usr/bin/cascade"
check "DESTDIR, prefix /usr: the example config in /etc/cascade" test -s "$WORK/dest/etc/cascade/cascade.ini.example"
check "... and the unit names /usr/bin/cascade and /etc/cascade/cascade.ini" \
    grep -qxF "ExecStart=/usr/bin/cascade -c /etc/cascade/cascade.ini" "$WORK/dest/usr/lib/systemd/system/cascade.service"
check "... and no usr/etc" test ! -e "$WORK/dest/usr/etc"

# ---- the installed daemon, run from an empty directory
mkdir "$WORK/run"
RC=0; (cd "$WORK/run" && "$P/bin/cascade" -t -c "$P/etc/cascade/cascade.ini.example") >"$WORK/t.out" 2>&1 || RC=$?
check "installed cascade -t on the installed example: exit 0" test "$RC" = 0
check "... configuration ok" grep -q "configuration ok" "$WORK/t.out"

PORT=$(free_port); API_PORT=$((PORT + 1)); API_TOKEN=tok   # free_port keeps the next three free too
node_ini inst "$PORT" "$API_PORT" cascade.test </dev/null
CASCADE=$P/bin/cascade
start_cascade inst "$WORK/inst.ini"
check "installed cascade answers sipsak OPTIONS (UDP) with 200" \
    bash -c "sipsak -s sip:ping@127.0.0.1:$PORT -vv 2>&1 | grep -q 'SIP/2.0 200 OK'"
check "... serves the web console without the source tree" \
    bash -c "curl -sf http://127.0.0.1:$API_PORT/ | grep -qi '<html'"
kill -TERM "$inst_PID"
check "... stops on SIGTERM" wait_for 30 not kill -0 "$inst_PID"
RC=0; wait "$inst_PID" || RC=$?
check "... with status 0" test "$RC" = 0
check "... saying so" grep -q "cascade stopped" "$WORK/inst.log"

# ---- manual pages: render without warnings, every config key in cascade.ini(5)
for page in man8/cascade.8 man1/cascadectl.1 man5/cascade.ini.5; do
    LC_ALL=C.UTF-8 groff -man -ww -z -Tutf8 "$P/share/man/$page" >"$WORK/groff.out" 2>&1 || true
    check "groff renders $page without a warning" test ! -s "$WORK/groff.out"
done
if command -v man >/dev/null; then
    MANWIDTH=200 LC_ALL=C.UTF-8 man -l "$P/share/man/man5/cascade.ini.5" >/dev/null 2>"$WORK/man.err" || true
    check "man -l renders cascade.ini(5) with no message" test ! -s "$WORK/man.err"
fi
# "section key" pairs: from the example file the daemon writes from its tables,
# and from the page rendered with bold as overstrike (X\bX): a section heading
# "   [name]" or "   [name:<id>] (up to N)", then each key, the bold word at
# the start of an indented paragraph (help text is never bold).
pairs() { awk '$1 == "S" { sec = $2; next } sec != "" { print sec, $2 }' | sort -u; }
"$P/bin/cascade" --help-config=ini | sed -nE 's/^;?\[([a-z_]+).*/S \1/p;t;s/^;?([a-z0-9_]+) =.*/K \1/p' |
    pairs >"$WORK/keys.ini"
LC_ALL=C.UTF-8 groff -man -Tutf8 -P-c -rLL=200n "$P/share/man/man5/cascade.ini.5" |
    perl -ne 'my $p = $_; $p =~ s/.\x08//g;
        if ($p =~ /^   \[([a-z_]+)/) { $s = $1 } elsif ($p =~ /^\S/) { $s = "" }
        elsif ($s ne "" && /^       ((?:([a-z0-9_])\x08\2)+)/) { (my $k = $1) =~ s/.\x08//g; print "S $s\nK $k\n" }' |
    pairs >"$WORK/keys.man"
check "the daemon has keys to compare (>= 100)" test "$(wc -l <"$WORK/keys.ini")" -ge 100
check "cascade.ini(5) lists every key of every section, no other" diff -u "$WORK/keys.ini" "$WORK/keys.man"
plain() { LC_ALL=C.UTF-8 groff -man -Tutf8 -P-cbu -rLL=200n "$1"; }   # rendered, no bold or underline
check "cascade(8) shows cascade --help" bash -c "$(declare -f plain); plain '$P/share/man/man8/cascade.8' | grep -qF -- '--help-config[=ini|man]'"
check "cascadectl(1) shows cascadectl --help" bash -c "$(declare -f plain); plain '$P/share/man/man1/cascadectl.1' | grep -qF 'room token NAME'"

# ---- the unit
if command -v systemd-analyze >/dev/null; then
    # It checks that ExecStart exists and runs `man` for Documentation=: both
    # point into the prefix.
    MANPATH=$P/share/man systemd-analyze verify "$P/lib/systemd/system/cascade.service" >"$WORK/verify.out" 2>&1 &&
        RC=0 || RC=$?
    check "systemd-analyze verify passes on the installed unit" test "$RC" = 0
    [ "$RC" = 0 ] || cat "$WORK/verify.out"
else
    echo "note - systemd-analyze is not installed: the unit is not verified"
fi
for k in "Type=notify" "User=cascade" "NoNewPrivileges=yes" "ProtectSystem=strict" "PrivateTmp=yes" \
    "ProtectHome=yes" "StateDirectory=cascade" "AmbientCapabilities=CAP_NET_BIND_SERVICE" "WatchdogSec=30" \
    'ExecReload=/bin/kill -HUP $MAINPID'; do
    check "unit: $k" grep -qxF "$k" "$P/lib/systemd/system/cascade.service"
done
finish
