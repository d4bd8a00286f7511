/*
 * grpc-echo-server: the echo service of proto/arpc/echo.proto on gRPC C++'s
 * asynchronous API, the gRPC C++ side of issue #11's benchmarks.
 *
 *   grpc-echo-server --listen HOST:PORT [--threads N]
 *
 * Prints "listening on HOST:PORT" (port 0 picks one) once it accepts calls,
 * serves plaintext HTTP/2 (h2c) until SIGINT or SIGTERM, then shuts down
 * (calls still running get up to SHUTDOWN_GRACE_MS) and exits 0.
 *
 * Design notes.
 *
 * Threads.  --threads N (default 1) server completion queues, each drained by
 * one polling thread (the main thread is the first); a call stays on the queue
 * it arrived on.  With N = 1 the whole echo path (reading the socket, parsing
 * HTTP/2, running the handler, writing the answer) runs on the main thread:
 * gRPC's epoll1 poller does a call's I/O on the thread that waits on the
 * queue.  gRPC C++ still starts threads of its own: with 1.51 (Debian 12)
 * this process has 8 while it serves (/proc/PID/task): the polling thread,
 * and gRPC's "default-executor" and "resolver-executor" (the executor, for
 * offloaded closures and DNS), "timer_manager" and two "grpc_global_timer"
 * (timers; the manager may start another while one runs a timer) and two
 * "event_engine" (the EventEngine's pool).  None of them polls the server's
 * sockets; profiles and per-thread CPU show them idle while calls flow, so
 * the process uses about one core.  How they are limited: no synchronous
 * service is registered, so there is no synchronous-server thread pool at
 * all, and the ResourceQuota's SetMaxThreads(N + 2) caps the threads gRPC may
 * start on the server's behalf (its sync thread manager); the core's own
 * threads above are not counted by it and cannot be turned off through the
 * public API.  On exit the server prints to stderr how many threads the
 * process had and its CPU use per wall second, so a run can check this
 * (bench/grpc/run.sh also shows each side's CPU per wall second per row).
 *
 * Echo is registered raw (ByteBuffer in, the same ByteBuffer out): the message
 * is answered as it came, byte for byte, with no protobuf parse or serialize
 * -- gRPC C++'s fastest unary path, so arpc is compared with gRPC at its best.
 * Request metadata whose key starts with "x-echo-" is copied into the initial
 * metadata of the answer.  Sleep parses EchoMsg and answers it after `data`
 * milliseconds through a grpc::Alarm on the call's completion queue, so a
 * sleeping call never blocks the polling thread.
 *
 * Stream is registered raw too: each message read is written back as it
 * came.  A stream keeps one read and one write outstanding at once (gRPC
 * allows one of each): messages read while a write is pending wait in the
 * stream's queue, in order.  After the client's half-close (a failed read)
 * and the last write, the stream finishes with OK.
 *
 * Every completion-queue tag is a Call*: Proceed(ok) advances it and deletes
 * it when it is done.  Each queue keeps PREPOSTED_ECHO Echo and
 * PREPOSTED_SLEEP Sleep requests posted; a call that arrives re-posts one
 * before it is handled, so new calls never wait for a handler.
 *
 * Shutdown.  The signal handler only sets a flag, which the polling threads
 * see within POLL_MS.  The main thread then starts Server::Shutdown(deadline)
 * on a helper thread, because Shutdown waits for running calls, which need
 * the queues drained meanwhile; once it returns, the queues are shut down and
 * drained to the end (sleeping calls' alarms are canceled first).
 */
#include <absl/synchronization/mutex.h>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <dirent.h>
#include <grpcpp/alarm.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/resource_quota.h>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <sys/resource.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "arpc/echo.grpc.pb.h"

extern "C" {
#include "opts.h"
#include "sys.h"
}

