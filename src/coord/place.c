/* place — validation of migration requests and placement by capacity
 * (pure; see place.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord/place.h"
#include "util/jsonin.h"
#include "util/xalloc.h"

#define LIMIT_DOWNTIME_MAX_MS 60000u  /* the agent's cap on downtime_ms */
#define LIMIT_BW_MIN_BPS 65536u       /* smallest non-zero bandwidth cap, bytes/s */
#define LIMIT_BW_MAX_BPS (1ull << 40) /* largest bandwidth cap, bytes/s */
#define LIMIT_TIMEOUT_MAX_S 86400u    /* completion timeout cap, s */

static const char *const POLICY_KINDS[] = {"none", "nova", "schedule", "adaptive", NULL};

static int prefix_field(struct ferr *e, int rc, const char *prefix)
{
    if (e) {
        char f[FERR_FIELD_MAX];
        int w = snprintf(f, sizeof(f), "%s.%s", prefix, e->field);
        if (w > 0)
            memcpy(e->field, f, sizeof(f));
    }
    return rc;
}

static int bw_ok(const json_t *o, const char *key, struct ferr *e)
{
    uint64_t v = 0;
    int rc = jsonin_u64(o, key, 0, LIMIT_BW_MAX_BPS, false, &v, e);
    if (rc == 0 && v != 0 && v < LIMIT_BW_MIN_BPS)
        rc = ferr_set(e, FERR_INVAL, key, "%s must be 0 (no cap) or at least %u bytes/s", key,
                      LIMIT_BW_MIN_BPS);
    return rc;
}

static int limits_check(const json_t *l, struct ferr *e)
{
    static const char *const keys[] = {"downtime_ms", "max_bandwidth_bps", "auto_converge",
                                       "completion_timeout_s", "pacing", NULL};
    uint64_t v = 0;
    bool b = false;
    int rc;
    if (!json_is_object(l))
        return ferr_set(e, FERR_INVAL, "limits", "limits must be an object");
    if ((rc = jsonin_only_keys(l, keys, e)) != 0 ||
        (rc = jsonin_u64(l, "downtime_ms", 1, LIMIT_DOWNTIME_MAX_MS, false, &v, e)) != 0 ||
        (rc = bw_ok(l, "max_bandwidth_bps", e)) != 0 ||
        (rc = jsonin_bool(l, "auto_converge", false, &b, e)) != 0 ||
        (rc = jsonin_bool(l, "pacing", false, &b, e)) != 0 ||
        (rc = jsonin_u64(l, "completion_timeout_s", 0, LIMIT_TIMEOUT_MAX_S, false, &v, e)) != 0)
        return prefix_field(e, rc, "limits");
    return 0;
}

static int policy_obj_check(const json_t *p, struct ferr *e)
{
    if (!json_is_object(p))
        return ferr_set(e, FERR_INVAL, "policy", "policy must be an object");
    const json_t *k = json_object_get(p, "kind");
    if (k) {
        const char *s = json_string_value(k);
        bool ok = false;
        for (int i = 0; s && POLICY_KINDS[i]; i++)
            ok = ok || strcmp(s, POLICY_KINDS[i]) == 0;
        if (!ok)
            return ferr_set(e, FERR_INVAL, "policy.kind",
                            "policy.kind must be one of none, nova, schedule, adaptive");
    }
    char *text = json_dumps(p, JSON_COMPACT);
    size_t len = text ? strlen(text) : 0;
    free(text);
    if (len > PLACE_POLICY_MAX)
        return ferr_set(e, FERR_TOOBIG, "policy", "policy exceeds %u bytes", PLACE_POLICY_MAX);
    return 0;
}

