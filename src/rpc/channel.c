/*
 * Design notes.
 *
 * Objects.  A channel has endpoints; an endpoint has `slots` (its pool of
 * connections, each pinned to one loop); a slot has at most one `link` (the
 * physical connection) at a time and replaces it when it dies.  A slot and
 * its links are touched only on the slot's loop.  Endpoint health (failure
 * count, ejection, calls in flight) is atomic, because load balancing runs
 * on the caller's thread.
 *
 * A call is always in exactly one place: in transit to a slot's loop (an
 * inbox task), in a slot's waiting list (not yet sent), or in a link's
 * pending table (sent).  Its deadline is tracked by the loop that holds it.
 * Whatever completes it (answer, timer, connection loss, channel close)
 * first takes it out of that place, so it completes exactly once.
 *
 * Deadlines: each loop keeps the calls it holds in a queue sorted by
 * deadline, with one heap timer for the queue's head.  Calls of a channel
 * mostly share one timeout, so a new call goes at the tail (no search) and an
 * answered call leaves in O(1); the heap is touched about once per timeout
 * period instead of twice per call.
 *
 * Calls started on a loop thread use the loop's pool of call objects and a
 * slot on the same loop when the endpoint has one, so a coroutine or a
 * callback that calls again allocates nothing and crosses no thread.
 *
 * Settings (docs/protocol.md section 4): the probe PING a link sends on
 * connect carries the channel's max_frame_size, and the PONG brings the
 * server's limits.  Until then a link carries one call at a time, so no
 * server limit can be exceeded at the start of a connection; afterwards a
 * call over the server's frame limit fails locally, and calls over its
 * per-connection share wait in the slot's `waiting` list (FIFO, within their
 * deadlines) until an answer makes room (link_pump).  A call that timed out
 * still holds its share (`abandoned`) until the server's late answer comes,
 * because the server is still running it.  PINGs count ids of their own.
 *
 * Failure handling: a call that was never sent, or was refused by a server
 * that is going away (ARPC_ESHUTDOWN), or is idempotent, is dispatched again
 * (to another endpoint when one is usable) while its retry budget and
 * deadline allow.
 * A link that never heard from its peer, or whose heartbeat went unanswered,
 * counts as an endpoint failure; enough of them eject the endpoint from load
 * balancing (a heartbeat failure ejects at once), and the slot keeps probing
 * with exponential backoff until a probe PING is answered.
 *
 * Cancels: a call that times out, or is abandoned by arpc_channel_destroy,
 * tells its server through the protocol's send_cancel when it has one (gRPC:
 * RST_STREAM(CANCEL)); no answer to it comes after that, so it does not count
 * as `abandoned`.  Native sends CANCEL only to a server that announced streams
 * (docs/protocol.md 13); toward an older one send_cancel fails, and the late
 * answer frees the share.
 *
 * Parents (arpc_call_opts.parent; none of this runs for a call without one,
 * which pays a few untaken branches).  The parent request lives on its loop
 * P; the call is held by a slot's loop H, which may be another and may change
 * when the call is retried.  Everything about the parent happens on P: the
 * call's `cancel` node is linked into the request's watchers there (a call
 * started on another thread hops to P first, in its own task node), and
 * unlinked there once the call has completed (deliver hands the node back to
 * P after the callback); the request's cancel and its end unlink the nodes
 * left.  A node is thus linked only while its call is alive, so the call is
 * not recycled before P is done with it.
 * The cancel reaches H without locks: `holder` is H while a slot holds the
 * call, NULL while it travels to a slot and once it completed.  P sets
 * `cancel_requested` and then reads `holder`; slot_submit sets `holder` and
 * then reads `cancel_requested` (both sequentially consistent), so at least
 * one side sees the other.  P posts a task to the holder it saw (in the
 * call's cancel_task node, with a reference that keeps the call from being
 * recycled until the task ran); the task cancels the call only if that loop
 * still holds it.  A call in transit is canceled by the slot_submit that
 * receives it.  Either way it is taken out of its waiting list or link
 * (send_cancel) and completed once, with ARPC_ECANCELED, through the usual
 * single completion path.
 */
#include "rpc/channel.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpc/client.h>
#include <arpc/coro.h>
#include <arpc/err.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/clock.h"
#include "base/log.h"
#include "rpc/channel.h"
#include "rpc/metadata.h"
#include "rpc/request.h"
#include "rpc/stream.h"
#include "runtime/addr.h"
#include "runtime/loop.h"
#include "runtime/sock.h"
#include "transport/tls.h"

#define CALL_POOL_MAX   4096
#define RING_POINTS     160
#define REQ_KEEP_SIZE   (64 * 1024)
#define MAX_ENDPOINTS   1024

static void dispatch(cli_call *call);
static void slot_submit(cli_slot *slot, cli_call *call);
static void slot_connect(cli_slot *slot);
static unsigned random_index(void);

/* ---- options ------------------------------------------------------------ */

void arpc_channel_opts_init(arpc_channel_opts *opts)
{
    opts->connections_per_endpoint = 1;
    opts->connect_timeout_ms = 1000;
    opts->default_timeout_ms = 1000;
    opts->max_frame_size = ARPC__PROTO_DEFAULT_MAX_MESSAGE;
    opts->heartbeat_interval_ms = 500;
    opts->heartbeat_timeout_ms = 1000;
    opts->reconnect_backoff_min_ms = 50;
    opts->reconnect_backoff_max_ms = 2000;
    opts->eject_after_failures = 3;
    opts->max_retries = 2;
    opts->lb_policy = ARPC_LB_ROUND_ROBIN;
    opts->max_unwritten_bytes = 64 * 1024 * 1024;
    opts->protocol = ARPC_PROTOCOL_NATIVE;
    opts->stream_window_bytes = ARPC__STREAM_DEFAULT_WINDOW;
    /* Every field, or a caller's stack garbage becomes a limit (valgrind found
     * max_in_flight_per_connection left unset: calls starved on a link). */
    opts->probe_method = NULL;
    opts->max_in_flight_per_connection = 0;
    memset(&opts->tls, 0, sizeof(opts->tls));
    opts->tls.min_version = ARPC_TLS_1_2;
    opts->tls.handshake_timeout_ms = 5000;
}

void arpc_call_opts_init(arpc_call_opts *opts)
{
    opts->timeout_ms = -1;
    opts->hash_key = 0;
    opts->idempotent = false;
    opts->parent = NULL;
    opts->metadata = NULL;
    opts->metadata_count = 0;
    opts->response_metadata = NULL;
    opts->arena = NULL;
    opts->error_message = NULL;
}

/* ---- call objects ------------------------------------------------------- */

typedef struct call_pool {
    arpc__list free;
    size_t count;
    arpc_loop *loop;
    arpc__list deadlines;        /* calls held by this loop, earliest first */
    arpc__timer deadline_timer;  /* armed no later than the head's deadline */
} call_pool;

static void call_free(cli_call *call)
{
    arpc__buf_fini(&call->data);
    arpc__free(call);
}

static void call_pool_fini(void *value)
{
    call_pool *pool = value;
    arpc__loop_timer_disarm(pool->loop, &pool->deadline_timer);
    arpc__list *node;
    while ((node = arpc__list_pop_front(&pool->free)) != NULL)
        call_free(arpc__container_of(node, cli_call, link));
    arpc__free(pool);
}

static void on_deadlines(arpc__timer *timer);

/* Creates the pool of `loop`, the calling loop.  @return it, or NULL. */
static arpc__noinline call_pool *local_pool_create(arpc_loop *loop)
{
    call_pool *pool = arpc__calloc(1, sizeof(*pool));
    if (pool == NULL)
        return NULL;
    arpc__list_init(&pool->free);
    arpc__list_init(&pool->deadlines);
    arpc__timer_init(&pool->deadline_timer, on_deadlines);
    pool->loop = loop;
    arpc__loop_local *local = &loop->locals[ARPC__LOCAL_CALL_POOL];
    local->value = pool;
    local->fini = call_pool_fini;
    return pool;
}

/* The pool of the calling loop thread, created on first use; NULL elsewhere.
 * Inline: every call asks for it three times (get, deadline, put). */
static inline call_pool *local_pool(void)
{
    arpc_loop *loop = arpc__loop_current();
    if (loop == NULL)
        return NULL;
    call_pool *pool = loop->locals[ARPC__LOCAL_CALL_POOL].value;
    return arpc__likely(pool != NULL) ? pool : local_pool_create(loop);
}

/* Queues a call's deadline on the calling loop.  @return 0 or ARPC_ENOMEM. */
static int deadline_track(cli_call *call)
{
    call_pool *pool = local_pool();
    if (pool == NULL)
        return ARPC_ENOMEM;
    arpc__list *pos = pool->deadlines.prev;
    while (pos != &pool->deadlines &&
           arpc__container_of(pos, cli_call, deadline_link)->deadline_ns > call->deadline_ns)
        pos = pos->prev;
    arpc__list_insert_before(pos->next, &call->deadline_link);
    arpc__timer *timer = &pool->deadline_timer;
    if (!arpc__timer_queued(timer) || timer->deadline_ns > call->deadline_ns)
        return arpc__loop_timer_arm(pool->loop, timer, call->deadline_ns);
    return 0;
}

/* Takes a call out of its loop's deadline queue (a no-op if it is not in one).
 * The timer stays: when it fires early for an answered head it re-arms. */
static void deadline_untrack(cli_call *call)
{
    arpc__list_remove(&call->deadline_link);
}

static void call_expired(cli_call *call);

static void on_deadlines(arpc__timer *timer)
{
    call_pool *pool = arpc__container_of(timer, call_pool, deadline_timer);
    int64_t now = arpc__now_ns();
    while (!arpc__list_empty(&pool->deadlines)) {
        cli_call *head = arpc__container_of(pool->deadlines.next, cli_call, deadline_link);
        if (head->deadline_ns > now) {
            arpc__loop_timer_arm(pool->loop, timer, head->deadline_ns);
            return;
        }
        deadline_untrack(head);
        call_expired(head);
    }
}

/* Inline: arpc_call_async and arpc__call_start each have their copy. */
static inline __attribute__((always_inline)) cli_call *call_get(void)
{
    call_pool *pool = local_pool();
    arpc__list *node = pool ? arpc__list_pop_front(&pool->free) : NULL;
    if (node != NULL) {
        pool->count--;
        return arpc__container_of(node, cli_call, link);
    }
    cli_call *call = arpc__malloc(sizeof(*call));
    if (call == NULL)
        return NULL;
    arpc__buf_init(&call->data);
    arpc__list_init(&call->link);
    arpc__list_init(&call->deadline_link);
    return call;
}

static void call_put(cli_call *call)
{
    call_pool *pool = local_pool();
    if (pool == NULL || pool->count >= CALL_POOL_MAX) {
        call_free(call);
        return;
    }
    arpc__buf_clear(&call->data);
    arpc__buf_shrink_if_idle(&call->data, REQ_KEEP_SIZE);
    arpc__list_push_front(&pool->free, &call->link);
    pool->count++;
}

static void channel_call_ended(arpc_channel *ch)
{
    int64_t before = atomic_fetch_sub(&ch->active_calls, 1);
    if (before == 1 && atomic_load(&ch->closing))
        arpc_event_signal(&ch->idle);
}

static void parent_release(cli_call *call);

/* deliver for a call recycled after its callback (`late_put`): one with a
 * parent, whose loop unlinks the call's node first, or one with a context
 * inside it (arpc__call_start), which the callback reads. */
static arpc__noinline void deliver_late(cli_call *call, int status, const void *rsp, size_t rsp_len)
{
    arpc_channel *ch = call->ch;
    call->cb(status, rsp, rsp_len, call->user_data);
    if (call->parent_loop != NULL)
        parent_release(call);
    else
        call_put(call);
    channel_call_ended(ch);
}

static inline __attribute__((always_inline)) void deliver(cli_call *call, int status,
                                                        const void *rsp, size_t rsp_len)
{
    arpc_channel *ch = call->ch;
    arpc_call_cb cb = call->cb;
    void *user_data = call->user_data;
    deadline_untrack(call);
    if (arpc__unlikely(call->late_put)) {
        deliver_late(call, status, rsp, rsp_len);
        return;
    }
    call_put(call);
    cb(status, rsp, rsp_len, user_data);
    channel_call_ended(ch);
}

