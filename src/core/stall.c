/* stall — judged per dirty-sync period on the extremes of remaining and on
 * the estimator's verdict; never on a single rise of remaining. */
#include "core/stall.h"

#include <string.h>

#include "util/ferr.h"

void stall_init(struct stall *s, const struct stall_params *params)
{
    memset(s, 0, sizeof(*s));
    if (params)
        s->p = *params;
    if (!s->p.k_periods)
        s->p.k_periods = 3;
    if (s->p.k_periods > STALL_HIST - 1)
        s->p.k_periods = STALL_HIST - 1;
    if (!s->p.min_ms)
        s->p.min_ms = 30000;
    if (!s->p.no_bytes_ms)
        s->p.no_bytes_ms = 15000;
    if (!(s->p.progress_frac > 0 && s->p.progress_frac < 1))
        s->p.progress_frac = 0.05;
}

static void push_period(struct stall *s)
{
    size_t n = s->n_hist < STALL_HIST ? (size_t)s->n_hist : STALL_HIST;
    if (n == STALL_HIST) {
        memmove(s->hist_min, s->hist_min + 1, (STALL_HIST - 1) * sizeof(uint64_t));
        memmove(s->hist_max, s->hist_max + 1, (STALL_HIST - 1) * sizeof(uint64_t));
        memmove(s->hist_t0, s->hist_t0 + 1, (STALL_HIST - 1) * sizeof(uint64_t));
        memmove(s->hist_set, s->hist_set + 1, (STALL_HIST - 1) * sizeof(uint64_t));
        n--;
    }
    s->hist_min[n] = s->pmin;
    s->hist_max[n] = s->pmax;
    s->hist_set[n] = s->pset;
    s->hist_t0[n] = s->period_t0_ms;
    s->n_hist++;
}

/* Over the last K closed periods, did the dirty set found at their syncs
 * fall by progress_frac below the one of the period before them? Returns 1
 * for "no progress", 0 for progress or too little history.
 *
 * Not the sampled extremes of remaining: a period's minimum always sits
 * near the switchover threshold (QEMU 7.2 syncs only below it) and its
 * sampled maximum depends on how long after the sync the next sample came;
 * on real traces both jitter by R x the sampling interval (6-10 % of the
 * sawtooth at 16 MiB/s and 250-400 ms), more than progress_frac. */
static int no_progress(const struct stall *s, uint64_t *since_ms)
{
    size_t n = s->n_hist < STALL_HIST ? (size_t)s->n_hist : STALL_HIST;
    size_t k = s->p.k_periods;
    if (n < k + 1)
        return 0;
    size_t base = n - k - 1;
    uint64_t best = UINT64_MAX;
    for (size_t i = base + 1; i < n; i++)
        if (s->hist_set[i] < best)
            best = s->hist_set[i];
    if ((double)best <= (1.0 - s->p.progress_frac) * (double)s->hist_set[base])
        return 0;
    *since_ms = s->hist_t0[base + 1];
    return 1;
}

static void clear_out(struct stall *s)
{
    memset(&s->out, 0, sizeof(s->out));
}

