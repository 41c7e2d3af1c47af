#!/usr/bin/env bash
# Runs every libFuzzer target in BUILD_DIR for SECONDS each, seeded from
# tests/fuzz/corpus/<name>, JOBS targets at a time (FUZZ_JOBS, default 2: each
# fuzzer is one process on one core, and `make test` must fit its budget).
# Each target works in its own temp dir; its report is printed when it ends,
# whole, so parallel runs do not interleave. Any failure fails the run, after
# the targets already started have finished.
set -euo pipefail
build=${1:-build-fuzz}; secs=${2:-60}; jobs=${3:-${FUZZ_JOBS:-2}}
root=$(cd "$(dirname "$0")/.." && pwd)
shopt -s nullglob

# fuzz_one TARGET: runs it, prints its stats (or the end of its log), returns its status.
fuzz_one() {
  local f=$1 name work rc=0
  name=$(basename "$f")
  work=$(mktemp -d)
  local seeds="$root/tests/fuzz/corpus/$name"
  [ -d "$seeds" ] && cp -r "$seeds"/. "$work"/ 2>/dev/null || true
  ASAN_OPTIONS=detect_leaks=1 "$f" -max_total_time="$secs" -max_len=65536 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 "$work" >"$work.log" 2>&1 || rc=$?
  {
    echo "fuzz: $name ran ${secs}s"
    if [ "$rc" -ne 0 ]; then
      echo "fuzz: $name FAILED (status $rc)"; tail -60 "$work.log"
    else
      grep -E "stat::number_of_executed_units" "$work.log" || true
    fi
  } >"$work.report"
  cat "$work.report"
  rm -rf "$work" "$work.log" "$work.report"
  return "$rc"
}

targets=()
for f in "$build"/fuzz_*; do [ -x "$f" ] && [ -f "$f" ] && targets+=("$f"); done
echo "fuzz: ${#targets[@]} target(s), ${secs}s each, $jobs at a time"
failed=0 running=0
for f in "${targets[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || failed=1
    running=$((running - 1))
  fi
  [ "$failed" -eq 0 ] || break
  fuzz_one "$f" &
  running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
  wait -n || failed=1
  running=$((running - 1))
done
if [ "$failed" -ne 0 ]; then echo "fuzz: a target failed (above)"; exit 1; fi
echo "fuzz: ${#targets[@]} target(s) ran clean"
