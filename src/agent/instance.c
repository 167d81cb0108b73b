/* instance — the QEMU processes of this host: spawn or adopt, the QMP
 * connection, the serial console, state tracking and clean retirement. */
#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/impact.h"
#include "agent/storage.h"
#include "util/httpd.h"
#include "util/jsonin.h"
#include "util/log.h"
#include "util/xalloc.h"

#define CONNECT_RETRY_MS 100  /* between attempts to reach a new QEMU's sockets */
#define CONNECT_TRIES 300     /* 30 s of attempts before giving up */
#define STATUS_POLL_MS 1000   /* query-status period once connected */
#define KILL_GRACE_MS 3000    /* after quit, SIGKILL when still alive */

/* Owns one QMP connection; outlives the instance until QEMU's close
 * callback has fired, so late command replies never touch freed memory. */
struct qmp_holder {
    struct qmp_conn c;      /* the connection */
    struct instance *in;    /* NULL once the instance is retired */
};

struct qmp_op {
    struct qmp_holder *h;   /* connection the command went out on */
    inst_qmp_cb cb;         /* caller's callback */
    void *ctx;              /* caller's context */
};

uint64_t agent_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

bool agent_postcopy_possible(char *why, size_t n)
{
    if (geteuid() == 0)
        return true;
    char buf[8] = "";
    FILE *f = fopen("/proc/sys/vm/unprivileged_userfaultfd", "r");
    if (f) {
        if (!fgets(buf, sizeof(buf), f))
            buf[0] = '\0';
        fclose(f);
    }
    if (buf[0] == '1')
        return true;
    snprintf(why, n,
             "post-copy unavailable: QEMU needs userfaultfd (agent not root and "
             "vm.unprivileged_userfaultfd is not 1)");
    return false;
}

const char *inst_state_name(enum inst_state s)
{
    switch (s) {
    case INST_STARTING: return "starting";
    case INST_INCOMING: return "incoming";
    case INST_RUNNING: return "running";
    case INST_PAUSED: return "paused";
    case INST_EXITED: return "exited";
    }
    return "unknown";
}

struct instance *inst_find(struct agent *ag, const char *name)
{
    for (struct instance *in = ag->instances; in; in = in->next)
        if (strcmp(in->spec.name, name) == 0)
            return in;
    return NULL;
}

static void set_timer(struct instance *in, unsigned ms);
static void try_connect(struct instance *in);

static void rm_rf_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char *p = xasprintf("%s/%s", dir, de->d_name);
        unlink(p);
        free(p);
    }
    closedir(d);
    rmdir(dir);
}

/* Removes in from the agent and frees it. Keeps QEMU's log under logs/. */
/* Answers a pending POST /v1/adopt with an error (502 or 504). */
static void adopt_fail(struct instance *in, int code, const char *why)
{
    if (!in->adopt_req)
        return;
    struct ferr e;
    ferr_set(&e, code, "qmp", "not adopted: no QMP handshake with the process behind %s (%s)",
             in->qmp_path, why);
    httpd_reply_err(in->adopt_req, &e);
    in->adopt_req = NULL;
}

static void inst_retire(struct instance *in, const char *why)
{
    struct agent *ag = in->ag;
    adopt_fail(in, FERR_PEER, why);
    log_info("agent", "msg=\"instance retired\" instance=%s pid=%d why=\"%s\"", in->spec.name,
             (int)in->pid, why);
    in->state = INST_EXITED;
    if (in->mig)
        mig_instance_gone(in->mig);
    if (in->disks_owned) /* an incoming copy that never became the guest's disk */
        storage_remove_copies(&in->spec);
    for (struct instance **pp = &ag->instances; *pp; pp = &(*pp)->next) {
        if (*pp == in) {
            *pp = in->next;
            ag->n_instances--;
            break;
        }
    }
    if (in->qmp) {
        in->qmp->in = NULL;
        qmp_conn_close(&in->qmp->c); /* holder freed by its close callback */
        in->qmp = NULL;
    }
    if (in->ser)
        bufferevent_free(in->ser);
    if (in->timer)
        event_free(in->timer);
    if (in->console_fd >= 0)
        close(in->console_fd);
    char *logdir = xasprintf("%s/logs", ag->state_dir);
    mkdir(logdir, 0755);
    char *src = xasprintf("%s/qemu.log", in->dir);
    char *dst = xasprintf("%s/%s.%d.qemu.log", logdir, in->spec.name, (int)in->pid);
    rename(src, dst);
    free(src);
    free(dst);
    src = xasprintf("%s/serial.log", in->dir);
    dst = xasprintf("%s/%s.%d.serial.log", logdir, in->spec.name, (int)in->pid);
    rename(src, dst);
    free(src);
    free(dst);
    free(logdir);
    if (!in->adopted || strncmp(in->dir, ag->state_dir, strlen(ag->state_dir)) == 0)
        rm_rf_dir(in->dir);
    free(in->dir);
    free(in->qmp_path);
    free(in->serial_path);
    free(in->console);
    impact_free(in);
    spec_free(&in->spec);
    free(in);
}

