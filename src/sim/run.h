/* run — drives the pre-copy model (precopy.h) with the SAME core modules the
 * agent uses: every SIM_SAMPLE_MS the model's counters become a struct
 * mig_sample, which is fed to the estimator (core/estimator.h) and to the
 * convergence controller (core/conv.h); the controller's actions are carried
 * out on the model, and consent requests are answered as the scenario says.
 *
 * Pure and deterministic like the model: no clock, no I/O; samples reach
 * the caller through an optional callback (progress lines, traces, ETA
 * bookkeeping in the benchmarks).
 */
#ifndef FERRY_SIM_RUN_H
#define FERRY_SIM_RUN_H
#include <stdint.h>

#include "core/conv.h"
#include "core/estimator.h"
#include "core/sample.h"
#include "sim/precopy.h"
#include "util/ferr.h"

#define SIM_SAMPLE_MS 250 /* the agent's query-migrate period, ms */

enum sim_policy {
    SIM_POL_QEMU = 0, /* no controller: QEMU's own parameters only */
    SIM_POL_NOVA,     /* conv CONV_NOVA */
    SIM_POL_SCHEDULE, /* conv CONV_SCHEDULE (oVirt-like by default) */
    SIM_POL_ADAPTIVE, /* conv CONV_ADAPTIVE */
    SIM_POL__COUNT
};

enum sim_consent {
    SIM_CONSENT_GRANT = 0, /* granted at once */
    SIM_CONSENT_REFUSE,    /* refused at once */
    SIM_CONSENT_AFTER,     /* granted consent_after_ms after the request */
};

struct sim_scenario {
    char name[64]; /* for tables */
    struct precopy_workload wl;
    struct precopy_params par;
    enum sim_policy policy;
    struct conv_policy conv; /* used unless policy is SIM_POL_QEMU */
    enum sim_consent consent;
    uint64_t consent_after_ms;     /* SIM_CONSENT_AFTER: delay, ms */
    uint64_t max_ms;               /* give up (timed out) after this, ms */
    uint64_t hint_nonzero_bytes;   /* est_params hint from an earlier
                                      migration of this guest, bytes; 0 none */
    uint64_t hint_dirty_set_bytes; /* the same for the working set, bytes */
    double hint_dirty_bps;         /* the same for the pass-1 dirty rate, bytes/s */
    /* Pre-migration memory census (as the agent takes it, agent/census.h):
     * at t0 the non-zero pages are counted as present pages minus the
     * all-zero share found in a sample of census_sample_pages present
     * pages; the estimate goes to the estimator (est_set_census). Pages
     * written non-zero after t0 are not in it. */
    int census;                   /* 1: take a census at t0 */
    double census_present_zero;   /* share of the zero pages that are
                                     present (touched, still all-zero),
                                     0..1; the rest were never touched */
    uint32_t census_sample_pages; /* present pages read to estimate the
                                     zero share; 0 → SIM_CENSUS_SAMPLE */
    double census_bias;           /* multiplies the census (a deliberately
                                     wrong one, for tests); 0 → 1 */
    int no_forecast;              /* 1: report the estimator's ETA alone,
                                     without the controller's forecast
                                     actions (core/forecast.h): the
                                     baseline of bench/eta_accuracy */
    int census_count_only;        /* 1: no re-reads of its sample (the
                                     written-since-census curve), the
                                     count alone */
    int link_unknown;             /* 1: the estimator is not told the
                                     link rate (par.link_bps; est_params.
                                     link_bps), as on a host's first move:
                                     it then takes the final stage at the
                                     measured bandwidth */
};

#define SIM_CENSUS_SAMPLE 8192 /* pages the agent's census reads (agent/census.h) */

