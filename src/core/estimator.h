/* estimator — progress, ETA and convergence feasibility of one migration.
 *
 * Pure and deterministic: the caller feeds samples (sample.h) in time order
 * and reads the estimate. No clock, no I/O, no allocation; struct est is
 * plain data that the caller owns (embed it or allocate it).
 *
 * Model (docs/CONTROLLER.md has the derivation). With bandwidth R (bytes/s)
 * and dirty rate D (bytes/s), each pre-copy pass re-sends what the guest
 * dirtied during the previous one: V_i = M * (D/R)^i. QEMU switches over when
 * what remains at a bitmap sync is <= R * downtime_limit. R and D are
 * smoothed by an EWMA over dirty-sync periods (one value per period, not per
 * 250 ms sample), because remaining is a sawtooth within a period. The
 * controller may announce a future downtime schedule (est_set_schedule) so
 * the prediction accounts for limits that will rise later.
 */
#ifndef FERRY_CORE_ESTIMATOR_H
#define FERRY_CORE_ESTIMATOR_H
#include <stddef.h>
#include <stdint.h>

#include "core/sample.h"

#define EST_SCHED_MAX 64            /* entries in a future downtime schedule */
#define EST_CENSUS_BUCKETS 64       /* address-order buckets of a census profile */
#define EST_ETA_INFINITE UINT64_MAX /* eta_*_ms value: never finishes */
#define EST_JITTER_PRIOR 0.05       /* bw_jitter assumed until measured */
#define EST_RT_RING 8               /* pass-1 rate: samples remembered */
#define EST_RT_MS 1000              /* pass-1 rate: over at least this long, ms */
#define EST_CD_HIST 24              /* census re-reads kept for the fit */
#define EST_LV_HIST 6               /* post-sync levels kept (stuck test) */
#define EST_STUCK_FRAC                                                                             \
    0.05 /* a post-sync level counts as shrinking                                                  \
            when 5 % below the previous one */

struct est_params {
    double ewma_alpha;            /* weight of the newest sync period, (0,1];
                                     0 selects the default 0.5 */
    double spread_min;            /* minimum relative uncertainty of R and D
                                     for the ETA interval; 0 → 0.10 */
    uint64_t max_downtime_ms;     /* operator's ceiling used for the verdict
                                     (needs-X vs cannot); 0 → 2000 ms */
    uint64_t default_downtime_ms; /* limit assumed when samples carry 0;
                                     0 → 300 ms (QEMU's default) */
    double prior_ratio;           /* D/R assumed until a sync period has
                                     measured D (QEMU reports no dirty rate
                                     during pass 1); 0 → 0.1. Chosen on the
                                     sim matrix (bench/eta_accuracy): 0.5
                                     doubled the ETA of idle guests; the
                                     interval's high end assumes 0.9 */
    double hint_ws_frac;          /* pass 1 with a dirty-rate hint: working
                                     set assumed, as a share of RAM, unless the
                                     hint shows more (hint x 1 s); 0 → 0.25 */
    double link_bps;              /* what the link carries without
                                     max-bandwidth, bytes/s; 0 = unknown.
                                     QEMU 7.2 lifts the rate limit for the
                                     final stage (migration_completion sets
                                     it to INT64_MAX), so what is pending at
                                     switchover moves at this rate, not at
                                     the cap; unknown: at the measured R.
                                     The host's knowledge (agent: measured
                                     on its earlier moves, docs/AGENT.md) */
    uint64_t granularity_ms;      /* QEMU checks pending between bursts of
                                     sending; it syncs when pending has fallen
                                     about R * granularity below R * limit.
                                     0 → 50 ms (ram_save_iterate's MAX_WAIT) */
    /* Optional hints from an earlier migration of the same instance (the
     * request's "hints" object); 0 = unknown, the estimator then works
     * from this migration's samples alone. */
    uint64_t hint_nonzero_bytes;   /* RAM that was not zero pages then,
                                      bytes (ram_total - ram_duplicate x
                                      page at its end): pass 1 sends this
                                      much in full, the rest as 9-byte
                                      zero-page flags */
    uint64_t hint_dirty_set_bytes; /* the working set seen then, bytes
                                      (est_out.dirty_set_bytes at its end):
                                      replaces hint_ws_frac in pass 1 */
    double hint_dirty_bps;         /* the dirty rate it measured over its
                                      pass 1, bytes/s (est_out.
                                      pass1_dirty_bps at its end): used in
                                      pass 1 until this guest's own
                                      dirty-rate hint arrives */
    /* Optional memory census of THIS migration, taken by the agent just
     * before `migrate` (agent/census.h): how much of the guest's RAM held
     * non-zero data at t0. 0 = none. Preferred over hint_nonzero_bytes
     * (it is fresh); like it, it only matters while pass 1 runs. */
    uint64_t census_nonzero_bytes;               /* non-zero RAM found at t0, bytes (of
                                                    census_ram_bytes) */
    uint64_t census_ram_bytes;                   /* RAM the census covered, bytes; the
                                                    rest of ram_total (ROMs, other RAM
                                                    blocks) counts as non-zero; 0: all of
                                                    ram_total */
    double census_err;                           /* relative standard error of
                                                    census_nonzero_bytes (its sampling),
                                                    0..1; widens the pass-1 interval */
    uint32_t census_nprofile;                    /* buckets in census_profile; 0: no
                                                    profile (the count alone) */
    uint64_t census_profile[EST_CENSUS_BUCKETS]; /* non-zero bytes per
                                      equal slice of census_ram_bytes, in
                                      address order (pass 1's order): lets
                                      pass 1 check the census against the
                                      normal pages it has sent and scale
                                      the rest by that ratio (a census off
                                      by a factor corrects itself) */
};