static void on_qmp_close(struct qmp_conn *c, const struct ferr *why, void *arg)
{
    (void)c;
    struct qmp_holder *h = arg;
    struct instance *in = h->in;
    if (in) {
        in->qmp = NULL;
        in->qmp_ready = false;
        bool alive = in->pid > 0 && kill(in->pid, 0) == 0;
        if (in->adopt_req) { /* never talked QMP: not a QEMU; forget it */
            adopt_fail(in, FERR_PEER, why->msg[0] ? why->msg : "QMP closed");
            inst_retire(in, "adopt: QMP handshake failed");
        } else if (!alive && !in->is_child) {
            inst_retire(in, why->msg[0] ? why->msg : "QMP closed and QEMU is gone");
        } else if (!alive) {
            /* our child: SIGCHLD will retire it */
        } else if (!in->destroying) {
            log_warn("agent", "msg=\"QMP connection lost; reconnecting\" instance=%s why=\"%s\"",
                     in->spec.name, why->msg);
            snprintf(in->last_error, sizeof(in->last_error), "QMP connection lost: %s",
                     why->msg);
            in->connect_tries = 0;
            set_timer(in, CONNECT_RETRY_MS);
        }
    }
    free(h);
}

static void op_done(struct qmp_conn *c, const struct ferr *err, json_t *ret, void *arg)
{
    (void)c;
    struct qmp_op *op = arg;
    op->cb(op->h->in, err, ret, op->ctx);
    free(op);
}

int inst_qmp(struct instance *in, const char *cmd, json_t *args, inst_qmp_cb cb, void *ctx)
{
    if (!in->qmp || !in->qmp_ready) {
        json_decref(args);
        return FERR_STATE;
    }
    struct qmp_op *op = xcalloc(1, sizeof(*op));
    op->h = in->qmp;
    op->cb = cb;
    op->ctx = ctx;
    int rc = qmp_conn_cmd(&in->qmp->c, cmd, args, op_done, op, AGENT_QMP_TIMEOUT_MS);
    if (rc != 0)
        free(op);
    return rc;
}

static void ignore_reply(struct instance *in, const struct ferr *err, json_t *ret, void *ctx)
{
    (void)ret;
    const char *what = ctx;
    if (err && in)
        log_warn("agent", "msg=\"QMP command failed\" instance=%s cmd=%s err=\"%s\"",
                 in->spec.name, what, err->msg);
}

/* The incoming copy owns the guest now: every thread of its QEMU back to
 * the agent's own priority (setpriority on a pid moves one thread; threads
 * QEMU starts later inherit the main thread's). */
static void inst_unnice(struct instance *in)
{
    if (!in->niced || in->pid <= 0)
        return;
    in->niced = false;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)in->pid);
    DIR *d = opendir(path);
    int self = getpriority(PRIO_PROCESS, 0);
    unsigned n = 0, failed = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL && n < 4096) {
        char *end = NULL;
        long tid = strtol(de->d_name, &end, 10);
        if (end == de->d_name || *end || tid <= 0)
            continue;
        n++;
        if (setpriority(PRIO_PROCESS, (id_t)tid, self) != 0)
            failed++;
    }
    if (d)
        closedir(d);
    if (!d || failed)
        log_warn("agent", "msg=\"could not restore the priority of the guest's QEMU\" "
                 "instance=%s threads=%u failed=%u", in->spec.name, n, failed);
}

static void apply_run_status(struct instance *in, const char *status)
{
    snprintf(in->run_status, sizeof(in->run_status), "%s", status);
    if (strcmp(status, "inmigrate") == 0) {
        in->state = INST_INCOMING;
    } else if (strcmp(status, "running") == 0) {
        in->state = INST_RUNNING;
        if (in->storage_copy && (in->incoming || in->nbd_port)) {
            /* the incoming migration completed (QEMU starts the guest
             * before it reports "completed"): the copies are the guest's
             * disks now; keep them, stop serving them */
            in->disks_owned = false;
            storage_dest_stop(in);
        }
        in->incoming = false;
        inst_unnice(in);
    } else if (in->state != INST_INCOMING || strcmp(status, "postmigrate") == 0) {
        in->state = INST_PAUSED;
    }
}

static void on_status(struct instance *in, const struct ferr *err, json_t *ret, void *ctx)
{
    (void)ctx;
    if (!in || err)
        return;
    const char *st = json_string_value(json_object_get(ret, "status"));
    if (st)
        apply_run_status(in, st);
}

