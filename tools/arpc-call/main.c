/*
 * arpc-call: one call from the command line.  Prints the answer's payload on
 * stdout; on failure prints "error: NAME: message" on stderr and exits 1
 * (2 for bad usage).  --metadata KEY=VALUE (repeatable) sends request
 * metadata; the answer's metadata, if any, is printed on stderr, one
 * "metadata: KEY: VALUE" line per entry ("-bin" values in hex).
 * --protocol grpc calls over gRPC (h2c): METHOD is the path
 * (/pkg.Service/Method, the leading '/' optional), PAYLOAD the message's
 * bytes as they are, and an error's NAME is the gRPC code's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpc/arpc.h>

static void usage(void)
{
    fprintf(stderr,
            "usage: arpc-call --target HOST:PORT [--protocol native|grpc] [--timeout-ms N]\n"
            "                 [--metadata KEY=VALUE]... METHOD [PAYLOAD]\n");
    exit(2);
}

#define MAX_METADATA 64

/* "KEY=VALUE" into an entry whose key and value point into `arg` (split at the '='). */
static void parse_metadata(char *arg, arpc_metadata_entry *out)
{
    char *eq = strchr(arg, '=');
    if (eq == NULL)
        usage();
    *eq = '\0';
    out->key = arg;
    out->value = eq + 1;
    out->value_len = strlen(eq + 1);
}

static void print_metadata(const arpc_metadata *md)
{
    for (size_t i = 0; i < arpc_metadata_count(md); i++) {
        arpc_metadata_entry e;
        if (arpc_metadata_at(md, i, &e) < 0)
            return;
        size_t key_len = strlen(e.key);
        fprintf(stderr, "metadata: %s: ", e.key);
        if (key_len >= 4 && strcmp(e.key + key_len - 4, "-bin") == 0) {
            for (size_t j = 0; j < e.value_len; j++)
                fprintf(stderr, "%02x", ((const unsigned char *)e.value)[j]);
        } else {
            fwrite(e.value, 1, e.value_len, stderr);
        }
        fputc('\n', stderr);
    }
}

int main(int argc, char **argv)
{
    arpc_metadata_entry md[MAX_METADATA];
    size_t md_count = 0;
    const char *target = NULL;
    const char *method = NULL;
    const char *payload = "";
    int64_t timeout_ms = 1000;
    int positional = 0;
    arpc_channel_opts ch_opts;
    arpc_channel_opts_init(&ch_opts);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--target") == 0 && i + 1 < argc) {
            target = argv[++i];
        } else if (strcmp(argv[i], "--protocol") == 0 && i + 1 < argc) {
            i++;
            if (strcmp(argv[i], "native") == 0)
                ch_opts.protocol = ARPC_PROTOCOL_NATIVE;
            else if (strcmp(argv[i], "grpc") == 0)
                ch_opts.protocol = ARPC_PROTOCOL_GRPC;
            else
                usage();
        } else if (strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc) {
            char *end;
            timeout_ms = strtoll(argv[++i], &end, 10);
            if (*end != '\0' || timeout_ms <= 0)
                usage();
        } else if (strcmp(argv[i], "--metadata") == 0 && i + 1 < argc) {
            if (md_count == MAX_METADATA)
                usage();
            parse_metadata(argv[++i], &md[md_count++]);
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
    arpc_metadata *rsp_md = NULL;
    int rc = arpc_runtime_create(&rt_opts, &rt);
    if (rc == 0)
        rc = arpc_channel_create(rt, target, &ch_opts, &ch);
    if (rc == 0)
        rc = arpc_buf_create(&rsp);
    if (rc == 0)
        rc = arpc_metadata_create(&rsp_md);
    if (rc == 0) {
        arpc_call_opts opts;
        arpc_call_opts_init(&opts);
        opts.timeout_ms = timeout_ms;
        opts.metadata = md;
        opts.metadata_count = md_count;
        opts.response_metadata = rsp_md;
        rc = arpc_call(ch, method, payload, strlen(payload), &opts, rsp);
        if (rc >= 0)
            print_metadata(rsp_md);
    }
    if (rc == 0) {
        fwrite(arpc_buf_data(rsp), 1, arpc_buf_len(rsp), stdout);
        fputc('\n', stdout);
    } else if (ch_opts.protocol == ARPC_PROTOCOL_GRPC) {
        /* The gRPC code's name; the message the server sent, else ours. */
        const char *name = arpc_grpc_status_name(rc);
        if (rc > 0 || arpc_buf_len(rsp) > 0)
            fprintf(stderr, "error: %s: %.*s\n", name, (int)arpc_buf_len(rsp),
                    (const char *)arpc_buf_data(rsp));
        else
            fprintf(stderr, "error: %s: %s\n", name, arpc_strerror(rc));
    } else if (rc > 0) {
        fprintf(stderr, "error: APP_ERROR(%d): %.*s\n", rc, (int)arpc_buf_len(rsp),
                (const char *)arpc_buf_data(rsp));
    } else {
        fprintf(stderr, "error: %s: %s\n", arpc_err_name(rc), arpc_strerror(rc));
    }
    arpc_buf_destroy(rsp);
    arpc_metadata_destroy(rsp_md);
    arpc_channel_destroy(ch);
    arpc_runtime_destroy(rt);
    return rc == 0 ? 0 : 1;
}
