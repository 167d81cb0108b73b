#include "guestcon.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "util/ferr.h"
#include "util/xalloc.h"

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int guestcon_open(struct guestcon *gc, const char *path, int timeout_ms)
{
    struct sockaddr_un sa;
    memset(gc, 0, sizeof(*gc));
    gc->fd = -1;
    if (strlen(path) >= sizeof(sa.sun_path))
        return FERR_TOOBIG;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);

    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -errno;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            gc->fd = fd;
            gc->buf = xmalloc(GUESTCON_LINE_MAX);
            return 0;
        }
        int err = errno;
        close(fd);
        if (err != ENOENT && err != ECONNREFUSED && err != EAGAIN)
            return -err;
        if (now_ms() >= deadline)
            return FERR_TIMEOUT;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

int guestcon_send(struct guestcon *gc, const char *line)
{
    if (gc->fd < 0)
        return FERR_CLOSED;
    char *msg = xasprintf("%s\n", line);
    size_t n = strlen(msg), off = 0;
    int rc = 0;
    while (off < n) {
        ssize_t w = send(gc->fd, msg + off, n - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            rc = (errno == EPIPE || errno == ECONNRESET) ? FERR_CLOSED : -errno;
            break;
        }
        off += (size_t)w;
    }
    free(msg);
    return rc;
}

/* Takes the first complete line out of gc->buf into *line (NUL-terminated,
 * trailing "\r" removed, pointing into a caller buffer of
 * GUESTCON_LINE_MAX bytes). Returns 1 when a line was taken, 0 when none is
 * complete. Over-long lines are dropped, never returned. */
static int take_line(struct guestcon *gc, char *out)
{
    for (;;) {
        char *nl = memchr(gc->buf, '\n', gc->len);
        if (!nl) {
            if (gc->len == GUESTCON_LINE_MAX) { /* full without a newline */
                gc->len = 0;
                gc->skipping = 1;
            }
            return 0;
        }
        size_t n = (size_t)(nl - gc->buf);
        int skip = gc->skipping;
        if (!skip) {
            memcpy(out, gc->buf, n);
            out[n] = '\0';
            while (n > 0 && out[n - 1] == '\r')
                out[--n] = '\0';
        }
        gc->len -= (size_t)(nl - gc->buf) + 1;
        memmove(gc->buf, nl + 1, gc->len);
        gc->skipping = 0;
        if (!skip)
            return 1;
    }
}

int guestcon_expect(struct guestcon *gc, const char *prefix, int timeout_ms, char **rest_out)
{
    *rest_out = NULL;
    if (gc->fd < 0)
        return FERR_CLOSED;
    char *line = xmalloc(GUESTCON_LINE_MAX);
    size_t plen = strlen(prefix);
    long long deadline = now_ms() + timeout_ms;
    int rc;
    for (;;) {
        while (take_line(gc, line)) {
            const char *s = line;
            while (*s == '\r')
                s++;
            if (gc->log)
                fprintf(gc->log, "guest: %s\n", s);
            if (strncmp(s, prefix, plen) == 0) {
                *rest_out = xstrdup(s + plen);
                rc = 0;
                goto out;
            }
        }
        long long left = deadline - now_ms();
        if (left <= 0) {
            rc = FERR_TIMEOUT;
            goto out;
        }
        struct pollfd pfd = {.fd = gc->fd, .events = POLLIN};
        int pr = poll(&pfd, 1, left > 1000 ? 1000 : (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0) {
            rc = -errno;
            goto out;
        }
        if (pr == 0)
            continue;
        ssize_t r = recv(gc->fd, gc->buf + gc->len, GUESTCON_LINE_MAX - gc->len, 0);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r < 0) {
            rc = errno == ECONNRESET ? FERR_CLOSED : -errno;
            goto out;
        }
        if (r == 0) {
            rc = FERR_CLOSED;
            goto out;
        }
        gc->len += (size_t)r;
    }
out:
    free(line);
    return rc;
}

int guestcon_command(struct guestcon *gc, const char *line, const char *prefix, int timeout_ms,
                     char **rest_out)
{
    *rest_out = NULL;
    int rc = guestcon_send(gc, line);
    if (rc < 0)
        return rc;
    return guestcon_expect(gc, prefix, timeout_ms, rest_out);
}

void guestcon_close(struct guestcon *gc)
{
    if (gc->fd >= 0)
        close(gc->fd);
    gc->fd = -1;
    free(gc->buf);
    gc->buf = NULL;
    gc->len = 0;
}
