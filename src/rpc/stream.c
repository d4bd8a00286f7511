/*
 * Design notes (docs/streams.md is the user's view).
 *
 * A stream lives on its connection's loop: its queue, its credit, its state and its
 * waiting operations are touched there only.  A public function called elsewhere hands
 * its operation to that loop through the loop's inbox, in a task node the stream holds
 * (one per kind of operation: a stream allows one outstanding read, one write and one
 * finish, so nothing is allocated), and the waiting forms wait on an arpc_event in the
 * caller's frame: a coroutine parks, a plain thread blocks.  That costs an inbox push and
 * an event signal per operation from another thread, and an event signal per operation
 * that waits on the loop itself; an operation that can complete at once on its loop
 * completes inline.
 *
 * Flow control: `credit` starts at the peer's window and goes down by each message
 * written; a write waits while it is <= 0, so a message larger than the window still goes,
 * alone.  The reader queues what arrives (at most the window it granted plus one
 * message: a peer that sends more breaks the rule and its stream fails with ARPC_EFRAME)
 * and returns credit as the application reads.
 *
 * Completion: everything that ends a stream goes through stream_end(), once (`ended`):
 * an END from the server, the handler's return, a cancel from either side, the deadline,
 * a lost connection, a local failure.  It tells the transport (which takes the stream off
 * its connection and, for a local end, tells the peer), then completes every waiting
 * operation with the final status.  A peer's END leaves the queued messages readable
 * before its status; a local end drops them.
 */
#include "rpc/stream.h"

#include <string.h>

#include <arpc/err.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "rpc/metadata.h"
#include "runtime/coro.h"

struct arpc__stream_sync {
    arpc_event ev;
    int status;
    arpc_buf *msg; /* read: where the message goes */
    arpc_buf *err; /* finish: where an error message goes */
};

arpc_stream *arpc__stream_new(const arpc__stream_transport *tp, arpc_loop *loop, bool server,
                              uint32_t window)
{
    arpc_stream *st = arpc__calloc(1, sizeof(*st));
    if (st == NULL)
        return NULL;
    st->tp = tp;
    st->loop = loop;
    st->server = server;
    st->window = window;
    atomic_init(&st->refs, 1);
    arpc__list_init(&st->queue);
    arpc__list_init(&st->link);
    arpc__buf_init(&st->error_message);
    arpc__buf_init(&st->open_data);
    for (int k = 0; k < ARPC__STREAM_OPS; k++)
        arpc__buf_init(&st->ops[k].copy);
    return st;
}

static void drop_queue(arpc_stream *st)
{
    arpc__list *node;
    while ((node = arpc__list_pop_front(&st->queue)) != NULL)
        arpc__free(arpc__container_of(node, arpc__stream_msg, link));
    st->queued_bytes = 0;
}

static void free_task(void *st, void *unused)
{
    (void)unused;
    arpc__stream_free(st);
}

void arpc__stream_release(arpc_stream *st)
{
    /* An operation the handler started just before returning may still be in the inbox
     * (write_async, then return): it runs first, finds the stream ended and completes. */
    arpc__task_set(&st->destroy_task, free_task, st, NULL);
    arpc__loop_post_or_run(st->loop, &st->destroy_task);
}

void arpc__stream_free(arpc_stream *st)
{
    if (st == NULL)
        return;
    drop_queue(st);
    arpc__buf_fini(&st->error_message);
    arpc__buf_fini(&st->open_data);
    for (int k = 0; k < ARPC__STREAM_OPS; k++)
        arpc__buf_fini(&st->ops[k].copy);
    arpc__free(st);
}

/* ---- completing operations (loop thread) -------------------------------------------- */

