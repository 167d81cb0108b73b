#include "lab.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/httpc.h"
#include "util/xalloc.h"

static struct lab *live_labs[LAB_MAX_LABS]; /* labs to stop on exit/signal */
static int safety_installed;

uint64_t lab_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void lab_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* --- safety net ------------------------------------------------------- */

/* Async-signal-safe: kills every process group of lab. */
static void kill_groups(const struct lab *lab)
{
    for (int i = 0; i < lab->n; i++)
        if (lab->agents[i].pid > 0)
            kill(-lab->agents[i].pid, SIGKILL);
    for (int i = 0; i < lab->n_extra; i++)
        if (lab->extra[i] > 0)
            kill(-lab->extra[i], SIGKILL);
}

static void on_exit_stop_all(void)
{
    for (int i = 0; i < LAB_MAX_LABS; i++)
        if (live_labs[i])
            lab_stop(live_labs[i]);
}

static void on_fatal_signal(int sig)
{
    for (int i = 0; i < LAB_MAX_LABS; i++)
        if (live_labs[i])
            kill_groups(live_labs[i]);
    /* the watchdog removes the temp dirs once we are gone */
    signal(sig, SIG_DFL);
    raise(sig);
}

void lab__install_safety(int *installed, void (*at_exit)(void), void (*handler)(int),
                         struct sigaction *old)
{
    if (*installed)
        return;
    *installed = 1;
    atexit(at_exit);
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGSEGV, SIGBUS, SIGABRT, SIGFPE};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = handler;
        sigemptyset(&sa.sa_mask);
        sigaction(sigs[i], &sa, old ? &old[sigs[i]] : NULL);
    }
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

void lab__reap_groups(pid_t *groups, int n)
{
    for (int i = 0; i < n; i++) {
        if (groups[i] > 0)
            while (waitpid(groups[i], NULL, 0) < 0 && errno == EINTR) {
            }
        groups[i] = 0;
    }
}

void lab__watchdog_end(int *watch_fd, pid_t *watchdog)
{
    if (*watch_fd >= 0) {
        close(*watch_fd);
        *watch_fd = -1;
    }
    if (*watchdog > 0) {
        while (waitpid(*watchdog, NULL, 0) < 0 && errno == EINTR) {
        }
        *watchdog = 0;
    }
}

void lab__child_stdio(const char *log_path)
{
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
    }
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0)
        dup2(nul, 0);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
}

