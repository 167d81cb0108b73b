/* lab_match — a ferry-sim scenario that matches a lab memload run.
 *
 * The lab guest's memload (lab/guest/memload.c) writes its working set
 * *sequentially*, page after page, at R pages/s; the model (precopy.h)
 * assumes uniform random writes over the working set. Over a dirty period
 * of length dt the two dirty different numbers of distinct pages:
 * sequential min(R*dt, H), random H*(1 - exp(-w*dt/H)) for write rate w over
 * H hot pages. lab_match_uniform_pps() gives the random rate w that dirties
 * as many distinct pages as the sequential writer over dt; lab_match_run()
 * picks dt from the model's own dirty periods (time-weighted mean: the
 * long periods carry most of the re-sent pages) by a short fixed point and
 * runs the matched scenario under the QEMU policy (no controller).
 *
 * Pure like the rest of src/sim: no clock, no I/O, no allocation.
 */
#ifndef FERRY_SIM_LAB_MATCH_H
#define FERRY_SIM_LAB_MATCH_H
#include <stdint.h>

#include "sim/run.h"
#include "util/ferr.h"

/* A lab run described in the simulator's terms. */
struct lab_match_in {
    uint64_t ram_bytes;         /* QEMU ram.total of the guest, bytes */
    uint64_t ws_bytes;          /* memload working set (ferry.ws_mib), bytes */
    uint64_t nonzero_bytes;     /* ram.total - ram.duplicate x page size, bytes */
    double seq_pps;             /* memload's sequential write rate, pages/s */
    double max_bw_bps;          /* migrate max-bandwidth, bytes/s */
    double link_bps;            /* what the link carries after switchover, bytes/s */
    uint32_t downtime_limit_ms; /* migrate downtime-limit, ms */
    int sequential;             /* 1: map to the equivalent uniform rate; 0: w = seq_pps */
};

/* What lab_match_run chose. */
struct lab_match_out {
    double write_pps; /* page-write rate given to the model, pages/s */
    double period_s;  /* dirty period the rate was matched over, s (0 when not) */
    double zero_frac; /* zero-page fraction given to the model, 0..1 */
    int rounds;       /* fixed-point rounds run */
};

/* Returns the uniform random page-write rate (pages/s) over ws_pages hot
 * pages that dirties, in expectation, as many distinct pages over period_s
 * seconds as a sequential writer at seq_pps. A sequential writer that
 * covers the whole set within the period is capped at 99.9 % of it. Returns
 * seq_pps unchanged when any argument is not positive. */
double lab_match_uniform_pps(double seq_pps, double ws_pages, double period_s);

/* Builds the scenario for in (sim_scenario_default with SIM_POL_QEMU, then
 * RAM, working set at offset 0, zero fraction 1 - nonzero/ram, write rate,
 * max-bandwidth, downtime limit, no noise) into *sc, runs it and fills *r
 * and, when out is not NULL, *out. With in->sequential the write rate is
 * re-matched to the run's own time-weighted dirty period until it moves by
 * under 1 % (at most 6 rounds). Returns 0, or FERR_INVAL (err says which
 * field) when the model rejects the scenario; *sc and *r are then
 * unspecified. */
int lab_match_run(const struct lab_match_in *in, struct sim_scenario *sc, struct sim_result *r,
                  struct lab_match_out *out, struct ferr *err) __attribute__((warn_unused_result));

#endif
