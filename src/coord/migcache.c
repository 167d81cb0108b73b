/* migcache — see migcache.h. A chained hash table on the id, sized for the
 * entry bound, plus a doubly linked list in recency order. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "coord/migcache.h"
#include "coord/store.h"
#include "util/xalloc.h"

struct mc_entry {
    char id[STORE_IDENT_MAX + 1];
    int64_t created_ms;           /* key part: the row's created time, ms */
    int64_t rev;                  /* key part: the row's revision */
    char *text[2];                /* [0] without host names, [1] with; owned or NULL */
    size_t len[2];                /* bytes of text[i] */
    struct mc_entry *hnext;       /* hash chain */
    struct mc_entry *prev, *next; /* recency list, head = most recent */
};

struct migcache {
    pthread_mutex_t lock;     /* guards everything below */
    struct mc_entry **bucket; /* nbuckets chains */
    size_t nbuckets;          /* a power of two */
    struct mc_entry *head, *tail;
    size_t max_entries, max_bytes;
    struct migcache_stats st;
};

static uint64_t hash_id(const char *id)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)id; *p; p++) {
        h ^= *p;
        h *= 1099511628211ull;
    }
    return h;
}

struct migcache *migcache_new(size_t max_entries, size_t max_bytes)
{
    struct migcache *mc = xcalloc(1, sizeof(*mc));
    mc->max_entries = max_entries ? max_entries : MIGCACHE_MAX_ENTRIES;
    mc->max_bytes = max_bytes ? max_bytes : MIGCACHE_MAX_BYTES;
    mc->nbuckets = 64;
    while (mc->nbuckets < mc->max_entries && mc->nbuckets < (1u << 24))
        mc->nbuckets <<= 1;
    mc->bucket = xcalloc(mc->nbuckets, sizeof(*mc->bucket));
    pthread_mutex_init(&mc->lock, NULL);
    return mc;
}

static void drop_texts(struct migcache *mc, struct mc_entry *en)
{
    for (int i = 0; i < 2; i++) {
        mc->st.bytes -= en->len[i];
        free(en->text[i]);
        en->text[i] = NULL;
        en->len[i] = 0;
    }
}

static void unlink_lru(struct migcache *mc, struct mc_entry *en)
{
    if (en->prev)
        en->prev->next = en->next;
    else
        mc->head = en->next;
    if (en->next)
        en->next->prev = en->prev;
    else
        mc->tail = en->prev;
    en->prev = en->next = NULL;
}

static void push_head(struct migcache *mc, struct mc_entry *en)
{
    en->prev = NULL;
    en->next = mc->head;
    if (mc->head)
        mc->head->prev = en;
    mc->head = en;
    if (!mc->tail)
        mc->tail = en;
}

static struct mc_entry **find_slot(struct migcache *mc, const char *id)
{
    struct mc_entry **p = &mc->bucket[hash_id(id) & (mc->nbuckets - 1)];
    while (*p && strcmp((*p)->id, id) != 0)
        p = &(*p)->hnext;
    return p;
}

static void remove_entry(struct migcache *mc, struct mc_entry **slot)
{
    struct mc_entry *en = *slot;
    *slot = en->hnext;
    unlink_lru(mc, en);
    drop_texts(mc, en);
    free(en);
    mc->st.entries--;
}

void migcache_free(struct migcache *mc)
{
    if (!mc)
        return;
    while (mc->head)
        remove_entry(mc, find_slot(mc, mc->head->id));
    free(mc->bucket);
    pthread_mutex_destroy(&mc->lock);
    free(mc);
}

bool migcache_read(struct migcache *mc, const char *id, int64_t created_ms, int64_t rev,
                   bool hosts, migcache_sink sink, void *arg)
{
    pthread_mutex_lock(&mc->lock);
    struct mc_entry *en = *find_slot(mc, id);
    if (en && (en->created_ms != created_ms || en->rev != rev)) {
        drop_texts(mc, en);
        mc->st.stale++;
        en = NULL;
    }
    if (!en || !en->text[hosts]) {
        mc->st.misses++;
        pthread_mutex_unlock(&mc->lock);
        return false;
    }
    mc->st.hits++;
    if (mc->head != en) {
        unlink_lru(mc, en);
        push_head(mc, en);
    }
    sink(arg, en->text[hosts], en->len[hosts]);
    pthread_mutex_unlock(&mc->lock);
    return true;
}

void migcache_put(struct migcache *mc, const char *id, int64_t created_ms, int64_t rev, bool hosts,
                  char *text, size_t len)
{
    if (len > mc->max_bytes || strlen(id) > STORE_IDENT_MAX) {
        free(text);
        return;
    }
    pthread_mutex_lock(&mc->lock);
    struct mc_entry **slot = find_slot(mc, id), *en = *slot;
    if (!en) {
        en = xcalloc(1, sizeof(*en));
        memcpy(en->id, id, strlen(id) + 1);
        *slot = en;
        mc->st.entries++;
    } else {
        unlink_lru(mc, en);
    }
    if (en->created_ms != created_ms || en->rev != rev)
        drop_texts(mc, en);
    en->created_ms = created_ms;
    en->rev = rev;
    mc->st.bytes -= en->len[hosts];
    free(en->text[hosts]);
    en->text[hosts] = text;
    en->len[hosts] = len;
    mc->st.bytes += len;
    push_head(mc, en);
    while ((mc->st.entries > mc->max_entries || mc->st.bytes > mc->max_bytes) && mc->tail != en) {
        remove_entry(mc, find_slot(mc, mc->tail->id));
        mc->st.evictions++;
    }
    pthread_mutex_unlock(&mc->lock);
}

void migcache_forget(struct migcache *mc, const char *id)
{
    pthread_mutex_lock(&mc->lock);
    struct mc_entry **slot = find_slot(mc, id);
    if (*slot)
        remove_entry(mc, slot);
    pthread_mutex_unlock(&mc->lock);
}

void migcache_stats(struct migcache *mc, struct migcache_stats *out)
{
    pthread_mutex_lock(&mc->lock);
    *out = mc->st;
    pthread_mutex_unlock(&mc->lock);
}
