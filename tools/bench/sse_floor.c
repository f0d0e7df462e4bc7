/*
 * The floor for tools/c1000k: a bare SSE server that does only what the
 * kernel must do for a broadcast to 1M subscribers, behind the same admin
 * calls c1000k and comet-load make, so that both can be pointed at it
 * unchanged (COMET_BIN=tools/bench/sse_floor.sh tools/c1000k).
 *
 * - THREADS workers (default 52), each with a private descriptor table
 *   (unshare(CLONE_FILES)) and its own epoll; every worker accepts from the
 *   one front listener (EPOLLEXCLUSIVE) until it holds PER_THREAD sockets.
 * - A subscriber sends one GET with cname=<name>; it is answered with comet's
 *   SSE head and a next_seq event, and kept.
 * - The admin listener (one thread, keep-alive, GET only) answers
 *   /broadcast?content=X by waking every worker through its eventfd; each
 *   worker writes one chunked SSE broadcast event (the bytes comet sends,
 *   framed once per channel name) to each of its sockets in accept order.
 *   /push?cname=C&content=X does the same for the subscribers of C only.
 *   Either is answered at once; the next one waits until every worker has
 *   written the last (one message in flight).
 *   /info answers {"channels": C, "subscribers": S}, /stats {"delivered":D}.
 * Nothing else: no timers, no history, no parsing beyond finding cname.
 *
 * build: cc -O2 -pthread -o target/sse_floor tools/bench/sse_floor.c
 * usage: target/sse_floor FRONT_PORT ADMIN_PORT [THREADS]   (port 0: any free one;
 *        the first line on stderr names the ports bound)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PER_THREAD 19500
#define MAX_THREADS 128
#define NAME_MAX_LEN 32
#define FRAME_MAX 512
#define FRAME_SLOTS 4096

static const char HEAD[] =
    "HTTP/1.1 200 OK\r\nExpires: 0\r\nCache-Control: no-cache\r\n"
    "Content-Type: text/event-stream; charset=utf-8\r\nAccess-Control-Allow-Origin: *\r\n"
    "X-Accel-Buffering: no\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n";

struct conn {
    int fd;
    unsigned frame_slot; /* hash of name, into a worker's frame table */
    char name[NAME_MAX_LEN];
};

struct worker {
    int ep, wake, listener;
    int n, accepted;
    struct conn *conns;
    int *slot_of_fd; /* descriptor -> index in conns + 1; 0: not subscribed */
    pthread_t th;
};

static struct worker workers[MAX_THREADS];
static int nthreads = 52;
static atomic_long subscribers, delivered;
/* The broadcast content, set by the admin thread before it wakes the workers. */
static char content[256];
/* The channel of a /push ("" for a /broadcast), set with the content. */
static char target[NAME_MAX_LEN];
/* Workers still writing the current message. The admin thread answers a
 * publish at once (so /info and /stats stay answered during a broadcast) but
 * starts the next one only when this is 0: one message in flight. */
static atomic_int busy;

static int listen_on(int port) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 65535)) {
        perror("listen");
        exit(1);
    }
    return s;
}

static int bound_port(int s) {
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &len);
    return ntohs(a.sin_port);
}

/* Copies the value of `key=` in the request line into out; 0 when absent. */
static int query_value(const char *req, const char *key, char *out, int cap) {
    const char *end = strstr(req, " HTTP/");
    const char *p = strstr(req, key);
    if (!p || !end || p > end) return 0;
    p += strlen(key);
    int n = 0;
    while (p < end && *p != '&' && n < cap - 1) {
        if (*p == '%' && p + 2 < end) {
            char hex[3] = {p[1], p[2], 0};
            out[n++] = (char)strtol(hex, NULL, 16);
            p += 3;
        } else {
            out[n++] = *p++;
        }
    }
    out[n] = 0;
    return 1;
}

static int chunk(char *out, int cap, const char *body) {
    int bl = (int)strlen(body);
    return snprintf(out, cap, "%x\r\n%s\r\n", bl, body);
}

