/* census — a pre-migration count of the guest's non-zero RAM, taken by the
 * agent on the source host just before `migrate`.
 *
 * Why: in pass 1 QEMU sends a zero page as a 9-byte flag and every other
 * page in full, so pass 1 lasts (non-zero pages x page size) / bandwidth;
 * query-migrate cannot say how many pages are zero until the pass has
 * seen them. The QEMU process on this host can: its guest RAM is one
 * anonymous mapping of the guest's RAM size.
 *
 * How (Linux, same host as QEMU, ptrace access to it — the agent launched
 * it or runs as root):
 *   1. /proc/PID/maps: the guest RAM mapping (anonymous, rw, length in
 *      [ram_bytes, ram_bytes + 2 MiB]; the smallest such).
 *   2. /proc/PID/pagemap over it, in EST_CENSUS_BUCKETS equal slices:
 *      pages neither present nor swapped were never touched and read as
 *      zero; present pages mapped to the kernel's shared zero page (a
 *      guest that arrived by migration has many) are zero too (the zero
 *      page's frame number is found on this process's own pagemap; needs
 *      CAP_SYS_ADMIN, else they are sampled like the rest). The other
 *      pages are candidates.
 *   3. Per slice, CENSUS_SAMPLE_PAGES / EST_CENSUS_BUCKETS present
 *      candidates, evenly spaced, are read with process_vm_readv and
 *      checked for all-zero; the slice's non-zero count is candidates x
 *      (1 - zero share of its sample). Swapped pages count as non-zero
 *      (reading them would swap them in). Nothing is read from a page that
 *      is not present, so the census does not fault the guest's memory in.
 *
 * Then, while pass 1 runs, census_tick re-reads the same sample pages at
 * 0.25, 0.5, 1, 2, 4 ... s after the census and counts those whose
 * content changed (a 64-bit hash per page, kept from the census): the
 * guest RAM written since t0, distinct(T), scaled like the count — what
 * QEMU's calc-dirty-rate page sampling measures, with ~16x its sample on
 * a 256 MiB guest, from 250 ms on instead of 1 s, and at several window
 * lengths, so the estimator can see the working set saturate. Pages not
 * present at t0 are not in the sample (a guest touching fresh memory is
 * under-counted).
 *
 * Cost is bounded whatever the RAM size: at most CENSUS_PAGEMAP_MAX bytes
 * of pagemap (a slice larger than its share is read as evenly spaced
 * pieces and scaled) and CENSUS_SAMPLE_PAGES pages read. Pages the guest
 * writes non-zero after the census are not in it; the estimator checks
 * the census against the normal pages pass 1 really sends (estimator.h,
 * census_profile).
 */
#ifndef FERRY_AGENT_CENSUS_H
#define FERRY_AGENT_CENSUS_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/estimator.h"
#include "util/ferr.h"

#define CENSUS_SAMPLE_PAGES 8192        /* pages read in all (EST_CENSUS_BUCKETS slices) */
#define CENSUS_PAGEMAP_MAX (32u << 20)  /* pagemap bytes read at most (16 GiB of RAM) */
#define CENSUS_MAPS_MAX (1u << 20)      /* /proc/PID/maps bytes read at most */
#define CENSUS_SLACK_BYTES (2ull << 20) /* mapping may exceed the RAM size by this */

struct census {
    uint64_t map_start;                   /* guest RAM mapping in QEMU, address */
    uint64_t ram_bytes;                   /* its length, bytes */
    uint64_t pages;                       /* its pages (host page size) */
    uint64_t page_bytes;                  /* host page size, bytes */
    uint64_t untouched_pages;             /* neither present nor swapped: zero */
    uint64_t zero_mapped_pages;           /* mapped to the shared zero page: zero */
    uint64_t candidate_pages;             /* present (other frames) or swapped */
    uint64_t swapped_pages;               /* of them swapped out: counted non-zero */
    uint64_t sampled_pages;               /* candidates read */
    uint64_t sampled_zero;                /* of them all-zero */
    uint64_t nonzero_bytes;               /* the estimate, bytes */
    double rel_err;                       /* its relative standard error (sampling) */
    uint64_t profile[EST_CENSUS_BUCKETS]; /* non-zero bytes per slice, address order */
    uint32_t nprofile;                    /* slices used */
    int pagemap_scaled;                   /* 1 when slices were subsampled (RAM > 16 GiB) */
    uint64_t pagemap_bytes;               /* pagemap read, bytes */
    uint64_t wall_us;                     /* time the census took, us */
    uint64_t cpu_us;                      /* CPU time of the calling thread in it, us */
    /* re-reads (census_tick) */
    uint64_t t0_us;       /* CLOCK_MONOTONIC when the pages were read, us */
    uint64_t dirty_bytes; /* RAM written since t0 at the last re-read, bytes */
    uint64_t dirty_ms;    /* when, ms after t0; 0 = none yet */
    uint64_t next_ms;     /* next re-read due at, ms after t0 */
    uint32_t resamples;   /* re-reads done */
    uint64_t resample_us; /* their total wall time, us */
    uint32_t n_smp;       /* sampled pages kept; 0 once dropped */
    uint64_t *smp_addr;   /* their addresses in QEMU, owned */
    uint64_t *smp_hash;   /* their content hash at t0, owned */
    float *smp_weight;    /* pages each stands for (slice candidates /
                             slice sample), owned */
};

/* Picks the guest RAM mapping out of the text of a /proc/PID/maps file
 * (buf, len bytes, need not be NUL-terminated; lines longer than 512 bytes
 * or malformed are skipped): the smallest anonymous (no path) mapping with
 * read and write permission whose length is in [ram_bytes, ram_bytes +
 * CENSUS_SLACK_BYTES]. Returns 0 with *start and *length set, or
 * FERR_NOTFOUND (no such mapping; outputs unchanged). */
int census_maps_pick(const char *buf, size_t len, uint64_t ram_bytes, uint64_t *start,
                     uint64_t *length) __attribute__((warn_unused_result));

/* Takes the census of QEMU process pid whose guest has ram_bytes of RAM
 * (the -m size). Blocks for its duration (bounded, see above; ~20 ms for
 * 256 MiB here). Returns 0 and fills *out, or a negative FERR_* code with
 * e saying why (no such mapping, no permission to read pagemap or memory);
 * *out is then unspecified. Does not change the guest. */
int census_take(pid_t pid, uint64_t ram_bytes, struct census *out, struct ferr *e)
    __attribute__((warn_unused_result));

/* Re-reads c's sample pages when the next re-read is due (0.25 s after t0,
 * then at twice the time of the last one) and sets c->dirty_bytes and
 * c->dirty_ms. Returns 1 when it re-read, 0 when not due or the sample was
 * dropped, or -errno (process_vm_readv failed; c->dirty_* unchanged).
 * Blocks for the re-read: ~5 ms for 5,400 pages here. */
int census_tick(pid_t pid, struct census *c) __attribute__((warn_unused_result));

/* Frees the kept sample (after pass 1 it is of no use); the counts stay.
 * Safe to call twice. */
void census_drop_sample(struct census *c);

/* census_drop_sample, for a census about to be freed (c may be NULL; c
 * itself stays the caller's to free). */
void census_free(struct census *c);

#endif
