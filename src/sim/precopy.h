/* precopy — a deterministic model of QEMU 7.2 RAM migration (pre-copy,
 * auto-converge, post-copy, pause) for ferry-sim.
 *
 * Pure: no I/O, no clock, no globals, no allocation. Simulated time advances
 * in ticks of PRECOPY_TICK_MS; QEMU's rate limiter works in windows of
 * PRECOPY_WINDOW_MS (BUFFER_DELAY in migration.c). Guest RAM is split into
 * at most PRECOPY_MAX_GROUPS equal page groups; per group the model keeps
 * page counts (pages in the migration bitmap, zero pages among them, pages
 * in the dirty log since the last sync) and dirties them in expectation
 * (uniform random writes over the working set), see docs/SIM.md.
 *
 *   struct precopy m;
 *   if (precopy_init(&m, &wl, &par, &err) < 0) ...;
 *   while (!precopy_done(&m)) { precopy_step(&m); precopy_observe(&m, &obs); }
 */
#ifndef FERRY_SIM_PRECOPY_H
#define FERRY_SIM_PRECOPY_H
#include <stdint.h>

#include "util/ferr.h"

#define PRECOPY_TICK_MS 50      /* simulated step, ms */
#define PRECOPY_WINDOW_MS 100   /* rate-limit window (QEMU BUFFER_DELAY), ms */
#define PRECOPY_MAX_GROUPS 128  /* page groups the RAM is split into */
#define PRECOPY_PAGE_SIZE 4096u /* target page, bytes */
#define PRECOPY_PAGE_HDR 8u     /* save_page_header on the wire, bytes */
#define PRECOPY_ZERO_COST 9u    /* zero page: header + 1 fill byte, bytes */
#define PRECOPY_HINT_MS 1000    /* calc-dirty-rate calc-time, ms */
#define PRECOPY_HINT_SAMPLES 512 /* calc-dirty-rate sample-pages per GiB */

enum precopy_profile {
    PRECOPY_STEADY = 0, /* constant dirty rate */
    PRECOPY_BURSTY = 1, /* peak for duty*period, low rate for the rest */
};

/* What the guest does. Rates are page writes (pages touched per second x
 * page size), not distinct dirty pages: repeated writes to a page within one
 * sync interval dirty it once, as in KVM's dirty log. */
struct precopy_workload {
    uint64_t ram_bytes;    /* guest RAM, bytes (>= 64 MiB) */
    uint64_t ws_bytes;     /* working set written to, bytes (<= ram) */
    uint64_t ws_off_bytes; /* start of the working set in RAM, bytes */
    double dirty_bps;      /* page-write rate (peak when bursty), bytes/s */
    enum precopy_profile profile;
    uint32_t burst_period_ms;    /* bursty: period, ms */
    double burst_duty;           /* bursty: fraction of the period at peak, 0..1 */
    double burst_low_frac;       /* bursty: rate between bursts / peak, 0..1 */
    int64_t phase_at_ms;         /* phase change at this time, ms; < 0: none */
    double phase_dirty_bps;      /* after the phase change: page-write rate, bytes/s */
    uint64_t phase_ws_bytes;     /* after the phase change: working set, bytes */
    uint64_t phase_ws_off_bytes; /* after the phase change: its start, bytes */
    double zero_frac;            /* fraction of RAM holding zero pages (outside the WS), 0..1 */
    double noise;                /* relative std-dev of dirty rate and link per tick, 0..0.5 */
};

