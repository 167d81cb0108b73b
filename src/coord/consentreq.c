/* consentreq — the pure parts of consent handling (see consent.h): step
 * names, timeout actions, the grant/refuse body and the list filters. No
 * store, no clock: the API (consent.c) and the fuzz target
 * (tests/fuzz/fuzz_coord_req.c) share them. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord/consent.h"
#include "util/jsonin.h"

static const char *const STEPS[] = {"bandwidth", "throttle", "postcopy", "pause", "io_throttle", NULL};
static const char *const STATES[] = {"pending", "granted", "refused", "expired", NULL};

static bool in_set(const char *s, const char *const *set)
{
    for (size_t i = 0; s && set[i]; i++)
        if (strcmp(s, set[i]) == 0)
            return true;
    return false;
}

bool consent_step_ok(const char *step)
{
    return in_set(step, STEPS);
}

int consent_timeout_action_parse(const char *s, enum consent_timeout_action *out)
{
    static const char *const names[] = {"wait", "proceed", "abort"};
    for (int i = 0; s && i < 3; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (enum consent_timeout_action)i;
            return 0;
        }
    return -1;
}

static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

int consent_decision_parse(const json_t *body, struct consent_decision *out, struct ferr *e)
{
    static const char *const keys[] = {"reason", NULL};
    memset(out, 0, sizeof(*out));
    if (!body)
        return 0;
    if (!json_is_object(body))
        return ferr_set(e, FERR_INVAL, "body", "the body must be a JSON object");
    char *reason = NULL;
    int rc = jsonin_only_keys(body, keys, e);
    if (rc == 0)
        rc = jsonin_str(body, "reason", CONSENT_REASON_MAX, false, &reason, e);
    if (rc == 0 && reason && !printable(reason))
        rc = ferr_set(e, FERR_INVAL, "reason", "reason must not hold control characters");
    if (rc == 0 && reason)
        snprintf(out->reason, sizeof(out->reason), "%s", reason);
    free(reason);
    return rc;
}

int consent_filter_check(const char *state, const char *migration, struct ferr *e)
{
    if (state && !in_set(state, STATES))
        return ferr_set(e, FERR_INVAL, "state",
                        "state must be pending, granted, refused or expired");
    if (migration &&
        (!migration[0] || strlen(migration) > STORE_IDENT_MAX || !printable(migration)))
        return ferr_set(e, FERR_INVAL, "migration", "migration must be a migration id");
    return 0;
}

