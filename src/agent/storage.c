/* storage — non-shared disk migration: the destination's copies and NBD
 * exports, the source's mirrors (storage.h has the sequence). */
#include "agent/storage.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/log.h"
#include "util/xalloc.h"

#define DISK_SIZE_MAX (1ull << 44) /* largest virtual size accepted, bytes (16 TiB) */
#define NBD_PORT_TRIES 3           /* nbd-server-start attempts on port clashes */
#define TEARDOWN_POLL_MS 200       /* query-block-jobs period in teardown, ms */
#define TEARDOWN_POLLS 75          /* give up waiting after 15 s (> the QMP timeout) */
#define QEMU_IMG_TIMEOUT_MS 10000  /* qemu-img create must finish within, ms */

/* --- destination: the copies ------------------------------------------------ */

static int run_qemu_img(struct agent *ag, const char *path, uint64_t size, struct ferr *e)
{
    /* qemu-img sits beside the QEMU binary, else on PATH */
    char *img = NULL;
    const char *slash = strrchr(ag->qemu, '/');
    if (slash) {
        img = xasprintf("%.*s/qemu-img", (int)(slash - ag->qemu), ag->qemu);
        if (access(img, X_OK) != 0) {
            free(img);
            img = NULL;
        }
    }
    char sz[32];
    snprintf(sz, sizeof(sz), "%llu", (unsigned long long)size);
    pid_t pid = fork();
    if (pid < 0) {
        free(img);
        return ferr_set(e, -errno, "disks", "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0) {
            dup2(nul, 0);
            dup2(nul, 1);
        }
        if (img)
            execl(img, "qemu-img", "create", "-q", "-f", "qcow2", path, sz, (char *)NULL);
        execlp("qemu-img", "qemu-img", "create", "-q", "-f", "qcow2", path, sz, (char *)NULL);
        _exit(127);
    }
    free(img);
    int status = 0;
    for (int waited = 0;; waited += 10) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 || waited >= QEMU_IMG_TIMEOUT_MS) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return ferr_set(e, FERR_TIMEOUT, "disks", "qemu-img create %s did not finish", path);
        }
        usleep(10000);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return ferr_set(e, -EIO, "disks", "qemu-img create -f qcow2 %s failed (status %d)", path,
                        status);
    return 0;
}

