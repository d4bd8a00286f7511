/*
 * Busy polling (arpc_loop_opts.busy_poll_us).  The loops here spin for up to
 * 2 s, so anything the spin overlooked would wait for the end of the window
 * and show as a delay of seconds.  Proves: a timer due inside the window fires
 * on time (the spin ends at the next timer); a task submitted from another
 * thread while the loop spins runs at once (producers write no eventfd to a
 * loop that is not asleep, so the spin must watch the inbox); data arriving on
 * a socket during the spin is handled at once, round after round;
 * arpc_loop_stop() ends a spin; once a short window has passed the loop
 * sleeps: its thread's CPU time stops growing; and RPC on runtimes whose
 * loops all busy-poll (server and client) answers calls, and a call's
 * deadline still ends it on time while the loops spin.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpc/arpc.h>

#include "runtime/loop.h"
#include "test.h"

#define LONG_WINDOW_US 2000000 /* 2 s: a missed wake-up would cost this much */
#define PROMPT_MS      500     /* "at once", with slack for a loaded machine */
#define NS_PER_MS      1000000LL

static arpc_loop *new_loop(unsigned busy_poll_us)
{
    arpc_loop_opts opts;
    arpc_loop_opts_init(&opts);
    ASSERT_EQ(opts.busy_poll_us, 0); /* off unless asked for */
    opts.busy_poll_us = busy_poll_us;
    arpc_loop *loop = NULL;
    ASSERT_OK(arpc_loop_create(&opts, &loop));
    return loop;
}

/* A task that records when it ran. */
typedef struct stamp {
    _Atomic int64_t ran_ns; /* 0 until it ran */
} stamp;

static void record_stamp(void *arg)
{
    stamp *s = arg;
    atomic_store(&s->ran_ns, test_now_ns());
}

static bool stamp_ran(void *arg)
{
    stamp *s = arg;
    return atomic_load(&s->ran_ns) != 0;
}

/* Submits a task and waits until it ran; right after it, the loop spins. */
static int64_t run_task_and_wait(arpc_loop *loop)
{
    stamp s = {0};
    ASSERT_OK(arpc_loop_submit(loop, record_stamp, &s));
    ASSERT_TRUE(wait_until(stamp_ran, &s, 10000));
    return atomic_load(&s.ran_ns);
}

/* ---- a timer inside the window ------------------------------------------------------ */

typedef struct timer_case {
    arpc_loop *loop;
    int64_t added_ns;
    int64_t fired_ns;
} timer_case;

static void timer_fired(void *arg)
{
    timer_case *tc = arg;
    tc->fired_ns = test_now_ns();
    arpc_loop_stop(tc->loop);
}

static void add_timer(void *arg)
{
    timer_case *tc = arg;
    tc->added_ns = test_now_ns();
    ASSERT_OK(arpc_timer_add(tc->loop, 30, timer_fired, tc, NULL));
}

static void test_timer_ends_the_spin(void)
{
    timer_case tc = {.loop = new_loop(LONG_WINDOW_US)};
    ASSERT_OK(arpc_loop_submit(tc.loop, add_timer, &tc));
    ASSERT_OK(arpc_loop_run(tc.loop));
    int64_t waited_ms = (tc.fired_ns - tc.added_ns) / NS_PER_MS;
    ASSERT_GE(waited_ms, 30);
    ASSERT_LT(waited_ms, PROMPT_MS);
    arpc_loop_destroy(tc.loop);
}

/* ---- a submission during the spin --------------------------------------------------- */

static void test_submit_during_spin_runs_at_once(void)
{
    arpc_loop *loop = new_loop(LONG_WINDOW_US);
    ASSERT_OK(arpc_loop_start(loop));
    for (int round = 0; round < 20; round++) {
        /* The first task leaves the loop spinning; the second arrives during it. */
        run_task_and_wait(loop);
        int64_t submitted_ns = test_now_ns();
        int64_t ran_ns = run_task_and_wait(loop);
        ASSERT_LT((ran_ns - submitted_ns) / NS_PER_MS, PROMPT_MS);
    }
    arpc_loop_destroy(loop);
}

/* ---- socket data during the spin ---------------------------------------------------- */

#define ROUNDS 200