/* One entry of a future downtime schedule: from t_ms (ms since migration
 * start) on, the limit will be downtime_ms. */
struct est_sched_step {
    uint64_t t_ms;        /* ms since migration start */
    uint64_t downtime_ms; /* ms */
};

enum est_verdict {
    EST_VERDICT_UNKNOWN = 0,    /* not enough data yet (no rate measured) */
    EST_VERDICT_CONVERGING,     /* finishes with the current/scheduled limits */
    EST_VERDICT_NEEDS_DOWNTIME, /* finishes only if the limit is raised to
                                   needs_downtime_ms (<= max_downtime_ms) */
    EST_VERDICT_CANNOT,         /* dirty rate >= bandwidth and even
                                   max_downtime_ms is not enough */
    EST_VERDICT_DONE,           /* pre-copy over: switchover, post-copy or
                                   completed */
    EST_VERDICT__COUNT
};

/* What est_get() reports. Also the input of est_predict(), so the controller
 * can ask "what if" questions without the struct est itself. */
struct est_out {
    double progress_pct;            /* 0..100 of RAM+disk work; never decreases;
                                       100 only once phase is completed */
    int eta_known;                  /* 1 when eta_ms is meaningful */
    uint64_t eta_ms;                /* ms from the last sample to completion;
                                       EST_ETA_INFINITE when not converging */
    uint64_t eta_low_ms;            /* optimistic end of the interval, ms */
    uint64_t eta_high_ms;           /* pessimistic end, ms (may be infinite) */
    uint64_t predicted_downtime_ms; /* expected guest pause at switchover */
    enum est_verdict verdict;
    uint64_t needs_downtime_ms; /* for NEEDS_DOWNTIME/CANNOT: limit at which
                                   pre-copy would switch over now, ms */
    /* the numbers behind the verdict */
    double bw_bps;             /* smoothed bandwidth R, bytes/s */
    double dirty_bps;          /* smoothed dirty rate D, bytes/s */
    double ratio;              /* D / R (0 when R unknown) */
    double spread;             /* relative uncertainty used for interval */
    double bw_jitter;          /* mean relative deviation of QEMU's
                                  per-sample bandwidth (its last ~100 ms
                                  window, which sets the switchover
                                  threshold) from the smoothed R; at least
                                  EST_JITTER_PRIOR until 40 samples */
    uint64_t level_bytes;      /* smoothed remaining right after a sync */
    uint64_t ram_remaining;    /* bytes, from the last sample */
    uint64_t ram_total;        /* bytes, from the last sample */
    uint64_t since_sync_ms;    /* ms since the last dirty-sync increment */
    uint64_t disk_left;        /* bytes of disk still to mirror */
    double disk_bps;           /* smoothed mirror rate, bytes/s */
    uint64_t downtime_ms;      /* limit in force at the last sample, ms */
    uint64_t granularity_ms;   /* copy of est_params.granularity_ms */
    double link_bps;           /* copy of est_params.link_bps: the rate of
                                  the final stage when above bw_bps,
                                  bytes/s; 0 unknown */
    uint64_t periods;          /* completed dirty-sync periods observed */
    uint64_t t_ms;             /* t_ms of the last sample */
    enum mig_phase phase;      /* phase of the last sample */
    int dirty_measured;        /* 0 while dirty_bps is the prior or the
                                  hint (QEMU has published no rate yet) */
    int dirty_hinted;          /* 1 when dirty_bps comes from the sample's
                                  dirty_rate_hint_pps (pass 1 only: the
                                  time-weighted mean of the hints so far)
                                  or from the census re-reads */
    int dirty_census;          /* 1 when it comes from the census re-reads
                                  (census_dirty_*): distinct(T) since the
                                  census, T = census_dirty_ms; with two of
                                  them far enough apart the working set is
                                  fitted (hint_ws_bytes) */
    uint64_t hint_ws_bytes;    /* pass 1 with a hint: working set assumed
                                  (cap of the dirty set), bytes; else 0 */
    double sat_ws_bytes;       /* after pass 1: working set H fitted to
                                  distinct(T) = H (1 - e^(-wT/H)) from two
                                  measurements of different length (the
                                  1 s hint, the periods); 0: no saturation
                                  seen, D is used as measured */
    double sat_w_bps;          /* the write rate w of that fit, bytes/s */
    int level_stuck;           /* the dirty set found at the last two
                                  syncs (after pass 1) did not shrink by
                                  EST_STUCK_FRAC: a saturated working set
                                  (measured D ~ R); the model then takes
                                  D >= R, i.e. no progress at this limit */
    double nonzero_share;      /* pass 1: share of the pages sent so far
                                  that were not zero pages; 1 after pass 1 */
    uint64_t pass1_left_bytes; /* pass 1: non-zero bytes still to send in
                                  it: hint_nonzero_bytes minus the normal
                                  pages sent, else ram_remaining x
                                  nonzero_share; 0 after pass 1 */
    int nonzero_hinted;        /* 1 when pass1_left_bytes comes from
                                  hint_nonzero_bytes */
    int nonzero_census;        /* 1 when pass1_left_bytes comes from the
                                  census (census_nonzero_bytes) */
    double census_scale;       /* pass 1 with a census profile: normal
                                  pages sent / what the census counted
                                  before the cursor (the census's bias,
                                  applied to the rest); 1 otherwise */
    double pass1_dirty_bps;    /* distinct bytes dirtied during pass 1 per
                                  second of it (measured at the sync that
                                  ends it), to hint a later migration with;
                                  1 when QEMU completed at that sync (too
                                  small to see); 0 before, bytes/s */
    int eta_forecast;          /* 1 when eta_ms / the interval come from a
                                  forecast that includes the controller's
                                  own future actions (forecast.h) */
    int eta_consent_wait;      /* 1 when that forecast passes a consent
                                  request: eta_ms assumes a prompt yes, the
                                  wait is unknown, so eta_high_ms is
                                  EST_ETA_INFINITE */
    uint64_t dirty_set_bytes;  /* working set to hint a later migration of
                                  this instance with, bytes: the fitted
                                  saturation (sat_ws_bytes) when there is
                                  one, else the largest dirty set a sync
                                  found after pass 1 (a lower bound); 0
                                  before the first such sync */
};