static int create_one(struct agent *ag, const struct spec_disk *d, uint64_t size, struct ferr *e)
{
    if (d->format == SPEC_DISK_QCOW2) {
        unlink(d->path);
        return run_qemu_img(ag, d->path, size, e);
    }
    int fd = open(d->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return ferr_set(e, -errno, "disks", "cannot create %s: %s", d->path, strerror(errno));
    int rc = 0;
    if (ftruncate(fd, (off_t)size) != 0)
        rc = ferr_set(e, -errno, "disks", "cannot size %s: %s", d->path, strerror(errno));
    close(fd);
    return rc;
}

int storage_create_copies(struct agent *ag, struct inst_spec *spec, const json_t *sizes,
                          struct ferr *e)
{
    if (spec->n_disks == 0)
        return ferr_set(e, FERR_INVAL, "storage", "\"storage\": \"copy\" needs a spec with disks");
    if (!json_is_object(sizes))
        return ferr_set(e, FERR_INVAL, "disk_sizes",
                        "'disk_sizes' (object: disk id -> virtual size in bytes) is required "
                        "with \"storage\": \"copy\"");
    uint64_t sz[SPEC_DISKS_MAX];
    for (unsigned i = 0; i < spec->n_disks; i++) {
        json_t *v = json_object_get(sizes, spec->disks[i].id);
        if (!json_is_integer(v) || json_integer_value(v) < 512 ||
            (uint64_t)json_integer_value(v) > DISK_SIZE_MAX || json_integer_value(v) % 512)
            return ferr_set(e, FERR_INVAL, "disk_sizes",
                            "'disk_sizes' needs a size for disk '%s' (bytes, a multiple of "
                            "512, at most 16 TiB)",
                            spec->disks[i].id);
        sz[i] = (uint64_t)json_integer_value(v);
    }
    for (unsigned i = 0; i < spec->n_disks; i++)
        if (spec->disks[i].nbd_host)
            return ferr_set(e, FERR_INVAL, "storage",
                            "disk '%s' is on network storage (nbd): migrate it with "
                            "\"storage\": \"shared\"",
                            spec->disks[i].id);
    if (json_object_size(sizes) != spec->n_disks)
        return ferr_set(e, FERR_INVAL, "disk_sizes", "'disk_sizes' names a disk the spec lacks");
    char *dir = xasprintf("%s/disks", ag->state_dir);
    mkdir(dir, 0700);
    for (unsigned i = 0; i < spec->n_disks; i++) {
        struct spec_disk *d = &spec->disks[i];
        free(d->path);
        d->path =
            xasprintf("%s/%s.%s.%s", dir, spec->name, d->id, spec_disk_format_name(d->format));
    }
    free(dir);
    for (unsigned i = 0; i < spec->n_disks; i++) {
        int rc = create_one(ag, &spec->disks[i], sz[i], e);
        if (rc != 0) {
            storage_remove_copies(spec);
            return rc;
        }
    }
    return 0;
}

void storage_remove_copies(const struct inst_spec *spec)
{
    for (unsigned i = 0; i < spec->n_disks; i++)
        if (spec->disks[i].path && unlink(spec->disks[i].path) == 0)
            log_info("agent", "msg=\"disk copy removed\" path=%s", spec->disks[i].path);
}

/* --- destination: NBD ------------------------------------------------------- */

struct export_op {
    storage_export_cb cb; /* caller's */
    unsigned tries;       /* nbd-server-start attempts */
    unsigned next;        /* next disk to export */
};

/* A port that was free a moment ago on addr (QEMU 7.2 cannot report the
 * port it bound for port 0). Returns 0 on failure. */
static int free_port(const char *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    int port = 0;
    socklen_t l = sizeof(sa);
    if (inet_pton(AF_INET, addr, &sa.sin_addr) == 1 &&
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &l) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static void export_next(struct instance *in, struct export_op *op);
static void server_start(struct instance *in, struct export_op *op);

static void export_fail(struct instance *in, struct export_op *op, const char *what,
                        const struct ferr *err)
{
    char why[256];
    snprintf(why, sizeof(why), "%s: %.200s", what, err ? err->msg : "QMP unavailable");
    op->cb(in, why);
    free(op);
}

static void on_export_added(struct instance *in, const struct ferr *err, json_t *ret, void *ctx)
{
    (void)ret;
    struct export_op *op = ctx;
    if (!in || err) {
        if (!in) {
            op->cb(NULL, "instance gone");
            free(op);
            return;
        }
        export_fail(in, op, "block-export-add", err);
        return;
    }
    op->next++;
    export_next(in, op);
}

static void export_next(struct instance *in, struct export_op *op)
{
    if (op->next >= in->spec.n_disks) {
        log_info("agent", "msg=\"NBD exports ready\" instance=%s port=%d disks=%u", in->spec.name,
                 in->nbd_port, in->spec.n_disks);
        op->cb(in, NULL);
        free(op);
        return;
    }
    const char *id = in->spec.disks[op->next].id;
    char node[32], exp[32];
    snprintf(node, sizeof(node), "d-%s", id);
    snprintf(exp, sizeof(exp), "exp-%s", id);
    json_t *a = json_pack("{s:s, s:s, s:s, s:s, s:b}", "type", "nbd", "id", exp, "node-name", node,
                          "name", id, "writable", 1);
    if (inst_qmp(in, "block-export-add", a, on_export_added, op) != 0)
        export_fail(in, op, "block-export-add", NULL);
}

static void on_server_started(struct instance *in, const struct ferr *err, json_t *ret, void *ctx)
{
    (void)ret;
    struct export_op *op = ctx;
    if (!in) {
        op->cb(NULL, "instance gone");
        free(op);
        return;
    }
    if (err) {
        in->nbd_port = 0;
        if (op->tries < NBD_PORT_TRIES) { /* most likely the port was taken meanwhile */
            server_start(in, op);
            return;
        }
        export_fail(in, op, "nbd-server-start", err);
        return;
    }
    export_next(in, op);
}

static void server_start(struct instance *in, struct export_op *op)
{
    op->tries++;
    int port = free_port(in->ag->listen_addr);
    if (port <= 0) {
        export_fail(in, op, "nbd-server-start", NULL);
        return;
    }
    in->nbd_port = port;
    char ps[16];
    snprintf(ps, sizeof(ps), "%d", port);
    json_t *a = json_pack("{s:{s:s, s:{s:s, s:s}}}", "addr", "type", "inet", "data", "host",
                          in->ag->listen_addr, "port", ps);
    if (inst_qmp(in, "nbd-server-start", a, on_server_started, op) != 0)
        export_fail(in, op, "nbd-server-start", NULL);
}

void storage_dest_export(struct instance *in, storage_export_cb cb)
{
    struct export_op *op = xcalloc(1, sizeof(*op));
    op->cb = cb;
    server_start(in, op);
}

static void on_nbd_stopped(struct instance *in, const struct ferr *err, json_t *ret, void *ctx)
{
    (void)ret;
    (void)ctx;
    if (in && err)
        log_warn("agent", "msg=\"nbd-server-stop failed\" instance=%s err=\"%s\"", in->spec.name,
                 err->msg);
}

void storage_dest_stop(struct instance *in)
{
    if (!in->nbd_port)
        return;
    in->nbd_port = 0;
    if (inst_qmp(in, "nbd-server-stop", NULL, on_nbd_stopped, NULL) != 0)
        log_warn("agent", "msg=\"nbd-server-stop not sent\" instance=%s", in->spec.name);
}

static void on_query_block(struct instance *in, const struct ferr *err, json_t *ret, void *ctx)
{
    (void)ctx;
    if (!in || err || !json_is_array(ret))
        return;
    for (size_t k = 0; k < json_array_size(ret); k++) {
        json_t *ins = json_object_get(json_array_get(ret, k), "inserted");
        const char *node = json_string_value(json_object_get(ins, "node-name"));
        json_t *vs = json_object_get(json_object_get(ins, "image"), "virtual-size");
        if (!node || strncmp(node, "d-", 2) != 0 || !json_is_integer(vs))
            continue;
        for (unsigned i = 0; i < in->spec.n_disks; i++)
            if (strcmp(in->spec.disks[i].id, node + 2) == 0)
                in->disk_size[i] = (uint64_t)json_integer_value(vs);
    }
}

void storage_query_sizes(struct instance *in)
{
    if (inst_qmp(in, "query-block", NULL, on_query_block, NULL) != 0)
        log_warn("agent", "msg=\"query-block not sent\" instance=%s", in->spec.name);
}

/* --- source ------------------------------------------------------------------ */

static const char *phase_name(enum stg_phase p)
{
    switch (p) {
    case STG_CONNECTING:
        return "connecting";
    case STG_MIRRORING:
        return "mirroring";
    case STG_READY:
        return "ready";
    case STG_SWITCHING:
        return "switching";
    case STG_DONE:
        return "done";
    case STG_TEARDOWN:
        return "teardown";
    case STG_RESTORED:
        return "restored";
    }
    return "unknown";
}

static struct stg_disk *disk_by_job(struct mig_storage *st, const char *job)
{
    if (!job || strncmp(job, "mirror-", 7) != 0)
        return NULL;
    for (unsigned i = 0; i < st->n_disks; i++)
        if (strcmp(st->disks[i].id, job + 7) == 0)
            return &st->disks[i];
    return NULL;
}

void storage_init(struct migration *m)
{
    struct mig_storage *st = xcalloc(1, sizeof(*st));
    st->phase = STG_CONNECTING;
    for (unsigned i = 0; i < m->inst->spec.n_disks; i++)
        snprintf(st->disks[i].id, sizeof(st->disks[i].id), "%s", m->inst->spec.disks[i].id);
    st->n_disks = m->inst->spec.n_disks;
    m->st = st;
}

void storage_free(struct migration *m)
{
    if (!m->st)
        return;
    if (m->st->timer)
        event_free(m->st->timer);
    free(m->st);
    m->st = NULL;
}

static bool connecting_aborted(struct migration *m)
{
    return m->st->phase != STG_CONNECTING || m->cancel_requested || !m->inst;
}

static void fail(struct migration *m, const char *why)
{
    log_warn("agent", "msg=\"disk mirror failed\" id=%s why=\"%s\"", m->id, why);
    mig__storage_failed(m, why);
}

/* One pending-step reply: records a failure and returns true when this was
 * the last reply of the step. */
static bool step_reply(struct migration *m, const struct ferr *err, const char *what)
{
    struct mig_storage *st = m->st;
    m->refs--;
    if (err && !st->step_failed) {
        st->step_failed = true;
        snprintf(st->step_error, sizeof(st->step_error), "%s: %.160s", what, err->msg);
    }
    return --st->pending == 0;
}

/* The last reply of a step (step_reply) with the instance still there
 * and every part of the step done: true, go on. Otherwise false, and the
 * instance's retirement or the step's failure has been handled. */
static bool step_complete(struct migration *m, struct instance *in, const struct ferr *err,
                          const char *what)
{
    if (!step_reply(m, err, what))
        return false;
    if (!in) {
        mig_instance_gone(m);
        return false;
    }
    if (m->st->step_failed) {
        fail(m, m->st->step_error);
        return false;
    }
    return true;
}

struct stg_op {
    struct migration *m; /* borrowed; m->refs held */
    unsigned disk;       /* index in m->st->disks */
};

static void cancel_one(struct migration *m, unsigned i, bool force);

static void on_mirror_started(struct instance *in, const struct ferr *err, json_t *ret, void *ctx)
{
    (void)ret;
    struct stg_op *op = ctx;
    struct migration *m = op->m;
    if (!err) {
        m->st->disks[op->disk].job_started = m->st->disks[op->disk].job_active = true;
        if (m->st->phase == STG_TEARDOWN && in) /* failed meanwhile: stop this one too */
            cancel_one(m, op->disk, true);
    }
    free(op);
    if (!step_complete(m, in, err, "blockdev-mirror"))
        return;
    if (m->st->phase != STG_CONNECTING)
        return; /* cancelled or failed meanwhile: teardown covers the jobs */
    m->st->phase = STG_MIRRORING;
    log_info("agent", "msg=\"disk mirrors running\" id=%s disks=%u speed_bps=%llu", m->id,
             m->st->n_disks, (unsigned long long)m->limits.mirror_speed_bps);
    if (m->cancel_requested)
        fail(m, "cancelled on request");
}

/* The mirror's dirty-tracking granularity for a disk of size bytes: a
 * power of two, the disk over at most 4 Mi chunks (bitmap <= 512 KiB),
 * within 4 KiB .. 64 KiB. QEMU's default for an NBD target is 64 KiB, so
 * every small guest write (a 4 KiB database page) would re-dirty 64 KiB
 * that the mirror must copy again: 16 times the guest's write rate. */
static uint64_t mirror_granularity(uint64_t size)
{
    uint64_t g = 4096;
    while (g < 65536 && g * (UINT64_C(1) << 22) < size)
        g <<= 1;
    return g;
}

static void start_mirrors(struct migration *m)
{
    struct mig_storage *st = m->st;
    st->pending = st->n_disks;
    st->step_failed = false;
    for (unsigned i = 0; i < st->n_disks; i++) {
        char job[32], node[32], target[32];
        snprintf(job, sizeof(job), "mirror-%s", st->disks[i].id);
        snprintf(node, sizeof(node), "d-%s", st->disks[i].id);
        snprintf(target, sizeof(target), "nbd-%s", st->disks[i].id);
        uint64_t size = i < SPEC_DISKS_MAX && m->inst ? m->inst->disk_size[i] : 0;
        json_t *a = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "job-id", job, "device", node,
                              "target", target, "sync", "full", "speed",
                              (json_int_t)m->limits.mirror_speed_bps, "granularity",
                              (json_int_t)mirror_granularity(size));
        if (m->limits.mirror_buf_bytes) /* the most the mirror has in flight at once */
            json_object_set_new(a, "buf-size",
                                json_integer((json_int_t)m->limits.mirror_buf_bytes));
        struct stg_op *op = xcalloc(1, sizeof(*op));
        op->m = m;
        op->disk = i;
        m->refs++;
        if (inst_qmp(m->inst, "blockdev-mirror", a, on_mirror_started, op) != 0) {
            struct ferr e;
            ferr_set(&e, FERR_STATE, "", "QMP unavailable");
            free(op);
            if (step_reply(m, &e, "blockdev-mirror"))
                fail(m, st->step_error);
        }
    }
}

static void on_target_added(struct instance *in, const struct ferr *err, json_t *ret, void *ctx)
{
    (void)ret;
    struct stg_op *op = ctx;
    struct migration *m = op->m;
    if (!err)
        m->st->disks[op->disk].target_added = true;
    free(op);
    if (!step_complete(m, in, err, "blockdev-add (nbd)"))
        return;
    if (connecting_aborted(m)) {
        if (m->cancel_requested && m->st->phase == STG_CONNECTING)
            fail(m, "cancelled on request");
        return;
    }
    start_mirrors(m);
}

static void add_targets(struct migration *m)
{
    struct mig_storage *st = m->st;
    st->pending = st->n_disks;
    st->step_failed = false;
    char port[16];
    snprintf(port, sizeof(port), "%d", st->port);
    for (unsigned i = 0; i < st->n_disks; i++) {
        char target[32];
        snprintf(target, sizeof(target), "nbd-%s", st->disks[i].id);
        json_t *a = json_pack("{s:s, s:s, s:{s:s, s:s, s:s}, s:s}", "driver", "nbd", "node-name",
                              target, "server", "type", "inet", "host", st->host, "port", port,
                              "export", st->disks[i].id);
        struct stg_op *op = xcalloc(1, sizeof(*op));
        op->m = m;
        op->disk = i;
        m->refs++;
        if (inst_qmp(m->inst, "blockdev-add", a, on_target_added, op) != 0) {
            struct ferr e;
            ferr_set(&e, FERR_STATE, "", "QMP unavailable");
            free(op);
            if (step_reply(m, &e, "blockdev-add"))
                fail(m, st->step_error);
        }
    }
}

static void on_dest_nbd(int status, json_t *body, const struct ferr *err, void *arg)
{
    struct migration *m = arg;
    m->refs--;
    if (!m->st || m->st->phase != STG_CONNECTING)
        return;
    if (!m->inst) {
        mig_instance_gone(m);
        return;
    }
    if (m->cancel_requested) {
        fail(m, "cancelled on request");
        return;
    }
    json_t *nbd = json_object_get(body, "nbd");
    const char *host = json_string_value(json_object_get(nbd, "host"));
    json_t *port = json_object_get(nbd, "port");
    if (err || status != 200 || !host || !json_is_integer(port)) {
        char why[240];
        snprintf(why, sizeof(why),
                 "the destination exports no disks over NBD (status %d%s%.120s): prepare it "
                 "with POST /v1/incoming \"storage\": \"copy\"",
                 status, err ? ", " : "", err ? err->msg : "");
        fail(m, why);
        return;
    }
    json_t *ex = json_object_get(nbd, "exports");
    for (unsigned i = 0; i < m->st->n_disks; i++) {
        bool found = false;
        for (size_t k = 0; k < json_array_size(ex); k++) {
            const char *x = json_string_value(json_array_get(ex, k));
            found = found || (x && strcmp(x, m->st->disks[i].id) == 0);
        }
        if (!found) {
            char why[160];
            snprintf(why, sizeof(why), "the destination does not export disk '%s'",
                     m->st->disks[i].id);
            fail(m, why);
            return;
        }
    }
    snprintf(m->st->host, sizeof(m->st->host), "%s", host);
    m->st->port = (int)json_integer_value(port);
    add_targets(m);
}

void storage_mirror_start(struct migration *m)
{
    char *path = xasprintf("/v1/instances/%s", m->inst_name);
    m->refs++;
    peer_request(m->ag, m->dest_agent, "GET", path, NULL, 5, on_dest_nbd, m);
    free(path);
}

static void check_all_ready(struct migration *m)
{
    struct mig_storage *st = m->st;
    if (st->phase != STG_MIRRORING)
        return;
    for (unsigned i = 0; i < st->n_disks; i++)
        if (!st->disks[i].ready)
            return;
    st->phase = STG_READY;
    st->ready_ms = agent_now_ms() - m->start_ms;
    log_info("agent", "msg=\"every disk mirror is READY\" id=%s t_ms=%llu", m->id,
             (unsigned long long)st->ready_ms);
    mig__storage_ready(m);
}

/* A job ended (event, or gone from query-block-jobs). */
static void job_ended(struct migration *m, struct stg_disk *d, const char *error)
{
    struct mig_storage *st = m->st;
    if (!d->job_active)
        return;
    d->job_active = false;
    if (error && !d->error[0])
        snprintf(d->error, sizeof(d->error), "%s", error);
    if (st->phase == STG_MIRRORING || st->phase == STG_READY ||
        (st->phase == STG_SWITCHING && d->error[0])) {
        char why[240];
        snprintf(why, sizeof(why), "mirror of disk '%s' ended before switchover: %.180s", d->id,
                 d->error[0] ? d->error : "job gone");
        fail(m, why);
        return;
    }
    if (st->phase == STG_SWITCHING) {
        for (unsigned i = 0; i < st->n_disks; i++)
            if (st->disks[i].job_active)
                return;
        storage_switchover(m); /* next step: delete the NBD nodes */
    }
}

void storage_on_event(struct migration *m, const char *event, json_t *data)
{
    if (!m->st)
        return;
    struct stg_disk *d = disk_by_job(m->st, json_string_value(json_object_get(data, "device")));
    if (!d)
        return;
    json_t *len = json_object_get(data, "len"), *off = json_object_get(data, "offset");
    if (json_is_integer(len))
        d->len = (uint64_t)json_integer_value(len);
    if (json_is_integer(off))
        d->offset = (uint64_t)json_integer_value(off);
    if (strcmp(event, "BLOCK_JOB_READY") == 0) {
        d->ready = true;
        check_all_ready(m);
    } else if (strcmp(event, "BLOCK_JOB_ERROR") == 0) {
        const char *op = json_string_value(json_object_get(data, "operation"));
        snprintf(d->error, sizeof(d->error), "I/O error on %s", op ? op : "the job");
    } else if (strcmp(event, "BLOCK_JOB_COMPLETED") == 0 ||
               strcmp(event, "BLOCK_JOB_CANCELLED") == 0) {
        const char *er = json_string_value(json_object_get(data, "error"));
        if (strcmp(event, "BLOCK_JOB_CANCELLED") == 0 && m->st->phase != STG_SWITCHING &&
            m->st->phase != STG_TEARDOWN && !er)
            er = "cancelled by someone else";
        job_ended(m, d, er);
    }
}

static void on_jobs(struct instance *in, const struct ferr *err, json_t *ret, void *ctx)
{
    struct migration *m = ctx;
    m->refs--;
    if (!m->st)
        return;
    m->st->poll_inflight = false;
    if (!in || err || !json_is_array(ret))
        return;
    struct mig_storage *st = m->st;
    bool seen[SPEC_DISKS_MAX] = {0};
    for (size_t k = 0; k < json_array_size(ret); k++) {
        json_t *j = json_array_get(ret, k);
        struct stg_disk *d = disk_by_job(st, json_string_value(json_object_get(j, "device")));
        if (!d)
            continue;
        seen[d - st->disks] = true;
        d->len = (uint64_t)json_integer_value(json_object_get(j, "len"));
        d->offset = (uint64_t)json_integer_value(json_object_get(j, "offset"));
        if (json_is_true(json_object_get(j, "ready")) && !d->ready) {
            d->ready = true;
            check_all_ready(m);
            if (!m->st)
                return;
        }
    }
    if (st->phase == STG_TEARDOWN) {
        for (unsigned i = 0; i < st->n_disks; i++)
            if (!seen[i])
                st->disks[i].job_active = false;
        return;
    }
    if (st->phase == STG_MIRRORING || st->phase == STG_READY || st->phase == STG_SWITCHING)
        for (unsigned i = 0; i < st->n_disks; i++)
            if (!seen[i] && st->disks[i].job_active) {
                job_ended(m, &st->disks[i], NULL);
                if (st->phase == STG_TEARDOWN || st->phase == STG_RESTORED)
                    return;
            }
    if (st->phase == STG_MIRRORING || st->phase == STG_CONNECTING)
        mig__storage_sample(m);
}

static void poll_jobs(struct migration *m)
{
    if (!m->st || m->st->poll_inflight || !m->inst)
        return;
    m->st->poll_inflight = true;
    m->refs++;
    if (inst_qmp(m->inst, "query-block-jobs", NULL, on_jobs, m) != 0) {
        m->refs--;
        m->st->poll_inflight = false;
    }
}

void storage_tick(struct migration *m)
{
    if (m->st && (m->st->phase == STG_MIRRORING || m->st->phase == STG_READY ||
                  m->st->phase == STG_SWITCHING))
        poll_jobs(m);
}

/* --- switchover --------------------------------------------------------------- */

/* Every NBD node is deleted (or could not be): the phase moves on. */
static void targets_done(struct migration *m)
{
    if (m->st->phase == STG_SWITCHING) {
        m->st->phase = STG_DONE;
        mig__storage_switched(m);
    } else if (m->st->phase == STG_TEARDOWN) {
        m->st->phase = STG_RESTORED;
        log_info("agent", "msg=\"source storage restored: no mirror, no NBD node\" id=%s", m->id);
    }
}

static void on_target_deleted(struct instance *in, const struct ferr *err, json_t *ret, void *ctx)
{
    (void)ret;
    struct stg_op *op = ctx;
    struct migration *m = op->m;
    if (!err || !in)
        m->st->disks[op->disk].target_added = false;
    else
        log_warn("agent", "msg=\"blockdev-del failed\" id=%s disk=%s err=\"%s\"", m->id,
                 m->st->disks[op->disk].id, err->msg);
    free(op);
    if (step_reply(m, NULL, "blockdev-del"))
        targets_done(m);
}

/* blockdev-del of every NBD node still there; the phase moves on when the
 * last reply came. */
static void delete_targets(struct migration *m)
{
    struct mig_storage *st = m->st;
    st->step_failed = false;
    for (unsigned i = 0; i < st->n_disks; i++)
        if (st->disks[i].target_added && m->inst)
            st->pending++;
    if (st->pending == 0) {
        targets_done(m);
        return;
    }
    for (unsigned i = 0; i < st->n_disks; i++) {
        if (!st->disks[i].target_added || !m->inst)
            continue;
        char target[32];
        snprintf(target, sizeof(target), "nbd-%s", st->disks[i].id);
        struct stg_op *op = xcalloc(1, sizeof(*op));
        op->m = m;
        op->disk = i;
        m->refs++;
        if (inst_qmp(m->inst, "blockdev-del", json_pack("{s:s}", "node-name", target),
                     on_target_deleted, op) != 0) {
            free(op);
            if (step_reply(m, NULL, "blockdev-del"))
                targets_done(m);
        }
    }
}

static void on_job_cancel(struct instance *in, const struct ferr *err, json_t *ret, void *ctx)
{
    (void)ret;
    struct stg_op *op = ctx;
    struct migration *m = op->m;
    unsigned i = op->disk;
    free(op);
    m->refs--;
    if (!in || !m->st || !err)
        return;
    /* the job may have ended on its own meanwhile: then the ended
     * event/poll decides; otherwise a refused cancel is a failure */
    log_warn("agent", "msg=\"block-job-cancel refused\" id=%s disk=%s err=\"%s\"", m->id,
             m->st->disks[i].id, err->msg);
    if (m->st->phase == STG_SWITCHING && m->st->disks[i].job_active) {
        char why[240];
        snprintf(why, sizeof(why), "block-job-cancel of disk '%s': %.180s", m->st->disks[i].id,
                 err->msg);
        fail(m, why);
    }
}

static void cancel_one(struct migration *m, unsigned i, bool force)
{
    if (!m->inst)
        return;
    char job[32];
    snprintf(job, sizeof(job), "mirror-%s", m->st->disks[i].id);
    struct stg_op *op = xcalloc(1, sizeof(*op));
    op->m = m;
    op->disk = i;
    m->refs++;
    if (inst_qmp(m->inst, "block-job-cancel",
                 json_pack("{s:s, s:b}", "device", job, "force", force), on_job_cancel, op) != 0) {
        m->refs--;
        free(op);
    }
}

static void cancel_jobs(struct migration *m, bool force)
{
    for (unsigned i = 0; i < m->st->n_disks; i++)
        if (m->st->disks[i].job_active)
            cancel_one(m, i, force);
}

void storage_switchover(struct migration *m)
{
    struct mig_storage *st = m->st;
    if (!st || !m->inst)
        return;
    if (st->phase == STG_READY) {
        st->phase = STG_SWITCHING;
        log_info("agent", "msg=\"pre-switchover: completing the disk mirrors\" id=%s", m->id);
        /* the guest is paused: what is left goes flat out, whatever speed
         * the operator or the impact budget held the copy at */
        if (m->limits.mirror_speed_bps)
            storage_set_speed(m, 0);
        cancel_jobs(m, false);
        return;
    }
    if (st->phase != STG_SWITCHING)
        return;
    for (unsigned i = 0; i < st->n_disks; i++)
        if (st->disks[i].job_active)
            return; /* still waiting */
    if (st->pending == 0)
        delete_targets(m);
}

/* --- teardown ---------------------------------------------------------------- */

static void on_teardown_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct migration *m = arg;
    struct mig_storage *st = m->st;
    m->refs--;
    if (!st || st->phase != STG_TEARDOWN)
        return;
    bool active = false;
    for (unsigned i = 0; i < st->n_disks; i++)
        active = active || st->disks[i].job_active;
    if (!m->inst) {
        st->phase = STG_RESTORED; /* the source QEMU is gone with its jobs */
        return;
    }
    /* wait for the jobs to go and for replies still in flight (a late
     * blockdev-add adds a node that must be deleted too) */
    if ((active || st->pending) && ++st->teardown_polls <= TEARDOWN_POLLS) {
        if (active)
            poll_jobs(m);
        struct timeval tv = {.tv_sec = 0, .tv_usec = TEARDOWN_POLL_MS * 1000};
        m->refs++;
        evtimer_add(st->timer, &tv);
        return;
    }
    if (active)
        log_warn("agent", "msg=\"mirror jobs still listed after teardown wait\" id=%s", m->id);
    if (st->pending == 0)
        delete_targets(m);
    else
        log_error("agent", "msg=\"QMP replies missing; NBD nodes may remain\" id=%s", m->id);
}

