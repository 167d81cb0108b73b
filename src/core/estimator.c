/* estimator — pre-copy model, EWMA over dirty-sync periods, monotone
 * progress. See docs/CONTROLLER.md for the formulas. */
#include "core/estimator.h"

#include <math.h>
#include <string.h>

#include "util/ferr.h"

/* The model inputs of one prediction. */
struct model {
    double r;            /* bandwidth, bytes/s */
    double d;            /* dirty rate, bytes/s */
    double v;            /* remaining now, bytes */
    double since_s;      /* s since the last sync */
    double total;        /* cap on the dirty set, bytes */
    double disk_left;    /* bytes */
    double disk_bps;     /* bytes/s */
    uint64_t t0_ms;      /* now, ms since migration start */
    uint64_t base_dt_ms; /* limit in force now */
    double gran_s;       /* QEMU's check granularity, s */
    double dirt_cap;     /* cap on what is dirtied between two syncs (an
                            earlier migration's set), bytes; 0: none */
    double sat_h;        /* working set H: what is dirtied in T seconds is
                            H (1 - e^(-wT/H)) instead of d T; 0: none */
    double sat_w;        /* the write rate w of that curve, bytes/s */
    int pass1;           /* v is pass 1's pending (cold pages), not the
                            dirty set: total does not cap it */
    double p1_share;     /* pass 1: v / all bytes pending (zero pages
                            count in QEMU's remaining, not in v); 0: 1 */
    double r_fin;        /* rate of the final stage (QEMU lifts the cap at
                            switchover), bytes/s; below r (or 0): r */
};

struct pred {
    int finite;
    double t_s;     /* time to completion */
    double pause_s; /* guest pause at switchover */
    double sent;    /* bytes still to send (incl. disk) */
};

/* Limit in force at absolute time t_ms: the last schedule entry at or
 * before t_ms, else the base limit. */
static uint64_t limit_at(const struct est_sched_step *sched, size_t n, uint64_t base, uint64_t t_ms)
{
    uint64_t v = base;
    for (size_t i = 0; i < n && sched[i].t_ms <= t_ms; i++)
        v = sched[i].downtime_ms;
    return v;
}

/* First schedule change strictly after t_ms, or UINT64_MAX. */
static uint64_t next_change(const struct est_sched_step *sched, size_t n, uint64_t t_ms)
{
    for (size_t i = 0; i < n; i++)
        if (sched[i].t_ms > t_ms)
            return sched[i].t_ms;
    return UINT64_MAX;
}

static uint64_t to_ms(double s)
{
    if (!(s >= 0))
        return 0;
    if (s * 1000.0 >= 1.8e19)
        return EST_ETA_INFINITE - 1;
    return (uint64_t)llround(s * 1000.0);
}

/* Simulates QEMU 7.2 pre-copy: a pass sends until what is dirty drops below
 * the threshold R*limit, then the bitmap syncs (adding what was dirtied
 * since the last sync); switchover when the synced amount is below the
 * threshold. Passes that make no progress jump to the next schedule change,
 * or end the prediction as infinite.
 *
 * Closed form, bounded work. With the limit constant, after a sync at
 * level V the next pass sends x = V - floor (floor = thr - R*g, >= 0) and
 * the next sync finds floor + rho*x (rho = D/R; the cap on the dirty set
 * only binds at the first sync, since rho < 1 afterwards). So x_k =
 * x_0*rho^k; switchover at the first k with x_k <= thr - floor, and the
 * time of k passes is x_0*(1 - rho^k)/((1 - rho)*R). A schedule change
 * splits this into segments; each segment is solved in O(1), so the cost is
 * O(schedule entries) instead of one loop turn per simulated pass. */
#define PRED_SEG_MAX (4 * EST_SCHED_MAX + 8) /* loop turns, bounded */
#define PRED_SAT_PASSES                                                                            \
    2000 /* passes simulated one by one                                                            \
            on a saturating curve */
#define PRED_SAT_LINEAR                                                                            \
    0.02                 /* w T / H below this: the curve                                          \
                            is a straight line (rate w) */
#define PRED_T_MAX_S 1e8 /* beyond ~3 years: never */

/* Passes k >= 1 needed until x*rho^k <= tgt (rho in [0,1), x > tgt > 0). */
static double passes_needed(double x, double tgt, double rho)
{
    if (rho <= 0)
        return 1;
    double k = ceil(log(tgt / x) / log(rho) - 1e-9);
    return k < 1 ? 1 : k;
}

/* Seconds spent sending k passes starting with x bytes. */
static double passes_time(double x, double rho, double k, double r)
{
    if (rho <= 0)
        return x / r;
    return x * (1.0 - pow(rho, k)) / ((1.0 - rho) * r);
}

static struct pred predict(const struct model *m, const struct est_sched_step *sched,
                           size_t n_sched)
{
    struct pred p = {0, 0, 0, 0};
    if (!(m->r > 0))
        return p;
    double t = 0, sent = 0;
    if (m->disk_left > 0) {
        /* never slower than the link: once memory moves, the mirrors are
         * READY and only trickle (guest writes, possibly held down by an
         * impact budget) — their rest goes flat out at switchover; a
         * trickle rate would put the finish hours away */
        double dbps = m->disk_bps > m->r ? m->disk_bps : m->r;
        t += m->disk_left / dbps;
        sent += m->disk_left;
    }
    /* With a working set (sat_h), what a pass dirties depends on its
     * length: short passes dirty at nearly w, long ones saturate at H. The
     * passes are then simulated one by one (bounded) until they are short
     * enough for the curve to be a line, and the closed form takes over
     * with rate w. */
    int sat = m->sat_h > 0 && m->sat_w > 0;
    double d = m->d;
    double rho = d > 0 ? d / m->r : 0;
    double v = m->v, since = m->since_s;
    double prev_exact = -1;
    int sat_passes = 0;
    int in_pass1 = m->pass1; /* until its sync */
    double p1_share = m->p1_share > 0 && m->p1_share <= 1 ? m->p1_share : 1;
    for (int it = 0; it < PRED_SEG_MAX + PRED_SAT_PASSES && t < PRED_T_MAX_S; it++) {
        uint64_t abs_ms = m->t0_ms + to_ms(t);
        double thr = m->r * (double)limit_at(sched, n_sched, m->base_dt_ms, abs_ms) / 1000.0;
        if (sat &&
            (sat_passes >= PRED_SAT_PASSES ||
             (since > 0 && m->sat_w * since < PRED_SAT_LINEAR * m->sat_h && m->sat_w < m->r))) {
            sat = 0; /* from here on a line: rate w */
            d = m->sat_w;
            rho = d / m->r;
        }
        if (!sat && it >= PRED_SEG_MAX + sat_passes)
            break;
        /* pass 1: QEMU compares all pages pending (zero pages too) with
         * the threshold; v counts the non-zero bytes, share of them */
        if ((in_pass1 ? v / p1_share : v) <= thr) {
            double dirt = sat ? m->sat_h * (1.0 - exp(-m->sat_w * since / m->sat_h)) : d * since;
            if (m->dirt_cap > 0 && dirt > m->dirt_cap)
                dirt = m->dirt_cap;
            if (m->total > 0 && dirt > m->total)
                dirt = m->total;
            /* the cap is on the dirty set; what pass 1 has not sent is
             * outside it (cold pages, sent once) */
            double exact = v + dirt;
            if (m->total > 0 && exact > m->total && !in_pass1)
                exact = m->total;
            in_pass1 = 0;
            if (exact <= thr) {
                p.finite = 1;
                p.pause_s = exact / fmax(m->r, m->r_fin);
                p.t_s = t + p.pause_s;
                p.sent = sent + exact;
                return p;
            }
            if ((!sat && rho >= 1.0 - 1e-12) ||
                (prev_exact >= 0 && exact >= prev_exact * (1.0 - (sat ? 1e-3 : 1e-9)))) {
                /* no progress: only a higher limit can help */
                uint64_t nc = next_change(sched, n_sched, abs_ms);
                if (nc == UINT64_MAX)
                    return p;
                double wait = (double)(nc - m->t0_ms) / 1000.0 - t;
                if (wait < 0.001)
                    wait = 0.001;
                t += wait;
                sent += wait * m->r;
                v = exact;
                since = 0;
                prev_exact = -1;
                continue;
            }
            prev_exact = exact;
            v = exact;
            since = 0;
            if (sat)
                sat_passes++;
            /* geometric passes under this limit, up to the next change */
            double floor_b = thr - m->r * m->gran_s;
            if (floor_b < 0)
                floor_b = 0;
            double x = v - floor_b, tgt = thr - floor_b;
            if (!sat && x > 0 && tgt > 0) {
                double k = passes_needed(x, tgt, rho);
                uint64_t nc = next_change(sched, n_sched, abs_ms);
                if (nc != UINT64_MAX) {
                    /* passes whose sync falls before the change keep thr */
                    double left = (double)(nc - m->t0_ms) / 1000.0 - t;
                    double q = 1.0 - left * (1.0 - rho) * m->r / x;
                    double kc = q <= 0 ? INFINITY : rho <= 0 ? 1 : ceil(log(q) / log(rho) - 1e-9);
                    if (kc < 1)
                        kc = 1;
                    if (kc < k)
                        k = kc;
                }
                if (k > 1) { /* all but the last pass at once */
                    double ts = passes_time(x, rho, k - 1, m->r);
                    t += ts;
                    sent += x * (1.0 - pow(rho, k - 1)) / (rho < 1 ? 1.0 - rho : 1.0);
                    v = floor_b + x * pow(rho, k - 1);
                    prev_exact = v;
                }
            }
        }
        /* send until pending is below the threshold by one burst */
        double floor_b = thr - m->r * m->gran_s;
        if (floor_b < 0)
            floor_b = 0;
        if (in_pass1) {
            /* the non-zero bytes among those last pages: the zero pages
             * are taken to lie at the end (untouched high memory; a
             * uniform mix, and the census profile's own density of the
             * tail, were worse in the sim) */
            double pend = v / p1_share;
            floor_b = fmax(0, v - (pend - floor_b));
        }
        double ts = v > floor_b ? (v - floor_b) / m->r : 0;
        t += ts;
        since += ts;
        sent += v > floor_b ? v - floor_b : 0;
        v = floor_b;
    }
    return p;
}

