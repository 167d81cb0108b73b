/* Integration: ferryd's read threads (read_threads, docs/FERRYD.md "Read
 * threads") — the real daemon over real HTTP, on a store filled through
 * the store API. Proves:
 *   - the threads run (ferry_api_read_threads, /proc tasks) and answer
 *     exactly what the event loop alone answers: the same status and body
 *     for reads of every kind (lists and shows for admin, member and
 *     stranger, 401, 400, 403, 404) with read_threads = 0 and = 3;
 *   - readers on four client threads at once, while writes go through the
 *     relay to the loop (cordon/uncordon) and another store connection
 *     changes a record: every read answers 200, a member never sees another
 *     project or host names, and a write answered is seen by the next read
 *     (whichever thread takes it), as is the changed record;
 *   - every read decision a thread takes is audited: K shows by a member
 *     (some allowed, some denied) add exactly K migration:show records
 *     with the right decisions, through the loop's deferred flush, and
 *     readers faster than the flush wait for it instead of dropping records;
 *   - a migration of a project new to the store is listed to its member at
 *     once, whatever thread remembered the projects before;
 *   - kill -9 while readers and writers are busy: the restarted daemon
 *     keeps every host and a gapless event sequence, and reads again;
 *   - SIGTERM while event streams are relayed by the threads, after two
 *     other streams' clients left: ferryd stops cleanly (exit status 0;
 *     under BUILD=build/asan a use after free of a relay at shutdown, or the
 *     request of a departed client not freed, fails it).
 * ferryd runs through tests/lib/ferryd (own process group, killed when the
 * test ends). */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../lib/ferryd.h"
#include "../lib/storefix.h"
#include "../lib/test.h"
#include "coord/store.h"
#include "util/httpc.h"

#define RECORDS 200           /* migration records stored */
#define PROJECTS 4            /* record i belongs to p(i % 4) */
#define T0_MS 1767225600000LL /* created time of record 0, ms since epoch */
#define CLIENTS 4             /* concurrent reader threads */
#define LOAD_MS 3000          /* how long the readers read, ms */
#define WRITES 40             /* cordon/uncordon pairs meanwhile (bounded) */

static struct ferryd D;
static char db[LAB_PATH_MAX + 32];
static char member[FERRYD_T_TOKEN_MAX], stranger[FERRYD_T_TOKEN_MAX];
static int up;

static int fill_store(void)
{
    const struct storefix_recs r = {.id_prefix = "mig-rd-", .n = RECORDS, .projects = PROJECTS,
                                    .failed_every = 3, .per_second = 1, .t0_ms = T0_MS};
    return storefix_fill(db, &r);
}

/* One request; returns the status and the body (caller frees) in *body. */
static int get_raw(const char *method, const char *path, const char *token, const char *in,
                   char **body)
{
    struct httpc_resp r = {0};
    struct ferr e = {0};
    *body = NULL;
    if (httpc_request(D.url, method, path, in, token, FERRYD_T_HTTP_TIMEOUT_MS, &r, &e) != 0)
        return -1;
    int st = r.status;
    *body = strdup(r.body ? r.body : "");
    httpc_resp_free(&r);
    return st;
}

static int register_host(const char *name)
{
    char body[512];
    snprintf(body, sizeof(body),
             "{\"name\":\"%s\",\"agent_url\":\"http://127.0.1.1:7001\",\"ram_mib\":8192,"
             "\"vcpus\":4,\"instances\":[]}",
             name);
    char *out = NULL;
    int st = get_raw("POST", "/v1/hosts/register", D.admin, body, &out);
    free(out);
    return st;
}

static int start_with(int threads)
{
    return ferryd_write_conf(&D, "heartbeat_interval_ms = 3600000\nread_threads = %d\n", threads) ==
                       0 &&
                   ferryd_start(&D) == 0
               ? 0
               : -1;
}

/* Threads of the daemon (/proc/PID/task entries). */
static int task_count(void)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)D.pid);
    DIR *d = opendir(path);
    int n = 0;
    if (!d)
        return -1;
    for (struct dirent *de; (de = readdir(d));)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

