/*
 * The framed connection's writing, on one end of a socketpair with the test
 * reading the other end.  Proves: frames queued in one loop iteration stay
 * unwritten until the iteration's flush (all of them when write_early_frames
 * is 0, the default), except that with write_early_frames = 32 (the server's
 * default) the 32nd frame of a burst writes all 32 at once, and the count
 * starts again after every write; an early write that fails (the peer has
 * gone) never closes the connection under the caller, the iteration's flush
 * does, with the error; and a burst far larger than the socket buffer is
 * delivered complete and in order through the EPOLLOUT path.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpc/err.h>
#include <arpc/loop.h>

#include "proto/frame.h"
#include "rpc/conn.h"
#include "test.h"

#define PAYLOAD    64
#define FRAME_SIZE (ARPC__FRAME_HEADER_SIZE + PAYLOAD)
#define EARLY      32

typedef struct fixture {
    arpc_loop *loop;
    arpc__conn conn;
    arpc__deferred after_flush; /* deferred after the conn's flush: runs after it */
    int peer_fd;                /* the test's end */
    int close_err;
    bool closed;
    bool freed;
} fixture;

static void record_close(arpc__conn *conn, int err)
{
    fixture *f = arpc__container_of(conn, fixture, conn);
    f->closed = true;
    f->close_err = err;
}

static void record_free(arpc__conn *conn)
{
    fixture *f = arpc__container_of(conn, fixture, conn);
    f->freed = true;
}

static const arpc__conn_ops test_ops = {
    .on_close = record_close,
    .on_free = record_free,
};