static void deliver_later_task(void *call, void *status)
{
    deliver(call, (int)(intptr_t)status, NULL, 0);
}

/* arpc_call_async calls in progress on this thread.  A call that completes
 * meanwhile (it failed at once, or a retry of it did) must not run its
 * callback inside the initiating call: the async contract.  A count per
 * thread, not a mark on the call: a retry may hand the call to another
 * loop in the middle of the initiation, after which it is not ours to mark. */
static _Thread_local unsigned initiating_calls ARPC__TLS_MODEL;

/* Completes a call that is no longer in any slot or link.  Loop thread. */
static void call_complete(cli_call *call, int status, const void *rsp, size_t rsp_len)
{
    if (arpc__unlikely(call->parent_loop != NULL))
        atomic_store(&call->holder, NULL); /* a cancel from now on finds it done */
    if (initiating_calls > 0) {
        /* Only failures happen inside an initiation: no answer is read there. */
        ARPC_ASSERT(rsp == NULL && status < 0);
        deadline_untrack(call);
        /* The loop's own thread: accepted even while the loop stops, and
         * without allocating (the task node is the call's). */
        arpc__task_set(&call->task, deliver_later_task, call, (void *)(intptr_t)status);
        arpc__loop_post(arpc__loop_current(), &call->task);
        return;
    }
    deliver(call, status, rsp, rsp_len);
}

/* A failure that may be retried: dispatch again while budget and time allow. */
static void call_retry_or_fail(cli_call *call, int err)
{
    arpc_channel *ch = call->ch;
    if (!atomic_load(&ch->closing) && call->attempts < ch->opts.max_retries &&
        arpc__now_ns() < call->deadline_ns) {
        call->attempts++;
        call->last_error = err;
        atomic_fetch_add_explicit(&ch->retries, 1, memory_order_relaxed);
        deadline_untrack(call); /* it may move to another loop */
        call->fresh = false;
        if (arpc__unlikely(call->parent_loop != NULL))
            atomic_store(&call->holder, NULL); /* in transit: slot_submit looks */
        dispatch(call);
        return;
    }
    call_complete(call, err, NULL, 0);
}

/* ---- links: one physical connection ------------------------------------- */

static void endpoint_failed(cli_endpoint *ep, int err)
{
    atomic_store(&ep->last_error, err);
    uint32_t failures = atomic_fetch_add(&ep->failures, 1) + 1;
    bool eject = err == ARPC_EHEARTBEAT || failures >= ep->ch->opts.eject_after_failures;
    if (eject && !atomic_exchange(&ep->ejected, true))
        ARPC_LOG_WARNF("endpoint %s ejected from load balancing: %s", ep->address,
                       arpc_strerror(err));
}

static void endpoint_healthy(cli_endpoint *ep)
{
    atomic_store(&ep->failures, 0);
    if (atomic_exchange(&ep->ejected, false))
        ARPC_LOG_INFOF("endpoint %s re-admitted after a successful probe", ep->address);
}

static void link_close_if_drained(cli_link *lnk)
{
    if (lnk->goaway && lnk->pending.len == 0 && lnk->streams.len == 0)
        arpc__conn_close(&lnk->conn, ARPC_ESHUTDOWN);
}

/* True while the server's per-connection share (its MAX_IN_FLIGHT setting)
 * admits one more call or stream.  A timed-out call the server has not answered
 * still runs there, so it still counts; so do open streams (in `room`). */
static inline bool link_has_room(const cli_link *lnk)
{
    return lnk->pending.len + lnk->abandoned < lnk->room;
}

/* After the share or the open streams changed. */
static void link_set_room(cli_link *lnk)
{
    uint32_t max = lnk->peer_max_in_flight;
    uint32_t mine = lnk->ch->opts.max_in_flight_per_connection;
    if (mine != 0 && (max == 0 || mine < max))
        max = mine;
    size_t streams = lnk->streams.len;
    lnk->room = max == 0 ? UINT32_MAX : max > streams ? max - (uint32_t)streams : 0;
}

/* A call with metadata waits for the server's settings (protocol.md 10): only
 * they tell whether it reads metadata, and a server that does not must not
 * get the flag.  A protocol without PING has no settings to wait for. */
static inline bool link_may_carry(const cli_link *lnk, const cli_call *call)
{
    return call->md_count == 0 || lnk->settings_known || !(lnk->proto->caps & ARPC__PROTO_PING);
}

/* True when the link's unwritten requests have reached max_unwritten_bytes:
 * its server does not read them.  The loop's flush may just not have run
 * yet (a burst of calls in one iteration), so the socket is offered what
 * waits before the link counts as full.  The client never stops reading
 * (see conn.c): answers keep freeing calls while it refuses new ones. */
static bool link_full(cli_link *lnk)
{
    uint64_t limit = lnk->ch->opts.max_unwritten_bytes;
    if (limit == 0 || lnk->conn.out.len < limit)
        return false;
    arpc__conn_write_early(&lnk->conn);
    return lnk->conn.out.len >= limit;
}

/* The message a call sends: views into the call's own copy. */
static inline arpc__msg call_msg(const cli_call *call, int64_t timeout_ns)
{
    const uint8_t *data = arpc__buf_head(&call->data);
    size_t front = (size_t)call->method_len + call->md_len;
    arpc__msg msg = {
        .method = (const char *)data,
        .method_len = call->method_len,
        .timeout_ns = timeout_ns,
        .flags = call->idempotent ? ARPC__MSG_IDEMPOTENT : 0,
        .md = {.data = data + call->method_len, .len = call->md_len, .count = call->md_count},
        .payload = data + front,
        .payload_len = call->data.len - front,
    };
    return msg;
}

/* Sends a call on a connected link.  Loop thread of the link. */
static void link_send(cli_link *lnk, cli_call *call)
{
    if (arpc__unlikely(link_full(lnk))) {
        /* Never sent: another endpoint may take it; with none, fail fast
         * rather than hold it (and its bytes) for a peer that does not read. */
        if (lnk->ch->ep_count > 1)
            call_retry_or_fail(call, ARPC_EQUEUEFULL);
        else
            call_complete(call, ARPC_EQUEUEFULL, NULL, 0);
        return;
    }
    /* A call sent straight from arpc_call_async() skips a clock read (they
     * cost up to 90 ns on some VMs): its remaining time is its timeout. */
    int64_t timeout_ns = (int64_t)call->timeout_ms * ARPC__NS_PER_MS;
    if (!call->fresh && call->deadline_ns != ARPC__NO_DEADLINE) {
        timeout_ns = call->deadline_ns - arpc__now_ns();
        if (timeout_ns <= 0) {
            call_complete(call, ARPC_ETIMEDOUT, NULL, 0); /* never sent (protocol.md 6) */
            return;
        }
    }
    call->fresh = false;
    arpc__msg msg = call_msg(call, timeout_ns);
    if (arpc__unlikely(!arpc__proto_fits(lnk->proto, &msg, true, lnk->peer_max_frame))) {
        /* The server announced it would refuse it: fail this call alone, locally. */
        call_complete(call, ARPC_ETOOBIG, NULL, 0);
        return;
    }
    uint64_t id = ++lnk->next_id;
    msg.id = id;
    int rc = arpc__pending_insert(&lnk->pending, id, call);
    if (rc == 0) {
        rc = lnk->proto->send_request(lnk->conn.proto, &lnk->conn.out, &msg);
        if (rc < 0)
            arpc__pending_remove(&lnk->pending, id);
    }
    if (rc < 0) {
        call_complete(call, rc, NULL, 0);
        return;
    }
    call->lnk = lnk;
    call->id = id;
    atomic_fetch_add_explicit(&lnk->ep->in_flight, 1, memory_order_relaxed);
    arpc__conn_flush_soon(&lnk->conn);
}

static void link_pump_streams(cli_link *lnk);

/* Sends the calls that wait for room on the link, as far as the server's
 * per-connection share allows, oldest first; then the streams that wait. */
static void link_pump(cli_link *lnk)
{
    cli_slot *slot = lnk->slot;
    if (slot == NULL || slot->lnk != lnk)
        return;
    if (arpc__unlikely(!arpc__list_empty(&slot->streams)))
        link_pump_streams(lnk);
    arpc__list *node;
    while (!lnk->conn.closed && !lnk->conn.connecting && link_has_room(lnk) &&
           !arpc__list_empty(&slot->waiting)) {
        node = slot->waiting.next;
        cli_call *call = arpc__container_of(node, cli_call, link);
        if (!link_may_carry(lnk, call))
            return; /* FIFO: the calls behind it wait too */
        arpc__list_remove(node);
        link_send(lnk, call);
    }
}

/* Tells the server to stop working on `id`, if the protocol can.  @return
 * true if it was told: no answer to `id` is reported after that. */
static bool link_send_cancel(cli_link *lnk, uint64_t id)
{
    if (lnk->proto->send_cancel == NULL || lnk->conn.closed)
        return false;
    if (lnk->proto->send_cancel(lnk->conn.proto, &lnk->conn.out, id) < 0)
        return false;
    arpc__conn_flush_soon(&lnk->conn);
    return true;
}

/* Takes a sent call back out of its link (its deadline passed, or its parent
 * was canceled) and cancels it on the server where the protocol can.  A
 * server that is not told still runs it and will answer it, so it keeps its
 * share until then. */
static void link_forget(cli_link *lnk, cli_call *call)
{
    arpc__pending_remove(&lnk->pending, call->id);
    if (!link_send_cancel(lnk, call->id))
        lnk->abandoned++;
    atomic_fetch_sub_explicit(&lnk->ep->in_flight, 1, memory_order_relaxed);
    call->lnk = NULL;
}

/* Inline: every answer takes this path, from the protocol's event. */
static inline __attribute__((always_inline)) void on_response(cli_link *lnk, uint64_t id,
                                                              int status, const void *rsp,
                                                              size_t rsp_len, const arpc__md *md)
{
    cli_call *call = arpc__pending_remove(&lnk->pending, id);
    if (call == NULL) {
        /* Its call already completed (deadline): a late answer, dropped. */
        atomic_fetch_add_explicit(&lnk->ch->late_answers, 1, memory_order_relaxed);
        if (lnk->abandoned > 0) {
            lnk->abandoned--;
            link_pump(lnk);
        }
        return;
    }
    atomic_fetch_sub_explicit(&lnk->ep->in_flight, 1, memory_order_relaxed);
    call->lnk = NULL;
    if (status == ARPC_ESHUTDOWN) {
        /* The server refused it unprocessed: safe to send elsewhere. */
        call_retry_or_fail(call, ARPC_ESHUTDOWN);
    } else {
        if (call->rsp_md != NULL && md != NULL && md->count > 0 &&
            arpc__metadata_assign(call->rsp_md, md) < 0)
            status = ARPC_ENOMEM;
        /* An application error's answer is its message (arpc_request_set_error). */
        if (arpc__unlikely(status > 0) && call->err_msg != NULL &&
            arpc__buf_append(call->err_msg, rsp, rsp_len) < 0)
            status = ARPC_ENOMEM;
        call_complete(call, status, rsp, rsp_len);
    }
    link_close_if_drained(lnk);
    /* Usually nothing waits: a test here, not a call per answer. */
    if (lnk->slot != NULL && !arpc__list_empty(&lnk->slot->waiting))
        link_pump(lnk);
}

static void slot_detach(cli_slot *slot, cli_link *lnk)
{
    if (slot != NULL && slot->lnk == lnk)
        slot->lnk = NULL;
    lnk->slot = NULL;
}

static void goaway_streams(cli_link *lnk, uint64_t last_id, int reason);