/* ---- the same answers with and without read threads ----------------------- */

struct probe {
    const char *path;
    int who; /* 0 admin, 1 member, 2 stranger, 3 no token */
};

static const struct probe PROBES[] = {
    {"/v1/health", 3},
    {"/v1/migrations?limit=50", 0},
    {"/v1/migrations?limit=50", 1},
    {"/v1/migrations?limit=50", 2},
    {"/v1/migrations?limit=7&project=p2", 0},
    {"/v1/migrations?limit=7&project=p2", 1},
    {"/v1/migrations?limit=30&after=mig-rd-101", 1},
    {"/v1/migrations?state=failed&limit=1000", 1},
    {"/v1/migrations?limit=0", 0},
    {"/v1/migrations?limit=10&after=mig-rd-102", 1}, /* another project's cursor: 400 */
    {"/v1/migrations/mig-rd-005", 0},
    {"/v1/migrations/mig-rd-005", 1},
    {"/v1/migrations/mig-rd-006", 1}, /* another project's: 404 */
    {"/v1/migrations/nope", 0},
    {"/v1/migrations", 3},
    {"/v1/hosts", 0},
    {"/v1/hosts", 1},
    {"/v1/events?since=0&limit=5", 0},
};
#define NPROBES (sizeof(PROBES) / sizeof(PROBES[0]))

static const char *token_of(int who)
{
    return who == 0 ? D.admin : who == 1 ? member : who == 2 ? stranger : NULL;
}

static void probe_all(int status[NPROBES], char *body[NPROBES])
{
    for (size_t i = 0; i < NPROBES; i++)
        status[i] = get_raw("GET", PROBES[i].path, token_of(PROBES[i].who), NULL, &body[i]);
}

static void t_same_answers(void)
{
    REQUIRE(up, "ferryd did not start");
    int s0[NPROBES], s3[NPROBES];
    char *b0[NPROBES], *b3[NPROBES];
    ferryd_stop(&D, SIGTERM);
    REQUIRE(start_with(0) == 0, "ferryd with read_threads = 0 did not start");
    probe_all(s0, b0);
    ferryd_stop(&D, SIGTERM);
    REQUIRE(start_with(3) == 0, "ferryd with read_threads = 3 did not start");
    int tasks = task_count();
    char *met = NULL;
    int ms = get_raw("GET", "/metrics", NULL, NULL, &met);
    CHECK(ms == 200 && met && strstr(met, "\nferry_api_read_threads 3\n"),
          "/metrics (status %d) lacks ferry_api_read_threads 3", ms);
    free(met);
    CHECK(tasks >= 4, "ferryd runs %d threads, want the loop and 3 readers", tasks);
    probe_all(s3, b3);
    int codes[6] = {0};
    for (size_t i = 0; i < NPROBES; i++) {
        CHECK(s0[i] == s3[i] && b0[i] && b3[i] && strcmp(b0[i], b3[i]) == 0,
              "%s as %d: %d %.200s (loop) vs %d %.200s (threads)", PROBES[i].path, PROBES[i].who,
              s0[i], b0[i] ? b0[i] : "", s3[i], b3[i] ? b3[i] : "");
        codes[s3[i] == 200   ? 0
              : s3[i] == 400 ? 1
              : s3[i] == 401 ? 2
              : s3[i] == 403 ? 3
              : s3[i] == 404 ? 4
                             : 5]++;
        free(b0[i]);
        free(b3[i]);
    }
    CHECK(codes[0] >= 9 && codes[1] == 2 && codes[2] == 1 && codes[3] == 1 && codes[4] == 2 &&
              codes[5] == 0,
          "statuses 200:%d 400:%d 401:%d 403:%d 404:%d other:%d", codes[0], codes[1], codes[2],
          codes[3], codes[4], codes[5]);
}

/* ---- readers while writes happen -------------------------------------------- */

static int load_stop;
struct load_stats {
    long reads, bad, leaks;
};

