/* forecast — the ETA with the controller's own future actions in it.
 *
 * The estimator alone predicts the finish at the settings in force (plus a
 * known downtime schedule). What the convergence controller will do later —
 * raise the limit when the model says it is late, climb the ladder
 * (bandwidth, auto-converge throttle, post-copy, pause), abort — changes
 * when the migration ends. fc_estimate() runs the estimator's model forward
 * (est_forecast) with a COPY of the controller in the loop: at each
 * modelled sync and wake time the copy is ticked with the sample and
 * estimate the model says QEMU and the estimator would then show, exactly
 * as the agent ticks the real one, and its actions change the model: limit,
 * bandwidth (when the cap binds), the CPU throttle through QEMU's
 * auto-converge rule (docs/CONTROLLER.md), post-copy, pause, abort.
 *
 * Consent: the forecast assumes a prompt yes to every request (the
 * controller then acts at once); how long a person takes is unknown, so a
 * forecast that passes a request says so (est_out.eta_consent_wait) and
 * leaves the high end of the interval open (EST_ETA_INFINITE).
 *
 * Pure: no I/O, no clock, no allocation; the controller and the estimator
 * are only read.
 */
#ifndef FERRY_CORE_FORECAST_H
#define FERRY_CORE_FORECAST_H
#include <stdint.h>

#include "core/conv.h"
#include "core/estimator.h"
#include "core/sample.h"

/* What one fc_estimate() found, besides what it put into the estimate. */
struct fc_result {
    int used;              /* 1: the controller's copy acted in the central
                              forecast, so out's ETA is the forecast's */
    int finite;            /* the central forecast completes */
    int aborts;            /* ... the copy aborts instead */
    int consent_wait;      /* ... it passes a consent request */
    uint64_t eta_ms;       /* central forecast, ms from the last sample
                              (EST_ETA_INFINITE: never) */
    uint64_t low_ms;       /* optimistic model, ms */
    uint64_t high_ms;      /* pessimistic model, ms */
    uint32_t n_actions;    /* actions of the copy that changed the model
                              in the central forecast */
    uint64_t first_act_ms; /* t_ms of the first of them (ms since start) */
};

/* Forecasts the migration estimated by e (after its last sample, last) with
 * the controller c as it stands after this tick's conv_tick, and when the
 * controller's copy acts, replaces out's eta_ms, eta_low_ms, eta_high_ms,
 * eta_known and predicted_downtime_ms with the forecast's and sets
 * out->eta_forecast (and eta_consent_wait when it passes a consent
 * request). Otherwise out is left as the estimator made it (the model
 * without actions is the estimator's own). Progress is never touched.
 * res (may be NULL) receives what was found. Returns 0; FERR_INVAL for NULL
 * c, e, last or out; FERR_STATE (out unchanged) when the controller is done
 * or pre-copy is not running. */
int fc_estimate(const struct conv *c, const struct est *e, const struct mig_sample *last,
                struct est_out *out, struct fc_result *res) __attribute__((warn_unused_result));

#endif
