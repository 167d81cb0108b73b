#include "util/ferr.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int ferr_set(struct ferr *e, int code, const char *field, const char *fmt, ...)
{
    if (!e)
        return code;
    e->code = code;
    snprintf(e->field, sizeof(e->field), "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    return code;
}

void ferr_clear(struct ferr *e)
{
    if (e)
        memset(e, 0, sizeof(*e));
}

const char *ferr_code_name(int code)
{
    switch (code) {
    case 0: return "ok";
    case FERR_INVAL: return "invalid";
    case FERR_TOOBIG: return "too_big";
    case FERR_NOTFOUND: return "not_found";
    case FERR_STATE: return "conflict";
    case FERR_PEER: return "peer_failed";
    case FERR_TIMEOUT: return "timeout";
    case FERR_CLOSED: return "closed";
    case FERR_EXISTS: return "exists";
    default: return "internal";
    }
}