static void on_event(struct qmp_conn *c, const struct qmp_msg *ev, void *arg)
{
    (void)c;
    struct qmp_holder *h = arg;
    struct instance *in = h->in;
    if (!in)
        return;
    log_debug("agent", "msg=\"QMP event\" instance=%s event=%s", in->spec.name, ev->event);
    if (strcmp(ev->event, "RESUME") == 0) {
        apply_run_status(in, "running");
    } else if (strcmp(ev->event, "STOP") == 0) {
        if (in->state == INST_RUNNING)
            in->state = INST_PAUSED;
    } else if (strcmp(ev->event, "MIGRATION") == 0) {
        const char *st = json_string_value(json_object_get(ev->value, "status"));
        if (st && in->incoming)
            snprintf(in->incoming_status, sizeof(in->incoming_status), "%s", st);
        /* pause-to-complete: the source was stopped on purpose (controller
           or force-complete), so QEMU leaves the destination paused (no
           RESUME came before "completed"); the guest resumes here */
        if (st && strcmp(st, "completed") == 0 && in->incoming &&
            inst_qmp(in, "cont", NULL, ignore_reply, (void *)"cont") != 0)
            log_warn("agent", "msg=\"cont not sent\" instance=%s", in->spec.name);
        if (st && strcmp(st, "completed") == 0 && in->storage_copy && in->nbd_port) {
            /* the copies are the guest's disks now: keep them, stop serving */
            in->disks_owned = false;
            storage_dest_stop(in);
        }
    }
    if (in->mig) /* the source side of a migration with disks (storage.c) */
        mig_on_event(in->mig, ev->event, ev->value);
    if (in->qmp_ready && (strcmp(ev->event, "RESUME") == 0 || strcmp(ev->event, "STOP") == 0 ||
                          strcmp(ev->event, "MIGRATION") == 0)) {
        if (inst_qmp(in, "query-status", NULL, on_status, NULL) != 0)
            log_debug("agent", "msg=\"query-status not sent\"");
    }
}

static void on_incoming_query(struct instance *in, const struct ferr *err, json_t *ret, void *ctx)
{
    (void)ctx;
    if (!in)
        return;
    if (err) {
        snprintf(in->last_error, sizeof(in->last_error), "query-migrate: %s", err->msg);
        return;
    }
    json_t *sa = json_array_get(json_object_get(ret, "socket-address"), 0);
    const char *host = json_string_value(json_object_get(sa, "host"));
    const char *port = json_string_value(json_object_get(sa, "port"));
    if (!host || !port) {
        snprintf(in->last_error, sizeof(in->last_error),
                 "QEMU did not report the incoming socket address");
        return;
    }
    snprintf(in->incoming_uri, sizeof(in->incoming_uri), "tcp:%s:%s", host, port);
    log_info("agent", "msg=\"incoming migration ready\" instance=%s uri=%s", in->spec.name,
             in->incoming_uri);
}

static void on_incoming_started(struct instance *in, const struct ferr *err, json_t *ret,
                                void *ctx)
{
    (void)ret;
    (void)ctx;
    if (!in)
        return;
    if (err) {
        snprintf(in->last_error, sizeof(in->last_error), "migrate-incoming: %s", err->msg);
        inst_destroy(in, "migrate-incoming failed");
        return;
    }
    if (inst_qmp(in, "query-migrate", NULL, on_incoming_query, NULL) != 0)
        snprintf(in->last_error, sizeof(in->last_error), "QMP unavailable");
}

static void send_incoming(struct instance *in)
{
    json_t *args = json_object();
    char *uri = xasprintf("tcp:%s:0", in->ag->listen_addr);
    json_object_set_new(args, "uri", json_string(uri));
    free(uri);
    if (inst_qmp(in, "migrate-incoming", args, on_incoming_started, NULL) != 0)
        snprintf(in->last_error, sizeof(in->last_error), "QMP unavailable");
}

static void on_exported(struct instance *in, const char *err)
{
    if (!in)
        return;
    if (err) {
        snprintf(in->last_error, sizeof(in->last_error), "disk export: %.280s", err);
        inst_destroy(in, "NBD export failed");
        return;
    }
    send_incoming(in);
}

static void on_incoming_caps(struct instance *in, const struct ferr *err, json_t *ret, void *ctx)
{
    (void)ret;
    (void)ctx;
    if (!in)
        return;
    if (err) {
        snprintf(in->last_error, sizeof(in->last_error), "migrate-set-capabilities: %s",
                 err->msg);
        inst_destroy(in, "capabilities failed");
        return;
    }
    if (in->storage_copy) /* exports first: incoming_uri appears once both are ready */
        storage_dest_export(in, on_exported);
    else
        send_incoming(in);
}

/* Prepares a QEMU started with -incoming defer to receive: capabilities,
 * then (disks exported first) migrate-incoming on an ephemeral port. */
static void start_incoming(struct instance *in)
{
    in->state = INST_INCOMING;
    /* postcopy-ram must be set here, before migrate-incoming, for the
     * source to be able to switch to post-copy later */
    json_t *caps =
        json_pack("{s:[{s:s, s:b}]}", "capabilities", "capability", "events", "state", 1);
    if (in->postcopy)
        json_array_append_new(json_object_get(caps, "capabilities"),
                              json_pack("{s:s, s:b}", "capability", "postcopy-ram", "state", 1));
    if (inst_qmp(in, "migrate-set-capabilities", caps, on_incoming_caps, NULL) != 0)
        snprintf(in->last_error, sizeof(in->last_error), "QMP unavailable");
}

