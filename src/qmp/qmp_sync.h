/* qmp_sync — a blocking QMP convenience for tests, benchmarks and one-shot
 * tools: it runs a private event_base until a reply arrives or a deadline
 * passes. Daemons use qmp_conn on their own loop instead. Events received
 * while waiting are dropped. The process must ignore SIGPIPE (see
 * qmp_conn.h). */
#ifndef FERRY_QMP_SYNC_H
#define FERRY_QMP_SYNC_H
#include <jansson.h>

#include "qmp/qmp_conn.h"

struct qmp_sync {
    struct event_base *base; /* owned, private to this handle */
    struct qmp_conn *conn;   /* owned; NULL once closed */
    int ready;               /* handshake finished */
    int closed;              /* on_close fired */
    struct ferr why;         /* why the connection ended, when closed */
};

/* Connects to the QMP socket at path and completes the handshake within
 * timeout_ms (ms; 0 = QMP_CONN_HANDSHAKE_MS). Returns 0 with s ready; or a
 * negative code with err filled (-errno from connect, FERR_TIMEOUT,
 * FERR_PEER, FERR_CLOSED) and s released (no close needed). */
int qmp_sync_open(struct qmp_sync *s, const char *path, unsigned timeout_ms, struct ferr *err)
    __attribute__((warn_unused_result));

/* Runs command name with args (a JSON object or NULL; ownership taken in
 * every case) and waits up to timeout_ms (ms, > 0) for the reply. Returns 0
 * and stores the "return" value in *ret (new reference: caller
 * json_decrefs; ret may be NULL to drop it); or a negative code with err
 * filled: FERR_PEER (QEMU's error: err->field = class), FERR_TIMEOUT,
 * FERR_CLOSED, FERR_STATE. The handle stays usable after FERR_PEER and
 * FERR_TIMEOUT. */
int qmp_sync_cmd(struct qmp_sync *s, const char *name, json_t *args, json_t **ret,
                 unsigned timeout_ms, struct ferr *err) __attribute__((warn_unused_result));

/* Closes the connection, waits for its deferred close and frees
 * everything s holds. Safe on a handle that the peer already closed. */
void qmp_sync_close(struct qmp_sync *s);

#endif
