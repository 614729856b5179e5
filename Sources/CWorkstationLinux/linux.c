#define _GNU_SOURCE
#include <sys/socket.h>
#include "CWorkstationLinux.h"

#ifdef __linux__
int cws_accept4(int sockfd, void *addr, unsigned int *addrlen, int flags) {
    return accept4(sockfd, (struct sockaddr *)addr, (socklen_t *)addrlen, flags);
}

int cws_peer_uid(int fd, unsigned int *uid) {
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return -1;
    *uid = cred.uid;
    return 0;
}
#endif