int stall_update(struct stall *s, const struct mig_sample *smp, const struct est_out *est)
{
    if (!smp || (unsigned)smp->phase >= MIG_PHASE__COUNT)
        return FERR_INVAL;
    if (s->have_sample && smp->t_ms < s->last_t_ms)
        return FERR_INVAL;
    const uint64_t t = smp->t_ms;
    const uint64_t moved = smp->ram_transferred + smp->disk_done;

    if (!s->have_sample) {
        s->have_sample = 1;
        s->moved = moved;
        s->moved_t_ms = t;
    }
    s->last_t_ms = t;
    if (moved != s->moved) {
        s->moved = moved;
        s->moved_t_ms = t;
    }

    if (mig_phase_is_terminal(smp->phase)) {
        s->ge_on = s->osc_on = 0;
        clear_out(s);
        return 0;
    }

    /* NO_BYTES: judged in every phase where QEMU should be moving data */
    if (smp->phase != MIG_PHASE_PRE_SWITCHOVER && t - s->moved_t_ms >= s->p.no_bytes_ms) {
        if (s->out.reason != STALL_NO_BYTES) {
            s->out.reason = STALL_NO_BYTES;
            s->out.since_ms = s->moved_t_ms;
            s->out.detected_ms = t;
            s->out.ratio = est ? est->ratio : 0;
            s->out.periods = 0;
        }
        return 0;
    }
    if (s->out.reason == STALL_NO_BYTES)
        clear_out(s);

    if (smp->phase != MIG_PHASE_ACTIVE) {
        /* post-copy, switchover, setup: the sawtooth rules do not apply */
        s->ge_on = s->osc_on = 0;
        if (s->out.reason != STALL_NONE)
            clear_out(s);
        s->period_open = 0;
        return 0;
    }

    if (!s->period_open) {
        /* first active sample (or back from another phase): a period
         * starts here; nothing is closed */
        s->period_open = 1;
        s->cur_sync = smp->dirty_sync_count;
        s->pmin = s->pmax = s->pset = smp->ram_remaining;
        s->period_t0_ms = t;
    } else if (smp->dirty_sync_count != s->cur_sync) {
        if (smp->dirty_sync_count > s->cur_sync) {
            push_period(s);
            /* DIRTY_GE_BW, judged per closed period on the model */
            int ge = est && est->dirty_measured && est->ratio >= 1.0 &&
                     est->verdict != EST_VERDICT_CONVERGING &&
                     est->verdict != EST_VERDICT_DONE;
            if (ge) {
                if (!s->ge_on) {
                    s->ge_on = 1;
                    s->ge_since_ms = s->period_t0_ms;
                    s->ge_periods = 0;
                }
                s->ge_periods++;
            } else {
                s->ge_on = 0;
            }
            uint64_t since = 0;
            if (no_progress(s, &since)) {
                if (!s->osc_on) {
                    s->osc_on = 1;
                    s->osc_since_ms = since;
                }
                s->osc_periods = s->p.k_periods;
            } else {
                s->osc_on = 0;
            }
        }
        s->cur_sync = smp->dirty_sync_count;
        s->pmin = s->pmax = smp->ram_remaining;
        /* what the sync(s) since the previous sample folded in */
        uint64_t sent = smp->ram_transferred > s->prev_tx ? smp->ram_transferred - s->prev_tx
                                                          : 0;
        uint64_t before = s->prev_rem > sent ? s->prev_rem - sent : 0;
        s->pset = smp->ram_remaining > before ? smp->ram_remaining - before : 0;
        s->period_t0_ms = t;
    } else {
        if (smp->ram_remaining < s->pmin)
            s->pmin = smp->ram_remaining;
        if (smp->ram_remaining > s->pmax)
            s->pmax = smp->ram_remaining;
    }

    s->prev_rem = smp->ram_remaining;
    s->prev_tx = smp->ram_transferred;

    enum stall_reason r = STALL_NONE;
    uint64_t since = 0, periods = 0;
    if (s->ge_on && s->ge_periods >= s->p.k_periods && t - s->ge_since_ms >= s->p.min_ms) {
        r = STALL_DIRTY_GE_BW;
        since = s->ge_since_ms;
        periods = s->ge_periods;
    } else if (s->osc_on && t - s->osc_since_ms >= s->p.min_ms) {
        r = STALL_OSCILLATION;
        since = s->osc_since_ms;
        periods = s->osc_periods;
    }
    if (r == STALL_NONE) {
        if (s->out.reason != STALL_NONE)
            clear_out(s);
    } else if (s->out.reason != r) {
        s->out.reason = r;
        s->out.since_ms = since;
        s->out.detected_ms = t;
        s->out.ratio = est ? est->ratio : 0;
        s->out.periods = periods;
    }
    return 0;
}

void stall_get(const struct stall *s, struct stall_out *out)
{
    *out = s->out;
}

const char *stall_reason_name(enum stall_reason r)
{
    static const char *const names[STALL__COUNT] = {"none", "dirty_ge_bw",
                                                    "oscillation", "no_bytes"};
    return (unsigned)r < STALL__COUNT ? names[r] : "unknown";
}