/* An adopted QEMU whose command line has -incoming, still waiting
 * ("inmigrate"): query-migrate tells whether migrate-incoming was issued
 * already (then only its address is learnt) or not (then it is issued). */
static void on_adopt_migrate(struct instance *in, const struct ferr *err, json_t *ret, void *ctx)
{
    (void)ctx;
    if (!in)
        return;
    const char *st = err ? NULL : json_string_value(json_object_get(ret, "status"));
    if (err || !st || strcmp(st, "none") == 0) {
        start_incoming(in);
        return;
    }
    in->state = INST_INCOMING;
    on_incoming_query(in, NULL, ret, NULL);
}

/* An adopted QEMU whose command line has -incoming: -incoming stays on the
 * command line of a guest that arrived by migration long ago, so only a
 * QEMU still in "inmigrate" is treated as an incoming destination; any
 * other status is a guest like any other (never re-prepared: a second
 * migrate-incoming would fail and the guest would be destroyed). */
static void on_adopt_status(struct instance *in, const struct ferr *err, json_t *ret, void *ctx)
{
    (void)ctx;
    if (!in)
        return;
    const char *st = err ? NULL : json_string_value(json_object_get(ret, "status"));
    if (!st) {
        snprintf(in->last_error, sizeof(in->last_error), "query-status after adoption: %s",
                 err ? err->msg : "no status");
        return;
    }
    if (strcmp(st, "inmigrate") != 0) {
        in->incoming = false;
        apply_run_status(in, st);
        log_info("agent", "msg=\"adopted guest arrived by migration earlier\" instance=%s status=%s",
                 in->spec.name, st);
        return;
    }
    if (inst_qmp(in, "query-migrate", NULL, on_adopt_migrate, NULL) != 0)
        snprintf(in->last_error, sizeof(in->last_error), "QMP unavailable");
}

static void on_qmp_ready(struct qmp_conn *c, void *arg)
{
    (void)c;
    struct qmp_holder *h = arg;
    struct instance *in = h->in;
    if (!in)
        return;
    in->qmp_ready = true;
    in->last_error[0] = '\0';
    if (in->adopt_req) {
        httpd_reply_json(in->adopt_req, 200, inst_to_json(in));
        in->adopt_req = NULL;
    }
    if (qmp_conn_subscribe(&h->c, NULL, on_event, h) != 0)
        log_warn("agent", "msg=\"cannot subscribe to QMP events\" instance=%s", in->spec.name);
    log_info("agent", "msg=\"QMP ready\" instance=%s pid=%d", in->spec.name, (int)in->pid);
    if (in->incoming && !in->incoming_uri[0] && in->state == INST_STARTING) {
        if (!in->adopted)
            start_incoming(in);
        else if (inst_qmp(in, "query-status", NULL, on_adopt_status, NULL) != 0)
            snprintf(in->last_error, sizeof(in->last_error), "QMP unavailable");
    }
    if (in->spec.n_disks)
        storage_query_sizes(in);
    if (inst_qmp(in, "query-status", NULL, on_status, NULL) != 0)
        log_debug("agent", "msg=\"query-status not sent\"");
}

static void console_append(struct instance *in, const char *p, size_t n)
{
    if (n > AGENT_CONSOLE_MAX) {
        in->console_base += n - AGENT_CONSOLE_MAX;
        p += n - AGENT_CONSOLE_MAX;
        n = AGENT_CONSOLE_MAX;
    }
    if (in->console_len + n > AGENT_CONSOLE_MAX) {
        size_t drop = in->console_len + n - AGENT_CONSOLE_MAX;
        memmove(in->console, in->console + drop, in->console_len - drop);
        in->console_len -= drop;
        in->console_base += drop;
    }
    memcpy(in->console + in->console_len, p, n);
    in->console_len += n;
    if (in->console_fd >= 0 && write(in->console_fd, p, n) < 0)
        log_debug("agent", "msg=\"serial log write failed\"");
}

static void on_serial_read(struct bufferevent *bev, void *arg)
{
    struct instance *in = arg;
    struct evbuffer *b = bufferevent_get_input(bev);
    char chunk[4096];
    int n;
    while ((n = evbuffer_remove(b, chunk, sizeof(chunk))) > 0)
        console_append(in, chunk, (size_t)n);
}

static void on_serial_event(struct bufferevent *bev, short what, void *arg)
{
    struct instance *in = arg;
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        bufferevent_free(in->ser);
        in->ser = NULL;
    }
}

static int unix_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