namespace
{

constexpr int PREPOSTED_ECHO = 1024;
constexpr int PREPOSTED_SLEEP = 64;
constexpr int PREPOSTED_STREAM = 64;
constexpr int POLL_MS = 100;
constexpr int SHUTDOWN_GRACE_MS = 1000;
constexpr long MAX_SLEEP_MS = 3600L * 1000L;
constexpr char ECHO_PREFIX[] = "x-echo-";

const char usage_text[] =
    "usage: grpc-echo-server --listen HOST:PORT [--threads N]\n"
    "  gRPC C++ async server of proto/arpc/echo.proto, plaintext HTTP/2 (h2c):\n"
    "  /arpc.echo.Echo/Echo answers the message as it came and copies request\n"
    "  metadata with keys starting \"x-echo-\" into the response's initial metadata;\n"
    "  /arpc.echo.Echo/Sleep answers after `data` (decimal milliseconds, 0..3600000);\n"
    "  /arpc.echo.Echo/Stream answers every message as it came, as it comes.\n"
    "  Prints \"listening on HOST:PORT\" (port 0 picks one); stops on SIGINT/SIGTERM.\n"
    "  --threads  completion queues, one polling thread each (default 1)\n";

using Service = arpc::echo::Echo::WithRawMethod_Echo<arpc::echo::Echo::WithAsyncMethod_Sleep<
    arpc::echo::Echo::WithRawMethod_Stream<arpc::echo::Echo::Service>>>;

volatile std::sig_atomic_t g_signaled = 0;

void on_signal(int)
{
    g_signaled = 1;
}

/* One thread's queue and what it needs to post new requests. */
struct Queue;

/* A completion-queue tag: one step of one call. */
class Call
{
  public:
    virtual ~Call() = default;
    /* Advances the call after the operation it waited for completed (`ok`
     * false: it failed or was canceled); deletes itself when done. */
    virtual void Proceed(bool ok) = 0;
};

struct Queue {
    Service *service = nullptr;
    std::unique_ptr<grpc::ServerCompletionQueue> cq;
    std::atomic<bool> shutting_down{false}; /* post no new requests */
    bool closed = false; /* cq->Shutdown() was called (touched by the queue's thread only) */
    /* Sleep calls waiting on their alarm. */
    std::mutex sleepers_lock;
    std::set<class SleepCall *> sleepers;
};

class EchoCall final : public Call
{
  public:
    explicit EchoCall(Queue *q) : q_(q), responder_(&ctx_)
    {
        q_->service->RequestEcho(&ctx_, &msg_, &responder_, q_->cq.get(), q_->cq.get(), this);
    }

    void Proceed(bool ok) override
    {
        if (!ok || finishing_) { /* not started (shutdown), or the answer is sent */
            delete this;
            return;
        }
        if (!q_->shutting_down.load(std::memory_order_relaxed))
            new EchoCall(q_);
        for (const auto &kv : ctx_.client_metadata()) {
            if (kv.first.size() >= sizeof(ECHO_PREFIX) - 1 &&
                std::memcmp(kv.first.data(), ECHO_PREFIX, sizeof(ECHO_PREFIX) - 1) == 0)
                ctx_.AddInitialMetadata(std::string(kv.first.data(), kv.first.size()),
                                        std::string(kv.second.data(), kv.second.size()));
        }
        finishing_ = true;
        responder_.Finish(msg_, grpc::Status::OK, this);
    }

  private:
    Queue *q_;
    grpc::ServerContext ctx_;
    grpc::ByteBuffer msg_;
    grpc::ServerAsyncResponseWriter<grpc::ByteBuffer> responder_;
    bool finishing_ = false;
};

/* A bidirectional echo stream.  Its own tag is the request's and then the
 * Finish's; reads and writes have a tag each (Op), so one of each can be
 * outstanding.  Touched by its queue's thread only. */
class StreamCall final : public Call
{
  public:
    explicit StreamCall(Queue *q) : q_(q), rw_(&ctx_)
    {
        q_->service->RequestStream(&ctx_, &rw_, q_->cq.get(), q_->cq.get(), this);
    }

    void Proceed(bool ok) override
    {
        if (!ok || finishing_) { /* not started (shutdown), or finished */
            delete this;
            return;
        }
        if (!q_->shutting_down.load(std::memory_order_relaxed))
            new StreamCall(q_);
        reading_ = true;
        rw_.Read(&in_, &read_op_);
    }

  private:
    struct Op final : public Call {
        StreamCall *owner;
        void (StreamCall::*done)(bool);

        Op(StreamCall *o, void (StreamCall::*d)(bool)) : owner(o), done(d)
        {
        }

        void Proceed(bool ok) override
        {
            (owner->*done)(ok);
        }
    };

    void OnRead(bool ok)
    {
        reading_ = false;
        if (!ok) { /* the client half-closed, or the call is gone */
            MaybeFinish();
            return;
        }
        queue_.push_back(std::move(in_));
        if (!writing_)
            StartWrite();
        reading_ = true;
        rw_.Read(&in_, &read_op_);
    }

