/* pcgen — a synthetic QEMU 7.2-like pre-copy sample stream for the core
 * unit tests (estimator, stall detection).
 *
 * Passes send at r bytes/s; pages dirtied at d bytes/s (capped at the
 * working set w) join the bitmap only at a sync, which happens when what
 * is dirty drops below r * limit; switchover when the synced amount is
 * below the threshold. Samples every 250 ms, internal step 10 ms. */
#ifndef FERRY_TESTS_PCGEN_H
#define FERRY_TESTS_PCGEN_H
#include <stdint.h>

#include "core/sample.h"

struct pcgen {
    double m, w, r, d, v, dirtied, tx;
    uint64_t t_ms, sync, limit_ms, end_ms;
    double last_rate_pages;
    int done; /* switchover reached: the last sample is the completion */
};

/* RAM m bytes, working set w, bandwidth r and dirty rate d (bytes/s),
 * downtime limit limit ms. */
void pcgen_init(struct pcgen *g, double m, double w, double r, double d, uint64_t limit);

/* Advances 250 ms and fills *s with what QEMU would report then. */
void pcgen_step(struct pcgen *g, struct mig_sample *s);

#endif