void lab__rm_tree(const char *path)
{
    if (path[0])
        nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int lab__watchdog_read(int fd, pid_t *groups, int max)
{
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    int n = 0;
    for (;;) {
        pid_t g;
        ssize_t r = read(fd, &g, sizeof(g));
        if (r == (ssize_t)sizeof(g)) {
            if (n < max)
                groups[n++] = g;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        return n;
    }
}

/* The watchdog: reads process-group ids (as pid_t records) from fd until
 * EOF — which comes when the test process is gone or lab_stop closed the
 * pipe — then SIGKILLs every group and removes dir. */
static void watchdog_main(int fd, const char *dir)
{
    pid_t groups[64];
    int n = lab__watchdog_read(fd, groups, 64);
    for (int i = 0; i < n; i++)
        if (groups[i] > 0)
            kill(-groups[i], SIGKILL);
    lab__rm_tree(dir);
    _exit(0);
}

static void watch_group(struct lab *lab, pid_t g)
{
    if (lab->watch_fd >= 0) {
        ssize_t w = write(lab->watch_fd, &g, sizeof(g));
        (void)w;
    }
}

/* --- start / stop ----------------------------------------------------- */

/* Copies a then b into dst (n bytes). Returns 0, or FERR_TOOBIG (dst
 * then holds ""). */
static int path_cat(char *dst, size_t n, const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la + lb + 1 > n) {
        dst[0] = '\0';
        return FERR_TOOBIG;
    }
    memmove(dst, a, la);
    memcpy(dst + la, b, lb + 1);
    return 0;
}

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

int lab_paths(char *build, char *lab_dir, size_t n, struct ferr *e)
{
    const char *b = getenv("BUILD");
    if (!b || !b[0])
        b = "build";
    char abs[PATH_MAX];
    lab_dir[0] = '\0';
    if (!realpath(b, abs))
        return ferr_set(e, FERR_NOTFOUND, "BUILD", "build dir '%s': %s", b, strerror(errno));
    if (path_cat(build, n, abs, "") != 0)
        return ferr_set(e, FERR_TOOBIG, "BUILD", "build dir path too long");
    char *agent = xasprintf("%s/ferry-agent", build);
    int ok = access(agent, X_OK) == 0;
    free(agent);
    if (!ok)
        return ferr_set(e, FERR_NOTFOUND, "BUILD", "no %s/ferry-agent (run make)", build);
    char *k = xasprintf("%s/lab/vmlinuz", build);
    if (is_file(k))
        (void)path_cat(lab_dir, n, build, "/lab");
    else if (realpath("build/lab", abs))
        (void)path_cat(lab_dir, n, abs, "");
    free(k);
    char *k2 = xasprintf("%s/vmlinuz", lab_dir);
    char *i2 = xasprintf("%s/initrd.img", lab_dir);
    ok = lab_dir[0] && is_file(k2) && is_file(i2);
    free(k2);
    free(i2);
    if (!ok)
        return ferr_set(e, FERR_NOTFOUND, "lab", "no lab guest image (run make lab)");
    return 0;
}

int lab__agent_wait_health(struct lab_agent *a, struct ferr *e)
{
    uint64_t deadline = lab_now_ms() + LAB_HEALTH_TIMEOUT_MS;
    while (lab_now_ms() < deadline) {
        int st = 0;
        json_t *o = NULL;
        struct ferr e2 = {0};
        if (httpc_json(a->url, "GET", "/v1/health", NULL, NULL, 2000, &st, &o, &e2) == 0) {
            json_decref(o);
            if (st == 200)
                return 0;
        }
        int status;
        if (waitpid(a->pid, &status, WNOHANG) == a->pid) {
            a->pid = 0;
            return ferr_set(e, FERR_CLOSED, "agent", "%s exited at start (log %s)", a->name,
                            a->log_path);
        }
        lab_sleep_ms(100);
    }
    return ferr_set(e, FERR_TIMEOUT, "agent", "%s did not answer /v1/health in %d ms (log %s)",
                    a->name, LAB_HEALTH_TIMEOUT_MS, a->log_path);
}

/* the lab's hosts share this machine's CPUs: an incoming copy stands for
 * another host */
int lab_incoming_nice_args(char **slot)
{
    const char *nice = getenv("FERRY_LAB_INCOMING_NICE");
    if (!nice || !*nice)
        return 0;
    slot[0] = "--incoming-nice";
    slot[1] = (char *)nice;
    return 2;
}

static int spawn_agent(struct lab *lab, int i, struct ferr *e)
{
    struct lab_agent *a = &lab->agents[i];
    memset(a, 0, sizeof(*a));
    snprintf(a->name, sizeof(a->name), "host%d", i + 1);
    a->port = 20000 + (int)(getpid() % 10000) + i;
    snprintf(a->addr, sizeof(a->addr), "127.0.1.%d", i + 1);
    snprintf(a->url, sizeof(a->url), "http://127.0.1.%d:%d", i + 1, a->port);
    char leaf[32];
    snprintf(leaf, sizeof(leaf), "/%s", a->name);
    (void)path_cat(a->state_dir, sizeof(a->state_dir), lab->tmp, leaf);
    snprintf(leaf, sizeof(leaf), "/%s.log", a->name);
    (void)path_cat(a->log_path, sizeof(a->log_path), lab->tmp, leaf);
    if (mkdir(a->state_dir, 0700) != 0)
        return ferr_set(e, -errno, "state_dir", "mkdir %s: %s", a->state_dir, strerror(errno));
    char *bin = xasprintf("%s/ferry-agent", lab->build);
    char *listen = xasprintf("%s:%d", a->addr, a->port);
    char *argv[] = {bin,      "--listen", listen,      "--state-dir", a->state_dir,
                    "--name", a->name,    "--lab-dir", lab->lab_dir,  NULL, NULL, NULL};
    (void)lab_incoming_nice_args(&argv[9]);
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        free(bin);
        free(listen);
        return ferr_set(e, -err, "", "fork: %s", strerror(err));
    }
    if (pid == 0) {
        setpgid(0, 0);
        lab__child_stdio(a->log_path);
        execv(bin, argv);
        _exit(127);
    }
    setpgid(pid, pid); /* both sides, so the group exists before anyone kills it */
    free(bin);
    free(listen);
    a->pid = pid;
    lab->n = i + 1;
    watch_group(lab, pid);
    return lab__agent_wait_health(a, e);
}