/* Completes the operation of `kind` with `status` (and, for a read, the message). */
static void op_complete(arpc_stream *st, int kind, int status, const void *msg, size_t len)
{
    arpc__stream_op *op = &st->ops[kind];
    op->waiting = false;
    arpc__stream_sync *sync = op->sync;
    if (sync != NULL) {
        if (kind == ARPC__STREAM_OP_FINISH && sync->err != NULL && status != 0 &&
            st->error_message.len > 0)
            (void)arpc__buf_append(sync->err, arpc__buf_head(&st->error_message),
                                   st->error_message.len);
        sync->status = status;
        op->sync = NULL;
        atomic_store_explicit(&op->busy, false, memory_order_release);
        /* The waiter may return (and free `sync`) as soon as this signals. */
        arpc_event_signal(&sync->ev);
        return;
    }
    void *user_data = op->user_data;
    if (kind == ARPC__STREAM_OP_READ) {
        arpc_stream_read_cb cb = op->read_cb;
        atomic_store_explicit(&op->busy, false, memory_order_release);
        cb(status, msg, len, user_data);
    } else {
        arpc_stream_done_cb cb = op->done_cb;
        arpc__buf_clear(&op->copy);
        atomic_store_explicit(&op->busy, false, memory_order_release);
        cb(status, user_data);
    }
}

/* What a read, write or finish of an ended stream returns. */
static int end_result(const arpc_stream *st)
{
    return st->end_status == 0 ? ARPC_EEOS : st->end_status;
}

/* Gives `len` bytes of window back to the peer: the application has them. */
static void credit_back(arpc_stream *st, size_t len)
{
    st->unacked -= len < st->unacked ? len : st->unacked;
    if (st->ended || !st->opened || len == 0)
        return;
    arpc__msg msg = {.id = st->id, .payload_len = len};
    (void)st->tp->send(st, ARPC__STREAM_CREDIT, &msg); /* a lost connection ends it anyway */
}

static void stream_end(arpc_stream *st, int status, bool tell, bool drop);
static void fail_local(arpc_stream *st, int err);

static bool read_try(arpc_stream *st)
{
    arpc__list *node = arpc__list_pop_front(&st->queue);
    if (node == NULL) {
        if (st->ended)
            op_complete(st, ARPC__STREAM_OP_READ, end_result(st), NULL, 0);
        else if (st->peer_closed)
            op_complete(st, ARPC__STREAM_OP_READ, ARPC_EEOS, NULL, 0);
        else
            return false;
        return true;
    }
    arpc__stream_msg *m = arpc__container_of(node, arpc__stream_msg, link);
    st->queued_bytes -= m->len;
    credit_back(st, m->len);
    arpc__stream_sync *sync = st->ops[ARPC__STREAM_OP_READ].sync;
    int status = 0;
    if (sync != NULL && sync->msg != NULL && arpc__buf_append(sync->msg, m->data, m->len) < 0)
        status = ARPC_ENOMEM;
    op_complete(st, ARPC__STREAM_OP_READ, status, m->data, m->len);
    arpc__free(m);
    if (status < 0)
        fail_local(st, status);
    return true;
}

/* The client half-closes once no write is ahead of the half-close. */
static void half_close_maybe(arpc_stream *st)
{
    if (st->server || !st->send_closed || st->half_close_sent || !st->opened || st->ended ||
        st->ops[ARPC__STREAM_OP_WRITE].waiting)
        return;
    st->half_close_sent = true;
    arpc__msg msg = {.id = st->id};
    (void)st->tp->send(st, ARPC__STREAM_HALF_CLOSE, &msg);
}

static bool write_try(arpc_stream *st)
{
    arpc__stream_op *op = &st->ops[ARPC__STREAM_OP_WRITE];
    if (st->ended) {
        op_complete(st, ARPC__STREAM_OP_WRITE, end_result(st), NULL, 0);
        return true;
    }
    if (!st->opened || st->credit <= 0)
        return false;
    arpc__msg msg = {.id = st->id, .payload = op->data, .payload_len = op->len};
    int rc = st->tp->send(st, ARPC__STREAM_MESSAGE, &msg);
    if (rc < 0) {
        op_complete(st, ARPC__STREAM_OP_WRITE, rc, NULL, 0);
        stream_end(st, rc, true, true);
        return true;
    }
    st->credit -= (int64_t)op->len;
    st->sent_message = true;
    atomic_store_explicit(&st->write_suspended, false, memory_order_relaxed);
    if (st->unary)
        st->send_closed = true; /* the answer: a second write returns ARPC_EEOS */
    op_complete(st, ARPC__STREAM_OP_WRITE, 0, NULL, 0);
    return true;
}