static void try_connect_serial(struct instance *in)
{
    if (in->ser || !in->serial_path)
        return;
    int fd = unix_connect(in->serial_path);
    if (fd < 0)
        return;
    evutil_make_socket_nonblocking(fd);
    in->ser = bufferevent_socket_new(in->ag->base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(in->ser, on_serial_read, NULL, on_serial_event, in);
    bufferevent_enable(in->ser, EV_READ | EV_WRITE);
}

static int attach_qmp_fd(struct instance *in, int fd, struct ferr *e)
{
    struct qmp_holder *h = xcalloc(1, sizeof(*h));
    h->in = in;
    struct qmp_conn_opts o = {.on_ready = on_qmp_ready, .on_close = on_qmp_close, .arg = h};
    int rc = qmp_conn_open_fd(&h->c, in->ag->base, fd, &o, e);
    if (rc != 0) {
        free(h);
        return rc;
    }
    in->qmp = h;
    return 0;
}

static void try_connect(struct instance *in)
{
    try_connect_serial(in);
    if (in->qmp)
        return;
    int fd = unix_connect(in->qmp_path);
    if (fd < 0)
        return;
    struct ferr e = {0};
    if (attach_qmp_fd(in, fd, &e) != 0) {
        close(fd);
        log_warn("agent", "msg=\"QMP attach failed\" instance=%s err=\"%s\"", in->spec.name,
                 e.msg);
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct instance *in = arg;
    if (in->destroying) {
        if (in->pid > 0 && kill(in->pid, 0) == 0) {
            log_warn("agent", "msg=\"QEMU ignored quit; killing\" instance=%s pid=%d",
                     in->spec.name, (int)in->pid);
            kill(in->pid, SIGKILL);
        }
        if (!in->is_child)
            inst_retire(in, "destroyed");
        return;
    }
    if (in->pid > 0 && kill(in->pid, 0) != 0 && !in->is_child) {
        inst_retire(in, "QEMU process is gone");
        return;
    }
    if (in->adopt_req && agent_now_ms() - in->started_ms > AGENT_ADOPT_TIMEOUT_MS) {
        adopt_fail(in, FERR_TIMEOUT, "no QMP greeting in time");
        inst_retire(in, "adopt: QMP handshake timed out");
        return;
    }
    if (!in->qmp || !in->ser) {
        try_connect(in);
        if (!in->qmp && ++in->connect_tries > CONNECT_TRIES) {
            snprintf(in->last_error, sizeof(in->last_error),
                     "QMP socket not reachable after %u attempts", CONNECT_TRIES);
            inst_destroy(in, in->last_error);
            return;
        }
        set_timer(in, in->qmp ? STATUS_POLL_MS : CONNECT_RETRY_MS);
        return;
    }
    if (in->qmp_ready && inst_qmp(in, "query-status", NULL, on_status, NULL) != 0)
        log_debug("agent", "msg=\"query-status not sent\"");
    if (in->qmp_ready)
        impact_poll(in); /* the guest's disk figures, once a second */
    set_timer(in, STATUS_POLL_MS);
}

static void set_timer(struct instance *in, unsigned ms)
{
    if (!in->timer)
        in->timer = evtimer_new(in->ag->base, on_timer, in);
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    evtimer_add(in->timer, &tv);
}

static struct instance *inst_new(struct agent *ag, const struct inst_spec *spec)
{
    struct instance *in = xcalloc(1, sizeof(*in));
    in->ag = ag;
    spec_copy(&in->spec, spec);
    in->dir = xasprintf("%s/instances/%s", ag->state_dir, spec->name);
    in->qmp_path = xasprintf("%s/qmp.sock", in->dir);
    in->serial_path = xasprintf("%s/serial.sock", in->dir);
    in->console = xmalloc(AGENT_CONSOLE_MAX);
    in->console_fd = -1;
    in->state = INST_STARTING;
    in->started_ms = agent_now_ms();
    return in;
}

static void inst_link(struct agent *ag, struct instance *in)
{
    in->next = ag->instances;
    ag->instances = in;
    ag->n_instances++;
}

static int mkdir_p(const char *path)
{
    char *p = xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s == '/') {
            *s = '\0';
            mkdir(p, 0755);
            *s = '/';
        }
    }
    int rc = mkdir(p, 0755);
    free(p);
    return (rc == 0 || errno == EEXIST) ? 0 : -errno;
}

static void write_spec_file(struct instance *in)
{
    char *p = xasprintf("%s/spec.json", in->dir);
    json_t *j = spec_to_json(&in->spec);
    if (json_dump_file(j, p, JSON_COMPACT) != 0)
        log_warn("agent", "msg=\"cannot write spec file\" path=%s", p);
    json_decref(j);
    free(p);
}

