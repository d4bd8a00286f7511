/*
 * Load balancing over three in-process servers on one runtime, each counting
 * the requests it serves: round robin spreads evenly, random reaches every
 * server, least-in-flight steers around a slow server, and consistent hashing
 * pins a key to one server and, when that server shuts down, moves only the
 * keys that lived on it.
 */
#include <pthread.h>
#include <signal.h>

#include "fault_util.h"
#include "test.h"

#define SERVERS 3
#define KEYS    60

typedef struct lb_server {
    arpc_server *srv;
    _Atomic int count;
    int delay_ms;
} lb_server;

typedef struct lb_fixture {
    arpc_runtime *rt;
    lb_server s[SERVERS];
    char target[256];
} lb_fixture;

static int handle_work(arpc_request *req, void *user_data)
{
    lb_server *s = user_data;
    atomic_fetch_add(&s->count, 1);
    if (s->delay_ms > 0)
        arpc_coro_sleep_ms(s->delay_ms);
    return arpc_buf_append(arpc_request_response(req), "ok", 2);
}

static void fixture_start(lb_fixture *f)
{
    memset(f, 0, sizeof(*f));
    f->rt = fault_runtime(2);
    size_t len = 0;
    for (int i = 0; i < SERVERS; i++) {
        ASSERT_OK(arpc_server_create(f->rt, NULL, &f->s[i].srv));
        ASSERT_OK(arpc_server_register(f->s[i].srv, "work", handle_work, &f->s[i]));
        ASSERT_OK(arpc_server_listen(f->s[i].srv, "127.0.0.1:0"));
        len += (size_t)snprintf(f->target + len, sizeof(f->target) - len, "%s127.0.0.1:%d",
                                i ? "," : "", arpc_server_port(f->s[i].srv));
    }
}

static void fixture_stop(lb_fixture *f)
{
    for (int i = 0; i < SERVERS; i++)
        arpc_server_destroy(f->s[i].srv);
    arpc_runtime_destroy(f->rt);
}

static arpc_channel *channel(lb_fixture *f, arpc_lb_policy policy)
{
    arpc_channel_opts opts;
    fault_channel_opts_init(&opts);
    opts.lb_policy = policy;
    arpc_channel *ch;
    ASSERT_OK(arpc_channel_create(f->rt, f->target, &opts, &ch));
    return ch;
}

static int work(arpc_channel *ch, uint64_t key)
{
    arpc_call_opts opts = fault_call_opts(5000);
    opts.hash_key = key;
    return arpc_call(ch, "work", NULL, 0, &opts, NULL);
}

static void counts(lb_fixture *f, int out[SERVERS])
{
    for (int i = 0; i < SERVERS; i++)
        out[i] = atomic_load(&f->s[i].count);
}

static void print_counts(const char *what, lb_fixture *f)
{
    int c[SERVERS];
    counts(f, c);
    fprintf(stderr, "  %s: %d / %d / %d\n", what, c[0], c[1], c[2]);
}

static void test_round_robin_spreads_evenly(void)
{
    lb_fixture f;
    fixture_start(&f);
    arpc_channel *ch = channel(&f, ARPC_LB_ROUND_ROBIN);
    for (int i = 0; i < 300; i++)
        ASSERT_OK(work(ch, 0));
    print_counts("round robin, 300 calls", &f);
    for (int i = 0; i < SERVERS; i++)
        ASSERT_GE(atomic_load(&f.s[i].count), 80);
    arpc_channel_destroy(ch);
    fixture_stop(&f);
}

static void test_random_reaches_every_server(void)
{
    lb_fixture f;
    fixture_start(&f);
    arpc_channel *ch = channel(&f, ARPC_LB_RANDOM);
    for (int i = 0; i < 300; i++)
        ASSERT_OK(work(ch, 0));
    print_counts("random, 300 calls", &f);
    /* Binomial(300, 1/3): below 50 is six standard deviations away. */
    for (int i = 0; i < SERVERS; i++)
        ASSERT_GE(atomic_load(&f.s[i].count), 50);
    arpc_channel_destroy(ch);
    fixture_stop(&f);
}

#define LIF_THREADS 4
#define LIF_CALLS   300 /* shared by the threads: whoever is free takes the next */

typedef struct lif_work {
    arpc_channel *ch;
    _Atomic int left;
} lif_work;

static void *lif_worker(void *arg)
{
    lif_work *w = arg;
    while (atomic_fetch_sub(&w->left, 1) > 0)
        ASSERT_OK(work(w->ch, 0));
    return NULL;
}

static void test_least_in_flight_avoids_slow_server(void)
{
    lb_fixture f;
    fixture_start(&f);
    f.s[0].delay_ms = 200;
    lif_work w = {.ch = channel(&f, ARPC_LB_LEAST_IN_FLIGHT), .left = LIF_CALLS};
    pthread_t threads[LIF_THREADS];
    for (int i = 0; i < LIF_THREADS; i++)
        ASSERT_EQ(pthread_create(&threads[i], NULL, lif_worker, &w), 0);
    for (int i = 0; i < LIF_THREADS; i++)
        ASSERT_EQ(pthread_join(threads[i], NULL), 0);
    print_counts("least in flight, server 0 slow, 300 calls from 4 threads", &f);
    int c[SERVERS];
    counts(&f, c);
    ASSERT_EQ(c[0] + c[1] + c[2], LIF_CALLS);
    /* Round robin would send it a third (100).  A call there holds a thread
     * for 200 ms, while the others are answered at once; ties in flight go
     * round robin, so it still gets a few. */
    ASSERT_LE(c[0], LIF_CALLS / 10);
    arpc_channel_destroy(w.ch);
    fixture_stop(&f);
}

