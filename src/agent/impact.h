/* impact — what the guest's own disk sees, measured by the agent.
 *
 * Once a second (the instance's status poll) the agent sends
 * `query-blockstats` and turns the counters of every guest block device
 * (every entry with a "qdev": any backend — a local image, a copy being
 * mirrored, an NBD client to a remote server) into one interval: bytes and
 * requests read and written, the summed request time, and — after
 * `block-latency-histogram-set` was accepted for the device (sent once, on
 * the first reply) — a latency histogram from which p50 and p99 come.
 * Intervals are kept in a ring (IMPACT_RING seconds), numbered by seq.
 *
 * A migration takes its baseline from the intervals before it starts
 * (ctl_impact_start, control.c) and sums every later interval into its
 * "during" figures; the budget (core/conv.h) judges a window of the newest
 * IMPACT_WINDOW intervals. Without a histogram, the percentiles are
 * unknown (null) and the budget judges the mean latency instead. */
#ifndef FERRY_AGENT_IMPACT_H
#define FERRY_AGENT_IMPACT_H
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent/spec.h"

#define IMPACT_RING 64      /* intervals kept per guest (about 1 s each) */
#define IMPACT_BOUNDS 62    /* histogram boundaries: 16 us x 1.25^k */
#define IMPACT_DEVS 16      /* guest block devices followed */
#define IMPACT_QDEV_MAX 160 /* bytes of a device's QOM path incl. NUL */
#define IMPACT_WINDOW 3     /* intervals in the budget's window */

/* One measurement interval over all the guest's block devices. */
struct impact_iv {
    uint64_t seq;                     /* 1, 2, ... per guest */
    uint64_t t_ms;                    /* end: agent monotonic ms */
    uint64_t dur_ms;                  /* length, ms */
    uint64_t rd_bytes, wr_bytes;      /* bytes in the interval */
    uint64_t rd_ops, wr_ops;          /* requests completed in the interval */
    uint64_t time_ns;                 /* summed read+write request time, ns */
    bool hist_ok;                     /* every device had a histogram */
    uint32_t hist[IMPACT_BOUNDS + 1]; /* read+write requests per latency bin */
};

/* Sums of intervals. */
struct impact_agg {
    unsigned n; /* intervals summed */
    uint64_t dur_ms;
    uint64_t rd_bytes, wr_bytes, rd_ops, wr_ops, time_ns;
    unsigned hist_n;                  /* intervals with a histogram (summed in hist) */
    uint64_t hist[IMPACT_BOUNDS + 1]; /* their bins */
};

/* Figures of an aggregate. */
struct impact_fig {
    double bps;            /* read+write bytes/s */
    double wr_bps;         /* write bytes/s */
    double iops;           /* requests/s */
    double mean_us;        /* mean request latency, us (0 without requests) */
    double p50_us, p99_us; /* percentiles, us; < 0 unknown (no histogram) */
    uint64_t ops;          /* requests */
    double secs;           /* length, s */
};

/* Per-guest sampler state; owned by struct instance (instance->imp). */
struct inst_impact {
    struct impact_iv ring[IMPACT_RING]; /* ring[seq % IMPACT_RING] */
    uint64_t seq;                       /* newest interval's seq, 0 none */
    bool inflight;                      /* a query-blockstats is outstanding */
    bool have_prev;                     /* prev_* hold the last cumulative counters */
    uint64_t prev_t_ms;
    uint64_t prev_rd_bytes, prev_wr_bytes, prev_rd_ops, prev_wr_ops, prev_time_ns;
    uint64_t prev_hist[IMPACT_BOUNDS + 1];
    bool prev_hist_ok;
    unsigned prev_n_dev;                     /* devices in the previous reply */
    char devs[IMPACT_DEVS][IMPACT_QDEV_MAX]; /* QOM paths seen */
    bool hist_sent[IMPACT_DEVS];             /* histogram-set sent */
    unsigned n_dev;
    char note[160]; /* why there is no histogram, "" otherwise */
};

struct instance;

/* Sends query-blockstats for in (once a second from the status poll);
 * allocates in->imp on first use. Skipped while a query is outstanding. */
void impact_poll(struct instance *in);

/* Frees in->imp (instance retirement). */
void impact_free(struct instance *in);

/* Returns the interval seq of im, or NULL when it left the ring or never
 * existed. Borrowed, valid until the next poll reply. */
const struct impact_iv *impact_get(const struct inst_impact *im, uint64_t seq);

/* Adds iv to a (both borrowed); its histogram only when it has one. */
void impact_agg_add(struct impact_agg *a, const struct impact_iv *iv);

/* Sums the intervals of im that ended in (from_ms, to_ms] into a (zeroed
 * first). */
void impact_window(const struct inst_impact *im, uint64_t from_ms, uint64_t to_ms,
                   struct impact_agg *a);

/* Computes the figures of a. Percentiles interpolate inside the
 * histogram's bin (geometric bins, 25 % wide) over the intervals that had
 * a histogram; < 0 when fewer than half of them had one (the device's
 * first seconds, before block-latency-histogram-set took effect) or no
 * request was counted. */
void impact_figures(const struct impact_agg *a, struct impact_fig *f);

/* Returns a new JSON object for f (caller decrefs): bytes_per_s,
 * write_bytes_per_s, iops, mean_latency_us, p50_latency_us and
 * p99_latency_us (null when unknown), requests, seconds. */
json_t *impact_fig_json(const struct impact_fig *f);

/* The upper bound of histogram bin i, ns (the last bin has none:
 * UINT64_MAX). */
uint64_t impact_bound_ns(unsigned i);

/* Parses one query-blockstats reply (ret borrowed) into cumulative sums
 * over the entries with a "qdev". Fills devs (up to IMPACT_DEVS QOM
 * paths, each with has_hist telling whether its histogram is on) and the
 * sums. Returns the number of devices (0: none). Pure; for the fuzz
 * target and the sampler. */
unsigned impact_parse_blockstats(const json_t *ret, uint64_t sums[5],
                                 uint64_t hist[IMPACT_BOUNDS + 1], bool *hist_ok,
                                 char devs[IMPACT_DEVS][IMPACT_QDEV_MAX],
                                 bool has_hist[IMPACT_DEVS]);

#endif
