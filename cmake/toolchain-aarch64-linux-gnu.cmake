# Cross-compiles arpc for aarch64 Linux with Debian's gcc-aarch64-linux-gnu and
# runs the resulting binaries through qemu-user, so `ctest` in the build
# directory exercises the aarch64 code (above all switch_aarch64.S) on an
# x86-64 machine.  Used by `make test-aarch64`:
#
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64-linux-gnu.cmake
#
# Needs gcc-aarch64-linux-gnu, libc6-dev-arm64-cross and qemu-user
# (scripts/install-deps.sh installs them).
set(CMAKE_SYSTEM_NAME Linux)
# src/CMakeLists.txt picks the context-switch backend from this.
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(ARPC_CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${ARPC_CROSS_TRIPLE}-gcc)
set(CMAKE_ASM_COMPILER ${ARPC_CROSS_TRIPLE}-gcc)

# Debian installs the target's libc under /usr/aarch64-linux-gnu.  Search it
# for libraries and headers only; programs (cmake, ninja) are the host's.
set(ARPC_CROSS_SYSROOT /usr/${ARPC_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH ${ARPC_CROSS_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# add_test() prefixes every test command with this, so ctest runs the aarch64
# binaries under user-mode emulation; -L points qemu at the target's dynamic
# loader and libc.
find_program(ARPC_QEMU_AARCH64 qemu-aarch64 REQUIRED)
set(CMAKE_CROSSCOMPILING_EMULATOR ${ARPC_QEMU_AARCH64} -L ${ARPC_CROSS_SYSROOT})
