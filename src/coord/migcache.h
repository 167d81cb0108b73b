/* migcache — ferryd's in-memory cache of rendered migration records (the
 * JSON text of one record as GET /v1/migrations and /v1/migrations/ID show
 * it), so a page of the list costs copies instead of JSON building.
 *
 * An entry is keyed by the migration id and validated by the row's
 * (created_ms, rev) as the store returns them with the row: every change of
 * a row raises its rev (store schema v8, also for writes from another
 * connection), so a changed record is rendered again on its next read and
 * an unchanged one never is. Two renderings per record, with and without
 * the host names (migration:show_hosts): the one without never held them.
 * The cache holds no decisions: visibility is decided per request before a
 * rendering is looked up. Bounded in entries and bytes; the least recently
 * used entries go first. Thread-safe: one lock guards the cache, held for
 * a lookup and the copy of its text (ferryd's read threads and its event
 * loop share one cache). */
#ifndef FERRY_COORD_MIGCACHE_H
#define FERRY_COORD_MIGCACHE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MIGCACHE_MAX_ENTRIES 20000     /* records held */
#define MIGCACHE_MAX_BYTES (64u << 20) /* bytes of rendered text held */

struct migcache;

/* Counters since migcache_new. */
struct migcache_stats {
    uint64_t hits;      /* lookups answered */
    uint64_t misses;    /* lookups not answered (absent, stale, other variant) */
    uint64_t stale;     /* ... of which the entry's rev or created_ms differed */
    uint64_t evictions; /* entries dropped for the bounds */
    size_t entries;     /* held now */
    size_t bytes;       /* rendered text held now, bytes */
};

/* Returns a new empty cache holding at most max_entries records and
 * max_bytes of rendered text (0: the MIGCACHE_MAX_* defaults). Free with
 * migcache_free. */
struct migcache *migcache_new(size_t max_entries, size_t max_bytes);

/* Frees mc and everything it holds; NULL is fine. */
void migcache_free(struct migcache *mc);

/* Receives a cached text (len bytes, not NUL-terminated in general),
 * borrowed for the call only; called with the cache's lock held, so it must
 * not call back into the cache. */
typedef void (*migcache_sink)(void *arg, const char *text, size_t len);

/* Looks up the rendering of migration id at (created_ms, rev), with host
 * names when hosts is true, and hands it to sink(arg, ...) (which copies
 * it). Returns true when found (sink was called), false otherwise. An
 * entry whose created_ms or rev differ is stale: its renderings are
 * dropped. */
bool migcache_read(struct migcache *mc, const char *id, int64_t created_ms, int64_t rev,
                   bool hosts, migcache_sink sink, void *arg);

/* Stores text[0..len) (takes ownership; allocated with malloc) as the
 * rendering of id at (created_ms, rev) for the hosts variant, replacing
 * what the entry held for another revision. Evicts least recently used
 * entries beyond the bounds (never this one). A text longer than the byte
 * bound is freed and not stored. */
void migcache_put(struct migcache *mc, const char *id, int64_t created_ms, int64_t rev, bool hosts,
                  char *text, size_t len);

/* Drops the entry of id, if any. */
void migcache_forget(struct migcache *mc, const char *id);

/* Fills *out with mc's counters. */
void migcache_stats(struct migcache *mc, struct migcache_stats *out);

#endif