    void OnWrite(bool ok)
    {
        writing_ = false;
        queue_.pop_front();
        if (!ok) /* the call is gone: echo no more */
            queue_.clear();
        if (!queue_.empty())
            StartWrite();
        else
            MaybeFinish();
    }

    void StartWrite()
    {
        writing_ = true;
        rw_.Write(queue_.front(), &write_op_);
    }

    /* Finishes once nothing else is outstanding: Finish's completion deletes. */
    void MaybeFinish()
    {
        if (reading_ || writing_ || !queue_.empty())
            return;
        finishing_ = true;
        rw_.Finish(grpc::Status::OK, this);
    }

    Queue *q_;
    grpc::ServerContext ctx_;
    grpc::ServerAsyncReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer> rw_;
    grpc::ByteBuffer in_;
    std::deque<grpc::ByteBuffer> queue_; /* read, not yet written back; front is being written */
    Op read_op_{this, &StreamCall::OnRead};
    Op write_op_{this, &StreamCall::OnWrite};
    bool reading_ = false;
    bool writing_ = false;
    bool finishing_ = false;
};

/* Parses Sleep's `data`: decimal milliseconds, 0..MAX_SLEEP_MS. */
bool parse_ms(const std::string &s, long *ms)
{
    if (s.empty() || s.size() > 7)
        return false;
    long v = 0;
    for (char c : s) {
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    if (v > MAX_SLEEP_MS)
        return false;
    *ms = v;
    return true;
}

class SleepCall final : public Call
{
  public:
    explicit SleepCall(Queue *q) : q_(q), responder_(&ctx_)
    {
        q_->service->RequestSleep(&ctx_, &msg_, &responder_, q_->cq.get(), q_->cq.get(), this);
    }

    void Proceed(bool ok) override
    {
        switch (state_) {
        case State::REQUESTED:
            if (!ok) {
                delete this;
                return;
            }
            if (!q_->shutting_down.load(std::memory_order_relaxed))
                new SleepCall(q_);
            long ms;
            if (!parse_ms(msg_.data(), &ms)) {
                state_ = State::FINISHING;
                responder_.FinishWithError(
                    grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                 "sleep: data must be decimal milliseconds (0..3600000)"),
                    this);
                return;
            }
            state_ = State::SLEEPING;
            {
                std::lock_guard<std::mutex> lock(q_->sleepers_lock);
                q_->sleepers.insert(this);
            }
            alarm_.Set(q_->cq.get(),
                       std::chrono::system_clock::now() + std::chrono::milliseconds(ms), this);
            return;
        case State::SLEEPING: {
            std::lock_guard<std::mutex> lock(q_->sleepers_lock);
            q_->sleepers.erase(this);
        }
            if (!ok || q_->closed) { /* alarm canceled: the server is down */
                delete this;
                return;
            }
            state_ = State::FINISHING;
            responder_.Finish(msg_, grpc::Status::OK, this);
            return;
        case State::FINISHING:
            delete this;
            return;
        }
    }

    void CancelAlarm()
    {
        alarm_.Cancel();
    }

  private:
    enum class State { REQUESTED, SLEEPING, FINISHING };
    Queue *q_;
    grpc::ServerContext ctx_;
    arpc::echo::EchoMsg msg_;
    grpc::ServerAsyncResponseWriter<arpc::echo::EchoMsg> responder_;
    grpc::Alarm alarm_;
    State state_ = State::REQUESTED;
};

/* What the polling threads share. */
struct Shared {
    grpc::Server *server = nullptr;
    std::vector<std::unique_ptr<Queue>> *queues = nullptr;
    std::atomic<bool> signaled{false};    /* SIGINT/SIGTERM came */
    std::atomic<bool> server_down{false}; /* Server::Shutdown returned */
    std::thread stopper;                  /* runs Server::Shutdown (started by main) */
    int threads = 0;                      /* threads in the process when the signal came */
    double cpu_per_wall = 0.0;            /* CPU s per wall s until the signal */
};

int count_threads();
double cpu_seconds();

/* Starts Server::Shutdown on a helper thread: it waits for running calls,
 * whose completions the queues must keep delivering meanwhile. */
void start_shutdown(Shared *sh, uint64_t t_start)
{
    sh->threads = count_threads();
    double wall = (double)(bench_now_ns() - t_start) / 1e9;
    sh->cpu_per_wall = wall > 0 ? cpu_seconds() / wall : 0.0;
    for (auto &q : *sh->queues)
        q->shutting_down.store(true);
    sh->stopper = std::thread([sh] {
        sh->server->Shutdown(std::chrono::system_clock::now() +
                             std::chrono::milliseconds(SHUTDOWN_GRACE_MS));
        sh->server_down.store(true);
    });
}

/* Cancels the alarms of the queue's sleeping calls.  Thread: the queue's. */
void cancel_sleepers(Queue *q)
{
    std::lock_guard<std::mutex> lock(q->sleepers_lock);
    for (SleepCall *c : q->sleepers)
        c->CancelAlarm();
}

/* Handles the queue's events until it is shut down and drained.  Waits are
 * bounded by POLL_MS so the flags in `sh` are seen: a signal is passed on,
 * and once the server is down the queue's thread (which alone starts
 * operations on it, so none can follow) shuts the queue down. */
void poll_queue(Queue *q, Shared *sh, uint64_t t_start, bool is_main)
{
    for (;;) {
        void *tag;
        bool ok;
        auto deadline = std::chrono::system_clock::now() + std::chrono::milliseconds(POLL_MS);
        auto st = q->cq->AsyncNext(&tag, &ok, deadline);
        if (st == grpc::CompletionQueue::SHUTDOWN)
            return;
        if (st == grpc::CompletionQueue::GOT_EVENT)
            static_cast<Call *>(tag)->Proceed(ok);
        if (g_signaled)
            sh->signaled.store(true);
        if (is_main && sh->signaled.load() && !sh->stopper.joinable())
            start_shutdown(sh, t_start);
        if (!q->closed && sh->server_down.load()) {
            q->closed = true;
            cancel_sleepers(q);
            q->cq->Shutdown();
        }
    }
}

/* Threads of this process, from /proc/self/task; -1 if unreadable. */
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
    bench_opts o;
    bench_opts_init(&o);
    if (bench_opts_parse(argc, argv, BENCH_OPTS_SERVER, usage_text, nullptr, nullptr, &o) != 0)
        return 2;
    if (o.help)
        return 0;
    bench_raise_nofile();
    bench_ignore_sigpipe();