int inst_launch(struct agent *ag, const struct inst_spec *spec, bool incoming,
                struct instance **out, struct ferr *e)
{
    if (inst_find(ag, spec->name))
        return ferr_set(e, FERR_EXISTS, "name", "instance '%s' exists on this host",
                        spec->name);
    if (ag->n_instances >= AGENT_INSTANCES_MAX)
        return ferr_set(e, FERR_TOOBIG, "", "this host runs %u instances already",
                        ag->n_instances);
    if (access(spec->kernel, R_OK) != 0)
        return ferr_set(e, FERR_INVAL, "kernel", "kernel '%s' is not readable", spec->kernel);
    if (spec->initrd && access(spec->initrd, R_OK) != 0)
        return ferr_set(e, FERR_INVAL, "initrd", "initrd '%s' is not readable", spec->initrd);
    for (unsigned i = 0; i < spec->n_disks; i++)
        if (spec->disks[i].path && access(spec->disks[i].path, R_OK | W_OK) != 0)
            return ferr_set(e, FERR_INVAL, "disks", "disk '%s' (%s) is not readable and writable",
                            spec->disks[i].id, spec->disks[i].path);
    struct instance *in = inst_new(ag, spec);
    in->incoming = incoming;
    for (unsigned i = 0; i < in->spec.n_disks; i++) {
        /* cache.direct=on needs O_DIRECT, which e.g. tmpfs refuses */
        if (!in->spec.disks[i].path)
            continue; /* NBD: QEMU connects at start, failing there if it cannot */
        int fd = open(in->spec.disks[i].path, O_RDONLY | O_DIRECT | O_CLOEXEC);
        in->spec.disks[i].no_direct = fd < 0 && errno == EINVAL;
        if (fd >= 0)
            close(fd);
    }
    rm_rf_dir(in->dir);
    int rc = mkdir_p(in->dir);
    if (rc != 0) {
        ferr_set(e, rc, "", "cannot create %s: %s", in->dir, strerror(-rc));
        inst_retire(in, "setup failed");
        return rc;
    }
    write_spec_file(in);
    char *logp = xasprintf("%s/qemu.log", in->dir);
    char *serlog = xasprintf("%s/serial.log", in->dir);
    in->console_fd = open(serlog, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    free(serlog);
    char **argv = spec_argv(&in->spec, ag->qemu, in->qmp_path, in->serial_path, incoming);
    pid_t pid = fork();
    if (pid < 0) {
        rc = -errno;
        spec_argv_free(argv);
        free(logp);
        ferr_set(e, rc, "", "fork: %s", strerror(-rc));
        inst_retire(in, "fork failed");
        return rc;
    }
    if (pid == 0) {
        int nul = open("/dev/null", O_RDONLY);
        int lfd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (nul >= 0)
            dup2(nul, 0);
        if (lfd >= 0) {
            dup2(lfd, 1);
            dup2(lfd, 2);
        }
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        /* an incoming copy yields the CPU to the host's running guests
         * until it owns its own (restored at takeover: inst_unnice) */
        if (incoming && ag->incoming_nice > 0)
            (void)setpriority(PRIO_PROCESS, 0, ag->incoming_nice);
        execv(argv[0], argv);
        _exit(127);
    }
    spec_argv_free(argv);
    free(logp);
    in->pid = pid;
    in->is_child = true;
    in->niced = incoming && ag->incoming_nice > 0;
    inst_link(ag, in);
    log_info("agent", "msg=\"QEMU started\" instance=%s pid=%d incoming=%d", spec->name,
             (int)pid, incoming);
    set_timer(in, CONNECT_RETRY_MS);
    *out = in;
    return 0;
}

/* Value of key in a QEMU option string "k1=v1,k2=v2" (copied into out,
 * n bytes); false when absent. */
static bool opt_get(const char *opts, const char *key, char *out, size_t n)
{
    size_t kl = strlen(key);
    for (const char *p = opts; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
            snprintf(out, n, "%.*s", (int)(len - kl - 1), p + kl + 1);
            return true;
        }
        p = end ? end + 1 : NULL;
    }
    return false;
}

/* Adds the disk described by the -blockdev arguments spec_argv makes:
 * the file node "f-ID" gives the path (or, driver nbd, the NBD server and
 * export), the format node "d-ID" the format. */
static void blockdev_from_cmdline(struct inst_spec *s, const char *opts)
{
    char node[32], val[SPEC_PATH_MAX];
    if (!opt_get(opts, "node-name", node, sizeof(node)) || strlen(node) < 3 || node[1] != '-' ||
        !spec_disk_id_ok(node + 2))
        return;
    struct spec_disk *d = NULL;
    for (unsigned i = 0; i < s->n_disks; i++)
        if (strcmp(s->disks[i].id, node + 2) == 0)
            d = &s->disks[i];
    if (!d) {
        if (s->n_disks >= SPEC_DISKS_MAX)
            return;
        d = &s->disks[s->n_disks++];
        snprintf(d->id, sizeof(d->id), "%.15s", node + 2);
        d->format = SPEC_DISK_RAW;
    }
    char port[8];
    if (node[0] == 'f' && opt_get(opts, "driver", val, sizeof(val)) && strcmp(val, "nbd") == 0 &&
        opt_get(opts, "server.port", port, sizeof(port))) {
        char host[SPEC_NBD_HOST_MAX + 1], exp[SPEC_NBD_EXPORT_MAX + 1];
        unsigned long p = strtoul(port, NULL, 10);
        if (opt_get(opts, "server.host", host, sizeof(host)) && spec_nbd_host_ok(host) &&
            opt_get(opts, "export", exp, sizeof(exp)) && jsonin_name_ok(exp) && p >= 1 &&
            p <= 65535) {
            free(d->nbd_host);
            free(d->nbd_export);
            d->nbd_host = xstrdup(host);
            d->nbd_export = xstrdup(exp);
            d->nbd_port = (uint16_t)p;
        }
    } else if (node[0] == 'f' && opt_get(opts, "filename", val, sizeof(val))) {
        free(d->path);
        d->path = xstrdup(val);
    } else if (node[0] == 'd' && opt_get(opts, "driver", val, sizeof(val)) &&
               spec_disk_format_parse(val, &d->format) != 0) {
        d->format = SPEC_DISK_RAW;
    }
}