/* Estimator state. Treat as opaque: read it only through est_get(). */
struct est {
    struct est_params p;
    struct est_sched_step sched[EST_SCHED_MAX];
    size_t n_sched;
    int have_sample;
    struct mig_sample last;
    uint64_t cur_sync;        /* dirty_sync_count of the open period */
    uint64_t period_t0_ms;    /* start of the open period */
    uint64_t period_tx0;      /* ram_transferred at its start, bytes */
    uint64_t period_min;      /* minimum remaining seen in it, bytes */
    int have_period;          /* a period start has been seen */
    double bw, dirty, level;  /* EWMAs, bytes/s, bytes/s, bytes */
    double bw_dev, dirty_dev; /* EWMA of absolute deviation */
    int have_bw, have_dirty, have_level;
    double disk_bps;
    uint64_t disk_t0_ms, disk_done0;
    int have_disk;
    uint64_t t_first_ms, tx_first;                   /* first sample: for the pass-1 rate */
    uint64_t rt_ms[EST_RT_RING], rt_tx[EST_RT_RING]; /* pass 1: t_ms and ram_transferred of the
                                    last EST_RT_RING active samples since
                                    max-bandwidth last changed */
    uint32_t n_rt;                                   /* samples put into that ring */
    uint64_t act_cap;                                /* setting_max_bw_bps at the anchor */
    uint64_t lv[EST_LV_HIST];                        /* remaining right after the last
                                                        syncs after pass 1, oldest
                                                        first, bytes */
    uint64_t n_lv;                                   /* such syncs seen */
    double hint_last;                                /* last dirty-rate hint, bytes/s; 0 none */
    double p1_s, p1_dist;                            /* pass-1 period: length s, distinct bytes */
    double pl_s, pl_dist;                            /* latest later period: the same */
    double jit;                                      /* EWMA of the relative bandwidth deviation */
    uint64_t n_jit;                                  /* samples behind it */
    double hint_sum;             /* pass 1: dirty-rate hint x time, bytes/s x ms */
    uint64_t hint_ms;            /* pass 1: time the hint was known, ms */
    uint64_t max_set;            /* largest post-sync remaining after pass
                                    1, bytes */
    uint64_t cd_a_ms, cd_b_ms;   /* census re-reads: the one the
                                    working-set fit pairs with the latest
                                    (about a quarter of its age, at or
                                    after 200 ms) and the latest, ms after
                                    the census; 0 none */
    double cd_a, cd_b;           /* RAM written since the census then, bytes */
    uint64_t cd_ms[EST_CD_HIST]; /* the re-reads at or after 200 ms, oldest
                                    first (the newest EST_CD_HIST), ms */
    double cd_by[EST_CD_HIST];   /* RAM written since the census, bytes */
    uint32_t n_cd;               /* entries in cd_ms / cd_by */
    double cd_h, cd_w;           /* working set and write rate fitted to
                                    the re-reads (sat_fit), bytes, bytes/s;
                                    0: no saturation seen; kept after
                                    pass 1 for the later passes */
    struct est_out out;
};

