/*
 * thrift-bench: closed-loop load generator on Apache Thrift C++'s generated
 * client (proto/arpc/echo.thrift's Echo), the Thrift C++ side of issue #16's
 * benchmarks; its flags and its result line are arpc-bench's, so the rows
 * compare 1:1.
 *
 *   thrift-bench --target HOST:PORT [--conns C] [--depth D] [--size S] [--secs T]
 *
 * Design notes.
 *
 * One thread, blocking sockets.  Thrift C++ has no asynchronous client for
 * raw framed sockets (its cob-style client runs over HTTP only), but the
 * generated client splits each call into send_echo() and recv_echo(), and a
 * Thrift server answers a connection's requests in order: so D calls are
 * pipelined on a connection by sending D requests before reading the first
 * answer.  The thread keeps D calls in flight on each of C connections and
 * visits them round robin: read the oldest answer of connection i (blocking
 * until it is there), send the next request on i, go to i + 1.  Answers of
 * the other connections wait in their socket buffers meanwhile, so the
 * server never starves while C * D calls are outstanding.  The generated
 * client does not check sequence ids (rseqid is read and ignored), which is
 * what lets the split calls pipeline.
 *
 * Transports.  Each connection is TFramedTransport over TBufferedTransport
 * (64 KiB each way) over TSocket (TCP_NODELAY, Thrift's default): a frame is
 * written by one send() at flush (each send_echo flushes), and answers are
 * read out of one recv() as many as it brought -- without the buffered layer
 * TFramedTransport reads every frame with two recv() calls.  That is Thrift
 * C++ at its best over the framed binary protocol, with no code of ours
 * between the generated client and the socket.
 *
 * Calls.  Each request is echo(data: S pattern bytes), the same string for
 * every call; an answer counts as an error if it is not as long as the
 * request.  Thrift's client has no per-call deadline: each socket has a
 * receive and send timeout of RECV_TIMEOUT_MS instead, so a dead server ends
 * the run instead of hanging it; a transport error costs its connection (its
 * calls in flight are counted as errors) and the run goes on with the others.
 *
 * Timing, as in arpc-bench: warm_end = start + 1 s, end = warm_end + T.  A
 * call counts (towards qps or errors) if it completed inside [warm_end, end);
 * its latency is recorded if it also started after warm_end.  The clock is
 * read once per answer: the end of one call is the start of the next on that
 * connection (start times kept in a ring of D per connection: answers come in
 * order).  At `end` no new call starts; the calls in flight are read, then the
 * connections are closed.
 */
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>
#include <vector>

#include "Echo.h"

extern "C" {
#include "hist.h"
#include "opts.h"
#include "sys.h"
}

