// The echo service over Thrift (docs/thrift.md): arpc-echo-server serves it on its one port,
// beside proto/arpc/echo.proto over gRPC and the native `echo` and `sleep`.  The interop tests
// (tests/interop/thrift/) generate their Python stubs from this file, the bench's C++ baseline
// (bench/thrift/) its C++ ones.
namespace py arpc_echo
namespace cpp arpc_echo

service Echo {
    // Answers data as it came.
    binary echo(1: binary data),
    // Answers the decimal text of ms after sleeping that long (0..3600000), suspending only
    // the request's coroutine: calls that finish out of order on one connection.
    binary sleep(1: i32 ms),
}
