/* maint — the maintenance action (see maint.h).
 *
 * The agent's SIGCHLD handler reaps every child (instance.c), so the
 * command is not our direct child: a small supervisor process forks it,
 * waits for it with the timeout, kills its process group on expiry, and
 * writes one line "exit N" / "signal N" / "timeout" to a pipe the agent's
 * loop reads. The command's stdout and stderr come through the supervisor,
 * which copies them to its own stderr (the agent's log) and keeps the
 * first MAINT_OUTPUT_MAX bytes in STATE_DIR/maintenance.out; the record's
 * "output" is that file. */
#include "agent/maint.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/httpd.h"
#include "util/jsonin.h"
#include "util/log.h"
#include "util/xalloc.h"

#define RESTART_DELAY_MS 300 /* let the last replies go out before re-exec, ms */
#define TIMEOUT_DEFAULT_S 600
#define STATUS_MAX 64 /* bytes of the supervisor's status line */

/* One agent per process: the action's state lives here (struct agent has
 * no slot for it and agent.h is not this module's). */
static struct {
    struct agent *ag;
    char **argv;
    int64_t agent_started_ms;  /* wall clock, ms */
    json_t *last;              /* the last action's record, owned */
    struct event *pipe_ev;     /* supervisor's status pipe */
    char buf[STATUS_MAX];
    size_t len;
    bool restart;              /* re-exec after success */
    struct event *restart_ev;
} M;

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *state_path(void)
{
    return xasprintf("%s/maintenance.json", M.ag->state_dir);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *output_path(void)
{
    return xasprintf("%s/maintenance.out", M.ag->state_dir);
}

/* The captured output of the last command (at most MAINT_OUTPUT_MAX bytes,
 * invalid UTF-8 replaced), as a new JSON string. */
static json_t *read_output(void)
{
    char *p = output_path(), buf[MAINT_OUTPUT_MAX];
    FILE *f = fopen(p, "r");
    size_t n = f ? fread(buf, 1, sizeof(buf), f) : 0;
    if (f)
        fclose(f);
    free(p);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)buf[i] >= 0x80 || (buf[i] < 0x20 && buf[i] != '\n' && buf[i] != '\t'))
            buf[i] = '?'; /* keep it valid JSON text whatever the command printed */
    return json_stringn(buf, n);
}

static void save(void)
{
    char *p = state_path(), *tmp = xasprintf("%s.tmp", p);
    if (json_dump_file(M.last, tmp, JSON_COMPACT) == 0 && rename(tmp, p) == 0)
        ;
    else
        log_warn("maint", "msg=\"cannot save the maintenance result\" path=%s", p);
    free(p);
    free(tmp);
}

void maint_init(struct agent *ag, char **argv)
{
    M.ag = ag;
    M.argv = argv;
    M.agent_started_ms = wall_ms();
    char *p = state_path();
    M.last = json_load_file(p, 0, NULL);
    free(p);
    if (M.last && !json_is_object(M.last)) {
        json_decref(M.last);
        M.last = NULL;
    }
    /* A record still "running" belonged to the previous process, whose
     * supervisor reported to a pipe that is gone. */
    const char *st = M.last ? json_string_value(json_object_get(M.last, "state")) : NULL;
    if (st && strcmp(st, "running") == 0) {
        json_object_set_new(M.last, "state", json_string("failed"));
        json_object_set_new(M.last, "error", json_string("the agent restarted during the action"));
        save();
    }
}

static void do_restart(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    log_info("maint", "msg=\"restarting the agent after maintenance; guests keep running\"");
    for (int i = 3; i < 65536; i++)
        close(i); /* listeners, QMP and console sockets: the new process reopens them */
    execv("/proc/self/exe", M.argv);
    _exit(75); /* EX_TEMPFAIL: a supervising wrapper restarts us */
}

