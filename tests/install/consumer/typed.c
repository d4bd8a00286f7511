/*
 * A program of its own on the code protoc-gen-arpc generated from greet.proto, against
 * an installed arpc (tests/install/check_install.sh builds it with the CMake function
 * and with the pkg-config one-liner): a server with the typed Greeter on 127.0.0.1 (the
 * kernel picks the port), a typed unary call and a typed bidirectional stream to it,
 * each answer checked.  Method Return is named like a C keyword, so the CMake function's
 * repair of protoc-c's header (and the one-liner's sed, docs/protobuf.md) is needed.
 */
#include <stdio.h>
#include <string.h>

#include "greet.arpc.h"

static int greet(arpc_request *req, const Consumer__Hello *in, Consumer__Greeting *out,
                 void *user_data)
{
    size_t len = strlen(in->name) + sizeof("hello, ");
    char *text = arpc_arena_alloc(arpc_request_arena(req), len);

    (void)user_data;
    if (text == NULL)
        return ARPC_ENOMEM;
    snprintf(text, len, "hello, %s", in->name);
    out->text = text;
    return 0;
}

/* Return: each Hello answered with a Greeting of its name. */
static int greet_each(arpc_stream *st, void *user_data)
{
    Consumer__Hello *in;
    int rc;

    (void)user_data;
    while ((rc = consumer__greeter__arpc_return_recv(st, NULL, &in)) == 0) {
        Consumer__Greeting out = CONSUMER__GREETING__INIT;

        out.text = in->name;
        rc = consumer__greeter__arpc_return_send(st, &out);
        consumer__hello__free_unpacked(in, NULL);
        if (rc != 0)
            return rc;
    }
    return rc == ARPC_EEOS ? 0 : rc;
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "consumer_typed: %s: %s (%s)\n", what, arpc_err_name(rc), arpc_strerror(rc));
    return 1;
}

static int check_text(const char *got, const char *want)
{
    if (strcmp(got, want) == 0)
        return 0;
    fprintf(stderr, "consumer_typed: answer is '%s', want '%s'\n", got, want);
    return 1;
}

static int call_unary(arpc_channel *ch)
{
    Consumer__Hello hello = CONSUMER__HELLO__INIT;
    Consumer__Greeting *rsp = NULL;
    int rc;

    hello.name = "installed arpc";
    rc = consumer__greeter__arpc_greet(ch, &hello, NULL, &rsp);
    if (rc != 0)
        return fail("greet", rc);
    rc = check_text(rsp->text, "hello, installed arpc");
    consumer__greeting__free_unpacked(rsp, NULL);
    return rc;
}

static int call_stream(arpc_channel *ch)
{
    Consumer__Hello hello = CONSUMER__HELLO__INIT;
    Consumer__Greeting *rsp = NULL;
    arpc_stream *st;
    int rc = consumer__greeter__arpc_return_open(ch, NULL, &st);

    if (rc != 0)
        return fail("return_open", rc);
    hello.name = "streamed";
    rc = consumer__greeter__arpc_return_write(st, &hello);
    if (rc == 0)
        rc = consumer__greeter__arpc_return_read(st, NULL, &rsp);
    if (rc == 0) {
        rc = check_text(rsp->text, "streamed");
        consumer__greeting__free_unpacked(rsp, NULL);
    } else {
        rc = fail("return write/read", rc);
    }
    if (rc == 0 && (rc = arpc_stream_close_send(st)) == 0)
        rc = arpc_stream_finish(st, NULL);
    arpc_stream_destroy(st);
    return rc < 0 ? fail("return finish", rc) : rc;
}

int main(void)
{
    consumer__greeter__arpc_handlers h = {.greet = greet, .return_ = greet_each};
    arpc_runtime *rt;
    arpc_server *srv;
    arpc_channel *ch;
    char target[32];
    int rc = arpc_runtime_create(NULL, &rt);

    if (rc < 0)
        return fail("arpc_runtime_create", rc);
    rc = arpc_server_create(rt, NULL, &srv);
    if (rc < 0)
        return fail("arpc_server_create", rc);
    if ((rc = consumer__greeter__arpc_register(srv, &h, NULL)) != 0 ||
        (rc = arpc_server_listen(srv, "127.0.0.1:0")) != 0)
        return fail("register/listen", rc);
    snprintf(target, sizeof(target), "127.0.0.1:%d", arpc_server_port(srv));
    rc = arpc_channel_create(rt, target, NULL, &ch);
    if (rc < 0)
        return fail("arpc_channel_create", rc);
    rc = call_unary(ch);
    if (rc == 0)
        rc = call_stream(ch);
    arpc_channel_destroy(ch);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(rt);
    if (rc == 0)
        printf("consumer_typed: typed calls ok\n");
    return rc;
}
