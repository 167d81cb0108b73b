/* run — the simulated agent loop: model → sample → estimator → controller →
 * actions → model. See run.h. */
#include "sim/run.h"

#include "core/forecast.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define MIB_D (1024.0 * 1024.0)
#define GIB_D (1024.0 * MIB_D)

static const char *const pol_names[SIM_POL__COUNT] = {"qemu", "nova", "schedule", "adaptive"};

const char *sim_policy_name(enum sim_policy p)
{
    return (unsigned)p < SIM_POL__COUNT ? pol_names[p] : "unknown";
}

int sim_policy_parse(const char *name, enum sim_policy *out)
{
    for (int i = 0; i < SIM_POL__COUNT; i++) {
        if (strcmp(name, pol_names[i]) == 0) {
            *out = (enum sim_policy)i;
            return 0;
        }
    }
    return FERR_INVAL;
}

double sim_lower_bound_ms(const struct sim_scenario *sc)
{
    double bw = sc->par.link_bps, ram = (double)sc->wl.ram_bytes;
    double cold = ram - (double)sc->wl.ws_bytes, zero = sc->wl.zero_frac * ram;
    if (sc->par.max_bw_bps > 0 && sc->par.max_bw_bps < bw)
        bw = sc->par.max_bw_bps;
    if (zero > cold)
        zero = cold;
    return (ram - zero) / bw * 1000.0;
}

/* oVirt's "Minimal downtime" convergence schedule, mapped from oVirt's
 * stalling counter to QEMU's iteration count (docs/SIM.md). */
static void ovirt_schedule(struct conv_schedule *s)
{
    static const struct conv_sched_entry e[] = {
        {0, CONV_SCHED_SET_DOWNTIME, 100}, {2, CONV_SCHED_SET_DOWNTIME, 150},
        {3, CONV_SCHED_SET_DOWNTIME, 200}, {4, CONV_SCHED_SET_DOWNTIME, 300},
        {5, CONV_SCHED_SET_DOWNTIME, 400}, {7, CONV_SCHED_SET_DOWNTIME, 500},
        {12, CONV_SCHED_ABORT, 0},
    };
    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < sizeof(e) / sizeof(e[0]); i++)
        s->e[i] = e[i];
    s->n = sizeof(e) / sizeof(e[0]);
}

void sim_scenario_set_policy(struct sim_scenario *sc, enum sim_policy policy)
{
    double lb = sim_lower_bound_ms(sc);
    sc->policy = policy;
    memset(&sc->conv, 0, sizeof(sc->conv));
    switch (policy) {
    case SIM_POL_QEMU:
        break;
    case SIM_POL_NOVA:
        conv_policy_default(&sc->conv, CONV_NOVA);
        sc->conv.nova.ram_mib = sc->wl.ram_bytes >> 20;
        sc->conv.nova.n_disks = 0;
        break;
    case SIM_POL_SCHEDULE:
        conv_policy_default(&sc->conv, CONV_SCHEDULE);
        ovirt_schedule(&sc->conv.schedule);
        break;
    case SIM_POL_ADAPTIVE:
    default:
        conv_policy_default(&sc->conv, CONV_ADAPTIVE);
        sc->conv.adaptive.deadline_ms = (uint64_t)fmax(120000.0, 3.0 * lb);
        sc->conv.adaptive.bw_cap_bps = (uint64_t)sc->par.link_bps;
        sc->conv.adaptive.postcopy_available = sc->par.postcopy_ram != 0;
        break;
    }
}

void sim_scenario_default(struct sim_scenario *sc, double ram_gib, double bw_mibps,
                          enum sim_policy policy)
{
    memset(sc, 0, sizeof(*sc));
    snprintf(sc->name, sizeof(sc->name), "ram%.0fG-bw%.0fM", ram_gib, bw_mibps);
    precopy_workload_default(&sc->wl, (uint64_t)(ram_gib * GIB_D));
    precopy_params_default(&sc->par, bw_mibps * MIB_D);
    sc->consent = SIM_CONSENT_GRANT;
    sc->max_ms = 2ull * 3600 * 1000;
    sc->census_present_zero = 0.5;
    sim_scenario_set_policy(sc, policy);
}

