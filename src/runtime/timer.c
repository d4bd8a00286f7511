/*
 * Design notes: public timers are slots in chunks of CHUNK timers (stable
 * addresses, since the heap points into them) named by ids that carry
 * the slot index and a generation.  A slot's generation changes every time
 * it is freed, so a stale id (the timer fired or was cancelled) never cancels
 * a newer timer that reuses the slot.
 */
#include <arpc/err.h>
#include <arpc/timer.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/clock.h"
#include "runtime/loop.h"

#define CHUNK 256

struct arpc__user_timer {
    arpc__timer timer;
    arpc_loop *loop;
    arpc_timer_cb cb;
    void *user_data;
    uint32_t generation;
    uint32_t index;
    uint32_t next_free;
};

static arpc__user_timer *slot(arpc_loop *loop, uint32_t index)
{
    return &loop->user_timer_chunks[index / CHUNK][index % CHUNK];
}

static void free_slot(arpc_loop *loop, arpc__user_timer *t, uint32_t index)
{
    t->generation++;
    t->next_free = loop->user_timer_free;
    loop->user_timer_free = index;
}

static void on_fire(arpc__timer *timer)
{
    arpc__user_timer *t = arpc__container_of(timer, arpc__user_timer, timer);
    arpc_loop *loop = t->loop;
    arpc_timer_cb cb = t->cb;
    void *user_data = t->user_data;
    /* Free first: the callback may add timers and reuse this slot. */
    free_slot(loop, t, t->index);
    cb(user_data);
}

static int grow(arpc_loop *loop)
{
    uint32_t n = loop->user_timer_chunk_count;
    arpc__user_timer **chunks =
        arpc__realloc(loop->user_timer_chunks, (n + 1) * sizeof(*chunks));
    if (chunks == NULL)
        return ARPC_ENOMEM;
    loop->user_timer_chunks = chunks;
    arpc__user_timer *chunk = arpc__calloc(CHUNK, sizeof(*chunk));
    if (chunk == NULL)
        return ARPC_ENOMEM;
    chunks[n] = chunk;
    loop->user_timer_chunk_count = n + 1;
    for (uint32_t i = CHUNK; i-- > 0;) {
        chunk[i].loop = loop;
        chunk[i].index = n * CHUNK + i;
        arpc__timer_init(&chunk[i].timer, on_fire);
        chunk[i].next_free = loop->user_timer_free;
        loop->user_timer_free = n * CHUNK + i;
    }
    return 0;
}

int arpc_timer_add(arpc_loop *loop, int64_t delay_ms, arpc_timer_cb cb, void *user_data,
                   arpc_timer_id *out)
{
    if (loop == NULL || cb == NULL || delay_ms < 0)
        return ARPC_EINVAL;
    if (loop->user_timer_free == UINT32_MAX) {
        int rc = grow(loop);
        if (rc < 0)
            return rc;
    }
    uint32_t index = loop->user_timer_free;
    arpc__user_timer *t = slot(loop, index);
    int rc = arpc__loop_timer_arm(loop, &t->timer, arpc__now_ns() + delay_ms * ARPC__NS_PER_MS);
    if (rc < 0)
        return rc;
    loop->user_timer_free = t->next_free;
    t->cb = cb;
    t->user_data = user_data;
    if (out)
        *out = ((uint64_t)t->generation << 32) | index;
    return 0;
}

int arpc_timer_cancel(arpc_loop *loop, arpc_timer_id id)
{
    uint32_t index = (uint32_t)id;
    uint32_t generation = (uint32_t)(id >> 32);
    if (loop == NULL || index / CHUNK >= loop->user_timer_chunk_count)
        return ARPC_EINVAL;
    arpc__user_timer *t = slot(loop, index);
    if (t->generation != generation || !arpc__timer_queued(&t->timer))
        return ARPC_EINVAL;
    arpc__loop_timer_disarm(loop, &t->timer);
    free_slot(loop, t, index);
    return 0;
}

void arpc__loop_user_timers_fini(arpc_loop *loop)
{
    for (uint32_t i = 0; i < loop->user_timer_chunk_count; i++) {
        for (uint32_t j = 0; j < CHUNK; j++)
            arpc__loop_timer_disarm(loop, &loop->user_timer_chunks[i][j].timer);
        arpc__free(loop->user_timer_chunks[i]);
    }
    arpc__free(loop->user_timer_chunks);
    loop->user_timer_chunks = NULL;
    loop->user_timer_chunk_count = 0;
}
