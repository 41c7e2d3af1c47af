#!/usr/bin/env bash
# check-layers.sh BUILD_DIR CC — the layering holds:
#  1. the folder-level include graph of src/ has no loop and no include that
#     does not go down the layer order of CMakeLists.txt (include-graph.py);
#  2. a deliberate upward include does not compile: a file built with the sip
#     layer's include view cannot include the registrar's header, while the
#     same compiler finds lower headers through the registrar's view.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$1
cc=${2:-cc}
python3 "$root/scripts/include-graph.py" --root "$root/src" --cmake "$root/CMakeLists.txt"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
if "$cc" -std=c17 -fsyntax-only -I "$build/layers/cascade_sip" "$root/tests/layering/upward.c" 2>"$out"; then
    echo "FAIL: an upward include (sip -> registrar) compiled"; exit 1
fi
grep -q "registrar/registrar.h" "$out" || { echo "FAIL: upward.c failed for another reason:"; cat "$out"; exit 1; }
echo "ok: sip cannot include registrar/registrar.h ($(grep -m1 -o 'No such file or directory\|fatal error.*' "$out"))"
"$cc" -std=c17 -D_GNU_SOURCE -fsyntax-only $(pkg-config --cflags libuv) -I "$build/layers/cascade_registrar" "$root/tests/layering/downward.c"
echo "ok: the registrar's view finds base, sip and txn headers"
