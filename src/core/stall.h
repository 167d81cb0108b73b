/* stall — model-based stall detection for one migration.
 *
 * Remaining is a sawtooth: it falls during a pass and jumps at each dirty
 * bitmap sync, so "remaining went up" means nothing. This detector judges one
 * value per sync period — the minimum and the maximum of remaining within it —
 * plus the estimator's verdict, and time with no bytes moving. It reports:
 *
 *   STALL_DIRTY_GE_BW   smoothed dirty rate >= bandwidth (est ratio >= 1)
 *                       and the verdict is not converging, for K periods;
 *   STALL_OSCILLATION   the dirty set each sync folds into the bitmap did
 *                       not shrink by progress_frac over the last K
 *                       periods (measured between the samples around the
 *                       sync: remaining after - remaining before + bytes
 *                       sent in between, so it does not depend on when in
 *                       the sampling interval the sync fell);
 *   STALL_NO_BYTES      ram_transferred + disk_done unchanged for
 *                       no_bytes_ms (this one needs no sync to happen).
 *
 * Bound: a DIRTY_GE_BW or OSCILLATION condition is reported at the first
 * sample at which it has held for at least K closed sync periods AND at least
 * min_ms ms (whichever is later); NO_BYTES at the first sample at or after
 * no_bytes_ms without movement. docs/CONTROLLER.md states the bound.
 */
#ifndef FERRY_CORE_STALL_H
#define FERRY_CORE_STALL_H
#include <stdint.h>

#include "core/estimator.h"
#include "core/sample.h"

#define STALL_HIST 16 /* sync periods remembered */

enum stall_reason {
    STALL_NONE = 0,
    STALL_DIRTY_GE_BW,  /* dirty rate >= bandwidth */
    STALL_OSCILLATION,  /* sawtooth without progress */
    STALL_NO_BYTES,     /* nothing moving */
    STALL__COUNT
};

struct stall_params {
    uint32_t k_periods;    /* sync periods a condition must hold; 0 → 3,
                              capped at STALL_HIST - 1 */
    uint64_t min_ms;       /* and for at least this long, ms; 0 → 30000 */
    uint64_t no_bytes_ms;  /* no movement for this long, ms; 0 → 15000 */
    double progress_frac;  /* relative drop that counts as progress;
                              0 → 0.05 */
};

struct stall_out {
    enum stall_reason reason; /* STALL_NONE when not stalled */
    uint64_t since_ms;        /* t_ms at which the condition began */
    uint64_t detected_ms;     /* t_ms of the sample that reported it */
    double ratio;             /* D/R at detection */
    uint64_t periods;         /* periods the condition held */
};

/* Detector state; treat as opaque. */
struct stall {
    struct stall_params p;
    int have_sample;
    uint64_t last_t_ms;
    uint64_t cur_sync;
    uint64_t pmin, pmax;             /* open period extremes, bytes */
    uint64_t pset;                   /* dirty set found by the sync that
                                        opened the period, bytes (the
                                        first period: remaining then) */
    uint64_t prev_rem, prev_tx;      /* last active sample: remaining,
                                        ram_transferred, bytes */
    uint64_t hist_min[STALL_HIST];   /* closed periods, oldest first */
    uint64_t hist_max[STALL_HIST];
    uint64_t hist_set[STALL_HIST];   /* their pset */
    uint64_t hist_t0[STALL_HIST];    /* start of each closed period, ms */
    uint64_t period_t0_ms;           /* start of the open period */
    int period_open;                 /* an active-phase period is open
                                        (setup/switchover samples never
                                        form a period: QEMU reports 0
                                        remaining in setup) */
    uint64_t n_hist;                 /* closed periods total */
    uint64_t moved;                  /* ram_transferred + disk_done, bytes */
    uint64_t moved_t_ms;             /* last time moved changed */
    int ge_on; uint64_t ge_since_ms; uint64_t ge_periods;
    int osc_on; uint64_t osc_since_ms; uint64_t osc_periods;
    struct stall_out out;
};

/* Initialises s (params NULL or zero fields select the defaults). */
void stall_init(struct stall *s, const struct stall_params *params);

/* Feeds one sample and the estimate made after it (est may be NULL: then
 * DIRTY_GE_BW is never reported). Returns 0, or FERR_INVAL when smp->t_ms
 * goes backwards (s unchanged). In terminal phases and in post-copy only
 * NO_BYTES is judged (post-copy) or nothing (terminal): the stall clears. */
int stall_update(struct stall *s, const struct mig_sample *smp,
                 const struct est_out *est) __attribute__((warn_unused_result));

/* Copies the current verdict into *out (reason STALL_NONE when none). */
void stall_get(const struct stall *s, struct stall_out *out);

/* Returns a stable name ("dirty_ge_bw", "oscillation", "no_bytes", "none"). */
const char *stall_reason_name(enum stall_reason r);

#endif