namespace
{

using apache::thrift::TException;
using apache::thrift::protocol::TBinaryProtocol;
using apache::thrift::transport::TBufferedTransport;
using apache::thrift::transport::TFramedTransport;
using apache::thrift::transport::TSocket;

constexpr uint64_t WARMUP_NS = 1000000000ull;
constexpr int RECV_TIMEOUT_MS = 5000;
constexpr int CONNECT_TIMEOUT_MS = 10000;
constexpr uint32_t BUFFER_BYTES = 64 * 1024;

const char usage_text[] =
    "usage: thrift-bench --target HOST:PORT [--conns C] [--depth D] [--size S] [--secs T]\n"
    "  Thrift C++ generated client (framed, binary) on one thread: keeps D calls of\n"
    "  Echo.echo(data: S bytes) pipelined on each of C connections and expects data back;\n"
    "  warms up 1 s, then measures T s (1..600) and prints\n"
    "  system=thrift mode=sync conns=C depth=D size=S qps=N p50_us=N p99_us=N p999_us=N "
    "errors=N protocol=thrift\n"
    "  --threads     accepted for symmetry with arpc-bench; only 1\n"
    "  Defaults: --conns 1 --depth 1 --size 64 --secs 10.\n";

struct Conn {
    std::shared_ptr<TSocket> socket;
    std::shared_ptr<TFramedTransport> framed;
    std::unique_ptr<arpc_echo::EchoClient> client;
    std::vector<uint64_t> starts; /* ring of the calls in flight, oldest at head */
    size_t head = 0;
    size_t in_flight = 0;
    bool dead = false;
};

struct Run {
    bench_opts o;
    std::string request;
    std::string answer;
    bench_hist hist;
    uint64_t warm_end = 0;
    uint64_t end = 0;
    uint64_t done = 0;
    uint64_t errors = 0;
};

bool split_addr(const bench_addr *addr, std::string *host, int *port)
{
    char text[128];
    bench_addr_format(addr, text, sizeof text);
    const char *colon = std::strrchr(text, ':');
    if (colon == nullptr)
        return false;
    std::string h(text, (size_t)(colon - text));
    if (h.size() >= 2 && h.front() == '[' && h.back() == ']')
        h = h.substr(1, h.size() - 2);
    *host = h;
    *port = std::atoi(colon + 1);
    return true;
}

bool open_conn(Conn *c, const std::string &host, int port, int depth)
{
    c->socket = std::make_shared<TSocket>(host, port);
    c->socket->setConnTimeout(CONNECT_TIMEOUT_MS);
    c->socket->setRecvTimeout(RECV_TIMEOUT_MS);
    c->socket->setSendTimeout(RECV_TIMEOUT_MS);
    auto buffered = std::make_shared<TBufferedTransport>(c->socket, BUFFER_BYTES, BUFFER_BYTES);
    c->framed = std::make_shared<TFramedTransport>(buffered);
    c->client.reset(new arpc_echo::EchoClient(std::make_shared<TBinaryProtocol>(c->framed)));
    c->starts.assign((size_t)depth, 0);
    try {
        c->framed->open();
    } catch (const TException &e) {
        std::fprintf(stderr, "thrift-bench: connect %s:%d: %s\n", host.c_str(), port, e.what());
        return false;
    }
    return true;
}

/* Counts a call that ended at `now` and began at `start`. */
void count(Run *r, uint64_t start, uint64_t now, bool ok)
{
    if (now < r->warm_end || now >= r->end)
        return;
    if (!ok) {
        r->errors++;
        return;
    }
    r->done++;
    if (start >= r->warm_end)
        bench_hist_record(&r->hist, now - start);
}

void send_one(Run *r, Conn *c, uint64_t now)
{
    c->client->send_echo(r->request);
    c->starts[(c->head + c->in_flight) % c->starts.size()] = now;
    c->in_flight++;
}

/* A transport error: the connection's calls in flight fail, it sends no more. */
void kill_conn(Run *r, Conn *c, const char *what)
{
    uint64_t now = bench_now_ns();
    std::fprintf(stderr, "thrift-bench: connection lost: %s\n", what);
    for (; c->in_flight > 0; c->in_flight--) {
        count(r, c->starts[c->head], now, false);
        c->head = (c->head + 1) % c->starts.size();
    }
    c->dead = true;
    try {
        c->framed->close();
    } catch (const TException &) {
    }
}

/* Reads connection c's oldest answer and, before `end`, sends the next call.
 * @return false when c has nothing more to do. */
bool step(Run *r, Conn *c)
{
    if (c->dead || c->in_flight == 0)
        return false;
    try {
        c->client->recv_echo(r->answer);
        uint64_t now = bench_now_ns();
        count(r, c->starts[c->head], now, r->answer.size() == r->request.size());
        c->head = (c->head + 1) % c->starts.size();
        c->in_flight--;
        if (now < r->end)
            send_one(r, c, now);
    } catch (const TException &e) {
        kill_conn(r, c, e.what());
        return false;
    }
    return c->in_flight > 0;
}

void run_calls(Run *r, std::vector<Conn> *conns)
{
    uint64_t now = bench_now_ns();
    r->warm_end = now + WARMUP_NS;
    r->end = r->warm_end + (uint64_t)r->o.secs * 1000000000ull;
    for (Conn &c : *conns) {
        try {
            for (int k = 0; k < r->o.depth; k++)
                send_one(r, &c, now);
        } catch (const TException &e) {
            kill_conn(r, &c, e.what());
        }
    }
    for (bool busy = true; busy;) {
        busy = false;
        for (Conn &c : *conns)
            busy |= step(r, &c);
    }
}

} // namespace

int main(int argc, char **argv)
{
    std::unique_ptr<Run> r(new Run);
    bench_opts_init(&r->o);
    if (bench_opts_parse(argc, argv, BENCH_OPTS_CLIENT, usage_text, nullptr, nullptr, &r->o) != 0)
        return 2;
    if (r->o.help)
        return 0;
    if (r->o.threads != 1) {
        std::fprintf(stderr, "thrift-bench: --threads must be 1 (one thread per side)\n");
        return 2;
    }
    std::string host;
    int port = 0;
    if (!split_addr(&r->o.addr, &host, &port)) {
        std::fprintf(stderr, "thrift-bench: cannot read the address\n");
        return 2;
    }
    bench_raise_nofile();
    bench_ignore_sigpipe();
    r->request.resize(r->o.size);
    bench_fill_pattern(reinterpret_cast<uint8_t *>(&r->request[0]), r->o.size);
    bench_hist_init(&r->hist);

    std::vector<Conn> conns((size_t)r->o.conns);
    for (Conn &c : conns)
        if (!open_conn(&c, host, port, r->o.depth))
            return 1;
    run_calls(r.get(), &conns);
    for (Conn &c : conns)
        if (!c.dead)
            c.framed->close();
    double qps = (double)r->done / (double)r->o.secs;
    bench_print_result_protocol("thrift", "sync", r->o.conns, r->o.depth, r->o.size, qps, &r->hist,
                                r->errors, "thrift");
    return 0;
}
