/* migcache: the cache of rendered migration records. Proves a rendering is
 * answered only for the exact (id, created_ms, rev) and variant it was
 * stored for (a changed revision or a re-created id is a miss and drops the
 * stale text; the host-less variant is never answered with the one that
 * has hosts), that entries and bytes stay within their bounds with the
 * least recently used going first, that forget drops an entry, and that
 * threads reading and replacing the same entries at once only ever get the
 * text stored for the key they asked for. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/test.h"
#include "coord/migcache.h"
#include "util/xalloc.h"

static void put(struct migcache *mc, const char *id, int64_t created, int64_t rev, bool hosts,
                const char *text)
{
    migcache_put(mc, id, created, rev, hosts, xstrdup(text), strlen(text));
}

static void sink(void *arg, const char *text, size_t len)
{
    snprintf(arg, 128, "%.*s", (int)len, text);
}

/* The cached text for the key, "" when none. */
static const char *get(struct migcache *mc, const char *id, int64_t created, int64_t rev,
                       bool hosts)
{
    static char buf[128];
    buf[0] = '\0';
    if (!migcache_read(mc, id, created, rev, hosts, sink, buf))
        buf[0] = '\0';
    return buf;
}

static void t_keys(void)
{
    struct migcache *mc = migcache_new(0, 0);
    CHECK(strcmp(get(mc, "m1", 10, 0, false), "") == 0, "empty cache answered");
    put(mc, "m1", 10, 0, false, "m1-r0-nohosts");
    CHECK(strcmp(get(mc, "m1", 10, 0, false), "m1-r0-nohosts") == 0, "hit");
    CHECK(strcmp(get(mc, "m1", 10, 0, true), "") == 0, "host-less text answered for hosts");
    put(mc, "m1", 10, 0, true, "m1-r0-hosts");
    CHECK(strcmp(get(mc, "m1", 10, 0, true), "m1-r0-hosts") == 0, "hosts variant");
    CHECK(strcmp(get(mc, "m1", 10, 0, false), "m1-r0-nohosts") == 0, "host-less kept");
    /* A new revision: both variants of the old one are stale. */
    CHECK(strcmp(get(mc, "m1", 10, 1, false), "") == 0, "rev 1 answered with rev 0");
    CHECK(strcmp(get(mc, "m1", 10, 0, false), "") == 0, "stale text kept after a newer read");
    put(mc, "m1", 10, 1, false, "m1-r1");
    CHECK(strcmp(get(mc, "m1", 10, 1, false), "m1-r1") == 0, "rev 1");
    CHECK(strcmp(get(mc, "m1", 10, 1, true), "") == 0, "hosts of rev 0 answered for rev 1");
    /* Same id and rev, another created time (a re-created record). */
    CHECK(strcmp(get(mc, "m1", 11, 1, false), "") == 0, "other created_ms answered");
    /* An older revision stored after a newer one replaces it (the store
     * answered it; the next read of the newer one misses). */
    put(mc, "m2", 5, 3, false, "m2-r3");
    put(mc, "m2", 5, 2, false, "m2-r2");
    CHECK(strcmp(get(mc, "m2", 5, 3, false), "") == 0, "r3 after r2 was stored");
    struct migcache_stats st;
    migcache_stats(mc, &st);
    CHECK(st.entries == 2 && st.hits == 4 && st.stale >= 3,
          "stats: %zu entries %llu hits %llu stale", st.entries, (unsigned long long)st.hits,
          (unsigned long long)st.stale);
    migcache_forget(mc, "m1");
    migcache_forget(mc, "nope");
    put(mc, "m3", 1, 0, false, "m3");
    migcache_stats(mc, &st);
    CHECK(st.entries == 2 && strcmp(get(mc, "m1", 10, 1, false), "") == 0, "forget");
    migcache_free(mc);
    migcache_free(NULL);
}

