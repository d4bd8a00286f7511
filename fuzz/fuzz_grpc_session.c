/*
 * libFuzzer target for the gRPC HTTP/2 server session (src/proto/grpc/session.c on
 * nghttp2).  A fresh server session is fed the client preface, an empty SETTINGS, and then
 * the input, split into chunks whose sizes come from the input's first byte, flushing after
 * every chunk.  A "handler" answers every request at half-close (a message and trailers,
 * or UNIMPLEMENTED for other paths), so the answer paths run too.  "/a.B/S" is a stream
 * (arpc__grpc_session_stream: manual receive windows): each message is echoed at once and
 * consumed only when its first byte is even (others hold their window, so a peer's window
 * runs out and grant-ahead runs), answered with trailers at half-close.  CREDIT comes only
 * for open streams.  Properties: feed and
 * flush return 0, ARPC_EFRAME or ARPC_ENOMEM only; after an error the session is only
 * flushed and destroyed; events come in the documented order per stream (REQUEST before
 * MESSAGE and HALF_CLOSE, one CLOSE, nothing after it); no crash, leak or sanitizer report.
 * Seeds in corpus-grpc-session/ were written by fuzz/gen_grpc_session_seeds.py.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpc/buf.h>
#include <arpc/err.h>

#include "base/buf.h"
#include "fuzz_check.h"
#include "proto/grpc/session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_IDS 512

enum { ST_NONE, ST_OPEN, ST_CLOSED };

struct state {
    arpc__grpc_session *s;
    uint8_t st[MAX_IDS];  /* by stream id / 2, for small ids */
    bool stream[MAX_IDS]; /* a "/a.B/S" stream */
};

static uint8_t *slot(struct state *f, int32_t id)
{
    return id > 0 && id / 2 < MAX_IDS ? &f->st[id / 2] : NULL;
}

static void on_event(void *user, const arpc__grpc_event *ev)
{
    struct state *f = user;
    uint8_t *sl = slot(f, ev->stream_id);
    switch (ev->type) {
    case ARPC__GRPC_EV_REQUEST:
        CHECK(ev->path_len >= 2 && ev->path[0] == '/');
        if (sl) {
            CHECK(*sl == ST_NONE);
            *sl = ST_OPEN;
        }
        if (ev->path_len == 6 && memcmp(ev->path, "/a.B/S", 6) == 0) {
            CHECK(arpc__grpc_session_stream(f->s, ev->stream_id) == 0);
            if (sl)
                f->stream[sl - f->st] = true;
        } else if (ev->path_len != 6 || memcmp(ev->path, "/a.B/C", 6) != 0) {
            arpc__grpc_session_send_status(f->s, ev->stream_id, 12, "no", 2, NULL, 0);
        }
        break;
    case ARPC__GRPC_EV_MESSAGE:
        if (sl)
            CHECK(*sl == ST_OPEN);
        if (sl && f->stream[sl - f->st]) {
            (void)arpc__grpc_session_send_message(f->s, ev->stream_id, ev->data, ev->len);
            if (ev->len == 0 || ev->data[0] % 2 == 0)
                CHECK(arpc__grpc_session_consume(f->s, ev->stream_id, ev->len) != ARPC_EINVAL);
        }
        break;
    case ARPC__GRPC_EV_CREDIT:
        if (sl)
            CHECK(*sl == ST_OPEN && f->stream[sl - f->st]);
        break;
    case ARPC__GRPC_EV_HALF_CLOSE:
        if (sl)
            CHECK(*sl == ST_OPEN);
        if (sl && f->stream[sl - f->st]) {
            arpc__grpc_session_send_status(f->s, ev->stream_id, 0, NULL, 0, NULL, 0);
        } else {
            arpc__grpc_session_send_message(f->s, ev->stream_id, "answer", 6);
            arpc__grpc_session_send_status(f->s, ev->stream_id, 0, NULL, 0, NULL, 0);
        }
        break;
    case ARPC__GRPC_EV_CLOSE:
        if (sl) {
            CHECK(*sl == ST_OPEN);
            *sl = ST_CLOSED;
        }
        break;
    default:
        break;
    }
}

static const uint8_t prologue[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                                  "\x00\x00\x00\x04\x00\x00\x00\x00\x00";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct state f;
    memset(&f, 0, sizeof(f));
    arpc__grpc_session_opts opts = {
        .max_recv_msg = 4096, .max_concurrent_streams = 8, .stream_window = 2048};
    if (arpc__grpc_session_server_new(&opts, on_event, &f, &f.s) != 0)
        return 0;
    arpc_buf out;
    arpc__buf_init(&out);
    int rc = arpc__grpc_session_feed(f.s, prologue, sizeof(prologue) - 1);
    CHECK(rc == 0);
    size_t chunk = size ? (size_t)data[0] * 7 + 1 : 1;
    size_t off = size ? 1 : 0;
    while (off < size && rc == 0) {
        size_t n = size - off < chunk ? size - off : chunk;
        rc = arpc__grpc_session_feed(f.s, data + off, n);
        CHECK(rc == 0 || rc == ARPC_EFRAME || rc == ARPC_ENOMEM);
        int frc = arpc__grpc_session_flush(f.s, &out);
        CHECK(frc == 0 || frc == ARPC_ENOMEM);
        arpc__buf_clear(&out);
        off += n;
    }
    arpc__grpc_session_destroy(f.s);
    arpc__buf_fini(&out);
    return 0;
}
