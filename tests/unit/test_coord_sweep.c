/* Unit: the heartbeat sweep (coord_sweep_hosts) on a real store, with the
 * clock passed in. Proves: a host is marked down only once its silence
 * exceeds interval × missed; the down state and its host.down event are
 * written together, once (a second sweep changes nothing); a restarted
 * ferryd grants every host a full window from its own start. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/test.h"
#include "coord/coord.h"
#include "util/xalloc.h"

static char dir[64];

static void reg(struct store *st, const char *name, int64_t hb_ms)
{
    struct store_host h = {.ram_mib = 1024, .vcpus = 1, .last_heartbeat_ms = hb_ms};
    struct ferr e = {0};
    snprintf(h.name, sizeof(h.name), "%s", name);
    snprintf(h.url, sizeof(h.url), "http://127.0.1.1:1");
    snprintf(h.state, sizeof(h.state), "up");
    if (store_host_register(st, &h, NULL, 0, NULL, &e) != 0)
        test__fail(__FILE__, __LINE__, "register", "%s", e.msg);
}

static const char *state(struct store *st, const char *name)
{
    static struct store_host h;
    if (store_host_get(st, name, &h, NULL) != 0)
        return "?";
    return h.state;
}

static void t_sweep(void)
{
    struct coord c = {0};
    struct ferr e = {0};
    char *p = xasprintf("%s/sweep.db", dir);
    config_defaults(&c.cfg);
    c.cfg.heartbeat_interval_ms = 1000;
    c.cfg.heartbeat_missed = 3;
    REQUIRE(store_open(p, &c.st, &e) == 0, "open: %s", e.msg);
    c.started_ms = 0;
    reg(c.st, "quiet", 10000);
    reg(c.st, "busy", 12500);
    int marked = -1;
    REQUIRE(coord_sweep_hosts(&c, 13000, &marked, &e) == 0, "sweep: %s", e.msg);
    CHECK(marked == 0 && strcmp(state(c.st, "quiet"), "up") == 0,
          "3000 ms of silence is not > window");
    REQUIRE(coord_sweep_hosts(&c, 13001, &marked, &e) == 0, "sweep: %s", e.msg);
    CHECK(marked == 1 && strcmp(state(c.st, "quiet"), "down") == 0 &&
              strcmp(state(c.st, "busy"), "up") == 0,
          "marked %d quiet %s busy %s", marked, state(c.st, "quiet"), state(c.st, "busy"));
    REQUIRE(coord_sweep_hosts(&c, 14000, &marked, &e) == 0, "sweep: %s", e.msg);
    CHECK(marked == 0, "a down host marked again");
    struct store_event *ev = NULL;
    size_t n = 0;
    REQUIRE(store_events_since(c.st, 0, 0, &ev, &n, &e) == 0, "events: %s", e.msg);
    CHECK(n == 1 && strcmp(ev[0].type, "host.down") == 0 &&
              strcmp(ev[0].subject, "host/quiet") == 0 && ev[0].time_ms == 13001 &&
              strstr(ev[0].payload, "\"missed_beats\":3") != NULL,
          "events: %zu %s", n, n ? ev[0].payload : "");
    store_events_free(ev, n);
    /* ferryd restarted at 100000: busy's old heartbeat counts from then. */
    c.started_ms = 100000;
    REQUIRE(coord_sweep_hosts(&c, 102000, &marked, &e) == 0, "sweep: %s", e.msg);
    CHECK(marked == 0 && strcmp(state(c.st, "busy"), "up") == 0,
          "host marked down for ferryd's own outage");
    REQUIRE(coord_sweep_hosts(&c, 103001, &marked, &e) == 0, "sweep: %s", e.msg);
    CHECK(marked == 1 && strcmp(state(c.st, "busy"), "down") == 0, "no full window after start");
    store_close(c.st);
    free(p);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/ferry-sweep-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_run("sweep: down after interval x missed, once, with its event; restart grace", t_sweep);
    test_rm_rf(dir);
    return test_done();
}