/* The link and QEMU's migration parameters/capabilities. */
struct precopy_params {
    double link_bps;             /* what the network carries, bytes/s */
    double max_bw_bps;           /* migrate max-bandwidth, bytes/s; 0 = unlimited */
    uint32_t downtime_limit_ms;  /* migrate downtime-limit, ms (QEMU default 300) */
    int auto_converge;           /* capability auto-converge, 0/1 */
    uint32_t throttle_initial;   /* cpu-throttle-initial, % (20) */
    uint32_t throttle_increment; /* cpu-throttle-increment, % (10) */
    uint32_t throttle_max;       /* max-cpu-throttle, % (99) */
    uint32_t throttle_trigger;   /* throttle-trigger-threshold, % (50) */
    int postcopy_ram;            /* capability postcopy-ram, 0/1 */
    uint32_t device_ms;          /* device state + stop/start cost at switchover, ms */
    double scan_pps;             /* pages QEMU can examine per second (zero check), pages/s */
    uint64_t seed;               /* RNG seed for the noise */
};

enum precopy_state {
    PRECOPY_ACTIVE = 0,   /* pre-copy iterating */
    PRECOPY_POSTCOPY = 1, /* guest runs on the destination, pages pulled */
    PRECOPY_COMPLETED = 2,
    PRECOPY_CANCELLED = 3, /* aborted; the guest keeps running on the source */
};

/* What query-migrate would say, plus end-of-run figures. */
struct precopy_obs {
    double t_ms; /* simulated time since migrate, ms */
    enum precopy_state state;
    int paused;                    /* guest paused by the controller, 0/1 */
    uint64_t ram_total;            /* bytes */
    uint64_t ram_transferred;      /* bytes on the wire so far */
    uint64_t ram_remaining;        /* pages in the migration bitmap x page size, bytes */
    uint64_t duplicate_pages;      /* zero pages sent */
    uint64_t normal_pages;         /* full pages sent */
    uint64_t dirty_pages_rate;     /* newly dirtied pages per s over the last sync period */
    uint64_t dirty_sync_count;     /* migration_bitmap_sync calls */
    uint32_t throttle_pct;         /* cpu-throttle-percentage, % */
    double bw_bps;                 /* measured over the last window, bytes/s */
    uint64_t expected_downtime_ms; /* remaining / measured bandwidth, ms */
    uint32_t downtime_limit_ms;    /* current limit, ms */
    double max_bw_bps;             /* current cap, bytes/s; 0 = unlimited */
    uint32_t page_size;            /* bytes */
    uint64_t dirty_rate_hint_pps;  /* calc-dirty-rate (page sampling) over the
                                      last whole PRECOPY_HINT_MS window,
                                      pages/s; 0 before the first window
                                      ends; a measured 0 reads as 1 */
    /* Set once the run has ended (COMPLETED or CANCELLED): */
    double total_ms;       /* migrate to guest running on the destination, ms */
    double downtime_ms;    /* switchover stop time, ms */
    double paused_ms;      /* time the guest spent paused by the controller, ms */
    double postcopy_ms;    /* time spent in post-copy, ms */
    double throttle_pct_s; /* integral of throttle over time, %*s (guest impact) */
};

struct precopy_group {
    double pages;  /* pages in the group */
    double bmap;   /* non-zero pages set in the migration bitmap */
    double bmap_z; /* zero pages set in the migration bitmap */
    double log;    /* distinct pages in the dirty log since the last sync */
    double clog;   /* distinct pages written in the current calc-dirty-rate
                      window (PRECOPY_HINT_MS) */
    double cdist;  /* distinct pages written since the run began (t0: the
                      agent's memory census; its re-reads see these) */
};

/* The model. Caller allocates; fields are private to precopy.c. */
struct precopy {
    struct precopy_workload wl;
    struct precopy_params par;
    struct precopy_group g[PRECOPY_MAX_GROUPS];
    int ngroups;
    int cursor; /* group the pass is at */
    uint64_t rng;
    double t_ms;
    enum precopy_state state;
    int paused;
    double window_left; /* rate-limit budget left in this window, bytes */
    double window_sent; /* bytes sent in this window */
    double bw_meas;     /* bytes/s measured over the last window */
    double threshold;   /* bw_meas x downtime limit, bytes */
    double transferred; /* bytes */
    double dup_pages, norm_pages;
    uint64_t sync_count;
    double dirty_period; /* newly dirty pages since the period began */
    double period_start_ms;
    double xfer_prev;        /* transferred at the period start, bytes */
    uint64_t dirty_rate_pps; /* last published dirty-pages-rate, pages/s */
    int high_cnt;            /* dirty_rate_high_cnt */
    uint32_t throttle;       /* % */
    double end_ms, downtime_ms, paused_ms, postcopy_ms, pause_at_ms, throttle_pct_s;
    double post_start_ms, post_resume_ms; /* post-copy began / guest resumed, ms */
    uint64_t hint_rng;       /* separate stream: the hint leaves the run unchanged */
    uint64_t hint_pps;       /* last calc-dirty-rate result, pages/s; 0 none yet */
};

