/* ferryd (test helper) — see ferryd.h. */
#include "ferryd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/httpc.h"
#include "util/xalloc.h"

#define MAX_DAEMONS 4 /* process groups the safety net knows at once */
#define MAX_DIRS 4    /* directories it removes at exit */

void ferryd_sleep_ms(int ms)
{
    lab_sleep_ms(ms);
}

const char *ferryd_bin(const char *name)
{
    static char path[2][LAB_PATH_MAX];
    static int k;
    const char *b = getenv("BUILD");
    k ^= 1;
    snprintf(path[k], sizeof(path[k]), "%s/%s", b && b[0] ? b : "build", name);
    return path[k];
}

const char *ferryd_jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

int ferryd_read_line(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char *r = fgets(buf, (int)n, f);
    fclose(f);
    if (!r) {
        buf[0] = '\0';
        return -1;
    }
    buf[strcspn(buf, "\r\n")] = '\0';
    return buf[0] ? 0 : -1;
}

/* --- safety net (daemons without a lab) ------------------------------- */

static pid_t *live[MAX_DAEMONS]; /* guarded process groups (ferryd_guard) */
static char *dirs[MAX_DIRS];     /* removed at exit (ferryd_tmpdir) */
static int safety_installed;

static void kill_live(void)
{
    for (int i = 0; i < MAX_DAEMONS; i++)
        if (live[i] && *live[i] > 0)
            kill(-*live[i], SIGKILL);
}

static void on_exit_kill(void)
{
    for (int i = 0; i < MAX_DAEMONS; i++)
        if (live[i] && *live[i] > 0) {
            kill(-*live[i], SIGKILL);
            waitpid(*live[i], NULL, 0);
            *live[i] = 0;
        }
    for (int i = 0; i < MAX_DIRS; i++)
        if (dirs[i]) {
            char *cmd = xasprintf("rm -rf '%s'", dirs[i]);
            if (system(cmd) != 0)
                fprintf(stderr, "cannot remove %s\n", dirs[i]);
            free(cmd);
            free(dirs[i]);
            dirs[i] = NULL;
        }
}

static void on_fatal(int sig)
{
    kill_live();
    signal(sig, SIG_DFL);
    raise(sig);
}

int ferryd_guard(pid_t *pid)
{
    lab__install_safety(&safety_installed, on_exit_kill, on_fatal, NULL);
    for (int i = 0; i < MAX_DAEMONS; i++)
        if (live[i] == pid)
            return 0;
    for (int i = 0; i < MAX_DAEMONS; i++)
        if (!live[i]) {
            live[i] = pid;
            return 0;
        }
    return -1;
}

static void forget(const pid_t *pid)
{
    for (int i = 0; i < MAX_DAEMONS; i++)
        if (live[i] == pid)
            live[i] = NULL;
}

int ferryd_tmpdir(char *tmpl)
{
    int slot = -1;
    for (int i = 0; i < MAX_DIRS && slot < 0; i++)
        if (!dirs[i])
            slot = i;
    if (slot < 0) {
        errno = ENOSPC;
        return -1;
    }
    if (!mkdtemp(tmpl))
        return -1;
    lab__install_safety(&safety_installed, on_exit_kill, on_fatal, NULL);
    dirs[slot] = xstrdup(tmpl);
    return 0;
}

/* --- life cycle ------------------------------------------------------- */

int ferryd_init(struct ferryd *d, struct lab *lab, struct ferr *e)
{
    memset(d, 0, sizeof(*d));
    d->lab = lab;
    if (lab) {
        snprintf(d->dir, sizeof(d->dir), "%s", lab->tmp);
    } else {
        snprintf(d->dir, sizeof(d->dir), "/tmp/ferryd-test-XXXXXX");
        if (!mkdtemp(d->dir)) {
            ferr_set(e, -errno, NULL, "mkdtemp: %s", strerror(errno));
            d->dir[0] = '\0';
            return -1;
        }
        d->own_dir = 1;
    }
    d->port = 10000 + (int)(getpid() % 9000);
    snprintf(d->url, sizeof(d->url), "http://127.0.0.1:%d", d->port);
    snprintf(d->conf, sizeof(d->conf), "%s/ferryd.conf", d->dir);
    snprintf(d->log_path, sizeof(d->log_path), "%s/ferryd.log", d->dir);
    snprintf(d->admin_path, sizeof(d->admin_path), "%s/admin.token", d->dir);
    snprintf(d->agent_tok_path, sizeof(d->agent_tok_path), "%s/agent.token", d->dir);
    if (!lab && ferryd_guard(&d->pid) != 0) {
        ferr_set(e, -ENOSPC, NULL, "more than %d daemons without a lab", MAX_DAEMONS);
        return -1;
    }
    return 0;
}

