/* Integration: ferryd's group commit of migration progress (docs/FERRYD.md
 * "Durability of progress"), the real binary on a real SQLite store over
 * real HTTP on 127.0.0.1. The store is filled through the store API with
 * MIGS running migrations whose source hosts point at an agent endpoint
 * served by this test (a libevent HTTP server on a thread, answering
 * GET /v1/migrations/AID with a running record whose progress advances);
 * ferryd resumes them all and polls them every 500 ms. Proves:
 *  - the answers of many migrations share a transaction: the progress
 *    group commits (ferry_store_commits_total{kind="progress"}) are far
 *    fewer than the answers written (at least 4 a commit on average; one
 *    transaction per answer would give 1), with no lifecycle commit;
 *  - the outbox stays gapless (seq 1..last), every migration has progress
 *    events, each migration's pct never goes back in seq order and no
 *    (migration, pct) event appears twice;
 *  - a group commit that fails as a whole (the test holds the store's
 *    write lock longer than ferryd's busy timeout: SQLITE_BUSY) is counted,
 *    loses and duplicates nothing, and progress goes on after it;
 *  - kill -9 of ferryd leaves a gapless outbox; restarted, it goes on.
 *
 * ferryd runs in its own process group and dies with the test. Every wait
 * is bounded; the whole test takes about 25 s (6 s of it the held lock). */
#include <event2/buffer.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../lib/ferryd.h"
#include "../lib/standin.h"
#include "../lib/test.h"
#include "coord/store.h"
#include "util/httpc.h"

#define MIGS 40 /* running migrations ferryd polls */
#define HOSTS 8 /* their source/destination hosts */
#define HTTP_TIMEOUT_MS 15000
#define LOCK_HOLD_MS 6500 /* > ferryd's store busy timeout (5 s) */

static struct ferryd D;
static int up;
static char db[LAB_PATH_MAX + 32];

/* ---- the agent endpoint ferryd polls ------------------------------------- */

static struct standin agent;

/* GET /v1/migrations/agent-mig-NN: running, progress 2 %/s (below 99 %). */
static void agent_body(struct evbuffer *b, const char *aid, double t_s, void *arg)
{
    (void)arg;
    double pct = t_s * 2 > 99.0 ? 99.0 : t_s * 2;
    long long total = 4LL << 30, rem = (long long)((double)total * (1.0 - pct / 100.0));
    evbuffer_add_printf(b,
                        "{\"id\":\"%s\",\"state\":\"running\",\"estimate\":{\"progress_pct\":%.3f,"
                        "\"eta_ms\":%lld},\"last_sample\":{\"ram_total\":%lld,"
                        "\"ram_remaining\":%lld,\"throttle_pct\":0,\"dirty_pages_rate\":1000},"
                        "\"stalls\":[]}",
                        aid, pct, (long long)((100.0 - pct) * 500), total, rem);
}

/* ---- the store ----------------------------------------------------------- */