int lab_start(struct lab *lab, int n, struct ferr *e)
{
    memset(lab, 0, sizeof(*lab));
    lab->watch_fd = -1;
    if (n < 1 || n > LAB_AGENTS_MAX)
        return ferr_set(e, FERR_INVAL, "n", "1..%d agents", LAB_AGENTS_MAX);
    int rc = lab_paths(lab->build, lab->lab_dir, sizeof(lab->build), e);
    if (rc != 0)
        return rc;
    lab__install_safety(&safety_installed, on_exit_stop_all, on_fatal_signal, NULL);
    int slot = -1;
    for (int i = 0; i < LAB_MAX_LABS; i++)
        if (!live_labs[i]) {
            slot = i;
            break;
        }
    if (slot < 0)
        return ferr_set(e, FERR_TOOBIG, "", "more than %d labs at once", LAB_MAX_LABS);
    snprintf(lab->tmp, sizeof(lab->tmp), "/tmp/ferry-lab-XXXXXX");
    if (!mkdtemp(lab->tmp)) {
        int err = errno;
        lab->tmp[0] = '\0';
        return ferr_set(e, -err, "", "mkdtemp: %s", strerror(err));
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        int err = errno;
        lab__rm_tree(lab->tmp);
        lab->tmp[0] = '\0';
        return ferr_set(e, -err, "", "pipe: %s", strerror(err));
    }
    fflush(NULL);
    pid_t w = fork();
    if (w < 0) {
        int err = errno;
        close(p[0]);
        close(p[1]);
        lab__rm_tree(lab->tmp);
        lab->tmp[0] = '\0';
        return ferr_set(e, -err, "", "fork: %s", strerror(err));
    }
    if (w == 0) {
        close(p[1]);
        /* other labs' pipes are CLOEXEC but we do not exec: close them */
        for (int i = 0; i < LAB_MAX_LABS; i++)
            if (live_labs[i] && live_labs[i]->watch_fd >= 0)
                close(live_labs[i]->watch_fd);
        watchdog_main(p[0], lab->tmp);
    }
    close(p[0]);
    lab->watchdog = w;
    lab->watch_fd = p[1];
    live_labs[slot] = lab;
    for (int i = 0; i < n; i++) {
        fflush(NULL);
        if ((rc = spawn_agent(lab, i, e)) != 0) {
            lab_stop(lab);
            return rc;
        }
    }
    return 0;
}

int lab_track(struct lab *lab, pid_t pgid)
{
    if (lab->n_extra >= (int)(sizeof(lab->extra) / sizeof(lab->extra[0])))
        return FERR_TOOBIG;
    lab->extra[lab->n_extra++] = pgid;
    watch_group(lab, pgid);
    return 0;
}

void lab_stop(struct lab *lab)
{
    kill_groups(lab);
    for (int i = 0; i < lab->n; i++) {
        if (lab->agents[i].pid > 0) {
            while (waitpid(lab->agents[i].pid, NULL, 0) < 0 && errno == EINTR) {
            }
            lab->agents[i].pid = 0;
        }
    }
    lab__reap_groups(lab->extra, lab->n_extra);
    lab__watchdog_end(&lab->watch_fd, &lab->watchdog);
    lab__rm_tree(lab->tmp);
    lab->tmp[0] = '\0';
    for (int i = 0; i < LAB_MAX_LABS; i++)
        if (live_labs[i] == lab)
            live_labs[i] = NULL;
}

/* --- API helpers ------------------------------------------------------ */

int lab_api(const struct lab_agent *a, const char *method, const char *path, const json_t *body,
            int *status, json_t **out, struct ferr *e)
{
    json_t *o = NULL;
    int rc = httpc_json(a->url, method, path, body, NULL, LAB_HTTP_TIMEOUT_MS, status, &o, e);
    if (rc != 0)
        return rc;
    if (out)
        *out = o;
    else
        json_decref(o);
    return 0;
}

int lab_instance(const struct lab_agent *a, const char *name, json_t **out, struct ferr *e)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/instances/%s", name);
    int st = 0;
    json_t *o = NULL;
    int rc = lab_api(a, "GET", path, NULL, &st, &o, e);
    if (rc != 0)
        return rc;
    if (st == 404) {
        json_decref(o);
        return ferr_set(e, FERR_NOTFOUND, "instance", "%s has no instance %s", a->name, name);
    }
    if (st != 200 || !json_is_object(o)) {
        json_decref(o);
        return ferr_set(e, FERR_PEER, "instance", "GET %s on %s: status %d", path, a->name, st);
    }
    if (out)
        *out = o;
    else
        json_decref(o);
    return 0;
}