static void on_goaway(cli_link *lnk, uint64_t last_id, int reason)
{
    lnk->goaway = true;
    atomic_fetch_add_explicit(&lnk->ch->goaways, 1, memory_order_relaxed);
    cli_slot *slot = lnk->slot;
    slot_detach(slot, lnk);
    /* Still the slot's to cancel if the channel is destroyed first. */
    if (slot != NULL)
        arpc__list_push_back(&slot->draining, &lnk->draining_link);
    /* Calls the server will not answer never ran: they go elsewhere now. */
    for (uint64_t id = last_id + 1; id <= lnk->next_id; id++) {
        cli_call *call = arpc__pending_remove(&lnk->pending, id);
        if (call == NULL)
            continue;
        atomic_fetch_sub_explicit(&lnk->ep->in_flight, 1, memory_order_relaxed);
        call->lnk = NULL;
        call_retry_or_fail(call, reason);
    }
    goaway_streams(lnk, last_id, reason);
    if (slot != NULL && (!arpc__list_empty(&slot->waiting) || !arpc__list_empty(&slot->streams)))
        slot_connect(slot);
    link_close_if_drained(lnk);
}

/* A PONG answers a PING of ours only if it carries the id of one not yet
 * answered (PONGs come back in order); any other is ignored.  The first
 * answered PING brings the server's limits, or none from a server that has
 * none: then no limit but the heartbeat applies. */
static void link_on_pong(cli_link *lnk, uint64_t id, const arpc__proto_limits *peer)
{
    if (id <= lnk->pong_id || id > lnk->ping_id)
        return;
    lnk->pong_id = id;
    if (lnk->settings_known && peer == NULL)
        return; /* a heartbeat's PONG */
    lnk->settings_known = true;
    lnk->peer_max_frame = peer != NULL ? peer->max_message : 0;
    lnk->peer_max_in_flight = peer != NULL ? peer->max_in_flight : 0;
    link_set_room(lnk);
    /* A protocol that announces no limits (gRPC) takes streams when it can carry them; a
     * native server says so in its settings (docs/protocol.md 13). */
    lnk->peer_streams = (lnk->proto->caps & ARPC__PROTO_STREAMS) && (peer == NULL || peer->streams);
    lnk->peer_stream_window = peer != NULL && peer->stream_window != 0
                                  ? peer->stream_window
                                  : ARPC__STREAM_DEFAULT_WINDOW;
    link_pump(lnk);
}

/* Any frame shows the peer alive and answers an outstanding PING. */
static inline void link_heard(cli_link *lnk)
{
    arpc__conn *conn = &lnk->conn;
    if (!lnk->heard_from_peer) {
        lnk->heard_from_peer = true;
        endpoint_healthy(lnk->ep);
        if (lnk->slot != NULL)
            lnk->slot->backoff_ms = 0;
    }
    if (lnk->ping_outstanding) {
        /* The PING is answered: the next one is due an interval after this
         * frame, not when the PING would have timed out, so a peer that dies
         * now is noticed within interval + timeout (not 2 x timeout). */
        lnk->ping_outstanding = false;
        int64_t interval = lnk->ch->opts.heartbeat_interval_ms * ARPC__NS_PER_MS;
        if (interval > 0)
            arpc__loop_timer_arm(conn->loop, &lnk->heartbeat, conn->last_rx_ns + interval);
    }
}

/* ---- the protocol's events: the owner is the link's conn ---------------- */

static cli_link *link_of(void *owner)
{
    return arpc__container_of((arpc__conn *)owner, cli_link, conn);
}

static int ev_response(void *owner, const arpc__msg *msg)
{
    cli_link *lnk = link_of(owner);
    link_heard(lnk);
    on_response(lnk, msg->id, msg->status, msg->payload, msg->payload_len, &msg->md);
    return 0;
}

/* An answer that fails on its own: over the channel's max_frame_size, from a
 * server that did not know it (the session skips the body), or with metadata
 * that breaks the rules.  That call alone fails. */
static int ev_refused(void *owner, uint64_t id, int err)
{
    cli_link *lnk = link_of(owner);
    link_heard(lnk);
    on_response(lnk, id, err, NULL, 0, NULL);
    return 0;
}

static void ev_pong(void *owner, uint64_t id, const arpc__proto_limits *peer)
{
    cli_link *lnk = link_of(owner);
    link_heard(lnk);
    link_on_pong(lnk, id, peer);
}

static void ev_ping(void *owner)
{
    link_heard(link_of(owner));
}

static void ev_goaway(void *owner, uint64_t last_id, int reason)
{
    cli_link *lnk = link_of(owner);
    link_heard(lnk);
    on_goaway(lnk, last_id, reason);
}

static int ev_stream(void *owner, arpc__stream_frame frame, const arpc__msg *msg);

static const arpc__proto_events link_events = {
    .on_stream = ev_stream,
    .on_response = ev_response,
    .on_refused = ev_refused,
    .on_pong = ev_pong,
    .on_ping = ev_ping,
    .on_goaway = ev_goaway,
};

/* When the timer of a link with a PING outstanding runs next: at the PING's
 * timeout, and with heartbeats on at least every interval, because bytes that
 * answer the PING without completing a frame (which on_frame never sees) make
 * the next PING due an interval after them, not at the timeout. */
static int64_t ping_wake_ns(const cli_link *lnk, int64_t now)
{
    int64_t timeout_at = lnk->ping_sent_ns + lnk->ch->opts.heartbeat_timeout_ms * ARPC__NS_PER_MS;
    int64_t interval = lnk->ch->opts.heartbeat_interval_ms * ARPC__NS_PER_MS;
    return interval > 0 && now + interval < timeout_at ? now + interval : timeout_at;
}

/* PINGs take ids of their own (protocol.md 4), and carry the client's
 * limits until the server's have arrived.  Only for a protocol that pings. */
static bool send_ping(cli_link *lnk)
{
    uint64_t id = lnk->ping_id + 1;
    int rc = lnk->proto->send_ping(lnk->conn.proto, &lnk->conn.out, id, !lnk->settings_known);
    if (rc == 0) {
        lnk->ping_id = id;
        lnk->ping_outstanding = true;
        lnk->ping_sent_ns = arpc__now_ns();
        arpc__conn_flush_soon(&lnk->conn);
    }
    return rc == 0;
}

/* One timer per link: connect timeout while connecting, heartbeat after. */
static void on_link_timer(arpc__timer *timer)
{
    cli_link *lnk = arpc__container_of(timer, cli_link, heartbeat);
    const arpc_channel_opts *opts = &lnk->ch->opts;
    int64_t now = arpc__now_ns();
    if (lnk->conn.connecting) {
        arpc__conn_close(&lnk->conn, lnk->conn.handshaking ? ARPC_ETLSTIMEOUT : ARPC_ETIMEDOUT);
        return;
    }
    int64_t timeout = opts->heartbeat_timeout_ms * ARPC__NS_PER_MS;
    int64_t interval = opts->heartbeat_interval_ms * ARPC__NS_PER_MS;
    if (lnk->ping_outstanding) {
        if (lnk->conn.last_rx_ns >= lnk->ping_sent_ns) {
            lnk->ping_outstanding = false;
        } else if (now - lnk->ping_sent_ns >= timeout) {
            atomic_fetch_add_explicit(&lnk->ch->heartbeat_failures, 1, memory_order_relaxed);
            ARPC_LOG_WARNF("connection %llu to %s: no answer to PING within %lld ms, closing it",
                           (unsigned long long)lnk->conn.id, lnk->ep->address,
                           (long long)opts->heartbeat_timeout_ms);
            arpc__conn_close(&lnk->conn, ARPC_EHEARTBEAT);
            return;
        } else {
            arpc__loop_timer_arm(lnk->conn.loop, timer, ping_wake_ns(lnk, now));
            return;
        }
    }
    if (interval <= 0)
        return;
    if (now - lnk->conn.last_rx_ns >= interval) {
        /* Not sent (ARPC_EAGAIN: an in-order protocol with answers due): ask again later. */
        arpc__loop_timer_arm(lnk->conn.loop, timer,
                             send_ping(lnk) ? ping_wake_ns(lnk, now) : now + interval);
    } else {
        arpc__loop_timer_arm(lnk->conn.loop, timer, lnk->conn.last_rx_ns + interval);
    }
}

/* connect() completed and the TLS handshake begins: the link's timer now
 * counts the handshake's own time (arpc_channel_tls_opts.handshake_timeout_ms). */
static void link_on_handshake_start(arpc__conn *conn)
{
    cli_link *lnk = arpc__container_of(conn, cli_link, conn);
    arpc__loop_timer_arm(conn->loop, &lnk->heartbeat,
                         arpc__now_ns() + lnk->ch->opts.tls.handshake_timeout_ms * ARPC__NS_PER_MS);
}

static void link_on_connected(arpc__conn *conn)
{
    cli_link *lnk = arpc__container_of(conn, cli_link, conn);
    atomic_fetch_add_explicit(&lnk->ch->reconnects, 1, memory_order_relaxed);
    conn->last_rx_ns = arpc__now_ns();
    if (!(lnk->proto->caps & ARPC__PROTO_PING)) {
        /* No PING on this protocol: no probe and no heartbeat (docs/protocols.md,
         * "Capabilities"); the first answer shows the endpoint healthy, and call
         * deadlines bound what a frozen peer costs. */
        arpc__loop_timer_disarm(conn->loop, &lnk->heartbeat);
        lnk->peer_streams = (lnk->proto->caps & ARPC__PROTO_STREAMS) != 0;
        lnk->peer_stream_window = ARPC__STREAM_DEFAULT_WINDOW;
        link_pump(lnk);
        return;
    }
    /* A probe: the endpoint counts as healthy only once a frame comes back. */
    send_ping(lnk);
    int64_t timeout = lnk->ch->opts.heartbeat_timeout_ms;
    if (timeout <= 0)
        timeout = lnk->ch->opts.connect_timeout_ms;
    int64_t wake = lnk->ch->opts.heartbeat_interval_ms > 0
                       ? ping_wake_ns(lnk, lnk->ping_sent_ns)
                       : lnk->ping_sent_ns + timeout * ARPC__NS_PER_MS;
    arpc__loop_timer_arm(conn->loop, &lnk->heartbeat, wake);
    /* One call until the PONG brings the server's per-connection share. */
    link_pump(lnk);
}

typedef struct link_failure {
    cli_link *lnk;
    int err;
} link_failure;

static void fail_sent_call(void *call_arg, void *failure_arg)
{
    cli_call *call = call_arg;
    const link_failure *failure = failure_arg;
    atomic_fetch_sub_explicit(&failure->lnk->ep->in_flight, 1, memory_order_relaxed);
    call->lnk = NULL;
    if (call->idempotent)
        call_retry_or_fail(call, failure->err);
    else
        call_complete(call, failure->err, NULL, 0);
}

static void fail_sent_calls(cli_link *lnk, int err)
{
    link_failure failure = {lnk, err};
    arpc__pending_drain(&lnk->pending, fail_sent_call, &failure);
}

static void slot_link_lost(cli_slot *slot, bool failed, int err);
static void fail_link_streams(cli_link *lnk, int err);

static void link_on_close(arpc__conn *conn, int err)
{
    cli_link *lnk = arpc__container_of(conn, cli_link, conn);
    if (conn->tp->failure != NULL && !atomic_load(&lnk->ch->closing))
        ARPC_LOG_WARNF("connection %llu to %s: %s: %s", (unsigned long long)conn->id,
                       lnk->ep->address, arpc_strerror(err), conn->tp->failure);
    arpc__loop_timer_disarm(conn->loop, &lnk->heartbeat);
    bool failed = !lnk->heard_from_peer || err == ARPC_EHEARTBEAT;
    if (failed && !atomic_load(&lnk->ch->closing))
        endpoint_failed(lnk->ep, err);
    cli_slot *slot = lnk->slot;
    slot_detach(slot, lnk);
    if (arpc__list_linked(&lnk->draining_link))
        arpc__list_remove(&lnk->draining_link);
    if (err == ARPC_ECLOSED && conn->connecting)
        err = ARPC_ECONNREFUSED;
    fail_sent_calls(lnk, err);
    fail_link_streams(lnk, err);
    if (slot != NULL)
        slot_link_lost(slot, failed, err);
}

static void link_on_free(arpc__conn *conn)
{
    cli_link *lnk = arpc__container_of(conn, cli_link, conn);
    arpc__pending_fini(&lnk->pending);
    arpc__pending_fini(&lnk->streams);
    arpc__free(lnk);
}

static const arpc__conn_ops link_ops = {
    .on_handshake_start = link_on_handshake_start,
    .on_connected = link_on_connected,
    .on_close = link_on_close,
    .on_free = link_on_free,
};

