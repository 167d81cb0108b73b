/* forecast — the estimator's model run forward with a copy of the
 * convergence controller deciding on it. See forecast.h and
 * docs/CONTROLLER.md ("Forecast"). */
#include "core/forecast.h"

#include <math.h>
#include <string.h>

#define FC_WAKE_MIN_MS                                                                             \
    1000 /* the copy is ticked at least this far apart                                             \
            between syncs, ms */
#define FC_WAKE_FRAC                                                                               \
    0.10 /* ... and at most this share of the elapsed                                              \
            time apart (ticks thin out geometrically) */
#define FC_AC_PERIOD_MS                                                                            \
    1000 /* QEMU's auto-converge period: a sync at                                                 \
            least 1 s after the period's start closes it */
#define FC_AC_TRIGGER                                                                              \
    0.50 /* throttle-trigger-threshold: dirtied / sent                                             \
            in a period above this counts as high */
#define FC_TICK_MS                                                                                 \
    250 /* the agent's sample period: the controller's                                             \
           next tick after a consent answer, ms */
#define FC_BW_BOUND                                                                                \
    0.85 /* measured R at least this share of                                                      \
            max-bandwidth: the cap is what binds */

/* State of one forecast: the controller's copy and QEMU's auto-converge
 * as the model plays them. */
struct fc_ctx {
    struct conv c;                    /* the copy, ticked by the hook */
    struct est_out base;              /* the estimator's own estimate */
    struct mig_sample last;           /* the last real sample */
    uint64_t max_bw_bps;              /* max-bandwidth in force, 0 none */
    uint32_t thr0;                    /* throttle in force at the last
                                         sample, % (the measured D has it) */
    uint32_t thr;                     /* throttle now, % */
    int ac_on;                        /* auto-converge enabled */
    uint32_t ac_init, ac_inc, ac_max; /* its parameters, % */
    uint64_t ac_next_ms;              /* earliest next throttle step, ms */
    int consent_wait;                 /* a consent request was passed */
    int aborts;                       /* the copy aborted */
    uint32_t n_act;                   /* model-changing actions */
    uint64_t first_act_ms;            /* when the first came */
    int answered;                     /* this tick answered a consent
                                         request: tick again soon */
};