/* Initialises e with params (NULL selects all defaults; zero fields select
 * that field's default). Never fails. */
void est_init(struct est *e, const struct est_params *params);

/* Replaces the future downtime schedule with a copy of steps[0..n). Steps
 * must be sorted by t_ms (non-decreasing). Returns 0, or FERR_TOOBIG when
 * n > EST_SCHED_MAX, FERR_INVAL when unsorted; on error the previous schedule
 * is kept. n == 0 clears it. The new schedule is used from the next
 * est_update(). */
int est_set_schedule(struct est *e, const struct est_sched_step *steps, size_t n)
    __attribute__((warn_unused_result));

/* Sets the hints from an earlier migration of the same instance
 * (est_params.hint_nonzero_bytes, hint_dirty_set_bytes, hint_dirty_bps;
 * 0 = unknown), for
 * callers that learn them after est_init. Used from the next est_update();
 * they only matter while pass 1 runs. Never fails. */
void est_set_hints(struct est *e, uint64_t nonzero_bytes, uint64_t dirty_set_bytes,
                   double dirty_bps);

/* Sets the link's rate without max-bandwidth (est_params.link_bps; 0 =
 * unknown), for callers that learn it after est_init. Used from the next
 * est_update(). Never fails. */
void est_set_link(struct est *e, double link_bps);

