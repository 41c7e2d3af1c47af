#!/usr/bin/env bash
# test-all.sh — what `make test` runs, in an order that keeps the wall time
# down on a small machine:
#   1. the RelWithDebInfo tree ($BUILD), whole, gcc -Werror: the plain ctest
#      pass needs it;
#   2. while the plain ctest pass runs (its peer tests mostly wait on timers
#      and peers, so the cores are mostly idle), the other trees are compiled
#      in the background at a lower priority: every other build type
#      (programs and unit tests, -Werror), the ASan+UBSan tree and the clang
#      fuzz tree. The suite must pass on a loaded machine anyway (docs/testing);
#      nice keeps the tests first in line for the CPU;
#   3. the ASan+UBSan ctest pass, then every fuzz target FUZZ_SECONDS each.
# Any failure fails the run; a failed background build prints its log.
# The Makefile passes its variables (BUILD, BUILD_ASAN, BUILD_FUZZ, JOBS,
# CTEST_JOBS, FUZZ_SECONDS, FUZZ_JOBS, BUILD_TYPES, CMAKE_FLAGS, PROGRAMS,
# UNIT_TESTS).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${BUILD:=build}" "${BUILD_ASAN:=build-asan}" "${BUILD_FUZZ:=build-fuzz}" "${JOBS:=$(nproc)}"
: "${CTEST_JOBS:=2}" "${FUZZ_SECONDS:=30}" "${FUZZ_JOBS:=2}" "${BUILD_TYPES:=Release MinSizeRel RelWithDebInfo}"
: "${CMAKE_FLAGS:=}" "${PROGRAMS:=cascade cascadectl cascade-gbsim}" "${UNIT_TESTS:=}"
read -r -a cmake_flags <<<"$CMAKE_FLAGS"

stamp() { echo "== $(date -u +%H:%M:%S) $*"; }

stamp "RelWithDebInfo ($BUILD), gcc -Werror"
CC=gcc cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCASCADE_WERROR=ON "${cmake_flags[@]}" >/dev/null
cmake --build "$BUILD" -j "$JOBS"

# The other trees, one after another, in the background.
bg_log=$(mktemp)
background_builds() {
    local t d
    for t in $BUILD_TYPES; do
        [ "$t" = RelWithDebInfo ] && continue
        d=build-$t
        stamp "$t ($d), gcc -Werror: programs and unit tests"
        CC=gcc cmake -S . -B "$d" -DCMAKE_BUILD_TYPE="$t" -DCASCADE_WERROR=ON "${cmake_flags[@]}" >/dev/null
        # shellcheck disable=SC2086 # word lists
        cmake --build "$d" -j "$JOBS" --target $PROGRAMS $UNIT_TESTS
    done
    stamp "ASan+UBSan ($BUILD_ASAN)"
    cmake -S . -B "$BUILD_ASAN" -DCMAKE_BUILD_TYPE=Debug -DCASCADE_SANITIZE=ON -DCASCADE_WERROR=ON \
        "${cmake_flags[@]}" >/dev/null
    cmake --build "$BUILD_ASAN" -j "$JOBS"
    stamp "fuzz tree ($BUILD_FUZZ), clang"
    CC=clang cmake -S . -B "$BUILD_FUZZ" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCASCADE_FUZZ=ON -DCASCADE_SANITIZE=ON \
        "${cmake_flags[@]}" >/dev/null
    cmake --build "$BUILD_FUZZ" -j "$JOBS"
    stamp "background builds done"
}
(
    renice -n 10 -p "$BASHPID" >/dev/null # what this subshell starts inherits it
    background_builds
) >"$bg_log" 2>&1 &
bg=$!
cleanup() { kill "$bg" 2>/dev/null || true; rm -f "$bg_log"; }
trap cleanup EXIT

stamp "plain ctest ($BUILD), -j $CTEST_JOBS, beside the background builds"
(cd "$BUILD" && ctest --output-on-failure -j "$CTEST_JOBS")

# The tests are done: what is left of the builds gets the machine at normal
# priority (raising it back needs the privilege CI runs with; without it the
# builds just go on at nice 10).
renice_tree() { # PID NICE: the process and every descendant
    local c
    renice -n "$2" -p "$1" >/dev/null 2>&1 || true
    for c in $(pgrep -P "$1" 2>/dev/null); do renice_tree "$c" "$2"; done
}
renice_tree "$bg" 0
stamp "waiting for the background builds"
if ! wait "$bg"; then
    echo "background builds FAILED:"
    tail -200 "$bg_log"
    exit 1
fi
grep -E "^== " "$bg_log" || true

stamp "ASan+UBSan ctest ($BUILD_ASAN), -j $CTEST_JOBS"
(cd "$BUILD_ASAN" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --output-on-failure -j "$CTEST_JOBS")

stamp "fuzz: each target ${FUZZ_SECONDS}s, $FUZZ_JOBS at a time"
bash scripts/run-fuzz.sh "$BUILD_FUZZ" "$FUZZ_SECONDS" "$FUZZ_JOBS"
stamp "make test: all passed"