/* Client: drops what was not read (credited back, so the server's writes go on to its
 * END), half-closes, and waits for the end. */
static bool finish_try(arpc_stream *st)
{
    if (!st->discard) {
        st->discard = true;
        arpc__list *node;
        while ((node = arpc__list_pop_front(&st->queue)) != NULL) {
            arpc__stream_msg *m = arpc__container_of(node, arpc__stream_msg, link);
            st->queued_bytes -= m->len;
            credit_back(st, m->len);
            arpc__free(m);
        }
    }
    if (!st->send_closed) {
        st->send_closed = true;
        atomic_store(&st->close_requested, true);
    }
    half_close_maybe(st);
    if (!st->ended)
        return false;
    op_complete(st, ARPC__STREAM_OP_FINISH, st->end_status, NULL, 0);
    return true;
}

static bool op_try(arpc_stream *st, int kind)
{
    switch (kind) {
    case ARPC__STREAM_OP_READ:
        return read_try(st);
    case ARPC__STREAM_OP_WRITE:
        return write_try(st);
    default:
        return finish_try(st);
    }
}

/* Retries the waiting operations after the stream's state changed. */
static void pump(arpc_stream *st)
{
    for (int k = 0; k < ARPC__STREAM_OPS; k++) {
        arpc__stream_op *op = &st->ops[k];
        if (!op->waiting)
            continue;
        op->waiting = false;
        if (!op_try(st, k))
            op->waiting = true;
    }
    half_close_maybe(st);
}

/* An operation arrives on the loop. */
static void op_start(arpc_stream *st, int kind)
{
    arpc__stream_op *op = &st->ops[kind];
    if (kind == ARPC__STREAM_OP_WRITE && st->send_closed && !st->ended) {
        /* After close_send, or after a unary stream's answer. */
        op_complete(st, kind, ARPC_EEOS, NULL, 0);
        return;
    }
    if (op_try(st, kind))
        return;
    if (kind == ARPC__STREAM_OP_WRITE && st->opened) {
        atomic_fetch_add_explicit(&st->write_waits, 1, memory_order_relaxed);
        atomic_store_explicit(&st->write_suspended, true, memory_order_relaxed);
    }
    op->waiting = true;
}

static void op_task(void *st, void *kind)
{
    op_start(st, (int)(intptr_t)kind);
}

/* ---- ending (loop thread) -------------------------------------------------------------- */

static void stream_end(arpc_stream *st, int status, bool tell, bool drop)
{
    if (st->ended)
        return;
    st->ended = true;
    st->end_status = status;
    if (drop)
        drop_queue(st);
    if (status != 0)
        atomic_store(&st->public_status, status);
    atomic_store(&st->public_ended, true);
    if (st->error_message.len > 0 && arpc__buf_ensure(&st->error_message, 1) == 0)
        *arpc__buf_tail(&st->error_message) = '\0'; /* arpc_stream_error_message's C string */
    st->tp->ended(st, status, tell);
    pump(st);
}

void arpc__stream_fail(arpc_stream *st, int err, bool tell)
{
    stream_end(st, err, tell, true);
}

void arpc__stream_handler_returned(arpc_stream *st, int status)
{
    stream_end(st, status, true, true);
}

/* ---- the transport's events (loop thread) --------------------------------------------- */

void arpc__stream_opened(arpc_stream *st, uint32_t credit, uint32_t peer_max_frame)
{
    st->opened = true;
    st->credit = credit;
    st->peer_max_frame = peer_max_frame;
    pump(st);
}

int arpc__stream_on_message(arpc_stream *st, const void *data, size_t len)
{
    if (st->ended)
        return 0;
    if (st->unacked >= st->window) {
        /* It had no credit left: more than the window we granted plus one message. */
        stream_end(st, ARPC_EFRAME, true, true);
        return 0;
    }
    st->unacked += len;
    if (st->discard) {
        credit_back(st, len);
        return 0;
    }
    arpc__stream_msg *m = arpc__malloc(sizeof(*m) + len);
    if (m == NULL) {
        stream_end(st, ARPC_ENOMEM, true, true);
        return 0;
    }
    m->len = len;
    if (len > 0)
        memcpy(m->data, data, len);
    arpc__list_push_back(&st->queue, &m->link);
    st->queued_bytes += len;
    if (st->queued_bytes > atomic_load_explicit(&st->peak_queued, memory_order_relaxed))
        atomic_store_explicit(&st->peak_queued, st->queued_bytes, memory_order_relaxed);
    pump(st);
    return 0;
}

