/*
 * gRPC server reflection (src/protobuf/reflection.c) against grpcio and protobuf's own
 * descriptor pool: reflection_client.py, on one stream of each version (v1, v1alpha),
 * lists the services of an in-process arpc server, fetches their files and imports,
 * builds a DescriptorPool from the FileDescriptorProtos alone and finds every method with
 * its types; then the error answers on the same stream.  The server's services are the
 * reflection tests' (tests/unit/reflection/refl_fixture.h).
 */
#include <stdio.h>

#include <arpc/arpc.h>

#include "interop_util.h"
#include "refl_fixture.h"
#include "test.h"

#define CLIENT_TIMEOUT_MS 60000 /* python's start on a busy machine, sanitizers */

static void run_client(int port, const char *version)
{
    char target[64];
    interop_addr(target, sizeof(target), port);
    const char *args[] = {
        "--version", version,
        "--service", "refl.calc.Calc:Add,Watch,Collect,Chat",
        "--service", "refl.other.Mirror:Flip",
        "--service", "grpc.reflection.v1.ServerReflection:ServerReflectionInfo",
        "--service", "grpc.reflection.v1alpha.ServerReflection:ServerReflectionInfo",
        NULL};
    ASSERT_EQ(interop_run_client_script("reflection_client.py", target, args, CLIENT_TIMEOUT_MS),
              0);
}

static void test_grpcio_reflection_client(void)
{
    arpc_runtime_opts opts;
    arpc_runtime_opts_init(&opts);
    opts.loops = 2;
    arpc_runtime *rt = NULL;
    ASSERT_OK(arpc_runtime_create(&opts, &rt));
    arpc_server *srv = refl_server(rt, false);
    run_client(arpc_server_port(srv), "v1");
    run_client(arpc_server_port(srv), "v1alpha");
    arpc_server_destroy(srv);
    arpc_runtime_destroy(rt);
}

int main(void)
{
    interop_require_grpc();
    RUN_TEST(test_grpcio_reflection_client);
    return 0;
}
