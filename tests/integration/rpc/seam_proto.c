#include "seam_proto.h"

#include <stdlib.h>
#include <string.h>

#include <arpc/err.h>

#include "base/buf.h"

#define SEAM_MAGIC  0xA7
#define SEAM_HEADER 40

enum {
    T_REQUEST = 1,
    T_RESPONSE,
    T_PING,
    T_PONG,
    T_GOAWAY,
    T_CANCEL,
    T_REFUSED,
    T_STREAM = 10, /* + arpc__stream_frame */
};

typedef struct seam_session {
    arpc__proto_session base;
    arpc__proto_config cfg;
} seam_session;

typedef struct seam_header {
    uint8_t type;
    int32_t status;
    uint64_t id;
    int64_t timeout_ns;
    uint32_t method_len, md_count, md_len, payload_len;
} seam_header;

static void put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static int append_frame(arpc_buf *out, uint8_t type, const arpc__msg *msg)
{
    uint8_t h[SEAM_HEADER] = {SEAM_MAGIC, type};
    put32(h + 4, (uint32_t)msg->status);
    put64(h + 8, msg->id);
    put64(h + 16, (uint64_t)msg->timeout_ns);
    put32(h + 24, (uint32_t)msg->method_len);
    put32(h + 28, msg->md.count);
    put32(h + 32, msg->md.len);
    put32(h + 36, (uint32_t)msg->payload_len);
    size_t before = out->len;
    int rc = arpc__buf_append(out, h, sizeof(h));
    if (rc == 0 && msg->method_len > 0)
        rc = arpc__buf_append(out, msg->method, msg->method_len);
    if (rc == 0 && msg->md.len > 0)
        rc = arpc__buf_append(out, msg->md.data, msg->md.len);
    if (rc == 0 && msg->payload_len > 0)
        rc = arpc__buf_append(out, msg->payload, msg->payload_len);
    if (rc < 0)
        out->len = before;
    return rc;
}

static int append_limits(arpc_buf *out, uint8_t type, uint64_t id, const arpc__proto_limits *l)
{
    uint8_t body[16];
    put32(body, l->max_message);
    put32(body + 4, l->max_in_flight);
    put32(body + 8, l->streams ? 1 : 0);
    put32(body + 12, l->stream_window);
    arpc__msg msg = {.id = id, .payload = body, .payload_len = sizeof(body)};
    return append_frame(out, type, &msg);
}

static arpc__proto_limits read_limits(const uint8_t *body)
{
    arpc__proto_limits l = {.max_message = get32(body),
                            .max_in_flight = get32(body + 4),
                            .metadata = true,
                            .streams = get32(body + 8) != 0,
                            .stream_window = get32(body + 12)};
    return l;
}

static int seam_detect(const uint8_t *data, size_t len)
{
    return len == 0                ? ARPC__DETECT_MORE
           : data[0] == SEAM_MAGIC ? ARPC__DETECT_YES
                                   : ARPC__DETECT_NO;
}

static int seam_create(const arpc__proto_config *cfg, arpc__proto_session **out)
{
    seam_session *ss = calloc(1, sizeof(*ss));
    if (ss == NULL)
        return ARPC_ENOMEM;
    ss->base.ops = &seam_proto;
    ss->cfg = *cfg;
    *out = &ss->base;
    return 0;
}

static void seam_destroy(arpc__proto_session *s)
{
    free(s);
}

static int seam_event(seam_session *ss, const seam_header *h, const uint8_t *body, arpc_buf *out)
{
    const arpc__proto_events *ev = ss->cfg.events;
    void *owner = ss->cfg.owner;
    bool server = ss->cfg.side == ARPC__PROTO_SERVER;
    arpc__msg msg = {
        .id = h->id,
        .status = h->status,
        .timeout_ns = h->timeout_ns,
        .method = (const char *)body,
        .method_len = h->method_len,
        .md = {.data = body + h->method_len, .len = h->md_len, .count = h->md_count},
        .payload = body + h->method_len + h->md_len,
        .payload_len = h->payload_len,
    };
    switch (h->type) {
    case T_REQUEST:
        return server ? ev->on_request(owner, &msg) : ARPC_EFRAME;
    case T_RESPONSE:
        return server ? ARPC_EFRAME : ev->on_response(owner, &msg);
    case T_PING: {
        if (server && h->payload_len == 16 && ev->on_peer_limits != NULL) {
            arpc__proto_limits peer = read_limits(msg.payload);
            ev->on_peer_limits(owner, &peer);
        }
        int rc = server ? append_limits(out, T_PONG, h->id, &ss->cfg.limits)
                        : append_frame(out, T_PONG, &(arpc__msg){.id = h->id});
        if (rc == 0 && ev->on_ping != NULL)
            ev->on_ping(owner);
        return rc;
    }
    case T_PONG:
        if (server) {
            if (ev->on_ping != NULL)
                ev->on_ping(owner); /* the answer to a heartbeat: any byte is life */
            return 0;
        }
        if (h->payload_len == 16) {
            arpc__proto_limits peer = read_limits(msg.payload);
            ev->on_pong(owner, h->id, &peer);
        } else {
            ev->on_pong(owner, h->id, NULL);
        }
        return 0;
    case T_GOAWAY:
        if (!server)
            ev->on_goaway(owner, h->id, h->status);
        return 0;
    case T_CANCEL:
        if (server && ev->on_cancel != NULL)
            ev->on_cancel(owner, h->id);
        return 0;
    default:
        break;
    }
    if (h->type <= T_STREAM || h->type > T_STREAM + ARPC__STREAM_CREDIT || ev->on_stream == NULL)
        return ARPC_EFRAME;
    arpc__stream_frame frame = (arpc__stream_frame)(h->type - T_STREAM);
    if (frame == ARPC__STREAM_CREDIT) {
        msg.payload = NULL;
        msg.payload_len = (size_t)h->timeout_ns;
        msg.timeout_ns = 0;
    }
    return ev->on_stream(owner, frame, &msg);
}