/* The census sim_run takes when sc->census is set, from model m at t0:
 * *nonzero_bytes the estimate, *rel_err its relative standard error,
 * *true_bytes what is really non-zero, profile[EST_CENSUS_BUCKETS] the
 * estimate per equal slice of RAM in address order (any of them may be
 * NULL). Per slice, as the agent does: present pages exact, their zero
 * share from an equal part of the sample. Deterministic: its draws use a
 * stream seeded from sc->par.seed, so the run itself is unchanged. While
 * pass 1 runs, sim_run also re-reads the sample as the agent does
 * (census_tick: at 0.25, 0.5, 1, 2 ... s) and puts the RAM written since
 * t0 it finds into the samples' census_dirty_bytes / census_dirty_ms: the
 * model's distinct pages written since t0 on the present pages, with the
 * sampling error of the agent's sample (unless census_count_only). */
void sim_census(const struct sim_scenario *sc, const struct precopy *m, uint64_t *nonzero_bytes,
                double *rel_err, uint64_t *true_bytes, uint64_t *profile);

struct sim_result {
    int completed;                       /* guest runs on the destination */
    int aborted;                         /* the controller cancelled the migration */
    int timed_out;                       /* still running at max_ms */
    double total_ms;                     /* migrate to the end (or to max_ms), ms */
    double downtime_ms;                  /* switchover stop, ms */
    double paused_ms;                    /* controller pause before switchover, ms */
    double guest_stop_ms;                /* downtime + paused: what the guest felt, ms */
    double postcopy_ms;                  /* time in post-copy, ms */
    uint64_t iterations;                 /* dirty bitmap syncs (QEMU's dirty-sync-count) */
    uint64_t bytes_sent;                 /* bytes on the wire */
    uint32_t max_throttle;               /* highest CPU throttle, % */
    double throttle_pct_s;               /* throttle integral, %*s */
    uint64_t final_downtime_limit_ms;    /* limit in force at the end, ms */
    uint32_t n_actions[CONV_ACT__COUNT]; /* actions the controller emitted */
    uint32_t n_failed_actions;           /* actions the model refused (e.g. no post-copy) */
    double lower_bound_ms;               /* non-zero RAM / min(link, cap): no run is faster, ms */
};

/* Called after each sample with the sample and the estimate made from it
 * (both borrowed for the call). */
typedef void (*sim_sample_cb)(void *ud, const struct mig_sample *s, const struct est_out *e);
/* Called for each action the controller emits, at sample time now_ms. */
typedef void (*sim_action_cb)(void *ud, uint64_t now_ms, const struct conv_action *a);

/* Fills sc with a scenario: ram_gib of RAM over a link of bw_mibps, QEMU
 * defaults, the given policy with its defaults (Nova sized to the RAM,
 * adaptive deadline max(120 s, 3 x the lower bound), schedule oVirt-like),
 * consent granted, max_ms 2 h. */
void sim_scenario_default(struct sim_scenario *sc, double ram_gib, double bw_mibps,
                          enum sim_policy policy);

/* Re-applies the policy defaults to sc->conv for sc->policy after the
 * caller changed the workload (Nova's RAM size, adaptive deadline). */
void sim_scenario_set_policy(struct sim_scenario *sc, enum sim_policy policy);

/* Runs sc to its end. Fills *r. Returns 0, or FERR_INVAL when the workload,
 * parameters or controller policy are rejected (err says which field). The
 * callbacks may be NULL. */
int sim_run(const struct sim_scenario *sc, struct sim_result *r, sim_sample_cb on_sample,
            sim_action_cb on_action, void *ud, struct ferr *err)
    __attribute__((warn_unused_result));

/* Fills s from the model's counters (borrowed m). */
void sim_sample_from(const struct precopy *m, struct mig_sample *s);

/* Stable names ("qemu", "nova", "schedule", "adaptive") and their parse
 * (returns 0 or FERR_INVAL). */
const char *sim_policy_name(enum sim_policy p);
int sim_policy_parse(const char *name, enum sim_policy *out) __attribute__((warn_unused_result));

/* The lower bound of sc's total time: non-zero RAM on the wire at
 * min(link, max-bandwidth), ms. */
double sim_lower_bound_ms(const struct sim_scenario *sc);

#endif