/* Marks the disk whose virtio-blk device names an iothread (the -device
 * argument spec_argv makes after the disk's -blockdev pair). */
static void device_from_cmdline(struct inst_spec *s, const char *opts)
{
    char id[32], iot[48];
    if (strncmp(opts, "virtio-blk-pci,", 15) != 0 || !opt_get(opts, "id", id, sizeof(id)) ||
        !opt_get(opts, "iothread", iot, sizeof(iot)))
        return;
    for (unsigned i = 0; i < s->n_disks; i++)
        if (strcmp(s->disks[i].id, id) == 0)
            s->disks[i].iothread = true;
}

/* Rebuilds a spec from QEMU's command line (the arguments spec_argv makes). */
static int spec_from_cmdline(pid_t pid, struct inst_spec *s, bool *incoming, struct ferr *e)
{
    memset(s, 0, sizeof(*s));
    *incoming = false;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    FILE *f = fopen(path, "rb");
    if (!f)
        return ferr_set(e, FERR_NOTFOUND, "qmp", "cannot read %s", path);
    char *buf = xmalloc(65536);
    size_t n = fread(buf, 1, 65535, f);
    fclose(f);
    buf[n] = '\0';
    char *args[256];
    int argc = 0;
    for (size_t i = 0; i < n && argc < 256;) {
        args[argc++] = buf + i;
        i += strlen(buf + i) + 1;
    }
    s->memory_mib = 128;
    s->vcpus = 1;
    for (int i = 0; i < argc; i++) {
        const char *a = args[i], *v = i + 1 < argc ? args[i + 1] : NULL;
        if (!v)
            break;
        if (strcmp(a, "-name") == 0) {
            s->name = xstrndup(v, strcspn(v, ","));
        } else if (strcmp(a, "-m") == 0) {
            char *end = NULL;
            unsigned long long m = strtoull(v, &end, 10);
            s->memory_mib = (end && (*end == 'k' || *end == 'K')) ? m / 1024 : m;
        } else if (strcmp(a, "-smp") == 0) {
            s->vcpus = strtoull(v, NULL, 10);
        } else if (strcmp(a, "-kernel") == 0) {
            s->kernel = xstrdup(v);
        } else if (strcmp(a, "-initrd") == 0) {
            s->initrd = xstrdup(v);
        } else if (strcmp(a, "-append") == 0) {
            s->cmdline = xstrdup(v);
        } else if (strcmp(a, "-incoming") == 0) {
            *incoming = true;
        } else if (strcmp(a, "-blockdev") == 0) {
            blockdev_from_cmdline(s, v);
        } else if (strcmp(a, "-device") == 0) {
            device_from_cmdline(s, v);
        }
    }
    free(buf);
    for (unsigned i = 0; i < s->n_disks; i++)
        if (!s->disks[i].path && !s->disks[i].nbd_host)
            s->disks[i].path = xstrdup("/");
    if (!s->name || !jsonin_name_ok(s->name) || !s->kernel) {
        spec_free(s);
        return ferr_set(e, FERR_INVAL, "qmp",
                        "the QEMU behind this socket has no usable -name/-kernel");
    }
    s->project = xstrdup("");
    return 0;
}

int inst_adopt(struct agent *ag, const char *qmp_path, const char *serial_path,
               struct instance **out, struct ferr *e)
{
    int fd = unix_connect(qmp_path);
    if (fd < 0)
        return ferr_set(e, FERR_NOTFOUND, "qmp", "cannot connect to %s: %s", qmp_path,
                        strerror(-fd));
    struct ucred cred;
    socklen_t cl = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0 || cred.pid <= 0) {
        close(fd);
        return ferr_set(e, FERR_PEER, "qmp", "cannot learn the pid behind %s", qmp_path);
    }
    struct inst_spec s;
    bool incoming;
    int rc = spec_from_cmdline(cred.pid, &s, &incoming, e);
    if (rc != 0) {
        close(fd);
        return rc;
    }
    /* Keep the project recorded at launch, when this agent made the dir. */
    char *sp = xasprintf("%s/instances/%s/spec.json", ag->state_dir, s.name);
    json_t *saved = json_load_file(sp, 0, NULL);
    free(sp);
    const char *proj = json_string_value(json_object_get(saved, "project"));
    if (proj && jsonin_name_ok(proj)) {
        free(s.project);
        s.project = xstrdup(proj);
    }
    json_decref(saved);
    if (inst_find(ag, s.name)) {
        close(fd);
        rc = ferr_set(e, FERR_EXISTS, "qmp", "instance '%s' is already managed", s.name);
        spec_free(&s);
        return rc;
    }
    struct instance *in = inst_new(ag, &s);
    spec_free(&s);
    free(in->qmp_path);
    in->qmp_path = xstrdup(qmp_path);
    free(in->serial_path);
    in->serial_path = serial_path ? xstrdup(serial_path) : NULL;
    in->pid = cred.pid;
    in->adopted = true;
    in->incoming = incoming;
    mkdir_p(in->dir);
    char *serlog = xasprintf("%s/serial.log", in->dir);
    in->console_fd = open(serlog, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    free(serlog);
    if (attach_qmp_fd(in, fd, e) != 0) {
        close(fd);
        inst_retire(in, "QMP attach failed");
        return e ? e->code : FERR_PEER;
    }
    inst_link(ag, in);
    try_connect_serial(in);
    set_timer(in, STATUS_POLL_MS);
    log_info("agent", "msg=\"adopted QEMU\" instance=%s pid=%d", in->spec.name, (int)in->pid);
    *out = in;
    return 0;
}