/* The forecast stepper (est_forecast): the model of predict(), pass by
 * pass without the closed form, with the hook deciding at each sync and at
 * the wake times it asks for. What a pass dirties is tracked as the
 * throttled time since the sync (wr, s): d x wr on a line, H (1 -
 * e^(-w wr / H)) on a working-set curve. A pass that makes no progress
 * (steady state: the set stays as large) jumps to the next wake, the
 * syncs it would have made counted from the last pass's length. */
static double fc_dirt(const struct model *m, int sat, double d, double wr)
{
    double dirt = sat ? m->sat_h * (1.0 - exp(-m->sat_w * wr / m->sat_h)) : d * wr;
    if (m->dirt_cap > 0 && dirt > m->dirt_cap)
        dirt = m->dirt_cap;
    if (m->total > 0 && dirt > m->total)
        dirt = m->total;
    return dirt;
}

/* What est_update would make of the modelled syncs (est_fc_view's
 * meas_*): its EWMA state, seeded from the estimator's own. */
struct fc_meas {
    double alpha;      /* est_params.ewma_alpha */
    double spread_min; /* est_params.spread_min */
    double bw_spread;  /* bw_dev / bw of the estimator (0 none yet) */
    double d, dev;     /* smoothed per-period dirty rate and its deviation */
    int have;          /* d holds a measured rate */
};

static void ewma(double *s, double *dev, int *have, double x, double a);

static struct pred fc_predict(const struct model *m0, uint64_t tx0, uint64_t sync0, est_fc_fn fn,
                              void *ud, struct fc_meas *me, int *changed)
{
    struct model mm = *m0, *m = &mm;
    struct pred p = {0, 0, 0, 0};
    *changed = 0;
    if (!(m->r > 0))
        return p;
    double t = 0, sent = 0;
    if (m->disk_left > 0) { /* as predict(): disks first, at least at R */
        double dbps = m->disk_bps > m->r ? m->disk_bps : m->r;
        t += m->disk_left / dbps;
        sent += m->disk_left;
    }
    int sat = m->sat_h > 0 && m->sat_w > 0;
    double d = m->d, mul = 1.0, r = m->r;
    double v = m->v, wr = m->since_s, since = m->since_s;
    double level = 0, prev_exact = -1, pass_s = 0, pass_t0 = t - m->since_s;
    int in_pass1 = m->pass1, synced = 0, steady = 0, calls = 0;
    double p1_share = m->p1_share > 0 && m->p1_share <= 1 ? m->p1_share : 1;
    uint64_t limit = m->base_dt_ms, syncs = sync0;
    double wake = 0; /* s from the forecast's start; call at once */
    /* two turns a pass: its sync (the hook sees it at once, as the agent
     * ticks the controller at the first sample after a sync) and its send */
    for (int it = 0; it < 2 * EST_FC_PASSES && t < PRED_T_MAX_S; it++) {
        if ((t >= wake - 1e-9 || synced) && calls < EST_FC_CALLS) {
            struct est_fc_view vw;
            struct est_fc_ctl c;
            double pend = in_pass1 ? v / p1_share : v;
            memset(&vw, 0, sizeof(vw));
            vw.t_ms = m->t0_ms + to_ms(t);
            vw.remaining = (uint64_t)fmax(pend, 0);
            vw.transferred = tx0 + (uint64_t)sent;
            vw.syncs = syncs;
            vw.since_sync_ms = to_ms(since);
            vw.bw_bps = r;
            vw.dirty_bps = (sat ? m->sat_w : d) * mul;
            if (!in_pass1 && me->have) {
                vw.meas_dirty_bps = me->d;
                double sp = fmax(me->spread_min, me->bw_spread);
                if (me->d > 0 && me->dev / me->d > sp)
                    sp = me->dev / me->d;
                vw.meas_spread = sp > 0.9 ? 0.9 : sp;
            }
            if (sat) {
                vw.ws_bytes = m->sat_h;
                vw.w_bps = m->sat_w * mul;
            }
            vw.level = level;
            vw.pass_ms = pass_s * 1000.0;
            vw.pass1 = in_pass1;
            vw.synced = synced;
            vw.steady = steady;
            c.limit_ms = limit;
            c.bw_bps = r;
            c.dirty_mul = mul;
            c.end = EST_FC_GO_ON;
            c.wake_ms = UINT64_MAX;
            c.changed = 0;
            fn(ud, &vw, &c);
            calls++;
            if (c.changed)
                *changed = 1;
            limit = c.limit_ms ? c.limit_ms : limit;
            if (c.bw_bps > 0)
                r = c.bw_bps;
            mul = c.dirty_mul >= 0 && c.dirty_mul <= 1 ? c.dirty_mul : mul;
            if (c.end == EST_FC_ABORT)
                return p;
            if (c.end == EST_FC_POSTCOPY) {
                /* the guest runs on the destination now; what is pending
                 * (this pass's rest and what was dirtied since the sync)
                 * is pulled at the bandwidth */
                double pending = v + fc_dirt(m, sat, d, wr);
                p.finite = 1;
                p.pause_s = 0;
                p.t_s = t + pending / r;
                p.sent = sent + pending;
                return p;
            }
            if (c.end == EST_FC_PAUSE)
                mul = 0;
            wake = c.wake_ms == UINT64_MAX || c.wake_ms <= m->t0_ms
                       ? (c.wake_ms == UINT64_MAX ? INFINITY : t)
                       : (double)(c.wake_ms - m->t0_ms) / 1000.0;
            if (wake < t)
                wake = t; /* a wake in the past: at the next turn */
        }
        synced = 0;
        double thr = r * (double)limit / 1000.0;
        if ((in_pass1 ? v / p1_share : v) <= thr) {
            double dirt = fc_dirt(m, sat, d, wr);
            double exact = v + dirt;
            if (m->total > 0 && exact > m->total && !in_pass1)
                exact = m->total;
            in_pass1 = 0;
            syncs++;
            pass_s = t - pass_t0;
            pass_t0 = t;
            level = exact;
            /* QEMU's dirty-pages-rate of the period: what it dirtied
             * (distinct pages) over its length */
            if (pass_s > 0.001)
                ewma(&me->d, &me->dev, &me->have, dirt / pass_s, me->alpha);
            if (exact <= thr) {
                p.finite = 1;
                p.pause_s = exact / fmax(r, m->r_fin);
                p.t_s = t + p.pause_s;
                p.sent = sent + exact;
                return p;
            }
            double drate = (sat ? m->sat_w : d) * mul;
            steady = (!sat && drate >= r * (1.0 - 1e-12)) ||
                     (prev_exact >= 0 && exact >= prev_exact * (1.0 - (sat ? 1e-3 : 1e-9)));
            if (steady) {
                /* no progress at this limit: nothing changes until the
                 * hook's next wake; the passes keep their length */
                if (!isfinite(wake) || calls >= EST_FC_CALLS)
                    return p;
                double wait = wake - t;
                if (wait < 0.001)
                    wait = 0.001;
                double plen = pass_s > 0.001 ? pass_s : 0.001;
                double k = floor(wait / plen);
                t += wait;
                sent += wait * r;
                syncs += (uint64_t)fmin(k, 1e9);
                pass_t0 = t;
                v = exact;
                wr = since = 0;
                prev_exact = -1;
                synced = 1;
                continue;
            }
            prev_exact = exact;
            v = exact;
            wr = since = 0;
            synced = 1;
            continue; /* the hook first: it was called only after the
                         next send, up to its wake (46 s late on a
                         128 MiB/s link, and the ladder with it) */
        }
        /* send until pending is below the threshold by one burst, or
         * until the hook's wake */
        double floor_b = thr - r * m->gran_s;
        if (floor_b < 0)
            floor_b = 0;
        if (in_pass1) {
            double pend = v / p1_share;
            floor_b = fmax(0, v - (pend - floor_b));
        }
        double ts = v > floor_b ? (v - floor_b) / r : 0;
        if (t + ts > wake && wake > t)
            ts = wake - t;
        t += ts;
        since += ts;
        wr += ts * mul;
        sent += ts * r;
        v -= ts * r;
        if (v < floor_b)
            v = floor_b;
    }
    return p;
}