    struct sigaction sa;
    std::memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);

    Service service;
    grpc::ServerBuilder builder;
    grpc::ResourceQuota quota("grpc-echo-server");
    quota.SetMaxThreads(o.threads + 2);
    builder.SetResourceQuota(quota);
    builder.SetMaxReceiveMessageSize(-1); /* --size goes up to 16 MiB */
    builder.SetMaxSendMessageSize(-1);
    int port = 0;
    builder.AddListeningPort(o.listen, grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service);
    std::vector<std::unique_ptr<Queue>> queues;
    for (int i = 0; i < o.threads; i++) {
        queues.emplace_back(new Queue);
        queues.back()->service = &service;
        queues.back()->cq = builder.AddCompletionQueue();
    }
    std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
    if (server == nullptr || port == 0) {
        std::fprintf(stderr, "grpc-echo-server: cannot listen on %s\n", o.listen);
        return 1;
    }
    for (auto &q : queues) {
        for (int i = 0; i < PREPOSTED_ECHO; i++)
            new EchoCall(q.get());
        for (int i = 0; i < PREPOSTED_SLEEP; i++)
            new SleepCall(q.get());
        for (int i = 0; i < PREPOSTED_STREAM; i++)
            new StreamCall(q.get());
    }

    std::string host(o.listen, std::strrchr(o.listen, ':') - o.listen);
    std::printf("listening on %s:%d\n", host.c_str(), port);
    std::fflush(stdout);
    uint64_t t_start = bench_now_ns();

    Shared sh;
    sh.server = server.get();
    sh.queues = &queues;
    std::vector<std::thread> pollers;
    for (size_t i = 1; i < queues.size(); i++)
        pollers.emplace_back(poll_queue, queues[i].get(), &sh, t_start, false);
    poll_queue(queues[0].get(), &sh, t_start, true);
    sh.stopper.join();
    for (auto &t : pollers)
        t.join();

    std::fprintf(stderr,
                 "grpc-echo-server: stopped; %d threads in the process, %.2f CPU s per wall s "
                 "over %.1f s\n",
                 sh.threads, sh.cpu_per_wall, (double)(bench_now_ns() - t_start) / 1e9);
    return 0;
}