/* The server that served one call with `key`. */
static int owner_of(lb_fixture *f, arpc_channel *ch, uint64_t key)
{
    int before[SERVERS];
    int after[SERVERS];
    counts(f, before);
    ASSERT_OK(work(ch, key));
    counts(f, after);
    int owner = -1;
    for (int i = 0; i < SERVERS; i++) {
        if (after[i] != before[i]) {
            ASSERT_EQ(after[i], before[i] + 1);
            ASSERT_EQ(owner, -1);
            owner = i;
        }
    }
    ASSERT_NE(owner, -1);
    return owner;
}

/* The server that serves a call with `key` now; the call must succeed. */
static int serving(lb_fixture *f, arpc_channel *ch, uint64_t key)
{
    int before[SERVERS];
    int after[SERVERS];
    counts(f, before);
    int rc = work(ch, key);
    if (rc != 0)
        test_fail(__FILE__, __LINE__, "key %llu: %d %s", (unsigned long long)key, rc,
                  arpc_err_name(rc));
    counts(f, after);
    int owner = -1;
    for (int i = 0; i < SERVERS; i++) {
        if (after[i] != before[i])
            owner = i;
    }
    ASSERT_NE(owner, -1);
    return owner;
}

static void test_consistent_hash_moves_only_dead_servers_keys(void)
{
    lb_fixture f;
    fixture_start(&f);
    arpc_channel *ch = channel(&f, ARPC_LB_CONSISTENT_HASH);
    int owner[KEYS];
    int owned[SERVERS] = {0};
    for (uint64_t k = 0; k < KEYS; k++) {
        owner[k] = owner_of(&f, ch, 1000 + k);
        owned[owner[k]]++;
    }
    fprintf(stderr, "  %d keys owned: %d / %d / %d\n", KEYS, owned[0], owned[1], owned[2]);
    for (int i = 0; i < SERVERS; i++)
        ASSERT_GT(owned[i], 0);

    /* Same key, same server, 100 times over. */
    for (uint64_t k = 0; k < 5; k++) {
        int before[SERVERS];
        int after[SERVERS];
        counts(&f, before);
        for (int i = 0; i < 100; i++)
            ASSERT_OK(work(ch, 1000 + k));
        counts(&f, after);
        for (int i = 0; i < SERVERS; i++)
            ASSERT_EQ(after[i] - before[i], i == owner[k] ? 100 : 0);
    }

    /* Shut down the owner of key 0.  Its keys move to their next server on
     * the ring: the server a channel to the two survivors alone (same
     * addresses, so the same ring without the dead server's points) gives
     * them.  No call fails on the way: one sent to the dead server (not yet
     * ejected) is refused or answered ESHUTDOWN, and retried on the key's
     * next server. */
    int dead = owner[0];
    char survivors[256];
    size_t len = 0;
    for (int i = 0; i < SERVERS; i++) {
        if (i != dead)
            len += (size_t)snprintf(survivors + len, sizeof(survivors) - len, "%s127.0.0.1:%d",
                                    len ? "," : "", arpc_server_port(f.s[i].srv));
    }
    arpc_channel_opts opts;
    fault_channel_opts_init(&opts);
    opts.lb_policy = ARPC_LB_CONSISTENT_HASH;
    arpc_channel *two;
    ASSERT_OK(arpc_channel_create(f.rt, survivors, &opts, &two));
    int next_owner[KEYS];
    for (uint64_t k = 0; k < KEYS; k++)
        next_owner[k] = owner[k] == dead ? serving(&f, two, 1000 + k) : owner[k];
    arpc_channel_destroy(two);
    ASSERT_OK(arpc_server_shutdown(f.s[dead].srv, 1000));
    int moved = 0;
    int moved_to[SERVERS] = {0};
    int new_owner[KEYS];
    for (int round = 0; round < 2; round++) {
        for (uint64_t k = 0; k < KEYS; k++) {
            int now = serving(&f, ch, 1000 + k);
            if (owner[k] == dead && round == 0) {
                ASSERT_EQ(now, next_owner[k]); /* the key's next server on the ring */
                new_owner[k] = now;
                moved++;
                moved_to[now]++;
            } else if (owner[k] == dead) {
                ASSERT_EQ(now, new_owner[k]); /* moved once, then stable */
            } else {
                ASSERT_EQ(now, owner[k]); /* keys of live servers stay put */
            }
        }
    }
    fprintf(stderr,
            "  server %d shut down: its %d keys moved (%d / %d / %d), the other %d stayed\n", dead,
            moved, moved_to[0], moved_to[1], moved_to[2], KEYS - moved);
    arpc_channel_destroy(ch);
    fixture_stop(&f);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    RUN_TEST(test_round_robin_spreads_evenly);
    RUN_TEST(test_random_reaches_every_server);
    RUN_TEST(test_least_in_flight_avoids_slow_server);
    RUN_TEST(test_consistent_hash_moves_only_dead_servers_keys);
    return 0;
}