typedef struct echo_case {
    char address[64];
    _Atomic int result; /* 0 running, 1 done, < 0 failed */
} echo_case;

/* Echoes ROUNDS single bytes back to the test thread, which times each round. */
static void echo_coro(void *arg)
{
    echo_case *ec = arg;
    int fd = -1;
    int rc = arpc_io_connect(ec->address, 10000, &fd);
    for (int i = 0; rc == 0 && i < ROUNDS; i++) {
        char byte;
        ssize_t n = arpc_io_read(fd, &byte, 1, 10000);
        if (n == 1)
            n = arpc_io_write(fd, &byte, 1, 10000);
        rc = n == 1 ? 0 : (n < 0 ? (int)n : ARPC_ECLOSED);
    }
    if (fd >= 0)
        arpc_io_close(fd);
    atomic_store(&ec->result, rc < 0 ? rc : 1);
}

static bool echo_finished(void *arg)
{
    echo_case *ec = arg;
    return atomic_load(&ec->result) != 0;
}

static void spawn_echo(void *arg)
{
    ASSERT_OK(arpc_coro_spawn(arpc_loop_current(), echo_coro, arg));
}

static void test_socket_data_during_spin(void)
{
    arpc_loop *loop = new_loop(LONG_WINDOW_US);
    ASSERT_OK(arpc_loop_start(loop));
    uint16_t port = 0;
    int listen_fd = test_listen_ephemeral(&port);
    echo_case ec = {0};
    snprintf(ec.address, sizeof(ec.address), "127.0.0.1:%u", port);
    ASSERT_OK(arpc_loop_submit(loop, spawn_echo, &ec));
    int fd = accept(listen_fd, NULL, NULL);
    ASSERT_GE(fd, 0);
    for (int i = 0; i < ROUNDS; i++) {
        /* The loop answered the last byte and spins until this one arrives. */
        char byte = (char)i;
        int64_t sent_ns = test_now_ns();
        ASSERT_EQ(write(fd, &byte, 1), 1);
        char back = 0;
        ASSERT_EQ(read(fd, &back, 1), 1);
        ASSERT_EQ(back, byte);
        ASSERT_LT((test_now_ns() - sent_ns) / NS_PER_MS, PROMPT_MS);
    }
    ASSERT_TRUE(wait_until(echo_finished, &ec, 10000));
    ASSERT_EQ(atomic_load(&ec.result), 1);
    close(fd);
    close(listen_fd);
    arpc_loop_destroy(loop);
}

/* ---- stop during the spin ----------------------------------------------------------- */

static void test_stop_ends_the_spin(void)
{
    arpc_loop *loop = new_loop(LONG_WINDOW_US);
    ASSERT_OK(arpc_loop_start(loop));
    run_task_and_wait(loop);
    int64_t start_ns = test_now_ns();
    arpc_loop_stop(loop);
    ASSERT_OK(arpc_loop_join(loop));
    ASSERT_LT((test_now_ns() - start_ns) / NS_PER_MS, PROMPT_MS);
    arpc_loop_destroy(loop);
}

/* ---- sleeping after the window ------------------------------------------------------ */

typedef struct cpu_clock {
    clockid_t id;
    _Atomic int ready;
} cpu_clock;

static void get_thread_clock(void *arg)
{
    cpu_clock *c = arg;
    ASSERT_OK(pthread_getcpuclockid(pthread_self(), &c->id));
    atomic_store(&c->ready, 1);
}

static bool clock_ready(void *arg)
{
    cpu_clock *c = arg;
    return atomic_load(&c->ready) != 0;
}

static int64_t cpu_ms(clockid_t id)
{
    struct timespec ts;
    ASSERT_OK(clock_gettime(id, &ts));
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / NS_PER_MS;
}

