/*
 * grpc-bench: closed-loop load generator on gRPC C++'s asynchronous client,
 * the gRPC C++ side of issue #11's benchmarks; its flags and its result line
 * are arpc-bench's, so the rows compare 1:1.
 *
 *   grpc-bench --target HOST:PORT [--conns C] [--depth D] [--size S] [--secs T]
 *              [--method PATH] [--timeout-ms N]
 *
 * Design notes.
 *
 * One thread.  Every call of every channel completes on one CompletionQueue,
 * drained by the main thread, which also starts the next call from the
 * completion: gRPC's epoll1 poller does the channels' socket I/O on the
 * thread that waits on the queue.  gRPC C++ starts threads of its own
 * (timer manager, executor, EventEngine pool; see grpc_echo_server.cc); they
 * sleep while calls flow.  The process's thread count and its CPU use per
 * wall second go to stderr at the end, to check that claim.
 *
 * Connections.  C channels, each its own TCP connection: a channel created
 * with GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL keeps its subchannels to itself,
 * and a channel argument unique to each channel ("arpc.bench.conn" = its
 * index) makes the subchannel keys differ too, so gRPC cannot share one
 * connection between channels.  All channels are connected before the clock
 * starts (bounded by CONNECT_TIMEOUT_MS); one that fails ends the run.
 *
 * Calls.  D calls in flight per channel, through grpc::GenericStub: the
 * request is EchoMsg{data: S pattern bytes}, serialized once into a
 * ByteBuffer that every call shares (slices are reference counted), and the
 * answer is a ByteBuffer that must be as long as the request (an echo); so no
 * protobuf work is done per call -- gRPC C++'s fastest unary path.  Each call
 * has a deadline of --timeout-ms (default 1000, as arpc-bench).
 *
 * Timing, as in arpc-bench: warm_end = start + 1 s, end = warm_end + T.  A
 * call counts (towards qps or errors) if it completed inside [warm_end, end);
 * its latency is recorded if it also started after warm_end.  The clock is
 * read once per completion: the end of one call is the start of the next on
 * that slot.  Errors: a status other than OK, or an echo of the wrong length.
 * After UNAVAILABLE (the connection failed) the slot pauses PAUSE_MS on an
 * Alarm first, so a dead server costs no busy loop.  At `end` no new call
 * starts; the calls in flight finish (bounded by their deadline plus
 * DRAIN_SLACK_MS), then the queue is shut down and drained.
 *
 * Streams (--stream), the shape of arpc-bench --stream: N bidirectional
 * streams (--streams, default 1) to --method (default
 * /arpc.echo.Echo/Stream) over the C channels round-robin, through
 * GenericStub::PrepareCall, on the same one queue.  Each keeps D messages
 * due: D at the start, one more per echo read; one write and one read are
 * outstanding at a time (gRPC's rule), so due messages wait for the write
 * before.  A message counts if its echo arrived inside [warm_end, end); its
 * latency runs from when it became due (a ring of D times: echoes come in
 * order) and is recorded if that was after warm_end.  At `end` a stream
 * writes no more, half-closes (WritesDone) once its write in flight is done,
 * reads the remaining echoes and finishes; the stream's deadline (the run
 * plus --timeout-ms) bounds that.
 */
#include <absl/synchronization/mutex.h>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <grpcpp/alarm.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <memory>
#include <string>
#include <sys/resource.h>
#include <unistd.h>
#include <vector>

#include "arpc/echo.pb.h"

extern "C" {
#include "hist.h"
#include "num.h"
#include "opts.h"
#include "sys.h"
}

