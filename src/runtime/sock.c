#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include "runtime/sock.h"

void arpc__sock_set_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int arpc__sock_connect_start(const struct sockaddr_storage *addr, socklen_t addr_len, int *out,
                             bool *in_progress)
{
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    arpc__sock_set_nodelay(fd);
    bool pending = false;
    if (connect(fd, (const struct sockaddr *)addr, addr_len) < 0) {
        if (errno != EINPROGRESS) {
            int err = -errno;
            close(fd);
            return err;
        }
        pending = true;
    }
    if (in_progress != NULL)
        *in_progress = pending;
    *out = fd;
    return 0;
}
