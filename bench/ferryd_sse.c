/* ferryd_sse — SSE fan-out of ferryd: 1,000 concurrent subscribers of
 * GET /v1/events receiving every progress event of 50 simulated migrations.
 *
 * What it answers: does every subscriber get every event, in order, and how
 * long after its commit; how many events/s go through the outbox to 1,000
 * streams. Baseline in the same run: one subscriber, the same event stream.
 *
 * How: the real ferryd binary runs on a fresh SQLite store in a temporary
 * directory (127.0.0.1, an ephemeral port, sse_max_subscribers raised to
 * fit). The bench opens a second connection to the same store (WAL) and,
 * from a writer thread, appends migration.progress events for 50 simulated
 * migrations round-robin at a steady rate (default 1 per second per
 * migration, ferryd's default progress_events_per_s), each committed on its
 * own (store_event_append outside a transaction). Its own main thread holds
 * the subscriber sockets (one poll() over all of them) and parses the
 * streams: every subscriber must see ids last+1 … last+N in order, each
 * with `event: migration.progress`; delivery latency is commit (after
 * store_event_append returned) → the `id:` line read, CLOCK_MONOTONIC in
 * one process. Phases: 1 subscriber (baseline), then N subscribers.
 *
 * Prints a table and writes bench/out/ferryd_sse.json. Environment: BUILD
 * (default build), FERRY_BENCH_SSE_SUBS (1000), FERRY_BENCH_SSE_MIGRATIONS
 * (50), FERRY_BENCH_SSE_HZ (events per second per migration, 1),
 * FERRY_BENCH_SSE_DURATION_S (15). Exit 1 when an event was lost. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "../tests/lib/benchenv.h"
#include "../tests/lib/ferryd.h"

#include "coord/store.h"
#include "util/httpc.h"
#include "util/xalloc.h"

#define SUB_BUF 16384          /* bytes of unparsed stream kept per subscriber */
#define EVENTS_MAX 20000       /* events of one phase */
#define CONNECT_WAIT_MS 30000  /* every stream must be open within this */
#define DRAIN_WAIT_MS 30000    /* after the last commit, every event must arrive within this */

static pid_t daemon_pid;
static char dir[64];

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the writer ---------------------------------------------------------- */

