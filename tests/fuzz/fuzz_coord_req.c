/* Fuzz target: ferryd's request validation — capped JSON parsing with the
 * depth pre-scan, then the migration create body (migreq_parse), the
 * limits PATCH body (migreq_limits_patch), a consent decision body
 * (consent_decision_parse) and the consent list filters
 * (consent_filter_check), host labels (place_labels_parse) and a plan's
 * label selector (place_selector_parse) over the same object. Any crash, leak or
 * sanitizer report is a bug; rejections are expected but must say why, and
 * whatever is accepted must be safe to use and accepted again.
 * fuzz-srcs: src/coord/place.c src/coord/consentreq.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "coord/consent.h"
#include "coord/place.h"
#include "util/jsonin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must_explain(const struct ferr *e)
{
    if (e->msg[0] == '\0')
        abort(); /* every rejection must say why */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *obj = NULL;
    struct ferr e = {0};
    if (jsonin_parse_object((const char *)data, size, JSONIN_MAX_BYTES, JSONIN_MAX_DEPTH, &obj,
                            &e) != 0) {
        must_explain(&e);
        return 0;
    }
    struct migreq r;
    memset(&e, 0, sizeof(e));
    if (migreq_parse(obj, &r, &e) == 0) {
        if (!jsonin_name_ok(r.instance) || (r.destination[0] && !jsonin_name_ok(r.destination)))
            abort(); /* accepted names are always usable as store keys */
        json_t *back = json_pack("{s:s}", "instance", r.instance);
        if (r.destination[0])
            json_object_set_new(back, "destination", json_string(r.destination));
        if (r.policy)
            json_object_set(back, "policy", r.policy);
        if (r.limits)
            json_object_set(back, "limits", r.limits);
        if (r.consent_timeout_s > MIGREQ_CONSENT_TIMEOUT_MAX_S)
            abort();
        if (r.consent_action[0] && strcmp(r.consent_action, "wait") &&
            strcmp(r.consent_action, "proceed") && strcmp(r.consent_action, "abort"))
            abort(); /* only the three actions are ever kept */
        json_t *k = json_object();
        if (r.consent_timeout_s)
            json_object_set_new(k, "timeout_s", json_integer(r.consent_timeout_s));
        if (r.consent_action[0])
            json_object_set_new(k, "timeout_action", json_string(r.consent_action));
        json_object_set_new(back, "consent", k);
        if (r.vcpu_overcommit > 0)
            json_object_set_new(back, "vcpu_overcommit", json_real(r.vcpu_overcommit));
        if (r.ram_overcommit > 0)
            json_object_set_new(back, "ram_overcommit", json_real(r.ram_overcommit));
        struct migreq r2;
        if (migreq_parse(back, &r2, &e) != 0 || r2.consent_timeout_s != r.consent_timeout_s ||
            strcmp(r2.consent_action, r.consent_action) != 0)
            abort(); /* what we keep we must accept again */
        migreq_free(&r2);
        json_decref(back);
        migreq_free(&r);
    } else {
        must_explain(&e);
    }
    json_t *lim = NULL;
    memset(&e, 0, sizeof(e));
    if (migreq_limits_patch(obj, &lim, &e) == 0) {
        if (!json_is_object(lim) || json_object_size(lim) == 0 || json_object_size(lim) > 2)
            abort();
        json_decref(lim);
    } else {
        must_explain(&e);
    }
    struct consent_decision d;
    memset(&e, 0, sizeof(e));
    if (consent_decision_parse(obj, &d, &e) == 0) {
        size_t n = strnlen(d.reason, sizeof(d.reason));
        if (n >= sizeof(d.reason))
            abort();
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)d.reason[i] < 0x20 || d.reason[i] == 0x7f)
                abort(); /* a recorded reason never carries control characters */
    } else {
        must_explain(&e);
    }
    /* host labels (the registration body's "labels"): accepted text is
     * canonical and survives the round trip through JSON; label selectors
     * ("label" of a plan) accept only what matches themselves. */
    char labels[STORE_LABELS_MAX + 1];
    memset(&e, 0, sizeof(e));
    if (place_labels_parse(json_object_get(obj, "labels"), labels, sizeof(labels), &e) == 0) {
        json_t *lo = place_labels_json(labels);
        char again[STORE_LABELS_MAX + 1];
        if (place_labels_parse(lo, again, sizeof(again), &e) != 0 || strcmp(again, labels) != 0)
            abort();
        json_decref(lo);
    } else {
        must_explain(&e);
        if (labels[0])
            abort(); /* a rejection leaves nothing behind */
    }
    const char *sel = json_string_value(json_object_get(obj, "label"));
    char lk[PLACE_LABEL_KEY_MAX + 1], lv[PLACE_LABEL_VAL_MAX + 1];
    memset(&e, 0, sizeof(e));
    if (sel && place_selector_parse(sel, "label", lk, lv, &e) == 0) {
        char one[PLACE_LABEL_KEY_MAX + PLACE_LABEL_VAL_MAX + 2];
        snprintf(one, sizeof(one), "%s=%s", lk, lv);
        if (!place_labels_match(one, lk, lv))
            abort();
    } else if (sel) {
        must_explain(&e);
    }
    const char *st = json_string_value(json_object_get(obj, "state"));
    const char *mig = json_string_value(json_object_get(obj, "migration"));
    memset(&e, 0, sizeof(e));
    if (consent_filter_check(st, mig, &e) != 0)
        must_explain(&e);
    const char *step = json_string_value(json_object_get(obj, "step"));
    if (step && consent_step_ok(step) && strlen(step) > 9)
        abort();
    json_decref(obj);
    return 0;
}