void arpc__stream_on_half_close(arpc_stream *st)
{
    st->peer_closed = true;
    pump(st);
}

void arpc__stream_on_credit(arpc_stream *st, uint64_t bytes)
{
    st->credit += (int64_t)bytes;
    pump(st);
}

void arpc__stream_on_end(arpc_stream *st, int status, const void *msg, size_t len)
{
    if (st->ended)
        return;
    st->peer_closed = true;
    if (len > 0)
        (void)arpc__buf_append(&st->error_message, msg, len);
    stream_end(st, status, false, false);
}

int arpc__stream_md_add(arpc_metadata *dst, const arpc__md *src)
{
    if (dst == NULL || src == NULL || src->count == 0)
        return 0;
    if (arpc__buf_append(&dst->buf, src->data, src->len) < 0)
        return ARPC_ENOMEM;
    dst->md.data = arpc__buf_head(&dst->buf);
    dst->md.len += src->len;
    dst->md.count += src->count;
    return 0;
}

uint64_t arpc__stream_peak_queued(const arpc_stream *st)
{
    return atomic_load_explicit(&((arpc_stream *)st)->peak_queued, memory_order_relaxed);
}

uint64_t arpc__stream_write_waits(const arpc_stream *st)
{
    return atomic_load_explicit(&((arpc_stream *)st)->write_waits, memory_order_relaxed);
}

bool arpc__stream_write_suspended(const arpc_stream *st)
{
    return atomic_load_explicit(&((arpc_stream *)st)->write_suspended, memory_order_relaxed);
}

bool arpc__stream_close_requested(const arpc_stream *st)
{
    return atomic_load(&((arpc_stream *)st)->close_requested);
}

/* ---- the public functions (any thread) ------------------------------------------------- */

static bool op_claim(arpc_stream *st, int kind)
{
    bool expected = false;
    return atomic_compare_exchange_strong(&st->ops[kind].busy, &expected, true);
}

static void op_release(arpc_stream *st, int kind)
{
    st->ops[kind].sync = NULL;
    atomic_store(&st->ops[kind].busy, false);
}

/* The waiting form: runs the operation on the stream's loop and waits for its end. */
static int op_wait(arpc_stream *st, int kind, const void *data, size_t len, arpc_buf *msg,
                   arpc_buf *err)
{
    if (arpc__on_loop_outside_coro())
        return ARPC_ENOTCORO;
    if (!op_claim(st, kind))
        return ARPC_EINVAL;
    arpc__stream_sync sync;
    arpc_event_init(&sync.ev);
    sync.status = 0;
    sync.msg = msg;
    sync.err = err;
    arpc__stream_op *op = &st->ops[kind];
    op->sync = &sync;
    op->data = data;
    op->len = len;
    if (arpc__loop_current() == st->loop) {
        op_start(st, kind);
    } else {
        arpc__task_set(&op->task, op_task, st, (void *)(intptr_t)kind);
        if (arpc__loop_post(st->loop, &op->task) < 0) {
            op_release(st, kind);
            return ARPC_ESTOPPED;
        }
    }
    arpc_event_wait(&sync.ev, -1);
    return sync.status;
}

/* The callback form: always through the inbox, so the callback never runs inside the
 * call, even on the stream's own loop. */
static int op_async(arpc_stream *st, int kind, arpc_stream_done_cb done_cb,
                    arpc_stream_read_cb read_cb, void *user_data)
{
    arpc__stream_op *op = &st->ops[kind];
    op->sync = NULL;
    op->done_cb = done_cb;
    op->read_cb = read_cb;
    op->user_data = user_data;
    arpc__task_set(&op->task, op_task, st, (void *)(intptr_t)kind);
    if (arpc__loop_post(st->loop, &op->task) < 0) {
        op_release(st, kind);
        return ARPC_ESTOPPED;
    }
    return 0;
}