namespace
{

constexpr uint64_t WARMUP_NS = 1000000000ull;
constexpr int CONNECT_TIMEOUT_MS = 10000;
constexpr int DRAIN_SLACK_MS = 3000;
constexpr int PAUSE_MS = 1;
constexpr int POLL_MS = 100;
constexpr long long MAX_MS = 3600000;

const char usage_text[] =
    "usage: grpc-bench --target HOST:PORT [--conns C] [--depth D] [--size S] [--secs T]\n"
    "                  [--method PATH] [--timeout-ms N] [--stream [--streams N]]\n"
    "  gRPC C++ async client on one thread: keeps D unary calls in flight on each of\n"
    "  C channels (one TCP connection each), each call sending EchoMsg{data: S bytes}\n"
    "  to PATH and expecting it back; warms up 1 s, then measures T s (1..600) and prints\n"
    "  system=grpc protocol=grpc mode=async conns=C depth=D size=S qps=N p50_us=N p99_us=N "
    "p999_us=N errors=N\n"
    "  --method      the method's path (default /arpc.echo.Echo/Echo)\n"
    "  --timeout-ms  deadline of each call, 1..3600000 (default 1000)\n"
    "  --threads     accepted for symmetry with arpc-bench; only 1\n"
    "  --stream      N bidirectional streams (--streams, default 1) over the C channels,\n"
    "                each keeping D messages in flight, to --method (default\n"
    "                /arpc.echo.Echo/Stream); prints\n"
    "  system=grpc mode=stream protocol=grpc conns=C streams=N depth=D size=S msgs_per_s=N\n"
    "  p50_us=N p99_us=N p999_us=N errors=N\n"
    "  Defaults: --conns 1 --depth 1 --size 64 --secs 10.\n";

constexpr long long MAX_STREAMS = 10000;

struct Extra {
    std::string method; /* empty: /arpc.echo.Echo/Echo, or .../Stream with --stream */
    long long timeout_ms = 1000;
    bool stream = false;
    long long streams = 1;
};

int parse_extra(const char *flag, const char *value, void *user_data)
{
    Extra *x = static_cast<Extra *>(user_data);
    if (std::strcmp(flag, "stream") == 0) {
        x->stream = true;
        return 1;
    }
    if (std::strcmp(flag, "method") != 0 && std::strcmp(flag, "timeout-ms") != 0 &&
        std::strcmp(flag, "streams") != 0)
        return 0;
    if (value == nullptr)
        return 2; /* the parser reports the missing value */
    if (std::strcmp(flag, "method") == 0) {
        size_t n = std::strlen(value);
        if (n < 3 || n > 255 || value[0] != '/' || std::strchr(value + 1, '/') == nullptr) {
            std::fprintf(stderr, "grpc-bench: --method must be a path /package.Service/Method\n");
            return -EINVAL;
        }
        x->method = value;
        return 2;
    }
    if (std::strcmp(flag, "streams") == 0) {
        if (tool_parse_num(value, 1, MAX_STREAMS, 0, &x->streams) != 0) {
            std::fprintf(stderr, "grpc-bench: --streams must be 1..%lld, got '%s'\n", MAX_STREAMS,
                         value);
            return -EINVAL;
        }
        return 2;
    }
    if (tool_parse_num(value, 1, MAX_MS, 0, &x->timeout_ms) != 0) {
        std::fprintf(stderr, "grpc-bench: --timeout-ms must be 1..%lld, got '%s'\n", MAX_MS, value);
        return -EINVAL;
    }
    return 2;
}

struct Run {
    bench_opts o;
    Extra x;
    std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
    grpc::ByteBuffer request;
    size_t request_len = 0;
    grpc::CompletionQueue cq;
    uint64_t warm_end = 0;
    uint64_t end = 0;
    uint64_t ok = 0;
    uint64_t errors = 0;
    size_t in_flight = 0; /* slots with a call or a pause pending on the queue */
    std::unique_ptr<bench_hist> hist{new bench_hist};
};

/* One of the C*D call slots; its address is the queue tag of its call or pause. */
struct Slot {
    Run *run = nullptr;
    int chan = 0;
    uint64_t t0 = 0;
    bool paused = false;
    std::unique_ptr<grpc::ClientContext> ctx;
    std::unique_ptr<grpc::GenericClientAsyncResponseReader> reader;
    grpc::ByteBuffer response;
    grpc::Status status;
    grpc::Alarm alarm;
};

void start_call(Slot *s, uint64_t now)
{
    Run *r = s->run;
    s->t0 = now;
    s->paused = false;
    s->ctx.reset(new grpc::ClientContext);
    s->ctx->set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(r->x.timeout_ms));
    s->response.Clear();
    s->reader = r->stubs[s->chan]->PrepareUnaryCall(s->ctx.get(), r->x.method, r->request, &r->cq);
    s->reader->StartCall();
    s->reader->Finish(&s->response, &s->status, s);
    r->in_flight++;
}