/* Sets the memory census of this migration (est_params.census_nonzero_bytes,
 * census_ram_bytes, census_err; nonzero_bytes 0 = none) and removes any
 * profile (est_set_census_profile), for callers that take it after
 * est_init. Used from the next est_update(); it only matters
 * while pass 1 runs. A census that pass 1 has already exceeded (more
 * normal pages sent than it counted: pages written non-zero since t0, or
 * an undercount) is no longer used; the estimate then falls back to the
 * non-zero share of the pages sent so far. With a profile, the census is
 * instead scaled by what pass 1 found before its cursor. Never fails. */
void est_set_census(struct est *e, uint64_t nonzero_bytes, uint64_t ram_bytes, double rel_err);

/* Adds the census's profile: bucket_nz[0..n) non-zero bytes per equal slice
 * of the census's RAM in address order (est_params.census_profile). Call
 * after est_set_census. Returns 0, or FERR_TOOBIG when n >
 * EST_CENSUS_BUCKETS, FERR_INVAL when bucket_nz is NULL with n > 0; on
 * error nothing changes. n == 0 removes the profile. */
int est_set_census_profile(struct est *e, const uint64_t *bucket_nz, size_t n)
    __attribute__((warn_unused_result));

/* Feeds one sample (borrowed; copied as needed). Returns 0, or FERR_INVAL
 * when s->t_ms is earlier than the previous sample's or s->phase is out of
 * range; on error e is unchanged. */
int est_update(struct est *e, const struct mig_sample *s) __attribute__((warn_unused_result));

/* Copies the current estimate into *out. Before any sample, out has
 * progress 0, verdict UNKNOWN and eta_known 0. */
void est_get(const struct est *e, struct est_out *out);

/* Pure what-if: predicts, from the model numbers in o (as returned by
 * est_get), the time to completion (ms from o->t_ms) and the guest pause
 * (ms) if the downtime limit were downtime_ms from now on. Returns 0, or
 * FERR_STATE when o has no bandwidth measured yet. When pre-copy would never
 * switch over, *eta_ms is EST_ETA_INFINITE. Either out-pointer may be NULL. */
int est_predict(const struct est_out *o, uint64_t downtime_ms, uint64_t *eta_ms, uint64_t *pause_ms)
    __attribute__((warn_unused_result));

/* --- Forecast with the controller in the loop --------------------------
 *
 * est_forecast() runs the estimator's own pre-copy model (the one behind
 * eta_ms) forward pass by pass, and hands the modelled migration to a hook
 * at every bitmap sync and at the wake times the hook asks for. The hook
 * (core/forecast.c drives a copy of the convergence controller with it)
 * answers with the settings from then on: downtime limit, bandwidth, a
 * factor on the dirty rate (CPU throttle), or an ending (post-copy, pause,
 * abort). The estimator does not know the controller; the hook does not
 * know the model. */