static void *reader(void *arg)
{
    struct load_stats *s = arg;
    unsigned seed = (unsigned)(uintptr_t)arg;
    char path[96];
    for (int n = 0; n < 100000 && !__atomic_load_n(&load_stop, __ATOMIC_RELAXED); n++) {
        seed = seed * 1103515245u + 12345u;
        int k = (int)((seed >> 8) % RECORDS), kind = (int)((seed >> 4) % 3);
        char *body = NULL;
        int st;
        if (kind == 0) {
            snprintf(path, sizeof(path), "/v1/migrations/mig-rd-%03d", k);
            st = get_raw("GET", path, D.admin, NULL, &body);
            if (st != 200 || !strstr(body, "\"source\""))
                s->bad++;
        } else if (kind == 1) {
            st = get_raw("GET", "/v1/migrations?limit=20", member, NULL, &body);
            /* p1 only, never a host name */
            if (st != 200 || strstr(body, "\"source\"") || strstr(body, "\"p0\"") ||
                strstr(body, "\"p2\"") || strstr(body, "\"p3\""))
                s->leaks += st == 200, s->bad += st != 200;
        } else {
            st = get_raw("GET", "/v1/hosts", D.admin, NULL, &body);
            if (st != 200)
                s->bad++;
        }
        free(body);
        s->reads++;
    }
    return NULL;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void t_concurrent(void)
{
    REQUIRE(up && D.pid > 0, "ferryd does not run");
    REQUIRE(register_host("rh-1") / 100 == 2, "register rh-1");
    pthread_t th[CLIENTS];
    struct load_stats st[CLIENTS];
    memset(st, 0, sizeof(st));
    __atomic_store_n(&load_stop, 0, __ATOMIC_RELAXED);
    for (int i = 0; i < CLIENTS; i++)
        REQUIRE(pthread_create(&th[i], NULL, reader, &st[i]) == 0, "thread %d", i);
    int64_t t0 = now_ms();
    int stale = 0, writes = 0, wbad = 0;
    for (int i = 0; i < WRITES && now_ms() - t0 < LOAD_MS; i++) {
        char *out = NULL;
        int on = i % 2 == 0;
        int s = get_raw("POST", on ? "/v1/hosts/rh-1/cordon" : "/v1/hosts/rh-1/uncordon", D.admin,
                        on ? "{\"reason\":\"readers test\"}" : "{}", &out);
        wbad += s != 200;
        free(out);
        writes++;
        /* The write was answered: the next read sees it, whichever thread. */
        s = get_raw("GET", "/v1/hosts", D.admin, NULL, &out);
        bool cordoned = out && strstr(out, "readers test") != NULL;
        stale += s != 200 || cordoned != (bool)on;
        free(out);
    }
    /* A record changed through another store connection is shown changed. */
    struct store *so = NULL;
    struct ferr e = {0};
    struct store_migration m;
    bool changed = false;
    if (store_open(db, &so, &e) == 0 && store_migration_get(so, "mig-rd-041", &m, &e) == 0) {
        snprintf(m.last_error, sizeof(m.last_error), "changed under the readers");
        changed = store_migration_update(so, &m, &e) == 0;
        store_migration_clear(&m);
    }
    store_close(so);
    CHECK(changed, "could not change mig-rd-041: %s", e.msg);
    char *out = NULL;
    int s = get_raw("GET", "/v1/migrations/mig-rd-041", member, NULL, &out);
    CHECK(s == 200 && strstr(out, "changed under the readers"),
          "changed record not shown: %d %.300s", s, out ? out : "");
    free(out);
    while (now_ms() - t0 < LOAD_MS)
        ferryd_sleep_ms(50);
    __atomic_store_n(&load_stop, 1, __ATOMIC_RELAXED);
    long reads = 0, bad = 0, leaks = 0;
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(th[i], NULL);
        reads += st[i].reads;
        bad += st[i].bad;
        leaks += st[i].leaks;
    }
    printf("  %ld reads on %d client threads, %d writes (cordon/uncordon) meanwhile\n", reads,
           CLIENTS, writes);
    CHECK(reads >= CLIENTS * 10, "only %ld reads in %d ms", reads, LOAD_MS);
    CHECK(bad == 0 && leaks == 0,
          "%ld failed reads, %ld member pages with others' records or hosts", bad, leaks);
    CHECK(writes >= 4 && wbad == 0 && stale == 0,
          "%d writes, %d failed, %d not seen by the next read", writes, wbad, stale);
}

