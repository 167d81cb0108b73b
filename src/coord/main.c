/* ferryd — the coordinator: durable store, API, auth and policy, host
 * inventory, event outbox. See docs/FERRYD.md.
 *
 *   ferryd [--config FILE]                       serve
 *   ferryd [--config FILE] --add-token USER PROJECT ROLES
 *                                                create a token, print it once */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "coord/auth.h"
#include "coord/coord.h"
#include "coord/metrics.h"
#include "coord/migrations.h"
#include "coord/plans.h"
#include "coord/readers.h"
#include "coord/sse.h"
#include "coord/webhook.h"
#include "util/httpd.h"
#include "util/log.h"
#include "util/xalloc.h"

static void usage(void)
{
    fprintf(stderr, "usage: ferryd [--config FILE]\n"
                    "       ferryd [--config FILE] --add-token USER PROJECT ROLES\n"
                    "  --config     key = value configuration (docs/FERRYD.md); defaults\n"
                    "               apply without one\n"
                    "  --add-token  create an API token for USER in PROJECT with the\n"
                    "               comma-separated ROLES, print it once and exit\n");
}

static void on_signal(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct coord *c = arg;
    log_info("ferryd", "msg=\"stopping\"");
    event_base_loopexit(c->base, NULL);
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct coord *c = arg;
    struct ferr e = {0};
    if (coord_sweep_hosts(c, coord_now_ms(), NULL, &e) != 0)
        log_error("inventory", "msg=\"heartbeat sweep failed\" err=\"%s\"", e.msg);
}

/* Makes sure the admin token of the bootstrap file exists in the store:
 * an existing file's token is registered (once); a missing file gets a new
 * token, written with mode 0600. The token itself is never logged. */
static int bootstrap_token(struct coord *c, struct ferr *e)
{
    const char *path = c->cfg.bootstrap_token_file;
    char tok[AUTH_TOKEN_MAX + 2] = {0};
    FILE *f = fopen(path, "r");
    if (f) {
        char *r = fgets(tok, sizeof(tok), f);
        fclose(f);
        tok[strcspn(tok, "\r\n")] = '\0';
        if (!r || !tok[0] || strlen(tok) > AUTH_TOKEN_MAX)
            return ferr_set(e, FERR_INVAL, "bootstrap_token_file",
                            "%s must hold one token of 1..%d bytes", path, AUTH_TOKEN_MAX);
        struct store_token t = {0};
        auth_hash(tok, t.hash);
        if (store_token_lookup(c->st, t.hash, &t, NULL) == 0)
            return 0;
        snprintf(t.user, sizeof(t.user), "admin");
        snprintf(t.project, sizeof(t.project), "admin");
        snprintf(t.roles, sizeof(t.roles), "admin");
        t.created_ms = coord_now_ms();
        int rc = store_token_add(c->st, &t, e);
        if (rc == 0)
            log_info("ferryd", "msg=\"bootstrap admin token registered\" file=%s", path);
        return rc;
    }
    if (errno != ENOENT)
        return ferr_set(e, -errno, "bootstrap_token_file", "cannot read %s: %s", path,
                        strerror(errno));
    char fresh[AUTH_TOKEN_LEN + 1];
    int rc = auth_token_create(c->st, "admin", "admin", "admin", coord_now_ms(), fresh, e);
    if (rc)
        return rc;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return ferr_set(e, -errno, "bootstrap_token_file", "cannot create %s: %s", path,
                        strerror(errno));
    size_t len = strlen(fresh);
    fresh[len] = '\n';
    ssize_t w = write(fd, fresh, len + 1);
    int sync_ok = fsync(fd) == 0;
    close(fd);
    if (w != (ssize_t)(len + 1) || !sync_ok)
        return ferr_set(e, -EIO, "bootstrap_token_file", "cannot write %s", path);
    log_info("ferryd", "msg=\"bootstrap admin token created\" file=%s", path);
    return 0;
}