struct writer {
    struct store *st;         /* second connection to ferryd's store; this thread only */
    long n_events;            /* events to append */
    long n_migrations;        /* simulated migrations, round-robin */
    double rate;              /* events/s, all migrations together */
    int64_t *seq;             /* [n_events] seq the store assigned */
    _Atomic int64_t *commit;  /* [n_events] mono ns after the commit returned; 0 before */
    int64_t first_ns, last_ns; /* first and last commit, mono ns */
    int failed;               /* an append failed (message on stderr) */
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    int64_t t0 = mono_ns();
    for (long i = 0; i < w->n_events; i++) {
        int64_t due = t0 + (int64_t)((double)i * 1e9 / w->rate);
        struct timespec ts = {(time_t)(due / 1000000000), (long)(due % 1000000000)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
            ;
        long mig = i % w->n_migrations, step = i / w->n_migrations;
        char payload[512];
        uint64_t total = 4ull << 30, rem = total - (uint64_t)(step * 1 % 1000) * (total / 1000);
        snprintf(payload, sizeof(payload),
                 "{\"migration_id\":\"mig-sse-%02ld\",\"instance\":\"vm-%02ld\","
                 "\"project_id\":\"bench\",\"source\":\"host-a\",\"destination\":\"host-b\","
                 "\"phase\":\"precopy\",\"pct\":%.1f,\"remaining_bytes\":%llu,\"eta_ms\":%ld,"
                 "\"bench_index\":%ld}",
                 mig, mig, 100.0 * (double)(total - rem) / (double)total, (unsigned long long)rem,
                 (long)(rem / (64u << 20)) * 1000, i);
        struct store_event ev = {.time_ms = wall_ms(), .payload = payload, .version = 1};
        snprintf(ev.type, sizeof(ev.type), "migration.progress");
        snprintf(ev.subject, sizeof(ev.subject), "migration/mig-sse-%02ld", mig);
        struct ferr e = {0};
        if (store_event_append(w->st, &ev, &w->seq[i], &e) != 0) {
            fprintf(stderr, "ferryd_sse: append: %s\n", e.msg);
            w->failed = 1;
            return NULL;
        }
        int64_t now = mono_ns();
        atomic_store_explicit(&w->commit[i], now, memory_order_release);
        if (i == 0)
            w->first_ns = now;
        w->last_ns = now;
    }
    return NULL;
}

/* ---- the subscribers ----------------------------------------------------- */

struct sub {
    int fd;
    int open;       /* saw the 200 and the stream's opening comment */
    int dead;       /* EOF, error, or a non-200 answer */
    int bad_order;  /* an id out of order or a wrong event type */
    long next;      /* index of the next expected event */
    size_t len;     /* bytes in buf */
    char buf[SUB_BUF];
};

struct phase {
    long subs;             /* subscribers */
    long events;           /* events written */
    long delivered;        /* (subscriber, event) pairs received */
    long complete;         /* subscribers that got every event in order */
    long dead, misordered; /* subscribers that lost their stream / saw a wrong order */
    double p50_ms, p99_ms, max_ms; /* delivery latency, commit → id line read */
    double commit_rate;    /* events/s the writer committed (first → last commit) */
    double delivery_rate;  /* subscriber-events/s: delivered ÷ (first commit → last read) */
    double outbox_rate;    /* events/s that reached every subscriber: events ÷ same span */
    double connect_s;      /* time to open every stream, s */
    int seq_contiguous;    /* the writer's seqs were last+1 … last+N */
};

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Handles one complete line of sub's stream. */
static void sub_line(struct sub *s, const char *line, int64_t base_seq, const struct writer *w,
                     float *lat, long *nlat, int64_t *last_read_ns)
{
    if (!s->open) {
        int code = 0;
        if (sscanf(line, "HTTP/1.%*d %d", &code) == 1 && code != 200)
            s->dead = 1;
        if (strncmp(line, ": ferry events from seq", 23) == 0)
            s->open = 1;
        return;
    }
    if (strncmp(line, "id: ", 4) == 0) {
        long long id = strtoll(line + 4, NULL, 10);
        long idx = (long)(id - base_seq - 1);
        if (idx != s->next || idx >= w->n_events) {
            s->bad_order = 1;
            return;
        }
        int64_t now = mono_ns();
        int64_t c = atomic_load_explicit(&w->commit[idx], memory_order_acquire);
        lat[(*nlat)++] = c > 0 ? (float)((double)(now - c) / 1e6) : 0.0f;
        if (now > *last_read_ns)
            *last_read_ns = now;
        s->next++;
    } else if (strncmp(line, "event: ", 7) == 0) {
        if (strcmp(line + 7, "migration.progress") != 0)
            s->bad_order = 1;
    }
}

/* Reads what is there on s; returns -1 on EOF or error. */
static int sub_read(struct sub *s, int64_t base_seq, const struct writer *w, float *lat,
                    long *nlat, int64_t *last_read_ns)
{
    for (;;) {
        if (s->len == SUB_BUF)
            s->len = 0; /* a line longer than the buffer: no event line is; drop it */
        ssize_t r = read(s->fd, s->buf + s->len, SUB_BUF - s->len);
        if (r == 0)
            return -1;
        if (r < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        s->len += (size_t)r;
        size_t start = 0;
        for (size_t i = 0; i < s->len; i++) {
            if (s->buf[i] != '\n')
                continue;
            s->buf[i] = '\0';
            if (i > start && s->buf[i - 1] == '\r')
                s->buf[i - 1] = '\0';
            sub_line(s, s->buf + start, base_seq, w, lat, nlat, last_read_ns);
            start = i + 1;
        }
        memmove(s->buf, s->buf + start, s->len - start);
        s->len -= start;
    }
}

static int sub_connect(struct sub *s, int port, const char *token, int64_t since)
{
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (s->fd < 0 || connect(s->fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        return -1;
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
                     "Authorization: Bearer %s\r\nLast-Event-ID: %lld\r\n\r\n",
                     token, (long long)since);
    if (n <= 0 || (size_t)n >= sizeof(req) || write(s->fd, req, (size_t)n) != n)
        return -1;
    return fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) | O_NONBLOCK);
}

/* One phase: nsubs streams, then the writer's events; fills ph. Returns 0,
 * or -1 when the phase could not run at all (message on stderr). */
static int run_phase(struct store *wst, int port, const char *token, long nsubs, long nmig,
                     double hz, long dur_s, struct phase *ph)
{
    memset(ph, 0, sizeof(*ph));
    ph->subs = nsubs;
    struct ferr e = {0};
    int64_t base = 0;
    if (store_event_last_seq(wst, &base, &e) != 0) {
        fprintf(stderr, "ferryd_sse: last seq: %s\n", e.msg);
        return -1;
    }
    struct writer w = {.st = wst, .n_migrations = nmig, .rate = hz * (double)nmig};
    w.n_events = (long)(w.rate * (double)dur_s);
    if (w.n_events > EVENTS_MAX)
        w.n_events = EVENTS_MAX;
    w.seq = xcalloc((size_t)w.n_events, sizeof(*w.seq));
    w.commit = xcalloc((size_t)w.n_events, sizeof(*w.commit));
    ph->events = w.n_events;
    struct sub *subs = xcalloc((size_t)nsubs, sizeof(*subs));
    struct pollfd *pf = xcalloc((size_t)nsubs, sizeof(*pf));
    float *lat = xcalloc((size_t)nsubs * (size_t)w.n_events, sizeof(*lat));
    long nlat = 0;
    int64_t last_read = 0;
    int rc = -1;

    int64_t t0 = mono_ns();
    for (long i = 0; i < nsubs; i++) {
        subs[i].fd = -1;
        if (sub_connect(&subs[i], port, token, base) != 0) {
            fprintf(stderr, "ferryd_sse: subscriber %ld cannot connect: %s\n", i, strerror(errno));
            goto out;
        }
        pf[i].fd = subs[i].fd;
        pf[i].events = POLLIN;
    }
    /* Every stream open (its opening comment read) before the first event. */
    long nopen = 0;
    while (nopen < nsubs && mono_ns() - t0 < (int64_t)CONNECT_WAIT_MS * 1000000) {
        if (poll(pf, (nfds_t)nsubs, 100) < 0 && errno != EINTR)
            goto out;
        nopen = 0;
        for (long i = 0; i < nsubs; i++) {
            if (pf[i].revents && !subs[i].dead &&
                sub_read(&subs[i], base, &w, lat, &nlat, &last_read) != 0)
                subs[i].dead = 1;
            nopen += subs[i].open;
            if (subs[i].dead) {
                fprintf(stderr, "ferryd_sse: subscriber %ld refused or closed at connect\n", i);
                goto out;
            }
        }
    }
    if (nopen < nsubs) {
        fprintf(stderr, "ferryd_sse: only %ld of %ld streams opened\n", nopen, nsubs);
        goto out;
    }
    ph->connect_s = (double)(mono_ns() - t0) / 1e9;

    pthread_t th;
    if (pthread_create(&th, NULL, writer_main, &w) != 0)
        goto out;
    int64_t writer_done_at = 0;
    for (;;) {
        long done = 0;
        for (long i = 0; i < nsubs; i++)
            done += subs[i].dead || subs[i].bad_order || subs[i].next == w.n_events;
        if (done == nsubs)
            break;
        int64_t now = mono_ns();
        if (!writer_done_at && w.n_events > 0 &&
            atomic_load_explicit(&w.commit[w.n_events - 1], memory_order_acquire) > 0)
            writer_done_at = now;
        if (writer_done_at && now - writer_done_at > (int64_t)DRAIN_WAIT_MS * 1000000)
            break;
        if (now - t0 > ((int64_t)dur_s * 4 + 120) * 1000000000)
            break; /* the writer itself is stuck */
        if (poll(pf, (nfds_t)nsubs, 50) < 0 && errno != EINTR)
            break;
        for (long i = 0; i < nsubs; i++)
            if (pf[i].revents && !subs[i].dead &&
                sub_read(&subs[i], base, &w, lat, &nlat, &last_read) != 0)
                subs[i].dead = 1;
    }
    pthread_join(th, NULL);
    if (w.failed)
        goto out;

    ph->seq_contiguous = 1;
    for (long i = 0; i < w.n_events; i++)
        if (w.seq[i] != base + 1 + i)
            ph->seq_contiguous = 0;
    for (long i = 0; i < nsubs; i++) {
        ph->delivered += subs[i].next;
        ph->complete += !subs[i].dead && !subs[i].bad_order && subs[i].next == w.n_events;
        ph->dead += subs[i].dead;
        ph->misordered += subs[i].bad_order;
    }
    if (nlat > 0) {
        qsort(lat, (size_t)nlat, sizeof(*lat), cmp_float);
        ph->p50_ms = lat[(size_t)((double)(nlat - 1) * 0.50)];
        ph->p99_ms = lat[(size_t)((double)(nlat - 1) * 0.99)];
        ph->max_ms = lat[nlat - 1];
    }
    if (w.n_events > 1 && w.last_ns > w.first_ns)
        ph->commit_rate = (double)(w.n_events - 1) / ((double)(w.last_ns - w.first_ns) / 1e9);
    if (last_read > w.first_ns) {
        double span_s = (double)(last_read - w.first_ns) / 1e9;
        ph->delivery_rate = (double)ph->delivered / span_s;
        ph->outbox_rate = (double)w.n_events / span_s;
    }
    rc = 0;
out:
    for (long i = 0; i < nsubs; i++)
        if (subs[i].fd >= 0)
            close(subs[i].fd);
    free(subs);
    free(pf);
    free(lat);
    free(w.seq);
    free((void *)w.commit);
    return rc;
}

static void json_phase(FILE *f, const struct phase *p)
{
    fprintf(f,
            "\"subscribers\":%ld,\"events\":%ld,\"delivered_events\":%ld,"
            "\"complete_subscribers\":%ld,\"lost_events\":%ld,\"disconnected_subscribers\":%ld,"
            "\"misordered_subscribers\":%ld,\"delivery_p50_ms\":%.2f,\"delivery_p99_ms\":%.2f,"
            "\"delivery_max_ms\":%.2f,\"commit_events_per_s\":%.1f,"
            "\"outbox_events_per_s\":%.1f,\"subscriber_events_per_s\":%.1f,\"connect_s\":%.3f",
            p->subs, p->events, p->delivered, p->complete, p->subs * p->events - p->delivered,
            p->dead, p->misordered, p->p50_ms, p->p99_ms, p->max_ms, p->commit_rate,
            p->outbox_rate, p->delivery_rate, p->connect_s);
}

int main(void)
{
    long nsubs = bench_env_long("FERRY_BENCH_SSE_SUBS", 1000, 1, 10000);
    long nmig = bench_env_long("FERRY_BENCH_SSE_MIGRATIONS", 50, 1, 1000);
    long hz = bench_env_long("FERRY_BENCH_SSE_HZ", 1, 1, 100);
    long dur_s = bench_env_long("FERRY_BENCH_SSE_DURATION_S", 15, 1, 120);
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            perror("setrlimit");
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < (rlim_t)nsubs + 64) {
        fprintf(stderr, "ferryd_sse: RLIMIT_NOFILE %llu is too low for %ld subscribers\n",
                (unsigned long long)rl.rlim_cur, nsubs);
        return 1;
    }
    snprintf(dir, sizeof(dir), "/tmp/ferry-bench-sse-XXXXXX");
    if (ferryd_tmpdir(dir) != 0 || ferryd_guard(&daemon_pid) != 0) {
        perror("mkdtemp");
        return 1;
    }
    char db[128], conf[128], logpath[128], tokpath[128], url[64];
    snprintf(db, sizeof(db), "%s/ferryd.db", dir);
    snprintf(conf, sizeof(conf), "%s/ferryd.conf", dir);
    snprintf(logpath, sizeof(logpath), "%s/ferryd.log", dir);
    snprintf(tokpath, sizeof(tokpath), "%s/admin.token", dir);
    int port = ferryd_free_port();
    FILE *f = fopen(conf, "w");
    if (port < 0 || !f)
        return 1;
    fprintf(f,
            "listen = 127.0.0.1:%d\ndb = %s\nbootstrap_token_file = %s\nlog_level = warn\n"
            "sse_max_subscribers = %ld\n",
            port, db, tokpath, nsubs + 16);
    fclose(f);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    daemon_pid = ferryd_spawn(conf, logpath);
    if (daemon_pid < 0 || ferryd_wait_health(url, &daemon_pid, FERRYD_T_START_TIMEOUT_MS) != 0) {
        fprintf(stderr, "ferryd_sse: ferryd did not start (log: %s)\n", logpath);
        return 1;
    }
    char token[300] = "";
    if (ferryd_read_line(tokpath, token, sizeof(token)) != 0) {
        fprintf(stderr, "ferryd_sse: no bootstrap token in %s\n", tokpath);
        return 1;
    }
    struct store *wst = NULL;
    struct ferr e = {0};
    if (store_open(db, &wst, &e) != 0) {
        fprintf(stderr, "ferryd_sse: second store connection: %s\n", e.msg);
        return 1;
    }

