#!/usr/bin/env bash
# The Debian package (issue 17, `make deb` = packaging/make-deb.sh): built from
# this tree with dpkg-deb alone, its control fields as `dpkg-deb -I` shows them
# (Depends naming the shared libraries and adduser), its files, conffiles and
# maintainer scripts (the user created, nothing enabled or started, data removed
# on purge only); unpacked with `dpkg -x` into a temporary root, the packaged
# cascade checks the packaged config with -t, starts, answers sipsak OPTIONS
# and stops cleanly. Skipped (77) without dpkg-deb.
source "$(dirname "$0")/lib.sh"
ROOT=$(cd "$PEERS_DIR/../.." && pwd)
command -v dpkg-deb >/dev/null || { echo "skip: dpkg-deb is not installed (not a Debian system)"; exit 77; }

# The manual pages are built with the programs (target man, in ALL).
[ -s "$BUILD_DIR/man/cascade.ini.5" ] || { echo "FAIL - no $BUILD_DIR/man/: build the target man (or all)"; exit 1; }
# gzip: xz takes minutes over an ASan build's binaries on a loaded machine.
DEB=$(DEB_COMPRESS=gzip bash "$ROOT/packaging/make-deb.sh" "$BUILD_DIR" "$WORK/out" 1.2.3-test)
check "make-deb.sh built $(basename "$DEB")" test -s "$DEB"
check "... named cascade_VERSION_ARCH.deb" test "$(basename "$DEB")" = "cascade_1.2.3-test_$(dpkg --print-architecture).deb"

dpkg-deb -I "$DEB" >"$WORK/info.out"
field() { dpkg-deb -f "$DEB" "$1"; }
check "dpkg-deb -I: Package: cascade" grep -qx " Package: cascade" "$WORK/info.out"
check "... Version: 1.2.3-test" grep -qx " Version: 1.2.3-test" "$WORK/info.out"
check "... Architecture: $(dpkg --print-architecture)" test "$(field Architecture)" = "$(dpkg --print-architecture)"
check "... a Maintainer" test -n "$(field Maintainer)"
check "... a Description" grep -q "^ Description: SIP registrar" "$WORK/info.out"
check "... an Installed-Size" test "$(field Installed-Size)" -gt 0
DEPENDS=$(field Depends)
for lib in libc6 libuv1 libssl3 libsqlite3-0 libjansson4 libwebsockets libinih1 libsrtp2 libxml2 adduser; do
    check "... Depends names $lib" grep -qE "(^|, )$lib" <<<"$DEPENDS"
done
check "... postinst, prerm, postrm, conffiles, md5sums in the control archive" \
    bash -c "grep -q postinst '$WORK/info.out' && grep -q postrm '$WORK/info.out' && grep -q prerm '$WORK/info.out' && grep -q conffiles '$WORK/info.out' && grep -q md5sums '$WORK/info.out'"

dpkg-deb -c "$DEB" | awk '{print $NF}' | sed 's|^\./|/|' >"$WORK/files.out"
for f in /usr/bin/cascade /usr/bin/cascadectl /usr/bin/cascade-gbsim /usr/lib/systemd/system/cascade.service \
    /usr/share/man/man8/cascade.8.gz /usr/share/man/man1/cascadectl.1.gz /usr/share/man/man5/cascade.ini.5.gz \
    /usr/share/cascade/console/index.html /etc/cascade/cascade.ini /etc/cascade/cascade.ini.example; do
    check "the package holds $f" grep -qxF "$f" "$WORK/files.out"
done
check "... nothing under /usr/etc or /usr/local" not grep -qE '^/usr/(etc|local)' "$WORK/files.out"
check "... every file root-owned" bash -c "! dpkg-deb -c '$DEB' | awk '{print \$2}' | grep -v '^root/root$' | grep -q ."

mkdir "$WORK/ctl"
dpkg-deb -e "$DEB" "$WORK/ctl"
check "conffiles: /etc/cascade/cascade.ini" grep -qxF /etc/cascade/cascade.ini "$WORK/ctl/conffiles"
check "postinst creates the system user cascade" grep -qE 'adduser --system .*cascade$' "$WORK/ctl/postinst"
grep -v '^[[:space:]]*#' "$WORK/ctl/postinst" >"$WORK/postinst.code"   # its comments may say how to enable
check "... and enables or starts nothing" not grep -qE 'systemctl (enable|start|restart)|deb-systemd|invoke-rc.d' "$WORK/postinst.code"
check "maintainer scripts are valid sh" bash -c "for s in postinst prerm postrm; do sh -n '$WORK/ctl/'\$s || exit 1; done"
# postrm run for real with its paths moved into $WORK: purge removes the state
# directory, remove keeps it.
sed -e "s|/var/lib/|$WORK/var/lib/|g" -e "s|/run/systemd/system|$WORK/no-systemd|" "$WORK/ctl/postrm" >"$WORK/postrm"
mkdir -p "$WORK/var/lib/cascade" && touch "$WORK/var/lib/cascade/cascade.db"
sh "$WORK/postrm" remove
check "postrm remove keeps the database" test -e "$WORK/var/lib/cascade/cascade.db"
sh "$WORK/postrm" purge
check "postrm purge removes /var/lib/cascade" test ! -e "$WORK/var/lib/cascade"

# ---- the unpacked package runs
R=$WORK/root
dpkg -x "$DEB" "$R"
check "the unit names /usr/bin/cascade and /etc/cascade/cascade.ini" \
    grep -qxF "ExecStart=/usr/bin/cascade -c /etc/cascade/cascade.ini" "$R/usr/lib/systemd/system/cascade.service"
RC=0; (cd "$WORK" && "$R/usr/bin/cascade" -t -c "$R/etc/cascade/cascade.ini") >"$WORK/t.out" 2>&1 || RC=$?
check "packaged cascade -t -c the packaged cascade.ini: exit 0" test "$RC" = 0
check "... configuration ok" grep -q "configuration ok" "$WORK/t.out"
check "the packaged cascade.ini is the example (defaults, loopback)" \
    cmp -s "$R/etc/cascade/cascade.ini" "$R/etc/cascade/cascade.ini.example"

PORT=$(free_port); API_PORT=$((PORT + 1)); API_TOKEN=tok   # free_port keeps the next three free too
node_ini deb "$PORT" "$API_PORT" cascade.test </dev/null
CASCADE=$R/usr/bin/cascade
start_cascade deb "$WORK/deb.ini"
check "packaged cascade answers sipsak OPTIONS (UDP) with 200" \
    bash -c "sipsak -s sip:ping@127.0.0.1:$PORT -vv 2>&1 | grep -q 'SIP/2.0 200 OK'"
check "packaged cascadectl reaches it" bash -c "'$R/usr/bin/cascadectl' --url http://127.0.0.1:$API_PORT --token tok stats >/dev/null"
kill -TERM "$deb_PID"
check "... stops on SIGTERM" wait_for 30 not kill -0 "$deb_PID"
RC=0; wait "$deb_PID" || RC=$?
check "... with status 0" test "$RC" = 0
check "packaged man pages are gzipped roff that renders" \
    bash -c "zcat '$R/usr/share/man/man5/cascade.ini.5.gz' | LC_ALL=C.UTF-8 groff -man -ww -z -Tutf8 2>&1 | (! grep -q .)"
finish
