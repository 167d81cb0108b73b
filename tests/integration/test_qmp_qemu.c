/* Integration test of src/qmp against a real QEMU (qemu-system-x86_64
 * -machine none): handshake, query-status, query-version, an unknown
 * command, stop/cont with their STOP/RESUME events, and quit ending in a
 * peer hang-up. QEMU is spawned with fork/exec and always killed and reaped;
 * every wait is bounded. Skips when QEMU is not installed. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../lib/test.h"
#include "qmp/qmp_conn.h"
#include "qmp/qmp_sync.h"

#define QEMU "qemu-system-x86_64"
#define WAIT_MS 10000 /* bound on any single wait, ms */

static char dir[64];
static char sock[128];
static pid_t qemu_pid = -1;

static int have_qemu(void)
{
    return system("command -v " QEMU " >/dev/null 2>&1") == 0;
}

static void qemu_start(void)
{
    snprintf(dir, sizeof(dir), "/tmp/ferry-qmp-XXXXXX");
    if (!mkdtemp(dir)) {
        dir[0] = '\0';
        return;
    }
    snprintf(sock, sizeof(sock), "%s/qmp.sock", dir);
    char qmparg[200];
    snprintf(qmparg, sizeof(qmparg), "unix:%s,server=on,wait=off", sock);
    qemu_pid = fork();
    if (qemu_pid == 0) {
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0) {
            dup2(nul, 0);
            dup2(nul, 1);
        }
        execlp(QEMU, QEMU, "-machine", "none", "-nodefaults", "-display", "none", "-qmp", qmparg,
               (char *)NULL);
        _exit(127);
    }
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Kills and reaps QEMU (if still running) within a bounded time. */
static void qemu_stop(void)
{
    if (qemu_pid > 0) {
        int st;
        long t0 = now_ms();
        while (waitpid(qemu_pid, &st, WNOHANG) == 0) {
            if (now_ms() - t0 > 2000) {
                kill(qemu_pid, SIGKILL);
                waitpid(qemu_pid, &st, 0);
                break;
            }
            usleep(10000);
        }
        qemu_pid = -1;
    }
    if (sock[0])
        unlink(sock);
    if (dir[0])
        rmdir(dir);
}

/* ---- the asynchronous session ---- */

struct session {
    struct event_base *base;
    struct qmp_conn *conn; /* heap; freed in on_close */
    int ready, closed;
    struct ferr why;
    int replied;     /* the awaited reply arrived */
    struct ferr err; /* its error (code 0 = success) */
    json_t *ret;     /* its value (new reference) */
    int stop_events, resume_events, shutdown_events, all_events;
    int timed_out; /* a bounded wait expired */
};

static struct session S;

static void on_ready(struct qmp_conn *c, void *arg)
{
    (void)c;
    ((struct session *)arg)->ready = 1;
}

static void on_close(struct qmp_conn *c, const struct ferr *why, void *arg)
{
    struct session *s = arg;
    s->closed++;
    s->why = *why;
    free(c);
    s->conn = NULL;
}

static void on_reply(struct qmp_conn *c, const struct ferr *err, json_t *ret, void *arg)
{
    (void)c;
    struct session *s = arg;
    s->replied = 1;
    if (err)
        s->err = *err;
    json_decref(s->ret);
    s->ret = json_incref(ret);
}

static void on_event(struct qmp_conn *c, const struct qmp_msg *ev, void *arg)
{
    (void)c;
    struct session *s = arg;
    if (strcmp(ev->event, "STOP") == 0)
        s->stop_events++;
    else if (strcmp(ev->event, "RESUME") == 0)
        s->resume_events++;
    else if (strcmp(ev->event, "SHUTDOWN") == 0)
        s->shutdown_events++;
    if (ev->ts_sec <= 0)
        s->stop_events += 1000; /* a real event carries a real timestamp */
}

static void on_any_event(struct qmp_conn *c, const struct qmp_msg *ev, void *arg)
{
    (void)c;
    (void)ev;
    ((struct session *)arg)->all_events++;
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ((struct session *)arg)->timed_out = 1;
}

/* Runs the loop until *flag >= want or WAIT_MS passed; returns 0 on success. */
static int wait_for(const int *flag, int want)
{
    struct event *dl = evtimer_new(S.base, on_deadline, &S);
    struct timeval tv = {WAIT_MS / 1000, 0};
    S.timed_out = 0;
    evtimer_add(dl, &tv);
    while (*flag < want && !S.timed_out)
        if (event_base_loop(S.base, EVLOOP_ONCE) != 0)
            break;
    event_free(dl);
    return *flag >= want ? 0 : -1;
}

/* Sends one command and waits for its reply; returns the err code. */
static int call(const char *name, json_t *args)
{
    S.replied = 0;
    ferr_clear(&S.err);
    json_decref(S.ret);
    S.ret = NULL;
    int rc = qmp_conn_cmd(S.conn, name, args, on_reply, &S, WAIT_MS);
    if (rc != 0)
        return rc;
    if (wait_for(&S.replied, 1) != 0)
        return FERR_TIMEOUT;
    return S.err.code;
}