/* Accounts a finished call (see the design notes).  Returns true if it
 * failed with UNAVAILABLE (pause before the next call). */
bool account(Slot *s, uint64_t t1)
{
    Run *r = s->run;
    bool failed = !s->status.ok() || s->response.Length() != r->request_len;
    if (t1 >= r->warm_end && t1 < r->end) {
        if (failed) {
            r->errors++;
        } else {
            r->ok++;
            if (s->t0 >= r->warm_end)
                bench_hist_record(r->hist.get(), t1 - s->t0);
        }
    }
    return s->status.error_code() == grpc::StatusCode::UNAVAILABLE;
}

/* Handles one completion: a call's answer or a pause's end. */
void on_event(Slot *s, uint64_t now)
{
    Run *r = s->run;
    r->in_flight--;
    bool pause = false;
    if (!s->paused)
        pause = account(s, now);
    if (now >= r->end)
        return;
    if (pause) {
        s->paused = true;
        s->alarm.Set(&r->cq, std::chrono::system_clock::now() + std::chrono::milliseconds(PAUSE_MS),
                     s);
        r->in_flight++;
        return;
    }
    start_call(s, now);
}

/* Creates and connects the channels; false (after saying why) if one fails. */
bool connect_channels(Run *r)
{
    std::vector<std::shared_ptr<grpc::Channel>> channels;
    for (int i = 0; i < r->o.conns; i++) {
        grpc::ChannelArguments args;
        args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
        args.SetInt("arpc.bench.conn", i);
        args.SetMaxReceiveMessageSize(-1); /* --size goes up to 16 MiB */
        channels.push_back(
            grpc::CreateCustomChannel(r->o.target, grpc::InsecureChannelCredentials(), args));
        channels.back()->GetState(true); /* start connecting; all connect at once */
    }
    auto deadline =
        std::chrono::system_clock::now() + std::chrono::milliseconds(CONNECT_TIMEOUT_MS);
    for (int i = 0; i < r->o.conns; i++) {
        if (!channels[i]->WaitForConnected(deadline)) {
            std::fprintf(stderr, "grpc-bench: channel %d could not connect to %s within %d ms\n", i,
                         r->o.target, CONNECT_TIMEOUT_MS);
            return false;
        }
        r->stubs.emplace_back(new grpc::GenericStub(channels[i]));
    }
    return true;
}

void make_request(Run *r)
{
    std::string data(r->o.size, '\0');
    bench_fill_pattern(reinterpret_cast<uint8_t *>(&data[0]), data.size());
    arpc::echo::EchoMsg msg;
    msg.set_data(std::move(data));
    std::string wire = msg.SerializeAsString();
    grpc::Slice slice(wire);
    r->request = grpc::ByteBuffer(&slice, 1);
    r->request_len = wire.size();
}

/* Waits until every slot's call or pause has completed, handling
 * completions (which start no new calls: the window has ended). */
