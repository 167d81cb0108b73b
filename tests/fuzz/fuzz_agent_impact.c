/* Fuzz target: what the impact budget reads from outside — a migration
 * request's "policy" with its "budget" (ctl_policy_from_json) and a
 * query-blockstats reply from QEMU (impact_parse_blockstats), then the
 * figures computed from what was parsed. Any crash, leak or sanitizer
 * report is a bug; rejections are expected. The agent modules link with
 * each other (control.c drives QMP through instance.c and storage.c):
 * fuzz-srcs: src/agent/api.c src/agent/census.c src/agent/control.c src/agent/coordlink.c src/agent/impact.c src/agent/instance.c src/agent/maint.c src/agent/migration.c src/agent/pace.c src/agent/peer.c src/agent/spec.c src/agent/storage.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/control.h"
#include "agent/impact.h"
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
    struct ctl_policy p;
    if (ctl_policy_from_json(json_object_get(obj, "policy"), 256, &p, &e) == 0 && p.enabled) {
        const struct conv_budget *b = &p.conv.budget;
        if (b->enabled && (b->rate_min_bps == 0 || b->rate_min_bps > b->rate_max_bps ||
                           b->min_throughput_pct > 100))
            abort(); /* an accepted budget is always in range */
        struct conv c;
        if (conv_init(&c, &p.conv, &e) != 0)
            abort(); /* what the parser accepts the controller takes */
    } else if (json_object_get(obj, "policy") && e.msg[0] == '\0') {
        /* accepted "none" or a rejection: a rejection names why */
    }
    uint64_t sums[5], hist[IMPACT_BOUNDS + 1];
    bool ok, has[IMPACT_DEVS];
    char devs[IMPACT_DEVS][IMPACT_QDEV_MAX];
    unsigned n =
        impact_parse_blockstats(json_object_get(obj, "blockstats"), sums, hist, &ok, devs, has);
    if (n > IMPACT_DEVS)
        abort();
    for (unsigned i = 0; i < n; i++)
        if (memchr(devs[i], '\0', IMPACT_QDEV_MAX) == NULL || devs[i][0] == '\0')
            abort();
    struct impact_iv iv;
    memset(&iv, 0, sizeof(iv));
    iv.seq = 1;
    iv.dur_ms = 1000;
    iv.rd_bytes = sums[0];
    iv.wr_bytes = sums[1];
    iv.rd_ops = sums[2];
    iv.wr_ops = sums[3];
    iv.time_ns = sums[4];
    iv.hist_ok = ok;
    for (unsigned i = 0; i <= IMPACT_BOUNDS; i++)
        iv.hist[i] = hist[i] > UINT32_MAX ? UINT32_MAX : (uint32_t)hist[i];
    struct impact_agg a;
    memset(&a, 0, sizeof(a));
    impact_agg_add(&a, &iv);
    struct impact_fig f;
    impact_figures(&a, &f);
    if (f.ops && f.p99_us >= 0 && f.p50_us > f.p99_us)
        abort(); /* percentiles are ordered */
    json_decref(impact_fig_json(&f));
    json_decref(obj);
    return 0;
}
