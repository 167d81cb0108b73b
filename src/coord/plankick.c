/* plankick — which draining hosts a migration's end concerns (see plankick.h). */
#include "coord/plankick.h"

#include <string.h>

static bool named(const struct plan_kick *k, const char *host)
{
    for (size_t i = 0; host && i < k->n; i++)
        if (strcmp(k->host[i], host) == 0)
            return true;
    return false;
}

void plankick_add(struct plan_kick *k, const char *host)
{
    if (!host || !host[0] || strlen(host) > STORE_NAME_MAX || named(k, host))
        return;
    if (k->n == PLANKICK_HOSTS_MAX) {
        k->overflow = true;
        return;
    }
    memcpy(k->host[k->n], host, strlen(host) + 1);
    k->n++;
}

bool plankick_empty(const struct plan_kick *k)
{
    return k->n == 0 && !k->overflow;
}

void plankick_clear(struct plan_kick *k)
{
    k->n = 0;
    k->overflow = false;
}

bool plankick_wants(const struct plan_kick *k, const char *host, const json_t *moves)
{
    if (k->overflow || named(k, host))
        return true;
    const char *inst;
    const json_t *dst;
    json_object_foreach((json_t *)moves, inst, dst)
    {
        if (named(k, json_string_value(dst)))
            return true;
    }
    return false;
}
