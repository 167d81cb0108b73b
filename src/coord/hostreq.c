/* hostreq — see hostreq.h. */
#include "coord/hostreq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord/place.h"
#include "util/jsonin.h"
#include "util/xalloc.h"

static const char *const REGISTER_KEYS[] = {"name",      "agent_url", "ram_mib", "vcpus",
                                            "instances", "labels",    NULL};
static const char *const INSTANCE_KEYS[] = {"name", "project_id", "memory_mib", "vcpus", NULL};

/* Rewrites e->field as "instances[i].FIELD" (truncated to the field cap). */
static void prefix_field(struct ferr *e, size_t i)
{
    char f[FERR_FIELD_MAX * 2];
    snprintf(f, sizeof(f), "instances[%zu].%s", i, e->field);
    size_t fl = strnlen(f, sizeof(e->field) - 1);
    memcpy(e->field, f, fl);
    e->field[fl] = '\0';
}

static int has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

/* Parses instances[i] (borrowed) into *out. */
static int parse_instance(const json_t *o, size_t i, struct store_instance *out, struct ferr *e)
{
    char *iname = NULL, *proj = NULL;
    uint64_t mem = 0, vc = 1;
    int rc;
    if (!json_is_object(o))
        return ferr_set(e, FERR_INVAL, "instances", "instances[%zu] must be an object", i);
    if ((rc = jsonin_only_keys(o, INSTANCE_KEYS, e)) != 0 ||
        (rc = jsonin_str(o, "name", STORE_NAME_MAX, true, &iname, e)) != 0 ||
        (rc = jsonin_str(o, "project_id", STORE_IDENT_MAX, true, &proj, e)) != 0 ||
        (rc = jsonin_u64(o, "memory_mib", 1, HOSTREQ_RAM_MIB_MAX, true, &mem, e)) != 0 ||
        (rc = jsonin_u64(o, "vcpus", 1, HOSTREQ_VCPUS_MAX, false, &vc, e)) != 0) {
        prefix_field(e, i);
        goto out;
    }
    if (!jsonin_name_ok(iname)) {
        rc = ferr_set(e, FERR_INVAL, "name",
                      "name must be 1..63 characters of [A-Za-z0-9_.-], not starting with . or -");
        prefix_field(e, i);
        goto out;
    }
    if (proj[0] == '\0' || has_ctl(proj)) {
        rc = ferr_set(e, FERR_INVAL, "project_id",
                      "project_id must be 1..64 bytes without control characters");
        prefix_field(e, i);
        goto out;
    }
    memset(out, 0, sizeof(*out));
    snprintf(out->name, sizeof(out->name), "%s", iname);
    snprintf(out->project_id, sizeof(out->project_id), "%s", proj);
    out->memory_mib = mem;
    out->vcpus = (uint32_t)vc;
out:
    free(iname);
    free(proj);
    return rc;
}

int hostreq_register_parse(const json_t *body, struct store_host *h, struct store_instance **inst,
                           size_t *n, struct ferr *e)
{
    char *name = NULL, *url = NULL;
    uint64_t ram = 0, vcpus = 0;
    int rc;
    *inst = NULL;
    *n = 0;
    if (!json_is_object(body))
        return ferr_set(e, FERR_INVAL, "body", "the body must be a JSON object");
    if ((rc = jsonin_only_keys(body, REGISTER_KEYS, e)) != 0 ||
        (rc = jsonin_str(body, "name", STORE_NAME_MAX, true, &name, e)) != 0 ||
        (rc = jsonin_str(body, "agent_url", STORE_URL_MAX, true, &url, e)) != 0 ||
        (rc = jsonin_u64(body, "ram_mib", 1, HOSTREQ_RAM_MIB_MAX, true, &ram, e)) != 0 ||
        (rc = jsonin_u64(body, "vcpus", 1, HOSTREQ_VCPUS_MAX, true, &vcpus, e)) != 0)
        goto out;
    if (!jsonin_name_ok(name)) {
        rc = ferr_set(e, FERR_INVAL, "name", "name must be 1..63 characters of [A-Za-z0-9_.-]");
        goto out;
    }
    if ((strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) || has_ctl(url)) {
        rc = ferr_set(e, FERR_INVAL, "agent_url",
                      "agent_url must be an http(s):// URL without control characters");
        goto out;
    }
    memset(h, 0, sizeof(*h));
    snprintf(h->name, sizeof(h->name), "%s", name);
    snprintf(h->url, sizeof(h->url), "%s", url);
    h->ram_mib = ram;
    h->vcpus = (uint32_t)vcpus;
    if ((rc = place_labels_parse(json_object_get(body, "labels"), h->labels, sizeof(h->labels),
                                 e)) != 0)
        goto out;
    const json_t *arr = json_object_get(body, "instances");
    if (arr && !json_is_array(arr)) {
        rc = ferr_set(e, FERR_INVAL, "instances", "instances must be an array");
        goto out;
    }
    size_t cnt = arr ? json_array_size(arr) : 0;
    if (cnt > HOSTREQ_MAX_INSTANCES) {
        rc = ferr_set(e, FERR_TOOBIG, "instances", "more than %d instances",
                      HOSTREQ_MAX_INSTANCES);
        goto out;
    }
    *inst = xcalloc(cnt ? cnt : 1, sizeof(**inst));
    for (size_t i = 0; i < cnt; i++) {
        if ((rc = parse_instance(json_array_get(arr, i), i, &(*inst)[i], e)) != 0)
            goto out;
        for (size_t j = 0; j < i; j++)
            if (strcmp((*inst)[i].name, (*inst)[j].name) == 0) {
                rc = ferr_set(e, FERR_INVAL, "name", "instance %s is listed twice",
                              (*inst)[i].name);
                prefix_field(e, i);
                goto out;
            }
    }
    *n = cnt;
out:
    free(name);
    free(url);
    if (rc) {
        free(*inst);
        *inst = NULL;
        *n = 0;
    }
    return rc;
}

int hostreq_heartbeat_check(const char *name, const json_t *body, struct ferr *e)
{
    static const char *const keys[] = {NULL};
    if (!name || strnlen(name, STORE_NAME_MAX + 1) > STORE_NAME_MAX || !jsonin_name_ok(name))
        return ferr_set(e, FERR_INVAL, "name", "host name must be of [A-Za-z0-9_.-]");
    if (!body)
        return 0;
    if (!json_is_object(body))
        return ferr_set(e, FERR_INVAL, "body", "the body must be a JSON object");
    return jsonin_only_keys(body, keys, e);
}
