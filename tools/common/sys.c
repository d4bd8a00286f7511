/*
 * What a load generator needs from the system, shared by arpc-bench and the
 * raw-socket baselines of bench/.
 *
 * Design notes: everything here is stateless and thread-safe; functions return
 * 0 or -errno like the rest of arpc, and write out-params only on success.
 */
#include "sys.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

int bench_addr_parse(const char *hostport, bench_addr *out)
{
    char host[256];
    const char *colon;
    const char *port;
    size_t host_len;
    struct addrinfo hints;
    struct addrinfo *res;
    char *end;
    long port_num;

    colon = strrchr(hostport, ':');
    if (colon == NULL || colon == hostport || colon[1] == '\0')
        return -EINVAL;
    port = colon + 1;
    host_len = (size_t)(colon - hostport);
    if (hostport[0] == '[') {
        /* "[v6]:port": the bracket must close right before the colon. */
        if (host_len < 3 || hostport[host_len - 1] != ']')
            return -EINVAL;
        hostport++;
        host_len -= 2;
    }
    if (host_len >= sizeof(host))
        return -EINVAL;
    memcpy(host, hostport, host_len);
    host[host_len] = '\0';

    errno = 0;
    port_num = strtol(port, &end, 10);
    if (errno != 0 || *end != '\0' || port_num < 0 || port_num > 65535)
        return -EINVAL;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -EINVAL;
    if (res->ai_addrlen > sizeof(out->ss)) {
        freeaddrinfo(res);
        return -EINVAL;
    }
    memset(&out->ss, 0, sizeof(out->ss));
    memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
    out->len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

void bench_addr_format(const bench_addr *addr, char *out, size_t out_len)
{
    char host[NI_MAXHOST];
    char serv[NI_MAXSERV];

    if (getnameinfo((const struct sockaddr *)&addr->ss, addr->len, host, sizeof(host), serv,
                    sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(out, out_len, "?");
        return;
    }
    if (addr->ss.ss_family == AF_INET6)
        snprintf(out, out_len, "[%s]:%s", host, serv);
    else
        snprintf(out, out_len, "%s:%s", host, serv);
}

void bench_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

void bench_ignore_sigpipe(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGPIPE, &sa, NULL);
}

uint64_t bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void bench_fill_pattern(uint8_t *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        p[i] = (uint8_t)('a' + i % 26);
}