int migreq_parse(const json_t *body, struct migreq *out, struct ferr *e)
{
    static const char *const keys[] = {"instance",        "destination",    "policy", "limits",
                                       "consent",         "vcpu_overcommit", "ram_overcommit",
                                       NULL};
    static const char *const ckeys[] = {"timeout_s", "timeout_action", NULL};
    char *inst = NULL, *dest = NULL;
    int rc;
    memset(out, 0, sizeof(*out));
    if (!json_is_object(body))
        return ferr_set(e, FERR_INVAL, "body", "the body must be a JSON object");
    if ((rc = jsonin_only_keys(body, keys, e)) != 0 ||
        (rc = jsonin_str(body, "instance", STORE_NAME_MAX, true, &inst, e)) != 0 ||
        (rc = jsonin_str(body, "destination", STORE_NAME_MAX, false, &dest, e)) != 0)
        goto out;
    if (!jsonin_name_ok(inst)) {
        rc = ferr_set(e, FERR_INVAL, "instance",
                      "instance must be 1..63 characters of [A-Za-z0-9_.-]");
        goto out;
    }
    if (dest && !jsonin_name_ok(dest)) {
        rc = ferr_set(e, FERR_INVAL, "destination",
                      "destination must be a host name of [A-Za-z0-9_.-]");
        goto out;
    }
    const json_t *p = json_object_get(body, "policy"), *l = json_object_get(body, "limits");
    const json_t *k = json_object_get(body, "consent");
    if (p && !json_is_null(p) && (rc = policy_obj_check(p, e)) != 0)
        goto out;
    if (l && !json_is_null(l) && (rc = limits_check(l, e)) != 0)
        goto out;
    uint64_t kt = 0;
    char *ka = NULL;
    if (k && !json_is_null(k)) {
        if (!json_is_object(k)) {
            rc = ferr_set(e, FERR_INVAL, "consent", "consent must be an object");
            goto out;
        }
        if ((rc = jsonin_only_keys(k, ckeys, e)) != 0 ||
            (rc = jsonin_u64(k, "timeout_s", 1, MIGREQ_CONSENT_TIMEOUT_MAX_S, false, &kt, e)) !=
                0 ||
            (rc = jsonin_str(k, "timeout_action", 15, false, &ka, e)) != 0) {
            free(ka);
            rc = prefix_field(e, rc, "consent");
            goto out;
        }
        if (ka && strcmp(ka, "wait") && strcmp(ka, "proceed") && strcmp(ka, "abort")) {
            free(ka);
            rc = ferr_set(e, FERR_INVAL, "consent.timeout_action",
                          "timeout_action must be wait, proceed or abort");
            goto out;
        }
    }
    out->consent_timeout_s = (uint32_t)kt;
    snprintf(out->consent_action, sizeof(out->consent_action), "%s", ka ? ka : "");
    free(ka);
    static const char *const ratios[] = {"vcpu_overcommit", "ram_overcommit"};
    double rv[2] = {0, 0}, rmax[2] = {PLACE_VCPU_OVERCOMMIT_MAX, PLACE_RAM_OVERCOMMIT_MAX};
    for (int i = 0; i < 2; i++) {
        const json_t *v = json_object_get(body, ratios[i]);
        if (!v)
            continue;
        rv[i] = json_number_value(v);
        if (!json_is_number(v) || !(rv[i] > 0) || rv[i] > rmax[i]) {
            rc = ferr_set(e, FERR_INVAL, ratios[i], "%s must be a number in (0, %g]", ratios[i],
                          rmax[i]);
            goto out;
        }
    }
    out->vcpu_overcommit = rv[0];
    out->ram_overcommit = rv[1];
    snprintf(out->instance, sizeof(out->instance), "%s", inst);
    snprintf(out->destination, sizeof(out->destination), "%s", dest ? dest : "");
    out->policy = p && !json_is_null(p) ? json_deep_copy(p) : NULL;
    out->limits = l && !json_is_null(l) ? json_deep_copy(l) : NULL;
out:
    free(inst);
    free(dest);
    return rc;
}

void migreq_free(struct migreq *r)
{
    json_decref(r->policy);
    json_decref(r->limits);
    r->policy = r->limits = NULL;
}

int migreq_limits_patch(const json_t *body, json_t **out, struct ferr *e)
{
    static const char *const keys[] = {"max_bandwidth_bps", "downtime_max_ms", NULL};
    uint64_t v = 0;
    int rc;
    *out = NULL;
    if (!json_is_object(body))
        return ferr_set(e, FERR_INVAL, "body", "the body must be a JSON object");
    if ((rc = jsonin_only_keys(body, keys, e)) != 0 ||
        (rc = bw_ok(body, "max_bandwidth_bps", e)) != 0 ||
        (rc = jsonin_u64(body, "downtime_max_ms", 1, LIMIT_DOWNTIME_MAX_MS, false, &v, e)) != 0)
        return rc;
    if (json_object_size(body) == 0)
        return ferr_set(e, FERR_INVAL, "body", "give max_bandwidth_bps and/or downtime_max_ms");
    *out = json_deep_copy(body);
    return 0;
}

bool place_state_terminal(const char *state)
{
    return strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0 ||
           strcmp(state, "cancelled") == 0;
}

/* Sorted index arrays for place_account: names looked up by binary search,
 * so accounting is O((hosts + instances + migrations) log n), not the
 * product (a 1,000-host fleet has ~10,000 instances; the quadratic walk
 * cost ~10 M string compares per migration request). */
