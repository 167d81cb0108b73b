/* cmdin — the console command reader the lab guest's workloads share
 * (memload.c, diskload.c): assembles the lines the host types on the
 * serial console from non-blocking reads of stdin and hands each complete
 * line to the workload. Lines longer than CMDIN_MAX - 1 bytes are
 * discarded whole. Header-only: each workload is one static binary built
 * from one .c file (lab/build.sh). */
#ifndef FERRY_LAB_CMDIN_H
#define FERRY_LAB_CMDIN_H
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <unistd.h>

#define CMDIN_MAX 256 /* bytes in one command line, with its NUL */

struct cmdin {
    char line[CMDIN_MAX]; /* partial command line */
    size_t len;           /* bytes in line */
    int overflow;         /* discarding an over-long line */
    int open;             /* stdin still readable (set to 1 at start) */
};

/* Reads what stdin has (never blocks when timeout_ms is 0; waits up to
 * timeout_ms otherwise, also when stdin is closed) and calls fn(ctx, line)
 * for every complete line. A read of 0 or a hard error marks stdin
 * closed: the workload goes on without commands. */
static void cmdin_poll(struct cmdin *c, int timeout_ms, void (*fn)(void *ctx, char *line),
                       void *ctx)
{
    if (!c->open) {
        if (timeout_ms > 0)
            poll(NULL, 0, timeout_ms);
        return;
    }
    struct pollfd pfd = {.fd = 0, .events = POLLIN};
    int r = poll(&pfd, 1, timeout_ms);
    if (r <= 0 || !(pfd.revents & (POLLIN | POLLHUP | POLLERR)))
        return;
    char buf[512];
    ssize_t n = read(0, buf, sizeof(buf));
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
        c->open = 0;
        return;
    }
    for (ssize_t k = 0; k < n; k++) {
        char ch = buf[k];
        if (ch == '\n') {
            if (!c->overflow) {
                c->line[c->len] = '\0';
                fn(ctx, c->line);
            }
            c->len = 0;
            c->overflow = 0;
        } else if (c->len + 1 < CMDIN_MAX) {
            c->line[c->len++] = ch;
        } else {
            c->overflow = 1;
        }
    }
}

#endif