static uint64_t umin(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* Dirty-rate factor of throttle p % relative to the throttle the
 * estimator's D was measured under. */
static double thr_mul(const struct fc_ctx *x)
{
    double base = 1.0 - (double)x->thr0 / 100.0;
    if (base < 0.01)
        base = 0.01;
    double m = (1.0 - (double)x->thr / 100.0) / base;
    return m < 0 ? 0 : m > 1 ? 1 : m;
}

/* QEMU 7.2 auto-converge (migration_trigger_throttle): at a sync that
 * closes a period of at least 1 s in which the guest dirtied more than
 * half of what was sent, the high count rises; at two, the throttle goes
 * to initial (from 0) or up by increment, at most max. The model's passes
 * carry no per-period bookkeeping, so a step is allowed once per two
 * periods (two passes, at least 1 s each) while the last pass's dirty set
 * was high against what it sent. Returns 1 when the throttle moved. */
static int fc_auto_converge(struct fc_ctx *x, const struct est_fc_view *v)
{
    if (!x->ac_on || v->pass1 || !v->synced || v->t_ms < x->ac_next_ms)
        return 0;
    double sent = v->bw_bps * v->pass_ms / 1000.0;
    double high = sent > 0 && v->level > 0 ? v->level / sent : v->dirty_bps / v->bw_bps;
    if (!(high > FC_AC_TRIGGER))
        return 0;
    uint32_t before = x->thr;
    if (x->thr == 0)
        x->thr = x->ac_init;
    else
        x->thr = x->thr + x->ac_inc > x->ac_max ? x->ac_max : x->thr + x->ac_inc;
    /* the count starts again: high at the next period's close, the step
     * at the one after */
    double per = v->pass_ms > FC_AC_PERIOD_MS ? v->pass_ms : FC_AC_PERIOD_MS;
    x->ac_next_ms = v->t_ms + (uint64_t)(1.5 * per);
    return x->thr != before;
}

static void note_act(struct fc_ctx *x, uint64_t t_ms, struct est_fc_ctl *ctl)
{
    if (!x->n_act++)
        x->first_act_ms = t_ms;
    ctl->changed = 1;
}

/* The hook of est_forecast: QEMU's auto-converge, then one tick of the
 * controller's copy with the sample and estimate the model shows, its
 * actions carried out on the model. */
static void fc_hook(void *ud, const struct est_fc_view *v, struct est_fc_ctl *ctl)
{
    struct fc_ctx *x = ud;
    if (fc_auto_converge(x, v)) {
        ctl->dirty_mul = thr_mul(x);
        note_act(x, v->t_ms, ctl);
    }

    struct mig_sample s = x->last;
    s.t_ms = v->t_ms;
    s.phase = MIG_PHASE_ACTIVE;
    s.ram_remaining = v->remaining;
    s.ram_transferred = v->transferred;
    s.dirty_sync_count = v->syncs;
    s.bw_bps = (uint64_t)v->bw_bps;
    s.throttle_pct = x->thr;
    s.setting_downtime_ms = ctl->limit_ms;
    s.setting_max_bw_bps = x->max_bw_bps;
    s.expected_downtime_ms =
        v->bw_bps > 0 ? (uint64_t)((double)v->remaining * 1000.0 / v->bw_bps) : 0;
    if (!v->pass1) {
        uint64_t page = mig_sample_page_bytes(&x->last);
        double dq = v->meas_dirty_bps > 0 ? v->meas_dirty_bps : v->dirty_bps;
        s.dirty_pages_rate = (uint64_t)(dq / (double)page);
        s.dirty_rate_hint_pps = 0;
        s.census_dirty_bytes = s.census_dirty_ms = 0;
    }

    struct est_out eo = x->base;
    eo.t_ms = v->t_ms;
    eo.phase = MIG_PHASE_ACTIVE;
    eo.bw_bps = v->bw_bps;
    eo.ram_remaining = v->remaining;
    eo.since_sync_ms = v->since_sync_ms;
    eo.downtime_ms = ctl->limit_ms;
    if (!v->pass1) {
        /* what the estimator would show: QEMU's per-period rate smoothed,
         * not the model's write rate (a working set saturates: a 15 s
         * pass over a set of 7 GiB written at 0.9 GiB/s reads 0.4 GiB/s,
         * and with the write rate the copy judged itself late) */
        eo.dirty_bps = v->meas_dirty_bps > 0 ? v->meas_dirty_bps : v->dirty_bps;
        eo.ratio = v->bw_bps > 0 ? eo.dirty_bps / v->bw_bps : 0;
        if (v->meas_spread > 0)
            eo.spread = v->meas_spread;
        if (v->ws_bytes > 0 && v->w_bps > 0) {
            eo.sat_ws_bytes = v->ws_bytes;
            eo.sat_w_bps = v->w_bps;
        }
        eo.dirty_measured = 1;
        eo.dirty_hinted = eo.dirty_census = 0;
        eo.nonzero_hinted = eo.nonzero_census = 0;
        eo.nonzero_share = 1;
        eo.pass1_left_bytes = 0;
        eo.hint_ws_bytes = 0;
        if (v->level > 0)
            eo.level_bytes = (uint64_t)v->level;
        eo.level_stuck = v->steady;
        eo.periods =
            x->base.periods +
            (v->syncs > x->last.dirty_sync_count ? v->syncs - x->last.dirty_sync_count : 0);
        eo.verdict = v->steady ? EST_VERDICT_NEEDS_DOWNTIME : EST_VERDICT_CONVERGING;
    }

    struct conv_action acts[CONV_ACTIONS_MAX];
    size_t n = 0;
    if (conv_tick(&x->c, &s, &eo, v->t_ms, acts, CONV_ACTIONS_MAX, &n) != 0)
        n = 0;
    for (size_t i = 0; i < n; i++) {
        const struct conv_action *a = &acts[i];
        switch (a->kind) {
        case CONV_ACT_SET_DOWNTIME:
            if (a->downtime_ms && a->downtime_ms != ctl->limit_ms) {
                ctl->limit_ms = a->downtime_ms;
                note_act(x, v->t_ms, ctl);
            }
            break;
        case CONV_ACT_SET_BANDWIDTH: {
            /* the new cap moves R only where the old one was what bound
             * it; an unlimited or link-bound R stays (a lower cap binds) */
            double r = ctl->bw_bps, nb = (double)a->bw_bps;
            if (x->max_bw_bps > 0 && r >= FC_BW_BOUND * (double)x->max_bw_bps && nb > 0)
                r = r * nb / (double)x->max_bw_bps;
            else if (nb > 0 && nb < r)
                r = nb;
            x->max_bw_bps = a->bw_bps;
            if (r != ctl->bw_bps) {
                ctl->bw_bps = r;
                note_act(x, v->t_ms, ctl);
            }
            break;
        }
        case CONV_ACT_SET_THROTTLE:
            x->ac_on = a->auto_converge;
            x->ac_init = a->throttle_initial_pct;
            x->ac_inc = a->throttle_increment_pct;
            x->ac_max = a->throttle_max_pct;
            if (x->ac_on && x->thr > 0 && x->thr < x->ac_init) {
                /* the agent jumps an active throttle to the target */
                x->thr = x->ac_init;
                ctl->dirty_mul = thr_mul(x);
            }
            /* QEMU acts at its next trigger: the second period that
             * closes from now (the current pass's sync, then one more) */
            {
                double per = v->pass_ms > FC_AC_PERIOD_MS ? v->pass_ms : FC_AC_PERIOD_MS;
                double rest = v->pass_ms > (double)v->since_sync_ms
                                  ? v->pass_ms - (double)v->since_sync_ms
                                  : 0;
                x->ac_next_ms = v->t_ms + (uint64_t)(rest + 0.5 * per);
            }
            note_act(x, v->t_ms, ctl);
            break;
        case CONV_ACT_START_POSTCOPY:
            ctl->end = EST_FC_POSTCOPY;
            note_act(x, v->t_ms, ctl);
            break;
        case CONV_ACT_PAUSE_GUEST:
            ctl->end = EST_FC_PAUSE;
            note_act(x, v->t_ms, ctl);
            break;
        case CONV_ACT_ABORT:
            ctl->end = EST_FC_ABORT;
            x->aborts = 1;
            note_act(x, v->t_ms, ctl);
            return;
        case CONV_ACT_REQUEST_CONSENT:
            /* a prompt yes; the real wait is unknown (forecast.h). The
             * controller acts on it at its next tick, a sample later, not
             * at the next wake (up to 10 % of the elapsed time away) */
            x->consent_wait = 1;
            if (conv_consent(&x->c, a->step, true) != 0) {
            }
            x->answered = 1;
            break;
        default: /* stall and budget reports, disk-side actions */
            break;
        }
        if (ctl->end != EST_FC_GO_ON)
            break;
    }
    /* tick again at the copy's next time-based decision, QEMU's next
     * throttle step, and at least every max(1 s, 10 % of the elapsed) */
    uint64_t step = (uint64_t)(FC_WAKE_FRAC * (double)v->t_ms);
    uint64_t w = v->t_ms + (step > FC_WAKE_MIN_MS ? step : FC_WAKE_MIN_MS);
    w = umin(w, conv_next_event_ms(&x->c));
    if (x->ac_on && x->thr < x->ac_max && x->ac_next_ms > v->t_ms)
        w = umin(w, x->ac_next_ms);
    if (x->answered)
        w = umin(w, v->t_ms + FC_TICK_MS);
    x->answered = 0;
    ctl->wake_ms = w;
}

/* One forecast of model end (-1, 0, +1) with a fresh copy of c. */
static int fc_run(struct fc_ctx *x, const struct conv *c, const struct est *e,
                  const struct mig_sample *last, int end, uint64_t *eta, uint64_t *pause,
                  int *changed)
{
    memset(x, 0, sizeof(*x));
    x->c = *c;
    est_get(e, &x->base);
    x->last = *last;
    x->max_bw_bps = last->setting_max_bw_bps;
    x->thr0 = x->thr = last->throttle_pct;
    if (c->pol.kind == CONV_ADAPTIVE && c->rung_state[CONV_STEP_THROTTLE] == CONV_RUNG_ACTIVE) {
        x->ac_on = 1;
        x->ac_init = c->pol.adaptive.throttle_initial_pct;
        x->ac_inc = c->pol.adaptive.throttle_increment_pct;
        x->ac_max = c->pol.adaptive.throttle_max_pct;
        x->ac_next_ms = last->t_ms;
    }
    /* a request already waiting for its answer: the same prompt yes */
    for (int st = 0; st < CONV_STEP__COUNT; st++)
        if (x->c.consent[st] == CONV_CONSENT_PENDING) {
            x->consent_wait = 1;
            if (conv_consent(&x->c, (enum conv_step)st, true) != 0) {
            }
        }
    return est_forecast(e, end, fc_hook, x, eta, pause, changed);
}

int fc_estimate(const struct conv *c, const struct est *e, const struct mig_sample *last,
                struct est_out *out, struct fc_result *res)
{
    static const struct fc_result none = {
        0, 0, 0, 0, EST_ETA_INFINITE, EST_ETA_INFINITE, EST_ETA_INFINITE, 0, 0};
    if (res)
        *res = none;
    if (!c || !e || !last || !out)
        return FERR_INVAL;
    if (c->done || c->paused || c->postcopy ||
        (last->phase != MIG_PHASE_ACTIVE && last->phase != MIG_PHASE_SETUP))
        return FERR_STATE;
    struct fc_ctx x;
    uint64_t mid = EST_ETA_INFINITE, pause = EST_ETA_INFINITE, lo = EST_ETA_INFINITE,
             hi = EST_ETA_INFINITE;
    int ch = 0, ch2 = 0;
    int rc = fc_run(&x, c, e, last, 0, &mid, &pause, &ch);
    if (rc != 0)
        return rc;
    int consent = x.consent_wait, aborts = x.aborts;
    uint32_t n_act = x.n_act;
    uint64_t first = x.first_act_ms;
    if (!ch)
        return 0; /* the copy did nothing: the estimator's ETA stands */
    if (fc_run(&x, c, e, last, -1, &lo, NULL, &ch2) != 0)
        lo = mid;
    if (fc_run(&x, c, e, last, +1, &hi, NULL, &ch2) != 0)
        hi = EST_ETA_INFINITE;
    if (mid != EST_ETA_INFINITE) {
        if (lo > mid)
            lo = mid;
        if (hi < mid)
            hi = mid;
    } else {
        lo = hi = EST_ETA_INFINITE;
    }
    if (consent)
        hi = EST_ETA_INFINITE;
    out->eta_known = mid != EST_ETA_INFINITE;
    out->eta_ms = mid;
    out->eta_low_ms = lo;
    out->eta_high_ms = hi;
    out->predicted_downtime_ms = mid != EST_ETA_INFINITE ? pause : 0;
    out->eta_forecast = 1;
    out->eta_consent_wait = consent;
    if (res) {
        res->used = 1;
        res->finite = mid != EST_ETA_INFINITE;
        res->aborts = aborts;
        res->consent_wait = consent;
        res->eta_ms = mid;
        res->low_ms = lo;
        res->high_ms = hi;
        res->n_actions = n_act;
        res->first_act_ms = first;
    }
    return 0;
}
