/* Stall detection on synthetic QEMU-like sawtooth traces: converging ones
 * are never flagged; dirty >= bandwidth is flagged with that reason within
 * the documented bound; a flat trace with no bytes moving is flagged. */
#include <string.h>

#include "../lib/pcgen.h"
#include "../lib/test.h"
#include "core/estimator.h"
#include "core/stall.h"
#include "util/ferr.h"

#define MIB 1048576.0

static const struct stall_params SP = {3, 30000, 15000, 0.05};

/* Runs a generated trace through est + stall for up to max_s seconds.
 * Returns the first reason flagged (STALL_NONE if none) and its sample time;
 * sync_t[j] gets the time the sync count reached j. */
static enum stall_reason run(double w, double r, double d, int max_s, uint64_t *at,
                             uint64_t *sync_t, size_t nsync)
{
    struct pcgen g;
    pcgen_init(&g, 1024 * MIB, w * MIB, r * MIB, d * MIB, 300);
    struct est_params ep = {0};
    ep.granularity_ms = 5;
    struct est e;
    est_init(&e, &ep);
    struct stall st;
    stall_init(&st, &SP);
    for (int i = 0; i < max_s * 4 && !g.done; i++) {
        struct mig_sample s;
        pcgen_step(&g, &s);
        if (s.dirty_sync_count < nsync && sync_t[s.dirty_sync_count] == 0)
            sync_t[s.dirty_sync_count] = s.t_ms;
        if (est_update(&e, &s) != 0)
            return STALL__COUNT;
        struct est_out o;
        est_get(&e, &o);
        if (stall_update(&st, &s, &o) != 0)
            return STALL__COUNT;
        struct stall_out so;
        stall_get(&st, &so);
        if (so.reason != STALL_NONE) {
            *at = s.t_ms;
            return so.reason;
        }
    }
    return STALL_NONE;
}

/* Proves: converging pre-copies (D/R from 0.3 to 0.95, working set smaller
 * or equal to RAM) are never flagged although remaining rises at every
 * sync. */
static void t_converging(void)
{
    static const double c[][3] = {
        {1024, 100, 30}, {1024, 100, 75}, {1024, 100, 90}, {300, 100, 95}, {1024, 50, 45}};
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        uint64_t at = 0, sync_t[64] = {0};
        enum stall_reason r = run(c[i][0], c[i][1], c[i][2], 600, &at, sync_t, 64);
        CHECK(r == STALL_NONE, "case %zu (D/R %.2f) flagged %s at %llu ms", i, c[i][2] / c[i][1],
              stall_reason_name(r), (unsigned long long)at);
    }
}

/* Proves: dirty >= bandwidth is flagged as DIRTY_GE_BW no later than
 * max(K-th sync period close, min_ms) + one sample interval. */
static void t_dirty_ge_bw(void)
{
    static const double c[][3] = {{200, 100, 150}, {400, 100, 100}, {1024, 50, 80}};
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        uint64_t at = 0, sync_t[4096] = {0};
        enum stall_reason r = run(c[i][0], c[i][1], c[i][2], 600, &at, sync_t, 4096);
        CHECK(r == STALL_DIRTY_GE_BW, "case %zu: got %s", i, stall_reason_name(r));
        uint64_t kth = sync_t[SP.k_periods + 1];
        uint64_t bound = (kth > SP.min_ms ? kth : SP.min_ms) + 250;
        CHECK(at <= bound, "case %zu: flagged at %llu ms, bound %llu ms", i, (unsigned long long)at,
              (unsigned long long)bound);
        CHECK(at >= SP.min_ms, "case %zu: flagged before min_ms: %llu", i, (unsigned long long)at);
    }
}

/* Proves: a trace whose counters stop moving is flagged NO_BYTES within
 * no_bytes_ms + one sample interval of the last movement, and a
 * sawtooth that oscillates without progress (no model help) is flagged
 * OSCILLATION. */
static void t_no_bytes_and_oscillation(void)
{
    struct stall st;
    stall_init(&st, &SP);
    uint64_t flagged = 0;
    for (uint64_t i = 0; i < 200 && !flagged; i++) {
        struct mig_sample s;
        memset(&s, 0, sizeof(s));
        s.t_ms = i * 250;
        s.phase = MIG_PHASE_ACTIVE;
        s.ram_total = 1 << 30;
        s.ram_remaining = 1 << 29;
        s.ram_transferred = i < 20 ? i * 1000000 : 19000000; /* stops at 4750 ms */
        s.dirty_sync_count = 1;
        REQUIRE(stall_update(&st, &s, NULL) == 0, "update");
        struct stall_out so;
        stall_get(&st, &so);
        if (so.reason != STALL_NONE) {
            CHECK(so.reason == STALL_NO_BYTES, "reason %s", stall_reason_name(so.reason));
            flagged = s.t_ms;
        }
    }
    CHECK(flagged >= 4750 + 15000 && flagged <= 4750 + 15000 + 250, "flagged at %llu",
          (unsigned long long)flagged);

    stall_init(&st, &SP);
    flagged = 0;
    for (uint64_t i = 0; i < 400 && !flagged; i++) {
        struct mig_sample s;
        memset(&s, 0, sizeof(s));
        s.t_ms = i * 250;
        s.phase = MIG_PHASE_ACTIVE;
        s.ram_total = 1 << 30;
        s.ram_transferred = i * 25000000;
        s.ram_remaining = (uint64_t)(400 - (i % 16) * 20) * 1000000; /* 4 s sawtooth */
        s.dirty_sync_count = 1 + i / 16;
        REQUIRE(stall_update(&st, &s, NULL) == 0, "update");
        struct stall_out so;
        stall_get(&st, &so);
        if (so.reason != STALL_NONE) {
            CHECK(so.reason == STALL_OSCILLATION, "reason %s", stall_reason_name(so.reason));
            flagged = s.t_ms;
        }
    }
    /* the first period's set is everything remaining (400 MB), each sync
     * then folds in 325 MB: the stall holds from the third period (8 s, the
     * first one not smaller than the one before it), so the bound is
     * max(8 s + K periods of 4 s, 8 s + min_ms) = 38 s, + one sample */
    CHECK(flagged >= 38000 && flagged <= 38250, "oscillation flagged at %llu",
          (unsigned long long)flagged);
}

int main(void)
{
    test_run("stall: converging sawtooth never flagged", t_converging);
    test_run("stall: dirty >= bandwidth flagged within the bound", t_dirty_ge_bw);
    test_run("stall: no bytes moving; oscillation without progress", t_no_bytes_and_oscillation);
    return test_done();
}