void sim_sample_from(const struct precopy *m, struct mig_sample *s)
{
    struct precopy_obs o;
    precopy_observe(m, &o);
    memset(s, 0, sizeof(*s));
    s->t_ms = (uint64_t)(o.state == PRECOPY_COMPLETED || o.state == PRECOPY_CANCELLED ? o.total_ms
                                                                                      : o.t_ms);
    switch (o.state) {
    case PRECOPY_ACTIVE:
        s->phase = MIG_PHASE_ACTIVE;
        break;
    case PRECOPY_POSTCOPY:
        s->phase = MIG_PHASE_POSTCOPY;
        break;
    case PRECOPY_COMPLETED:
        s->phase = MIG_PHASE_COMPLETED;
        break;
    case PRECOPY_CANCELLED:
    default:
        s->phase = MIG_PHASE_CANCELLED;
        break;
    }
    s->ram_total = o.ram_total;
    s->ram_transferred = o.ram_transferred;
    s->ram_remaining = o.ram_remaining;
    s->ram_duplicate = o.duplicate_pages;
    s->ram_normal = o.normal_pages;
    s->dirty_pages_rate = o.dirty_pages_rate;
    s->page_size = o.page_size;
    s->bw_bps = (uint64_t)o.bw_bps;
    s->dirty_sync_count = o.dirty_sync_count;
    s->throttle_pct = o.throttle_pct;
    s->setting_downtime_ms = o.downtime_limit_ms;
    s->setting_max_bw_bps = (uint64_t)o.max_bw_bps;
    s->expected_downtime_ms = o.expected_downtime_ms;
    s->dirty_rate_hint_pps = o.dirty_rate_hint_pps;
}

/* Drops a return code that is of no use here (warn_unused_result ignores
 * a cast to void). */
static void ignore_rc(int rc)
{
    (void)rc;
}

/* Carries one controller action out on the model. Returns 0 or the model's
 * error (the action is then counted as failed, nothing else happens). */
static int apply(struct precopy *m, const struct conv_action *a)
{
    switch (a->kind) {
    case CONV_ACT_SET_DOWNTIME:
        return precopy_set_downtime(
            m, (uint32_t)(a->downtime_ms > 2000000 ? 2000000 : a->downtime_ms));
    case CONV_ACT_SET_BANDWIDTH:
        return precopy_set_bandwidth(m, (double)a->bw_bps);
    case CONV_ACT_SET_THROTTLE:
        return precopy_set_auto_converge(m, a->auto_converge, a->throttle_initial_pct,
                                         a->throttle_increment_pct, a->throttle_max_pct);
    case CONV_ACT_START_POSTCOPY:
        return precopy_start_postcopy(m);
    case CONV_ACT_PAUSE_GUEST:
        return precopy_pause(m);
    case CONV_ACT_ABORT:
        return precopy_abort(m);
    case CONV_ACT_REQUEST_CONSENT:
    case CONV_ACT_REPORT_STALL:
    default:
        return 0;
    }
}

/* Storage for one run; kept static-free so runs can nest or go parallel. */
struct run_ctx {
    struct precopy m;
    struct est est;
    struct conv conv;
    uint64_t grant_at[CONV_STEP__COUNT]; /* SIM_CONSENT_AFTER: due time, ms; 0 none */
    /* census re-reads (sc->census) */
    double cen_present[PRECOPY_MAX_GROUPS]; /* present pages per group at t0 */
    double cen_present_total;               /* pages */
    uint64_t cen_next_ms;                   /* next re-read at, ms; 0: none */
    uint64_t cen_dirty_bytes, cen_dirty_ms; /* last re-read */
    uint64_t cen_rng;                       /* its own stream */
};

static void finish(const struct sim_scenario *sc, const struct precopy *m, struct sim_result *r)
{
    struct precopy_obs o;
    precopy_observe(m, &o);
    r->completed = o.state == PRECOPY_COMPLETED;
    r->aborted = o.state == PRECOPY_CANCELLED;
    r->timed_out = !precopy_done(m);
    r->total_ms = precopy_done(m) ? o.total_ms : o.t_ms;
    r->downtime_ms = r->completed ? o.downtime_ms : 0;
    r->paused_ms = o.paused_ms;
    r->guest_stop_ms = r->downtime_ms + r->paused_ms;
    r->postcopy_ms = o.postcopy_ms;
    r->iterations = o.dirty_sync_count;
    r->bytes_sent = o.ram_transferred;
    r->throttle_pct_s = o.throttle_pct_s;
    r->final_downtime_limit_ms = o.downtime_limit_ms;
    r->lower_bound_ms = sim_lower_bound_ms(sc);
}

/* xorshift64* uniform in [0,1) and Box-Muller normal, for the census draw
 * only (the model has its own streams). */
static double census_unit(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return (double)((x * 0x2545F4914F6CDD1DULL) >> 11) * (1.0 / 9007199254740992.0);
}

