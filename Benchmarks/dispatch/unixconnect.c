// LD_PRELOAD shim for wrk, which speaks TCP only: connect(2) to 127.0.0.1:PORT becomes a connect to a unix stream
// socket when UNIXCONNECT_MAP names that port ("PORT=/path/to.sock[,PORT=/path...]"). Everything else in wrk (its
// event loop, Lua scripts, latency histogram) is unchanged, so the contenders on unix sockets are measured by the
// same client as the direct TCP upstream.
//
// The TCP socket wrk made is replaced in place (dup2) by a unix socket with the same file status flags
// (O_NONBLOCK), then connected. wrk's later setsockopt(TCP_NODELAY) fails on it with EOPNOTSUPP, which wrk ignores.
// Build: cc -O2 -shared -fPIC -o unixconnect.so unixconnect.c -ldl
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int (*real_connect)(int, const struct sockaddr *, socklen_t);

// The socket path mapped to `port`, copied into `out`; 0 when the port is not mapped.
static int mapped(unsigned port, char *out, size_t size) {
    const char *map = getenv("UNIXCONNECT_MAP");
    if (!map) return 0;
    while (*map) {
        char *end;
        unsigned long p = strtoul(map, &end, 10);
        if (*end != '=') return 0;
        const char *path = end + 1;
        size_t len = strcspn(path, ",");
        if (p == port && len > 0 && len < size) {
            memcpy(out, path, len);
            out[len] = 0;
            return 1;
        }
        map = path + len;
        if (*map == ',') map++;
    }
    return 0;
}

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
    if (!real_connect) real_connect = dlsym(RTLD_NEXT, "connect");
    if (addr && addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        struct sockaddr_un un = {.sun_family = AF_UNIX};
        if (in->sin_addr.s_addr == htonl(INADDR_LOOPBACK) && mapped(ntohs(in->sin_port), un.sun_path, sizeof un.sun_path)) {
            int flags = fcntl(fd, F_GETFL);
            int u = socket(AF_UNIX, SOCK_STREAM, 0);
            if (u < 0) return -1;
            if (flags >= 0) fcntl(u, F_SETFL, flags);
            if (dup2(u, fd) < 0) {
                int e = errno;
                close(u);
                errno = e;
                return -1;
            }
            close(u);
            return real_connect(fd, (struct sockaddr *)&un, sizeof un);
        }
    }
    return real_connect(fd, addr, len);
}