    struct phase base, fan;
    if (run_phase(wst, port, token, 1, nmig, (double)hz, dur_s, &base) != 0 ||
        run_phase(wst, port, token, nsubs, nmig, (double)hz, dur_s, &fan) != 0) {
        store_close(wst);
        return 1;
    }
    store_close(wst);
    ferryd_kill(&daemon_pid, SIGKILL, 0);

    char mach[384];
    bench_machine(mach, sizeof(mach));
    printf("ferryd SSE fan-out: %ld migrations × %ld progress event/s for %ld s, each committed "
           "through a second store connection (WAL); 127.0.0.1\nmachine: %s\n\n",
           nmig, hz, dur_s, mach);
    printf("| subscribers | events | delivered | lost | complete in order | p50 ms | p99 ms | "
           "max ms | committed ev/s | outbox ev/s to all | subscriber-events/s | connect s |\n");
    printf("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
           "|\n");
    const struct phase *ps[] = {&base, &fan};
    for (int i = 0; i < 2; i++) {
        const struct phase *p = ps[i];
        printf("| %ld%s | %ld | %ld | %ld | %ld/%ld | %.1f | %.1f | %.1f | %.1f | %.1f | %.0f | "
               "%.2f |\n",
               p->subs, i == 0 ? " (baseline)" : "", p->events, p->delivered,
               p->subs * p->events - p->delivered, p->complete, p->subs, p->p50_ms, p->p99_ms,
               p->max_ms, p->commit_rate, p->outbox_rate, p->delivery_rate, p->connect_s);
    }
    int ok = base.complete == base.subs && fan.complete == fan.subs && base.seq_contiguous &&
             fan.seq_contiguous;
    printf("\nnothing lost, every stream in seq order: %s%s\n", ok ? "yes" : "NO",
           base.seq_contiguous && fan.seq_contiguous ? "" : " (the outbox seqs had a gap)");

    if (system("mkdir -p bench/out") != 0)
        return 1;
    f = fopen("bench/out/ferryd_sse.json", "w");
    if (!f)
        return 1;
    fprintf(f, "{\"machine\":\"%s\",\"figures\":{\"migrations\":%ld,\"events_per_s_per_migration\":"
               "%ld,",
            mach, nmig, hz);
    json_phase(f, &fan);
    fprintf(f, ",\"all_delivered_in_order\":%s},\"baselines\":{", ok ? "true" : "false");
    json_phase(f, &base);
    fprintf(f, "}}\n");
    fclose(f);
    return ok ? 0 : 1;
}