bool drain(Run *r)
{
    uint64_t limit = bench_now_ns() + (uint64_t)(r->x.timeout_ms + DRAIN_SLACK_MS) * 1000000ull;
    while (r->in_flight > 0) {
        if (bench_now_ns() >= limit)
            return false;
        void *tag;
        bool ok;
        auto deadline = std::chrono::system_clock::now() + std::chrono::milliseconds(POLL_MS);
        if (r->cq.AsyncNext(&tag, &ok, deadline) == grpc::CompletionQueue::GOT_EVENT)
            on_event(static_cast<Slot *>(tag), bench_now_ns());
    }
    return true;
}

void print_result(const Run *r)
{
    double qps = (double)r->ok / (double)r->o.secs;
    auto us = [&](double p) { return (bench_hist_percentile(r->hist.get(), p) + 500) / 1000; };
    std::printf("system=grpc protocol=grpc mode=async conns=%d depth=%d size=%zu qps=%" PRIu64
                " p50_us=%" PRIu64 " p99_us=%" PRIu64 " p999_us=%" PRIu64 " errors=%" PRIu64 "\n",
                r->o.conns, r->o.depth, r->o.size, (uint64_t)(qps + 0.5), us(50.0), us(99.0),
                us(99.9), r->errors);
    std::fflush(stdout);
}

/* ---- streams (--stream) ---- */

/* A queue tag of a stream: which of its operations completed. */
struct StreamOp {
    struct Stream *s;
    void (*done)(struct Stream *, bool ok);
};

struct Stream {
    Run *run = nullptr;
    int chan = 0;
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::GenericClientAsyncReaderWriter> rw;
    grpc::ByteBuffer in;
    grpc::Status status;
    std::vector<uint64_t> due; /* ring of D: when message k became due */
    uint64_t ndue = 0, nread = 0, nwritten = 0;
    bool started = false, writing = false, reading = false, stopping = false;
    bool half_closing = false, half_closed = false, finishing = false, done = false;
    StreamOp start_op, write_op, read_op, close_op, finish_op;
};

size_t g_active_streams = 0;

/* Finishes once nothing else is outstanding (Finish must come last). */
void stream_maybe_finish(Stream *s)
{
    if (s->finishing || s->reading || s->writing || s->half_closing || !s->started)
        return;
    s->finishing = true;
    s->rw->Finish(&s->status, &s->finish_op);
}

/* Writes the next due message, or half-closes once stopping. */
void stream_kick(Stream *s)
{
    if (s->writing || s->half_closing || s->half_closed || s->finishing)
        return;
    if (s->stopping) {
        s->half_closing = true;
        s->rw->WritesDone(&s->close_op);
        return;
    }
    if (s->nwritten < s->ndue) {
        s->writing = true;
        s->nwritten++;
        s->rw->Write(s->run->request, &s->write_op);
    }
}

void stream_stop(Stream *s)
{
    s->stopping = true;
    if (s->started)
        stream_kick(s);
}

void on_stream_start(Stream *s, bool ok)
{
    s->started = true;
    if (!ok) { /* no call: Finish gives its status */
        stream_maybe_finish(s);
        return;
    }
    uint64_t now = bench_now_ns();
    for (size_t i = 0; i < s->due.size(); i++)
        s->due[s->ndue++ % s->due.size()] = now;
    s->reading = true;
    s->rw->Read(&s->in, &s->read_op);
    stream_kick(s);
}

void on_stream_write(Stream *s, bool ok)
{
    s->writing = false;
    if (!ok) { /* the call is gone: the read fails too, then Finish */
        s->stopping = s->half_closed = true;
        stream_maybe_finish(s);
        return;
    }
    stream_kick(s);
}

void on_stream_close(Stream *s, bool)
{
    s->half_closing = false;
    s->half_closed = true;
    stream_maybe_finish(s);
}