static void t_session(void)
{
    memset(&S, 0, sizeof(S));
    S.base = event_base_new();
    /* QEMU creates the socket shortly after start: retry connect, bounded */
    struct qmp_conn_opts o = {.on_ready = on_ready, .on_close = on_close, .arg = &S};
    S.conn = calloc(1, sizeof(*S.conn));
    struct ferr e;
    int rc = -1;
    for (long t0 = now_ms(); now_ms() - t0 < WAIT_MS; usleep(20000)) {
        rc = qmp_conn_connect(S.conn, S.base, sock, &o, &e);
        if (rc == 0 || (rc != -ENOENT && rc != -ECONNREFUSED))
            break;
    }
    if (rc != 0) {
        free(S.conn);
        event_base_free(S.base);
        CHECK(rc == 0, "connect %s: %s", sock, e.msg);
        return;
    }
    CHECK(qmp_conn_subscribe(S.conn, NULL, on_any_event, &S) == 0, "subscribe all");
    CHECK(qmp_conn_subscribe(S.conn, "STOP", on_event, &S) == 0, "subscribe STOP");
    CHECK(qmp_conn_subscribe(S.conn, "RESUME", on_event, &S) == 0, "subscribe RESUME");
    CHECK(wait_for(&S.ready, 1) == 0, "handshake did not finish: %s", S.why.msg);
    if (!S.ready)
        goto out;
    CHECK(S.conn->ver_major == 7, "greeting says QEMU %d", S.conn->ver_major);

    rc = call("query-status", NULL);
    CHECK(rc == 0, "query-status: %s", S.err.msg);
    CHECK(json_is_boolean(json_object_get(S.ret, "running")) &&
              json_is_string(json_object_get(S.ret, "status")),
          "query-status return lacks running/status");

    rc = call("query-version", NULL);
    CHECK(rc == 0, "query-version: %s", S.err.msg);
    CHECK(json_integer_value(json_object_get(json_object_get(S.ret, "qemu"), "major")) == 7,
          "query-version major is not 7");

    rc = call("ferry-no-such-command", NULL);
    CHECK(rc == FERR_PEER, "unknown command rc %d", rc);
    CHECK(strcmp(S.err.field, "CommandNotFound") == 0, "class '%s' (%s)", S.err.field, S.err.msg);

    rc = call("stop", NULL);
    CHECK(rc == 0, "stop: %s", S.err.msg);
    CHECK(wait_for(&S.stop_events, 1) == 0, "no STOP event");
    rc = call("query-status", NULL);
    CHECK(rc == 0 && json_is_false(json_object_get(S.ret, "running")), "still running after stop");
    rc = call("cont", NULL);
    CHECK(rc == 0, "cont: %s", S.err.msg);
    CHECK(wait_for(&S.resume_events, 1) == 0, "no RESUME event");
    CHECK(S.stop_events == 1 && S.resume_events == 1, "STOP %d RESUME %d", S.stop_events,
          S.resume_events);
    CHECK(S.all_events >= 2, "catch-all subscriber saw %d events", S.all_events);

    rc = call("quit", NULL);
    /* QEMU answers quit and then hangs up; either order of events is legal */
    CHECK(rc == 0 || rc == FERR_CLOSED, "quit rc %d", rc);
    CHECK(wait_for(&S.closed, 1) == 0, "no close after quit");
    CHECK(S.closed == 1 && S.why.code == FERR_CLOSED && strstr(S.why.msg, "hung up"),
          "close reason %d %s", S.why.code, S.why.msg);
out:
    if (S.conn) {
        qmp_conn_close(S.conn);
        wait_for(&S.closed, 1);
    }
    json_decref(S.ret);
    event_base_free(S.base);
}

static void t_sync(void)
{
    struct qmp_sync s;
    struct ferr e;
    int rc = -1;
    for (long t0 = now_ms(); now_ms() - t0 < WAIT_MS; usleep(20000)) {
        rc = qmp_sync_open(&s, sock, WAIT_MS, &e);
        if (rc == 0 || (rc != -ENOENT && rc != -ECONNREFUSED))
            break;
    }
    REQUIRE(rc == 0, "qmp_sync_open: %s", e.msg);
    json_t *ret = NULL;
    rc = qmp_sync_cmd(&s, "query-name", NULL, &ret, WAIT_MS, &e);
    CHECK(rc == 0 && json_is_object(ret), "query-name rc %d: %s", rc, e.msg);
    json_decref(ret);
    rc = qmp_sync_cmd(&s, "ferry-no-such-command", NULL, &ret, WAIT_MS, &e);
    CHECK(rc == FERR_PEER && strcmp(e.field, "CommandNotFound") == 0 && ret == NULL,
          "unknown rc %d class %s", rc, e.field);
    rc = qmp_sync_cmd(&s, "quit", NULL, NULL, WAIT_MS, &e);
    CHECK(rc == 0 || rc == FERR_CLOSED, "quit rc %d", rc);
    rc = qmp_sync_cmd(&s, "query-name", NULL, NULL, 2000, &e);
    CHECK(rc == FERR_CLOSED, "command after quit rc %d", rc);
    qmp_sync_close(&s);
}

static void t_no_qemu(void)
{
    /* make check installs QEMU (scripts/bootstrap.sh): its absence is a
     * broken setup, not a reason to pass over the case. */
    CHECK(0, "%s not installed (run scripts/bootstrap.sh)", QEMU);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (!have_qemu()) {
        test_run("qmp+qemu: real QEMU session", t_no_qemu);
        return test_done();
    }
    qemu_start();
    test_run("qmp+qemu: handshake, query-status, query-version 7.x, CommandNotFound as "
             "FERR_PEER, STOP/RESUME events, quit ends with peer hang-up",
             t_session);
    qemu_stop();
    qemu_start();
    test_run("qmp+qemu: qmp_sync open, command, QEMU error, quit, command after close refused",
             t_sync);
    qemu_stop();
    return test_done();
}
