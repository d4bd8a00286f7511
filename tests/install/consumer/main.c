/*
 * A program outside the arpc tree, built against an installed arpc by
 * tests/install/check_install.sh: a runtime, a server on 127.0.0.1 (the kernel
 * picks the port), a channel to it and one call whose answer is checked.  It
 * uses only <arpc/arpc.h>, as a newcomer's program would.
 *
 * EXPECT_VERSION is the version the build system found (pkg-config
 * --modversion, or find_package's arpc_VERSION); it must equal the header's.
 */
#include <stdio.h>
#include <string.h>

#include <arpc/arpc.h>

#ifndef EXPECT_VERSION
#error "build with -DEXPECT_VERSION=\"MAJOR.MINOR.PATCH\""
#endif

static const char greeting[] = "hello, ";

/* Answers "hello, " followed by the request's bytes. */
static int greet(arpc_request *req, void *user_data)
{
    arpc_buf *rsp = arpc_request_response(req);
    int rc = arpc_buf_append(rsp, greeting, strlen(greeting));

    if (rc == 0)
        rc = arpc_buf_append(rsp, arpc_request_data(req), arpc_request_len(req));
    return rc;
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "consumer: %s: %s (%s)\n", what, arpc_err_name(rc), arpc_strerror(rc));
    return 1;
}

/* One call on a channel to `port`; checks the answer. */
static int call_once(arpc_runtime *rt, int port)
{
    char target[32];
    arpc_channel *ch;
    arpc_buf *rsp;
    const char want[] = "hello, installed arpc";
    int rc;

    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    rc = arpc_channel_create(rt, target, NULL, &ch);
    if (rc < 0)
        return fail("arpc_channel_create", rc);
    rc = arpc_buf_create(&rsp);
    if (rc < 0) {
        arpc_channel_destroy(ch);
        return fail("arpc_buf_create", rc);
    }
    rc = arpc_call(ch, "greet", "installed arpc", strlen("installed arpc"), NULL, rsp);
    if (rc != 0) {
        rc = fail("arpc_call", rc);
    } else if (arpc_buf_len(rsp) != strlen(want) ||
               memcmp(arpc_buf_data(rsp), want, strlen(want)) != 0) {
        fprintf(stderr, "consumer: answer is '%.*s', want '%s'\n", (int)arpc_buf_len(rsp),
                (const char *)arpc_buf_data(rsp), want);
        rc = 1;
    }
    arpc_buf_destroy(rsp);
    arpc_channel_destroy(ch);
    return rc;
}

int main(void)
{
    arpc_runtime_opts opts;
    arpc_runtime *rt;
    arpc_server *srv;
    int rc;

    if (strcmp(ARPC_VERSION_STRING, EXPECT_VERSION) != 0) {
        fprintf(stderr, "consumer: header says %s, the build system %s\n", ARPC_VERSION_STRING,
                EXPECT_VERSION);
        return 1;
    }
    arpc_runtime_opts_init(&opts);
    opts.loops = 1;
    rc = arpc_runtime_create(&opts, &rt);
    if (rc < 0)
        return fail("arpc_runtime_create", rc);
    rc = arpc_server_create(rt, NULL, &srv);
    if (rc < 0) {
        arpc_runtime_destroy(rt);
        return fail("arpc_server_create", rc);
    }
    rc = arpc_server_register(srv, "greet", greet, NULL);
    if (rc == 0)
        rc = arpc_server_listen(srv, "127.0.0.1:0");
    if (rc == 0)
        rc = call_once(rt, arpc_server_port(srv));
    else
        rc = fail("arpc_server_register/listen", rc);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(rt);
    if (rc == 0)
        printf("consumer: arpc %s: one call answered\n", ARPC_VERSION_STRING);
    return rc == 0 ? 0 : 1;
}
