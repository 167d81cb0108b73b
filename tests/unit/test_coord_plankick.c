/* Unit: which draining hosts a migration's end concerns (src/coord/plankick.c).
 * Proves, from a table: a kicked pass steps the source and every host with
 * a planned move to a named host (its per-destination slot is free again),
 * and no other; names are kept once; bad names are ignored; past
 * PLANKICK_HOSTS_MAX names the kick concerns every host; clear empties it. */
#include <stdio.h>
#include <string.h>

#include "../lib/test.h"
#include "coord/plankick.h"

struct kcase {
    const char *what;
    const char *named[4]; /* added to the kick, NULL-terminated */
    const char *host;     /* a draining host */
    const char *moves;    /* its planned moves, JSON */
    bool want;
};

static const struct kcase KCASES[] = {
    {"the source itself", {"h1", "h9", NULL}, "h1", "{\"a\":\"h5\"}", true},
    {"a move to the freed destination", {"h1", "h9", NULL}, "h2", "{\"a\":\"h5\",\"b\":\"h9\"}", true},
    {"unrelated host", {"h1", "h9", NULL}, "h3", "{\"a\":\"h5\",\"b\":\"h6\"}", false},
    {"no moves planned", {"h1", NULL}, "h3", "{}", false},
    {"moves missing (NULL)", {"h1", NULL}, "h3", NULL, false},
    {"a non-string move ignored", {"h1", NULL}, "h3", "{\"a\":7}", false},
    {"nothing named", {NULL}, "h1", "{\"a\":\"h1\"}", false},
    {"empty and NULL names ignored", {"", NULL}, "h1", "{\"a\":\"\"}", false},
    {"prefix is not a match", {"h1", NULL}, "h10", "{\"a\":\"h11\"}", false},
};

static void t_table(void)
{
    for (size_t i = 0; i < sizeof(KCASES) / sizeof(KCASES[0]); i++) {
        const struct kcase *c = &KCASES[i];
        struct plan_kick k;
        plankick_clear(&k);
        for (int j = 0; c->named[j]; j++)
            plankick_add(&k, c->named[j]);
        json_t *mv = c->moves ? json_loads(c->moves, 0, NULL) : NULL;
        CHECK(plankick_wants(&k, c->host, mv) == c->want, "%s: got %d", c->what, !c->want);
        json_decref(mv);
    }
}

static void t_bounds(void)
{
    struct plan_kick k;
    plankick_clear(&k);
    CHECK(plankick_empty(&k), "a cleared kick is not empty");
    plankick_add(&k, NULL);
    plankick_add(&k, "");
    char longname[STORE_NAME_MAX + 2];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    plankick_add(&k, longname);
    CHECK(plankick_empty(&k), "NULL, empty or over-long names were kept (%zu)", k.n);
    plankick_add(&k, "h1");
    plankick_add(&k, "h1");
    CHECK(k.n == 1 && !plankick_empty(&k), "a name kept %zu times", k.n);
    char name[16];
    for (int i = 0; i < PLANKICK_HOSTS_MAX - 1; i++) {
        snprintf(name, sizeof(name), "n%d", i);
        plankick_add(&k, name);
    }
    CHECK(k.n == PLANKICK_HOSTS_MAX && !k.overflow, "%zu names, overflow %d at the cap", k.n,
          k.overflow);
    CHECK(!plankick_wants(&k, "other", NULL), "a full (not overflowed) kick wants everyone");
    plankick_add(&k, "n0"); /* known: no overflow */
    CHECK(!k.overflow, "a known name overflowed the kick");
    plankick_add(&k, "one-more");
    CHECK(k.overflow && k.n == PLANKICK_HOSTS_MAX, "past the cap: n %zu overflow %d", k.n,
          k.overflow);
    CHECK(plankick_wants(&k, "other", NULL), "an overflowed kick does not concern every host");
    plankick_clear(&k);
    CHECK(plankick_empty(&k) && !plankick_wants(&k, "h1", NULL), "clear left names behind");
}

int main(void)
{
    test_run("plankick: source and hosts moving to a named host are stepped, no others",
             t_table);
    test_run("plankick: names kept once, bad names ignored, overflow concerns all, clear",
             t_bounds);
    return test_done();
}
