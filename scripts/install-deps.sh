#!/usr/bin/env bash
# Installs the Debian packages arpc needs to build, test and benchmark, and only
# those that are missing.  Safe to run again: with everything present it
# does nothing and asks no questions.
set -euo pipefail

PACKAGES=(
    build-essential   # gcc, make, libc headers
    cmake
    ninja-build
    clang             # libFuzzer target
    libclang-rt-14-dev
    pkg-config        # tests/install: a consumer built through arpc.pc
    binutils          # readelf: tests/install checks how that consumer links libarpc
    strace            # debugging system calls
    linux-perf        # bench/syscalls.sh: syscall tracepoints; profiling
    bc                # bench scripts: ratios
    valgrind
    util-linux        # setarch, for ThreadSanitizer on high-entropy ASLR kernels
    procps
    gcc-aarch64-linux-gnu     # make test-aarch64: cross-compiles switch_aarch64.S and the
    libc6-dev-arm64-cross     #   runtime tests, which run under qemu-user's qemu-aarch64
    qemu-user
    python3-grpcio            # tests/interop: the real gRPC peer (run with /usr/bin/python3)
    python3-protobuf
    protobuf-compiler         # protoc: the peers' Python stubs, proto/arpc/echo.proto
    protobuf-compiler-grpc    #   grpc_python_plugin and grpc_cpp_plugin
    python3-grpc-tools        # grpc_tools.protoc, the stub generator's fallback
    grpc-proto                # grpc/health/v1/health.proto for the peers' Health/Check
    g++                       # bench/grpc: the gRPC C++ echo server and load generator
    libgrpc++-dev             #   (issue #11's baseline; skipped by CMake when missing)
    libprotobuf-dev
    libnghttp2-dev            # src/proto/grpc/session.c: gRPC's HTTP/2 (issue #11)
    libssl-dev                # src/transport/tls.c: TLS on OpenSSL 3 (issue #14)
    openssl                   #   tests/tls: the tests' CA and certificates, s_client checks
    libprotobuf-c-dev         # src/protobuf/, typed services (issue #13): protobuf-c's runtime
    protobuf-c-compiler       #   protoc-c: messages, and the library's own .proto files
    libprotoc-dev             #   google/protobuf/compiler/plugin.proto, for protoc-gen-arpc
    thrift-compiler           # tests/interop/thrift: Python stubs of proto/arpc/echo.thrift (issue #16)
    python3-thrift            #   the real Thrift peers (TNonblockingServer, TThreadedServer, clients)
    libthrift-dev             #   bench/thrift: the Thrift C++ baseline (skipped by CMake when missing)
    libevent-dev              #   headers TNonblockingServer.h includes
    libboost-dev              #   headers Thrift C++'s transports include
    prometheus                # tests/observe: promtool check metrics, a real Prometheus scraping /metrics (issue #15)
    chromium                  #   the /status page rendered headless
    gnuplot-nox               # bench/plot: make bench draws its results as charts
)

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
