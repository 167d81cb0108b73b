/* Fuzz target: the agents' inventory requests to ferryd — capped JSON
 * parsing with the depth pre-scan, then the registration body
 * (hostreq_register_parse) and the heartbeat check
 * (hostreq_heartbeat_check, with the input's "name" as the path segment).
 * Any crash, leak or sanitizer report is a bug; a rejection must say
 * why; whatever is accepted must pass the store's own
 * rules (valid names, each instance once, sizes in range) and be accepted
 * again when serialised back (labels included, to the same canonical
 * text).
 * fuzz-srcs: src/coord/hostreq.c src/coord/place.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "coord/hostreq.h"
#include "coord/place.h"
#include "util/jsonin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must_explain(const struct ferr *e)
{
    if (e->msg[0] == '\0')
        abort(); /* every rejection must say why */
}

static void check_accepted(const struct store_host *h, const struct store_instance *inst, size_t n)
{
    if (!jsonin_name_ok(h->name) || h->ram_mib < 1 || h->ram_mib > HOSTREQ_RAM_MIB_MAX ||
        h->vcpus < 1 || h->vcpus > HOSTREQ_VCPUS_MAX || n > HOSTREQ_MAX_INSTANCES ||
        (strncmp(h->url, "http://", 7) != 0 && strncmp(h->url, "https://", 8) != 0))
        abort();
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        if (!jsonin_name_ok(inst[i].name) || inst[i].project_id[0] == '\0' ||
            inst[i].memory_mib < 1 || inst[i].vcpus < 1)
            abort();
        for (const char *p = inst[i].project_id; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                abort(); /* never stored with a control character */
        for (size_t j = 0; j < i; j++)
            if (strcmp(inst[i].name, inst[j].name) == 0)
                abort(); /* each instance once */
        json_array_append_new(arr, json_pack("{s:s, s:s, s:I, s:I}", "name", inst[i].name,
                                             "project_id", inst[i].project_id, "memory_mib",
                                             (json_int_t)inst[i].memory_mib, "vcpus",
                                             (json_int_t)inst[i].vcpus));
    }
    json_t *back = json_pack("{s:s, s:s, s:I, s:I, s:o, s:o}", "name", h->name, "agent_url",
                             h->url, "ram_mib", (json_int_t)h->ram_mib, "vcpus",
                             (json_int_t)h->vcpus, "instances", arr, "labels",
                             place_labels_json(h->labels));
    struct store_host h2;
    struct store_instance *inst2 = NULL;
    size_t n2 = 0;
    struct ferr e = {0};
    if (hostreq_register_parse(back, &h2, &inst2, &n2, &e) != 0 || n2 != n ||
        strcmp(h2.name, h->name) != 0 || strcmp(h2.labels, h->labels) != 0)
        abort(); /* what we keep we must accept again */
    free(inst2);
    json_decref(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *obj = NULL;
    struct ferr e = {0};
    if (jsonin_parse_object((const char *)data, size, JSONIN_MAX_BYTES, JSONIN_MAX_DEPTH, &obj,
                            &e) != 0) {
        if (e.msg[0] == '\0')
            abort();
        return 0;
    }
    struct store_host h;
    struct store_instance *inst = NULL;
    size_t n = 0;
    memset(&e, 0, sizeof(e));
    if (hostreq_register_parse(obj, &h, &inst, &n, &e) == 0) {
        if (!inst)
            abort();
        check_accepted(&h, inst, n);
        free(inst);
    } else {
        must_explain(&e);
        if (inst || n)
            abort(); /* nothing handed out on failure */
    }
    const char *name = json_string_value(json_object_get(obj, "name"));
    memset(&e, 0, sizeof(e));
    if (hostreq_heartbeat_check(name, obj, &e) == 0) {
        if (json_object_size(obj) != 0 || !name)
            abort(); /* a heartbeat body carries nothing */
    } else {
        must_explain(&e);
    }
    memset(&e, 0, sizeof(e));
    if (hostreq_heartbeat_check(name ? name : "", NULL, &e) == 0 && !jsonin_name_ok(name))
        abort();
    json_decref(obj);
    return 0;
}