void sim_census(const struct sim_scenario *sc, const struct precopy *m, uint64_t *nonzero_bytes,
                double *rel_err, uint64_t *true_bytes, uint64_t *profile)
{
    double nz = 0, est = 0, var = 0, pz, k_all;
    uint64_t rng =
        (sc->par.seed ? sc->par.seed : 1) * 0x9E3779B97F4A7C15ULL ^ 0xC3A5C85C97CB3127ULL;
    int per = m->ngroups / EST_CENSUS_BUCKETS > 0 ? m->ngroups / EST_CENSUS_BUCKETS : 1;
    int nb = (m->ngroups + per - 1) / per;
    pz = sc->census_present_zero >= 0 && sc->census_present_zero <= 1 ? sc->census_present_zero : 0;
    k_all = sc->census_sample_pages ? sc->census_sample_pages : SIM_CENSUS_SAMPLE;
    if (profile)
        memset(profile, 0, EST_CENSUS_BUCKETS * sizeof(*profile));
    /* per bucket, as the agent: present pages exact (pagemap), their
     * all-zero share from a sample of k_all / buckets of them */
    for (int b = 0; b < nb && b < EST_CENSUS_BUCKETS; b++) {
        double bnz = 0, bzero = 0, present, k, p, sd, u1, u2, z, e;
        for (int i = b * per; i < (b + 1) * per && i < m->ngroups; i++) {
            bnz += m->g[i].bmap;
            bzero += m->g[i].bmap_z;
        }
        nz += bnz;
        present = bnz + pz * bzero;
        k = fmin(k_all / nb, present);
        p = present > 0 ? pz * bzero / present : 0;
        /* zero share of k present pages drawn without replacement */
        sd =
            k > 0 && present > 1 ? sqrt(p * (1 - p) / k * fmax(1 - (k - 1) / (present - 1), 0)) : 0;
        u1 = census_unit(&rng);
        u2 = census_unit(&rng);
        if (u1 < 1e-300)
            u1 = 1e-300;
        z = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
        e = present * (1 - fmin(fmax(p + sd * z, 0), 1));
        if (sc->census_bias > 0)
            e *= sc->census_bias;
        est += e;
        var += present * present * sd * sd;
        if (profile)
            profile[b] = (uint64_t)(e * PRECOPY_PAGE_SIZE);
    }
    if (nonzero_bytes)
        *nonzero_bytes = (uint64_t)(est * PRECOPY_PAGE_SIZE);
    if (rel_err)
        *rel_err = est > 0 ? sqrt(var) / est : 0;
    if (true_bytes)
        *true_bytes = (uint64_t)(nz * PRECOPY_PAGE_SIZE);
}

/* The agent's census re-read at t_ms (census_tick): the share of the
 * sampled (present at t0) pages written since t0, with the sampling error
 * of a sample of census_sample_pages of them, as bytes of RAM. */
static void census_reread(const struct sim_scenario *sc, struct run_ctx *c, uint64_t t_ms)
{
    double w = 0, k, f, sd, u1, u2, z, pres = c->cen_present_total;
    for (int i = 0; i < c->m.ngroups; i++)
        if (c->m.g[i].pages > 0)
            w += c->m.g[i].cdist * c->cen_present[i] / c->m.g[i].pages;
    k = fmin(sc->census_sample_pages ? sc->census_sample_pages : SIM_CENSUS_SAMPLE, pres);
    f = pres > 0 ? fmin(w / pres, 1) : 0;
    sd = k > 0 && pres > 1 ? sqrt(f * (1 - f) / k * fmax(1 - (k - 1) / (pres - 1), 0)) : 0;
    u1 = census_unit(&c->cen_rng);
    u2 = census_unit(&c->cen_rng);
    if (u1 < 1e-300)
        u1 = 1e-300;
    z = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
    c->cen_dirty_bytes = (uint64_t)(fmin(fmax(f + sd * z, 0), 1) * pres * PRECOPY_PAGE_SIZE);
    c->cen_dirty_ms = t_ms;
}