static void ewma(double *s, double *dev, int *have, double x, double a)
{
    if (!*have) {
        *s = x;
        *dev = 0;
        *have = 1;
        return;
    }
    double err = fabs(x - *s);
    *dev = a * err + (1 - a) * *dev;
    *s = a * x + (1 - a) * *s;
}

void est_init(struct est *e, const struct est_params *params)
{
    memset(e, 0, sizeof(*e));
    if (params)
        e->p = *params;
    if (!(e->p.ewma_alpha > 0 && e->p.ewma_alpha <= 1))
        e->p.ewma_alpha = 0.5;
    if (!(e->p.spread_min > 0))
        e->p.spread_min = 0.10;
    if (!e->p.max_downtime_ms)
        e->p.max_downtime_ms = 2000;
    if (!e->p.default_downtime_ms)
        e->p.default_downtime_ms = 300;
    if (!(e->p.prior_ratio > 0 && e->p.prior_ratio < 1))
        e->p.prior_ratio = 0.1;
    if (!(e->p.census_err > 0 && e->p.census_err < 1))
        e->p.census_err = 0;
    if (!(e->p.link_bps > 0 && isfinite(e->p.link_bps)))
        e->p.link_bps = 0;
    if (e->p.census_nprofile > EST_CENSUS_BUCKETS)
        e->p.census_nprofile = 0;
    if (!(e->p.hint_ws_frac > 0 && e->p.hint_ws_frac <= 1))
        e->p.hint_ws_frac = 0.25;
    if (!e->p.granularity_ms)
        e->p.granularity_ms = 50;
    e->out.granularity_ms = e->p.granularity_ms;
    e->out.eta_ms = EST_ETA_INFINITE;
    e->out.eta_low_ms = EST_ETA_INFINITE;
    e->out.eta_high_ms = EST_ETA_INFINITE;
}

int est_set_schedule(struct est *e, const struct est_sched_step *steps, size_t n)
{
    if (n > EST_SCHED_MAX)
        return FERR_TOOBIG;
    if (n && !steps)
        return FERR_INVAL;
    for (size_t i = 1; i < n; i++)
        if (steps[i].t_ms < steps[i - 1].t_ms)
            return FERR_INVAL;
    if (n)
        memcpy(e->sched, steps, n * sizeof(*steps));
    e->n_sched = n;
    return 0;
}

/* Pass 1 with a dirty-rate hint (calc-dirty-rate: distinct pages over 1 s).
 * The log QEMU folds in at the first sync holds every page written since
 * the migration began, and distinct pages saturate at the working set H:
 * with uniform writes at w pages/s, distinct(T) = H (1 - e^(-wT/H)). One
 * 1 s hint h cannot tell H from w, so H is assumed (hint_ws_bytes: a share
 * of RAM, at least h x 1 s) and w solved from h. The first sync then holds
 * V2 = distinct(T1), T1 = pass-1 length; later passes, about V2/R long,
 * dirty at d2 = distinct(V2/R) / (V2/R). The closed-form predictor wants a
 * constant rate, so it gets d2 with the cap H, and the pass-1 dirtying is
 * handed over as an equivalent time since the last sync (V2 / d2). */
static void hint_model(struct model *m, double h, double ws)
{
    double t1, w, v2, t2, d2;
    if (!(h > 0) || !(ws > 0) || !(m->r > 0))
        return;
    if (ws < h)
        ws = h;
    double q = h / ws;
    if (q > 0.999)
        q = 0.999;
    w = -ws * log(1.0 - q);        /* bytes/s written, from h = H(1-e^(-w/H)) */
    t1 = m->since_s + m->v / m->r; /* pass 1 ends then (s since its start) */
    v2 = ws * (1.0 - exp(-w * t1 / ws));
    t2 = v2 / m->r;
    d2 = t2 > 1e-3 ? ws * (1.0 - exp(-w * t2 / ws)) / t2 : h;
    if (!(d2 > 0))
        return;
    m->d = d2;
    m->total = ws;
    if (w < m->r) {
        /* passes shrink to nothing: the predictor follows the curve pass
         * by pass (a constant d2 would take the later, shorter passes as
         * saturated as pass 2 and finish too early) */
        m->sat_h = ws;
        m->sat_w = w;
        return;
    }
    /* w >= R: pass by pass the curve would settle at a fixed point, but
     * a 1 s rate at or above the link is usually a burst: keep the
     * constant-rate model, the pass-1 dirtying handed over as an
     * equivalent time since the last sync (V2 / d2) */
    m->since_s = v2 / d2 - m->v / m->r;
    if (m->since_s < 0)
        m->since_s = 0;
}

#define EST_CD_LIN                                                                                 \
    1.08 /* census re-reads: a bend this far above a line is                                       \
           a working set (their sampling error at a quarter                                        \
           of the latest's age is a few %) */

#define EST_HINT_LIN                                                                               \
    1.12 /* the mean 1 s calc-dirty-rate result against the latest census                          \
            re-read: a bend this far above a line is a working set (chosen                         \
            on the tune half of bench/eta_accuracy among 1.08-1.4) */