static void subscribe(struct worker *w, int fd, const char *req) {
    struct conn *c = &w->conns[w->n];
    if (!query_value(req, "cname=", c->name, sizeof c->name)) {
        close(fd);
        return;
    }
    char body[FRAME_MAX], out[sizeof HEAD + FRAME_MAX + 16];
    snprintf(body, sizeof body,
             "retry: 3000\n\nid: 0\ndata: {\"type\":\"next_seq\",\"cname\":\"%s\",\"seq\":1,\"content\":\"\"}\n\n",
             c->name);
    memcpy(out, HEAD, sizeof HEAD - 1);
    int n = (int)sizeof HEAD - 1;
    n += chunk(out + n, (int)sizeof out - n, body);
    if (write(fd, out, n) != n) {
        close(fd);
        return;
    }
    c->fd = fd;
    c->frame_slot = 2166136261u; /* FNV-1a */
    for (const char *p = c->name; *p; p++) c->frame_slot = (c->frame_slot ^ (unsigned char)*p) * 16777619u;
    c->frame_slot %= FRAME_SLOTS;
    w->slot_of_fd[fd] = ++w->n;
    atomic_fetch_add(&subscribers, 1);
}

/* One frame per distinct channel name: consecutive subscribers usually differ,
 * so a table indexed by a hash of the name keeps the framing off the
 * per-write path (a slot whose name differs is framed again). */
struct frame {
    char name[NAME_MAX_LEN];
    char bytes[FRAME_MAX];
    int len;
};

static void broadcast(struct worker *w, const char *text, const char *only) {
    static __thread struct frame *frames;
    if (!frames) frames = calloc(FRAME_SLOTS, sizeof *frames);
    long sent = 0;
    for (int i = 0; i < w->n; i++) {
        struct conn *c = &w->conns[i];
        if (c->fd < 0 || (*only && strcmp(c->name, only) != 0)) continue;
        struct frame *f = &frames[c->frame_slot];
        if (f->len == 0 || strcmp(f->name, c->name) != 0) {
            char body[FRAME_MAX];
            snprintf(body, sizeof body,
                     "id: 1\ndata: {\"type\":\"%s\",\"cname\":\"%s\",\"seq\":1,\"content\":\"%s\"}\n\n",
                     *only ? "data" : "broadcast", c->name, text);
            strcpy(f->name, c->name);
            f->len = chunk(f->bytes, sizeof f->bytes, body);
        }
        if (write(c->fd, f->bytes, f->len) == f->len) sent++;
    }
    for (int k = 0; k < FRAME_SLOTS; k++) frames[k].len = 0;
    atomic_fetch_add(&delivered, sent);
}

static void *worker_main(void *arg) {
    struct worker *w = arg;
    if (unshare(CLONE_FILES)) {
        perror("unshare");
        exit(1);
    }
    w->ep = epoll_create1(0);
    w->conns = calloc(PER_THREAD, sizeof *w->conns);
    w->slot_of_fd = calloc(1 << 16, sizeof *w->slot_of_fd);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.u64 = UINT64_MAX};
    epoll_ctl(w->ep, EPOLL_CTL_ADD, w->listener, &ev);
    ev = (struct epoll_event){.events = EPOLLIN, .data.u64 = UINT64_MAX - 1};
    epoll_ctl(w->ep, EPOLL_CTL_ADD, w->wake, &ev);
    struct epoll_event evs[256];
    char buf[4096];
    int accepting = 1, one = 1;
    for (;;) {
        int n = epoll_wait(w->ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            uint64_t tag = evs[i].data.u64;
            if (tag == UINT64_MAX) {
                int c;
                while (accepting && (c = accept4(w->listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    w->accepted++;
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event ce = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = (uint64_t)c};
                    epoll_ctl(w->ep, EPOLL_CTL_ADD, c, &ce);
                    if (w->accepted >= PER_THREAD) {
                        epoll_ctl(w->ep, EPOLL_CTL_DEL, w->listener, NULL);
                        accepting = 0;
                    }
                }
            } else if (tag == UINT64_MAX - 1) {
                uint64_t v;
                if (read(w->wake, &v, sizeof v) == sizeof v) {
                    char text[sizeof content], only[sizeof target];
                    memcpy(text, content, sizeof text);
                    memcpy(only, target, sizeof only);
                    broadcast(w, text, only);
                    atomic_fetch_sub(&busy, 1);
                }
            } else {
                int fd = (int)tag;
                ssize_t r = read(fd, buf, sizeof buf - 1);
                if (r > 0) {
                    buf[r] = 0;
                    if (strstr(buf, "\r\n\r\n") && w->n < PER_THREAD) subscribe(w, fd, buf);
                    continue;
                }
                if (r < 0 && errno == EAGAIN) continue;
                if (w->slot_of_fd[fd]) {
                    w->conns[w->slot_of_fd[fd] - 1].fd = -1;
                    w->slot_of_fd[fd] = 0;
                    atomic_fetch_sub(&subscribers, 1);
                }
                close(fd);
            }
        }
    }
    return NULL;
}