void on_stream_read(Stream *s, bool ok)
{
    Run *r = s->run;
    s->reading = false;
    if (!ok) { /* the server ended the stream */
        s->stopping = true;
        stream_maybe_finish(s);
        return;
    }
    uint64_t t1 = bench_now_ns();
    uint64_t t0 = s->due[s->nread++ % s->due.size()];
    if (t1 >= r->warm_end && t1 < r->end) {
        if (s->in.Length() != r->request_len) {
            r->errors++;
        } else {
            r->ok++;
            if (t0 >= r->warm_end)
                bench_hist_record(r->hist.get(), t1 - t0);
        }
    }
    if (t1 >= r->end)
        s->stopping = true;
    if (!s->stopping)
        s->due[s->ndue++ % s->due.size()] = t1;
    s->reading = true;
    s->rw->Read(&s->in, &s->read_op);
    stream_kick(s);
}

void on_stream_finish(Stream *s, bool)
{
    if (!s->status.ok())
        s->run->errors++;
    s->done = true;
    g_active_streams--;
}

void init_op(StreamOp *op, Stream *s, void (*done)(Stream *, bool))
{
    op->s = s;
    op->done = done;
}

/* Runs the streams of --stream; returns false if they did not end in time. */
bool run_streams(Run *r, std::vector<std::unique_ptr<Stream>> *streams)
{
    uint64_t start = bench_now_ns();
    r->warm_end = start + WARMUP_NS;
    r->end = r->warm_end + (uint64_t)r->o.secs * 1000000000ull;
    for (long long k = 0; k < r->x.streams; k++) {
        streams->emplace_back(new Stream);
        Stream *s = streams->back().get();
        s->run = r;
        s->chan = (int)(k % r->o.conns);
        s->due.resize((size_t)r->o.depth);
        init_op(&s->start_op, s, on_stream_start);
        init_op(&s->write_op, s, on_stream_write);
        init_op(&s->read_op, s, on_stream_read);
        init_op(&s->close_op, s, on_stream_close);
        init_op(&s->finish_op, s, on_stream_finish);
        s->ctx.set_deadline(std::chrono::system_clock::now() +
                            std::chrono::nanoseconds(r->end - start) +
                            std::chrono::milliseconds(r->x.timeout_ms));
        s->rw = r->stubs[s->chan]->PrepareCall(&s->ctx, r->x.method, &r->cq);
        s->rw->StartCall(&s->start_op);
        g_active_streams++;
    }
    bool stopped = false;
    uint64_t limit = r->end + (uint64_t)(r->x.timeout_ms + DRAIN_SLACK_MS) * 1000000ull;
    while (g_active_streams > 0) {
        uint64_t now = bench_now_ns();
        if (now >= r->end && !stopped) {
            stopped = true;
            for (auto &s : *streams)
                stream_stop(s.get());
        }
        if (now >= limit)
            return false;
        void *tag;
        bool ok;
        uint64_t wait = now < r->end ? std::min<uint64_t>(r->end - now, POLL_MS * 1000000ull)
                                     : POLL_MS * 1000000ull;
        auto deadline = std::chrono::system_clock::now() + std::chrono::nanoseconds(wait);
        if (r->cq.AsyncNext(&tag, &ok, deadline) == grpc::CompletionQueue::GOT_EVENT) {
            StreamOp *op = static_cast<StreamOp *>(tag);
            op->done(op->s, ok);
        }
    }
    return true;
}

void print_stream_result(const Run *r)
{
    double rate = (double)r->ok / (double)r->o.secs;
    auto us = [&](double p) { return (bench_hist_percentile(r->hist.get(), p) + 500) / 1000; };
    std::printf("system=grpc mode=stream protocol=grpc conns=%d streams=%lld depth=%d size=%zu "
                "msgs_per_s=%" PRIu64 " p50_us=%" PRIu64 " p99_us=%" PRIu64 " p999_us=%" PRIu64
                " errors=%" PRIu64 "\n",
                r->o.conns, r->x.streams, r->o.depth, r->o.size, (uint64_t)(rate + 0.5), us(50.0),
                us(99.0), us(99.9), r->errors);
    std::fflush(stdout);
}

