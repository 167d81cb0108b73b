/* place — validation of migration requests and placement by capacity
 * (pure; see place.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord/place.h"
#include "util/jsonin.h"

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
                                       "completion_timeout_s", NULL};
    uint64_t v = 0;
    bool b = false;
    int rc;
    if (!json_is_object(l))
        return ferr_set(e, FERR_INVAL, "limits", "limits must be an object");
    if ((rc = jsonin_only_keys(l, keys, e)) != 0 ||
        (rc = jsonin_u64(l, "downtime_ms", 1, LIMIT_DOWNTIME_MAX_MS, false, &v, e)) != 0 ||
        (rc = bw_ok(l, "max_bandwidth_bps", e)) != 0 ||
        (rc = jsonin_bool(l, "auto_converge", false, &b, e)) != 0 ||
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
    static const char *const keys[] = {"instance", "destination", "policy", "limits", "consent",
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

static const struct store_instance *find_inst(const struct store_instance *inst, size_t ni,
                                              const char *name)
{
    for (size_t i = 0; i < ni; i++)
        if (strcmp(inst[i].name, name) == 0)
            return &inst[i];
    return NULL;
}

void place_account(struct place_host *hosts, size_t nh, const struct store_instance *inst,
                   size_t ni, const struct store_migration *migs, size_t nm)
{
    for (size_t h = 0; h < nh; h++) {
        hosts[h].used_ram_mib = 0;
        hosts[h].used_vcpus = 0;
        for (size_t i = 0; i < ni; i++) {
            if (strcmp(inst[i].host, hosts[h].name) != 0)
                continue;
            hosts[h].used_ram_mib += inst[i].memory_mib;
            hosts[h].used_vcpus += inst[i].vcpus;
        }
        for (size_t m = 0; m < nm; m++) {
            if (place_state_terminal(migs[m].state) ||
                strcmp(migs[m].destination, hosts[h].name) != 0)
                continue;
            const struct store_instance *in = find_inst(inst, ni, migs[m].instance);
            if (!in || strcmp(in->host, hosts[h].name) == 0)
                continue; /* unknown, or counted already (registered there) */
            hosts[h].used_ram_mib += in->memory_mib;
            hosts[h].used_vcpus += in->vcpus;
        }
    }
}

bool place_fits(const struct place_host *h, const char *source, uint64_t need_ram_mib,
                uint32_t need_vcpus, const char **why)
{
    const char *w = NULL;
    if (!h->up)
        w = "host is down";
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
