/* Fuzz target: the agent's request parsing — capped JSON parsing with the
 * depth pre-scan, then the instance spec, the migration limits and the
 * QEMU argv built from an accepted spec. Any crash, leak or sanitizer
 * report is a bug; rejections are expected. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/spec.h"
#include "util/jsonin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *obj = NULL;
    struct ferr e = {0};
    if (jsonin_parse_object((const char *)data, size, JSONIN_MAX_BYTES, JSONIN_MAX_DEPTH, &obj,
                            &e) != 0) {
        if (e.msg[0] == '\0')
            abort(); /* every rejection must say why */
        return 0;
    }
    struct inst_spec s;
    if (spec_from_json(obj, "/lab/vmlinuz", "/lab/initrd.img", &s, &e) == 0) {
        if (!jsonin_name_ok(s.name) || s.kernel[0] != '/')
            abort(); /* an accepted spec is always safe to use */
        char **argv = spec_argv(&s, "/usr/bin/qemu-system-x86_64", "/q", "/s", true);
        spec_argv_free(argv);
        json_t *back = spec_to_json(&s);
        struct inst_spec s2;
        if (spec_from_json(back, NULL, NULL, &s2, &e) != 0)
            abort(); /* what we print we must accept again */
        spec_free(&s2);
        json_decref(back);
        spec_free(&s);
    }
    struct mig_limits l;
    if (limits_from_json(json_object_get(obj, "limits"), &l, &e) == 0) {
        if (l.downtime_ms < 1 || l.downtime_ms > 60000)
            abort();
    }
    json_decref(obj);
    return 0;
}