static void answer(int fd, const char *body) {
    char out[512];
    int n = snprintf(out, sizeof out,
                     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     strlen(body), body);
    if (write(fd, out, n) != n) { /* the admin client went away */ }
}

/* Admin: one blocking thread, keep-alive, GET requests without bodies. */
static void admin_loop(int ls) {
    for (;;) {
        int fd = accept(ls, NULL, NULL);
        if (fd < 0) continue;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char req[8192];
        int have = 0;
        for (;;) {
            char *end;
            while (!(req[have] = 0, end = strstr(req, "\r\n\r\n"))) {
                ssize_t r = read(fd, req + have, sizeof req - 1 - have);
                if (r <= 0) goto done;
                have += (int)r;
            }
            *end = 0;
            char body[256];
            int push = !strncmp(req, "GET /push", 9);
            if (push || !strncmp(req, "GET /broadcast", 14)) {
                char text[sizeof content], only[sizeof target] = "";
                if (!query_value(req, "content=", text, sizeof text)) text[0] = 0;
                if (push && !query_value(req, "cname=", only, sizeof only)) only[0] = 0;
                struct timespec nap = {0, 100000};
                while (atomic_load(&busy) > 0) nanosleep(&nap, NULL);
                memcpy(content, text, sizeof content);
                memcpy(target, only, sizeof target);
                atomic_store(&busy, nthreads);
                uint64_t one64 = 1;
                for (int i = 0; i < nthreads; i++)
                    if (write(workers[i].wake, &one64, 8) != 8) perror("eventfd");
                answer(fd, "{\"type\": \"ok\"}\n");
            } else if (!strncmp(req, "GET /info", 9)) {
                long s = atomic_load(&subscribers);
                snprintf(body, sizeof body, "{\"version\": \"floor\", \"channels\": %d, \"subscribers\": %ld}\n",
                         s > 0 ? 1000 : 0, s);
                answer(fd, body);
            } else if (!strncmp(req, "GET /stats", 10)) {
                snprintf(body, sizeof body, "{\"delivered\":%ld}\n", atomic_load(&delivered));
                answer(fd, body);
            } else {
                answer(fd, "{}\n");
            }
            int used = (int)(end - req) + 4;
            memmove(req, req + used, have - used);
            have -= used;
        }
    done:
        close(fd);
    }
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s FRONT_PORT ADMIN_PORT [THREADS]\n", argv[0]);
        return 2;
    }
    if (argc > 3) nthreads = atoi(argv[3]);
    if (nthreads < 1 || nthreads > MAX_THREADS) return 2;
    int front = listen_on(atoi(argv[1]));
    int admin = listen_on(atoi(argv[2]));
    /* Blocking admin accepts. */
    int nb = 0;
    ioctl(admin, FIONBIO, &nb);
    /* Everything shared exists before any worker unshares its table. */
    for (int i = 0; i < nthreads; i++) {
        workers[i].listener = front;
        workers[i].wake = eventfd(0, EFD_NONBLOCK);
    }
    for (int i = 0; i < nthreads; i++) pthread_create(&workers[i].th, NULL, worker_main, &workers[i]);
    fprintf(stderr, "sse_floor: front 127.0.0.1:%d, admin 127.0.0.1:%d, %d workers\n", bound_port(front),
            bound_port(admin), nthreads);
    admin_loop(admin);
    return 0;
}