int arpc_stream_write(arpc_stream *st, const void *data, size_t len)
{
    if (st == NULL || (data == NULL && len > 0))
        return ARPC_EINVAL;
    return op_wait(st, ARPC__STREAM_OP_WRITE, data, len, NULL, NULL);
}

int arpc_stream_read(arpc_stream *st, arpc_buf *msg)
{
    if (st == NULL || msg == NULL)
        return ARPC_EINVAL;
    return op_wait(st, ARPC__STREAM_OP_READ, NULL, 0, msg, NULL);
}

int arpc_stream_finish(arpc_stream *st, arpc_buf *error_message)
{
    if (st == NULL || st->server)
        return ARPC_EINVAL;
    return op_wait(st, ARPC__STREAM_OP_FINISH, NULL, 0, NULL, error_message);
}

int arpc_stream_write_async(arpc_stream *st, const void *data, size_t len, arpc_stream_done_cb cb,
                            void *user_data)
{
    if (st == NULL || cb == NULL || (data == NULL && len > 0))
        return ARPC_EINVAL;
    if (!op_claim(st, ARPC__STREAM_OP_WRITE))
        return ARPC_EINVAL;
    arpc__stream_op *op = &st->ops[ARPC__STREAM_OP_WRITE];
    arpc__buf_clear(&op->copy);
    if (arpc__buf_append(&op->copy, data, len) < 0) {
        op_release(st, ARPC__STREAM_OP_WRITE);
        return ARPC_ENOMEM;
    }
    op->data = arpc__buf_head(&op->copy);
    op->len = len;
    return op_async(st, ARPC__STREAM_OP_WRITE, cb, NULL, user_data);
}

int arpc_stream_read_async(arpc_stream *st, arpc_stream_read_cb cb, void *user_data)
{
    if (st == NULL || cb == NULL)
        return ARPC_EINVAL;
    if (!op_claim(st, ARPC__STREAM_OP_READ))
        return ARPC_EINVAL;
    return op_async(st, ARPC__STREAM_OP_READ, NULL, cb, user_data);
}

int arpc_stream_finish_async(arpc_stream *st, arpc_stream_done_cb cb, void *user_data)
{
    if (st == NULL || cb == NULL || st->server)
        return ARPC_EINVAL;
    if (!op_claim(st, ARPC__STREAM_OP_FINISH))
        return ARPC_EINVAL;
    return op_async(st, ARPC__STREAM_OP_FINISH, cb, NULL, user_data);
}

static void close_now(void *st_arg, void *unused)
{
    (void)unused;
    arpc_stream *st = st_arg;
    if (st->ended || st->send_closed)
        return;
    st->send_closed = true;
    half_close_maybe(st);
}

int arpc_stream_close_send(arpc_stream *st)
{
    if (st == NULL || st->server)
        return ARPC_EINVAL;
    int failure = atomic_load(&st->public_status);
    if (failure != 0)
        return failure;
    if (atomic_exchange(&st->close_requested, true))
        return ARPC_EEOS;
    /* A stream the server ended with status 0 takes the half-close as a no-op: it may
     * come before the caller has read the end, which it must not turn into an error. */
    if (atomic_load(&st->public_ended))
        return 0;
    /* Inline on the stream's loop, unless a write_async is on its way through the
     * inbox: the half-close then goes through it too, behind that write. */
    if (arpc__loop_current() == st->loop && !atomic_load(&st->ops[ARPC__STREAM_OP_WRITE].busy)) {
        close_now(st, NULL);
        return 0;
    }
    arpc__task_set(&st->close_task, close_now, st, NULL);
    arpc__loop_post_or_run(st->loop, &st->close_task);
    return 0;
}

static void cancel_now(void *st_arg, void *unused)
{
    (void)unused;
    arpc__stream_fail(st_arg, ARPC_ECANCELED, true);
}

/* The stream fails with `err`, found on this side (a message that could not be
 * stored or parsed).  A stream the peer has ended well may still hold unread
 * messages: this failure replaces that end, so that every later operation
 * returns it (stream.h). */
static void fail_local(arpc_stream *st, int err)
{
    if (!st->ended) {
        stream_end(st, err, true, true);
    } else if (st->end_status == 0) {
        st->end_status = err;
        drop_queue(st);
        atomic_store(&st->public_status, err);
    }
}

