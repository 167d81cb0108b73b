/* libFuzzer target for the policy engine: policy_load over any input must
 * succeed or fail cleanly (a failed load leaves nothing); a loaded policy
 * must decide every rule for a set of subjects and targets, and must decide
 * the same after its rules are written out as JSON and loaded again.
 *
 * Input: starting with '{' it is a whole policy file; otherwise the bytes
 * are the text of one rule "fuzz" (next to helper rules "a" and "b"), so
 * the fuzzer explores the rule grammar without JSON escaping. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const R1[] = {"admin"};
static const char *const R2[] = {"Member", "migration_canceller", "x"};
static const struct policy_subject SUBJ[] = {
    {"u0", "ops", R1, 1}, {"u1", "p1", R2, 3}, {"", "", NULL, 0}, {NULL, NULL, NULL, 0}};
static const struct policy_kv KV1[] = {
    {"project_id", "p1"}, {"user_id", "u1"}, {"plan", "drain-1"}, {"role", "x"}};
static const struct policy_kv KV2[] = {{"project_id", ""}, {"host", "h1"}, {"x", NULL}};
static const struct policy_target TGT[] = {{KV1, 4}, {KV2, 3}, {NULL, 0}};
#define NS (sizeof(SUBJ) / sizeof(SUBJ[0]))
#define NT (sizeof(TGT) / sizeof(TGT[0]))

/* Decides every rule for every subject and target into bits (one byte per
 * decision); aborts when a known rule is not found. */
static unsigned char *decide_all(const struct policy *p)
{
    size_t n = policy_count(p);
    unsigned char *out = calloc(n * NS * NT + 1, 1);
    if (!out)
        abort();
    for (size_t i = 0; i < n; i++) {
        const char *name, *text;
        bool dflt;
        if (policy_rule_at(p, i, &name, &text, &dflt) != 0)
            abort();
        for (size_t s = 0; s < NS; s++)
            for (size_t t = 0; t < NT; t++) {
                bool ok;
                if (policy_check(p, name, &SUBJ[s], &TGT[t], &ok) != 0)
                    abort();
                out[(i * NS + s) * NT + t] = ok;
            }
    }
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct policy p;
    struct ferr e;
    int rc;
    if (size > 0 && data[0] == '{') {
        rc = policy_load(&p, (const char *)data, size, &e);
    } else {
        json_t *o = json_object();
        json_t *r = json_stringn((const char *)data, size);
        if (!r) { /* not UTF-8: not a possible policy file */
            json_decref(o);
            return 0;
        }
        json_object_set_new(o, "fuzz", r);
        json_object_set_new(o, "a", json_string("role:x and not role:admin"));
        json_object_set_new(o, "b", json_string("rule:a or project_id:%(target.project_id)s"));
        char *s = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (!s)
            return 0;
        rc = policy_load(&p, s, strlen(s), &e);
        free(s);
    }
    if (rc != 0) {
        if (policy_count(&p) != 0 || e.code != rc || e.msg[0] == '\0')
            abort();
        policy_free(&p);
        return 0;
    }
    bool ok = true;
    if (policy_check(&p, "no such action \x01", &SUBJ[0], &TGT[0], &ok) != FERR_NOTFOUND || ok)
        abort();
    unsigned char *first = decide_all(&p);

    /* Round trip: the rules the file set, written out and loaded again,
     * give the same rules and the same decisions. */
    json_t *o = json_object();
    for (size_t i = 0; i < policy_count(&p); i++) {
        const char *name, *text;
        bool dflt;
        if (policy_rule_at(&p, i, &name, &text, &dflt) != 0)
            abort();
        if (!dflt)
            json_object_set_new(o, name, json_string(text));
    }
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    struct policy q;
    if (!s || policy_load(&q, s, strlen(s), &e) != 0 || policy_count(&q) != policy_count(&p))
        abort();
    free(s);
    unsigned char *second = decide_all(&q);
    if (memcmp(first, second, policy_count(&p) * NS * NT) != 0)
        abort();
    free(first);
    free(second);
    policy_free(&q);
    policy_free(&p);
    return 0;
}
