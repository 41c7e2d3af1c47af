#!/usr/bin/env bash
# Writes cascade.ini.example from the key tables (`cascade --help-config=ini`).
# Run after changing a key's name, default, range or help; test_config_check
# fails while the committed file differs. Usage: scripts/config-example.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
"$build/cascade" --help-config=ini >"$root/cascade.ini.example"
echo "wrote $root/cascade.ini.example"
