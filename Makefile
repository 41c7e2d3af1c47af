# cascade — top-level commands. `make run` builds and starts the daemon with the
# embedded default config; `make test` runs every test (every CMake build type
# compiled once with -Werror, plain, ASan+UBSan, fuzz: scripts/test-all.sh);
# `make install PREFIX=/usr/local [DESTDIR=...]` installs (cmake --install);
# `make deb` builds dist/cascade_<version>_<arch>.deb (packaging/make-deb.sh).
BUILD        ?= build
BUILD_ASAN   ?= build-asan
BUILD_FUZZ   ?= build-fuzz
FUZZ_SECONDS ?= 30
JOBS         ?= $(shell nproc)
# Tests at once in each ctest pass: nproc + 1, at least 3 (the peer tests
# mostly wait on timers and peers: on 2 cores a third test keeps them busy),
# at most 4. Tests that must run alone say so (RUN_SERIAL in CMakeLists.txt);
# browsers take the `chromium` lock. Fuzz targets at once: FUZZ_JOBS.
CTEST_JOBS   ?= $(shell n=$$(( $$(nproc) + 1 )); [ $$n -lt 3 ] && n=3; [ $$n -gt 4 ] && n=4; echo $$n)
FUZZ_JOBS    ?= 2
CMAKE_FLAGS  ?=
PREFIX       ?= /usr/local
DEB_DIR      ?= dist
# Build types compiled by test-buildtypes, each in build-<type> (RelWithDebInfo
# is $(BUILD), the tree test-plain runs): optimisation levels change what gcc
# warns about (-Wdangling-pointer, -Wmaybe-uninitialized, ...). Debug is the
# ASan+UBSan tree of test-asan, also built with -Werror (one build, not two).
BUILD_TYPES  ?= Release MinSizeRel RelWithDebInfo
UNIT_TESTS   := $(basename $(notdir $(wildcard tests/unit/test_*.c)))
PROGRAMS     := cascade cascadectl $(if $(wildcard src/app/gbsim.c),cascade-gbsim)

.PHONY: all build run install deb test test-buildtypes test-plain test-asan test-fuzz deps bench clean

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

run: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j $(JOBS) --target cascade cascadectl
	./$(BUILD)/cascade $(ARGS)

# The programs and manual pages, the console's files, the example config in
# PREFIX/etc/cascade (/etc for PREFIX=/usr) and the systemd unit; DESTDIR is
# honoured (cmake --install reads it from the environment).
install: build
	DESTDIR=$(DESTDIR) cmake --install $(BUILD) --prefix $(PREFIX)

deb: build
	@bash packaging/make-deb.sh $(BUILD) $(DEB_DIR)

# The whole suite (scripts/test-all.sh): the RelWithDebInfo tree, then the
# plain ctest pass while the other trees compile beside it at low priority,
# then ASan+UBSan, then fuzz. The targets below run one stage each.
test: deps
	@BUILD=$(BUILD) BUILD_ASAN=$(BUILD_ASAN) BUILD_FUZZ=$(BUILD_FUZZ) JOBS=$(JOBS) CTEST_JOBS=$(CTEST_JOBS) \
		FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_JOBS=$(FUZZ_JOBS) BUILD_TYPES="$(BUILD_TYPES)" CMAKE_FLAGS="$(CMAKE_FLAGS)" \
		PROGRAMS="$(PROGRAMS)" UNIT_TESTS="$(UNIT_TESTS)" bash scripts/test-all.sh

# Compile only (the library, the programs, the unit tests), gcc, -Werror.
test-buildtypes: deps
	@set -e; for t in $(BUILD_TYPES); do \
		d=build-$$t; [ $$t = RelWithDebInfo ] && d=$(BUILD); \
		echo "== $$t ($$d)"; \
		CC=gcc cmake -S . -B $$d -DCMAKE_BUILD_TYPE=$$t -DCASCADE_WERROR=ON $(CMAKE_FLAGS) >/dev/null; \
		cmake --build $$d -j $(JOBS) --target $(PROGRAMS) $(UNIT_TESTS); \
	done

test-plain: build
	cd $(BUILD) && ctest --output-on-failure -j $(CTEST_JOBS)

test-asan: deps
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DCASCADE_SANITIZE=ON -DCASCADE_WERROR=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD_ASAN) -j $(JOBS)
	cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure -j $(CTEST_JOBS)

test-fuzz: deps
	CC=clang cmake -S . -B $(BUILD_FUZZ) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCASCADE_FUZZ=ON -DCASCADE_SANITIZE=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD_FUZZ) -j $(JOBS)
	bash scripts/run-fuzz.sh $(BUILD_FUZZ) $(FUZZ_SECONDS) $(FUZZ_JOBS)

bench: build
	@echo "see bench/README.md"

clean:
	rm -rf $(DEB_DIR) $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ) $(addprefix build-,$(BUILD_TYPES))