int lab_instance_pid(const struct lab_agent *a, const char *name, pid_t *pid, char *state_out,
                     size_t n, struct ferr *e)
{
    json_t *o;
    int rc = lab_instance(a, name, &o, e);
    if (rc != 0)
        return rc;
    *pid = (pid_t)json_integer_value(json_object_get(o, "pid"));
    if (state_out && n) {
        const char *s = json_string_value(json_object_get(o, "state"));
        snprintf(state_out, n, "%s", s ? s : "");
    }
    json_decref(o);
    return 0;
}

int lab_instance_count(const struct lab_agent *a, size_t *count, struct ferr *e)
{
    int st = 0;
    json_t *o = NULL;
    int rc = lab_api(a, "GET", "/v1/instances", NULL, &st, &o, e);
    if (rc != 0)
        return rc;
    json_t *arr = json_object_get(o, "instances");
    if (st != 200 || !json_is_array(arr)) {
        json_decref(o);
        return ferr_set(e, FERR_PEER, "instances", "GET /v1/instances: status %d", st);
    }
    *count = json_array_size(arr);
    json_decref(o);
    return 0;
}

int lab_console_offset(const struct lab_agent *a, const char *name, uint64_t *off, struct ferr *e)
{
    json_t *o;
    int rc = lab_instance(a, name, &o, e);
    if (rc != 0)
        return rc;
    *off = (uint64_t)json_integer_value(json_object_get(o, "console_offset"));
    json_decref(o);
    return 0;
}

int lab_console_expect(const struct lab_agent *a, const char *name, const char *line,
                       uint64_t since, const char *prefix, int timeout_ms, char **rest_out,
                       struct ferr *e)
{
    char path[192];
    int st = 0;
    json_t *o = NULL;
    int rc;
    if (rest_out)
        *rest_out = NULL;
    if (line) {
        snprintf(path, sizeof(path), "/v1/instances/%s/console", name);
        json_t *b = json_pack("{s:s}", "line", line);
        rc = lab_api(a, "POST", path, b, &st, &o, e);
        json_decref(b);
        if (rc != 0)
            return rc;
        if (st != 200) {
            json_decref(o);
            return ferr_set(e, st == 404 ? FERR_NOTFOUND : FERR_PEER, "console",
                            "POST console of %s on %s: status %d", name, a->name, st);
        }
        since = (uint64_t)json_integer_value(json_object_get(o, "offset"));
        json_decref(o);
    }
    /* pos: absolute offset of the start of the first unconsumed line. When
     * since falls inside a line, that line's head is lost and its tail
     * cannot start with prefix unless the tail really is a line. */
    uint64_t pos = since;
    char *pend = NULL; /* bytes of an incomplete line starting at pos */
    size_t plen = 0;
    uint64_t deadline = lab_now_ms() + (uint64_t)timeout_ms;
    size_t pfx = strlen(prefix);
    for (;;) {
        snprintf(path, sizeof(path), "/v1/instances/%s/console?since=%llu", name,
                 (unsigned long long)(pos + plen));
        rc = lab_api(a, "GET", path, NULL, &st, &o, e);
        if (rc != 0) {
            free(pend);
            return rc;
        }
        if (st == 404) {
            json_decref(o);
            free(pend);
            return ferr_set(e, FERR_NOTFOUND, "instance", "%s disappeared from %s", name, a->name);
        }
        const char *text = json_string_value(json_object_get(o, "text"));
        uint64_t off = (uint64_t)json_integer_value(json_object_get(o, "offset"));
        size_t tlen = text ? strlen(text) : 0;
        if (st == 200 && tlen) {
            if (off != pos + plen) { /* output dropped from the ring: restart at off */
                plen = 0;
                pos = off;
            }
            pend = xrealloc(pend, plen + tlen + 1);
            memcpy(pend + plen, text, tlen);
            plen += tlen;
            pend[plen] = '\0';
            size_t start = 0;
            for (size_t i = 0; i < plen; i++) {
                if (pend[i] != '\n')
                    continue;
                size_t l = i - start;
                char *ln = pend + start;
                if (l && ln[l - 1] == '\r')
                    l--;
                if (l >= pfx && memcmp(ln, prefix, pfx) == 0) {
                    if (rest_out)
                        *rest_out = xstrndup(ln + pfx, l - pfx);
                    json_decref(o);
                    free(pend);
                    return 0;
                }
                start = i + 1;
            }
            memmove(pend, pend + start, plen - start);
            plen -= start;
            pos += start;
        }
        json_decref(o);
        if (lab_now_ms() >= deadline) {
            free(pend);
            return ferr_set(e, FERR_TIMEOUT, "console", "no '%s' line from %s on %s in %d ms",
                            prefix, name, a->name, timeout_ms);
        }
        lab_sleep_ms(150);
    }
}

