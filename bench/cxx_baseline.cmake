# Included (not add_subdirectory'd) by bench/grpc and bench/thrift, the C++ baselines:
# enables C++17 when a C++ compiler is found and sets ARPC_BENCH_CXX to TRUE, else
# prints why the including directory is skipped and sets it to FALSE.  Also sets
# ARPC_BENCH_CXX_WARNINGS, the warnings the baselines' own programs get (not the code
# their generators write, which is not ours).

get_filename_component(arpc_bench_dir ${CMAKE_CURRENT_SOURCE_DIR} NAME)
set(ARPC_BENCH_CXX FALSE)
include(CheckLanguage)
check_language(CXX)
if(NOT CMAKE_CXX_COMPILER)
    message(STATUS "bench/${arpc_bench_dir}: skipped, no C++ compiler")
    return()
endif()
enable_language(CXX)
set(CMAKE_CXX_STANDARD 17)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
set(CMAKE_CXX_EXTENSIONS OFF)
set(ARPC_BENCH_CXX TRUE)

set(ARPC_BENCH_CXX_WARNINGS -Wall -Wextra -Wshadow -Wformat=2 -Wvla -Wno-unused-parameter)
if(ARPC_WERROR)
    list(APPEND ARPC_BENCH_CXX_WARNINGS -Werror)
endif()