/* ---- a member of a project new to the store --------------------------------- */

/* The threads remember which projects own migrations (a member's page is
 * narrowed by it); a migration of a new project must show at once. */
static void t_new_project(void)
{
    REQUIRE(up && D.pid > 0, "ferryd does not run");
    char newbie[FERRYD_T_TOKEN_MAX];
    REQUIRE(ferryd_add_token(&D, "erin", "p7", "member", newbie, sizeof(newbie)) == 0, "token");
    int empty = 0;
    for (int i = 0; i < 12; i++) { /* every thread lists (and remembers) the projects */
        char *out = NULL;
        int s = get_raw("GET", "/v1/migrations?limit=10", newbie, NULL, &out);
        empty += s == 200 && strstr(out, "\"migrations\":[]") != NULL;
        free(out);
    }
    CHECK(empty == 12, "%d of 12 pages of a project without migrations were empty", empty);
    struct store *so = NULL;
    struct ferr e = {0};
    struct store_migration m = {0};
    snprintf(m.id, sizeof(m.id), "mig-rd-new");
    snprintf(m.instance, sizeof(m.instance), "vm-new");
    snprintf(m.source, sizeof(m.source), "host-1");
    snprintf(m.destination, sizeof(m.destination), "host-2");
    snprintf(m.state, sizeof(m.state), "succeeded");
    snprintf(m.phase, sizeof(m.phase), "completed");
    snprintf(m.user, sizeof(m.user), "erin");
    snprintf(m.project, sizeof(m.project), "p7");
    m.eta_ms = m.eta_low_ms = m.eta_high_ms = m.downtime_ms = -1;
    m.created_ms = m.updated_ms = T0_MS + RECORDS * 1000;
    bool ok = store_open(db, &so, &e) == 0 && store_migration_insert(so, &m, &e) == 0;
    store_close(so);
    REQUIRE(ok, "insert: %s", e.msg);
    int seen = 0;
    for (int i = 0; i < 12; i++) {
        char *out = NULL;
        int s = get_raw("GET", "/v1/migrations?limit=10", newbie, NULL, &out);
        seen += s == 200 && strstr(out, "mig-rd-new") != NULL && !strstr(out, "mig-rd-0");
        free(out);
    }
    CHECK(seen == 12, "the new project's migration in %d of 12 pages after its insert", seen);
}

/* ---- audit of the threads' decisions ---------------------------------------- */

/* Audit rows for action by subject with decision, through a separate
 * read-only connection; -1 on error. */