/* POSTs body (takes ownership) to path on a. Returns 0 when a accepted
 * it (200 or 202); else FERR_PEER on field with "WHAT: status N BODY",
 * or the request's own error. */
static int post_accepted(const struct lab_agent *a, const char *path, json_t *body,
                         const char *field, const char *what, struct ferr *e)
{
    int st = 0;
    json_t *o = NULL;
    int rc = lab_api(a, "POST", path, body, &st, &o, e);
    json_decref(body);
    if (rc != 0)
        return rc;
    if (st != 202 && st != 200) {
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        rc = ferr_set(e, FERR_PEER, field, "%s: status %d %s", what, st, s ? s : "");
        free(s);
    }
    json_decref(o);
    return rc;
}

int lab_post_instance(const struct lab_agent *a, const char *name, const char *project,
                      unsigned memory_mib, const char *cmdline, const json_t *disks, struct ferr *e)
{
    json_t *spec = json_pack("{s:s, s:I, s:I, s:s}", "name", name, "memory_mib",
                             (json_int_t)memory_mib, "vcpus", (json_int_t)1, "cmdline", cmdline);
    if (project)
        json_object_set_new(spec, "project", json_string(project));
    if (disks)
        json_object_set_new(spec, "disks", json_deep_copy(disks));
    char what[160];
    snprintf(what, sizeof(what), "launch %s on %s", name, a->name);
    return post_accepted(a, "/v1/instances", spec, "instance", what, e);
}

/* DELETE /v1/instances/name, errors ignored (the agent is gone or stuck:
 * lab_stop cleans up). */
static void delete_instance_quiet(const struct lab_agent *a, const char *name)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/instances/%s", name);
    int st = 0;
    struct ferr e2;
    if (lab_api(a, "DELETE", path, NULL, &st, NULL, &e2) != 0) {
        /* nothing more to do here */
    }
}

int lab_launch_guest(const struct lab_agent *a, const char *name, unsigned memory_mib,
                     const char *cmdline, int timeout_ms, struct ferr *e)
{
    int rc = lab_post_instance(a, name, NULL, memory_mib, cmdline, NULL, e);
    if (rc != 0)
        return rc;
    rc = lab_console_expect(a, name, NULL, 0, "FERRY-READY ", timeout_ms, NULL, e);
    if (rc != 0)
        delete_instance_quiet(a, name);
    return rc;
}

const char *lab_jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

long long lab_jint(const json_t *o, const char *k, long long def)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (long long)json_integer_value(v) : def;
}

int lab_verify(const struct lab_agent *a, const char *name, struct lab_integrity *out,
               struct ferr *e)
{
    memset(out, 0, sizeof(*out));
    char *rest = NULL;
    int rc =
        lab_console_expect(a, name, "verify", 0, "FERRY-RESULT ", LAB_CMD_TIMEOUT_MS, &rest, e);
    if (rc != 0)
        return rc;
    json_error_t je;
    json_t *o = json_loads(rest, 0, &je);
    if (!json_is_object(o)) {
        rc = ferr_set(e, FERR_PEER, "console", "FERRY-RESULT is not JSON: %.120s", rest);
        free(rest);
        json_decref(o);
        return rc;
    }
    free(rest);
    out->ok = json_is_true(json_object_get(o, "ok"));
    out->pages = lab_jint(o, "pages", -1);
    out->bad_pages = lab_jint(o, "bad_pages", -1);
    out->pass = lab_jint(o, "pass", -1);
    out->cursor = lab_jint(o, "cursor", -1);
    json_decref(o);
    return 0;
}

/* --- migration -------------------------------------------------------- */

int lab_prepare_incoming(const struct lab_agent *src, const struct lab_agent *dst, const char *name,
                         char *uri, size_t n, struct ferr *e)
{
    return lab_prepare_incoming_opts(src, dst, name, 0, uri, n, e);
}

/* POST /v1/incoming on dst with spec (takes ownership). Returns 0 when
 * dst accepted it (200 or 202). */