int count_threads()
{
    DIR *d = opendir("/proc/self/task");
    if (d == nullptr)
        return -1;
    int n = 0;
    while (struct dirent *e = readdir(d))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

double cpu_seconds()
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0.0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

} // namespace

int main(int argc, char **argv)
{
    /* Debian's Abseil checks every Mutex acquisition for lock-order cycles
     * (about 5% of gRPC's CPU in a profile here); gRPC at its best does not. */
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
    std::unique_ptr<Run> r(new Run);
    bench_opts_init(&r->o);
    if (bench_opts_parse(argc, argv, BENCH_OPTS_CLIENT, usage_text, parse_extra, &r->x, &r->o) != 0)
        return 2;
    if (r->o.help)
        return 0;
    if (r->o.threads != 1) {
        std::fprintf(stderr, "grpc-bench: --threads must be 1 (one thread per side)\n");
        return 2;
    }
    bench_raise_nofile();
    bench_ignore_sigpipe();
    if (r->x.method.empty())
        r->x.method = r->x.stream ? "/arpc.echo.Echo/Stream" : "/arpc.echo.Echo/Echo";
    bench_hist_init(r->hist.get());
    make_request(r.get());
    if (!connect_channels(r.get()))
        return 1;
    if (r->x.stream) {
        std::vector<std::unique_ptr<Stream>> streams;
        double cpu0 = cpu_seconds();
        uint64_t t0 = bench_now_ns();
        bool ended = run_streams(r.get(), &streams);
        print_stream_result(r.get());
        std::fprintf(stderr, "grpc-bench: %d threads in the process, %.2f CPU s per wall s\n",
                     count_threads(),
                     (cpu_seconds() - cpu0) / ((double)(bench_now_ns() - t0) / 1e9));
        if (!ended) {
            std::fprintf(stderr, "grpc-bench: streams still running after the end; results are "
                                 "approximate\n");
            std::fflush(stderr);
            _exit(1);
        }
        r->cq.Shutdown();
        void *tag;
        bool ok;
        while (r->cq.Next(&tag, &ok)) {
        }
        return 0;
    }

    size_t nslots = (size_t)r->o.conns * (size_t)r->o.depth;
    std::vector<Slot> slots(nslots);
    uint64_t start = bench_now_ns();
    double cpu0 = cpu_seconds();
    r->warm_end = start + WARMUP_NS;
    r->end = r->warm_end + (uint64_t)r->o.secs * 1000000000ull;
    for (size_t k = 0; k < nslots; k++) {
        slots[k].run = r.get();
        slots[k].chan = (int)(k / (size_t)r->o.depth);
        start_call(&slots[k], bench_now_ns());
    }
    for (;;) {
        uint64_t now = bench_now_ns();
        if (now >= r->end)
            break;
        void *tag;
        bool ok;
        auto deadline =
            std::chrono::system_clock::now() +
            std::chrono::nanoseconds(std::min<uint64_t>(r->end - now, POLL_MS * 1000000ull));
        if (r->cq.AsyncNext(&tag, &ok, deadline) == grpc::CompletionQueue::GOT_EVENT)
            on_event(static_cast<Slot *>(tag), bench_now_ns());
    }
    int threads = count_threads();
    double cpu_per_wall = (cpu_seconds() - cpu0) / ((double)(bench_now_ns() - start) / 1e9);
    if (!drain(r.get())) {
        /* Cannot happen while every call has a deadline; never hang a script on it. */
        std::fprintf(stderr, "grpc-bench: calls still running after the end; results are "
                             "approximate\n");
        print_result(r.get());
        std::fflush(stderr);
        _exit(1);
    }
    print_result(r.get());
    std::fprintf(stderr, "grpc-bench: %d threads in the process, %.2f CPU s per wall s\n", threads,
                 cpu_per_wall);
    r->cq.Shutdown();
    void *tag;
    bool ok;
    while (r->cq.Next(&tag, &ok)) {
    }
    return 0;
}
