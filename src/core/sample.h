/* sample — one observation of a running migration.
 *
 * The agent builds a struct mig_sample from QEMU 7.2 `query-migrate` (and,
 * for non-shared disks, from the block-mirror jobs); the simulator builds the
 * same struct from its model; tests read them from trace CSV (trace.h). All
 * decision modules in src/core take samples and nothing else from QEMU.
 *
 * Units are fixed: times in ms, sizes in bytes, rates in bytes/s except
 * dirty_pages_rate (pages/s, as QEMU reports it). QEMU reports `mbps` in
 * Mbit/s; the agent converts it: bw_bps = mbps * 1e6 / 8.
 */
#ifndef FERRY_CORE_SAMPLE_H
#define FERRY_CORE_SAMPLE_H
#include <stddef.h>
#include <stdint.h>

/* QEMU's MigrationStatus, folded to what the core needs. */
enum mig_phase {
    MIG_PHASE_SETUP = 0,      /* "setup" (and "none") */
    MIG_PHASE_ACTIVE,         /* "active": pre-copy running */
    MIG_PHASE_PRE_SWITCHOVER, /* "pre-switchover": paused before switchover */
    MIG_PHASE_DEVICE,         /* "device": device state being sent */
    MIG_PHASE_POSTCOPY,       /* "postcopy-active" (and -paused/-recover) */
    MIG_PHASE_COMPLETED,      /* "completed" */
    MIG_PHASE_FAILED,         /* "failed" */
    MIG_PHASE_CANCELLED,      /* "cancelled" (and "cancelling") */
    MIG_PHASE__COUNT
};

struct mig_sample {
    uint64_t t_ms;                 /* ms since migration start (monotonic) */
    enum mig_phase phase;          /* QEMU status at t_ms */
    uint64_t ram_total;            /* bytes of guest RAM */
    uint64_t ram_transferred;      /* bytes sent so far (all passes) */
    uint64_t ram_remaining;        /* bytes still dirty per QEMU's bitmap */
    uint64_t ram_duplicate;        /* zero pages sent, count (pages) */
    uint64_t ram_normal;           /* normal pages sent, count (pages) */
    uint64_t dirty_pages_rate;     /* pages/s, QEMU's, updated at bitmap sync */
    uint64_t page_size;            /* bytes per page; 0 means 4096 */
    uint64_t bw_bps;               /* measured bandwidth, bytes/s */
    uint64_t dirty_sync_count;     /* bitmap syncs so far (1 during pass 1) */
    uint32_t throttle_pct;         /* cpu-throttle-percentage, 0..99 */
    uint64_t postcopy_requests;    /* page faults served in post-copy, count */
    uint64_t disk_total;           /* bytes of all mirrored disks, 0 if none */
    uint64_t disk_done;            /* bytes mirrored so far */
    uint64_t setting_downtime_ms;  /* current downtime-limit parameter, ms */
    uint64_t setting_max_bw_bps;   /* current max-bandwidth parameter, bytes/s */
    uint64_t expected_downtime_ms; /* QEMU's own expected downtime, ms */
    uint64_t dirty_rate_hint_pps;  /* guest dirty rate measured outside the
                                      migration (QEMU calc-dirty-rate, or the
                                      simulator's equivalent), pages/s;
                                      0 = unknown. Lets the estimator judge
                                      pass 1, when QEMU reports no rate. */
    uint64_t census_dirty_bytes;   /* guest RAM written since the memory
                                      census at migration start, bytes
                                      (the agent re-reads the census's
                                      sample of pages and scales the share
                                      that changed; docs/AGENT.md) */
    uint64_t census_dirty_ms;      /* when that was measured, ms after the
                                      census; 0 = no measurement */
    uint64_t guest_disk_bps;       /* the guest's own disk I/O (agent impact
                                      sampler, newest window), read+write
                                      bytes/s; 0 idle or unknown */
    uint64_t guest_disk_iops;      /* ... requests/s */
    uint64_t guest_p99_us;         /* ... p99 request latency (mean when no
                                      histogram), us; 0 unknown */
};

/* Returns the stable lower-case name of phase ("active", "postcopy", ...),
 * or "unknown" when phase is out of range. The string is static. */
const char *mig_phase_name(enum mig_phase phase);

/* Parses name (len bytes, not necessarily NUL-terminated) as a phase name
 * as returned by mig_phase_name(), or a QEMU MigrationStatus string
 * ("postcopy-active", "pre-switchover", "cancelling", ...). Returns 0 and
 * sets *out, or FERR_INVAL and leaves *out unchanged. */
int mig_phase_parse(const char *name, size_t len, enum mig_phase *out)
    __attribute__((warn_unused_result));

/* Returns non-zero when phase is terminal (completed, failed, cancelled). */
int mig_phase_is_terminal(enum mig_phase phase);

/* Returns the page size of s in bytes (4096 when s->page_size is 0). */
uint64_t mig_sample_page_bytes(const struct mig_sample *s);

#endif
