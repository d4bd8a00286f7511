/*
 * Uses the code protoc-gen-arpc generated from greet.proto against an installed arpc
 * (tests/install/check_install.sh): a handler table and a typed call, compiled into
 * an object file.  Method Return is named like a C keyword, so the CMake function's
 * repair of protoc-c's header (and the one-liner's sed, docs/protobuf.md) is needed.
 */
#include "greet.arpc.h"

int consumer_typed(arpc_server *srv, arpc_channel *ch);

static int greet(arpc_request *req, const Consumer__Hello *in, Consumer__Greeting *out,
                 void *user_data)
{
    (void)req;
    (void)user_data;
    out->text = in->name;
    return 0;
}

int consumer_typed(arpc_server *srv, arpc_channel *ch)
{
    consumer__greeter__arpc_handlers h = {.greet = greet, .return_ = NULL};
    Consumer__Hello hello = CONSUMER__HELLO__INIT;
    Consumer__Greeting *rsp = NULL;
    int rc = consumer__greeter__arpc_register(srv, &h, NULL);

    if (rc == 0)
        rc = consumer__greeter__arpc_greet(ch, &hello, NULL, &rsp);
    if (rc == 0)
        consumer__greeting__free_unpacked(rsp, NULL);
    return rc;
}