#define EST_HINT_FIT_MS                                                                            \
    4000 /* hint time (ms) before the mean 1 s rate is used in the fit: four                       \
            windows at least (the lab's 2-4 s passes read memload's                                \
            sequential writes up to 1.5x high in their first windows, and a                        \
            fit on two of them tripled the ETA of two moves at 50 %) */
#define EST_HINT_FIT_T_MS                                                                          \
    1500 /* ... and the latest re-read at least this old, ms (sat_fit                              \
            needs its window 1.5 x the 1 s one) */

/* Fits distinct(T) = H (1 - e^(-xT)) H (x = w/H) through two points
 * (ta, da), (tb, db), ta < tb. Returns 1 with *ws = H and *w when the
 * shorter window dirtied at a clearly higher rate (saturation), else 0. */
static int sat_fit(double ta, double da, double tb, double db, double lin_mul, double *ws,
                   double *w)
{
    if (!(ta > 0 && tb > ta * 1.5 && da > 0 && db > 0))
        return 0;
    double r = da / db, lin = ta / tb;
    if (r < lin * lin_mul) /* nearly linear: no saturation to speak of */
        return 0;
    if (r >= 0.98) { /* saturated in the short window already */
        *ws = db > da ? db : da;
        *w = *ws * 5.0 / ta;
        return 1;
    }
    double lo = 1e-9, hi = 50.0 / ta; /* x, 1/s */
    for (int i = 0; i < 60; i++) {
        double x = 0.5 * (lo + hi);
        double rx = (1.0 - exp(-x * ta)) / (1.0 - exp(-x * tb));
        if (rx < r)
            lo = x;
        else
            hi = x;
    }
    double x = 0.5 * (lo + hi);
    *ws = db / (1.0 - exp(-x * tb));
    *w = x * *ws;
    return *ws > 0 && *w > 0;
}

/* Fills the model from the published numbers o at limit base_dt_ms.
 * r_mul/d_mul scale R and D (interval ends); prior_hi: with neither a
 * measured rate nor a hint, assume a busy guest (rho 0.9). */
static void model_from_out(const struct est_out *o, struct model *m, double r_mul, double d_mul,
                           int prior_hi, double prior_ratio, double hint_bps, double hint_set,
                           uint64_t base_dt_ms, double census_mul, const double *cd_fit)
{
    memset(m, 0, sizeof(*m));
    m->r = o->bw_bps * r_mul;
    m->r_fin = o->link_bps > 0 ? o->link_bps * r_mul : 0;
    if (o->dirty_measured || o->dirty_hinted)
        m->d = o->dirty_bps * d_mul;
    else if (prior_hi) /* unknown: the pessimistic end assumes a busy guest */
        m->d = m->r * fmax(0.9, prior_ratio);
    else
        m->d = o->dirty_bps * d_mul;
    m->v = (double)o->ram_remaining;
    if (!o->dirty_measured && o->nonzero_census) /* pass 1: zero pages cost ~nothing */
        m->v = fmin((double)o->pass1_left_bytes * census_mul, (double)o->ram_remaining);
    else if (!o->dirty_measured && o->nonzero_hinted)
        m->v = (double)o->pass1_left_bytes;
    else if (!o->dirty_measured && o->nonzero_share > 0 && o->nonzero_share < 1)
        m->v *= o->nonzero_share;
    m->since_s = (double)o->since_sync_ms / 1000.0;
    m->pass1 = !o->dirty_measured;
    m->p1_share = o->ram_remaining > 0 && m->v < (double)o->ram_remaining
                      ? m->v / (double)o->ram_remaining
                      : 1;
    m->total = (double)o->ram_total;
    if (o->level_bytes) { /* the dirty set never exceeded what syncs showed */
        double cap =
            (double)(o->level_bytes > o->ram_remaining ? o->level_bytes : o->ram_remaining);
        if (m->total <= 0 || cap < m->total)
            m->total = cap;
    }
    m->disk_left = (double)o->disk_left;
    m->disk_bps = o->disk_bps * r_mul;
    m->t0_ms = o->t_ms;
    m->base_dt_ms = base_dt_ms;
    m->gran_s = (double)(o->granularity_ms ? o->granularity_ms : 50) / 1000.0;
    if (!o->dirty_measured && o->dirty_census && !(cd_fit && cd_fit[0] > 0)) {
        /* pass 1, the census re-reads on a straight line so far: what
         * was written since t0 is h T, measured up to the latest re-read.
         * A sequential writer keeps that line up to its working set (the
         * lab's memload: pass 2 re-sends min(WS, h T1)); a uniform one
         * keeps it while wT << H, the only range where no bend shows. The
         * curve of hint_model, anchored at 1 s, would pass below the
         * re-reads themselves (lab, 4000 pages/s: 44 MB modelled at 3.8 s
         * against 62.6 MB measured) */
        m->d = o->dirty_bps * d_mul;
        m->total = fmax((double)o->hint_ws_bytes, m->d);
    } else if (!o->dirty_measured && o->dirty_hinted)
        hint_model(m, o->dirty_bps * d_mul, (double)o->hint_ws_bytes);
    else if (!o->dirty_measured && hint_bps > 0 && !prior_hi) {
        m->d = hint_bps * d_mul; /* no rate yet: the earlier migration's */
        m->dirt_cap = hint_set;  /* and its set, if it saturated */
    }
    if (o->dirty_measured && o->sat_ws_bytes > 0 && o->sat_w_bps > 0 && m->r > 0) {
        /* the pass now running lasts since + v/R: its dirty rate is the
         * distinct pages over that length, not over the last period's */
        double tn = m->since_s + m->v / m->r;
        if (tn < 0.05)
            tn = 0.05;
        double h = o->sat_ws_bytes;
        m->d = h * (1.0 - exp(-o->sat_w_bps * tn / h)) / tn * d_mul;
        if (m->total <= 0 || h < m->total)
            m->total = h > (double)o->ram_remaining ? h : (double)o->ram_remaining;
        /* pass by pass only on the census re-reads' own fit (cd_fit): a
         * fit on the 1 s calc-dirty-rate result (quantised, noisy) puts w
         * near R easily, and pass by pass that is a near-endless tail
         * (lab, 4000 pages/s at 32 MiB/s: 15 s for 4.5 s) */
        if (cd_fit && cd_fit[0] > 0 && cd_fit[1] * d_mul < m->r) {
            m->sat_h = cd_fit[0];
            m->sat_w = cd_fit[1] * d_mul;
        }
    }
    /* a dirty set that stopped shrinking: whatever D measures (a saturated
     * set reads D = set / period ~ R), passes make no progress */
    if (o->dirty_measured && o->level_stuck && m->d < m->r) {
        m->d = m->r;
        m->sat_h = m->sat_w = 0;
    }
}

/* Fills the model from the estimator state. Returns 0 when the bandwidth is
 * unknown. census_sd: -1/0/+1 census standard errors (x2) on the pass-1
 * non-zero bytes, for the interval ends. */
static int build_model(const struct est *e, struct model *m, double r_mul, double d_mul,
                       int prior_hi, int census_sd)
{
    double cm = 1.0 + 2.0 * census_sd * e->p.census_err;
    struct est_out o = e->out;
    double fit[2] = {e->cd_h, e->cd_w};
    if (o.dirty_measured && e->cd_h > 0 && e->cd_w > 0) {
        /* after pass 1: the census re-reads measured the curve itself
         * (the published sat_* stay the controller's, and est_predict
         * keeps the constant-rate model: what the controller decides must
         * not hinge on the census) */
        o.sat_ws_bytes = e->cd_h;
        o.sat_w_bps = e->cd_w;
    } else if (o.dirty_measured && e->cd_b_ms >= 1500 && e->cd_b > 0) {
        /* the re-reads ran on a straight line over 1.5 s or more: no
         * working set bent them, whatever a fit on one 1 s calc-dirty-rate
         * result says (lab: memload at 8000 pages/s read 1.35x high) */
        o.sat_ws_bytes = o.sat_w_bps = 0;
    }
    model_from_out(&o, m, r_mul, d_mul, prior_hi, e->p.prior_ratio, e->p.hint_dirty_bps,
                   (double)e->p.hint_dirty_set_bytes, e->out.downtime_ms, cm > 0.1 ? cm : 0.1,
                   e->cd_h > 0 && e->cd_w > 0 ? fit : NULL);
    return m->r > 0;
}

