#include "test_stats.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "test.h"

/* One wait: on the server if `srv` is set, else on the channel. */
typedef struct stat_wait {
    const arpc_server *srv;
    const arpc_channel *ch;
    size_t offset;
    uint64_t want;
    bool exact;
} stat_wait;

/* The stats structs hold only uint64_t counters; memcpy reads one by offset. */
static uint64_t field_at(const void *stats, size_t offset)
{
    uint64_t v;
    memcpy(&v, (const char *)stats + offset, sizeof(v));
    return v;
}

uint64_t server_stat(const arpc_server *srv, size_t offset)
{
    arpc_server_stats st;
    arpc_server_get_stats(srv, &st);
    return field_at(&st, offset);
}

uint64_t channel_stat(const arpc_channel *ch, size_t offset)
{
    arpc_channel_stats st;
    arpc_channel_get_stats(ch, &st);
    return field_at(&st, offset);
}

static uint64_t stat_now(const stat_wait *w)
{
    return w->srv ? server_stat(w->srv, w->offset) : channel_stat(w->ch, w->offset);
}

static bool stat_reached(void *arg)
{
    const stat_wait *w = arg;
    uint64_t v = stat_now(w);
    return w->exact ? v == w->want : v >= w->want;
}

static bool stat_wait_run(stat_wait *w, const char *name, int timeout_ms)
{
    if (wait_until(stat_reached, w, timeout_ms))
        return true;
    fprintf(stderr, "  %s %s is %" PRIu64 " after %d ms, want %s %" PRIu64 "\n",
            w->srv ? "server" : "channel", name, stat_now(w), timeout_ms,
            w->exact ? "==" : ">=", w->want);
    return false;
}

bool wait_server_stat(const arpc_server *srv, size_t offset, const char *name, bool exact,
                      uint64_t want, int timeout_ms)
{
    stat_wait w = {.srv = srv, .offset = offset, .want = want, .exact = exact};
    return stat_wait_run(&w, name, timeout_ms);
}

bool wait_channel_stat(const arpc_channel *ch, size_t offset, const char *name, bool exact,
                       uint64_t want, int timeout_ms)
{
    stat_wait w = {.ch = ch, .offset = offset, .want = want, .exact = exact};
    return stat_wait_run(&w, name, timeout_ms);
}

static void signal_canceled(arpc_request *req, void *ev)
{
    (void)req;
    arpc_event_signal(ev);
}

bool test_wait_request_canceled(arpc_request *req, int64_t timeout_ms)
{
    arpc_event ev;
    arpc_event_init(&ev);
    if (arpc_request_on_cancel(req, signal_canceled, &ev) == 0)
        (void)arpc_event_wait(&ev, timeout_ms);
    return arpc_request_is_canceled(req);
}