static void t_bounds(void)
{
    struct migcache *mc = migcache_new(100, 0);
    char id[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof(id), "m%d", i);
        put(mc, id, i, 0, false, id);
        if (i >= 1)
            (void)get(mc, "m0", 0, 0, false); /* m0 stays the most recently used */
    }
    struct migcache_stats st;
    migcache_stats(mc, &st);
    CHECK(st.entries == 100 && st.evictions == 900, "entries %zu evictions %llu", st.entries,
          (unsigned long long)st.evictions);
    CHECK(strcmp(get(mc, "m0", 0, 0, false), "m0") == 0, "recently used entry evicted");
    CHECK(strcmp(get(mc, "m999", 999, 0, false), "m999") == 0, "newest entry evicted");
    CHECK(strcmp(get(mc, "m500", 500, 0, false), "") == 0, "old entry kept past the bound");
    migcache_free(mc);

    /* Byte bound: 10 texts of 100 bytes in 550 bytes → 5 stay. */
    mc = migcache_new(0, 550);
    char text[101];
    memset(text, 'x', 100);
    text[100] = '\0';
    for (int i = 0; i < 10; i++) {
        snprintf(id, sizeof(id), "b%d", i);
        put(mc, id, 0, 0, i % 2 == 0, text);
    }
    migcache_stats(mc, &st);
    CHECK(st.entries == 5 && st.bytes == 500, "entries %zu bytes %zu", st.entries, st.bytes);
    char big[600];
    memset(big, 'y', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    put(mc, "huge", 0, 0, false, big);
    migcache_stats(mc, &st);
    CHECK(st.bytes == 500 && strcmp(get(mc, "huge", 0, 0, false), "") == 0,
          "text over the byte bound kept (%zu bytes)", st.bytes);
    migcache_free(mc);
}

/* Four threads on 64 shared ids: each round bumps the revision of some ids
 * (put) and reads others; every text read must be the one of the exact
 * (id, rev, variant) asked for. */
#define RACE_IDS 64
#define RACE_ROUNDS 20000
static struct migcache *race_mc;
static int race_bad;

static void *racer(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    char id[16], want[64], got[128];
    for (int r = 0; r < RACE_ROUNDS; r++) {
        seed = seed * 1103515245u + 12345u;
        int k = (int)((seed >> 8) % RACE_IDS), rev = (int)((seed >> 20) % 4);
        bool hosts = (seed >> 3) & 1;
        snprintf(id, sizeof(id), "m%d", k);
        snprintf(want, sizeof(want), "%s/%d/%d", id, rev, hosts);
        if ((seed >> 5) % 3 == 0) {
            migcache_put(race_mc, id, 1, rev, hosts, xstrdup(want), strlen(want));
        } else if (migcache_read(race_mc, id, 1, rev, hosts, sink, got) && strcmp(got, want)) {
            __atomic_add_fetch(&race_bad, 1, __ATOMIC_RELAXED);
        }
    }
    return NULL;
}

static void t_threads(void)
{
    race_mc = migcache_new(RACE_IDS / 2, 0); /* evictions too */
    pthread_t th[4];
    for (uintptr_t i = 0; i < 4; i++)
        CHECK(pthread_create(&th[i], NULL, racer, (void *)(i + 1)) == 0, "thread %d", (int)i);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    struct migcache_stats st;
    migcache_stats(race_mc, &st);
    CHECK(race_bad == 0, "%d reads answered another key's text", race_bad);
    CHECK(st.hits > 0 && st.entries <= RACE_IDS / 2, "hits %llu entries %zu",
          (unsigned long long)st.hits, st.entries);
    migcache_free(race_mc);
}

int main(void)
{
    test_run("migcache: answered only for its id, created_ms, rev and variant", t_keys);
    test_run("migcache: entry and byte bounds, least recently used first", t_bounds);
    test_run("migcache: threads reading and replacing at once get their own key's text",
             t_threads);
    return test_done();
}