static void abort_now(void *st_arg, void *err_arg)
{
    fail_local(st_arg, (int)(intptr_t)err_arg);
}

void arpc__stream_abort(arpc_stream *st, int err)
{
    if (arpc__loop_current() == st->loop) {
        abort_now(st, (void *)(intptr_t)err);
        return;
    }
    /* The cancel's task node: a cancel asked for already fails the stream too. */
    if (atomic_exchange(&st->cancel_requested, true))
        return;
    arpc__task_set(&st->cancel_task, abort_now, st, (void *)(intptr_t)err);
    arpc__loop_post_or_run(st->loop, &st->cancel_task);
}

void arpc_stream_cancel(arpc_stream *st)
{
    if (st == NULL || atomic_load(&st->public_ended) ||
        atomic_exchange(&st->cancel_requested, true))
        return;
    if (arpc__loop_current() == st->loop) {
        cancel_now(st, NULL);
        return;
    }
    arpc__task_set(&st->cancel_task, cancel_now, st, NULL);
    arpc__loop_post_or_run(st->loop, &st->cancel_task);
}

static void stream_unref(arpc_stream *st)
{
    if (atomic_fetch_sub_explicit(&st->refs, 1, memory_order_acq_rel) == 1)
        arpc__stream_free(st);
}

/* On the stream's loop: the parent's cancel, then the reference it held. */
static void parent_cancel_task(void *st_arg, void *unused)
{
    (void)unused;
    arpc_stream *st = st_arg;
    if (!atomic_exchange(&st->cancel_requested, true))
        arpc__stream_fail(st, ARPC_ECANCELED, true);
    stream_unref(st);
}

/* On the parent's loop (the node is unlinked already). */
static void on_parent_canceled(arpc__cancel_node *node)
{
    arpc_stream *st = arpc__container_of(node, arpc_stream, parent_node);
    atomic_fetch_add_explicit(&st->refs, 1, memory_order_relaxed);
    arpc__task_set(&st->parent_task, parent_cancel_task, st, NULL);
    arpc__loop_post_or_run(st->loop, &st->parent_task);
}

int arpc__stream_watch_parent(arpc_stream *st, arpc_request *parent)
{
    st->parent_loop = arpc__request_loop(parent);
    arpc__list_init(&st->parent_node.link);
    st->parent_node.fn = on_parent_canceled;
    int rc = arpc__request_watch(parent, &st->parent_node);
    if (rc < 0)
        st->parent_loop = NULL;
    return rc;
}

/* On the parent's loop: no cancel comes from it after this. */
static void parent_unwatch_task(void *st_arg, void *unused)
{
    (void)unused;
    arpc_stream *st = st_arg;
    arpc__request_unwatch(&st->parent_node);
    stream_unref(st);
}

static void destroy_now(void *st_arg, void *unused)
{
    (void)unused;
    arpc_stream *st = st_arg;
    arpc__stream_fail(st, ARPC_ECANCELED, true);
    if (st->parent_loop == NULL) {
        stream_unref(st);
        return;
    }
    /* The node is the parent loop's to unlink, and a cancel may be on its way here. */
    if (arpc__loop_current() == st->parent_loop) {
        parent_unwatch_task(st, NULL);
        return;
    }
    arpc__task_set(&st->destroy_task, parent_unwatch_task, st, NULL);
    arpc__loop_post_or_run(st->parent_loop, &st->destroy_task);
}

void arpc_stream_destroy(arpc_stream *st)
{
    if (st == NULL || st->server)
        return;
    if (arpc__loop_current() == st->loop) {
        destroy_now(st, NULL);
        return;
    }
    arpc__task_set(&st->destroy_task, destroy_now, st, NULL);
    arpc__loop_post_or_run(st->loop, &st->destroy_task);
}

arpc_request *arpc_stream_request(arpc_stream *st)
{
    return st != NULL && st->server ? st->req : NULL;
}

const char *arpc_stream_error_message(const arpc_stream *st)
{
    if (st == NULL || st->error_message.len == 0)
        return "";
    return (const char *)arpc__buf_head(&st->error_message);
}
