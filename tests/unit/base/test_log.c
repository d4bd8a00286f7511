/*
 * Logging: the level gate, the default handler, and a handler swapped while
 * other threads log.  A handler and its user data are one pair: a message must
 * never reach one handler with the other's user data (the old code read the
 * two without synchronization; TSan reports that race and a torn read shows up
 * here as a mismatched pair).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <arpc/log.h>

#include "base/log.h"
#include "test.h"

#define LOGGERS        2
#define SWAPS          20000
#define MAX_LOG_ROUNDS 2000000 /* bounds each logger if the swapper dies */

typedef struct sink {
    int tag;
    atomic_long seen;
    atomic_long wrong_pair;
} sink;

static sink sink_a = {.tag = 1};
static sink sink_b = {.tag = 2};
static atomic_bool swapping_done;

/* Counts a message delivered to the handler of `mine` with `user_data`. */
static void deliver(sink *mine, void *user_data)
{
    if (user_data != mine)
        atomic_fetch_add(&mine->wrong_pair, 1);
    else
        atomic_fetch_add(&mine->seen, 1);
}

static void handler_a(arpc_log_level level, const char *message, void *user_data)
{
    (void)level;
    (void)message;
    deliver(&sink_a, user_data);
}

static void handler_b(arpc_log_level level, const char *message, void *user_data)
{
    (void)level;
    (void)message;
    deliver(&sink_b, user_data);
}

static void *logger(void *arg)
{
    (void)arg;
    for (long i = 0; i < MAX_LOG_ROUNDS && !atomic_load(&swapping_done); i++)
        ARPC_LOG_WARNF("message %ld", i);
    return NULL;
}

/* The loggers have delivered at least one message: the swaps below then
 * overlap logging for sure. */
static bool loggers_running(void *arg)
{
    (void)arg;
    return atomic_load(&sink_a.seen) > 0;
}

static void test_swap_while_logging(void)
{
    arpc_log_set_level(ARPC_LOG_WARN);
    arpc_log_set_handler(handler_a, &sink_a);
    pthread_t threads[LOGGERS];
    for (int i = 0; i < LOGGERS; i++)
        ASSERT_EQ(pthread_create(&threads[i], NULL, logger, NULL), 0);
    ASSERT_TRUE(wait_until(loggers_running, NULL, 10000));
    for (int i = 0; i < SWAPS; i++) {
        if (i % 2 == 0)
            arpc_log_set_handler(handler_b, &sink_b);
        else
            arpc_log_set_handler(handler_a, &sink_a);
    }
    atomic_store(&swapping_done, true);
    for (int i = 0; i < LOGGERS; i++)
        ASSERT_EQ(pthread_join(threads[i], NULL), 0);
    ASSERT_EQ(atomic_load(&sink_a.wrong_pair), 0);
    ASSERT_EQ(atomic_load(&sink_b.wrong_pair), 0);
}

/* After set_handler returns, the next message goes to the new handler; below
 * the level, nothing is delivered. */
static void test_new_handler_and_level(void)
{
    arpc_log_set_handler(handler_b, &sink_b);
    long before = atomic_load(&sink_b.seen);
    arpc_log_set_level(ARPC_LOG_ERROR);
    ARPC_LOG_WARNF("dropped by the level");
    ASSERT_EQ(atomic_load(&sink_b.seen), before);
    ARPC_LOG_ERRORF("delivered");
    ASSERT_EQ(atomic_load(&sink_b.seen), before + 1);
    arpc_log_set_handler(NULL, NULL);
    arpc_log_set_level(ARPC_LOG_WARN);
}

int main(void)
{
    RUN_TEST(test_swap_while_logging);
    RUN_TEST(test_new_handler_and_level);
    return 0;
}