static void recompute(struct est *e)
{
    struct est_out *o = &e->out;
    const struct mig_sample *s = &e->last;
    double done = (double)s->ram_transferred + (double)s->disk_done;
    double raw = -1; /* progress fraction to offer, <0: hold */

    o->eta_known = 0;
    o->eta_ms = o->eta_low_ms = o->eta_high_ms = EST_ETA_INFINITE;
    o->needs_downtime_ms = 0;
    o->predicted_downtime_ms = 0;

    switch (s->phase) {
    case MIG_PHASE_COMPLETED:
        o->progress_pct = 100.0;
        o->eta_known = 1;
        o->eta_ms = o->eta_low_ms = o->eta_high_ms = 0;
        o->verdict = EST_VERDICT_DONE;
        return;
    case MIG_PHASE_FAILED:
    case MIG_PHASE_CANCELLED:
        o->verdict = EST_VERDICT_DONE;
        o->eta_ms = o->eta_low_ms = o->eta_high_ms = 0;
        return;
    case MIG_PHASE_PRE_SWITCHOVER:
    case MIG_PHASE_DEVICE:
    case MIG_PHASE_POSTCOPY: {
        o->verdict = EST_VERDICT_DONE;
        double left = (double)s->ram_remaining + (double)o->disk_left;
        /* past switchover the cap no longer holds (the final stage) */
        double rb = s->phase == MIG_PHASE_POSTCOPY ? o->bw_bps : fmax(o->bw_bps, o->link_bps);
        if (rb > 0) {
            o->eta_known = 1;
            o->eta_ms = to_ms(left / rb);
            o->eta_low_ms = to_ms(left / (rb * (1 + o->spread)));
            o->eta_high_ms = to_ms(left / (rb * (1 - o->spread)));
            if (s->phase != MIG_PHASE_POSTCOPY)
                o->predicted_downtime_ms = o->eta_ms;
        }
        if (done + left > 0)
            raw = done / (done + left);
        break;
    }
    case MIG_PHASE_SETUP:
    case MIG_PHASE_ACTIVE:
    default: {
        struct model m;
        if (!build_model(e, &m, 1, 1, 0, 0)) {
            o->verdict = EST_VERDICT_UNKNOWN;
            break;
        }
        struct pred pm = predict(&m, e->sched, e->n_sched);
        double u = o->spread;
        struct model lo, hi;
        build_model(e, &lo, 1 + u, 1 - u, 0, -1);
        build_model(e, &hi, 1 - u, 1 + u, 1, 1);
        if (!o->dirty_measured && !o->dirty_hinted)
            lo.d = 0;
        struct pred pl = predict(&lo, e->sched, e->n_sched);
        struct pred ph = predict(&hi, e->sched, e->n_sched);
        if (pm.finite) {
            o->eta_known = 1;
            o->eta_ms = to_ms(pm.t_s);
            o->predicted_downtime_ms = to_ms(pm.pause_s);
            o->eta_low_ms = pl.finite ? to_ms(pl.t_s) : o->eta_ms;
            o->eta_high_ms = ph.finite ? to_ms(ph.t_s) : EST_ETA_INFINITE;
            if (o->eta_low_ms > o->eta_ms)
                o->eta_low_ms = o->eta_ms;
            if (o->eta_high_ms < o->eta_ms)
                o->eta_high_ms = o->eta_ms;
            if (done + pm.sent > 0)
                raw = done / (done + pm.sent);
            o->verdict = o->dirty_measured ? EST_VERDICT_CONVERGING : EST_VERDICT_UNKNOWN;
        } else {
            /* dirty set does not shrink: the limit that would switch over
             * at the next sync is level / R */
            double level = o->level_bytes ? (double)o->level_bytes : (double)o->ram_remaining;
            double need_s = level / m.r;
            uint64_t need = (uint64_t)ceil(need_s * 1000.0);
            if (need == 0)
                need = 1;
            o->needs_downtime_ms = need;
            o->verdict =
                need <= e->p.max_downtime_ms ? EST_VERDICT_NEEDS_DOWNTIME : EST_VERDICT_CANNOT;
            if (!o->dirty_measured)
                o->verdict = EST_VERDICT_UNKNOWN;
        }
        break;
    }
    }
    if (raw >= 0) {
        double pct = raw * 100.0;
        if (pct > 99.0)
            pct = 99.0;
        if (pct > o->progress_pct)
            o->progress_pct = pct;
    }
}

void est_set_hints(struct est *e, uint64_t nonzero_bytes, uint64_t dirty_set_bytes,
                   double dirty_bps)
{
    e->p.hint_nonzero_bytes = nonzero_bytes;
    e->p.hint_dirty_set_bytes = dirty_set_bytes;
    e->p.hint_dirty_bps = dirty_bps > 0 ? dirty_bps : 0;
}

void est_set_link(struct est *e, double link_bps)
{
    e->p.link_bps = link_bps > 0 && isfinite(link_bps) ? link_bps : 0;
}

void est_set_census(struct est *e, uint64_t nonzero_bytes, uint64_t ram_bytes, double rel_err)
{
    e->p.census_nonzero_bytes = nonzero_bytes;
    e->p.census_ram_bytes = ram_bytes;
    e->p.census_err = rel_err > 0 && rel_err < 1 ? rel_err : 0;
    e->p.census_nprofile = 0;
}

int est_set_census_profile(struct est *e, const uint64_t *bucket_nz, size_t n)
{
    if (n > EST_CENSUS_BUCKETS)
        return FERR_TOOBIG;
    if (n && !bucket_nz)
        return FERR_INVAL;
    if (n)
        memcpy(e->p.census_profile, bucket_nz, n * sizeof(*bucket_nz));
    e->p.census_nprofile = (uint32_t)n;
    return 0;
}

/* Non-zero bytes the census profile counts below RAM offset pos (bytes):
 * whole buckets plus the share of the one pos falls in. */
static double census_head(const struct est_params *p, double pos)
{
    double bs = (double)p->census_ram_bytes / p->census_nprofile, head = 0;
    for (uint32_t i = 0; i < p->census_nprofile; i++) {
        double b0 = bs * i;
        if (pos >= b0 + bs) {
            head += (double)p->census_profile[i];
        } else {
            if (pos > b0)
                head += (double)p->census_profile[i] * (pos - b0) / bs;
            break;
        }
    }
    return head;
}