static int post_incoming(const struct lab_agent *dst, json_t *spec, struct ferr *e)
{
    char what[160];
    snprintf(what, sizeof(what), "POST /v1/incoming on %s", dst->name);
    return post_accepted(dst, "/v1/incoming", spec, "incoming", what, e);
}

int lab_prepare_incoming_opts(const struct lab_agent *src, const struct lab_agent *dst,
                              const char *name, int postcopy, char *uri, size_t n, struct ferr *e)
{
    json_t *o;
    int rc = lab_instance(src, name, &o, e);
    if (rc != 0)
        return rc;
    json_t *spec = json_deep_copy(json_object_get(o, "spec"));
    json_decref(o);
    if (!json_is_object(spec)) {
        json_decref(spec);
        return ferr_set(e, FERR_PEER, "spec", "%s on %s has no spec", name, src->name);
    }
    if (postcopy)
        json_object_set_new(spec, "postcopy", json_true());
    rc = post_incoming(dst, spec, e);
    if (rc != 0)
        return rc;
    uint64_t deadline = lab_now_ms() + 30000;
    for (;;) {
        rc = lab_instance(dst, name, &o, e);
        if (rc != 0)
            return rc;
        const char *u = json_string_value(json_object_get(o, "incoming_uri"));
        if (u && u[0]) {
            snprintf(uri, n, "%s", u);
            json_decref(o);
            return 0;
        }
        const char *le = json_string_value(json_object_get(o, "last_error"));
        char lerr[160];
        snprintf(lerr, sizeof(lerr), "%s", le ? le : "");
        json_decref(o);
        if (lab_now_ms() >= deadline) {
            delete_instance_quiet(dst, name);
            return ferr_set(e, FERR_TIMEOUT, "incoming", "no incoming_uri on %s in 30 s (%s)",
                            dst->name, lerr);
        }
        lab_sleep_ms(100);
    }
}

/* POSTs the migration of name from src to dst's uri (body: instance,
 * dest_uri, dest_agent, plus the members of extra, limits and policy when
 * non-NULL; all borrowed) and copies its id into id; on any failure
 * removes the prepared instance on dst. */
static int post_migration(const struct lab_agent *src, const struct lab_agent *dst,
                          const char *name, const char *uri, const json_t *extra,
                          const json_t *limits, const json_t *policy, char *id, size_t n,
                          struct ferr *e)
{
    json_t *b =
        json_pack("{s:s, s:s, s:s}", "instance", name, "dest_uri", uri, "dest_agent", dst->url);
    if (extra)
        json_object_update(b, (json_t *)extra);
    if (limits)
        json_object_set_new(b, "limits", json_deep_copy(limits));
    if (policy)
        json_object_set_new(b, "policy", json_deep_copy(policy));
    int st = 0;
    json_t *o = NULL;
    int rc = lab_api(src, "POST", "/v1/migrations", b, &st, &o, e);
    json_decref(b);
    const char *mid = json_string_value(json_object_get(o, "id"));
    if (rc == 0 && (st != 202 || !mid)) {
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        rc = ferr_set(e, FERR_PEER, "migration", "POST /v1/migrations on %s: status %d %s",
                      src->name, st, s ? s : "");
        free(s);
    }
    if (rc == 0)
        snprintf(id, n, "%s", mid);
    json_decref(o);
    if (rc != 0)
        delete_instance_quiet(dst, name);
    return rc;
}

int lab_migrate_start(const struct lab_agent *src, const struct lab_agent *dst, const char *name,
                      const json_t *limits, char *id, size_t n, struct ferr *e)
{
    return lab_migrate_start_policy(src, dst, name, limits, NULL, id, n, e);
}

int lab_policy_permits_postcopy(const json_t *policy)
{
    if (json_is_true(json_object_get(policy, "permit_post_copy")))
        return 1;
    const json_t *en = json_object_get(policy, "entries");
    for (size_t i = 0; json_is_array(en) && i < json_array_size(en); i++) {
        const char *a = json_string_value(json_object_get(json_array_get(en, i), "action"));
        if (a && strcmp(a, "postcopy") == 0)
            return 1;
    }
    return 0;
}

int lab_migrate_start_policy(const struct lab_agent *src, const struct lab_agent *dst,
                             const char *name, const json_t *limits, const json_t *policy, char *id,
                             size_t n, struct ferr *e)
{
    char uri[160];
    int rc = lab_prepare_incoming_opts(src, dst, name, lab_policy_permits_postcopy(policy), uri,
                                       sizeof(uri), e);
    if (rc != 0)
        return rc;
    return post_migration(src, dst, name, uri, NULL, limits, policy, id, n, e);
}

