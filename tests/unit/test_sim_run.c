/* The simulated agent loop (src/sim/run.c) with the real core: samples are
 * well-formed and round-trip through the trace format, consent answers are
 * obeyed (refused steps never reach the model, delayed grants wait), the
 * qemu policy emits nothing, runs are deterministic, and the scenario matrix
 * is what the benchmarks claim. */
#include "sim/matrix.h"
#include "sim/precopy.h"
#include "sim/run.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <stdlib.h>

#include "../lib/test.h"
#include "core/trace.h"

#define MIB (1024.0 * 1024.0)
#define GIB (1024.0 * MIB)

struct seen {
    size_t n;
    uint64_t last_t;
    int bad_order, bad_phase;
    uint64_t first_consent_ms, first_intrusive_ms; /* UINT64_MAX: none */
    size_t intrusive;                              /* throttle / post-copy / pause actions */
    char *csv;
    size_t csv_len, csv_cap;
};

static void on_sample(void *ud, const struct mig_sample *s, const struct est_out *e)
{
    struct seen *w = ud;
    char line[TRACE_LINE_MAX + 2];
    size_t n;
    (void)e;
    if (w->n && s->t_ms < w->last_t)
        w->bad_order = 1;
    if ((unsigned)s->phase >= MIG_PHASE__COUNT)
        w->bad_phase = 1;
    w->last_t = s->t_ms;
    w->n++;
    if (w->csv && trace_format_row(s, line, sizeof(line), &n) == 0 && w->csv_len + n < w->csv_cap) {
        memcpy(w->csv + w->csv_len, line, n);
        w->csv_len += n;
    }
}

static void on_action(void *ud, uint64_t now_ms, const struct conv_action *a)
{
    struct seen *w = ud;
    if (a->kind == CONV_ACT_REQUEST_CONSENT && w->first_consent_ms == UINT64_MAX)
        w->first_consent_ms = now_ms;
    if (a->kind == CONV_ACT_SET_THROTTLE || a->kind == CONV_ACT_START_POSTCOPY ||
        a->kind == CONV_ACT_PAUSE_GUEST) {
        w->intrusive++;
        if (w->first_intrusive_ms == UINT64_MAX)
            w->first_intrusive_ms = now_ms;
    }
}

static void seen_init(struct seen *w)
{
    memset(w, 0, sizeof(*w));
    w->first_consent_ms = w->first_intrusive_ms = UINT64_MAX;
}

/* A busy guest that needs the ladder: 8 GiB, 4 GiB working set written at
 * twice the link rate. */
static void busy(struct sim_scenario *sc, enum sim_policy pol)
{
    sim_scenario_default(sc, 8, 512, SIM_POL_QEMU);
    sc->wl.ws_bytes = (uint64_t)(4 * GIB);
    sc->wl.dirty_bps = 1024 * MIB;
    sc->par.postcopy_ram = 1;
    sc->max_ms = 1800 * 1000;
    sim_scenario_set_policy(sc, pol);
}

/* Samples every 250 ms in time order; they parse back from trace CSV. */
static void t_samples_and_trace(void)
{
    struct sim_scenario sc;
    struct sim_result r;
    struct seen w;
    static struct mig_sample rows[20000];
    size_t nrows = 0, hl;
    seen_init(&w);
    w.csv_cap = 4u << 20;
    w.csv = malloc(w.csv_cap);
    REQUIRE(w.csv, "malloc");
    REQUIRE(trace_format_header(w.csv, w.csv_cap, &hl) == 0, "header");
    w.csv_len = hl;
    sim_scenario_default(&sc, 2, 256, SIM_POL_ADAPTIVE);
    sc.wl.ws_bytes = (uint64_t)(0.5 * GIB);
    sc.wl.dirty_bps = 100 * MIB;
    REQUIRE(sim_run(&sc, &r, on_sample, NULL, &w, NULL) == 0, "run");
    CHECK(r.completed, "2 GiB at 100/256 MiB/s did not complete");
    CHECK(!w.bad_order && !w.bad_phase, "samples out of order or bad phase");
    CHECK(w.n >= (size_t)(r.total_ms / SIM_SAMPLE_MS) &&
              w.n <= (size_t)(r.total_ms / SIM_SAMPLE_MS) + 2,
          "%zu samples for %.0f ms", w.n, r.total_ms);
    CHECK(trace_parse(w.csv, w.csv_len, rows, 20000, &nrows, NULL) == 0 && nrows == w.n,
          "trace round trip: %zu of %zu rows", nrows, w.n);
    CHECK(nrows > 0 && rows[nrows - 1].phase == MIG_PHASE_COMPLETED, "last row not completed");
    free(w.csv);
}

/* Refused consent: the gated steps (throttle, post-copy, pause by default)
 * never reach the model; granted: they do; delayed: not before the delay. */