int sim_run(const struct sim_scenario *sc, struct sim_result *r, sim_sample_cb on_sample,
            sim_action_cb on_action, void *ud, struct ferr *err)
{
    static struct run_ctx ctx_storage; /* ~ a few KiB; sim_run is not reentrant */
    struct run_ctx *c = &ctx_storage;
    struct est_params ep;
    int use_conv = sc->policy != SIM_POL_QEMU;
    uint64_t next_sample = SIM_SAMPLE_MS;
    int rc;

    memset(r, 0, sizeof(*r));
    memset(c, 0, sizeof(*c));
    rc = precopy_init(&c->m, &sc->wl, &sc->par, err);
    if (rc < 0)
        return rc;
    memset(&ep, 0, sizeof(ep));
    ep.max_downtime_ms = sc->policy == SIM_POL_ADAPTIVE ? sc->conv.adaptive.downtime_max_ms : 0;
    ep.hint_nonzero_bytes = sc->hint_nonzero_bytes;
    ep.hint_dirty_set_bytes = sc->hint_dirty_set_bytes;
    ep.hint_dirty_bps = sc->hint_dirty_bps;
    /* the host knows its link (the agent: from its earlier moves' final
     * stages): QEMU sends the final stage with the cap lifted */
    ep.link_bps = sc->link_unknown ? 0 : sc->par.link_bps;
    est_init(&c->est, &ep);
    if (sc->census) {
        uint64_t cnz, prof[EST_CENSUS_BUCKETS];
        double cerr;
        sim_census(sc, &c->m, &cnz, &cerr, NULL, prof);
        est_set_census(&c->est, cnz, sc->wl.ram_bytes, cerr);
        if (!sc->census_count_only) {
            double pz = sc->census_present_zero >= 0 && sc->census_present_zero <= 1
                            ? sc->census_present_zero
                            : 0;
            for (int i = 0; i < c->m.ngroups; i++) {
                c->cen_present[i] = c->m.g[i].bmap + pz * c->m.g[i].bmap_z;
                c->cen_present_total += c->cen_present[i];
            }
            c->cen_next_ms = 250;
            c->cen_rng =
                (sc->par.seed ? sc->par.seed : 1) * 0xD1B54A32D192ED03ULL ^ 0x8CB92BA72F3D8DD7ULL;
        }
        ignore_rc(est_set_census_profile(&c->est, prof, EST_CENSUS_BUCKETS));
    }
    if (use_conv) {
        rc = conv_init(&c->conv, &sc->conv, err);
        if (rc < 0)
            return rc;
    }

    while (!precopy_done(&c->m) && c->m.t_ms < (double)sc->max_ms) {
        struct mig_sample s;
        struct est_out eo;
        precopy_step(&c->m);
        if (c->m.throttle > r->max_throttle)
            r->max_throttle = c->m.throttle;
        if (!precopy_done(&c->m) && c->m.t_ms < (double)next_sample)
            continue;
        next_sample += SIM_SAMPLE_MS;
        sim_sample_from(&c->m, &s);
        if (c->cen_next_ms) { /* census re-reads while pass 1 runs */
            if (s.dirty_sync_count > 1 || s.phase != MIG_PHASE_ACTIVE) {
                c->cen_next_ms = 0;
            } else if (s.t_ms >= c->cen_next_ms) {
                census_reread(sc, c, s.t_ms);
                c->cen_next_ms = 2 * s.t_ms;
            }
        }
        s.census_dirty_bytes = c->cen_dirty_bytes;
        s.census_dirty_ms = c->cen_dirty_ms;
        if (est_update(&c->est, &s) < 0)
            continue; /* t went backwards: cannot happen with the model */
        est_get(&c->est, &eo);
        if (precopy_done(&c->m) || !use_conv) {
            if (on_sample)
                on_sample(ud, &s, &eo);
            continue;
        }
        for (int st = 0; st < CONV_STEP__COUNT; st++) {
            if (c->grant_at[st] && c->grant_at[st] <= s.t_ms) {
                c->grant_at[st] = 0;
                ignore_rc(conv_consent(&c->conv, (enum conv_step)st, true));
            }
        }
        {
            struct conv_action acts[CONV_ACTIONS_MAX];
            size_t n = 0;
            if (conv_tick(&c->conv, &s, &eo, s.t_ms, acts, CONV_ACTIONS_MAX, &n) < 0)
                n = 0;
            for (size_t i = 0; i < n; i++) {
                const struct conv_action *a = &acts[i];
                if ((unsigned)a->kind < CONV_ACT__COUNT)
                    r->n_actions[a->kind]++;
                if (on_action)
                    on_action(ud, s.t_ms, a);
                if (a->kind == CONV_ACT_REQUEST_CONSENT) {
                    if (sc->consent == SIM_CONSENT_GRANT)
                        ignore_rc(conv_consent(&c->conv, a->step, true));
                    else if (sc->consent == SIM_CONSENT_REFUSE)
                        ignore_rc(conv_consent(&c->conv, a->step, false));
                    else if ((unsigned)a->step < CONV_STEP__COUNT)
                        c->grant_at[a->step] =
                            s.t_ms + (sc->consent_after_ms ? sc->consent_after_ms : 1);
                    continue;
                }
                if (apply(&c->m, a) < 0)
                    r->n_failed_actions++;
            }
        }
        {
            struct est_sched_step fut[EST_SCHED_MAX];
            size_t nf = 0;
            if (conv_future_downtime(&c->conv, fut, EST_SCHED_MAX, &nf) == 0)
                ignore_rc(est_set_schedule(&c->est, fut, nf));
        }
        /* the ETA with the controller's own future actions (as the agent) */
        if (!sc->no_forecast)
            ignore_rc(fc_estimate(&c->conv, &c->est, &s, &eo, NULL));
        if (on_sample)
            on_sample(ud, &s, &eo);
    }
    finish(sc, &c->m, r);
    return 0;
}
