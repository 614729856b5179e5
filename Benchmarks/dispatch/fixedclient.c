// A client that sends exactly REQUESTS requests and reads their responses, for counting the instructions a proxy
// executes per request (instructions.sh runs the proxy under valgrind; wrk runs for a duration, not a count).
//
// Usage: fixedclient TARGET CONNECTIONS REQUESTS REQUEST_FILE
//   TARGET: a unix socket path (starting with /) or a 127.0.0.1 port number.
//   REQUEST_FILE: one request as sent on the wire (CRLF line ends), sent again and again on kept-alive connections.
// In waves: the request is written on every connection, then every response is read (its head, then
// Content-Length bytes of body; a response without Content-Length is an error). Prints the number of responses and
// of those whose status was not 2xx; exits 1 on any error or non-2xx answer.
// Build: cc -O2 -o fixedclient fixedclient.c
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int connect_to(const char *target) {
    int fd;
    if (target[0] == '/') {
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        strncpy(a.sun_path, target, sizeof a.sun_path - 1);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) return -1;
    } else {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(target))};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) return -1;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

// Reads one response on fd; returns its status, or -1 on an error. Requests are not pipelined, so a read never
// returns bytes of the next response.
static int read_response(int fd) {
    char buf[65536];
    size_t have = 0;
    char *end = NULL;
    while (!end) {
        ssize_t r = read(fd, buf + have, sizeof buf - 1 - have);
        if (r <= 0) return -1;
        have += (size_t)r;
        buf[have] = 0;
        end = strstr(buf, "\r\n\r\n");
        if (!end && have >= sizeof buf - 1) return -1;
    }
    int status = atoi(buf + 9);
    long length = -1;
    for (char *line = strstr(buf, "\r\n"); line && line < end; line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, "content-length:", 15) == 0) length = atol(line + 17);
    }
    if (length < 0) return -1;
    long body = (long)have - (long)(end + 4 - buf);
    while (body < length) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r <= 0) return -1;
        body += r;
    }
    return body == length ? status : -1;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s TARGET CONNECTIONS REQUESTS REQUEST_FILE\n", argv[0]);
        return 2;
    }
    int conns = atoi(argv[2]);
    long requests = atol(argv[3]);
    FILE *f = fopen(argv[4], "rb");
    if (!f || conns < 1 || requests < 1) return 2;
    static char request[16384];
    size_t length = fread(request, 1, sizeof request, f);
    fclose(f);
    int *fds = calloc((size_t)conns, sizeof *fds);
    for (int i = 0; i < conns; i++) {
        if ((fds[i] = connect_to(argv[1])) < 0) {
            perror("connect");
            return 1;
        }
    }
    long done = 0, bad = 0;
    while (done < requests) {
        int wave = requests - done < conns ? (int)(requests - done) : conns;
        for (int i = 0; i < wave; i++) {
            if (write_all(fds[i], request, length) != 0) {
                perror("write");
                return 1;
            }
        }
        for (int i = 0; i < wave; i++) {
            int status = read_response(fds[i]);
            if (status < 0) {
                fprintf(stderr, "connection %d: response %ld unreadable\n", i, done);
                return 1;
            }
            if (status < 200 || status > 299) bad++;
            done++;
        }
    }
    printf("%ld responses, %ld not 2xx\n", done, bad);
    return bad == 0 ? 0 : 1;
}
