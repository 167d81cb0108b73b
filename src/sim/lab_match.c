/* lab_match — see lab_match.h. */
#include "sim/lab_match.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define MATCH_ROUNDS_MAX 6  /* fixed-point rounds */
#define MATCH_TOL 0.01      /* stop when the rate moves by less, relative */
#define SEQ_COVER_MAX 0.999 /* cap on the covered share of the set */

double lab_match_uniform_pps(double seq_pps, double ws_pages, double period_s)
{
    if (!(seq_pps > 0) || !(ws_pages > 0) || !(period_s > 0))
        return seq_pps;
    double cover = seq_pps * period_s / ws_pages;
    if (cover > SEQ_COVER_MAX)
        cover = SEQ_COVER_MAX;
    return -ws_pages / period_s * log1p(-cover);
}

/* Time-weighted mean length of the dirty periods (sync to sync, and the
 * last one up to switchover) of the model run with sc, s: sum dt^2 / sum dt. */
static int period_of(const struct sim_scenario *sc, double *period_s, struct ferr *err)
{
    struct precopy m;
    struct precopy_obs o;
    int rc = precopy_init(&m, &sc->wl, &sc->par, err);
    if (rc < 0)
        return rc;
    double t0 = 0, s1 = 0, s2 = 0;
    uint64_t sync = 1;
    while (!precopy_done(&m) && m.t_ms < (double)sc->max_ms) {
        precopy_step(&m);
        precopy_observe(&m, &o);
        if (o.dirty_sync_count != sync || precopy_done(&m)) {
            double dt = (o.t_ms - t0) / 1000.0;
            s1 += dt;
            s2 += dt * dt;
            t0 = o.t_ms;
            sync = o.dirty_sync_count;
        }
    }
    *period_s = s1 > 0 ? s2 / s1 : 0;
    return 0;
}

int lab_match_run(const struct lab_match_in *in, struct sim_scenario *sc, struct sim_result *r,
                  struct lab_match_out *out, struct ferr *err)
{
    struct lab_match_out o;
    memset(&o, 0, sizeof(o));
    if (!(in->ram_bytes > 0) || in->nonzero_bytes > in->ram_bytes)
        return ferr_set(err, FERR_INVAL, "nonzero_bytes", "must be in 0..ram_bytes");
    sim_scenario_default(sc, (double)in->ram_bytes / (1024.0 * 1024.0 * 1024.0),
                         in->link_bps / (1024.0 * 1024.0), SIM_POL_QEMU);
    sc->wl.ram_bytes = in->ram_bytes;
    sc->wl.ws_bytes = in->ws_bytes;
    sc->wl.ws_off_bytes = 0;
    sc->wl.noise = 0;
    o.zero_frac = 1.0 - (double)in->nonzero_bytes / (double)in->ram_bytes;
    sc->wl.zero_frac = o.zero_frac;
    sc->par.max_bw_bps = in->max_bw_bps;
    sc->par.downtime_limit_ms = in->downtime_limit_ms;
    sc->max_ms = 600000; /* a lab run that converged took seconds */
    o.write_pps = in->seq_pps;
    double ws_pages = (double)in->ws_bytes / PRECOPY_PAGE_SIZE;
    for (int k = 0; in->sequential && in->seq_pps > 0 && k < MATCH_ROUNDS_MAX; k++) {
        sc->wl.dirty_bps = o.write_pps * PRECOPY_PAGE_SIZE;
        double p;
        int rc = period_of(sc, &p, err);
        if (rc < 0)
            return rc;
        double w = lab_match_uniform_pps(in->seq_pps, ws_pages, p);
        o.rounds = k + 1;
        o.period_s = p;
        double moved = fabs(w - o.write_pps) / o.write_pps;
        o.write_pps = w;
        if (moved < MATCH_TOL)
            break;
    }
    sc->wl.dirty_bps = o.write_pps * PRECOPY_PAGE_SIZE;
    snprintf(sc->name, sizeof(sc->name), "lab-%.0fpps-%.0fMiBps", in->seq_pps,
             in->max_bw_bps / (1024.0 * 1024.0));
    int rc = sim_run(sc, r, NULL, NULL, NULL, err);
    if (rc < 0)
        return rc;
    if (out)
        *out = o;
    return 0;
}