/* ---- slots: a pooled connection that reconnects -------------------------- */

static int64_t jittered(int64_t ms)
{
    /* Up to 50% less, so slots that failed together do not retry together.
     * Not rand(): unseeded, it gives every process the same waits, so clients
     * restarted together would reconnect together. */
    return ms - (int64_t)((uint64_t)random_index() % (uint64_t)(ms / 2 + 1));
}

static void slot_fail_streams(cli_slot *slot, int err);

static void slot_fail_waiting(cli_slot *slot, int err)
{
    if (arpc__unlikely(!arpc__list_empty(&slot->streams)))
        slot_fail_streams(slot, slot->closed ? ARPC_ECANCELED : err);
    arpc__list waiting;
    /* Detach the list first: a retried call may come back to this slot. */
    arpc__list_move_all(&slot->waiting, &waiting);
    arpc__list *node;
    while ((node = arpc__list_pop_front(&waiting)) != NULL) {
        cli_call *call = arpc__container_of(node, cli_call, link);
        if (slot->closed)
            call_complete(call, err, NULL, 0);
        else
            call_retry_or_fail(call, err);
    }
}

static void slot_link_lost(cli_slot *slot, bool failed, int err)
{
    if (slot->closed) {
        slot_fail_waiting(slot, ARPC_ECANCELED);
        return;
    }
    if (failed) {
        const arpc_channel_opts *opts = &slot->ep->ch->opts;
        int64_t next = slot->backoff_ms ? slot->backoff_ms * 2 : opts->reconnect_backoff_min_ms;
        slot->backoff_ms = next > opts->reconnect_backoff_max_ms ? opts->reconnect_backoff_max_ms
                                                                 : next;
        slot->in_backoff = true;
        arpc__loop_timer_arm(slot->loop, &slot->backoff,
                             arpc__now_ns() + jittered(slot->backoff_ms) * ARPC__NS_PER_MS);
        /* Calls that never left: try elsewhere (or fail) now, not after the backoff. */
        slot_fail_waiting(slot, err == ARPC_ECLOSED ? ARPC_ECONNREFUSED : err);
    } else if (!arpc__list_empty(&slot->waiting) || !arpc__list_empty(&slot->streams)) {
        slot_connect(slot);
    }
}

static void on_backoff_done(arpc__timer *timer)
{
    cli_slot *slot = arpc__container_of(timer, cli_slot, backoff);
    slot->in_backoff = false;
    /* An ejected endpoint is probed even when no call waits for it. */
    if (slot->lnk == NULL && !slot->closed &&
        (!arpc__list_empty(&slot->waiting) || !arpc__list_empty(&slot->streams) ||
         atomic_load(&slot->ep->ejected)))
        slot_connect(slot);
}

/* TLS on the link's socket, for the channel's server name or the endpoint's host,
 * offering its protocol's ALPN name.  @return 0, ARPC_ENOMEM or ARPC_EINVAL. */
static int link_use_tls(cli_link *lnk, int fd)
{
    arpc_channel *ch = lnk->ch;
    const char *name = ch->tls_server_name != NULL ? ch->tls_server_name : lnk->ep->host;
    arpc__transport *tp;
    int rc = arpc__tls_transport_create(ch->tls, fd, name, lnk->proto->alpn, &tp);
    if (rc == 0)
        arpc__conn_set_transport(&lnk->conn, tp);
    return rc;
}

static void slot_connect(cli_slot *slot)
{
    if (slot->lnk != NULL || slot->in_backoff || slot->closed)
        return;
    cli_endpoint *ep = slot->ep;
    int fd = -1;
    /* Even a connection that completes at once (loopback) finishes its set-up
     * on the EPOLLOUT edge, so whether it is still in progress does not matter. */
    int rc = arpc__sock_connect_start(&ep->addr, ep->addr_len, &fd, NULL);
    cli_link *lnk = rc == 0 ? arpc__calloc(1, sizeof(*lnk)) : NULL;
    if (rc == 0 && lnk == NULL) {
        close(fd);
        rc = ARPC_ENOMEM;
    }
    if (rc < 0) {
        endpoint_failed(ep, rc);
        slot_link_lost(slot, true, rc);
        return;
    }
    lnk->slot = slot;
    lnk->ch = ep->ch;
    lnk->ep = ep;
    lnk->proto = ep->ch->proto;
    /* One call at a time until the server's limits arrive with the PONG of the
     * first PING; a protocol without PING has no such announcement to wait for. */
    lnk->peer_max_in_flight = (lnk->proto->caps & ARPC__PROTO_PING) ? 1 : 0;
    link_set_room(lnk);
    arpc__list_init(&lnk->draining_link);
    arpc__pending_init(&lnk->pending);
    arpc__pending_init(&lnk->streams);
    arpc__timer_init(&lnk->heartbeat, on_link_timer);
    arpc__conn_init(&lnk->conn, slot->loop, fd, &link_ops, true);
    if (ep->ch->tls != NULL && (rc = link_use_tls(lnk, fd)) < 0) {
        close(fd);
        arpc__pending_fini(&lnk->pending);
        arpc__free(lnk);
        endpoint_failed(ep, rc);
        slot_link_lost(slot, true, rc);
        return;
    }
    arpc__proto_limits mine = {.max_message = ep->ch->opts.max_frame_size,
                               .metadata = true,
                               .streams = true,
                               .stream_window = ep->ch->opts.stream_window_bytes};
    rc = arpc__conn_open_proto(&lnk->conn, lnk->proto, ARPC__PROTO_CLIENT, &mine, &link_events,
                               ep->ch->opts.probe_method);
    if (rc < 0) {
        /* Not started: nothing but the fd and the link to undo. */
        close(fd);
        arpc__pending_fini(&lnk->pending);
        arpc__free(lnk);
        endpoint_failed(ep, rc);
        slot_link_lost(slot, true, rc);
        return;
    }
    snprintf(lnk->conn.peer, sizeof(lnk->conn.peer), "%s", ep->address);
    slot->lnk = lnk;
    arpc__loop_timer_arm(slot->loop, &lnk->heartbeat,
                         arpc__now_ns() + ep->ch->opts.connect_timeout_ms * ARPC__NS_PER_MS);
    arpc__conn_start(&lnk->conn); /* on failure it closes the link, which reports it */
    arpc__conn_unref(&lnk->conn); /* the loop registration holds it */
}

static bool no_usable_endpoint(const arpc_channel *ch)
{
    for (unsigned i = 0; i < ch->ep_count; i++) {
        if (!atomic_load_explicit(&ch->eps[i].ejected, memory_order_relaxed))
            return false;
    }
    return true;
}

static bool parent_canceled_on_arrival(cli_slot *slot, cli_call *call);

static void slot_submit(cli_slot *slot, cli_call *call)
{
    if (arpc__unlikely(call->parent_loop != NULL) && parent_canceled_on_arrival(slot, call))
        return;
    if (slot->closed) {
        call_complete(call, ARPC_ECANCELED, NULL, 0);
        return;
    }
    if (call->deadline_ns != ARPC__NO_DEADLINE && deadline_track(call) < 0) {
        call_complete(call, ARPC_ENOMEM, NULL, 0);
        return;
    }
    cli_link *lnk = slot->lnk;
    if (lnk != NULL && !lnk->conn.connecting && !lnk->conn.closed) {
        if (arpc__likely(link_has_room(lnk) && arpc__list_empty(&slot->waiting) &&
                         link_may_carry(lnk, call))) {
            link_send(lnk, call);
            return;
        }
        /* The server's per-connection share is in use: wait here, within the
         * call's deadline, for an answer to make room (link_pump). */
        call->fresh = false;
        arpc__list_push_back(&slot->waiting, &call->link);
        return;
    }
    if (lnk == NULL && slot->in_backoff && no_usable_endpoint(call->ch)) {
        /* Every endpoint is ejected and this one waits out its backoff: fail
         * fast, with the failure that got it ejected, rather than hold the
         * call to its deadline.  Probing goes on in the background and
         * re-admits the endpoint when a PING is answered. */
        int err = call->attempts > 0 ? call->last_error : atomic_load(&slot->ep->last_error);
        call_complete(call, err < 0 ? err : ARPC_ENOENDPOINT, NULL, 0);
        return;
    }
    call->fresh = false; /* it waits for a connection first */
    arpc__list_push_back(&slot->waiting, &call->link);
    slot_connect(slot);
}

/* The deadline passed: take the call from wherever it is and fail it. */
static void call_expired(cli_call *call)
{
    cli_link *lnk = call->lnk;
    if (lnk != NULL) {
        link_forget(lnk, call);
        /* A link detached by GOAWAY is reachable only through its calls: if
         * this was the last, close it now, or it outlives the channel. */
        link_close_if_drained(lnk);
    } else {
        arpc__list_remove(&call->link); /* waiting for a connection */
    }
    call_complete(call, ARPC_ETIMEDOUT, NULL, 0);
}

/* ---- parents: cancellation from the request a call is made for ----------- */

/* Takes the call from wherever this loop holds it and completes it. */
static void call_cancel(cli_call *call)
{
    cli_link *lnk = call->lnk;
    if (lnk != NULL) {
        link_forget(lnk, call);
        link_close_if_drained(lnk);
    } else {
        arpc__list_remove(&call->link); /* waiting for a connection or for room */
    }
    call_complete(call, ARPC_ECANCELED, NULL, 0);
}

static void call_unref(cli_call *call)
{
    if (atomic_fetch_sub_explicit(&call->refs, 1, memory_order_acq_rel) == 1)
        call_put(call);
}

/* On the loop the cancel was posted to: cancel the call if it still holds it. */
static void cancel_task(void *call_arg, void *loop)
{
    cli_call *call = call_arg;
    if (atomic_load(&call->holder) == loop)
        call_cancel(call);
    call_unref(call);
}

/* The parent was canceled (its loop; the node is unlinked already). */
static void on_parent_canceled(arpc__cancel_node *node)
{
    cli_call *call = arpc__container_of(node, cli_call, cancel);
    atomic_store(&call->cancel_requested, true);
    arpc_loop *holder = atomic_load(&call->holder);
    if (holder == NULL)
        return; /* in transit (slot_submit will see the flag) or done */
    /* A task even when the holder is this loop: the call's callback must not
     * run inside the server's protocol event that canceled the parent. */
    atomic_fetch_add_explicit(&call->refs, 1, memory_order_relaxed);
    arpc__task_set(&call->cancel_task, cancel_task, call, holder);
    arpc__loop_post_or_run(holder, &call->cancel_task);
}

/* slot_submit's first step for a call with a parent: it is this loop's now,
 * unless its parent was canceled (then it completes here).  @return true if
 * it completed. */
static bool parent_canceled_on_arrival(cli_slot *slot, cli_call *call)
{
    atomic_store(&call->holder, slot->loop);
    if (!atomic_load(&call->cancel_requested))
        return false;
    call_complete(call, ARPC_ECANCELED, NULL, 0);
    return true;
}

static void unwatch_task(void *call_arg, void *unused)
{
    cli_call *call = call_arg;
    arpc__request_unwatch(&call->cancel);
    call_unref(call);
}

/* After the callback: the node goes back to the parent's loop, which unlinks
 * it; then the call may be recycled. */
static void parent_release(cli_call *call)
{
    if (arpc__loop_current() == call->parent_loop) {
        unwatch_task(call, NULL);
        return;
    }
    arpc__task_set(&call->task, unwatch_task, call, NULL);
    arpc__loop_post_or_run(call->parent_loop, &call->task);
}

/* Watches the parent (its loop thread).  @return 0 or ARPC_ECANCELED. */
static int parent_watch(cli_call *call, arpc_request *parent)
{
    call->parent_loop = arpc__request_loop(parent);
    call->late_put = true;
    arpc__list_init(&call->cancel.link);
    call->cancel.fn = on_parent_canceled;
    atomic_store_explicit(&call->holder, NULL, memory_order_relaxed);
    atomic_store_explicit(&call->cancel_requested, false, memory_order_relaxed);
    atomic_store_explicit(&call->refs, 1, memory_order_relaxed);
    return arpc__request_watch(parent, &call->cancel);
}