static enum log_level level_of(const char *s)
{
    if (strcmp(s, "debug") == 0)
        return LOG_DEBUG;
    if (strcmp(s, "warn") == 0)
        return LOG_WARN;
    if (strcmp(s, "error") == 0)
        return LOG_ERROR;
    return LOG_INFO;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"add-token", no_argument, NULL, 'a'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *cfg_path = NULL;
    int add_token = 0, ch;
    while ((ch = getopt_long(argc, argv, "c:ah", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            cfg_path = optarg;
            break;
        case 'a':
            add_token = 1;
            break;
        default:
            usage();
            return ch == 'h' ? 0 : 2;
        }
    }
    if ((add_token && argc - optind != 3) || (!add_token && optind != argc)) {
        usage();
        return 2;
    }
    static struct coord c;
    struct ferr e = {0};
    config_defaults(&c.cfg);
    if (cfg_path && config_load(&c.cfg, cfg_path, &e) != 0) {
        fprintf(stderr, "ferryd: %s: %s\n", cfg_path, e.msg);
        return 2;
    }
    log_set_level(level_of(c.cfg.log_level));
    if (store_open(c.cfg.db_path, &c.st, &e) != 0) {
        fprintf(stderr, "ferryd: store %s: %s\n", c.cfg.db_path, e.msg);
        return 1;
    }
    if (add_token) {
        char tok[AUTH_TOKEN_LEN + 1];
        int rc = auth_token_create(c.st, argv[optind], argv[optind + 1], argv[optind + 2],
                                   coord_now_ms(), tok, &e);
        store_close(c.st);
        if (rc) {
            fprintf(stderr, "ferryd: --add-token: %s%s%s\n", e.field, e.field[0] ? ": " : "",
                    e.msg);
            return 2;
        }
        printf("%s\n", tok);
        return 0;
    }
    if (coord_policy_load(&c, &e) != 0) {
        fprintf(stderr, "ferryd: policy: %s %s\n", e.field, e.msg);
        return 2;
    }
    if (c.cfg.bootstrap_token_file[0] && bootstrap_token(&c, &e) != 0) {
        fprintf(stderr, "ferryd: bootstrap token: %s\n", e.msg);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    c.base = event_base_new();
    c.http = evhttp_new(c.base);
    httpd_apply_caps(c.http);
    /* With read threads, the public address is theirs and the loop listens
     * on a private loopback port for what they relay (coord/readers.h). */
    int loop_port = 0;
    if (c.cfg.read_threads == 0) {
        if (evhttp_bind_socket(c.http, c.cfg.listen_addr, (ev_uint16_t)c.cfg.listen_port) != 0) {
            fprintf(stderr, "ferryd: cannot listen on %s:%d: %s\n", c.cfg.listen_addr,
                    c.cfg.listen_port, strerror(errno));
            return 1;
        }
    } else {
        struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(c.http, "127.0.0.1", 0);
        struct sockaddr_in sa;
        socklen_t slen = sizeof(sa);
        if (!bs || getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sa, &slen) != 0) {
            fprintf(stderr, "ferryd: cannot listen on 127.0.0.1 for the read threads: %s\n",
                    strerror(errno));
            return 1;
        }
        loop_port = ntohs(sa.sin_port);
    }
    struct sse *sse = sse_new(&c); /* events: SSE, webhooks, /metrics (docs/EVENTS.md) */
    struct webhooks *hooks = NULL;
    if (webhooks_new(&c, &hooks, &e) != 0) {
        fprintf(stderr, "ferryd: %s: %s\n", e.field, e.msg);
        return 1;
    }
    struct metrics *met = metrics_new(&c, sse, hooks);
    evhttp_set_gencb(c.http, metrics_front, met); /* times requests, then coord_api_handle */
    c.started_ms = coord_now_ms();
    struct event *sigterm = evsignal_new(c.base, SIGTERM, on_signal, &c);
    struct event *sigint = evsignal_new(c.base, SIGINT, on_signal, &c);
    event_add(sigterm, NULL);
    event_add(sigint, NULL);
    if (coordmig_start(&c, &e) != 0) { /* resumes every unfinished migration */
        fprintf(stderr, "ferryd: migrations: %s\n", e.msg);
        return 1;
    }
    if (coordplans_start(&c, &e) != 0) { /* resumes every unfinished plan */
        fprintf(stderr, "ferryd: plans: %s\n", e.msg);
        return 1;
    }
    struct readers *readers = NULL;
    if (c.cfg.read_threads > 0 &&
        readers_start(&c, met, c.cfg.read_threads, c.cfg.listen_addr, c.cfg.listen_port, loop_port,
                      &readers, &e) != 0) {
        fprintf(stderr, "ferryd: %s: %s\n", e.field, e.msg);
        return 1;
    }
    metrics_set_read_threads(met, c.cfg.read_threads);
    c.sweep = event_new(c.base, -1, EV_PERSIST, on_sweep, &c);
    struct timeval tv = {(time_t)(c.cfg.heartbeat_interval_ms / 1000),
                         (suseconds_t)(c.cfg.heartbeat_interval_ms % 1000) * 1000};
    event_add(c.sweep, &tv);
    int64_t last = 0;
    if (store_event_last_seq(c.st, &last, &e) != 0)
        log_warn("ferryd", "msg=\"cannot read the last event seq\" err=\"%s\"", e.msg);
    log_info("ferryd",
             "msg=\"listening\" addr=%s port=%d db=%s heartbeat_interval_ms=%u "
             "heartbeat_missed=%u last_event_seq=%lld policy_rules=%zu read_threads=%u",
             c.cfg.listen_addr, c.cfg.listen_port, c.cfg.db_path, c.cfg.heartbeat_interval_ms,
             c.cfg.heartbeat_missed, (long long)last, policy_count(&c.pol), c.cfg.read_threads);
    event_base_dispatch(c.base);
    readers_stop(readers); /* before coordmig_stop: they borrow its cache */
    event_free(c.sweep);
    event_free(sigterm);
    event_free(sigint);
    sse_free(sse);
    webhooks_free(hooks);
    metrics_free(met);
    evhttp_free(c.http);
    event_base_free(c.base);
    coordplans_stop(&c);
    coordmig_stop(&c);
    policy_free(&c.pol);
    store_close(c.st);
    return 0;
}
