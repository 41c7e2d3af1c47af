#!/usr/bin/env bash
# Runs every libFuzzer target in BUILD_DIR for SECONDS each, seeded from tests/fuzz/corpus/<name>.
set -euo pipefail
build=${1:-build-fuzz}; secs=${2:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
shopt -s nullglob
ran=0
for f in "$build"/fuzz_*; do
  [ -x "$f" ] || continue
  name=$(basename "$f")
  work=$(mktemp -d)
  seeds="$root/tests/fuzz/corpus/$name"
  [ -d "$seeds" ] && cp -r "$seeds"/. "$work"/ 2>/dev/null || true
  echo "fuzz: $name for ${secs}s"
  ASAN_OPTIONS=detect_leaks=1 "$f" -max_total_time="$secs" -max_len=65536 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 "$work" >"$work.log" 2>&1 || { tail -60 "$work.log"; exit 1; }
  grep -E "stat::number_of_executed_units" "$work.log" || true
  rm -rf "$work" "$work.log"
  ran=$((ran+1))
done
echo "fuzz: $ran target(s) ran clean"