static int fill_store(const char *agent_url)
{
    struct store *st = NULL;
    struct ferr e = {0};
    if (store_open(db, &st, &e) != 0 || store_tx_begin(st, &e) != 0) {
        fprintf(stderr, "store: %s\n", e.msg);
        store_close(st);
        return -1;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    for (int h = 0; h < HOSTS; h++) {
        struct store_host sh = {0};
        snprintf(sh.name, sizeof(sh.name), "host-%02d", h);
        snprintf(sh.url, sizeof(sh.url), "%s", agent_url);
        sh.ram_mib = 262144;
        sh.vcpus = 64;
        snprintf(sh.state, sizeof(sh.state), "up");
        sh.last_heartbeat_ms = sh.registered_ms = now_ms;
        if (store_host_register(st, &sh, NULL, 0, NULL, &e) != 0)
            goto fail;
    }
    for (int i = 0; i < MIGS; i++) {
        struct store_migration m = {0};
        char detail[64];
        snprintf(m.id, sizeof(m.id), "mig-pc-%02d", i);
        snprintf(m.instance, sizeof(m.instance), "vm-%02d", i);
        snprintf(m.source, sizeof(m.source), "host-%02d", i % HOSTS);
        snprintf(m.destination, sizeof(m.destination), "host-%02d", (i + 1) % HOSTS);
        snprintf(m.state, sizeof(m.state), "running");
        snprintf(m.phase, sizeof(m.phase), "running");
        snprintf(m.user, sizeof(m.user), "admin");
        snprintf(m.project, sizeof(m.project), "p1");
        m.mem_total_bytes = 4ULL << 30;
        m.eta_ms = m.eta_low_ms = m.eta_high_ms = m.downtime_ms = -1;
        snprintf(detail, sizeof(detail), "{\"agent_migration\":\"agent-mig-%02d\"}", i);
        m.detail_json = detail;
        m.created_ms = now_ms - 60000 + i;
        m.updated_ms = m.created_ms;
        if (store_migration_insert(st, &m, &e) != 0)
            goto fail;
    }
    if (store_tx_commit(st, &e) != 0)
        goto fail;
    store_close(st);
    return 0;
fail:
    fprintf(stderr, "fill: %s\n", e.msg);
    store_close(st);
    return -1;
}

/* Checks the outbox through a read-only connection: seqs 1..last without a
 * gap, each migration's progress pct non-decreasing, no (migration, pct)
 * twice. Returns the number of migrations with progress events after seq
 * `after` into *with_after, the last seq into *last. */
static void check_outbox(int64_t after, int *with_after, int64_t *last)
{
    sqlite3 *d = NULL;
    sqlite3_stmt *st = NULL;
    REQUIRE(sqlite3_open_v2(db, &d, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK, "open %s", db);
    sqlite3_busy_timeout(d, 5000);
    REQUIRE(sqlite3_prepare_v2(d,
                               "SELECT seq, type, subject, json_extract(payload, '$.pct') FROM "
                               "events ORDER BY seq",
                               -1, &st, NULL) == SQLITE_OK,
            "prepare: %s", sqlite3_errmsg(d));
    double lastpct[MIGS];
    int seen_after[MIGS] = {0}, nprog[MIGS] = {0};
    for (int i = 0; i < MIGS; i++)
        lastpct[i] = -1;
    int64_t want = 1;
    int gaps = 0, back = 0, dups = 0, foreign = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(st, 0);
        if (seq != want)
            gaps++;
        want = seq + 1;
        const char *type = (const char *)sqlite3_column_text(st, 1);
        const char *subj = (const char *)sqlite3_column_text(st, 2);
        int i = -1;
        if (!type || strcmp(type, "migration.progress") != 0)
            continue;
        if (!subj || sscanf(subj, "migration/mig-pc-%d", &i) != 1 || i < 0 || i >= MIGS) {
            foreign++;
            continue;
        }
        double pct = sqlite3_column_double(st, 3);
        if (pct < lastpct[i])
            back++;
        else if (pct == lastpct[i])
            dups++;
        lastpct[i] = pct;
        nprog[i]++;
        if (seq > after)
            seen_after[i] = 1;
    }
    sqlite3_finalize(st);
    sqlite3_close(d);
    int none = 0;
    *with_after = 0;
    for (int i = 0; i < MIGS; i++) {
        none += nprog[i] == 0;
        *with_after += seen_after[i];
    }
    *last = want - 1;
    CHECK(gaps == 0, "%d seq gaps in the outbox (last %lld)", gaps, (long long)*last);
    CHECK(back == 0, "%d progress events went back in seq order", back);
    CHECK(dups == 0, "%d progress events duplicated", dups);
    CHECK(foreign == 0, "%d progress events of unknown migrations", foreign);
    CHECK(none == 0, "%d of %d migrations without a progress event", none, MIGS);
}

/* ---- metrics -------------------------------------------------------------- */

struct figures {
    double progress_commits, lifecycle_commits, written, failed, dropped, commit_failures;
};

static double metric(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, name, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    return -1;
}

static int read_figures(struct figures *f)
{
    struct httpc_resp r = {0};
    struct ferr e = {0};
    if (httpc_request(D.url, "GET", "/metrics", NULL, NULL, HTTP_TIMEOUT_MS, &r, &e) != 0) {
        fprintf(stderr, "GET /metrics: %s\n", e.msg);
        return -1;
    }
    char *text = malloc(r.len + 1);
    memcpy(text, r.body, r.len);
    text[r.len] = '\0';
    httpc_resp_free(&r);
    f->progress_commits = metric(text, "ferry_store_commits_total{kind=\"progress\"}");
    f->lifecycle_commits = metric(text, "ferry_store_commits_total{kind=\"lifecycle\"}");
    f->written = metric(text, "ferry_progress_written_total");
    f->failed = metric(text, "ferry_progress_failed_total");
    f->dropped = metric(text, "ferry_progress_dropped_total");
    f->commit_failures = metric(text, "ferry_progress_commit_failures_total");
    free(text);
    return f->progress_commits < 0 || f->written < 0 || f->commit_failures < 0 ? -1 : 0;
}

/* ---- tests ---------------------------------------------------------------- */

static void t_group(void)
{
    REQUIRE(up, "ferryd did not start: a setup failure is a failure");
    ferryd_sleep_ms(3000);
    struct figures f;
    REQUIRE(read_figures(&f) == 0, "metrics unreadable");
    printf("  %d migrations, 3 s: %.0f answers in %.0f progress commits (%.1f a commit), "
           "%.0f lifecycle commits\n",
           MIGS, f.written, f.progress_commits,
           f.progress_commits > 0 ? f.written / f.progress_commits : 0, f.lifecycle_commits);
    CHECK(f.written >= MIGS, "only %.0f answers written", f.written);
    CHECK(f.progress_commits >= 1 && f.written >= 4 * f.progress_commits,
          "%.0f answers in %.0f transactions: not grouped", f.written, f.progress_commits);
    CHECK(f.lifecycle_commits == 0, "%.0f lifecycle commits without a transition",
          f.lifecycle_commits);
    CHECK(f.failed == 0 && f.dropped == 0 && f.commit_failures == 0, "failures %.0f / %.0f / %.0f",
          f.failed, f.dropped, f.commit_failures);
    int with_after = 0;
    int64_t last = 0;
    check_outbox(0, &with_after, &last);
}

static void t_busy(void)
{
    REQUIRE(up, "ferryd did not start: a setup failure is a failure");
    struct figures f0, f1;
    REQUIRE(read_figures(&f0) == 0, "metrics unreadable");
    sqlite3 *d = NULL;
    REQUIRE(sqlite3_open_v2(db, &d, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK, "open %s", db);
    sqlite3_busy_timeout(d, 3000);
    /* the write lock, held past ferryd's busy timeout: its next group
       commit cannot begin (SQLITE_BUSY) */
    int rc = sqlite3_exec(d, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        sqlite3_close(d);
        REQUIRE(0, "cannot take the write lock: %d", rc);
    }
    int with_after = 0;
    int64_t at_lock = 0;
    ferryd_sleep_ms(LOCK_HOLD_MS);
    /* the outbox as committed before the lock (this connection reads it) */
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(d, "SELECT coalesce(max(seq), 0) FROM events", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        at_lock = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    CHECK(sqlite3_exec(d, "COMMIT", NULL, NULL, NULL) == SQLITE_OK, "release the lock");
    sqlite3_close(d);
    ferryd_sleep_ms(2500);
    REQUIRE(read_figures(&f1) == 0, "metrics unreadable");
    printf("  lock held %d ms: %.0f failed group commits, %.0f answers written after, "
           "%.0f dropped\n",
           LOCK_HOLD_MS, f1.commit_failures - f0.commit_failures, f1.written - f0.written,
           f1.dropped);
    CHECK(f1.commit_failures > f0.commit_failures, "no group commit failed under the lock");
    CHECK(f1.dropped == 0, "%.0f answers dropped", f1.dropped);
    CHECK(f1.written >= f0.written + MIGS, "progress did not go on: %.0f answers",
          f1.written - f0.written);
    int64_t last = 0;
    check_outbox(at_lock, &with_after, &last);
    CHECK(with_after == MIGS, "%d of %d migrations with progress after the lock", with_after, MIGS);
}

static void t_crash(void)
{
    REQUIRE(up, "ferryd did not start: a setup failure is a failure");
    ferryd_sleep_ms(300); /* likely inside a batch window */
    ferryd_stop(&D, SIGKILL);
    int with_after = 0;
    int64_t at_crash = 0;
    check_outbox(0, &with_after, &at_crash);
    up = ferryd_start(&D) == 0;
    REQUIRE(up, "ferryd did not restart");
    ferryd_sleep_ms(2500);
    int64_t last = 0;
    check_outbox(at_crash, &with_after, &last);
    CHECK(with_after == MIGS, "%d of %d migrations with progress after the restart", with_after,
          MIGS);
    struct figures f;
    CHECK(read_figures(&f) == 0 && f.written >= 4 * f.progress_commits,
          "after the restart: %.0f answers in %.0f transactions", f.written, f.progress_commits);
}

int main(void)
{
    struct ferr e = {0};
    signal(SIGPIPE, SIG_IGN);
    if (ferryd_init(&D, NULL, &e) != 0) {
        fprintf(stderr, "ferryd_init: %s\n", e.msg);
        return 1;
    }
    snprintf(db, sizeof(db), "%s/ferryd.db", D.dir);
    /* no heartbeats come from the agent endpoint: an hour's grace keeps the
       hosts up */
    up = standin_start(&agent, agent_body, NULL) == 0 && fill_store(agent.url) == 0 &&
         ferryd_write_conf(&D, "heartbeat_interval_ms = 3600000\n") == 0 && ferryd_start(&D) == 0;
    test_run("progress: many migrations' answers in one transaction; outbox gapless, in order, "
             "no duplicate",
             t_group);
    test_run("progress: a group commit failing as a whole (store busy) loses and duplicates "
             "nothing; progress goes on",
             t_busy);
    test_run("progress: kill -9 of ferryd leaves a gapless outbox; restarted, progress goes on",
             t_crash);
    if (!up)
        ferryd_tail_log(&D, 30);
    ferryd_fini(&D, 1);
    standin_stop(&agent);
    return test_done();
}
