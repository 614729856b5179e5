#ifndef C_WORKSTATION_LINUX_H
#define C_WORKSTATION_LINUX_H

/* epoll(7), eventfd(2) and accept4(2), which Glibc's Swift module map does not expose. */
#ifdef __linux__
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

/* accept4(2) (a GNU extension: declared only with _GNU_SOURCE, which Swift's Glibc module is built without). */
int cws_accept4(int sockfd, struct sockaddr *addr, socklen_t *addrlen, int flags);

/* The uid of a unix socket's peer (SO_PEERCRED, unix(7); struct ucred is a GNU extension too). 0 on success. */
int cws_peer_uid(int fd, unsigned int *uid);
#endif

#endif
