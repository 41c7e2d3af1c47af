#!/usr/bin/env bash
# Installs the Debian packages cascade needs to build and test, only when something is missing.
set -euo pipefail
pkgs=(build-essential cmake pkg-config clang
      libuv1-dev libssl-dev libxml2-dev libjansson-dev libsqlite3-dev libwebsockets-dev
      libinih-dev libcmocka-dev
      sip-tester sipsak baresip-core kamailio ffmpeg curl sqlite3 python3 procps iproute2 openssl)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install-deps: installing ${missing[*]}"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