/* ---- load balancing and dispatch ----------------------------------------- */

static uint64_t hash64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static bool usable(const cli_endpoint *ep)
{
    return !atomic_load_explicit(&ep->ejected, memory_order_relaxed);
}

/* The first usable endpoint from `start` on; if all are ejected, `start`'s. */
static cli_endpoint *scan_from(arpc_channel *ch, unsigned start)
{
    for (unsigned i = 0; i < ch->ep_count; i++) {
        cli_endpoint *ep = &ch->eps[(start + i) % ch->ep_count];
        if (usable(ep))
            return ep;
    }
    return &ch->eps[start % ch->ep_count];
}

static cli_endpoint *pick_least_in_flight(arpc_channel *ch)
{
    unsigned start = atomic_fetch_add_explicit(&ch->next_ep, 1, memory_order_relaxed);
    cli_endpoint *best = NULL;
    int64_t best_load = INT64_MAX;
    for (unsigned i = 0; i < ch->ep_count; i++) {
        cli_endpoint *ep = &ch->eps[(start + i) % ch->ep_count];
        int64_t load = atomic_load_explicit(&ep->in_flight, memory_order_relaxed);
        if (usable(ep) && load < best_load) {
            best = ep;
            best_load = load;
        }
    }
    return best ? best : scan_from(ch, start);
}

/* The key's endpoint: the first usable one clockwise from the key on the ring,
 * skipping `avoid` (may be NULL). */
