/* matrix — the standard scenario set; see matrix.h. */
#include "sim/matrix.h"

#include <math.h>
#include <stdio.h>

static const double mx_ram_gib[] = {1, 4, 16, 64};
static const double mx_bw_mibps[] = {128, 1024};
static const double mx_dirty_frac[] = {0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.1, 1.5};
static const double mx_ws_frac[] = {0.1, 0.5};
static const char *const mx_profile_name[] = {"steady", "bursty", "phase"};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

size_t sim_matrix_count(void)
{
    return N_OF(mx_ram_gib) * N_OF(mx_bw_mibps) * N_OF(mx_dirty_frac) * N_OF(mx_ws_frac) *
           N_OF(mx_profile_name);
}

int sim_matrix_get(size_t i, enum sim_policy pol, struct sim_scenario *sc)
{
    size_t k = i, ip, iw, id, ib, ir;
    double ram, bw, dfrac, wfrac, lb, mib = 1024.0 * 1024.0;
    if (i >= sim_matrix_count())
        return FERR_INVAL;
    ip = k % N_OF(mx_profile_name);
    k /= N_OF(mx_profile_name);
    iw = k % N_OF(mx_ws_frac);
    k /= N_OF(mx_ws_frac);
    id = k % N_OF(mx_dirty_frac);
    k /= N_OF(mx_dirty_frac);
    ib = k % N_OF(mx_bw_mibps);
    k /= N_OF(mx_bw_mibps);
    ir = k;
    ram = mx_ram_gib[ir];
    bw = mx_bw_mibps[ib];
    dfrac = mx_dirty_frac[id];
    wfrac = mx_ws_frac[iw];

    sim_scenario_default(sc, ram, bw, SIM_POL_QEMU);
    snprintf(sc->name, sizeof(sc->name), "r%.0fG-b%.0fM-d%.0f%%-w%.0f%%-%s", ram, bw, dfrac * 100,
             wfrac * 100, mx_profile_name[ip]);
    sc->wl.ws_bytes = (uint64_t)(wfrac * (double)sc->wl.ram_bytes);
    sc->wl.ws_off_bytes = 0;
    sc->wl.dirty_bps = dfrac * bw * mib;
    sc->wl.zero_frac = wfrac < 0.2 ? 0.25 : 0;
    sc->wl.noise = 0.05;
    sc->par.postcopy_ram = 1;
    sc->par.seed = 1000 + i;
    if (ip == 1) {
        /* Bursts: peak 1.6x the nominal rate for 40 % of a 20 s period,
         * 0.1x the peak otherwise (mean ~0.7x nominal). */
        sc->wl.profile = PRECOPY_BURSTY;
        sc->wl.dirty_bps *= 1.6;
        sc->wl.burst_period_ms = 20000;
        sc->wl.burst_duty = 0.4;
        sc->wl.burst_low_frac = 0.1;
    } else if (ip == 2) {
        /* Phase change at half the bulk pass: the rate halves or doubles
         * (alternating) and the working set moves next to the old one. */
        lb = sim_lower_bound_ms(sc);
        sc->wl.phase_at_ms = (int64_t)(lb / 2);
        sc->wl.phase_dirty_bps = sc->wl.dirty_bps * (i % 2 ? 0.5 : 2.0);
        sc->wl.phase_ws_bytes = sc->wl.ws_bytes;
        sc->wl.phase_ws_off_bytes = sc->wl.ws_bytes;
    }
    lb = sim_lower_bound_ms(sc);
    sc->max_ms = (uint64_t)fmax(900.0 * 1000, 4 * lb);
    sim_scenario_set_policy(sc, pol);
    return 0;
}