/* The modelled migration at one instant, as the hook sees it. */
struct est_fc_view {
    uint64_t t_ms;          /* ms since migration start */
    uint64_t remaining;     /* bytes QEMU would report pending (pass 1: zero
                               pages included) */
    uint64_t transferred;   /* bytes sent since migration start */
    uint64_t syncs;         /* dirty_sync_count QEMU would report */
    uint64_t since_sync_ms; /* ms since the last sync */
    double bw_bps;          /* bandwidth in force, bytes/s */
    double dirty_bps;       /* dirty rate after the throttle, bytes/s */
    double meas_dirty_bps;  /* the dirty rate the estimator would publish
                               at this point: QEMU's per-period rate (the
                               distinct bytes a modelled pass dirtied over
                               its length, a saturating working set far
                               below the write rate) smoothed as
                               est_update smooths it, bytes/s; 0 before
                               the first modelled sync */
    double meas_spread;     /* the relative spread it would then use
                               (est_out.spread); 0 before that sync */
    double ws_bytes;        /* the model's working-set curve: H, bytes, and */
    double w_bps;           /* its write rate w, bytes/s (0: none) */
    double level;           /* dirty set found at the last sync, bytes; 0:
                               none since the forecast began */
    double pass_ms;         /* length of the last completed pass, ms; 0 none */
    int pass1;              /* still in the bulk pass */
    int synced;             /* this call is at a sync */
    int steady;             /* passes make no progress at this limit: the
                               model waits for the next wake */
};

enum est_fc_end {
    EST_FC_GO_ON = 0, /* pre-copy continues */
    EST_FC_POSTCOPY,  /* switch to post-copy now: what is pending is
                         pulled at the bandwidth, the guest already runs */
    EST_FC_PAUSE,     /* guest paused: it dirties nothing from now on */
    EST_FC_ABORT      /* the migration is cancelled: it never completes */
};

/* The hook's answer. On entry it holds the settings in force. */
struct est_fc_ctl {
    uint64_t limit_ms;   /* downtime limit from now, ms */
    double bw_bps;       /* bandwidth from now, bytes/s (> 0) */
    double dirty_mul;    /* dirty rate factor from now, 0..1 (CPU throttle
                            p %: 1 - p/100) */
    enum est_fc_end end; /* EST_FC_GO_ON unless the migration ends so */
    uint64_t wake_ms;    /* call again once t_ms reaches this (ms since
                            migration start) even without a sync;
                            UINT64_MAX: only at syncs */
    int changed;         /* set by the hook when it changed anything above
                            (an action of the controller) */
};

typedef void (*est_fc_fn)(void *ud, const struct est_fc_view *v, struct est_fc_ctl *ctl);

#define EST_FC_PASSES 4000 /* passes or wakes one forecast simulates, at most */
#define EST_FC_CALLS 400   /* hook calls of one forecast, at most */

/* Forecasts the time to completion from the estimator's state, with fn
 * deciding at each sync and wake (fn is called first at the last sample's
 * time). end selects the model: 0 the central one (eta_ms), -1 the
 * optimistic (eta_low_ms), +1 the pessimistic one (eta_high_ms). Writes
 * the time to completion (ms from the last sample; EST_ETA_INFINITE when
 * the model never completes, the controller aborts, or the bounds run out)
 * to *eta_ms and the guest pause at switchover to *pause_ms (either may be
 * NULL), and to *changed whether fn changed anything. Returns 0, or
 * FERR_STATE when the bandwidth is unknown or pre-copy is not running,
 * FERR_INVAL for a NULL e or fn. e is not modified. */
int est_forecast(const struct est *e, int end, est_fc_fn fn, void *ud, uint64_t *eta_ms,
                 uint64_t *pause_ms, int *changed) __attribute__((warn_unused_result));

/* Returns the stable name of v ("converging", "needs_downtime", "cannot",
 * "done", "unknown"). */
const char *est_verdict_name(enum est_verdict v);

#endif