int est_update(struct est *e, const struct mig_sample *s)
{
    if (!s || (unsigned)s->phase >= MIG_PHASE__COUNT)
        return FERR_INVAL;
    if (e->have_sample && s->t_ms < e->last.t_ms)
        return FERR_INVAL;
    struct est_out *o = &e->out;
    const double a = e->p.ewma_alpha;
    const double page = (double)mig_sample_page_bytes(s);
    const struct mig_sample prev = e->last;
    const int had = e->have_sample;

    if (!had || s->phase == MIG_PHASE_SETUP) {
        /* the pass-1 rate counts from when memory starts moving: a storage
         * migration mirrors its disks (phase SETUP) for as long as that
         * takes before QEMU sends a page, and the time since the first
         * sample then read as a link of a few KiB/s (the adaptive policy
         * judged itself late and aborted at the first ACTIVE sample) */
        e->t_first_ms = s->t_ms;
        e->tx_first = s->ram_transferred;
    }
    /* dirty-sync periods */
    if (!e->have_period || s->dirty_sync_count < e->cur_sync) {
        e->have_period = 1;
        e->cur_sync = s->dirty_sync_count;
        e->period_t0_ms = s->t_ms;
        e->period_tx0 = s->ram_transferred;
        e->period_min = s->ram_remaining;
    } else if (s->dirty_sync_count > e->cur_sync) {
        uint64_t dt_ms = s->t_ms - e->period_t0_ms;
        /* cur_sync 0 is QEMU's setup (ram_init_bitmaps syncs once before
         * pass 1): that is no dirty period, everything "appears" at it */
        if (dt_ms > 0 && s->ram_transferred >= e->period_tx0 && e->cur_sync >= 1 &&
            s->phase == MIG_PHASE_ACTIVE) {
            double bw = (double)(s->ram_transferred - e->period_tx0) * 1000.0 / (double)dt_ms;
            if (bw > 0)
                ewma(&e->bw, &e->bw_dev, &e->have_bw, bw, a);
            double d;
            if (s->dirty_pages_rate > 0) {
                d = (double)s->dirty_pages_rate * page;
            } else {
                /* derive: what appeared at the sync beyond the residual.
                 * At the sync that ends pass 1 the residual is its
                 * non-zero rest (pass1_left_bytes of the sample before):
                 * the zero pages among what was pending went as flags in
                 * a flash (lab: QEMU had not published its rate at that
                 * sync, 88 MB of zero pages were taken for a residual
                 * larger than the new set, and D read 0 for pass 2) */
                double sent_since = (double)(s->ram_transferred - prev.ram_transferred);
                double prev_left = (double)prev.ram_remaining;
                if (e->cur_sync == 1 && o->pass1_left_bytes > 0 &&
                    (double)o->pass1_left_bytes < prev_left)
                    prev_left = (double)o->pass1_left_bytes;
                double residual = prev_left - sent_since;
                if (residual < 0)
                    residual = 0;
                double appeared = (double)s->ram_remaining - residual;
                d = appeared > 0 ? appeared * 1000.0 / (double)dt_ms : 0;
            }
            ewma(&e->dirty, &e->dirty_dev, &e->have_dirty, d, a);
            if (e->cur_sync == 1) {
                e->p1_s = (double)dt_ms / 1000.0;
                e->p1_dist = d * e->p1_s;
                o->pass1_dirty_bps = d > 0 ? d : 1;
            } else {
                e->pl_s = (double)dt_ms / 1000.0;
                e->pl_dist = d * e->pl_s;
            }
            double lv = (double)s->ram_remaining;
            double ldev = 0;
            ewma(&e->level, &ldev, &e->have_level, lv, a);
            o->periods++;
            { /* levels from the sync that ends pass 1 on */
                if (e->n_lv >= EST_LV_HIST)
                    memmove(e->lv, e->lv + 1, (EST_LV_HIST - 1) * sizeof(e->lv[0]));
                e->lv[e->n_lv < EST_LV_HIST ? e->n_lv : EST_LV_HIST - 1] = s->ram_remaining;
                e->n_lv++;
                if (s->ram_remaining > e->max_set)
                    e->max_set = s->ram_remaining;
            }
        }
        if (e->cur_sync == 1 && o->pass1_dirty_bps <= 0 && s->phase != MIG_PHASE_ACTIVE &&
            s->phase != MIG_PHASE_FAILED && s->phase != MIG_PHASE_CANCELLED)
            o->pass1_dirty_bps = 1; /* switched over at the sync ending pass 1 */
        e->cur_sync = s->dirty_sync_count;
        e->period_t0_ms = s->t_ms;
        e->period_tx0 = s->ram_transferred;
        e->period_min = s->ram_remaining;
    } else if (s->ram_remaining < e->period_min) {
        e->period_min = s->ram_remaining;
    }

    /* disk mirror rate: EWMA over samples with movement */
    if (s->disk_total > 0) {
        if (e->have_disk && s->t_ms > e->disk_t0_ms && s->disk_done > e->disk_done0) {
            double r =
                (double)(s->disk_done - e->disk_done0) * 1000.0 / (double)(s->t_ms - e->disk_t0_ms);
            e->disk_bps = e->disk_bps > 0 ? a * r + (1 - a) * e->disk_bps : r;
            e->disk_t0_ms = s->t_ms;
            e->disk_done0 = s->disk_done;
        } else if (!e->have_disk || s->disk_done < e->disk_done0) {
            e->have_disk = 1;
            e->disk_t0_ms = s->t_ms;
            e->disk_done0 = s->disk_done;
        }
    }

    e->last = *s;
    e->have_sample = 1;

    /* pass 1's rate: bytes sent over the last second or more (the ring of
     * recent active samples), anew when max-bandwidth changes */
    if (s->phase == MIG_PHASE_ACTIVE && !e->have_bw) {
        if (s->setting_max_bw_bps != e->act_cap ||
            (e->n_rt && s->ram_transferred < e->rt_tx[(e->n_rt - 1) % EST_RT_RING])) {
            e->n_rt = 0;
            e->act_cap = s->setting_max_bw_bps;
        }
        e->rt_ms[e->n_rt % EST_RT_RING] = s->t_ms;
        e->rt_tx[e->n_rt % EST_RT_RING] = s->ram_transferred;
        e->n_rt++;
    }
    double r1 = 0;
    if (!e->have_bw && e->n_rt >= 2) {
        uint32_t first = e->n_rt > EST_RT_RING ? e->n_rt - EST_RT_RING : 0;
        for (uint32_t k = e->n_rt - 1; k-- > first;) {
            uint64_t t0 = e->rt_ms[k % EST_RT_RING], x0 = e->rt_tx[k % EST_RT_RING];
            if (s->t_ms >= t0 + EST_RT_MS && s->ram_transferred > x0) {
                r1 = (double)(s->ram_transferred - x0) * 1000.0 / (double)(s->t_ms - t0);
                break;
            }
        }
    }

    /* publish model numbers */
    double r = 0;
    if (e->have_bw) {
        r = e->bw;
    } else if (r1 > 0) {
        /* not QEMU's last 100 ms window alone: on a busy host one window
         * can read half the cap (lab runs whose ETA doubled on one
         * sample) */
        r = r1;
    } else if (s->bw_bps > 0) {
        r = (double)s->bw_bps;
    } else if (s->t_ms > e->t_first_ms && s->ram_transferred > e->tx_first) {
        r = (double)(s->ram_transferred - e->tx_first) * 1000.0 / (double)(s->t_ms - e->t_first_ms);
    } else if (e->disk_bps > 0) {
        r = e->disk_bps;
    }
    o->bw_bps = r;
    if (r > 0 && s->bw_bps > 0 && s->phase == MIG_PHASE_ACTIVE && e->have_bw) {
        double dev = fabs((double)s->bw_bps - r) / r;
        e->jit = e->n_jit ? 0.1 * dev + 0.9 * e->jit : dev;
        e->n_jit++;
    }
    o->bw_jitter = e->n_jit >= 40 || e->jit > EST_JITTER_PRIOR ? e->jit : EST_JITTER_PRIOR;
    o->dirty_hinted = 0;
    o->dirty_census = 0;
    o->hint_ws_bytes = 0;
    if (s->census_dirty_ms > 0 && (s->census_dirty_ms != e->cd_b_ms || !e->cd_b_ms)) {
        if (s->census_dirty_ms >= 200 && (!e->n_cd || s->census_dirty_ms > e->cd_ms[e->n_cd - 1])) {
            if (e->n_cd >= EST_CD_HIST) {
                memmove(e->cd_ms, e->cd_ms + 1, (EST_CD_HIST - 1) * sizeof(e->cd_ms[0]));
                memmove(e->cd_by, e->cd_by + 1, (EST_CD_HIST - 1) * sizeof(e->cd_by[0]));
                e->n_cd--;
            }
            e->cd_ms[e->n_cd] = s->census_dirty_ms;
            e->cd_by[e->n_cd] = (double)s->census_dirty_bytes;
            e->n_cd++;
        }
        e->cd_b_ms = s->census_dirty_ms;
        e->cd_b = (double)s->census_dirty_bytes;
        /* pair the latest with the re-read nearest a quarter of its age:
         * the earliest ones rest on a handful of sampled pages (a 250 ms
         * read of a slow writer is mostly sampling noise), and a bend
         * between them would be taken for a working set */
        e->cd_a_ms = 0;
        for (uint32_t i = 0; i < e->n_cd; i++) {
            uint64_t t = e->cd_ms[i], q = e->cd_b_ms / 4;
            if (2 * t > e->cd_b_ms)
                break;
            if (!e->cd_a_ms ||
                (t > q ? t - q : q - t) < (e->cd_a_ms > q ? e->cd_a_ms - q : q - e->cd_a_ms)) {
                e->cd_a_ms = t;
                e->cd_a = e->cd_by[i];
            }
        }
        e->cd_h = e->cd_w = 0;
        if (e->cd_a_ms && sat_fit((double)e->cd_a_ms / 1000.0, e->cd_a, (double)e->cd_b_ms / 1000.0,
                                  e->cd_b, EST_CD_LIN, &e->cd_h, &e->cd_w) == 0)
            e->cd_h = e->cd_w = 0;
    }
    if (!e->have_dirty && s->dirty_rate_hint_pps > 0) {
        /* time-weighted mean of the hints seen in pass 1 (bursty guests) */
        uint64_t w_ms = had && s->t_ms > prev.t_ms ? s->t_ms - prev.t_ms : 0;
        double hb = (double)s->dirty_rate_hint_pps * page;
        if (e->hint_ms == 0 && w_ms == 0)
            w_ms = 1;
        e->hint_sum += hb * (double)w_ms;
        e->hint_ms += w_ms;
    }
    if (!e->have_dirty && e->hint_ms >= EST_HINT_FIT_MS && e->cd_b_ms >= EST_HINT_FIT_T_MS &&
        e->cd_b > 0) {
        /* the working set from the mean 1 s rate (distinct pages in 1 s,
         * calc-dirty-rate's windows over pass 1: many windows, so their
         * sampling errors average out) against the latest re-read (the
         * most pages found, the smallest relative error): two quarter-age
         * re-reads rest on few sampled pages in the shorter one, and a
         * 20-40 % error there faked or hid the bend (a 8 GiB set read as
         * 0.4-4 GiB in the matrix); no clear bend, no fit */
        double hm = e->hint_sum / (double)e->hint_ms;
        e->cd_h = e->cd_w = 0;
        if (!(hm > 0) || sat_fit(1.0, hm, (double)e->cd_b_ms / 1000.0, e->cd_b, EST_HINT_LIN,
                                 &e->cd_h, &e->cd_w) == 0)
            e->cd_h = e->cd_w = 0;
    }
    if (e->have_dirty) {
        o->dirty_bps = e->dirty;
        o->dirty_measured = 1;
    } else if (s->dirty_pages_rate > 0) {
        o->dirty_bps = (double)s->dirty_pages_rate * page;
        o->dirty_measured = 1;
    } else if (e->cd_b_ms >= 200) {
        /* pass 1 with the census re-reads: distinct(T) since the census
         * at T = 0.25, 0.5, 1, 2 ... s. Two far enough apart that bend
         * give the working set H and write rate w (sat_fit); a straight
         * line gives the rate, H as without (a share of RAM, at least
         * what was written already). h is the equivalent 1 s rate the
         * pass-1 model takes. */
        double ta = (double)e->cd_a_ms / 1000.0, tb = (double)e->cd_b_ms / 1000.0;
        double ws = e->p.hint_ws_frac * (double)s->ram_total, h, fh = 0, fw = 0;
        if (e->p.hint_dirty_set_bytes)
            ws = (double)e->p.hint_dirty_set_bytes;
        (void)ta;
        if (e->cd_h > 0 && e->cd_w > 0) {
            fh = e->cd_h;
            fw = e->cd_w;
            ws = fh;
            h = fh * (1.0 - exp(-fw / fh));
        } else {
            h = e->cd_b / tb;
            if (ws < e->cd_b)
                ws = e->cd_b;
        }
        /* the rate: calc-dirty-rate's 1 s windows averaged over pass 1
         * when there are a few s of them (a bursty guest's early re-reads
         * catch a burst; the mean covers bursts and lulls), with the
         * working set from the re-reads. On a straight line a recent
         * re-read (a third or more of the time so far: the agent re-reads
         * at 0.25, 0.5, 1, 2, 4 ... s) is itself a mean over most of pass
         * 1, on 64x the pages (8192 against 512 per GiB): it stands unless
         * the windows' mean is higher (a rise after it, which the doubling
         * re-reads see late). The lab's sequential writer at 4000 pages/s
         * read 3072 pages/s in every window, 15.7 MiB/s on the re-reads. */
        if (e->hint_ms >= 2000) {
            double hm = e->hint_sum / (double)e->hint_ms;
            int line_recent = fh <= 0 && 3 * e->cd_b_ms >= s->t_ms;
            if (hm > 0 && (!line_recent || hm > h))
                h = hm;
        }
        o->dirty_bps = h > 0 ? h : 0;
        o->dirty_measured = 0;
        o->dirty_hinted = 1;
        o->dirty_census = 1;
        o->hint_ws_bytes = (uint64_t)fmax(ws, o->dirty_bps);
    } else if (e->hint_ms > 0) {
        /* pass 1: the guest's rate measured outside the migration */
        double ws = e->p.hint_ws_frac * (double)s->ram_total;
        o->dirty_bps = e->hint_sum / (double)e->hint_ms;
        /* an earlier migration's set is a lower bound: one that this
         * guest's current rate already exceeds in 1 s is stale */
        if (e->p.hint_dirty_set_bytes && (double)e->p.hint_dirty_set_bytes >= o->dirty_bps)
            ws = (double)e->p.hint_dirty_set_bytes;
        o->dirty_measured = 0;
        o->dirty_hinted = 1;
        o->hint_ws_bytes = (uint64_t)fmax(ws, o->dirty_bps);
    } else {
        o->dirty_bps = r * e->p.prior_ratio;
        o->dirty_measured = 0;
    }
    o->ratio = r > 0 ? o->dirty_bps / r : 0;
    double spread = e->p.spread_min;
    if (e->have_bw && e->bw > 0 && e->bw_dev / e->bw > spread)
        spread = e->bw_dev / e->bw;
    if (e->have_dirty && e->dirty > 0 && e->dirty_dev / e->dirty > spread)
        spread = e->dirty_dev / e->dirty;
    if (!o->dirty_measured && spread < 0.25)
        spread = 0.25;
    if (spread > 0.9)
        spread = 0.9;
    o->spread = spread;
    o->level_bytes = e->have_level ? (uint64_t)e->level : 0;
    o->ram_total = s->ram_total;
    o->ram_remaining = s->ram_remaining;
    e->hint_last = (double)s->dirty_rate_hint_pps * page;
    o->sat_ws_bytes = 0;
    o->sat_w_bps = 0;
    if (o->dirty_measured) {
        double ws = 0, w = 0, tb = e->pl_s > 0 ? e->pl_s : e->p1_s;
        double db = e->pl_s > 0 ? e->pl_dist : e->p1_dist;
        int ok = 0;
        if (e->hint_last > 0)
            ok = sat_fit(1.0, e->hint_last, tb, db, 1.2, &ws, &w);
        else if (e->pl_s > 0 && e->p1_s > 0)
            ok = e->pl_s < e->p1_s
                     ? sat_fit(e->pl_s, e->pl_dist, e->p1_s, e->p1_dist, 1.2, &ws, &w)
                     : sat_fit(e->p1_s, e->p1_dist, e->pl_s, e->pl_dist, 1.2, &ws, &w);
        if (ok) {
            o->sat_ws_bytes = ws;
            o->sat_w_bps = w;
        }
    }
    o->level_stuck = 0;
    if (e->n_lv >= 3) {
        const double keep = 1.0 - EST_STUCK_FRAC;
        uint64_t n = e->n_lv < EST_LV_HIST ? e->n_lv : EST_LV_HIST;
        const uint64_t *l = e->lv + n - 3; /* the newest three */
        o->level_stuck = (double)l[2] > keep * (double)l[1] && (double)l[1] > keep * (double)l[0];
        if (!o->level_stuck && n >= 6) {
            /* a set that cycles (levels up and down around a fixed point:
             * a working set re-sent whole each pass) is stuck too: the
             * lowest of the newest three is not below the lowest of the
             * three before */
            uint64_t lo_old = UINT64_MAX, lo_new = UINT64_MAX;
            for (uint64_t i = n - 6; i < n - 3; i++)
                lo_old = e->lv[i] < lo_old ? e->lv[i] : lo_old;
            for (uint64_t i = n - 3; i < n; i++)
                lo_new = e->lv[i] < lo_new ? e->lv[i] : lo_new;
            o->level_stuck = (double)lo_new > keep * (double)lo_old;
        }
    }
    if (s->phase == MIG_PHASE_SETUP && s->ram_remaining == 0 && s->ram_transferred == 0)
        o->ram_remaining = s->ram_total;
    o->nonzero_share = 1;
    o->pass1_left_bytes = 0;
    o->nonzero_hinted = 0;
    o->nonzero_census = 0;
    o->census_scale = 1;
    if (!o->dirty_measured && s->ram_normal + s->ram_duplicate > 0)
        o->nonzero_share =
            (double)s->ram_normal / ((double)s->ram_normal + (double)s->ram_duplicate);
    if (!o->dirty_measured) {
        /* pass 1: each page is sent once, so the non-zero pages still to
         * come are what the hint says minus the normal pages sent; a hint
         * already exceeded is stale and the share so far is used instead */
        double sent_nz = (double)s->ram_normal * page;
        double rem = (double)o->ram_remaining;
        double left = rem * o->nonzero_share;
        double cz = (double)e->p.census_nonzero_bytes;
        /* RAM the census did not cover (ROMs, other blocks): non-zero */
        if (cz > 0 && e->p.census_ram_bytes && s->ram_total > e->p.census_ram_bytes)
            cz += (double)(s->ram_total - e->p.census_ram_bytes);
        o->census_scale = 1;
        if (cz > 0 && e->p.census_nprofile && e->p.census_ram_bytes && s->ram_total >= rem) {
            /* pass 1 walks RAM in address order, the census's RAM first
             * (QEMU keeps its RAM blocks largest first): the cursor is at
             * ram_total - remaining. What the census counted before it
             * against the normal pages really sent there is its bias. */
            double cur = (double)s->ram_total - rem, tot = (double)e->p.census_nonzero_bytes;
            double cens_ram = (double)e->p.census_ram_bytes;
            double head = census_head(&e->p, fmin(cur, cens_ram));
            double k = 1;
            if (head >= 0.05 * tot && head > 0)
                k = fmin(fmax(sent_nz / head, 0.5), 2.0);
            left = k * (tot - head) + fmax(cz - tot - fmax(cur - cens_ram, 0), 0);
            o->census_scale = k;
            o->nonzero_census = 1;
        } else if (cz > 0 && sent_nz < cz) {
            /* the census counted the non-zero pages at t0, wherever they
             * lie: pass 1 sends the rest of them in full */
            left = cz - sent_nz;
            o->nonzero_census = 1;
        } else if (e->p.hint_nonzero_bytes && sent_nz < (double)e->p.hint_nonzero_bytes) {
            left = (double)e->p.hint_nonzero_bytes - sent_nz;
            o->nonzero_hinted = 1;
        }
        if (left > rem)
            left = rem;
        o->pass1_left_bytes = (uint64_t)left;
    }
    /* the largest set a sync found is the working set only when pass 1
     * saturated: it found clearly less than its 1 s rate x its length */
    o->dirty_set_bytes = 0;
    if (e->p1_s > 0 && e->hint_ms > 0 &&
        e->p1_dist < 0.8 * e->p1_s * e->hint_sum / (double)e->hint_ms)
        o->dirty_set_bytes = e->max_set;
    if (o->sat_ws_bytes > (double)o->dirty_set_bytes)
        o->dirty_set_bytes = (uint64_t)o->sat_ws_bytes;
    o->since_sync_ms = s->t_ms - e->period_t0_ms;
    o->disk_left = s->disk_total > s->disk_done ? s->disk_total - s->disk_done : 0;
    o->disk_bps = e->disk_bps;
    o->link_bps = e->p.link_bps;
    o->downtime_ms = s->setting_downtime_ms ? s->setting_downtime_ms : e->p.default_downtime_ms;
    o->t_ms = s->t_ms;
    o->phase = s->phase;
    recompute(e);
    return 0;
}