static void on_status(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    ssize_t r = read(fd, M.buf + M.len, sizeof(M.buf) - 1 - M.len);
    if (r > 0) {
        M.len += (size_t)r;
        if (M.len < sizeof(M.buf) - 1)
            return;
    } else if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    M.buf[M.len] = '\0';
    event_free(M.pipe_ev);
    M.pipe_ev = NULL;
    close(fd);
    int n = -1;
    const char *state = "failed";
    if (sscanf(M.buf, "exit %d", &n) == 1)
        state = n == 0 ? "succeeded" : "failed";
    else if (strncmp(M.buf, "timeout", 7) == 0)
        state = "timeout";
    json_object_set_new(M.last, "state", json_string(state));
    json_object_set_new(M.last, "exit_status", json_integer(n));
    json_object_set_new(M.last, "finished_ms", json_integer(wall_ms()));
    json_object_set_new(M.last, "report", json_string(M.buf[0] ? M.buf : "no report"));
    json_object_set_new(M.last, "output", read_output());
    save();
    log_info("maint", "msg=\"maintenance action ended\" state=%s report=\"%s\"", state, M.buf);
    if (strcmp(state, "succeeded") == 0 && M.restart) {
        M.restart_ev = evtimer_new(M.ag->base, do_restart, NULL);
        struct timeval tv = {0, RESTART_DELAY_MS * 1000};
        evtimer_add(M.restart_ev, &tv);
    }
}

/* The supervisor (a child of the agent): runs command with its output
 * through a pipe (copied to stderr, the first MAINT_OUTPUT_MAX bytes kept in
 * out_path), reports, exits. */
static void supervise(int wfd, const char *command, uint64_t timeout_s, const char *out_path)
{
    int op[2] = {-1, -1};
    if (pipe(op) != 0)
        op[0] = op[1] = -1;
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            close(devnull);
        }
        if (op[1] >= 0) {
            dup2(op[1], 1);
            dup2(op[1], 2);
            close(op[0]);
            close(op[1]);
        }
        execl("/bin/sh", "sh", "-c", command, (char *)NULL);
        _exit(127);
    }
    if (op[1] >= 0)
        close(op[1]);
    char line[STATUS_MAX], keep[MAINT_OUTPUT_MAX];
    size_t kept = 0;
    if (pid < 0) {
        snprintf(line, sizeof(line), "exit 126\n");
    } else {
        setpgid(pid, pid);
        int status = 0;
        int64_t t0 = mono_ms(), exited_at = 0;
        pid_t w = 0;
        /* until the command ended and its output is read (or, when a
         * background child keeps the pipe open, 500 ms after it ended) */
        while (mono_ms() - t0 < (int64_t)timeout_s * 1000) {
            if (w == 0 && (w = waitpid(pid, &status, WNOHANG)) != 0)
                exited_at = mono_ms();
            if (w != 0 && (op[0] < 0 || mono_ms() - exited_at >= 500))
                break;
            struct pollfd pfd = {op[0], POLLIN, 0};
            int pr = op[0] >= 0 ? poll(&pfd, 1, 100) : (usleep(100000), 0);
            if (pr > 0) {
                char buf[4096];
                ssize_t r = read(op[0], buf, sizeof(buf));
                if (r <= 0) {
                    close(op[0]);
                    op[0] = -1;
                } else {
                    ssize_t wr = write(STDERR_FILENO, buf, (size_t)r);
                    (void)wr;
                    size_t take = (size_t)r < sizeof(keep) - kept ? (size_t)r : sizeof(keep) - kept;
                    memcpy(keep + kept, buf, take);
                    kept += take;
                }
            }
        }
        if (w == 0) {
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            snprintf(line, sizeof(line), "timeout\n");
        } else if (w > 0 && WIFEXITED(status)) {
            snprintf(line, sizeof(line), "exit %d\n", WEXITSTATUS(status));
        } else {
            snprintf(line, sizeof(line), "signal %d\n", w > 0 ? WTERMSIG(status) : 0);
        }
    }
    FILE *f = fopen(out_path, "w");
    if (f) {
        if (kept && fwrite(keep, 1, kept, f) != kept)
            kept = 0;
        fclose(f);
    }
    ssize_t wr = write(wfd, line, strlen(line));
    (void)wr;
    _exit(0);
}