int lab_api_text(const struct lab_agent *a, const char *method, const char *path, int *status,
                 char **body, size_t *len, struct ferr *e)
{
    struct httpc_resp r;
    int rc = httpc_request(a->url, method, path, NULL, NULL, LAB_HTTP_TIMEOUT_MS, &r, e);
    if (rc != 0)
        return rc;
    *status = r.status;
    *body = r.body;
    *len = r.len;
    r.body = NULL;
    httpc_resp_free(&r);
    return 0;
}

static int mig_get(const struct lab_agent *src, const char *id, json_t **out, struct ferr *e)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/migrations/%s", id);
    int st = 0;
    json_t *o = NULL;
    int rc = lab_api(src, "GET", path, NULL, &st, &o, e);
    if (rc != 0)
        return rc;
    if (st != 200 || !json_is_object(o)) {
        json_decref(o);
        return ferr_set(e, st == 404 ? FERR_NOTFOUND : FERR_PEER, "migration",
                        "GET %s on %s: status %d", path, src->name, st);
    }
    *out = o;
    return 0;
}

int lab_migration_wait(const struct lab_agent *src, const char *id, int timeout_ms, json_t **out,
                       struct ferr *e)
{
    uint64_t deadline = lab_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        json_t *o;
        int rc = mig_get(src, id, &o, e);
        if (rc != 0)
            return rc;
        const char *s = json_string_value(json_object_get(o, "state"));
        if (s && (!strcmp(s, "succeeded") || !strcmp(s, "failed") || !strcmp(s, "cancelled"))) {
            *out = o;
            return 0;
        }
        char last[32];
        snprintf(last, sizeof(last), "%s", s ? s : "?");
        json_decref(o);
        if (lab_now_ms() >= deadline)
            return ferr_set(e, FERR_TIMEOUT, "migration", "migration %s still %s after %d ms", id,
                            last, timeout_ms);
        lab_sleep_ms(200);
    }
}

int lab_migrate(const struct lab_agent *src, const struct lab_agent *dst, const char *name,
                const json_t *limits, int timeout_ms, json_t **out, struct ferr *e)
{
    char id[64];
    int rc = lab_migrate_start(src, dst, name, limits, id, sizeof(id), e);
    if (rc != 0)
        return rc;
    return lab_migration_wait(src, id, timeout_ms, out, e);
}

int lab_migration_wait_transferred(const struct lab_agent *src, const char *id, uint64_t bytes,
                                   int timeout_ms, struct ferr *e)
{
    uint64_t deadline = lab_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        json_t *o;
        int rc = mig_get(src, id, &o, e);
        if (rc != 0)
            return rc;
        const char *s = json_string_value(json_object_get(o, "state"));
        uint64_t t = (uint64_t)lab_jint(json_object_get(o, "last_sample"), "ram_transferred", 0);
        int moving = s && !strcmp(s, "running");
        char last[32];
        snprintf(last, sizeof(last), "%s", s ? s : "?");
        json_decref(o);
        if (moving && t >= bytes)
            return 0;
        if (s && strcmp(last, "starting") != 0 && strcmp(last, "running") != 0)
            return ferr_set(e, FERR_STATE, "migration", "migration %s is %s", id, last);
        if (lab_now_ms() >= deadline)
            return ferr_set(e, FERR_TIMEOUT, "migration",
                            "migration %s moved %llu < %llu bytes in %d ms", id,
                            (unsigned long long)t, (unsigned long long)bytes, timeout_ms);
        lab_sleep_ms(100);
    }
}

/* --- processes -------------------------------------------------------- */

int lab_pid_alive(pid_t pid)
{
    if (pid <= 0)
        return 0;
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return 0;
    char path[64], buf[256];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ')
        return 1;
    return p[2] != 'Z' && p[2] != 'X';
}

int lab_pid_wait_gone(pid_t pid, int timeout_ms)
{
    uint64_t deadline = lab_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        if (!lab_pid_alive(pid))
            return 1;
        if (lab_now_ms() >= deadline)
            return 0;
        lab_sleep_ms(50);
    }
}