void est_get(const struct est *e, struct est_out *out)
{
    *out = e->out;
}

int est_predict(const struct est_out *o, uint64_t downtime_ms, uint64_t *eta_ms, uint64_t *pause_ms)
{
    if (!o || !(o->bw_bps > 0))
        return FERR_STATE;
    struct model m;
    model_from_out(o, &m, 1, 1, 0, 0.1, 0, 0, downtime_ms, 1, NULL);
    /* the controller's what-if keeps the final stage at R: its limits
     * must hold where the link rate is unknown or paced at the cap */
    m.r_fin = 0;
    struct pred p = predict(&m, NULL, 0);
    if (eta_ms)
        *eta_ms = p.finite ? to_ms(p.t_s) : EST_ETA_INFINITE;
    if (pause_ms)
        *pause_ms = p.finite ? to_ms(p.pause_s) : EST_ETA_INFINITE;
    return 0;
}

int est_forecast(const struct est *e, int end, est_fc_fn fn, void *ud, uint64_t *eta_ms,
                 uint64_t *pause_ms, int *changed)
{
    struct model m;
    int ch = 0;
    if (eta_ms)
        *eta_ms = EST_ETA_INFINITE;
    if (pause_ms)
        *pause_ms = EST_ETA_INFINITE;
    if (changed)
        *changed = 0;
    if (!e || !fn)
        return FERR_INVAL;
    if (!e->have_sample || (e->last.phase != MIG_PHASE_ACTIVE && e->last.phase != MIG_PHASE_SETUP))
        return FERR_STATE;
    double u = e->out.spread;
    int ok = end < 0   ? build_model(e, &m, 1 + u, 1 - u, 0, -1)
             : end > 0 ? build_model(e, &m, 1 - u, 1 + u, 1, 1)
                       : build_model(e, &m, 1, 1, 0, 0);
    if (!ok)
        return FERR_STATE;
    if (end < 0 && !e->out.dirty_measured && !e->out.dirty_hinted)
        m.d = 0;
    struct fc_meas me = {e->p.ewma_alpha, e->p.spread_min, 0,
                         e->dirty,        e->dirty_dev,    e->have_dirty};
    if (e->have_bw && e->bw > 0)
        me.bw_spread = e->bw_dev / e->bw;
    struct pred pr =
        fc_predict(&m, e->last.ram_transferred, e->last.dirty_sync_count, fn, ud, &me, &ch);
    if (eta_ms && pr.finite)
        *eta_ms = to_ms(pr.t_s);
    if (pause_ms && pr.finite)
        *pause_ms = to_ms(pr.pause_s);
    if (changed)
        *changed = ch;
    return 0;
}

const char *est_verdict_name(enum est_verdict v)
{
    static const char *const names[EST_VERDICT__COUNT] = {"unknown", "converging", "needs_downtime",
                                                          "cannot", "done"};
    return (unsigned)v < EST_VERDICT__COUNT ? names[v] : "unknown";
}
