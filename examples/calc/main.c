/*
 * calc-demo: a calculator service and its client in one process, showing
 * arpc's three call styles (sync, async callback, coroutine), deadlines,
 * application errors, unknown methods and a fan-out.  See README.md.
 *
 * The server runs on its own runtime (two loop threads), listening on
 * 127.0.0.1 on a port the kernel picks; the client (calc_client.c) creates
 * another runtime and a channel to it.  Exit status 0 means every step
 * behaved as expected.
 */
#include <stdio.h>
#include <stdlib.h>

#include "calc.h"

#define SERVER_LOOPS    2
#define SERVER_DRAIN_MS 2000

static int fail(const char *what, int rc)
{
    fprintf(stderr, "calc demo: %s: ARPC_%s (%s)\n", what, arpc_err_name(rc), arpc_strerror(rc));
    return EXIT_FAILURE;
}

int main(void)
{
    /* One line per step, visible at once even through a pipe. */
    setvbuf(stdout, NULL, _IOLBF, 0);

    arpc_runtime_opts rt_opts;
    arpc_runtime_opts_init(&rt_opts);
    rt_opts.loops = SERVER_LOOPS;
    arpc_runtime *server_rt;
    int rc = arpc_runtime_create(&rt_opts, &server_rt);
    if (rc < 0)
        return fail("server runtime", rc);
    arpc_server *srv;
    rc = calc_server_start(server_rt, "127.0.0.1:0", &srv);
    if (rc < 0) {
        arpc_runtime_destroy(server_rt);
        return fail("server on 127.0.0.1", rc);
    }
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", arpc_server_port(srv));
    printf("calc demo: server listening on %s; a client with its own runtime calls it\n", target);

    int failures = calc_client_run(target);

    /* Graceful: requests still running (none by now) may finish first. */
    int shutdown_rc = arpc_server_shutdown(srv, SERVER_DRAIN_MS);
    arpc_server_stats stats;
    arpc_server_get_stats(srv, &stats);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(server_rt);
    if (shutdown_rc < 0)
        return fail("server shutdown", shutdown_rc);
    printf("server: answered %llu requests (%llu to an unknown method), then shut down cleanly\n",
           (unsigned long long)stats.requests, (unsigned long long)stats.unknown_method);

    if (failures < 0) {
        printf("calc demo: the client could not start\n");
        return EXIT_FAILURE;
    }
    if (failures > 0) {
        printf("calc demo: %d of %d steps did not behave as expected\n", failures, CALC_DEMO_STEPS);
        return EXIT_FAILURE;
    }
    printf("calc demo: all %d steps behaved as expected\n", CALC_DEMO_STEPS);
    return EXIT_SUCCESS;
}
