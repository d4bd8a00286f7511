/*
 * arpc-call: one call from the command line.  Prints the answer's payload on
 * stdout; on failure prints "error: NAME: message" on stderr and exits 1
 * (2 for bad usage).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpc/arpc.h>

static void usage(void)
{
    fprintf(stderr, "usage: arpc-call --target HOST:PORT [--timeout-ms N] METHOD [PAYLOAD]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *target = NULL;
    const char *method = NULL;
    const char *payload = "";
    int64_t timeout_ms = 1000;
    int positional = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--target") == 0 && i + 1 < argc) {
            target = argv[++i];
        } else if (strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc) {
            char *end;
            timeout_ms = strtoll(argv[++i], &end, 10);
            if (*end != '\0' || timeout_ms <= 0)
                usage();
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            usage();
        } else if (positional == 0) {
            method = argv[i];
            positional++;
        } else if (positional == 1) {
            payload = argv[i];
            positional++;
        } else {
            usage();
        }
    }
    if (target == NULL || method == NULL)
        usage();

    /* The error line says what went wrong; the library's log would repeat it. */
    arpc_log_set_level(ARPC_LOG_ERROR);
    arpc_runtime_opts rt_opts;
    arpc_runtime_opts_init(&rt_opts);
    rt_opts.loops = 1;
    arpc_runtime *rt;
    arpc_channel *ch = NULL;
    arpc_buf *rsp = NULL;
    int rc = arpc_runtime_create(&rt_opts, &rt);
    if (rc == 0)
        rc = arpc_channel_create(rt, target, NULL, &ch);
    if (rc == 0)
        rc = arpc_buf_create(&rsp);
    if (rc == 0) {
        arpc_call_opts opts;
        arpc_call_opts_init(&opts);
        opts.timeout_ms = timeout_ms;
        rc = arpc_call(ch, method, payload, strlen(payload), &opts, rsp);
    }
    if (rc == 0) {
        fwrite(arpc_buf_data(rsp), 1, arpc_buf_len(rsp), stdout);
        fputc('\n', stdout);
    } else if (rc > 0) {
        fprintf(stderr, "error: APP_ERROR(%d): %.*s\n", rc, (int)arpc_buf_len(rsp),
                (const char *)arpc_buf_data(rsp));
    } else {
        fprintf(stderr, "error: %s: %s\n", arpc_err_name(rc), arpc_strerror(rc));
    }
    arpc_buf_destroy(rsp);
    arpc_channel_destroy(ch);
    arpc_runtime_destroy(rt);
    return rc == 0 ? 0 : 1;
}
