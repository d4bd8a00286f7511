/* pb_fixture.c: see pb_fixture.h. */
#include "pb_fixture.h"

#include <stdio.h>
#include <string.h>

#include "test.h"

void pb_fixture_start(pb_fixture *f, int argc, char **argv, void (*reg)(arpc_server *srv))
{
    f->grpc = argc > 1 && strcmp(argv[1], "grpc") == 0;
    arpc_runtime_opts ro;
    arpc_runtime_opts_init(&ro);
    ro.loops = 2;
    ASSERT_OK(arpc_runtime_create(&ro, &f->srv_rt));
    ASSERT_OK(arpc_runtime_create(&ro, &f->cli_rt));
    ASSERT_OK(arpc_server_create(f->srv_rt, NULL, &f->srv));
    reg(f->srv);
    ASSERT_OK(arpc_server_listen(f->srv, "127.0.0.1:0"));
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", arpc_server_port(f->srv));
    arpc_channel_opts co;
    arpc_channel_opts_init(&co);
    co.protocol = f->grpc ? ARPC_PROTOCOL_GRPC : ARPC_PROTOCOL_NATIVE;
    ASSERT_OK(arpc_channel_create(f->cli_rt, target, &co, &f->ch));
}

void pb_fixture_stop(pb_fixture *f)
{
    arpc_channel_destroy(f->ch);
    arpc_server_destroy(f->srv);
    arpc_runtime_destroy(f->cli_rt);
    arpc_runtime_destroy(f->srv_rt);
}

arpc_call_opts pb_call_opts(arpc_arena *arena, arpc_buf *error_message)
{
    arpc_call_opts o;
    arpc_call_opts_init(&o);
    o.timeout_ms = PB_TIMEOUT_MS;
    o.arena = arena;
    o.error_message = error_message;
    return o;
}

void pb_run_in_coro(pb_fixture *f, arpc_coro_fn fn, void *job, arpc_wg *done)
{
    arpc_wg_init(done, 1);
    ASSERT_OK(arpc_coro_spawn(arpc_runtime_loop(f->cli_rt, 0), fn, job));
    ASSERT_OK(arpc_wg_wait(done, PB_TIMEOUT_MS));
}
