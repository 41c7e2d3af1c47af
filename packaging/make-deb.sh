#!/usr/bin/env bash
# make-deb.sh — builds the Debian package from an already built tree with
# dpkg-deb alone (no debhelper): `cmake --install --prefix /usr` into a staging
# root, the control file (Depends from dpkg-shlibdeps when dpkg-dev is there,
# else the list below), the maintainer scripts of packaging/debian/.
# `make deb` runs it. Usage: packaging/make-deb.sh BUILD_DIR OUT_DIR [VERSION]
# Prints the path of the .deb. DEB_COMPRESS: xz (the default), gzip or none.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=$(cd "$1" && pwd)
mkdir -p "$2"
out=$(cd "$2" && pwd)
version=${3:-}
if [ -z "$version" ]; then
    # Debian orders 0.1.0+git20261206.1a2b3c4d after 0.1.0 and by date.
    version=0.1.0
    if git -C "$root" rev-parse HEAD >/dev/null 2>&1; then
        version="$version+git$(git -C "$root" log -1 --format=%cd --date=format:%Y%m%d).$(git -C "$root" rev-parse --short=8 HEAD)"
    fi
fi
arch=$(dpkg --print-architecture)

work=$(mktemp -d /tmp/cascade-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
stage=$work/debian/cascade   # dpkg-shlibdeps expects the package's files here
DESTDIR=$stage cmake --install "$build" --prefix /usr --strip >/dev/null

# The unit starts with /etc/cascade/cascade.ini: ship the example's defaults
# (loopback only) as that file, a conffile the operator edits.
cp "$stage/etc/cascade/cascade.ini.example" "$stage/etc/cascade/cascade.ini"
gzip -9n "$stage"/usr/share/man/man*/*
install -d "$stage/usr/share/doc/cascade"
gzip -9nc "$root/README.md" >"$stage/usr/share/doc/cascade/README.md.gz"

# Depends: the shared libraries the programs link, and adduser (postinst).
fallback="libc6, libuv1, libssl3, libxml2, libjansson4, libsqlite3-0, libwebsockets17, libinih1, libsrtp2-1"
depends=$fallback
if command -v dpkg-shlibdeps >/dev/null; then
    printf 'Source: cascade\n\nPackage: cascade\nArchitecture: any\n' >"$work/debian/control"
    if shlibs=$(cd "$work" && dpkg-shlibdeps -O -e"$stage/usr/bin/cascade" -e"$stage/usr/bin/cascadectl" \
        -e"$stage/usr/bin/cascade-gbsim" 2>/dev/null); then
        depends=${shlibs#shlibs:Depends=}
    fi
    rm -rf "$work/debian/control"
fi
depends="$depends, adduser"

install -d -m 755 "$stage/DEBIAN"
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@DEPENDS@|$depends|" \
    -e "s|@SIZE@|$(du -sk --exclude=DEBIAN "$stage" | cut -f1)|" \
    -e "s|@MAINTAINER@|${DEB_MAINTAINER:-cascade maintainers <cascade@localhost>}|" \
    -e "s|@HOMEPAGE@|${DEB_HOMEPAGE:-https://localhost/cascade}|" \
    "$here/debian/control.in" >"$stage/DEBIAN/control"
(cd "$stage" && find etc -type f | sed 's|^|/|' | sort) >"$stage/DEBIAN/conffiles"
install -m 755 "$here/debian/postinst" "$here/debian/prerm" "$here/debian/postrm" "$stage/DEBIAN/"
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
    >"$stage/DEBIAN/md5sums"

deb=$out/cascade_${version}_${arch}.deb
dpkg-deb --root-owner-group -Z"${DEB_COMPRESS:-xz}" --build "$stage" "$deb" >/dev/null
echo "$deb"