int lab_instance_wait_gone(const struct lab_agent *a, const char *name, int timeout_ms)
{
    uint64_t deadline = lab_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        struct ferr e;
        int rc = lab_instance(a, name, NULL, &e);
        if (rc == FERR_NOTFOUND)
            return 1;
        if (lab_now_ms() >= deadline)
            return 0;
        lab_sleep_ms(100);
    }
}

/* Counts the FERRY-READY lines on the console of name. */
static int count_ready(const struct lab_agent *a, const char *name, int *count, struct ferr *e)
{
    char path[160];
    snprintf(path, sizeof(path), "/v1/instances/%s/console?since=0", name);
    int st = 0;
    json_t *o = NULL;
    int rc = lab_api(a, "GET", path, NULL, &st, &o, e);
    if (rc != 0)
        return rc;
    if (st == 404) {
        json_decref(o);
        return ferr_set(e, FERR_NOTFOUND, "instance", "%s is gone from %s", name, a->name);
    }
    const char *t = json_string_value(json_object_get(o, "text"));
    *count = 0;
    for (const char *p = t; p && (p = strstr(p, "FERRY-READY ")); p++)
        (*count)++;
    json_decref(o);
    return 0;
}

int lab_launch_guest_disks(const struct lab_agent *a, const char *name, unsigned memory_mib,
                           const char *cmdline, const json_t *disks, int ready_lines,
                           int timeout_ms, struct ferr *e)
{
    int rc = lab_post_instance(a, name, NULL, memory_mib, cmdline, disks, e);
    if (rc != 0)
        return rc;
    uint64_t deadline = lab_now_ms() + (uint64_t)timeout_ms;
    int n = 0;
    while ((rc = count_ready(a, name, &n, e)) == 0 && n < ready_lines) {
        if (lab_now_ms() >= deadline) {
            rc = ferr_set(e, FERR_TIMEOUT, "console", "%d of %d FERRY-READY from %s in %d ms", n,
                          ready_lines, name, timeout_ms);
            break;
        }
        lab_sleep_ms(200);
    }
    if (rc != 0)
        delete_instance_quiet(a, name);
    return rc;
}

int lab_migrate_start_storage(const struct lab_agent *src, const struct lab_agent *dst,
                              const char *name, const json_t *limits, char *id, size_t n,
                              struct ferr *e)
{
    return lab_migrate_start_storage_policy(src, dst, name, limits, NULL, id, n, e);
}

int lab_migrate_start_storage_policy(const struct lab_agent *src, const struct lab_agent *dst,
                                     const char *name, const json_t *limits,
                                     const json_t *policy, char *id, size_t n, struct ferr *e)
{
    json_t *o;
    int rc = lab_instance(src, name, &o, e);
    if (rc != 0)
        return rc;
    json_t *spec = json_deep_copy(json_object_get(o, "spec"));
    json_t *sizes = json_deep_copy(json_object_get(o, "disk_sizes"));
    json_decref(o);
    if (!json_is_object(spec) || !json_is_object(sizes) || json_object_size(sizes) == 0) {
        json_decref(spec);
        json_decref(sizes);
        return ferr_set(e, FERR_PEER, "spec", "%s on %s reports no spec or no disk_sizes", name,
                        src->name);
    }
    json_object_set_new(spec, "storage", json_string("copy"));
    json_object_set_new(spec, "disk_sizes", sizes);
    rc = post_incoming(dst, spec, e);
    if (rc != 0)
        return rc;
    char uri[160] = "", lerr[160] = "";
    uint64_t deadline = lab_now_ms() + 30000;
    while (rc == 0 && !uri[0]) {
        if ((rc = lab_instance(dst, name, &o, e)) != 0)
            break;
        const char *u = json_string_value(json_object_get(o, "incoming_uri"));
        const char *le = json_string_value(json_object_get(o, "last_error"));
        snprintf(uri, sizeof(uri), "%s", u ? u : "");
        snprintf(lerr, sizeof(lerr), "%s", le ? le : "");
        json_decref(o);
        if (!uri[0] && lab_now_ms() >= deadline)
            rc = ferr_set(e, FERR_TIMEOUT, "incoming", "no incoming_uri on %s in 30 s (%s)",
                          dst->name, lerr);
        else if (!uri[0])
            lab_sleep_ms(100);
    }
    if (rc != 0) {
        delete_instance_quiet(dst, name);
        return rc;
    }
    json_t *extra = json_pack("{s:s}", "storage", "copy");
    rc = post_migration(src, dst, name, uri, extra, limits, policy, id, n, e);
    json_decref(extra);
    return rc;
}