int ferryd_write_conf(struct ferryd *d, const char *extra, ...)
{
    FILE *f = fopen(d->conf, "w");
    if (!f)
        return -1;
    fprintf(f,
            "# written by tests/lib/ferryd.c\nlisten = 127.0.0.1:%d\ndb = %s/ferryd.db\n"
            "bootstrap_token_file = %s\n",
            d->port, d->dir, d->admin_path);
    if (extra) {
        va_list ap;
        va_start(ap, extra);
        vfprintf(f, extra, ap);
        va_end(ap);
    }
    return fclose(f) == 0 ? 0 : -1;
}

/* Starts bin with argv in its own process group, PR_SET_PDEATHSIG, stderr
 * (and stdout when also_stdout) appended to log_path. Returns its pid or
 * -1 when fork failed. */
static pid_t spawn_logged(const char *bin, char *const argv[], const char *log_path,
                          int also_stdout)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (!freopen(log_path, "a", stderr))
            _exit(127);
        if (also_stdout)
            dup2(STDERR_FILENO, STDOUT_FILENO); /* e.g. a maintenance command's output */
        execv(bin, argv);
        _exit(127);
    }
    setpgid(pid, pid);
    return pid;
}

pid_t ferryd_spawn(const char *conf, const char *log_path)
{
    const char *argv[] = {"ferryd", "--config", conf, NULL};
    return spawn_logged(ferryd_bin("ferryd"), (char *const *)argv, log_path, 0);
}

int ferryd_wait_health(const char *url, pid_t *pid, int timeout_ms)
{
    uint64_t t0 = lab_now_ms();
    while (lab_now_ms() - t0 < (uint64_t)timeout_ms) {
        struct httpc_resp r = {0};
        struct ferr e = {0};
        if (httpc_request(url, "GET", "/v1/health", NULL, NULL, 1000, &r, &e) == 0) {
            int ok = r.status == 200;
            httpc_resp_free(&r);
            if (ok)
                return 0;
        }
        if (waitpid(*pid, NULL, WNOHANG) == *pid) {
            *pid = 0;
            return -1;
        }
        ferryd_sleep_ms(50);
    }
    return -1;
}

void ferryd_kill(pid_t *pid, int sig, int grace_ms)
{
    if (*pid <= 0)
        return;
    kill(-*pid, sig);
    for (int waited = 0; waited < grace_ms && waitpid(*pid, NULL, WNOHANG) == 0; waited += 100)
        ferryd_sleep_ms(100);
    kill(-*pid, SIGKILL);
    while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR) {
    }
    *pid = 0;
}

int ferryd_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

int ferryd_start(struct ferryd *d)
{
    d->pid = ferryd_spawn(d->conf, d->log_path);
    if (d->pid < 0) {
        d->pid = 0;
        return -1;
    }
    if (d->lab && lab_track(d->lab, d->pid) != 0) {
        fprintf(stderr, "ferryd: lab_track: too many process groups\n");
        ferryd_stop(d, SIGKILL);
        return -1;
    }
    if (ferryd_wait_health(d->url, &d->pid, FERRYD_T_START_TIMEOUT_MS) == 0)
        return ferryd_read_line(d->admin_path, d->admin, sizeof(d->admin));
    if (d->pid == 0) {
        fprintf(stderr, "ferryd exited at start (log %s)\n", d->log_path);
        return -1;
    }
    fprintf(stderr, "ferryd did not answer /v1/health (log %s)\n", d->log_path);
    ferryd_stop(d, SIGKILL);
    return -1;
}

void ferryd_stop(struct ferryd *d, int sig)
{
    if (d->pid <= 0)
        return;
    kill(-d->pid, sig);
    while (waitpid(d->pid, NULL, 0) < 0 && errno == EINTR) {
    }
    d->pid = 0;
}

int ferryd_restart(struct ferryd *d)
{
    ferryd_stop(d, SIGTERM);
    return ferryd_start(d);
}

