/*
 * thrift-echo-server: proto/arpc/echo.thrift's Echo on Apache Thrift C++'s
 * TNonblockingServer, the Thrift C++ side of issue #16's benchmarks.
 *
 *   thrift-echo-server --listen HOST:PORT [--threads 1]
 *
 * Prints "listening on HOST:PORT" (port 0 picks one) once it accepts calls,
 * serves framed binary Thrift until SIGINT or SIGTERM, then stops and exits 0.
 *
 * Design notes.
 *
 * One thread.  TNonblockingServer with one I/O thread and no ThreadManager
 * runs everything on the thread that calls serve(): libevent's loop, reading
 * the frames, the processor and the handler, writing the answers.  That is
 * Thrift C++'s one-thread server for many connections (TSimpleServer serves
 * one connection at a time, TThreadedServer a thread per connection).  It
 * reads a connection's frames one after the other and answers each before
 * it reads the next, so pipelined requests are answered in order.  The only
 * other thread is the signal waiter below, asleep in sigwait.
 *
 * Echo answers `data` as it came (one copy into the result string, which is
 * what Thrift's generated processor asks of a handler).  Sleep sleeps `ms` on
 * the serving thread -- a Thrift C++ handler is synchronous, so a sleeping
 * call holds up every connection; that is Thrift's model, and what shape (f)
 * would show.  A bad `ms` (outside 0..3600000) is an EXCEPTION
 * (TApplicationException INTERNAL_ERROR, from the exception the handler throws).
 *
 * Shutdown.  SIGINT and SIGTERM are blocked before any thread starts; one
 * waiter thread takes them with sigwait and calls TNonblockingServer::stop(),
 * which wakes the loop through its notification pipe (safe from another
 * thread, unlike from a signal handler).
 */
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <pthread.h>
#include <stdexcept>
#include <string>
#include <thread>
#include <thrift/concurrency/ThreadFactory.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/server/TNonblockingServer.h>
#include <thrift/transport/TNonblockingServerSocket.h>
#include <unistd.h>

#include "Echo.h"

extern "C" {
#include "opts.h"
#include "sys.h"
}

namespace
{

using apache::thrift::protocol::TBinaryProtocolFactory;
using apache::thrift::server::TNonblockingServer;
using apache::thrift::server::TServerEventHandler;
using apache::thrift::transport::TNonblockingServerSocket;

constexpr int32_t MAX_SLEEP_MS = 3600000;

const char usage_text[] =
    "usage: thrift-echo-server --listen HOST:PORT [--threads 1]\n"
    "  Thrift C++ TNonblockingServer (framed, binary) of proto/arpc/echo.thrift's Echo\n"
    "  on one thread: echo(data) answers data, sleep(ms) answers the decimal text of ms\n"
    "  after blocking the thread that long.\n"
    "  Prints \"listening on HOST:PORT\" (port 0 picks one); stops on SIGINT/SIGTERM.\n";

class Handler : public arpc_echo::EchoIf
{
  public:
    void echo(std::string &ret, const std::string &data) override
    {
        ret = data;
    }

    void sleep(std::string &ret, const int32_t ms) override
    {
        if (ms < 0 || ms > MAX_SLEEP_MS)
            throw std::invalid_argument("sleep: ms must be 0..3600000");
        usleep((useconds_t)ms * 1000u);
        ret = std::to_string(ms);
    }
};

/* Prints the bound address once the listening socket exists (serve() calls
 * preServe after it listens and before the loop runs). */
class Announce : public TServerEventHandler
{
  public:
    Announce(TNonblockingServer **server, std::string host)
        : server_(server), host_(std::move(host))
    {
    }

    void preServe() override
    {
        std::printf("listening on %s:%d\n", host_.c_str(), (*server_)->getListenPort());
        std::fflush(stdout);
    }

  private:
    TNonblockingServer **server_;
    std::string host_;
};

/* The address as HOST and PORT strings (bench_addr_format writes HOST:PORT,
 * IPv6 hosts in brackets, which TNonblockingServerSocket does not take). */
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

} // namespace

int main(int argc, char **argv)
{
    bench_opts o;
    bench_opts_init(&o);
    if (bench_opts_parse(argc, argv, BENCH_OPTS_SERVER, usage_text, nullptr, nullptr, &o) != 0)
        return 2;
    if (o.help)
        return 0;
    if (o.threads != 1) {
        std::fprintf(stderr, "thrift-echo-server: --threads must be 1 (one thread per side)\n");
        return 2;
    }
    std::string host;
    int port = 0;
    if (!split_addr(&o.addr, &host, &port)) {
        std::fprintf(stderr, "thrift-echo-server: cannot read the address\n");
        return 2;
    }
    bench_raise_nofile();
    bench_ignore_sigpipe();

    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    TNonblockingServer *server = nullptr;
    try {
        auto socket = std::make_shared<TNonblockingServerSocket>(host, port);
        auto processor = std::make_shared<arpc_echo::EchoProcessor>(std::make_shared<Handler>());
        auto protocol = std::make_shared<TBinaryProtocolFactory>();
        TNonblockingServer srv(processor, protocol, socket, nullptr);
        srv.setNumIOThreads(1);
        srv.setUseHighPriorityIOThreads(false);
        server = &srv;
        srv.setServerEventHandler(std::make_shared<Announce>(&server, host));
        std::thread waiter([&stop_signals, &srv] {
            int sig = 0;
            sigwait(&stop_signals, &sig);
            srv.stop();
        });
        waiter.detach();
        srv.serve();
    } catch (const std::exception &e) {
        std::fprintf(stderr, "thrift-echo-server: %s\n", e.what());
        return 1;
    }
    return 0;
}