static void fixture_start(fixture *f, uint32_t write_early_frames)
{
    memset(f, 0, sizeof(*f));
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    ASSERT_EQ(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
    f->peer_fd = fds[1];
    ASSERT_OK(arpc_loop_create(NULL, &f->loop));
    arpc__conn_init(&f->conn, f->loop, fds[0], &test_ops, false);
    ASSERT_EQ(f->conn.write_early_frames, 0);
    f->conn.write_early_frames = write_early_frames;
}

static void fixture_stop(fixture *f)
{
    arpc__conn_close(&f->conn, ARPC_ECLOSED);
    arpc__conn_unref(&f->conn); /* the creator's reference */
    ASSERT_TRUE(f->freed);
    close(f->peer_fd);
    arpc_loop_destroy(f->loop);
}

/* Queues one response frame with `payload_len` bytes and asks for a flush. */
static void queue_frame(fixture *f, uint64_t id, size_t payload_len)
{
    static uint8_t payload[256 * 1024];
    ASSERT_TRUE(payload_len <= sizeof(payload));
    ASSERT_OK(arpc__frame_encode_response(&f->conn.out, id, 0, payload, payload_len));
    arpc__conn_flush_soon(&f->conn);
}

/* Bytes the test end can read right now, without waiting. */
static size_t readable_now(int fd)
{
    static uint8_t sink[1 << 20];
    size_t total = 0;
    for (;;) {
        ssize_t n = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (n <= 0)
            return total;
        total += (size_t)n;
    }
}

/* Runs `fn` after the iteration's flush: deferred work runs in the order it
 * was deferred, and the connection deferred its flush with the first frame. */
static void after_the_flush(fixture *f, arpc__deferred_fn fn)
{
    arpc__list_init(&f->after_flush.link);
    f->after_flush.run = fn;
    arpc__loop_defer(f->loop, &f->after_flush);
}

/* ---- the 32nd frame of a burst is written at once ----------------------------------- */

static void burst_after_flush(arpc__deferred *deferred)
{
    fixture *f = arpc__container_of(deferred, fixture, after_flush);
    /* The iteration's flush wrote the 8 frames after the early write. */
    ASSERT_EQ(readable_now(f->peer_fd), 8 * FRAME_SIZE);
    ASSERT_EQ(f->conn.out.len, 0);
    ASSERT_EQ(f->conn.queued_frames, 0);
    arpc_loop_stop(f->loop);
}

static void burst_first_iteration(void *arg)
{
    fixture *f = arg;
    ASSERT_OK(arpc__conn_start(&f->conn));
    for (int i = 0; i < EARLY - 1; i++) {
        queue_frame(f, (uint64_t)i + 1, PAYLOAD);
        ASSERT_EQ(readable_now(f->peer_fd), 0);
    }
    queue_frame(f, EARLY, PAYLOAD);
    ASSERT_EQ(readable_now(f->peer_fd), EARLY * FRAME_SIZE);
    ASSERT_EQ(f->conn.out.len, 0);
    /* The count starts again: 8 more wait for the iteration's flush. */
    for (int i = 0; i < 8; i++)
        queue_frame(f, (uint64_t)(EARLY + 1 + i), PAYLOAD);
    ASSERT_EQ(readable_now(f->peer_fd), 0);
    ASSERT_EQ(f->conn.out.len, 8 * FRAME_SIZE);
    after_the_flush(f, burst_after_flush);
}

static void test_burst_writes_early(void)
{
    fixture f;
    fixture_start(&f, EARLY);
    ASSERT_OK(arpc_loop_submit(f.loop, burst_first_iteration, &f));
    ASSERT_OK(arpc_loop_run(f.loop));
    ASSERT_FALSE(f.closed);
    fixture_stop(&f);
}

/* ---- without early writes, one write per iteration ----------------------------------- */

static void once_after_flush(arpc__deferred *deferred)
{
    fixture *f = arpc__container_of(deferred, fixture, after_flush);
    ASSERT_EQ(readable_now(f->peer_fd), 3 * EARLY * FRAME_SIZE);
    arpc_loop_stop(f->loop);
}

static void once_first_iteration(void *arg)
{
    fixture *f = arg;
    ASSERT_OK(arpc__conn_start(&f->conn));
    for (int i = 0; i < 3 * EARLY; i++)
        queue_frame(f, (uint64_t)i + 1, PAYLOAD);
    ASSERT_EQ(readable_now(f->peer_fd), 0);
    after_the_flush(f, once_after_flush);
}

static void test_no_early_writes_by_default(void)
{
    fixture f;
    fixture_start(&f, 0);
    ASSERT_OK(arpc_loop_submit(f.loop, once_first_iteration, &f));
    ASSERT_OK(arpc_loop_run(f.loop));
    fixture_stop(&f);
}

/* ---- an early write to a vanished peer ---------------------------------------------- */

static void gone_after_flush(arpc__deferred *deferred)
{
    fixture *f = arpc__container_of(deferred, fixture, after_flush);
    ASSERT_TRUE(f->closed);
    ASSERT_EQ(f->close_err, -EPIPE);
    arpc_loop_stop(f->loop);
}

static void gone_first_iteration(void *arg)
{
    fixture *f = arg;
    ASSERT_OK(arpc__conn_start(&f->conn));
    close(f->peer_fd);
    f->peer_fd = -1;
    for (int i = 0; i < EARLY; i++)
        queue_frame(f, (uint64_t)i + 1, PAYLOAD);
    /* The failed early write left the connection open for the caller. */
    ASSERT_FALSE(f->closed);
    after_the_flush(f, gone_after_flush);
}

static void test_early_write_error_closes_at_the_flush(void)
{
    fixture f;
    fixture_start(&f, EARLY);
    ASSERT_OK(arpc_loop_submit(f.loop, gone_first_iteration, &f));
    ASSERT_OK(arpc_loop_run(f.loop));
    fixture_stop(&f);
}

/* ---- a burst larger than the socket buffer ------------------------------------------ */

#define BIG_PAYLOAD (200 * 1024)
#define BIG_FRAMES  (EARLY + 8)
#define BIG_TOTAL   ((size_t)BIG_FRAMES * (ARPC__FRAME_HEADER_SIZE + BIG_PAYLOAD))

typedef struct reader {
    fixture *f;
    size_t received;
    uint64_t ids_in_order; /* frames whose request id came in sequence */
} reader;

/* Reads every frame on the test end, checking that the ids arrive in order. */
static void *read_everything(void *arg)
{
    reader *r = arg;
    static uint8_t frame[ARPC__FRAME_HEADER_SIZE + BIG_PAYLOAD];
    for (uint64_t id = 1; id <= BIG_FRAMES; id++) {
        size_t have = 0;
        while (have < sizeof(frame)) {
            ssize_t n = recv(r->f->peer_fd, frame + have, sizeof(frame) - have, 0);
            if (n <= 0)
                return NULL;
            have += (size_t)n;
        }
        arpc__frame decoded;
        if (arpc__frame_decode(frame, have, 1u << 24, &decoded) == (int64_t)have &&
            decoded.request_id == id)
            r->ids_in_order++;
        r->received += have;
    }
    arpc_loop_stop(r->f->loop);
    return NULL;
}

typedef struct big_case {
    fixture f;
    reader r;
    pthread_t thread;
} big_case;

static void big_burst(void *arg)
{
    big_case *bc = arg;
    fixture *f = &bc->f;
    ASSERT_OK(arpc__conn_start(&f->conn));
    for (int i = 0; i < BIG_FRAMES; i++)
        queue_frame(f, (uint64_t)i + 1, BIG_PAYLOAD);
    /* Nobody reads yet: the early write filled the socket and waits for EPOLLOUT. */
    ASSERT_TRUE(f->conn.write_blocked);
    ASSERT_EQ(pthread_create(&bc->thread, NULL, read_everything, &bc->r), 0);
}

static void test_burst_larger_than_the_socket_buffer(void)
{
    static big_case bc;
    fixture *f = &bc.f;
    fixture_start(f, EARLY);
    bc.r.f = f;
    ASSERT_OK(arpc_loop_submit(f->loop, big_burst, &bc));
    ASSERT_OK(arpc_loop_run(f->loop));
    ASSERT_EQ(pthread_join(bc.thread, NULL), 0);
    reader r = bc.r;
    ASSERT_EQ(r.received, BIG_TOTAL);
    ASSERT_EQ(r.ids_in_order, BIG_FRAMES);
    ASSERT_FALSE(f->closed);
    fixture_stop(f);
}

int main(void)
{
    RUN_TEST(test_burst_writes_early);
    RUN_TEST(test_no_early_writes_by_default);
    RUN_TEST(test_early_write_error_closes_at_the_flush);
    RUN_TEST(test_burst_larger_than_the_socket_buffer);
    return 0;
}