struct name_ix {
    const char *name; /* borrowed */
    size_t i;         /* index in the indexed array */
};

static int cmp_name_ix(const void *a, const void *b)
{
    const struct name_ix *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->i > y->i) - (x->i < y->i);
}

/* The first entry of ix[0..n) named name, or n. */
static size_t ix_find(const struct name_ix *ix, size_t n, const char *name)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(ix[mid].name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && strcmp(ix[lo].name, name) == 0 ? lo : n;
}

void place_account(struct place_host *hosts, size_t nh, const struct store_instance *inst,
                   size_t ni, const struct store_migration *migs, size_t nm)
{
    struct name_ix *hx = xcalloc(nh ? nh : 1, sizeof(*hx)), *ix = xcalloc(ni ? ni : 1, sizeof(*ix));
    for (size_t h = 0; h < nh; h++) {
        hosts[h].used_ram_mib = 0;
        hosts[h].used_vcpus = 0;
        hx[h] = (struct name_ix){hosts[h].name, h};
    }
    for (size_t i = 0; i < ni; i++)
        ix[i] = (struct name_ix){inst[i].name, i};
    qsort(hx, nh, sizeof(*hx), cmp_name_ix);
    qsort(ix, ni, sizeof(*ix), cmp_name_ix);
    /* every instance on its host (each host of that name, as before) */
    for (size_t i = 0; i < ni; i++)
        for (size_t k = ix_find(hx, nh, inst[i].host); k < nh && !strcmp(hx[k].name, inst[i].host);
             k++) {
            hosts[hx[k].i].used_ram_mib += inst[i].memory_mib;
            hosts[hx[k].i].used_vcpus += inst[i].vcpus;
        }
    /* an active migration's instance on its destination too, unless it is
       registered there already; the first instance of that name counts */
    for (size_t m = 0; m < nm; m++) {
        if (place_state_terminal(migs[m].state))
            continue;
        size_t f = ix_find(ix, ni, migs[m].instance);
        if (f == ni)
            continue; /* unknown */
        const struct store_instance *in = &inst[ix[f].i];
        if (strcmp(in->host, migs[m].destination) == 0)
            continue; /* counted already (registered there) */
        for (size_t k = ix_find(hx, nh, migs[m].destination);
             k < nh && !strcmp(hx[k].name, migs[m].destination); k++) {
            hosts[hx[k].i].used_ram_mib += in->memory_mib;
            hosts[hx[k].i].used_vcpus += in->vcpus;
        }
    }
    free(hx);
    free(ix);
}

bool place_fits(const struct place_host *h, const char *source, uint64_t need_ram_mib,
                uint32_t need_vcpus, const char **why)
{
    const char *w = NULL;
    if (!h->up)
        w = "host is down";
    else if (h->cordoned)
        w = "host is cordoned (by an operator, or drained by a maintenance plan)";
    else if (source && strcmp(h->name, source) == 0)
        w = "host is the source";
    else if (h->used_ram_mib > h->ram_mib || h->ram_mib - h->used_ram_mib < need_ram_mib)
        w = "not enough free RAM";
    else if (h->used_vcpus > h->vcpus || h->vcpus - h->used_vcpus < need_vcpus)
        w = "not enough free vCPUs";
    if (why)
        *why = w;
    return w == NULL;
}

int place_choose(const struct place_host *hosts, size_t n, const char *source,
                 uint64_t need_ram_mib, uint32_t need_vcpus, size_t *chosen, struct ferr *e)
{
    size_t best = n;
    uint64_t best_free = 0;
    for (size_t i = 0; i < n; i++) {
        if (!place_fits(&hosts[i], source, need_ram_mib, need_vcpus, NULL))
            continue;
        uint64_t free_after = hosts[i].ram_mib - hosts[i].used_ram_mib - need_ram_mib;
        if (best == n || free_after > best_free ||
            (free_after == best_free && strcmp(hosts[i].name, hosts[best].name) < 0)) {
            best = i;
            best_free = free_after;
        }
    }
    if (best == n)
        return ferr_set(e, FERR_STATE, "destination",
                        "no host has room: %llu MiB and %u vCPUs needed, source and down hosts "
                        "excluded",
                        (unsigned long long)need_ram_mib, need_vcpus);
    *chosen = best;
    return 0;
}

/* ---- labels ----------------------------------------------------------------- */

