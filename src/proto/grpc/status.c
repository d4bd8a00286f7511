/*
 * Design notes: the mapping between arpc statuses and gRPC status codes.
 *
 * docs/grpc.md is the table with the reason for every row; test_grpc_fields reads that
 * document and checks it against these functions, so the two cannot drift apart, and it
 * walks ARPC_ERR_MAP so that a new arpc error code must be given a row here and there.
 *
 * Towards gRPC every arpc_err has its row; a negative code outside the table (an errno
 * arpc does not name) is UNKNOWN.  Positive application codes 1..16 keep their number, so
 * a handler can answer NOT_FOUND by returning 5; larger ones are UNKNOWN.
 *
 * Back from gRPC a code becomes the arpc_err that tells the caller the same thing and
 * makes the channel act the same way, and otherwise the positive application code of the
 * same number.  No received status maps to ARPC_ESHUTDOWN: the channel retries that one as
 * "never ran", which a status trailer cannot promise (the protocol module reports streams
 * that never ran, from GOAWAY or REFUSED_STREAM, by itself).  Every code 0..16 survives
 * the round trip gRPC -> arpc -> gRPC; arpc -> gRPC -> arpc loses detail where several
 * arpc errors share a gRPC code.
 *
 * Threading: constant tables.
 */
#include <arpc/client.h>
#include <arpc/err.h>

#include "proto/grpc/wire.h"

static const char *const names[] = {
#define NAME(name, value) [value] = #name,
    ARPC__GRPC_STATUS_MAP(NAME)
#undef NAME
};

_Static_assert(sizeof(names) / sizeof(names[0]) == ARPC__GRPC_STATUS_COUNT, "17 codes");

const char *arpc__grpc_status_name(int code)
{
    if (code < 0 || code >= ARPC__GRPC_STATUS_COUNT)
        return names[ARPC__GRPC_UNKNOWN];
    return names[code];
}

struct err_row {
    int err;
    int code;
};

/* One row per arpc_err, in ARPC_ERR_MAP's order; docs/grpc.md gives the reasons. */
static const struct err_row err_rows[] = {
    {ARPC_ENOMEM, ARPC__GRPC_RESOURCE_EXHAUSTED},
    {ARPC_EINVAL, ARPC__GRPC_INVALID_ARGUMENT},
    {ARPC_EAGAIN, ARPC__GRPC_UNAVAILABLE},
    {ARPC_ETIMEDOUT, ARPC__GRPC_DEADLINE_EXCEEDED},
    {ARPC_ECONNREFUSED, ARPC__GRPC_UNAVAILABLE},
    {ARPC_ECONNRESET, ARPC__GRPC_UNAVAILABLE},
    {ARPC_ECANCELED, ARPC__GRPC_CANCELLED},
    {ARPC_EADDRINUSE, ARPC__GRPC_UNAVAILABLE},
    {ARPC_EMFILE, ARPC__GRPC_RESOURCE_EXHAUSTED},
    {ARPC_EPIPE, ARPC__GRPC_UNAVAILABLE},
    {ARPC_EFRAME, ARPC__GRPC_INTERNAL},
    {ARPC_ETOOBIG, ARPC__GRPC_RESOURCE_EXHAUSTED},
    {ARPC_ENOMETHOD, ARPC__GRPC_UNIMPLEMENTED},
    {ARPC_EOVERLOAD, ARPC__GRPC_RESOURCE_EXHAUSTED},
    {ARPC_ESHUTDOWN, ARPC__GRPC_UNAVAILABLE},
    {ARPC_ECLOSED, ARPC__GRPC_UNAVAILABLE},
    {ARPC_EVERSION, ARPC__GRPC_UNIMPLEMENTED},
    {ARPC_ENOENDPOINT, ARPC__GRPC_UNAVAILABLE},
    {ARPC_EHEARTBEAT, ARPC__GRPC_UNAVAILABLE},
    {ARPC_EINTERNAL, ARPC__GRPC_INTERNAL},
    {ARPC_ETOOMANYCONNS, ARPC__GRPC_UNAVAILABLE},
    {ARPC_EBADADDR, ARPC__GRPC_UNAVAILABLE},
    {ARPC_ENOTCORO, ARPC__GRPC_FAILED_PRECONDITION},
    {ARPC_ESTOPPED, ARPC__GRPC_UNAVAILABLE},
    {ARPC_EQUEUEFULL, ARPC__GRPC_RESOURCE_EXHAUSTED},
    {ARPC_EMETADATA, ARPC__GRPC_RESOURCE_EXHAUSTED},
    {ARPC_EBADMSG, ARPC__GRPC_INVALID_ARGUMENT},
    {ARPC_ETLS, ARPC__GRPC_UNAVAILABLE},
    {ARPC_ETLSUNTRUSTED, ARPC__GRPC_UNAVAILABLE},
    {ARPC_ETLSEXPIRED, ARPC__GRPC_UNAVAILABLE},
    {ARPC_ETLSHOST, ARPC__GRPC_UNAVAILABLE},
    {ARPC_ETLSPLAINTEXT, ARPC__GRPC_UNAVAILABLE},
    {ARPC_ETLSTIMEOUT, ARPC__GRPC_UNAVAILABLE},
    {ARPC_ETLSREFUSED, ARPC__GRPC_UNAVAILABLE},
};

int arpc__grpc_status_from_arpc(int status)
{
    if (status == 0)
        return ARPC__GRPC_OK;
    if (status > 0)
        return status < ARPC__GRPC_STATUS_COUNT ? status : ARPC__GRPC_UNKNOWN;
    for (size_t i = 0; i < sizeof(err_rows) / sizeof(err_rows[0]); i++)
        if (err_rows[i].err == status)
            return err_rows[i].code;
    return ARPC__GRPC_UNKNOWN;
}

int arpc__grpc_status_to_arpc(int code)
{
    switch (code) {
    case ARPC__GRPC_OK:
        return 0;
    case ARPC__GRPC_CANCELLED:
        return ARPC_ECANCELED;
    case ARPC__GRPC_DEADLINE_EXCEEDED:
        return ARPC_ETIMEDOUT;
    case ARPC__GRPC_RESOURCE_EXHAUSTED:
        return ARPC_EOVERLOAD;
    case ARPC__GRPC_UNIMPLEMENTED:
        return ARPC_ENOMETHOD;
    case ARPC__GRPC_INTERNAL:
        return ARPC_EINTERNAL;
    case ARPC__GRPC_UNAVAILABLE:
        return ARPC_ECLOSED;
    default:
        return code > 0 && code < ARPC__GRPC_STATUS_COUNT ? code : ARPC__GRPC_UNKNOWN;
    }
}

int arpc__grpc_status_parse(const char *s, size_t len, int *code)
{
    if (len < 1 || len > 3)
        return ARPC_EINVAL;
    int v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return ARPC_EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    *code = v;
    return 0;
}

const char *arpc_grpc_status_name(int status)
{
    return arpc__grpc_status_name(arpc__grpc_status_from_arpc(status));
}
