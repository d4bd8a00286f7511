# The two commands of the quick start are `make run` and `make test`; both
# install what is missing first, so they work on a fresh Debian 12 machine.
#
#   make run     build and run the calc demo
#   make test    normal, ASan+UBSan and TSan builds, every test, 57 s of fuzzing,
#                and the runtime tests cross-built for aarch64 and run under qemu;
#                the normal build's ctest includes install_check (tests/install/):
#                a project outside the tree built against the installed library
#   make bench   arpc against the raw-socket baselines (bench/RESULTS.md)
#   make clean   remove every build directory

JOBS      ?= $(shell nproc)
GENERATOR := -G Ninja
CMAKE_CI  := -DARPC_WERROR=ON
CTEST     := ctest --output-on-failure -j $(JOBS)

.PHONY: all deps build run test test-normal test-aarch64 test-asan test-tsan fuzz bench clean

all: build

deps:
	@scripts/install-deps.sh

build/build.ninja: | deps
	cmake -S . -B build $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_CI)

build: deps build/build.ninja
	cmake --build build -j $(JOBS)

run: build
	build/bin/calc-demo

test-normal: build
	cd build && $(CTEST)

# The aarch64 context switch (src/runtime/arch/switch_aarch64.S) on this x86-64
# machine: cross-compile the library and the single-process base and runtime
# tests, and let ctest run them through qemu-aarch64 (the toolchain file sets
# CMAKE_CROSSCOMPILING_EMULATOR).  Only these targets are built, to keep the
# step short; every runtime test works under qemu-user, including the threaded
# ones (epoll, eventfd, futexes) and the forked stack-overflow child.
AARCH64_TESTS := test_err test_buf test_timer_heap test_timers test_stack_overflow \
                 test_coro test_coro_ucontext test_coro_threaded test_inbox test_io \
                 test_busy_poll
empty :=
space := $(empty) $(empty)

test-aarch64: deps
	cmake -S . -B build-aarch64 $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_CI) \
	    -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64-linux-gnu.cmake -DARPC_BUILD_TOOLS=OFF
	cmake --build build-aarch64 -j $(JOBS) --target $(AARCH64_TESTS)
	@# The point of this step: the switch under test is the aarch64 assembly.
	aarch64-linux-gnu-nm -A build-aarch64/lib/libarpc.a | \
	    grep -q 'switch_aarch64\.S\.o: *[0-9a-f]* T arpc__ctx_switch$$'
	cd build-aarch64 && $(CTEST) --no-tests=error -R '^($(subst $(space),|,$(strip $(AARCH64_TESTS))))$$'

test-asan: deps
	cmake -S . -B build-asan $(GENERATOR) -DCMAKE_BUILD_TYPE=Debug $(CMAKE_CI) \
	    -DARPC_SANITIZE=address,undefined
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 $(CTEST)

test-tsan: deps
	cmake -S . -B build-tsan $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_CI) \
	    -DARPC_SANITIZE=thread
	cmake --build build-tsan -j $(JOBS)
	cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 $(CTEST) -L threaded

fuzz: deps
	CC=clang cmake -S . -B build-fuzz $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	    -DARPC_FUZZ=ON -DARPC_BUILD_TOOLS=OFF
	cmake --build build-fuzz -j $(JOBS) --target fuzz_decoder fuzz_grpc fuzz_grpc_session \
	    fuzz_native_session fuzz_pb_unpack fuzz_thrift
	mkdir -p build-fuzz/corpus build-fuzz/corpus-grpc build-fuzz/corpus-grpc-session \
	    build-fuzz/corpus-native-session build-fuzz/corpus-pb build-fuzz/corpus-thrift
	build-fuzz/bin/fuzz_decoder -max_total_time=20 -print_final_stats=1 \
	    build-fuzz/corpus fuzz/corpus
	build-fuzz/bin/fuzz_grpc -max_total_time=12 -print_final_stats=1 \
	    build-fuzz/corpus-grpc fuzz/corpus-grpc
	build-fuzz/bin/fuzz_grpc_session -max_total_time=8 -print_final_stats=1 \
	    build-fuzz/corpus-grpc-session fuzz/corpus-grpc-session
	build-fuzz/bin/fuzz_native_session -max_total_time=8 -print_final_stats=1 \
	    build-fuzz/corpus-native-session fuzz/corpus-native-session
	build-fuzz/bin/fuzz_pb_unpack -max_total_time=4 -print_final_stats=1 \
	    build-fuzz/corpus-pb fuzz/corpus-pb
	build-fuzz/bin/fuzz_thrift -max_total_time=5 -print_final_stats=1 \
	    build-fuzz/corpus-thrift fuzz/corpus-thrift

test: test-normal test-aarch64 test-asan fuzz test-tsan

bench: build
	bench/run.sh

clean:
	rm -rf build build-aarch64 build-asan build-tsan build-fuzz