static bool label_chars_ok(const char *s, size_t max, bool key)
{
    size_t n = strnlen(s, max + 1);
    if (n > max || (key && n == 0))
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (i == 0 && key && !alnum)
            return false;
        if (!alnum && ch != '_' && ch != '.' && ch != '-' && !(key && ch == '/'))
            return false;
    }
    return true;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int place_labels_parse(const json_t *obj, char *out, size_t n, struct ferr *e)
{
    const char *keys[PLACE_LABELS_MAX];
    size_t k = 0, used = 0;
    const char *key;
    json_t *val;
    if (n)
        out[0] = '\0';
    if (!obj || json_is_null(obj))
        return 0;
    if (!json_is_object(obj))
        return ferr_set(e, FERR_INVAL, "labels", "labels must be an object of strings");
    if (json_object_size(obj) > PLACE_LABELS_MAX)
        return ferr_set(e, FERR_TOOBIG, "labels", "more than %d labels", PLACE_LABELS_MAX);
    json_object_foreach((json_t *)obj, key, val)
    {
        if (!label_chars_ok(key, PLACE_LABEL_KEY_MAX, true))
            return ferr_set(e, FERR_INVAL, "labels",
                            "a label key is 1..%d characters of [A-Za-z0-9_./-] starting with a "
                            "letter or digit",
                            PLACE_LABEL_KEY_MAX);
        if (!json_is_string(val) || !label_chars_ok(json_string_value(val), PLACE_LABEL_VAL_MAX,
                                                    false)) {
            ferr_set(e, FERR_INVAL, "labels", "a label value is 0..%d characters of [A-Za-z0-9_.-]",
                     PLACE_LABEL_VAL_MAX);
            snprintf(e->field, sizeof(e->field), "labels.%s", key);
            return FERR_INVAL;
        }
        keys[k++] = key;
    }
    qsort(keys, k, sizeof(keys[0]), cmp_str);
    for (size_t i = 0; i < k; i++) {
        int w = snprintf(out + used, n - used, "%s%s=%s", i ? "," : "", keys[i],
                         json_string_value(json_object_get(obj, keys[i])));
        if (w < 0 || (size_t)w >= n - used) {
            out[0] = '\0';
            return ferr_set(e, FERR_TOOBIG, "labels", "labels exceed %zu bytes", n - 1);
        }
        used += (size_t)w;
    }
    return 0;
}

json_t *place_labels_json(const char *text)
{
    json_t *o = json_object();
    const char *p = text ? text : "";
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (eq && eq > p && (size_t)(eq - p) <= PLACE_LABEL_KEY_MAX &&
            len - (size_t)(eq - p) - 1 <= PLACE_LABEL_VAL_MAX) {
            char k[PLACE_LABEL_KEY_MAX + 1], v[PLACE_LABEL_VAL_MAX + 1];
            snprintf(k, sizeof(k), "%.*s", (int)(eq - p), p);
            snprintf(v, sizeof(v), "%.*s", (int)(len - (size_t)(eq - p) - 1), eq + 1);
            json_object_set_new(o, k, json_string(v));
        }
        p += len + (end ? 1 : 0);
    }
    return o;
}

int place_selector_parse(const char *sel, const char *field, char *key, char *value,
                         struct ferr *e)
{
    const char *eq = sel ? strchr(sel, '=') : NULL;
    key[0] = value[0] = '\0';
    if (!eq || eq == sel || (size_t)(eq - sel) > PLACE_LABEL_KEY_MAX ||
        strlen(eq + 1) > PLACE_LABEL_VAL_MAX)
        return ferr_set(e, FERR_INVAL, field, "%s must be KEY=VALUE (or \"all\")", field);
    snprintf(key, PLACE_LABEL_KEY_MAX + 1, "%.*s", (int)(eq - sel), sel);
    snprintf(value, PLACE_LABEL_VAL_MAX + 1, "%s", eq + 1);
    if (!label_chars_ok(key, PLACE_LABEL_KEY_MAX, true) ||
        !label_chars_ok(value, PLACE_LABEL_VAL_MAX, false)) {
        key[0] = value[0] = '\0';
        return ferr_set(e, FERR_INVAL, field,
                        "%s: a key of [A-Za-z0-9_./-], a value of [A-Za-z0-9_.-]", field);
    }
    return 0;
}

bool place_labels_match(const char *labels, const char *key, const char *value)
{
    size_t kl = strlen(key), vl = strlen(value);
    const char *p = labels ? labels : "";
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == kl + 1 + vl && strncmp(p, key, kl) == 0 && p[kl] == '=' &&
            strncmp(p + kl + 1, value, vl) == 0)
            return true;
        p += len + (end ? 1 : 0);
    }
    return false;
}