static int64_t seam_feed(arpc__proto_session *s, const uint8_t *data, size_t len, arpc_buf *out)
{
    seam_session *ss = (seam_session *)s;
    size_t off = 0;
    while (len - off >= SEAM_HEADER) {
        if (arpc__proto_input_waits(&ss->cfg, out))
            break;
        const uint8_t *p = data + off;
        if (p[0] != SEAM_MAGIC)
            return ARPC_EFRAME;
        seam_header h = {.type = p[1],
                         .status = (int32_t)get32(p + 4),
                         .id = get64(p + 8),
                         .timeout_ns = (int64_t)get64(p + 16),
                         .method_len = get32(p + 24),
                         .md_count = get32(p + 28),
                         .md_len = get32(p + 32),
                         .payload_len = get32(p + 36)};
        uint64_t body = (uint64_t)h.method_len + h.md_len + h.payload_len;
        if (body > 64u * 1024 * 1024)
            return ARPC_ETOOBIG;
        if (len - off < SEAM_HEADER + body)
            break;
        ss->base.messages_in++;
        int rc = seam_event(ss, &h, p + SEAM_HEADER, out);
        off += SEAM_HEADER + (size_t)body;
        if (rc < 0)
            return rc;
    }
    return (int64_t)off;
}

static bool seam_mid_message(const arpc__proto_session *s)
{
    (void)s;
    return false;
}

static uint64_t seam_wire_size(const arpc__msg *msg, bool request)
{
    return SEAM_HEADER + (request ? msg->method_len : 0) + msg->md.len + msg->payload_len;
}

static int seam_send_request(arpc__proto_session *s, arpc_buf *out, const arpc__msg *msg)
{
    return append_frame(out, T_REQUEST, msg);
}

static int seam_send_response(arpc__proto_session *s, arpc_buf *out, const arpc__msg *msg)
{
    arpc__msg m = *msg;
    m.method_len = 0;
    return append_frame(out, T_RESPONSE, &m);
}

static int seam_send_ping(arpc__proto_session *s, arpc_buf *out, uint64_t id, bool announce)
{
    seam_session *ss = (seam_session *)s;
    if (announce)
        return append_limits(out, T_PING, id, &ss->cfg.limits);
    return append_frame(out, T_PING, &(arpc__msg){.id = id});
}

static int seam_send_goaway(arpc__proto_session *s, arpc_buf *out, uint64_t last_id, int reason)
{
    return append_frame(out, T_GOAWAY, &(arpc__msg){.id = last_id, .status = reason});
}

static int seam_send_cancel(arpc__proto_session *s, arpc_buf *out, uint64_t id)
{
    return append_frame(out, T_CANCEL, &(arpc__msg){.id = id});
}

static int seam_send_stream(arpc__proto_session *s, arpc_buf *out, arpc__stream_frame frame,
                            const arpc__msg *msg)
{
    arpc__msg m = *msg;
    if (frame != ARPC__STREAM_OPEN)
        m.method_len = 0;
    if (frame == ARPC__STREAM_CREDIT) {
        m.timeout_ns = (int64_t)msg->payload_len;
        m.payload = NULL;
        m.payload_len = 0;
    }
    return append_frame(out, (uint8_t)(T_STREAM + frame), &m);
}

const arpc__proto_ops seam_proto = {
    .name = "seam",
    .caps = ARPC__PROTO_MULTIPLEXED | ARPC__PROTO_PING | ARPC__PROTO_GOAWAY | ARPC__PROTO_METADATA |
            ARPC__PROTO_STREAMS,
    .overhead = SEAM_HEADER,
    .detect_len = 1,
    .detect = seam_detect,
    .create = seam_create,
    .destroy = seam_destroy,
    .feed = seam_feed,
    .mid_message = seam_mid_message,
    .wire_size = seam_wire_size,
    .send_request = seam_send_request,
    .send_response = seam_send_response,
    .send_ping = seam_send_ping,
    .send_goaway = seam_send_goaway,
    .send_cancel = seam_send_cancel,
    .send_stream = seam_send_stream,
};