static void t_consent(void)
{
    struct sim_scenario sc;
    struct sim_result r;
    struct seen w;

    busy(&sc, SIM_POL_ADAPTIVE);
    sc.consent = SIM_CONSENT_REFUSE;
    seen_init(&w);
    REQUIRE(sim_run(&sc, &r, NULL, on_action, &w, NULL) == 0, "run");
    CHECK(w.first_consent_ms != UINT64_MAX, "no consent was asked for a non-converging guest");
    CHECK(w.intrusive == 0 && r.max_throttle == 0 && r.postcopy_ms == 0 && r.paused_ms == 0,
          "refused, yet %zu intrusive actions (throttle %u%%)", w.intrusive, r.max_throttle);

    busy(&sc, SIM_POL_ADAPTIVE);
    sc.consent = SIM_CONSENT_GRANT;
    seen_init(&w);
    REQUIRE(sim_run(&sc, &r, NULL, on_action, &w, NULL) == 0, "run");
    CHECK(w.intrusive > 0, "granted, yet no intrusive step was taken");

    busy(&sc, SIM_POL_ADAPTIVE);
    sc.consent = SIM_CONSENT_AFTER;
    sc.consent_after_ms = 20000;
    seen_init(&w);
    REQUIRE(sim_run(&sc, &r, NULL, on_action, &w, NULL) == 0, "run");
    REQUIRE(w.first_consent_ms != UINT64_MAX, "no consent asked");
    CHECK(w.first_intrusive_ms == UINT64_MAX || w.first_intrusive_ms >= w.first_consent_ms + 20000,
          "intrusive step at %llu ms, consent asked at %llu ms with a 20 s delay",
          (unsigned long long)w.first_intrusive_ms, (unsigned long long)w.first_consent_ms);
}

/* QEMU defaults: no controller, no actions, the limit stays 300 ms. */
static void t_qemu_policy_is_passive(void)
{
    struct sim_scenario sc;
    struct sim_result r;
    struct seen w;
    unsigned total = 0;
    busy(&sc, SIM_POL_QEMU);
    sc.max_ms = 300 * 1000;
    seen_init(&w);
    REQUIRE(sim_run(&sc, &r, NULL, on_action, &w, NULL) == 0, "run");
    for (int k = 0; k < CONV_ACT__COUNT; k++)
        total += r.n_actions[k];
    CHECK(total == 0, "%u actions under the qemu policy", total);
    CHECK(r.timed_out && r.final_downtime_limit_ms == 300, "timed_out %d limit %llu", r.timed_out,
          (unsigned long long)r.final_downtime_limit_ms);
}

/* Same scenario, same result, controller included. */
static void t_determinism(void)
{
    struct sim_scenario sc;
    struct sim_result a, b;
    busy(&sc, SIM_POL_ADAPTIVE);
    sc.wl.noise = 0.1;
    REQUIRE(sim_run(&sc, &a, NULL, NULL, NULL, NULL) == 0, "run");
    REQUIRE(sim_run(&sc, &b, NULL, NULL, NULL, NULL) == 0, "run");
    CHECK(memcmp(&a, &b, sizeof(a)) == 0, "two runs differ: %.1f vs %.1f ms", a.total_ms,
          b.total_ms);
}

/* The matrix: >= 200 scenarios, RAM 1..64 GiB, rates 0..150 % of the link,
 * names unique enough to find a run again; out of range is refused. */
static void t_matrix(void)
{
    struct sim_scenario sc;
    double rmin = 1e30, rmax = 0, dmax = 0;
    size_t n = sim_matrix_count();
    CHECK(n >= 200, "%zu scenarios", n);
    for (size_t i = 0; i < n; i++) {
        REQUIRE(sim_matrix_get(i, SIM_POL_NOVA, &sc) == 0, "get %zu", i);
        rmin = fmin(rmin, (double)sc.wl.ram_bytes);
        rmax = fmax(rmax, (double)sc.wl.ram_bytes);
        dmax = fmax(dmax, sc.wl.dirty_bps / sc.par.link_bps);
        CHECK(sc.policy == SIM_POL_NOVA && sc.conv.kind == CONV_NOVA, "policy not applied");
    }
    CHECK(rmin == 1 * GIB && rmax == 64 * GIB, "RAM %.0f..%.0f", rmin, rmax);
    CHECK(dmax >= 1.5, "max dirty/link %.2f", dmax);
    CHECK(sim_matrix_get(n, SIM_POL_QEMU, &sc) == FERR_INVAL, "index n accepted");
}

int main(void)
{
    test_run("sim run: samples every 250 ms, trace CSV round-trips", t_samples_and_trace);
    test_run("sim run: consent refuse / grant / after N s obeyed", t_consent);
    test_run("sim run: qemu policy emits no action", t_qemu_policy_is_passive);
    test_run("sim run: deterministic with the controller", t_determinism);
    test_run("sim run: scenario matrix covers the claimed space", t_matrix);
    return test_done();
}