static long audit_rows(const char *subject, const char *action, const char *decision)
{
    sqlite3 *d = NULL;
    sqlite3_stmt *q = NULL;
    long n = -1;
    if (sqlite3_open_v2(db, &d, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(d,
                           "SELECT count(*) FROM audit WHERE subject = ?1 AND action = ?2 AND "
                           "decision = ?3",
                           -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, subject, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, action, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 3, decision, -1, SQLITE_STATIC);
        if (sqlite3_step(q) == SQLITE_ROW)
            n = (long)sqlite3_column_int64(q, 0);
    }
    sqlite3_finalize(q);
    sqlite3_close(d);
    return n;
}

static void t_audit(void)
{
    REQUIRE(up && D.pid > 0, "ferryd does not run");
    const char *subj = "carol@p1";
    long a0 = audit_rows(subj, "migration:show", "allow"),
         d0 = audit_rows(subj, "migration:show", "deny");
    REQUIRE(a0 >= 0 && d0 >= 0, "cannot read the audit table");
    int ok = 0, nf = 0, other = 0;
    char path[64];
    for (int i = 0; i < 120; i++) {
        /* odd ids: p1's (allowed) and p3's (denied, 404) alternate */
        int k = 1 + (i % 60) * 2;
        snprintf(path, sizeof(path), "/v1/migrations/mig-rd-%03d", k);
        char *out = NULL;
        int s = get_raw("GET", path, member, NULL, &out);
        free(out);
        if (s == 200)
            ok++;
        else if (s == 404)
            nf++;
        else
            other++;
    }
    long a1 = -1, d1 = -1;
    for (int w = 0; w < 100; w++) { /* the loop flushes every 100 ms: ≤ 10 s */
        a1 = audit_rows(subj, "migration:show", "allow");
        d1 = audit_rows(subj, "migration:show", "deny");
        if (a1 - a0 == ok && d1 - d0 == nf)
            break;
        ferryd_sleep_ms(100);
    }
    CHECK(other == 0 && ok > 0 && nf > 0, "answers: %d 200, %d 404, %d other", ok, nf, other);
    CHECK(a1 - a0 == ok && d1 - d0 == nf,
          "audit: %ld allow for %d shown, %ld deny for %d not found", a1 - a0, ok, d1 - d0, nf);
    /* The readers of the test before outran the 100 ms flush; they must have
     * waited for room rather than drop a record. */
    char cmd[LAB_PATH_MAX + 96];
    snprintf(cmd, sizeof(cmd), "grep -c 'record dropped' '%s' >/dev/null", D.log_path);
    CHECK(system(cmd) != 0, "audit records were dropped (%s)", D.log_path);
}

/* ---- kill -9 under load ------------------------------------------------------ */

static void t_kill9(void)
{
    REQUIRE(up && D.pid > 0, "ferryd does not run");
    pthread_t th[CLIENTS];
    struct load_stats st[CLIENTS];
    memset(st, 0, sizeof(st));
    __atomic_store_n(&load_stop, 0, __ATOMIC_RELAXED);
    for (int i = 0; i < CLIENTS; i++)
        REQUIRE(pthread_create(&th[i], NULL, reader, &st[i]) == 0, "thread %d", i);
    int regs = 0;
    char name[32];
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "kh-%d", i);
        regs += register_host(name) / 100 == 2;
    }
    ferryd_stop(&D, SIGKILL);
    __atomic_store_n(&load_stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(th[i], NULL);
    CHECK(regs == 10, "%d of 10 registrations answered", regs);
    REQUIRE(ferryd_start(&D) == 0, "ferryd did not restart after kill -9");
    json_t *o = NULL;
    int s = ferryd_api(&D, "GET", "/v1/hosts", D.admin, NULL, &o);
    size_t kh = 0;
    json_t *h;
    size_t i;
    json_array_foreach(json_object_get(o, "hosts"), i, h) kh +=
        strncmp(ferryd_jstr(h, "name"), "kh-", 3) == 0;
    json_decref(o);
    CHECK(s == 200 && kh == 10, "after kill -9: %d, %zu of 10 registered hosts", s, kh);
    /* The outbox stays gapless: seq 1..last_seq, each once. */
    int64_t want = 1, last = -1;
    for (int page = 0; page < 100; page++) {
        char path[64];
        snprintf(path, sizeof(path), "/v1/events?since=%lld&limit=1000", (long long)(want - 1));
        o = NULL;
        if (ferryd_api(&D, "GET", path, D.admin, NULL, &o) != 200)
            break;
        last = json_integer_value(json_object_get(o, "last_seq"));
        json_t *ev;
        size_t n = json_array_size(json_object_get(o, "events"));
        json_array_foreach(json_object_get(o, "events"), i, ev)
        {
            if (json_integer_value(json_object_get(ev, "seq")) != want)
                break;
            want++;
        }
        json_decref(o);
        if (n == 0 || want > last)
            break;
    }
    CHECK(last > 0 && want == last + 1, "events: read up to seq %lld of %lld without a gap",
          (long long)(want - 1), (long long)last);
    s = ferryd_api(&D, "GET", "/v1/migrations/mig-rd-005", member, NULL, NULL);
    CHECK(s == 200, "a read after the restart answered %d", s);
}

/* ---- SIGTERM while streams are relayed ---------------------------------------- */