void ferryd_fini(struct ferryd *d, int remove_dir)
{
    ferryd_stop(d, SIGKILL);
    forget(&d->pid);
    if (remove_dir && d->own_dir && d->dir[0]) {
        char *cmd = xasprintf("rm -rf '%s'", d->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", d->dir);
        free(cmd);
        d->dir[0] = '\0';
    }
}

void ferryd_tail_log(const struct ferryd *d, int lines)
{
    fprintf(stderr, "ferryd log (%s):\n", d->log_path);
    char *cmd = xasprintf("tail -%d '%s' >&2", lines, d->log_path);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot show the log\n");
    free(cmd);
}

/* --- tokens and requests ---------------------------------------------- */

int ferryd_conf_add_token(const char *conf, const char *log_path, const char *user,
                          const char *project, const char *roles, char *out, size_t n)
{
    char *cmd = xasprintf("'%s' --config '%s' --add-token '%s' '%s' '%s' 2>>'%s'",
                          ferryd_bin("ferryd"), conf, user, project, roles, log_path);
    FILE *p = popen(cmd, "r");
    free(cmd);
    out[0] = '\0';
    if (p) {
        if (!fgets(out, (int)n, p))
            out[0] = '\0';
        pclose(p);
    }
    out[strcspn(out, "\r\n")] = '\0';
    return out[0] ? 0 : -1;
}

int ferryd_add_token(const struct ferryd *d, const char *user, const char *project,
                     const char *roles, char *out, size_t n)
{
    return ferryd_conf_add_token(d->conf, d->log_path, user, project, roles, out, n);
}

int ferryd_agent_token(struct ferryd *d)
{
    if (ferryd_add_token(d, "agent1", "infra", "agent", d->agent_tok, sizeof(d->agent_tok)) != 0)
        return -1;
    FILE *f = fopen(d->agent_tok_path, "w");
    if (!f)
        return -1;
    fprintf(f, "%s\n", d->agent_tok);
    return fclose(f) == 0 ? 0 : -1;
}

int ferryd_api(const struct ferryd *d, const char *method, const char *path, const char *token,
               const json_t *body, json_t **out)
{
    struct ferr e = {0};
    int status = 0;
    json_t *o = NULL;
    if (out)
        *out = NULL;
    if (httpc_json(d->url, method, path, body, token, FERRYD_T_HTTP_TIMEOUT_MS, &status, &o, &e) !=
        0) {
        fprintf(stderr, "%s %s: %s\n", method, path, e.msg);
        return -1;
    }
    if (out)
        *out = o;
    else
        json_decref(o);
    return status;
}

#define RELAUNCH_EXTRA_MAX 16

int ferryd_relaunch_agent_args(const struct ferryd *d, struct lab *lab, int i,
                               const char *token_file, const char *const *extra)
{
    struct lab_agent *a = &lab->agents[i];
    size_t nextra = 0;
    while (extra && extra[nextra])
        nextra++;
    if (nextra > RELAUNCH_EXTRA_MAX)
        return -1;
    if (a->pid > 0) {
        kill(a->pid, SIGTERM);
        while (waitpid(a->pid, NULL, 0) < 0 && errno == EINTR) {
        }
    }
    char listen[64];
    snprintf(listen, sizeof(listen), "%s:%d", a->addr, a->port);
    const char *argv[18 + RELAUNCH_EXTRA_MAX + 1] = {
        "ferry-agent",    "--listen",      listen,  "--state-dir",
        a->state_dir,     "--name",        a->name, "--lab-dir",
        lab->lab_dir,     "--coordinator", d->url,  "--agent-token-file",
        d->agent_tok_path};
    size_t n = 13;
    if (token_file) {
        argv[n++] = "--token-file";
        argv[n++] = token_file;
    }
    for (size_t k = 0; k < nextra; k++)
        argv[n++] = extra[k];
    argv[n] = NULL;
    pid_t pid = spawn_logged(ferryd_bin("ferry-agent"), (char *const *)argv, a->log_path, 1);
    if (pid < 0)
        return -1;
    a->pid = pid;
    if (lab_track(lab, pid) != 0)
        return -1;
    uint64_t t0 = lab_now_ms();
    while (lab_now_ms() - t0 < LAB_HEALTH_TIMEOUT_MS) {
        int st = 0;
        struct ferr e = {0};
        if (lab_api(a, "GET", "/v1/health", NULL, &st, NULL, &e) == 0 &&
            (st == 200 || (token_file && st == 401)))
            return 0;
        ferryd_sleep_ms(100);
    }
    return -1;
}

int ferryd_relaunch_agent(const struct ferryd *d, struct lab *lab, int i, const char *token_file)
{
    return ferryd_relaunch_agent_args(d, lab, i, token_file, NULL);
}

/* --- migrations ------------------------------------------------------- */

int ferryd_wait_state(const struct ferryd *d, const char *token, const char *id, const char *state,
                      int timeout_ms)
{
    char path[160];
    snprintf(path, sizeof(path), "/v1/migrations/%s", id);
    uint64_t t0 = lab_now_ms();
    while (lab_now_ms() - t0 < (uint64_t)timeout_ms) {
        json_t *o = NULL;
        int ok = ferryd_api(d, "GET", path, token, NULL, &o) == 200 &&
                 strcmp(ferryd_jstr(o, "state"), state) == 0;
        json_decref(o);
        if (ok)
            return 0;
        ferryd_sleep_ms(100);
    }
    return -1;
}

int ferryd_wait_terminal(const struct ferryd *d, const char *token, const char *id, int timeout_ms,
                         json_t **out)
{
    char path[160];
    snprintf(path, sizeof(path), "/v1/migrations/%s", id);
    uint64_t t0 = lab_now_ms();
    while (lab_now_ms() - t0 < (uint64_t)timeout_ms) {
        json_t *o = NULL;
        if (ferryd_api(d, "GET", path, token, NULL, &o) == 200) {
            const char *s = ferryd_jstr(o, "state");
            if (!strcmp(s, "succeeded") || !strcmp(s, "failed") || !strcmp(s, "cancelled")) {
                *out = o;
                return 0;
            }
        }
        json_decref(o);
        ferryd_sleep_ms(250);
    }
    return -1;
}