void storage_teardown(struct migration *m)
{
    struct mig_storage *st = m->st;
    if (!st || st->phase == STG_TEARDOWN || st->phase == STG_RESTORED)
        return;
    st->phase = STG_TEARDOWN;
    log_info("agent", "msg=\"restoring source storage: cancelling mirrors\" id=%s", m->id);
    if (m->inst)
        cancel_jobs(m, true);
    if (!st->timer)
        st->timer = evtimer_new(m->ag->base, on_teardown_timer, m);
    struct timeval tv = {.tv_sec = 0, .tv_usec = TEARDOWN_POLL_MS * 1000};
    m->refs++;
    evtimer_add(st->timer, &tv);
}

static void on_speed(struct instance *in, const struct ferr *err, json_t *ret, void *ctx)
{
    (void)ret;
    struct migration *m = ctx;
    m->refs--;
    if (in && err)
        log_warn("agent", "msg=\"block-job-set-speed failed\" id=%s err=\"%s\"", m->id, err->msg);
}

void storage_set_speed(struct migration *m, uint64_t bps)
{
    if (!m->st || !m->inst)
        return;
    for (unsigned i = 0; i < m->st->n_disks; i++) {
        if (!m->st->disks[i].job_active)
            continue;
        char job[32];
        snprintf(job, sizeof(job), "mirror-%s", m->st->disks[i].id);
        m->refs++;
        if (inst_qmp(m->inst, "block-job-set-speed",
                     json_pack("{s:s, s:I}", "device", job, "speed", (json_int_t)bps), on_speed,
                     m) != 0)
            m->refs--;
    }
}

