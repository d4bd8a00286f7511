#include "rpc_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpc/arpc.h>

#include "test.h"

arpc_runtime *fx_runtime(unsigned loops)
{
    arpc_runtime_opts opts;
    arpc_runtime_opts_init(&opts);
    opts.loops = loops;
    opts.offload_threads = 2;
    arpc_runtime *rt = NULL;
    ASSERT_OK(arpc_runtime_create(&opts, &rt));
    return rt;
}

arpc_server *fx_server(arpc_runtime *rt, const arpc_server_opts *opts, const fx_method *methods)
{
    arpc_server *srv = NULL;
    ASSERT_OK(arpc_server_create(rt, opts, &srv));
    for (const fx_method *m = methods; m != NULL && m->name != NULL; m++)
        ASSERT_OK(arpc_server_register(srv, m->name, m->fn, m->user_data));
    ASSERT_OK(arpc_server_listen(srv, "127.0.0.1:0"));
    ASSERT_GT(arpc_server_port(srv), 0);
    return srv;
}

const char *fx_target(const arpc_server *srv, char *buf, size_t len)
{
    snprintf(buf, len, "127.0.0.1:%d", arpc_server_port(srv));
    return buf;
}

arpc_channel *fx_channel(arpc_runtime *rt, const arpc_server *srv, const arpc_channel_opts *opts)
{
    char target[64];
    arpc_channel *ch = NULL;
    ASSERT_OK(arpc_channel_create(rt, fx_target(srv, target, sizeof(target)), opts, &ch));
    return ch;
}

arpc_call_opts fx_timeout(int64_t timeout_ms)
{
    arpc_call_opts opts;
    arpc_call_opts_init(&opts);
    opts.timeout_ms = timeout_ms;
    return opts;
}

int fx_handle_echo(arpc_request *req, void *user_data)
{
    (void)user_data;
    return arpc_buf_append(arpc_request_response(req), arpc_request_data(req),
                           arpc_request_len(req));
}

int fx_handle_sleep(arpc_request *req, void *user_data)
{
    (void)user_data;
    char text[32];
    size_t len = arpc_request_len(req);
    if (len == 0 || len >= sizeof(text)) {
        arpc_request_set_error(req, "sleep: bad payload");
        return 1;
    }
    memcpy(text, arpc_request_data(req), len);
    text[len] = '\0';
    arpc_coro_sleep_ms(strtol(text, NULL, 10));
    return arpc_buf_append(arpc_request_response(req), text, len);
}

void fx_fill(void *p, size_t len, uint32_t seed)
{
    uint8_t *b = p;
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b[i] = (uint8_t)(x ^ i);
    }
}

typedef struct loop_run {
    arpc_task_cb fn;
    void *arg;
    arpc_event done;
} loop_run;

static void loop_run_task(void *arg)
{
    loop_run *run = arg;
    run->fn(run->arg);
    arpc_event_signal(&run->done);
}

void fx_run_on_loop(arpc_loop *loop, arpc_task_cb fn, void *arg)
{
    loop_run run = {.fn = fn, .arg = arg};
    arpc_event_init(&run.done);
    ASSERT_OK(arpc_loop_submit(loop, loop_run_task, &run));
    ASSERT_OK(arpc_event_wait(&run.done, 30000));
}

bool fx_is_conn_error(int rc)
{
    return rc == ARPC_ECLOSED || rc == ARPC_ECONNRESET || rc == ARPC_EPIPE;
}
