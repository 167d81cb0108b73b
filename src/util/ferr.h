/* ferr — an error code with its human-readable detail. Functions return an
 * int (0 or negative) and, where the caller wants to know why, fill a
 * struct ferr that travels up to the API response. */
#ifndef FERRY_UTIL_FERR_H
#define FERRY_UTIL_FERR_H
#include <stddef.h>

#define FERR_MSG_MAX 256
#define FERR_FIELD_MAX 64

/* Project error codes (negative, below the -errno range). */
enum {
    FERR_INVAL = -1001,    /* bad input: field names what */
    FERR_TOOBIG = -1002,   /* input over a hard cap */
    FERR_NOTFOUND = -1003, /* unknown object */
    FERR_STATE = -1004,    /* not legal in the object's current state */
    FERR_PEER = -1005,     /* a peer (QEMU, agent) failed or answered garbage */
    FERR_TIMEOUT = -1006,  /* a peer did not answer in time */
    FERR_CLOSED = -1007,   /* the connection is closed */
    FERR_EXISTS = -1008,   /* object exists already */
};

struct ferr {
    int code;                   /* 0, FERR_* or -errno */
    char field[FERR_FIELD_MAX]; /* offending input field, "" when none */
    char msg[FERR_MSG_MAX];     /* one sentence for people */
};

/* Fills e (when e is non-NULL) and returns code, so callers can write
 * `return ferr_set(e, FERR_INVAL, "memory_mib", "must be 64..65536");`. */
int ferr_set(struct ferr *e, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Clears e. */
void ferr_clear(struct ferr *e);
/* Returns a short stable name for code ("invalid", "too_big", ...). */
const char *ferr_code_name(int code);

#endif