void storage_fill_sample(const struct migration *m, struct mig_sample *s)
{
    if (!m->st)
        return;
    uint64_t total = 0, done = 0;
    for (unsigned i = 0; i < m->st->n_disks; i++) {
        total += m->st->disks[i].len;
        done += m->st->disks[i].offset < m->st->disks[i].len ? m->st->disks[i].offset
                                                             : m->st->disks[i].len;
    }
    s->disk_total = total;
    s->disk_done = done;
}

void storage_to_json(const struct migration *m, json_t *o)
{
    if (!m->st)
        return;
    json_t *a = json_array();
    for (unsigned i = 0; i < m->st->n_disks; i++) {
        const struct stg_disk *d = &m->st->disks[i];
        json_t *j = json_pack("{s:s, s:b, s:b, s:b, s:I, s:I}", "id", d->id, "job_active",
                              d->job_active, "ready", d->ready, "nbd_node", d->target_added, "len",
                              (json_int_t)d->len, "offset", (json_int_t)d->offset);
        if (d->error[0])
            json_object_set_new(j, "error", json_string(d->error));
        json_array_append_new(a, j);
    }
    json_t *s =
        json_pack("{s:s, s:s, s:o}", "mode", "copy", "phase", phase_name(m->st->phase), "disks", a);
    if (m->st->port)
        json_object_set_new(s, "nbd",
                            json_pack("{s:s, s:i}", "host", m->st->host, "port", m->st->port));
    if (m->st->ready_ms)
        json_object_set_new(s, "ready_ms", json_integer((json_int_t)m->st->ready_ms));
    json_object_set_new(o, "storage", s);
}
