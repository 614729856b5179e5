#ifndef C_WORKSTATION_LINUX_H
#define C_WORKSTATION_LINUX_H

/* epoll(7), eventfd(2), inotify(7), accept4(2) and SO_PEERCRED, which Glibc's Swift module map does not expose. Only headers
   Glibc's module leaves out are included here, so that socket declarations keep coming from Glibc. */
#ifdef __linux__
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>

/* accept4(2) (a GNU extension: declared only with _GNU_SOURCE, which Swift's Glibc module is built without);
   addr and addrlen as for accept(2). */
int cws_accept4(int sockfd, void *addr, unsigned int *addrlen, int flags);

/* The uid of a unix socket's peer (SO_PEERCRED, unix(7); struct ucred is a GNU extension too). 0 on success. */
int cws_peer_uid(int fd, unsigned int *uid);
#endif

#endif