int inst_adopt_all(struct agent *ag)
{
    char *root = xasprintf("%s/instances", ag->state_dir);
    DIR *d = opendir(root);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char *q = xasprintf("%s/%s/qmp.sock", root, de->d_name);
        char *s = xasprintf("%s/%s/serial.sock", root, de->d_name);
        struct instance *in;
        struct ferr e = {0};
        if (inst_adopt(ag, q, s, &in, &e) == 0) {
            n++;
        } else {
            log_warn("agent", "msg=\"not adopted\" dir=%s err=\"%s\"", de->d_name, e.msg);
            char *dir = xasprintf("%s/%s", root, de->d_name);
            if (e.code == FERR_NOTFOUND)
                rm_rf_dir(dir);
            free(dir);
        }
        free(q);
        free(s);
    }
    if (d)
        closedir(d);
    free(root);
    return n;
}

void inst_destroy(struct instance *in, const char *why)
{
    if (in->destroying)
        return;
    in->destroying = true;
    log_info("agent", "msg=\"destroying instance\" instance=%s why=\"%s\"", in->spec.name, why);
    if (inst_qmp(in, "quit", NULL, ignore_reply, "quit") != 0 && in->pid > 0)
        kill(in->pid, SIGKILL);
    set_timer(in, KILL_GRACE_MS);
}

int inst_console_write(struct instance *in, const char *line, struct ferr *e)
{
    if (!in->ser)
        return ferr_set(e, FERR_STATE, "", "the serial console of '%s' is not connected",
                        in->spec.name);
    bufferevent_write(in->ser, line, strlen(line));
    bufferevent_write(in->ser, "\n", 1);
    return 0;
}

json_t *inst_to_json(const struct instance *in)
{
    json_t *o = json_pack("{s:s, s:s, s:i, s:s, s:b, s:b, s:o, s:I, s:I}", "name",
                          in->spec.name, "state", inst_state_name(in->state), "pid", (int)in->pid,
                          "run_status", in->run_status, "incoming", in->incoming, "adopted",
                          in->adopted, "spec", spec_to_json(&in->spec), "console_offset",
                          (json_int_t)(in->console_base + in->console_len), "uptime_ms",
                          (json_int_t)(agent_now_ms() - in->started_ms));
    if (in->incoming_uri[0])
        json_object_set_new(o, "incoming_uri", json_string(in->incoming_uri));
    if (in->incoming_status[0])
        json_object_set_new(o, "incoming_status", json_string(in->incoming_status));
    if (in->postcopy)
        json_object_set_new(o, "postcopy", json_true());
    if (in->last_error[0])
        json_object_set_new(o, "last_error", json_string(in->last_error));
    if (in->mig)
        json_object_set_new(o, "migration", json_string(in->mig->id));
    if (in->spec.n_disks) {
        json_t *sz = json_object();
        for (unsigned i = 0; i < in->spec.n_disks; i++)
            if (in->disk_size[i])
                json_object_set_new(sz, in->spec.disks[i].id,
                                    json_integer((json_int_t)in->disk_size[i]));
        json_object_set_new(o, "disk_sizes", sz);
    }
    if (in->storage_copy)
        json_object_set_new(o, "storage", json_string("copy"));
    if (in->nbd_port && in->incoming_uri[0]) { /* exports made before migrate-incoming */
        json_t *ex = json_array();
        for (unsigned i = 0; i < in->spec.n_disks; i++)
            json_array_append_new(ex, json_string(in->spec.disks[i].id));
        json_object_set_new(o, "nbd", json_pack("{s:s, s:i, s:o}", "host", in->ag->listen_addr,
                                                "port", in->nbd_port, "exports", ex));
    }
    return o;
}

void inst_reap(struct agent *ag)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (struct instance *in = ag->instances; in; in = in->next) {
            if (in->pid != pid)
                continue;
            char why[96];
            if (WIFEXITED(status))
                snprintf(why, sizeof(why), "QEMU exited with status %d", WEXITSTATUS(status));
            else
                snprintf(why, sizeof(why), "QEMU killed by signal %d", WTERMSIG(status));
            inst_retire(in, why);
            break;
        }
    }
}