static void post(struct agent *ag, struct evhttp_request *req)
{
    static const char *const keys[] = {"id", "command", "restart", "timeout_s", NULL};
    struct ferr e = {0};
    json_t *body = NULL;
    char *id = NULL, *command = NULL;
    bool restart = false;
    uint64_t timeout_s = TIMEOUT_DEFAULT_S;
    int rc = httpd_body_json(req, 0, &body, &e);
    if (rc == 0)
        rc = jsonin_only_keys(body, keys, &e);
    if (rc == 0)
        rc = jsonin_str(body, "id", 160, true, &id, &e);
    if (rc == 0)
        rc = jsonin_str(body, "command", MAINT_COMMAND_MAX, true, &command, &e);
    if (rc == 0)
        rc = jsonin_bool(body, "restart", false, &restart, &e);
    if (rc == 0)
        rc = jsonin_u64(body, "timeout_s", 1, 86400, false, &timeout_s, &e);
    json_decref(body);
    if (rc != 0) {
        free(id);
        free(command);
        return httpd_reply_err(req, &e);
    }
    const char *cur = M.last ? json_string_value(json_object_get(M.last, "state")) : NULL;
    const char *cur_id = M.last ? json_string_value(json_object_get(M.last, "id")) : NULL;
    if (cur_id && strcmp(cur_id, id) == 0) { /* the same request again: answer what we know */
        free(id);
        free(command);
        return httpd_reply_json(req, 200, json_deep_copy(M.last));
    }
    if (M.pipe_ev || (cur && strcmp(cur, "running") == 0) || M.restart_ev) {
        free(id);
        free(command);
        ferr_set(&e, FERR_EXISTS, "id", "another maintenance action is running");
        return httpd_reply_err(req, &e);
    }
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        free(id);
        free(command);
        ferr_set(&e, -errno, "", "pipe: %s", strerror(errno));
        return httpd_reply_err(req, &e);
    }
    char *out_path = output_path();
    unlink(out_path);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        supervise(fds[1], command, timeout_s, out_path);
    }
    free(out_path);
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        free(id);
        free(command);
        ferr_set(&e, -errno, "", "fork: %s", strerror(errno));
        return httpd_reply_err(req, &e);
    }
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    M.len = 0;
    M.restart = restart;
    M.pipe_ev = event_new(ag->base, fds[0], EV_READ | EV_PERSIST, on_status, NULL);
    event_add(M.pipe_ev, NULL);
    json_decref(M.last);
    M.last = json_pack("{s:s, s:s, s:s, s:b, s:I, s:I, s:I, s:n}", "id", id, "command", command,
                       "state", "running", "restart", restart, "timeout_s", (json_int_t)timeout_s,
                       "started_ms", (json_int_t)wall_ms(), "exit_status", (json_int_t)-1,
                       "finished_ms");
    save();
    log_info("maint", "msg=\"maintenance action started\" id=%s restart=%d timeout_s=%llu", id,
             restart, (unsigned long long)timeout_s);
    json_t *o = json_deep_copy(M.last);
    json_object_set_new(o, "agent_started_ms", json_integer(M.agent_started_ms));
    httpd_reply_json(req, 202, o);
    free(id);
    free(command);
}

void maint_handle(struct agent *ag, struct evhttp_request *req)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    if (m == EVHTTP_REQ_POST)
        return post(ag, req);
    if (m != EVHTTP_REQ_GET) {
        struct ferr e;
        ferr_set(&e, FERR_NOTFOUND, "path", "no such endpoint");
        return httpd_reply_err(req, &e);
    }
    json_t *o = M.last ? json_deep_copy(M.last) : json_pack("{s:s}", "state", "none");
    json_object_set_new(o, "agent_started_ms", json_integer(M.agent_started_ms));
    httpd_reply_json(req, 200, o);
}
