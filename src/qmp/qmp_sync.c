#include "qmp/qmp_sync.h"

#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

struct sync_wait {
    int done;      /* the reply (or failure) arrived */
    struct ferr e; /* its error, code 0 on success */
    json_t *ret;   /* new reference on success */
};

static void sync_ready(struct qmp_conn *c, void *arg)
{
    (void)c;
    struct qmp_sync *s = arg;
    s->ready = 1;
}

static void sync_closed(struct qmp_conn *c, const struct ferr *why, void *arg)
{
    struct qmp_sync *s = arg;
    s->closed = 1;
    s->why = *why;
    free(c);
    s->conn = NULL;
}

static void sync_reply(struct qmp_conn *c, const struct ferr *err, json_t *ret, void *arg)
{
    (void)c;
    struct sync_wait *w = arg;
    w->done = 1;
    if (err)
        w->e = *err;
    else
        w->ret = json_incref(ret);
}

/* Runs the loop until *flag is set or the close completed. */
static void run_until(struct qmp_sync *s, const int *flag)
{
    while (!*flag && !s->closed)
        if (event_base_loop(s->base, EVLOOP_ONCE) != 0)
            break;
}

int qmp_sync_open(struct qmp_sync *s, const char *path, unsigned timeout_ms, struct ferr *err)
{
    memset(s, 0, sizeof(*s));
    s->base = event_base_new();
    if (!s->base)
        abort();
    s->conn = xcalloc(1, sizeof(*s->conn));
    struct qmp_conn_opts o = {
        .handshake_ms = timeout_ms, .on_ready = sync_ready, .on_close = sync_closed, .arg = s};
    int rc = qmp_conn_connect(s->conn, s->base, path, &o, err);
    if (rc != 0) {
        free(s->conn);
        event_base_free(s->base);
        memset(s, 0, sizeof(*s));
        return rc;
    }
    run_until(s, &s->ready);
    if (!s->ready) {
        rc = ferr_set(err, s->why.code ? s->why.code : FERR_CLOSED, "", "%s", s->why.msg);
        qmp_sync_close(s);
        return rc;
    }
    return 0;
}

int qmp_sync_cmd(struct qmp_sync *s, const char *name, json_t *args, json_t **ret,
                 unsigned timeout_ms, struct ferr *err)
{
    if (ret)
        *ret = NULL;
    if (!s->conn) {
        json_decref(args);
        return ferr_set(err, FERR_CLOSED, "", "QMP connection is closed: %s", s->why.msg);
    }
    if (timeout_ms == 0) {
        json_decref(args);
        return ferr_set(err, FERR_INVAL, "timeout_ms", "must be > 0");
    }
    struct sync_wait *w = xcalloc(1, sizeof(*w));
    int rc = qmp_conn_cmd(s->conn, name, args, sync_reply, w, timeout_ms);
    if (rc != 0) {
        free(w);
        return ferr_set(err, rc, "", "QMP command %s refused: %s", name, ferr_code_name(rc));
    }
    run_until(s, &w->done); /* on close the deferred close fires sync_reply first */
    if (w->e.code != 0) {
        rc = w->e.code;
        if (err)
            *err = w->e;
    } else if (ret) {
        *ret = w->ret;
    } else {
        json_decref(w->ret);
    }
    free(w);
    return rc;
}

void qmp_sync_close(struct qmp_sync *s)
{
    if (!s->base)
        return;
    if (s->conn) {
        qmp_conn_close(s->conn);
        run_until(s, &s->closed);
    }
    event_base_free(s->base);
    s->base = NULL;
}
