#include "util/httpc.h"

#include <errno.h>
#include <stdbool.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util/xalloc.h"

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int parse_base(const char *url, char *host, size_t hn, char *port, size_t pn)
{
    const char *p = url;
    if (strncmp(p, "http://", 7) == 0)
        p += 7;
    const char *colon = strrchr(p, ':');
    if (!colon || colon == p)
        return -1;
    size_t hl = (size_t)(colon - p);
    const char *ps = colon + 1;
    size_t pl = strcspn(ps, "/");
    if (hl >= hn || pl == 0 || pl >= pn)
        return -1;
    memcpy(host, p, hl);
    host[hl] = '\0';
    memcpy(port, ps, pl);
    port[pl] = '\0';
    return 0;
}

static int connect_to(const char *host, const char *port, int timeout_ms, struct ferr *e)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0)
        return ferr_set(e, FERR_INVAL, "url", "cannot resolve %s: %s", host, gai_strerror(rc));
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(res);
        return ferr_set(e, -errno, "", "socket: %s", strerror(errno));
    }
    rc = connect(fd, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (rc != 0 && errno != EINPROGRESS) {
        int err = errno;
        close(fd);
        return ferr_set(e, -err, "", "connect %s:%s: %s", host, port, strerror(err));
    }
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    rc = poll(&pfd, 1, timeout_ms);
    if (rc <= 0) {
        close(fd);
        return ferr_set(e, FERR_TIMEOUT, "", "connect %s:%s timed out", host, port);
    }
    int soerr = 0;
    socklen_t sl = sizeof(soerr);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
    if (soerr) {
        close(fd);
        return ferr_set(e, -soerr, "", "connect %s:%s: %s", host, port, strerror(soerr));
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t n, long long deadline, struct ferr *e)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            return ferr_set(e, -errno, "", "send: %s", strerror(errno));
        long long left = deadline - now_ms();
        if (left <= 0)
            return ferr_set(e, FERR_TIMEOUT, "", "send timed out");
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        poll(&pfd, 1, (int)left);
    }
    return 0;
}

void httpc_resp_free(struct httpc_resp *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
}

int httpc_request(const char *url_base, const char *method, const char *path, const char *body,
                  const char *token, int timeout_ms, struct httpc_resp *r, struct ferr *e)
{
    memset(r, 0, sizeof(*r));
    char host[256], port[16];
    if (parse_base(url_base, host, sizeof(host), port, sizeof(port)) != 0)
        return ferr_set(e, FERR_INVAL, "url", "bad URL '%.100s' (want http://HOST:PORT)",
                        url_base);
    long long deadline = now_ms() + timeout_ms;
    int fd = connect_to(host, port, timeout_ms, e);
    if (fd < 0)
        return fd;
    size_t blen = body ? strlen(body) : 0;
    char *head = xasprintf("%s %s HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\n"
                           "Content-Type: application/json\r\nContent-Length: %zu\r\n%s%s%s\r\n",
                           method, path, host, port, blen, token ? "Authorization: Bearer " : "",
                           token ? token : "", token ? "\r\n" : "");
    int rc = send_all(fd, head, strlen(head), deadline, e);
    free(head);
    if (rc == 0 && blen)
        rc = send_all(fd, body, blen, deadline, e);
    /* A server that refuses an oversize body answers (413) and closes
     * before reading all of it: the send fails with EPIPE/ECONNRESET but
     * the answer is waiting in our receive buffer, so read it. */
    bool refused = rc == -EPIPE || rc == -ECONNRESET;
    if (rc != 0 && !refused) {
        close(fd);
        return rc;
    }
    rc = 0;
    size_t cap = 8192, len = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0) {
            rc = ferr_set(e, FERR_TIMEOUT, "", "%s %s: no complete response in %d ms", method,
                          path, timeout_ms);
            break;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)left) <= 0)
            continue;
        if (len + 4096 + 1 > cap) {
            if (cap >= HTTPC_MAX_RESPONSE) {
                rc = ferr_set(e, FERR_TOOBIG, "", "response exceeds %u bytes",
                              HTTPC_MAX_RESPONSE);
                break;
            }
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n < 0 && errno == ECONNRESET && len > 0)
            break; /* the answer arrived before the reset */
        if (n < 0) {
            rc = ferr_set(e, -errno, "", "recv: %s", strerror(errno));
            break;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    buf[len] = '\0';
    int status = 0;
    if (len < 12 || sscanf(buf, "HTTP/1.%*c %d", &status) != 1 || status < 100 || status > 599) {
        free(buf);
        return ferr_set(e, FERR_PEER, "", "malformed HTTP response from %s", url_base);
    }
    char *sep = strstr(buf, "\r\n\r\n");
    if (!sep) {
        free(buf);
        return ferr_set(e, FERR_PEER, "", "HTTP response without header end from %s", url_base);
    }
    char *b = sep + 4;
    size_t bl = len - (size_t)(b - buf);
    /* Honour chunked encoding, which evhttp uses for some replies. */
    char *te = strcasestr(buf, "\r\nTransfer-Encoding: chunked");
    if (te && te < sep) {
        size_t out = 0, i = 0;
        while (i < bl) {
            char *endp = NULL;
            unsigned long sz = strtoul(b + i, &endp, 16);
            char *crlf = strstr(b + i, "\r\n");
            if (!crlf || !endp)
                break;
            i = (size_t)(crlf - b) + 2;
            if (sz == 0 || i + sz > bl)
                break;
            memmove(b + out, b + i, sz);
            out += sz;
            i += sz + 2;
        }
        bl = out;
    }
    r->status = status;
    r->body = xstrndup(b, bl);
    r->len = bl;
    free(buf);
    return 0;
}

int httpc_json(const char *url_base, const char *method, const char *path, const json_t *body,
               const char *token, int timeout_ms, int *status, json_t **out, struct ferr *e)
{
    *out = NULL;
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct httpc_resp r;
    int rc = httpc_request(url_base, method, path, text, token, timeout_ms, &r, e);
    free(text);
    if (rc != 0)
        return rc;
    *status = r.status;
    if (r.len)
        *out = json_loadb(r.body, r.len, 0, NULL);
    httpc_resp_free(&r);
    return 0;
}
