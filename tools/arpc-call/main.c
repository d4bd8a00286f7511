/*
 * arpc-call: one call from the command line.  Prints the answer's payload on
 * stdout; on failure prints "error: NAME: message" on stderr and exits 1
 * (2 for bad usage).  --metadata KEY=VALUE (repeatable) sends request
 * metadata; the answer's metadata, if any, is printed on stderr, one
 * "metadata: KEY: VALUE" line per entry ("-bin" values in hex).
 * --protocol grpc calls over gRPC (h2c): METHOD is the path
 * (/pkg.Service/Method, the leading '/' optional), PAYLOAD the message's
 * bytes as they are, and an error's NAME is the gRPC code's.
 * --protocol thrift calls over Thrift's framed binary protocol (docs/thrift.md):
 * PAYLOAD becomes the argument struct {1: binary PAYLOAD} (with --thrift-i32,
 * {1: i32 PAYLOAD}), as proto/arpc/echo.thrift's echo and sleep take it, and the
 * result struct's field 0 is printed (a string or binary as it is, an integer in
 * decimal); an error prints the TApplicationException's message.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpc/arpc.h>

static void usage(void)
{
    fprintf(stderr,
            "usage: arpc-call --target HOST:PORT [--protocol native|grpc|thrift] [--thrift-i32]\n"
            "                 [--timeout-ms N] [--metadata KEY=VALUE]... METHOD [PAYLOAD]\n"
            "                 [--tls-ca FILE] [--tls-cert FILE --tls-key FILE]\n"
            "                 [--tls-server-name NAME]\n"
            "  any --tls-* flag calls over TLS (docs/tls.md): the server's certificate must\n"
            "  chain to --tls-ca (default: the system's CAs) and name --tls-server-name\n"
            "  (default: the target's host); --tls-cert/--tls-key for mutual TLS\n");
    exit(2);
}

#define MAX_METADATA 64

/* The argument struct {1: binary text} or {1: i32 text}.  @return 0 or an arpc_err. */
static int thrift_args(arpc_buf *out, const char *text, bool as_i32)
{
    arpc_thrift_writer w;
    arpc_thrift_writer_init(&w, out);
    if (as_i32) {
        char *end;
        long v = strtol(text, &end, 10);
        if (*text == '\0' || *end != '\0' || v < INT32_MIN || v > INT32_MAX)
            usage();
        arpc_thrift_write_field(&w, ARPC_THRIFT_I32, 1);
        arpc_thrift_write_i32(&w, (int32_t)v);
    } else {
        arpc_thrift_write_field(&w, ARPC_THRIFT_STRING, 1);
        arpc_thrift_write_string(&w, text);
    }
    arpc_thrift_write_stop(&w);
    return w.err;
}

/* Prints field 0 of a result struct.  @return 0, or ARPC_EFRAME (no such field: the
 * struct held a declared exception, or did not parse). */
static int thrift_print_result(const arpc_buf *rsp)
{
    arpc_thrift_reader r;
    arpc_thrift_reader_init(&r, arpc_buf_data(rsp), arpc_buf_len(rsp));
    arpc_thrift_type type;
    int16_t id;
    while (arpc_thrift_read_field(&r, &type, &id)) {
        if (id != 0) {
            fprintf(stderr, "error: the result holds field %d (a declared exception)\n", id);
            return ARPC_EFRAME;
        }
        size_t len;
        const void *data;
        switch (type) {
        case ARPC_THRIFT_STRING:
            data = arpc_thrift_read_binary(&r, &len);
            fwrite(data, 1, len, stdout);
            break;
        case ARPC_THRIFT_I32:
            printf("%d", (int)arpc_thrift_read_i32(&r));
            break;
        case ARPC_THRIFT_I64:
            printf("%lld", (long long)arpc_thrift_read_i64(&r));
            break;
        default:
            printf("(a value of type %d)", (int)type);
            arpc_thrift_skip(&r, type);
        }
        fputc('\n', stdout);
        return r.err;
    }
    if (r.err == 0)
        fputc('\n', stdout); /* a void method's empty result */
    return r.err;
}

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
    bool thrift_i32 = false;
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
            else if (strcmp(argv[i], "thrift") == 0)
                ch_opts.protocol = ARPC_PROTOCOL_THRIFT;
            else
                usage();
        } else if (strcmp(argv[i], "--thrift-i32") == 0) {
            thrift_i32 = true;
        } else if (strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc) {
            char *end;
            timeout_ms = strtoll(argv[++i], &end, 10);
            if (*end != '\0' || timeout_ms <= 0)
                usage();
        } else if (strcmp(argv[i], "--tls-ca") == 0 && i + 1 < argc) {
            ch_opts.tls.enabled = true;
            ch_opts.tls.ca_file = argv[++i];
        } else if (strcmp(argv[i], "--tls-cert") == 0 && i + 1 < argc) {
            ch_opts.tls.enabled = true;
            ch_opts.tls.cert_file = argv[++i];
        } else if (strcmp(argv[i], "--tls-key") == 0 && i + 1 < argc) {
            ch_opts.tls.enabled = true;
            ch_opts.tls.key_file = argv[++i];
        } else if (strcmp(argv[i], "--tls-server-name") == 0 && i + 1 < argc) {
            ch_opts.tls.enabled = true;
            ch_opts.tls.server_name = argv[++i];
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
    if ((ch_opts.tls.cert_file == NULL) != (ch_opts.tls.key_file == NULL))
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
    arpc_buf *args = NULL;
    size_t payload_len = strlen(payload);
    if (rc == 0 && ch_opts.protocol == ARPC_PROTOCOL_THRIFT) {
        rc = arpc_buf_create(&args);
        if (rc == 0)
            rc = thrift_args(args, payload, thrift_i32);
        if (rc == 0) {
            payload = arpc_buf_data(args);
            payload_len = arpc_buf_len(args);
        }
    }
    if (rc == 0) {
        arpc_call_opts opts;
        arpc_call_opts_init(&opts);
        opts.timeout_ms = timeout_ms;
        opts.metadata = md;
        opts.metadata_count = md_count;
        opts.response_metadata = rsp_md;
        rc = arpc_call(ch, method, payload, payload_len, &opts, rsp);
        if (rc >= 0)
            print_metadata(rsp_md);
    }
    if (rc == 0 && ch_opts.protocol == ARPC_PROTOCOL_THRIFT) {
        rc = thrift_print_result(rsp);
    } else if (rc == 0) {
        fwrite(arpc_buf_data(rsp), 1, arpc_buf_len(rsp), stdout);
        fputc('\n', stdout);
    } else if (ch_opts.protocol == ARPC_PROTOCOL_THRIFT && arpc_buf_len(rsp) > 0) {
        fprintf(stderr, "error: %s: %.*s\n", arpc_err_name(rc), (int)arpc_buf_len(rsp),
                (const char *)arpc_buf_data(rsp));
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
    arpc_buf_destroy(args);
    arpc_metadata_destroy(rsp_md);
    arpc_channel_destroy(ch);
    arpc_runtime_destroy(rt);
    return rc == 0 ? 0 : 1;
}