static cli_endpoint *pick_by_hash(arpc_channel *ch, uint64_t key, const cli_endpoint *avoid)
{
    uint64_t h = hash64(key);
    unsigned lo = 0;
    unsigned hi = ch->ring_len;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (ch->ring[mid].hash < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* Walk clockwise to the first healthy endpoint, so a key moves only
     * while its endpoint is ejected. */
    for (unsigned i = 0; i < ch->ring_len; i++) {
        cli_endpoint *ep = &ch->eps[ch->ring[(lo + i) % ch->ring_len].endpoint];
        if (usable(ep) && ep != avoid)
            return ep;
    }
    return &ch->eps[ch->ring[lo % ch->ring_len].endpoint];
}

static _Thread_local uint64_t random_state ARPC__TLS_MODEL;

static unsigned random_index(void)
{
    if (random_state == 0)
        random_state = hash64((uint64_t)arpc__now_ns() ^ (uint64_t)(uintptr_t)&random_state);
    random_state ^= random_state << 13;
    random_state ^= random_state >> 7;
    random_state ^= random_state << 17;
    return (unsigned)(random_state >> 11);
}

static cli_endpoint *pick_by_policy(arpc_channel *ch, uint64_t hash_key)
{
    switch (ch->opts.lb_policy) {
    case ARPC_LB_RANDOM:
        return scan_from(ch, random_index());
    case ARPC_LB_LEAST_IN_FLIGHT:
        return pick_least_in_flight(ch);
    case ARPC_LB_CONSISTENT_HASH:
        return pick_by_hash(ch, hash_key, NULL);
    case ARPC_LB_ROUND_ROBIN:
    default:
        return scan_from(ch, atomic_fetch_add_explicit(&ch->next_ep, 1, memory_order_relaxed));
    }
}

/* Inline for the common single endpoint, which needs no policy. */
static inline cli_endpoint *pick_endpoint(arpc_channel *ch, uint64_t hash_key)
{
    if (ch->ep_count == 1)
        return &ch->eps[0];
    return pick_by_policy(ch, hash_key);
}

/* A slot on the calling loop if the endpoint has one; else round-robin.
 * Inline, for the one-slot case every call takes by default. */
static inline cli_slot *pick_slot(cli_endpoint *ep)
{
    /* One connection per endpoint is the default: nothing to choose. */
    if (ep->slot_count == 1)
        return &ep->slots[0];
    arpc_loop *here = arpc__loop_current();
    for (unsigned i = 0; i < ep->slot_count && here != NULL; i++) {
        if (ep->slots[i].loop == here)
            return &ep->slots[i];
    }
    unsigned n = atomic_fetch_add_explicit(&ep->next_slot, 1, memory_order_relaxed);
    return &ep->slots[n % ep->slot_count];
}

static void submit_task(void *slot, void *call)
{
    slot_submit(slot, call);
}

/* A usable endpoint other than `avoid`, or `avoid` if there is none.  With
 * consistent hashing: the key's next endpoint on the ring, so that the
 * retries of one key agree. */
static cli_endpoint *pick_other(arpc_channel *ch, uint64_t hash_key, cli_endpoint *avoid)
{
    if (ch->opts.lb_policy == ARPC_LB_CONSISTENT_HASH) {
        cli_endpoint *ep = pick_by_hash(ch, hash_key, avoid);
        return usable(ep) && ep != avoid ? ep : avoid;
    }
    unsigned start = (unsigned)(avoid - ch->eps) + 1;
    for (unsigned i = 0; i + 1 < ch->ep_count; i++) {
        cli_endpoint *ep = &ch->eps[(start + i) % ch->ep_count];
        if (usable(ep))
            return ep;
    }
    return avoid;
}

/* Hands `call` to a slot of `ep`: at once when that is this thread's loop,
 * else through the slot loop's inbox, in the call's own task node (no
 * allocation).  After a hand-off to another loop the call is that loop's
 * alone, so nothing here touches it afterwards.
 * @return 0, or ARPC_ESTOPPED if the slot's loop is stopped: the call is
 *         still the caller's. */
static int route(cli_call *call, cli_endpoint *ep)
{
    cli_slot *slot = pick_slot(ep);
    call->ep = ep;
    if (arpc__loop_current() == slot->loop) {
        slot_submit(slot, call);
        return 0;
    }
    arpc__task_set(&call->task, submit_task, slot, call);
    return arpc__loop_post(slot->loop, &call->task);
}

/* Sends a call again.  Loop thread. */
static void dispatch(cli_call *call)
{
    arpc_channel *ch = call->ch;
    cli_endpoint *ep = pick_endpoint(ch, call->hash_key);
    /* Retried elsewhere when there is an elsewhere: the endpoint that just
     * failed the call (a dead server not yet ejected, one going away) would
     * most likely fail it again and burn the retry budget. */
    if (ep == call->ep && ch->ep_count > 1)
        ep = pick_other(ch, call->hash_key, ep);
    call->lnk = NULL;
    if (route(call, ep) < 0)
        call_complete(call, ARPC_ESTOPPED, NULL, 0);
}

/* ---- public calls --------------------------------------------------------- */

/* now + timeout_ms, saturated below ARPC__NO_DEADLINE: a timeout of centuries is
 * still a deadline, and the sum must not overflow. */
static int64_t deadline_after_ms(int64_t timeout_ms)
{
    /* Checked arithmetic, not a division by the time left: this runs once per call. */
    int64_t ns, at;
    if (__builtin_mul_overflow(timeout_ms, ARPC__NS_PER_MS, &ns) ||
        __builtin_add_overflow(arpc__now_ns(), ns, &at) || at >= ARPC__NO_DEADLINE - 1)
        return ARPC__NO_DEADLINE - 1;
    return at;
}

/* A call made for a request being served ends no later than that request's
 * caller waits (arpc_call_opts.parent): the earlier deadline wins, and the
 * timeout sent becomes the time left until it.  Both deadlines are on this
 * host's monotonic clock.  @return 0, or ARPC_ETIMEDOUT if it has passed. */
static int inherit_deadline(const arpc_request *parent, int64_t *deadline_ns, int64_t *timeout_ms)
{
    int64_t parent_ns = arpc__request_deadline_ns(parent);
    if (parent_ns == ARPC__NO_DEADLINE || parent_ns >= *deadline_ns)
        return 0;
    int64_t left = parent_ns - arpc__now_ns();
    if (left <= 0)
        return ARPC_ETIMEDOUT;
    *deadline_ns = parent_ns;
    *timeout_ms = (left + ARPC__NS_PER_MS - 1) / ARPC__NS_PER_MS;
    return 0;
}

static void start_child_task(void *call_arg, void *parent)
{
    cli_call *call = call_arg;
    int rc = parent_watch(call, parent);
    if (rc == 0 && route(call, pick_endpoint(call->ch, call->hash_key)) < 0)
        rc = ARPC_ESTOPPED;
    if (rc < 0)
        call_complete(call, rc, NULL, 0);
}

/* Starts a call made for `parent`: it watches the request, on the request's
 * loop.  @return 0, or ARPC_ECANCELED (the parent is canceled), ARPC_ESTOPPED:
 * the call is still the caller's, without a parent. */
static int start_child(cli_call *call, arpc_request *parent)
{
    arpc_loop *loop = arpc__request_loop(parent);
    if (arpc__loop_current() != loop) {
        /* A deferred request answered from another thread: the call starts on
         * the request's loop, so that only that loop touches its watchers.
         * The holder's later arpc_request_respond() is queued behind this. */
        arpc__task_set(&call->task, start_child_task, call, parent);
        return arpc__loop_post(loop, &call->task);
    }
    int rc = parent_watch(call, parent);
    if (rc == 0) {
        initiating_calls++;
        rc = route(call, pick_endpoint(call->ch, call->hash_key));
        initiating_calls--;
    }
    if (rc < 0) {
        arpc__request_unwatch(&call->cancel);
        call->parent_loop = NULL;
    }
    return rc;
}

/* Writes the payload at `p`, where its `len` bytes of room are. */
static inline __attribute__((always_inline)) void payload_put(const arpc__payload *payload,
                                                              uint8_t *p)
{
    if (arpc__unlikely(payload->pack != NULL))
        payload->pack(payload->data, p); /* a typed request, packed in place */
    else if (payload->len > 0)
        memcpy(p, payload->data, payload->len);
}

/* Copies what the call sends into its own buffer: method, metadata (in
 * memory form), payload; not an encoded frame, which the link's protocol
 * writes when the call is sent (link_send).  @return 0 or ARPC_ENOMEM. */
static inline __attribute__((always_inline)) int
call_fill(cli_call *call, const char *method, size_t method_len, const arpc_metadata_entry *entries,
          size_t count, const arpc__payload *payload)
{
    arpc_buf *data = &call->data;
    size_t req_len = payload->len;
    int rc = arpc__buf_ensure(data, method_len + req_len); /* one growth, if any */
    call->method_len = (uint16_t)method_len;
    if (arpc__likely(rc == 0 && count == 0)) {
        /* The usual call: two copies into room that is there. */
        uint8_t *p = arpc__buf_tail(data);
        memcpy(p, method, method_len);
        payload_put(payload, p + method_len);
        data->len += method_len + req_len;
        call->md_len = 0;
        call->md_count = 0;
        return 0;
    }
    if (rc == 0)
        rc = arpc__buf_append(data, method, method_len);
    arpc__md md = {0};
    if (rc == 0 && count > 0)
        rc = arpc__metadata_append_entries(data, &md, entries, count);
    if (rc == 0)
        rc = arpc__buf_ensure(data, req_len);
    if (rc == 0) {
        payload_put(payload, arpc__buf_tail(data));
        data->len += req_len;
    }
    call->md_len = md.len;
    call->md_count = md.count;
    return rc;
}

/* The protocol's own answer for a request the sum of its sizes does not decide. */
static arpc__noinline bool call_fits_exactly(const arpc_channel *ch, const char *method,
                                             size_t method_len, size_t req_len)
{
    arpc__msg msg = {.method = method, .method_len = method_len, .payload_len = req_len};
    return arpc__proto_fits(ch->proto, &msg, true, ch->opts.max_frame_size);
}

/* True if a request of these sizes fits the channel's max_frame_size.  Most
 * are decided by arpc__proto_fits' sum without building a message for it. */
static inline bool call_fits(const arpc_channel *ch, const char *method, size_t method_len,
                             size_t req_len)
{
    uint64_t limit = ch->opts.max_frame_size;
    return limit == 0 || (uint64_t)ch->proto->overhead + method_len + req_len <= limit ||
           call_fits_exactly(ch, method, method_len, req_len);
}

/* arpc_call_async and arpc__call_start, inline in each: in arpc_call_async
 * `payload->pack` and `ctx` are constant NULL, so the untyped call carries no
 * test of the typed call's options (bench/RESULTS.md, issue #13). */
static inline __attribute__((always_inline)) int
call_start(arpc_channel *ch, const char *method, const arpc__payload *payload,
           const arpc_call_opts *opts, arpc_call_cb cb, void *user_data, const arpc__call_ctx *ctx)
{
    size_t req_len = payload->len;
    if (ch == NULL || method == NULL || cb == NULL || (payload->data == NULL && req_len > 0))
        return ARPC_EINVAL;
    size_t method_len = strlen(method);
    if (method_len == 0 || method_len > ARPC__PROTO_MAX_METHOD)
        return ARPC_EINVAL;
    const arpc_metadata_entry *md_entries = opts ? opts->metadata : NULL;
    size_t md_entry_count = opts ? opts->metadata_count : 0;
    int rc = md_entry_count > 0 ? arpc__metadata_check_entries(md_entries, md_entry_count) : 0;
    if (rc < 0)
        return rc;
    if (!call_fits(ch, method, method_len, req_len))
        return ARPC_ETOOBIG;
    if (atomic_load(&ch->closing))
        return ARPC_ESTOPPED;
    cli_call *call = call_get();
    if (call == NULL)
        return ARPC_ENOMEM;
    bool idempotent = opts ? opts->idempotent : false;
    rc = call_fill(call, method, method_len, md_entries, md_entry_count, payload);
    if (rc < 0) {
        call_free(call);
        return rc;
    }
    call->rsp_md = opts ? opts->response_metadata : NULL;
    if (call->rsp_md != NULL)
        arpc_metadata_clear(call->rsp_md);
    call->err_msg = opts ? opts->error_message : NULL;
    if (call->err_msg != NULL)
        arpc__buf_clear(call->err_msg);
    call->late_put = ctx != NULL;
    if (arpc__unlikely(ctx != NULL)) {
        call->ctx = *ctx;
        user_data = &call->ctx;
    }
    int64_t timeout_ms = opts && opts->timeout_ms >= 0 ? opts->timeout_ms
                                                       : ch->opts.default_timeout_ms;
    int64_t deadline_ns = timeout_ms > 0 ? deadline_after_ms(timeout_ms) : ARPC__NO_DEADLINE;
    if (opts != NULL && opts->parent != NULL &&
        inherit_deadline(opts->parent, &deadline_ns, &timeout_ms) < 0) {
        call_free(call);
        return ARPC_ETIMEDOUT;
    }
    call->ch = ch;
    call->deadline_ns = deadline_ns;
    /* Over 2^32-1 ms it is sent as 2^32-1 ms (what the native field carries,
     * protocol.md 6), never as 0 (none). */
    call->timeout_ms = timeout_ms <= 0           ? 0
                       : timeout_ms > UINT32_MAX ? UINT32_MAX
                                                 : (uint32_t)timeout_ms;
    call->fresh = true;
    call->hash_key = opts ? opts->hash_key : 0;
    call->idempotent = idempotent;
    call->attempts = 0;
    call->cb = cb;
    call->user_data = user_data;
    call->lnk = NULL;
    call->parent_loop = NULL;
    atomic_fetch_add(&ch->active_calls, 1);
    if (arpc__unlikely(opts != NULL && opts->parent != NULL)) {
        /* The request's watchers are its own bookkeeping, not what the
         * caller lent: const only to the caller. */
        rc = start_child(call, (arpc_request *)opts->parent);
    } else {
        initiating_calls++;
        rc = route(call, pick_endpoint(ch, call->hash_key));
        initiating_calls--;
    }
    if (rc < 0) {
        /* Refused before it went anywhere: the callback will not run. */
        call_put(call);
        channel_call_ended(ch);
        return rc;
    }
    atomic_fetch_add_explicit(&ch->calls, 1, memory_order_relaxed);
    return 0;
}

int arpc_call_async(arpc_channel *ch, const char *method, const void *req, size_t req_len,
                    const arpc_call_opts *opts, arpc_call_cb cb, void *user_data)
{
    arpc__payload payload = {.data = req, .len = req_len, .pack = NULL};
    return call_start(ch, method, &payload, opts, cb, user_data, NULL);
}

int arpc__call_start(arpc_channel *ch, const char *method, const arpc__payload *payload,
                     const arpc_call_opts *opts, arpc_call_cb cb, void *user_data,
                     const arpc__call_ctx *ctx)
{
    return call_start(ch, method, payload, opts, cb, user_data, ctx);
}

/* How arpc_call waits.  A coroutine parks and is woken on its own loop with
 * no atomic operation when the call ends there, the common case (the slot's
 * loop is the caller's); a plain thread waits on the event. */
typedef struct sync_wait {
    arpc_coro *coro; /* the waiting coroutine, or NULL for a plain thread */
    arpc__task wake; /* the hand-off to the coroutine's loop, if it ends elsewhere */
    bool finished;   /* for the coroutine: set on its loop thread */
    arpc_event done; /* for the thread */
    arpc_buf *rsp;
    arpc__answer_fn fn; /* arpc__call_wait's consumer of the answer */
    void *arg;
    int status;
} sync_wait;

/* On the waiting coroutine's loop thread. */
static void wake_sync_coro(void *wait_arg, void *unused)
{
    (void)unused;
    sync_wait *wait = wait_arg;
    wait->finished = true;
    arpc__coro_wake(wait->coro);
}

/* The call ended with wait->status set: wakes its waiter. */
static inline void sync_wake(sync_wait *wait)
{
    if (wait->coro == NULL) {
        arpc_event_signal(&wait->done);
    } else if (arpc__loop_current() == wait->coro->loop) {
        wake_sync_coro(wait, NULL);
    } else {
        /* Ended on another loop (a retry moved it): the inbox hand-off also
         * publishes the answer written above to the coroutine's thread.  It
         * is refused only by a stopped loop, whose coroutines stay parked. */
        arpc__task_set(&wait->wake, wake_sync_coro, wait, NULL);
        (void)arpc__loop_post(wait->coro->loop, &wait->wake);
    }
}

static void on_sync_done(int status, const void *rsp, size_t rsp_len, void *user_data)
{
    sync_wait *wait = user_data;
    if (status >= 0 && wait->rsp != NULL && arpc__buf_append(wait->rsp, rsp, rsp_len) < 0)
        status = ARPC_ENOMEM;
    wait->status = status;
    sync_wake(wait);
}

static void on_sync_answer(int status, const void *rsp, size_t rsp_len, void *user_data)
{
    sync_wait *wait = user_data;
    wait->status = wait->fn(status, rsp, rsp_len, wait->arg);
    sync_wake(wait);
}

/* arpc_call and arpc__call_wait: starts the call with `done` and waits. */
static inline __attribute__((always_inline)) int
sync_run(sync_wait *wait, arpc_channel *ch, const char *method, const arpc__payload *payload,
         const arpc_call_opts *opts, arpc_call_cb done, bool typed)
{
    /* Blocking a loop thread would stall the loop, and deadlock when the
     * call's own connection lives there. */
    if (arpc__on_loop_outside_coro())
        return ARPC_ENOTCORO;
    wait->coro = arpc__coro_self();
    wait->finished = false;
    arpc_event_init(&wait->done);
    wait->status = 0;
    int rc = typed ? arpc__call_start(ch, method, payload, opts, done, wait, NULL)
                   : arpc_call_async(ch, method, payload->data, payload->len, opts, done, wait);
    if (rc < 0)
        return rc;
    if (wait->coro == NULL) {
        arpc_event_wait(&wait->done, -1);
        return wait->status;
    }
    while (!wait->finished)
        arpc__coro_park(ARPC__NO_DEADLINE);
    return wait->status;
}

int arpc_call(arpc_channel *ch, const char *method, const void *req, size_t req_len,
              const arpc_call_opts *opts, arpc_buf *rsp)
{
    sync_wait wait;
    wait.rsp = rsp;
    arpc__payload payload = {.data = req, .len = req_len, .pack = NULL};
    return sync_run(&wait, ch, method, &payload, opts, on_sync_done, false);
}

int arpc__call_wait(arpc_channel *ch, const char *method, const arpc__payload *payload,
                    const arpc_call_opts *opts, arpc__answer_fn fn, void *arg)
{
    sync_wait wait;
    wait.fn = fn;
    wait.arg = arg;
    return sync_run(&wait, ch, method, payload, opts, on_sync_answer, true);
}

/* ---- streams: the client half (docs/streams.md) ---------------------------------------
 *
 * A stream is routed like a call (the channel's load balancing picks the endpoint, the
 * endpoint's pool a slot) but is then pinned to that slot's loop for its whole life, so
 * that every thread knows where to hand its operations (stream.c).  It waits in its
 * slot's `streams` until the link is connected and the server's settings have said it
 * takes streams, then takes a request id on the link (shared with calls, and counted in
 * the server's per-connection share) and sends OPEN.  The link's `streams` table finds it
 * for every frame that arrives.  It is never sent again once opened, with one exception:
 * a GOAWAY whose last id is below it, before it sent any message or its half-close (the
 * server never saw it), opens it again on another endpoint whose slot is on the same
 * loop, or on the same slot's next connection. */

static void stream_submit(cli_slot *slot, arpc_stream *st);

static cli_link *stream_link(const arpc_stream *st)
{
    return st->lnk;
}

/* Takes a stream off its link; the link may close (GOAWAY drained) or pump. */
static void link_stream_detach(cli_link *lnk, arpc_stream *st)
{
    arpc__pending_remove(&lnk->streams, st->id);
    link_set_room(lnk);
    atomic_fetch_sub_explicit(&lnk->ep->in_flight, 1, memory_order_relaxed);
    st->lnk = NULL;
}

static int client_send(arpc_stream *st, arpc__stream_frame frame, arpc__msg *msg)
{
    cli_link *lnk = stream_link(st);
    if (lnk == NULL || lnk->conn.closed)
        return ARPC_ECLOSED;
    if (frame == ARPC__STREAM_MESSAGE &&
        (msg->payload_len > st->ch->opts.max_frame_size ||
         !arpc__proto_fits(lnk->proto, msg, false, lnk->peer_max_frame)))
        return ARPC_ETOOBIG;
    int rc = lnk->proto->send_stream(lnk->conn.proto, &lnk->conn.out, frame, msg);
    if (rc == 0)
        arpc__conn_flush_soon(&lnk->conn);
    return rc;
}

static void client_ended(arpc_stream *st, int status, bool tell)
{
    (void)status;
    arpc__loop_timer_disarm(st->loop, &st->deadline);
    cli_link *lnk = stream_link(st);
    if (lnk != NULL) {
        link_stream_detach(lnk, st);
        if (tell)
            (void)link_send_cancel(lnk, st->id);
        link_close_if_drained(lnk);
        if (lnk->slot != NULL && !lnk->conn.closed)
            link_pump(lnk);
    } else if (arpc__list_linked(&st->link)) {
        arpc__list_remove(&st->link); /* waiting for a connection */
    }
    channel_call_ended(st->ch);
}

static const arpc__stream_transport client_transport = {
    .send = client_send,
    .ended = client_ended,
};

/* A link takes streams once connected and, on a protocol with settings, once they came. */
static bool link_stream_ready(const cli_link *lnk)
{
    return !lnk->conn.connecting && !lnk->conn.closed &&
           (lnk->settings_known || !(lnk->proto->caps & ARPC__PROTO_PING));
}

/* Sends the OPEN of a stream on a ready link. */
static void link_stream_open(cli_link *lnk, arpc_stream *st)
{
    if (!lnk->peer_streams) {
        static const char why[] = "the server does not take streams";
        arpc__buf_clear(&st->error_message);
        (void)arpc__buf_append(&st->error_message, why, sizeof(why) - 1);
        arpc__stream_fail(st, ARPC_ENOMETHOD, false);
        return;
    }
    int64_t timeout_ns = 0;
    if (st->deadline_ns != ARPC__NO_DEADLINE) {
        timeout_ns = st->deadline_ns - arpc__now_ns();
        if (timeout_ns <= 0) {
            arpc__stream_fail(st, ARPC_ETIMEDOUT, false);
            return;
        }
    }
    const uint8_t *data = arpc__buf_head(&st->open_data);
    uint64_t id = lnk->next_id + 1;
    arpc__msg msg = {
        .id = id,
        .method = (const char *)data,
        .method_len = st->method_len,
        .timeout_ns = timeout_ns,
        .md = {.data = data + st->method_len, .len = st->md_len, .count = st->md_count},
    };
    if (!arpc__proto_fits(lnk->proto, &msg, true, lnk->peer_max_frame)) {
        arpc__stream_fail(st, ARPC_ETOOBIG, false);
        return;
    }
    int rc = arpc__pending_insert(&lnk->streams, id, st);
    if (rc == 0) {
        rc = lnk->proto->send_stream(lnk->conn.proto, &lnk->conn.out, ARPC__STREAM_OPEN, &msg);
        if (rc < 0)
            arpc__pending_remove(&lnk->streams, id);
    }
    if (rc < 0) {
        arpc__stream_fail(st, rc, false);
        return;
    }
    lnk->next_id = id;
    link_set_room(lnk);
    st->id = id;
    st->lnk = lnk;
    atomic_fetch_add_explicit(&lnk->ep->in_flight, 1, memory_order_relaxed);
    arpc__conn_flush_soon(&lnk->conn);
    arpc__stream_opened(st, lnk->peer_stream_window, lnk->peer_max_frame);
}

/* Opens the streams that wait for the link, as far as the server's share allows. */
static void link_pump_streams(cli_link *lnk)
{
    cli_slot *slot = lnk->slot;
    while (slot != NULL && slot->lnk == lnk && link_stream_ready(lnk) && link_has_room(lnk) &&
           !arpc__list_empty(&slot->streams)) {
        arpc__list *node = arpc__list_pop_front(&slot->streams);
        link_stream_open(lnk, arpc__container_of(node, arpc_stream, link));
    }
}

static void slot_fail_streams(cli_slot *slot, int err)
{
    arpc__list *node;
    while ((node = arpc__list_pop_front(&slot->streams)) != NULL)
        arpc__stream_fail(arpc__container_of(node, arpc_stream, link), err, false);
}

static void fail_link_stream(void *st_arg, void *failure_arg)
{
    arpc_stream *st = st_arg;
    const link_failure *failure = failure_arg;
    atomic_fetch_sub_explicit(&failure->lnk->ep->in_flight, 1, memory_order_relaxed);
    st->lnk = NULL;
    /* Still open (the channel abandons it): the server stops its handler. */
    if (!failure->lnk->conn.closed)
        (void)link_send_cancel(failure->lnk, st->id);
    arpc__stream_fail(st, failure->err, false);
}

static void fail_link_streams(cli_link *lnk, int err)
{
    if (lnk->streams.len == 0)
        return;
    link_failure failure = {lnk, err};
    arpc__pending_drain(&lnk->streams, fail_link_stream, &failure);
}

/* A slot on the stream's loop for a stream the server never saw: another endpoint's when
 * there is one there, else its own slot (which connects again). */
static cli_slot *stream_retry_slot(arpc_stream *st)
{
    arpc_channel *ch = st->ch;
    cli_slot *own = st->slot;
    for (unsigned i = 1; i < ch->ep_count; i++) {
        cli_endpoint *ep =
            &ch->eps[((unsigned)((cli_endpoint *)st->ep - ch->eps) + i) % ch->ep_count];
        if (!usable(ep))
            continue;
        for (unsigned j = 0; j < ep->slot_count; j++) {
            if (ep->slots[j].loop == st->loop)
                return &ep->slots[j];
        }
    }
    return own;
}

static void goaway_streams(cli_link *lnk, uint64_t last_id, int reason)
{
    for (uint64_t id = last_id + 1; id <= lnk->next_id && lnk->streams.len > 0; id++) {
        arpc_stream *st = arpc__pending_find(&lnk->streams, id);
        if (st == NULL)
            continue;
        link_stream_detach(lnk, st);
        arpc_channel *ch = st->ch;
        if (st->sent_message || st->half_close_sent || st->attempts >= ch->opts.max_retries ||
            atomic_load(&ch->closing)) {
            arpc__stream_fail(st, reason, false);
            continue;
        }
        st->attempts++;
        st->opened = false;
        st->credit = 0;
        atomic_fetch_add_explicit(&ch->retries, 1, memory_order_relaxed);
        cli_slot *slot = stream_retry_slot(st);
        st->slot = slot;
        st->ep = slot->ep;
        stream_submit(slot, st);
    }
}

static void on_stream_deadline(arpc__timer *timer)
{
    arpc_stream *st = arpc__container_of(timer, arpc_stream, deadline);
    arpc__stream_fail(st, ARPC_ETIMEDOUT, true);
}

/* On the slot's loop: the stream opens now or waits for the link. */
static void stream_submit(cli_slot *slot, arpc_stream *st)
{
    if (st->ended)
        return; /* canceled while it travelled */
    if (slot->closed) {
        arpc__stream_fail(st, ARPC_ECANCELED, false);
        return;
    }
    if (st->deadline_ns != ARPC__NO_DEADLINE && !arpc__timer_queued(&st->deadline) &&
        arpc__loop_timer_arm(slot->loop, &st->deadline, st->deadline_ns) < 0) {
        arpc__stream_fail(st, ARPC_ENOMEM, false);
        return;
    }
    cli_link *lnk = slot->lnk;
    if (lnk != NULL && link_stream_ready(lnk) && link_has_room(lnk) &&
        arpc__list_empty(&slot->streams)) {
        link_stream_open(lnk, st);
        return;
    }
    if (lnk == NULL && slot->in_backoff && no_usable_endpoint(st->ch)) {
        int err = atomic_load(&slot->ep->last_error);
        arpc__stream_fail(st, err < 0 ? err : ARPC_ENOENDPOINT, false);
        return;
    }
    arpc__list_push_back(&slot->streams, &st->link);
    slot_connect(slot);
}

static void stream_submit_task(void *slot, void *st)
{
    stream_submit(slot, st);
}

/* Copies the method and the request metadata into the stream.  @return 0 or ENOMEM. */
static int stream_fill(arpc_stream *st, const char *method, size_t method_len,
                       const arpc_call_opts *opts)
{
    int rc = arpc__buf_append(&st->open_data, method, method_len);
    arpc__md md = {0};
    if (rc == 0 && opts != NULL && opts->metadata_count > 0)
        rc = arpc__metadata_append_entries(&st->open_data, &md, opts->metadata,
                                           opts->metadata_count);
    st->method_len = (uint16_t)method_len;
    st->md_len = md.len;
    st->md_count = md.count;
    return rc;
}

/* The stream's deadline: its own timeout (none by default), or its parent's if earlier.
 * @return 0, ARPC_ETIMEDOUT or ARPC_ECANCELED. */
static int stream_deadline(const arpc_call_opts *opts, int64_t *deadline_ns)
{
    int64_t timeout_ms = opts != NULL && opts->timeout_ms > 0 ? opts->timeout_ms : 0;
    *deadline_ns = timeout_ms > 0 ? deadline_after_ms(timeout_ms) : ARPC__NO_DEADLINE;
    if (opts == NULL || opts->parent == NULL)
        return 0;
    if (inherit_deadline(opts->parent, deadline_ns, &timeout_ms) < 0)
        return ARPC_ETIMEDOUT;
    return arpc_request_is_canceled(opts->parent) ? ARPC_ECANCELED : 0;
}

int arpc_stream_open(arpc_channel *ch, const char *method, const arpc_call_opts *opts,
                     arpc_stream **out)
{
    if (ch == NULL || method == NULL || out == NULL)
        return ARPC_EINVAL;
    size_t method_len = strlen(method);
    if (method_len == 0 || method_len > ARPC__PROTO_MAX_METHOD)
        return ARPC_EINVAL;
    int rc = opts != NULL && opts->metadata_count > 0
                 ? arpc__metadata_check_entries(opts->metadata, opts->metadata_count)
                 : 0;
    if (rc < 0)
        return rc;
    int64_t deadline_ns;
    rc = stream_deadline(opts, &deadline_ns);
    if (rc < 0)
        return rc;
    if (atomic_load(&ch->closing))
        return ARPC_ESTOPPED;
    arpc_stream *st =
        arpc__stream_new(&client_transport, NULL, false, ch->opts.stream_window_bytes);
    if (st == NULL)
        return ARPC_ENOMEM;
    rc = stream_fill(st, method, method_len, opts);
    if (rc < 0) {
        arpc__stream_free(st);
        return rc;
    }
    st->ch = ch;
    st->deadline_ns = deadline_ns;
    arpc__timer_init(&st->deadline, on_stream_deadline);
    st->rsp_md = opts != NULL ? opts->response_metadata : NULL;
    if (st->rsp_md != NULL)
        arpc_metadata_clear(st->rsp_md);
    cli_endpoint *ep = pick_endpoint(ch, opts != NULL ? opts->hash_key : 0);
    cli_slot *slot = pick_slot(ep);
    st->ep = ep;
    st->slot = slot;
    st->loop = slot->loop;
    /* A parent's cancel reaches a stream opened on the parent's loop (its handler): the
     * watch lives there.  The request's watchers are its own bookkeeping, not what the
     * caller lent: const only to the caller. */
    arpc_request *parent = opts != NULL ? (arpc_request *)opts->parent : NULL;
    if (parent != NULL && arpc__loop_current() == arpc__request_loop(parent) &&
        arpc__stream_watch_parent(st, parent) < 0) {
        arpc__stream_free(st);
        return ARPC_ECANCELED;
    }
    atomic_fetch_add(&ch->active_calls, 1);
    if (arpc__loop_current() == slot->loop) {
        stream_submit(slot, st);
    } else {
        arpc__task_set(&st->open_task, stream_submit_task, slot, st);
        if (arpc__loop_post(slot->loop, &st->open_task) < 0) {
            if (st->parent_loop != NULL)
                arpc__request_unwatch(&st->parent_node); /* on its loop: this one */
            arpc__stream_free(st);
            channel_call_ended(ch);
            return ARPC_ESTOPPED;
        }
    }
    atomic_fetch_add_explicit(&ch->calls, 1, memory_order_relaxed);
    *out = st;
    return 0;
}

/* A frame of stream `msg->id` from the server. */
static int ev_stream(void *owner, arpc__stream_frame frame, const arpc__msg *msg)
{
    cli_link *lnk = link_of(owner);
    link_heard(lnk);
    arpc_stream *st = arpc__pending_find(&lnk->streams, msg->id);
    if (st == NULL)
        return 0; /* it ended here already (canceled, its deadline) */
    switch (frame) {
    case ARPC__STREAM_MESSAGE:
        if (msg->md.count > 0 && arpc__stream_md_add(st->rsp_md, &msg->md) < 0) {
            arpc__stream_fail(st, ARPC_ENOMEM, true);
            return 0;
        }
        return arpc__stream_on_message(st, msg->payload, msg->payload_len);
    case ARPC__STREAM_CREDIT:
        arpc__stream_on_credit(st, msg->payload_len);
        return 0;
    case ARPC__STREAM_END: {
        int status = msg->status;
        if (msg->md.count > 0 && arpc__stream_md_add(st->rsp_md, &msg->md) < 0)
            status = ARPC_ENOMEM;
        arpc__stream_on_end(st, status, msg->payload, msg->payload_len);
        return 0;
    }
    default:
        return 0; /* OPEN and HALF_CLOSE go the other way: the session would not raise them */
    }
}

/* ---- channel life cycle ---------------------------------------------------- */

static _Atomic unsigned next_channel_loop;

static int ring_compare(const void *a, const void *b)
{
    const ring_point *x = a;
    const ring_point *y = b;
    return x->hash < y->hash ? -1 : x->hash > y->hash;
}

static int build_ring(arpc_channel *ch)
{
    ch->ring_len = ch->ep_count * RING_POINTS;
    ch->ring = arpc__calloc(ch->ring_len, sizeof(*ch->ring));
    if (ch->ring == NULL)
        return ARPC_ENOMEM;
    for (unsigned e = 0; e < ch->ep_count; e++) {
        uint64_t base = 1469598103934665603ULL;
        for (const char *p = ch->eps[e].address; *p; p++)
            base = (base ^ (unsigned char)*p) * 1099511628211ULL;
        for (unsigned i = 0; i < RING_POINTS; i++) {
            ring_point *point = &ch->ring[e * RING_POINTS + i];
            point->hash = hash64(base + i);
            point->endpoint = e;
        }
    }
    qsort(ch->ring, ch->ring_len, sizeof(*ch->ring), ring_compare);
    return 0;
}

/* "host:port", "[v6]:port" -> host (the name TLS verifies by default). */
static void endpoint_host(cli_endpoint *ep)
{
    const char *a = ep->address;
    const char *colon = strrchr(a, ':');
    size_t len = colon != NULL ? (size_t)(colon - a) : strlen(a);
    if (len >= 2 && a[0] == '[' && a[len - 1] == ']') {
        a++;
        len -= 2;
    }
    memcpy(ep->host, a, len);
    ep->host[len] = '\0';
}

static int init_endpoint(arpc_channel *ch, cli_endpoint *ep, const char *address, size_t len)
{
    if (len == 0 || len >= sizeof(ep->address))
        return ARPC_EBADADDR;
    memcpy(ep->address, address, len);
    ep->address[len] = '\0';
    int rc = arpc__addr_parse(ep->address, &ep->addr, &ep->addr_len);
    if (rc < 0)
        return rc;
    endpoint_host(ep);
    ep->ch = ch;
    ep->slot_count = ch->opts.connections_per_endpoint;
    ep->slots = arpc__calloc(ep->slot_count, sizeof(*ep->slots));
    if (ep->slots == NULL)
        return ARPC_ENOMEM;
    unsigned loops = arpc_runtime_loop_count(ch->rt);
    for (unsigned i = 0; i < ep->slot_count; i++) {
        cli_slot *slot = &ep->slots[i];
        unsigned index = atomic_fetch_add_explicit(&next_channel_loop, 1, memory_order_relaxed);
        slot->ep = ep;
        slot->loop = arpc_runtime_loop(ch->rt, index % loops);
        arpc__list_init(&slot->waiting);
        arpc__list_init(&slot->draining);
        arpc__list_init(&slot->streams);
        arpc__timer_init(&slot->backoff, on_backoff_done);
    }
    return 0;
}

static unsigned count_endpoints(const char *target)
{
    unsigned n = 1;
    for (const char *p = target; *p; p++)
        n += *p == ',';
    return n;
}

static int parse_target(arpc_channel *ch, const char *target)
{
    ch->ep_count = count_endpoints(target);
    if (ch->ep_count > MAX_ENDPOINTS)
        return ARPC_EINVAL;
    ch->eps = arpc__calloc(ch->ep_count, sizeof(*ch->eps));
    if (ch->eps == NULL)
        return ARPC_ENOMEM;
    const char *start = target;
    for (unsigned i = 0; i < ch->ep_count; i++) {
        const char *end = strchr(start, ',');
        size_t len = end ? (size_t)(end - start) : strlen(start);
        int rc = init_endpoint(ch, &ch->eps[i], start, len);
        if (rc < 0)
            return rc;
        start = end ? end + 1 : start + len;
    }
    return 0;
}

static void channel_free(arpc_channel *ch)
{
    for (unsigned i = 0; ch->eps != NULL && i < ch->ep_count; i++)
        arpc__free(ch->eps[i].slots);
    arpc__free(ch->eps);
    arpc__free(ch->ring);
    arpc__tls_ctx_destroy(ch->tls);
    arpc__free(ch->tls_server_name);
    arpc__free(ch);
}

/* Builds the channel's TLS context from opts.tls, whose borrowed strings are
 * then forgotten (the server name is copied).  @return 0, ARPC_EINVAL (a file
 * that does not load; logged with OpenSSL's reason) or ARPC_ENOMEM. */
static int channel_tls_setup(arpc_channel *ch)
{
    arpc_channel_tls_opts *t = &ch->opts.tls;
    int rc = 0;
    if (t->enabled) {
        arpc__tls_config cfg = {.server = false,
                                .cert_file = t->cert_file,
                                .key_file = t->key_file,
                                .ca_file = t->ca_file,
                                .min_version = t->min_version,
                                .max_version = t->max_version};
        char why[256] = "";
        rc = arpc__tls_ctx_create(&cfg, &ch->tls, why, sizeof(why));
        if (rc < 0)
            ARPC_LOG_WARNF("channel TLS: %s: %s", arpc_strerror(rc), why);
        if (rc == 0 && t->server_name != NULL) {
            size_t len = strlen(t->server_name) + 1;
            ch->tls_server_name = arpc__malloc(len);
            if (ch->tls_server_name == NULL)
                rc = ARPC_ENOMEM;
            else
                memcpy(ch->tls_server_name, t->server_name, len);
        }
    }
    t->ca_file = t->server_name = t->cert_file = t->key_file = NULL;
    return rc;
}

static bool opts_valid(const arpc_channel_opts *o)
{
    return o->connections_per_endpoint >= 1 && o->connections_per_endpoint <= 1024 &&
           o->connect_timeout_ms > 0 && o->heartbeat_interval_ms >= 0 &&
           o->heartbeat_timeout_ms >= 0 &&
           /* With heartbeats on, a timeout of 0 would declare every healthy
            * connection dead at its first PING. */
           (o->heartbeat_interval_ms == 0 || o->heartbeat_timeout_ms > 0) &&
           o->reconnect_backoff_min_ms > 0 &&
           o->reconnect_backoff_max_ms >= o->reconnect_backoff_min_ms &&
           o->max_frame_size > ARPC__PROTO_MIN_MAX_MESSAGE &&
           o->stream_window_bytes >= ARPC__STREAM_MIN_WINDOW &&
           (!o->tls.enabled || o->tls.handshake_timeout_ms > 0) &&
           arpc__proto_by_id((int)o->protocol) != NULL && o->lb_policy >= ARPC_LB_ROUND_ROBIN &&
           o->lb_policy <= ARPC_LB_CONSISTENT_HASH;
}

int arpc_channel_create(arpc_runtime *rt, const char *target, const arpc_channel_opts *opts,
                        arpc_channel **out)
{
    if (rt == NULL || target == NULL || out == NULL)
        return ARPC_EINVAL;
    arpc_channel *ch = arpc__calloc(1, sizeof(*ch));
    if (ch == NULL)
        return ARPC_ENOMEM;
    if (opts != NULL)
        ch->opts = *opts;
    else
        arpc_channel_opts_init(&ch->opts);
    if (!opts_valid(&ch->opts)) {
        arpc__free(ch);
        return ARPC_EINVAL;
    }
    ch->rt = rt;
    ch->proto = arpc__proto_by_id((int)ch->opts.protocol);
    arpc_event_init(&ch->idle);
    int rc = channel_tls_setup(ch);
    if (rc == 0)
        rc = parse_target(ch, target);
    if (rc == 0)
        rc = build_ring(ch);
    if (rc < 0) {
        channel_free(ch);
        return rc;
    }
    *out = ch;
    return 0;
}

void arpc__channel_use_protocol(arpc_channel *ch, const arpc__proto_ops *proto)
{
    ch->proto = proto;
}

static void cancel_sent_call(void *call_arg, void *lnk_arg)
{
    cli_call *call = call_arg;
    cli_link *lnk = lnk_arg;
    (void)link_send_cancel(lnk, call->id);
    atomic_fetch_sub_explicit(&lnk->ep->in_flight, 1, memory_order_relaxed);
    call->lnk = NULL;
    call_complete(call, ARPC_ECANCELED, NULL, 0);
}

/* The channel is destroyed: the link's calls are abandoned.  A protocol that
 * can cancel tells the server about each (written before the close), so it
 * stops their work even if it sees the close late; then the link closes. */
static void link_abandon(cli_link *lnk)
{
    if (lnk->proto->send_cancel != NULL && !lnk->conn.closed && !lnk->conn.connecting) {
        arpc__conn_ref(&lnk->conn); /* a failed flush closes it, which may free it */
        arpc__pending_drain(&lnk->pending, cancel_sent_call, lnk);
        fail_link_streams(lnk, ARPC_ECANCELED);
        arpc__conn_flush_now(&lnk->conn);
        arpc__conn_close(&lnk->conn, ARPC_ECANCELED);
        arpc__conn_unref(&lnk->conn);
        return;
    }
    arpc__conn_close(&lnk->conn, ARPC_ECANCELED);
}

static void close_slot_task(void *slot_arg, void *wg)
{
    cli_slot *slot = slot_arg;
    slot->closed = true;
    arpc__loop_timer_disarm(slot->loop, &slot->backoff);
    slot_fail_waiting(slot, ARPC_ECANCELED);
    if (slot->lnk != NULL)
        link_abandon(slot->lnk);
    /* Links left by a GOAWAY: their calls end now too, not whenever (if
     * ever) the server answers them.  Closing one takes it off the list. */
    arpc__list *node;
    while ((node = arpc__list_pop_front(&slot->draining)) != NULL) {
        cli_link *lnk = arpc__container_of(node, cli_link, draining_link);
        link_abandon(lnk);
    }
    arpc_wg_done(wg);
}

/* Runs `fn` on every slot's loop (in the slot's own task node) and waits. */
static void run_on_every_slot(arpc_channel *ch, arpc__task_fn fn, unsigned slots)
{
    arpc_wg wg;
    arpc_wg_init(&wg, slots);
    for (unsigned i = 0; i < ch->ep_count; i++) {
        for (unsigned j = 0; j < ch->eps[i].slot_count; j++) {
            cli_slot *slot = &ch->eps[i].slots[j];
            arpc__task_set(&slot->task, fn, slot, &wg);
            arpc__loop_post_or_run(slot->loop, &slot->task);
        }
    }
    arpc_wg_wait(&wg, -1);
}

static void barrier_slot_task(void *slot, void *wg)
{
    arpc_wg_done(wg);
}

static void destroy_coro(void *ch)
{
    arpc_channel_destroy(ch);
    arpc__loop_release_runtime(arpc__loop_current());
}

/* On a loop thread outside a coroutine the destroy cannot wait for the
 * loops; it continues in a coroutine of this loop.  @return true if it did. */
static bool destroy_later(arpc_channel *ch)
{
    arpc_loop *loop = arpc__loop_current();
    atomic_store(&ch->closing, true);
    arpc__loop_hold_runtime(loop);
    if (arpc_coro_spawn(loop, destroy_coro, ch) == 0)
        return true;
    arpc__loop_release_runtime(loop);
    ARPC_LOG_ERRORF("arpc_channel_destroy: no coroutine to finish it on this loop; leaked");
    return false;
}

void arpc_channel_destroy(arpc_channel *ch)
{
    if (ch == NULL)
        return;
    if (arpc__on_loop_outside_coro()) {
        destroy_later(ch);
        return;
    }
    atomic_store(&ch->closing, true);
    unsigned slots = 0;
    for (unsigned i = 0; i < ch->ep_count; i++)
        slots += ch->eps[i].slot_count;
    run_on_every_slot(ch, close_slot_task, slots);
    /* A call may still be finishing on its loop (completed, not yet counted
     * off).  The memory goes only when no call can touch it. */
    while (atomic_load(&ch->active_calls) > 0)
        arpc_event_wait(&ch->idle, 100);
    /* The call that brought the count to zero may still be in
     * channel_call_ended() (or closing its drained link) on its slot's loop:
     * once every slot loop has run one more task, nothing touches `ch`. */
    run_on_every_slot(ch, barrier_slot_task, slots);
    channel_free(ch);
}

void arpc_channel_get_stats(const arpc_channel *ch, arpc_channel_stats *out)
{
    arpc_channel *c = (arpc_channel *)ch;
    out->calls = atomic_load_explicit(&c->calls, memory_order_relaxed);
    out->retries = atomic_load_explicit(&c->retries, memory_order_relaxed);
    out->reconnects = atomic_load_explicit(&c->reconnects, memory_order_relaxed);
    out->heartbeat_failures = atomic_load_explicit(&c->heartbeat_failures, memory_order_relaxed);
    out->late_answers = atomic_load_explicit(&c->late_answers, memory_order_relaxed);
    out->goaways = atomic_load_explicit(&c->goaways, memory_order_relaxed);
}
