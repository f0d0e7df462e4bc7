/*
 * The floor for fan-out CPU: a bare epoll server that does nothing but what
 * the kernel must do. It accepts connections on 127.0.0.1:PORT, reads each
 * request head, answers with a chunked streaming head, and for every line
 * "N" on stdin writes one pre-framed chunk (the same bytes comet's /stream
 * sends for message N of channel "fan") to every connection.
 * Single-threaded; for up to ~19,000 connections (one descriptor table).
 *
 * build: cc -O2 -o target/epoll_floor tools/bench/epoll_floor.c
 * usage: target/epoll_floor PORT
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXC 20000
static int conns[MAXC];
static int nconn;

static const char HEAD[] =
    "HTTP/1.1 200 OK\r\nExpires: 0\r\nCache-Control: no-cache\r\n"
    "Content-Type: application/json; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n";

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s PORT\n", argv[0]); return 2; }
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 65535)) { perror("listen"); return 1; }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    ev.data.fd = 0;
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev);
    struct epoll_event evs[256];
    char buf[16384];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == ls) {
                int c;
                while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                }
            } else if (fd == 0) {
                char line[64];
                if (!fgets(line, sizeof line, stdin)) return 0;
                int m = atoi(line);
                char body[256], frame[300];
                int bl = snprintf(body, sizeof body,
                                  "{\"type\":\"data\",\"cname\":\"fan\",\"seq\":%d,\"content\":\"message%d\"}\n", m, m);
                int fl = snprintf(frame, sizeof frame, "%x\r\n%s\r\n", bl, body);
                for (int k = 0; k < nconn; k++)
                    if (write(conns[k], frame, fl) < 0) { /* a gone client: ignore */ }
                printf("sent %d\n", m);
                fflush(stdout);
            } else {
                ssize_t r = read(fd, buf, sizeof buf);
                if (r <= 0) { close(fd); continue; }
                if (memmem(buf, r, "\r\n\r\n", 4) && nconn < MAXC) {
                    if (write(fd, HEAD, sizeof HEAD - 1) < 0) { close(fd); continue; }
                    conns[nconn++] = fd;
                }
            }
        }
    }
}