/* The loop is in its blocking poll (internal state, read for the test). */
static bool loop_asleep(void *loop)
{
    return atomic_load(&((arpc_loop *)loop)->sleeping) != 0;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * NS_PER_MS};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static void test_sleeps_after_the_window(void)
{
    arpc_loop *loop = new_loop(20000); /* 20 ms */
    ASSERT_OK(arpc_loop_start(loop));
    cpu_clock c = {0};
    ASSERT_OK(arpc_loop_submit(loop, get_thread_clock, &c));
    ASSERT_TRUE(wait_until(clock_ready, &c, 10000));
    /* The window has passed once the loop has gone to its blocking poll
     * (the flag producers read to decide whether to wake it). */
    ASSERT_TRUE(wait_until(loop_asleep, loop, 10000));
    /* Measured over a period, not a synchronization: a loop that kept spinning
     * would use nearly all of the 500 ms. */
    int64_t before = cpu_ms(c.id);
    sleep_ms(500);
    int64_t used = cpu_ms(c.id) - before;
    ASSERT_LT(used, 100);
    /* Asleep, it still wakes for a submission. */
    run_task_and_wait(loop);
    arpc_loop_destroy(loop);
}

/* ---- RPC on busy-polling runtimes ---------------------------------------------------- */

static int handle_echo(arpc_request *req, void *user_data)
{
    (void)user_data;
    return arpc_buf_append(arpc_request_response(req), arpc_request_data(req),
                           arpc_request_len(req));
}

/* Answers only once the test has set `released` (polled each millisecond,
 * 30 s at most), so a deadline never races the answer. */
static _Atomic bool released;

static int handle_block(arpc_request *req, void *user_data)
{
    (void)req;
    (void)user_data;
    for (int i = 0; i < 30000 && !atomic_load(&released); i++)
        arpc_coro_sleep_ms(1);
    return 0;
}

static arpc_runtime *busy_runtime(void)
{
    arpc_runtime_opts opts;
    arpc_runtime_opts_init(&opts);
    opts.loops = 1;
    opts.loop.busy_poll_us = 20000; /* 20 ms: far longer than a loopback round trip */
    arpc_runtime *rt = NULL;
    ASSERT_OK(arpc_runtime_create(&opts, &rt));
    return rt;
}

static void test_rpc_between_busy_polling_runtimes(void)
{
    arpc_runtime *srv_rt = busy_runtime();
    arpc_runtime *cli_rt = busy_runtime();
    arpc_server *srv;
    ASSERT_OK(arpc_server_create(srv_rt, NULL, &srv));
    ASSERT_OK(arpc_server_register(srv, "echo", handle_echo, NULL));
    ASSERT_OK(arpc_server_register(srv, "sleep", handle_block, NULL));
    ASSERT_OK(arpc_server_listen(srv, "127.0.0.1:0"));
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", arpc_server_port(srv));
    arpc_channel *ch;
    ASSERT_OK(arpc_channel_create(cli_rt, target, NULL, &ch));
    arpc_buf *rsp;
    ASSERT_OK(arpc_buf_create(&rsp));
    arpc_call_opts opts;
    arpc_call_opts_init(&opts);
    opts.timeout_ms = 10000;
    for (int i = 0; i < 100; i++) {
        char req[16];
        int len = snprintf(req, sizeof(req), "call %d", i);
        arpc_buf_clear(rsp);
        ASSERT_OK(arpc_call(ch, "echo", req, (size_t)len, &opts, rsp));
        ASSERT_EQ(arpc_buf_len(rsp), len);
        ASSERT_MEMEQ(arpc_buf_data(rsp), req, (size_t)len);
    }
    /* The 50 ms deadline is a timer of the client loop, which spins. */
    opts.timeout_ms = 50;
    int64_t start_ns = test_now_ns();
    ASSERT_ERR(arpc_call(ch, "sleep", NULL, 0, &opts, rsp), ARPC_ETIMEDOUT);
    int64_t waited_ms = (test_now_ns() - start_ns) / NS_PER_MS;
    ASSERT_GE(waited_ms, 50);
    ASSERT_LT(waited_ms, 50 + 2000); /* the answer never comes before the release */
    atomic_store(&released, true);
    arpc_buf_destroy(rsp);
    arpc_channel_destroy(ch);
    arpc_server_destroy(srv);
    arpc_runtime_destroy(cli_rt);
    arpc_runtime_destroy(srv_rt);
}

int main(void)
{
    RUN_TEST(test_timer_ends_the_spin);
    RUN_TEST(test_submit_during_spin_runs_at_once);
    RUN_TEST(test_socket_data_during_spin);
    RUN_TEST(test_stop_ends_the_spin);
    RUN_TEST(test_sleeps_after_the_window);
    RUN_TEST(test_rpc_between_busy_polling_runtimes);
    return 0;
}
