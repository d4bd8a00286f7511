/*
 * Typed unary calls (include/arpc/protobuf.h): arpc_pb_call, arpc_pb_call_async.
 *
 * Design notes.  The request is packed straight into the call's own buffer
 * (arpc__call_start's payload `pack`), which is what a retry resends: no
 * temporary, no copy.  The answer is unpacked on the thread that completes
 * the call, straight from the connection's bytes the call is handed, so the
 * only copy of it is protobuf-c's unpack.
 *
 * Sync: arpc__call_wait runs take_answer on the completing loop thread while
 * the caller waits, so opts->arena (the caller's) is used by one thread at a
 * time; the wake-up publishes the message to the caller.
 *
 * Async: the method, the typed callback, its user_data and the arena travel
 * inside the call (arpc__call_ctx), so a typed async call allocates nothing
 * beyond an untyped one.  Without opts->arena the answer is borrowed for the
 * callback: it is unpacked into the loop's scratch arena, reset when the
 * callback returns.  A callback that, inside, completes another typed call on
 * the same loop (not a path arpc has today, but nothing forbids it) finds the
 * scratch arena busy and unpacks that answer on the heap instead.
 */
#include <stdbool.h>

#include <arpc/err.h>
#include <arpc/protobuf.h>

#include "base/alloc.h"
#include "protobuf/pb.h"
#include "rpc/channel.h"
#include "runtime/loop.h"

static void pack_request(const void *msg, uint8_t *out)
{
    protobuf_c_message_pack(msg, out);
}

/* @return 0, or ARPC_EINVAL: `m` is not a UNARY method taking `req`. */
static int check_unary(const arpc_pb_method *m, const ProtobufCMessage *req)
{
    if (m == NULL || req == NULL || m->kind != ARPC_PB_UNARY || req->descriptor != m->input)
        return ARPC_EINVAL;
    return 0;
}

static arpc__payload request_payload(const ProtobufCMessage *req)
{
    arpc__payload payload = {
        .data = req,
        .len = protobuf_c_message_get_packed_size(req),
        .pack = pack_request,
    };
    return payload;
}

/* ---- sync ------------------------------------------------------------------------------- */

typedef struct sync_answer {
    const ProtobufCMessageDescriptor *type;
    arpc_arena *arena;
    ProtobufCMessage *rsp;
} sync_answer;

static int take_answer(int status, const void *rsp, size_t rsp_len, void *arg)
{
    sync_answer *a = arg;
    if (status != 0)
        return status;
    return arpc__pb_unpack(a->type, a->arena, rsp, rsp_len, &a->rsp);
}

int arpc_pb_call(arpc_channel *ch, const arpc_pb_method *m, const ProtobufCMessage *req,
                 const arpc_call_opts *opts, ProtobufCMessage **rsp)
{
    if (rsp != NULL)
        *rsp = NULL;
    int rc = check_unary(m, req);
    if (rc < 0)
        return rc;
    sync_answer a = {.type = m->output, .arena = opts ? opts->arena : NULL, .rsp = NULL};
    arpc__payload payload = request_payload(req);
    rc = arpc__call_wait(ch, m->name, &payload, opts, take_answer, &a);
    if (rc == 0 && rsp != NULL)
        *rsp = a.rsp;
    else if (rc == 0 && a.arena == NULL)
        protobuf_c_message_free_unpacked(a.rsp, NULL); /* the caller dropped it */
    return rc;
}

/* ---- async ------------------------------------------------------------------------------ */

/* The loop's arena for answers borrowed by their callback (ARPC__LOCAL_PB_SCRATCH). */
typedef struct scratch {
    arpc_arena *arena;
    bool busy;
} scratch;

static void scratch_fini(void *value)
{
    scratch *s = value;
    arpc_arena_destroy(s->arena);
    arpc__free(s);
}

/* The calling loop's scratch arena, marked busy; NULL when it is busy already, or
 * cannot be made (the answer then goes to the heap). */
static scratch *scratch_take(void)
{
    arpc_loop *loop = arpc__loop_current();
    if (loop == NULL)
        return NULL;
    arpc__loop_local *local = &loop->locals[ARPC__LOCAL_PB_SCRATCH];
    scratch *s = local->value;
    if (s == NULL) {
        s = arpc__calloc(1, sizeof(*s));
        if (s == NULL)
            return NULL;
        if (arpc_arena_create(&s->arena) < 0) {
            arpc__free(s);
            return NULL;
        }
        local->value = s;
        local->fini = scratch_fini;
    }
    if (s->busy)
        return NULL;
    s->busy = true;
    return s;
}

static void scratch_give_back(scratch *s)
{
    arpc_arena_reset(s->arena);
    s->busy = false;
}

/* The context a typed async call keeps inside its call. */
enum { CTX_METHOD = 0, CTX_USER_DATA = 1, CTX_ARENA = 2 };

static void on_answer(int status, const void *rsp, size_t rsp_len, void *user_data)
{
    const arpc__call_ctx *ctx = user_data;
    const arpc_pb_method *m = ctx->p[CTX_METHOD];
    void *cb_user_data = (void *)ctx->p[CTX_USER_DATA];
    arpc_arena *arena = (arpc_arena *)ctx->p[CTX_ARENA];
    scratch *s = NULL;
    ProtobufCMessage *msg = NULL;
    if (status == 0) {
        if (arena == NULL && (s = scratch_take()) != NULL)
            arena = s->arena;
        status = arpc__pb_unpack(m->output, arena, rsp, rsp_len, &msg);
    }
    m->complete(ctx->fn, status, msg, cb_user_data);
    if (s != NULL)
        scratch_give_back(s);
    else if (msg != NULL && arena == NULL)
        protobuf_c_message_free_unpacked(msg, NULL);
}

int arpc_pb_call_async(arpc_channel *ch, const arpc_pb_method *m, const ProtobufCMessage *req,
                       const arpc_call_opts *opts, arpc_pb_fn cb, void *user_data)
{
    int rc = check_unary(m, req);
    if (rc < 0)
        return rc;
    if (cb == NULL || m->complete == NULL)
        return ARPC_EINVAL;
    arpc__call_ctx ctx = {.fn = cb};
    ctx.p[CTX_METHOD] = m;
    ctx.p[CTX_USER_DATA] = user_data;
    ctx.p[CTX_ARENA] = opts ? opts->arena : NULL;
    arpc__payload payload = request_payload(req);
    return arpc__call_start(ch, m->name, &payload, opts, on_answer, NULL, &ctx);
}