/* Opens an event stream (relayed by a read thread to the loop) and waits,
 * at most 5 s, for its answer's headers. Returns the socket or -1. */
static int stream_open(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)D.port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char req[512], buf[4096];
    int len = snprintf(req, sizeof(req),
                       "GET /v1/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
                       "Authorization: Bearer %s\r\n\r\n",
                       D.admin);
    size_t n = 0;
    uint64_t t0 = lab_now_ms();
    if (write(fd, req, (size_t)len) == len)
        while (lab_now_ms() - t0 < 5000 && n < sizeof(buf) - 1) {
            struct pollfd p = {fd, POLLIN, 0};
            if (poll(&p, 1, 100) <= 0)
                continue;
            ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
            if (r <= 0)
                break;
            n += (size_t)r;
            buf[n] = '\0';
            if (strstr(buf, "\r\n\r\n"))
                return strncmp(buf, "HTTP/1.1 200", 12) == 0 ? fd : (close(fd), -1);
        }
    close(fd);
    return -1;
}

static void t_term_streams(void)
{
    REQUIRE(up && D.pid > 0, "ferryd does not run");
    /* Two clients leave first: their relays and the loop's subscribers
     * end; the request of each must be freed (LSan under BUILD=build/asan
     * fails the exit status on a leak). */
    int left_n = 0;
    for (int i = 0; i < 2; i++) {
        int fd = stream_open();
        left_n += fd >= 0;
        if (fd >= 0)
            close(fd);
    }
    CHECK(left_n == 2, "%d of 2 event streams answered 200", left_n);
    ferryd_sleep_ms(300); /* time to see them go (if not, they end with the daemon) */
    int fds[3], open_n = 0;
    for (int i = 0; i < 3; i++)
        open_n += (fds[i] = stream_open()) >= 0;
    CHECK(open_n == 3, "%d of 3 event streams answered 200", open_n);
    pid_t pid = D.pid;
    int status = -1, gone = 0;
    REQUIRE(kill(pid, SIGTERM) == 0, "cannot signal ferryd");
    for (int w = 0; w < 100 && !gone; w++) { /* ≤ 10 s */
        gone = waitpid(pid, &status, WNOHANG) == pid;
        if (!gone)
            ferryd_sleep_ms(100);
    }
    if (gone)
        D.pid = 0;
    else
        ferryd_stop(&D, SIGKILL);
    for (int i = 0; i < 3; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    CHECK(gone, "ferryd did not stop within 10 s of SIGTERM");
    CHECK(gone && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "ferryd stopped with status 0x%x (log %s)", status, D.log_path);
}

int main(void)
{
    struct ferr e = {0};
    if (ferryd_init(&D, NULL, &e) != 0) {
        fprintf(stderr, "ferryd_init: %s\n", e.msg);
        return 1;
    }
    snprintf(db, sizeof(db), "%s/ferryd.db", D.dir);
    up = ferryd_write_conf(&D, NULL) == 0 && fill_store() == 0 &&
         ferryd_add_token(&D, "carol", "p1", "member", member, sizeof(member)) == 0 &&
         ferryd_add_token(&D, "dave", "p9", "member", stranger, sizeof(stranger)) == 0 &&
         start_with(3) == 0;
    test_run("ferryd readers: same status and body for every kind of read with read_threads "
             "0 and 3",
             t_same_answers);
    test_run("ferryd readers: 4 client threads read while writes are relayed and a record "
             "changes: all answered, nothing leaked, writes seen at once",
             t_concurrent);
    test_run("ferryd readers: every show decided by a read thread is audited (allow and deny)",
             t_audit);
    test_run("ferryd readers: a member's first migration (a project new to the store) is "
             "listed at once by every thread",
             t_new_project);
    test_run("ferryd readers: kill -9 under readers and writers: hosts kept, events gapless, "
             "reads again",
             t_kill9);
    test_run("ferryd readers: SIGTERM while the threads relay event streams: a clean stop",
             t_term_streams);
    int rc = test_done();
    if (rc != 0)
        ferryd_tail_log(&D, 40);
    ferryd_fini(&D, rc == 0);
    return rc;
}
