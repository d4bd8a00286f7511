#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpc/err.h>

#include "runtime/addr.h"

static int parse_port(const char *text, uint16_t *port)
{
    char *end;
    if (*text == '\0')
        return ARPC_EBADADDR;
    unsigned long value = strtoul(text, &end, 10);
    if (*end != '\0' || value > 65535)
        return ARPC_EBADADDR;
    *port = (uint16_t)value;
    return 0;
}

static int split(const char *address, char *host, size_t host_len, uint16_t *port)
{
    const char *colon;
    const char *host_start = address;
    size_t n;
    if (address[0] == '[') {
        const char *close = strchr(address, ']');
        if (close == NULL || close[1] != ':')
            return ARPC_EBADADDR;
        host_start = address + 1;
        n = (size_t)(close - host_start);
        colon = close + 1;
    } else {
        colon = strrchr(address, ':');
        if (colon == NULL)
            return ARPC_EBADADDR;
        n = (size_t)(colon - address);
    }
    if (n == 0 || n >= host_len)
        return ARPC_EBADADDR;
    memcpy(host, host_start, n);
    host[n] = '\0';
    return parse_port(colon + 1, port);
}

int arpc__addr_parse(const char *address, struct sockaddr_storage *out, socklen_t *out_len)
{
    char host[256];
    uint16_t port;
    if (address == NULL || split(address, host, sizeof(host), &port) < 0)
        return ARPC_EBADADDR;
    memset(out, 0, sizeof(*out));
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        *out_len = sizeof(*v4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        *out_len = sizeof(*v6);
        return 0;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL)
        return ARPC_EBADADDR;
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *out_len = res->ai_addrlen;
    if (res->ai_family == AF_INET)
        v4->sin_port = htons(port);
    else
        v6->sin6_port = htons(port);
    freeaddrinfo(res);
    return 0;
}

void arpc__addr_format(const struct sockaddr *sa, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host));
        snprintf(buf, len, "%s:%u", host, ntohs(v4->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof(host));
        snprintf(buf, len, "[%s]:%u", host, ntohs(v6->sin6_port));
    } else {
        snprintf(buf, len, "?");
    }
}