/* Fills par with QEMU 7.2 defaults: downtime 300 ms, unlimited bandwidth
 * over a link of link_bps, auto-converge off (20/10/99, trigger 50 %),
 * post-copy off, device cost 20 ms, zero-scan 2 M pages/s, seed 1. */
void precopy_params_default(struct precopy_params *par, double link_bps);

/* Fills wl with a steady idle workload on ram_bytes of RAM (no working set,
 * no zero pages, no noise); callers then set what they need. */
void precopy_workload_default(struct precopy_workload *wl, uint64_t ram_bytes);

/* Checks wl and par and starts a migration at t = 0 with every page in the
 * bitmap (ram_init_bitmaps: the first sync). Returns 0, or FERR_INVAL with
 * e naming the field; m is then unusable. wl and par are copied. */
int precopy_init(struct precopy *m, const struct precopy_workload *wl,
                 const struct precopy_params *par, struct ferr *e)
    __attribute__((warn_unused_result));

/* Advances the model by one tick (guest dirtying, sending under the rate
 * limit, bitmap syncs, auto-converge, switchover). No-op once done. */
void precopy_step(struct precopy *m);

/* Returns non-zero once the migration completed or was cancelled. */
int precopy_done(const struct precopy *m);

/* Fills o with the current counters (borrowed m, not modified). */
void precopy_observe(const struct precopy *m, struct precopy_obs *o);

/* Controls, as the agent would apply them through QMP. Each returns 0, or
 * FERR_STATE when not legal now (e.g. post-copy without the capability, or
 * any control after the end), or FERR_INVAL for an out-of-range value; the
 * model is unchanged on error. */
int precopy_set_downtime(struct precopy *m, uint32_t limit_ms) __attribute__((warn_unused_result));
/* bps 0 removes the cap. */
int precopy_set_bandwidth(struct precopy *m, double bps) __attribute__((warn_unused_result));
/* Sets the CPU throttle directly (0..99 %); auto-converge may raise it later. */
int precopy_set_throttle(struct precopy *m, uint32_t pct) __attribute__((warn_unused_result));
/* Enables or disables auto-converge from now on with cpu-throttle-initial,
 * -increment and max-cpu-throttle (all %, 0..99); the throttle already in
 * force is kept (QEMU applies "initial" only when it is 0). */
int precopy_set_auto_converge(struct precopy *m, int on, uint32_t initial, uint32_t increment,
                              uint32_t max) __attribute__((warn_unused_result));
/* migrate-start-postcopy: the guest stops, device state moves, the guest
 * resumes on the destination and the remaining pages are pulled at link rate. */
int precopy_start_postcopy(struct precopy *m) __attribute__((warn_unused_result));
/* Pauses the guest (its dirty rate drops to 0) until the migration ends. */
int precopy_pause(struct precopy *m) __attribute__((warn_unused_result));
/* migrate_cancel: the run ends as CANCELLED, the guest stays on the source. */
int precopy_abort(struct precopy *m) __attribute__((warn_unused_result));

/* Returns the page-write rate of the workload at time t_ms before throttle
 * and noise, bytes/s (exposed for tests and the docs). */
double precopy_dirty_bps_at(const struct precopy_workload *wl, double t_ms);

#endif
