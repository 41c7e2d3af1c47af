#!/usr/bin/env bash
# Installs the Debian packages cascade needs to build and test, only when something is missing,
# then the npm packages of the browser tests (tests/browser) and of the console (console/), each from
# its lockfile, when they changed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pkgs=(build-essential cmake pkg-config clang
      libuv1-dev libssl-dev libxml2-dev libjansson-dev libsqlite3-dev libwebsockets-dev
      libinih-dev libcmocka-dev libsrtp2-dev libhiredis-dev
      sip-tester sipsak baresip-core kamailio kamailio-tls-modules kamailio-websocket-modules
      linphone-cli stunnel4 ffmpeg curl sqlite3 python3 procps iproute2 openssl
      redis-server redis-tools chromium fonts-liberation fonts-wqy-microhei
      gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-nice
      gir1.2-gstreamer-1.0 gir1.2-gst-plugins-bad-1.0 python3-gi)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node may come from Debian (nodejs + npm) or from NodeSource (one nodejs package with npm in
# it, which Debian's npm package conflicts with): ask for the commands, not the packages.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The npm packages, exactly as each package-lock.json pins them: JsSIP and puppeteer-core for the
# browser tests (puppeteer-core downloads no browser: the drivers use /usr/bin/chromium), and
# mpegts.js for the console (its FLV player, embedded at build time). A stamp of the lockfile's
# hash says whether node_modules already matches it.
for dir in tests/browser console; do
  d="$root/$dir"
  stamp="$d/node_modules/.cascade-lock.sha256"
  want=$(sha256sum "$d/package-lock.json" | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "install-deps: npm ci in $dir"
    (cd "$d" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$want" >"$stamp"
  fi
done
