/*
 * Design notes: the message level of Thrift's framed binary protocol (codec.h).  Stateless:
 * the header decoder says "need more" (0) for any prefix, so a caller may feed it split at
 * any byte, and checks each field the moment its bytes are there.
 *
 * Statuses travel as TApplicationExceptions (docs/thrift.md section 5): an arpc error code
 * as its type where Thrift has one (UNKNOWN_METHOD, PROTOCOL_ERROR) and INTERNAL_ERROR
 * otherwise, with the code's name leading the message ("ESHUTDOWN: ..."), and an
 * application code as "<code>: <text>", so an arpc client reads back the status an arpc
 * server sent while a Thrift client reads a message that says what happened.
 */
#include <stdio.h>
#include <string.h>

#include <arpc/err.h>
#include <arpc/thrift.h>

#include "base/buf.h"
#include "proto/thrift/codec.h"

static uint32_t be32(const uint8_t *p)
{
    return arpc__thrift_frame_len(p);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* The name at data[off], 4-byte length first.  @return its end, 0 (more), or an error. */
static int64_t read_name(const uint8_t *data, size_t len, size_t off, size_t max_name,
                         arpc__thrift_header *h)
{
    if (len < off + 4)
        return 0;
    int32_t n = (int32_t)be32(data + off);
    if (n < 0 || (size_t)n > max_name)
        return ARPC_EFRAME;
    h->name_len = (uint32_t)n;
    h->name = (const char *)data + off + 4;
    return len < off + 4 + (size_t)n ? 0 : (int64_t)(off + 4 + (size_t)n);
}

static bool valid_type(unsigned t)
{
    return t >= ARPC__THRIFT_CALL && t <= ARPC__THRIFT_ONEWAY;
}

int64_t arpc__thrift_header_decode(const uint8_t *data, size_t len, size_t max_name,
                                   arpc__thrift_header *h)
{
    if (len < 1)
        return 0;
    h->strict = (data[0] & 0x80) != 0;
    if (h->strict) {
        /* The version word comes first: 0x8001, a zero byte, the type. */
        if (len >= 2 && (data[0] != 0x80 || data[1] != 0x01))
            return ARPC_EVERSION;
        if (len < 4)
            return 0;
        if (data[2] != 0 || !valid_type(data[3]))
            return ARPC_EFRAME;
        h->type = data[3];
        int64_t end = read_name(data, len, 4, max_name, h);
        if (end <= 0)
            return end;
        if (len < (size_t)end + 4)
            return 0;
        h->seqid = (int32_t)be32(data + end);
        return end + 4;
    }
    int64_t end = read_name(data, len, 0, max_name, h);
    if (end <= 0)
        return end;
    if (len < (size_t)end + 1)
        return 0;
    if (!valid_type(data[end]))
        return ARPC_EFRAME;
    h->type = data[end];
    if (len < (size_t)end + 5)
        return 0;
    h->seqid = (int32_t)be32(data + end + 1);
    return end + 5;
}

void arpc__thrift_header_write(uint8_t *p, const char *name, uint32_t name_len, uint8_t type,
                               int32_t seqid)
{
    put_be32(p, ARPC__THRIFT_VERSION_1 | type);
    put_be32(p + 4, name_len);
    if (name_len > 0)
        memcpy(p + 8, name, name_len);
    put_be32(p + 8 + name_len, (uint32_t)seqid);
}

int arpc__thrift_encode(arpc_buf *out, const char *name, uint32_t name_len, uint8_t type,
                        int32_t seqid, const void *body, size_t body_len)
{
    size_t head = arpc__thrift_header_size(name_len);
    if (body_len > INT32_MAX - head)
        return ARPC_EINVAL;
    size_t frame = head + body_len;
    int rc = arpc__buf_ensure(out, ARPC__THRIFT_FRAME_HEADER + frame);
    if (rc < 0)
        return rc;
    uint8_t *p = arpc__buf_tail(out);
    put_be32(p, (uint32_t)frame);
    arpc__thrift_header_write(p + 4, name, name_len, type, seqid);
    if (body_len > 0)
        memcpy(p + 4 + head, body, body_len);
    out->len += ARPC__THRIFT_FRAME_HEADER + frame;
    return 0;
}

int arpc__thrift_appex_write(arpc_buf *out, int32_t type, const char *message, size_t len)
{
    arpc_thrift_writer w;
    arpc_thrift_writer_init(&w, out);
    arpc_thrift_write_field(&w, ARPC_THRIFT_STRING, 1);
    arpc_thrift_write_binary(&w, message, len);
    arpc_thrift_write_field(&w, ARPC_THRIFT_I32, 2);
    arpc_thrift_write_i32(&w, type);
    arpc_thrift_write_stop(&w);
    return w.err;
}

int arpc__thrift_appex_read(const uint8_t *data, size_t len, arpc__thrift_appex *ex)
{
    memset(ex, 0, sizeof(*ex));
    arpc_thrift_reader r;
    arpc_thrift_reader_init(&r, data, len);
    arpc_thrift_type type;
    int16_t id;
    while (arpc_thrift_read_field(&r, &type, &id)) {
        if (id == 1 && type == ARPC_THRIFT_STRING)
            ex->message = arpc_thrift_read_binary(&r, &ex->message_len);
        else if (id == 2 && type == ARPC_THRIFT_I32)
            ex->type = arpc_thrift_read_i32(&r);
        else
            arpc_thrift_skip(&r, type);
    }
    if (r.err != 0) {
        memset(ex, 0, sizeof(*ex));
        return r.err;
    }
    return 0;
}

int32_t arpc__thrift_appex_type(int status)
{
    switch (status) {
    case ARPC_ENOMETHOD:
        return ARPC__THRIFT_APPEX_UNKNOWN_METHOD;
    case ARPC_EFRAME:
    case ARPC_EBADMSG:
    case ARPC_EINVAL:
    case ARPC_ETOOBIG:
    case ARPC_EMETADATA:
        return ARPC__THRIFT_APPEX_PROTOCOL_ERROR;
    default:
        return ARPC__THRIFT_APPEX_INTERNAL_ERROR;
    }
}

/* The arpc code whose name leads `msg` before ": ", or 0. */
static int code_by_name(const char *msg, size_t len)
{
    static const int codes[] = {
#define ARPC_THRIFT_CODE(name, value, text) ARPC_##name,
        ARPC_ERR_MAP(ARPC_THRIFT_CODE)
#undef ARPC_THRIFT_CODE
    };
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        const char *name = arpc_err_name(codes[i]);
        size_t n = strlen(name);
        if (len >= n + 2 && memcmp(msg, name, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ')
            return codes[i];
    }
    return 0;
}

/* An application code "<digits>: " leading `msg`, or 0. */
static int app_code(const char *msg, size_t len)
{
    int code = 0;
    size_t i = 0;
    while (i < len && i < 9 && msg[i] >= '0' && msg[i] <= '9')
        code = code * 10 + (msg[i++] - '0');
    if (i == 0 || i + 1 >= len || msg[i] != ':' || msg[i + 1] != ' ')
        return 0;
    return code;
}

int arpc__thrift_appex_status(const arpc__thrift_appex *ex)
{
    if (ex->type == ARPC__THRIFT_APPEX_UNKNOWN_METHOD)
        return ARPC_ENOMETHOD;
    int code = ex->message != NULL ? code_by_name(ex->message, ex->message_len) : 0;
    if (code == 0 && ex->message != NULL)
        code = app_code(ex->message, ex->message_len);
    if (code != 0)
        return code;
    if (ex->type == ARPC__THRIFT_APPEX_PROTOCOL_ERROR ||
        ex->type == ARPC__THRIFT_APPEX_INVALID_PROTOCOL ||
        ex->type == ARPC__THRIFT_APPEX_INVALID_MESSAGE_TYPE)
        return ARPC_EFRAME;
    return ARPC_EINTERNAL;
}
