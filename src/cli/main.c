/* ferry — the command-line client. This first version talks to agents
 * directly: it runs one migration between two agents with a live progress
 * line, and reads or writes a guest's serial console.
 *
 *   ferry migrate --from http://A:P --to http://B:P INSTANCE [limits] [--policy JSON]
 *   ferry console --agent http://A:P INSTANCE [--send LINE] [--wait PREFIX]
 *   ferry instances --agent http://A:P
 *
 * Credentials: FERRY_TOKEN in the environment (bearer token). */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/ferr.h"
#include "util/httpc.h"
#include "util/xalloc.h"

#define CLI_TIMEOUT_MS 15000 /* per API request */

static const char *token;

static void usage(void)
{
    fprintf(stderr,
            "usage:\n"
            "  ferry migrate --from URL --to URL INSTANCE [--bandwidth BYTES_PER_S]\n"
            "                [--downtime MS] [--auto-converge] [--timeout S] [--json] [--quiet]\n"
            "                [--policy JSON]   (docs/CONTROLLER.md; post-copy is prepared on\n"
            "                                   the destination when the policy permits it)\n"
            "  ferry console --agent URL INSTANCE [--send LINE] [--wait PREFIX] [--wait-ms MS]\n"
            "  ferry instances --agent URL [--json]\n"
            "URLs look like http://127.0.1.1:7001. FERRY_TOKEN supplies a bearer token.\n");
}

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Calls the API; on transport failure or a status >= 400 prints why and
 * returns -1. On success *out holds the reply (caller decrefs). */
static int api(const char *base, const char *method, const char *path, const json_t *body,
               json_t **out, int *status_out)
{
    struct ferr e = {0};
    int status = 0;
    *out = NULL;
    if (httpc_json(base, method, path, body, token, CLI_TIMEOUT_MS, &status, out, &e) != 0) {
        fprintf(stderr, "ferry: %s %s%s: %s\n", method, base, path, e.msg);
        return -1;
    }
    if (status_out)
        *status_out = status;
    if (status >= 400) {
        json_t *err = json_object_get(*out, "error");
        const char *msg = json_string_value(json_object_get(err, "message"));
        const char *field = json_string_value(json_object_get(err, "field"));
        fprintf(stderr, "ferry: %s %s%s: HTTP %d: %s%s%s%s\n", method, base, path, status,
                msg ? msg : "error", field ? " (field " : "", field ? field : "",
                field ? ")" : "");
        json_decref(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

static unsigned long long jnum(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (unsigned long long)json_integer_value(v) : 0;
}

static void progress_line(json_t *m, bool tty)
{
    json_t *s = json_object_get(m, "last_sample");
    double total = (double)jnum(s, "ram_total"), rem = (double)jnum(s, "ram_remaining");
    double sent = (double)jnum(s, "ram_transferred");
    double pct = total > 0 ? 100.0 * (total - rem) / total : 0.0;
    if (pct < 0)
        pct = 0;
    int bar = (int)(pct / 5.0);
    char b[21];
    for (int i = 0; i < 20; i++)
        b[i] = i < bar ? '#' : '.';
    b[20] = '\0';
    fprintf(stdout,
            "%s[%s] %5.1f%%  sent %7.1f MiB  remaining %7.1f MiB  dirty %6llu pages/s  "
            "bw %6.1f MiB/s  pass %llu  %s  %.1fs%s",
            tty ? "\r" : "", b, pct, sent / 1048576.0, rem / 1048576.0,
            jnum(s, "dirty_pages_rate"), (double)jnum(s, "bw_bps") / 1048576.0,
            jnum(s, "dirty_sync_count"), json_string_value(json_object_get(m, "state")),
            (double)jnum(m, "elapsed_ms") / 1000.0, "");
    json_t *est = json_object_get(m, "estimate"), *eta = json_object_get(est, "eta_ms");
    if (est)
        fprintf(stdout, "  eta %s%.0fs %s", json_is_integer(eta) ? "" : "? ",
                (double)jnum(est, "eta_ms") / 1000.0, json_string_value(json_object_get(est, "verdict")));
    fprintf(stdout, "%s", tty ? "   " : "\n");
    fflush(stdout);
}

/* True when the policy object may switch to post-copy: then the
 * destination must get postcopy-ram before migrate-incoming. */
static bool policy_permits_postcopy(const json_t *pol)
{
    if (json_is_true(json_object_get(pol, "permit_post_copy")))
        return true;
    const json_t *en = json_object_get(pol, "entries");
    for (size_t i = 0; json_is_array(en) && i < json_array_size(en); i++) {
        const char *a = json_string_value(json_object_get(json_array_get(en, i), "action"));
        if (a && strcmp(a, "postcopy") == 0)
            return true;
    }
    return false;
}

static int cmd_migrate(int argc, char **argv)
{
    static const struct option opts[] = {
        {"from", required_argument, NULL, 'f'},   {"to", required_argument, NULL, 't'},
        {"bandwidth", required_argument, NULL, 'b'}, {"downtime", required_argument, NULL, 'd'},
        {"auto-converge", no_argument, NULL, 'a'}, {"timeout", required_argument, NULL, 'T'},
        {"json", no_argument, NULL, 'j'},         {"quiet", no_argument, NULL, 'q'},
        {"policy", required_argument, NULL, 'p'}, {NULL, 0, NULL, 0}};
    const char *from = NULL, *to = NULL;
    json_t *limits = json_object(), *policy = NULL;
    bool as_json = false, quiet = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end = NULL;
        long long v = 0;
        if (c == 'b' || c == 'd' || c == 'T') {
            v = strtoll(optarg, &end, 10);
            if (!end || *end || v < 0) {
                fprintf(stderr, "ferry: --%s wants a non-negative integer\n",
                        c == 'b' ? "bandwidth" : c == 'd' ? "downtime" : "timeout");
                json_decref(limits);
                return 2;
            }
        }
        switch (c) {
        case 'f': from = optarg; break;
        case 't': to = optarg; break;
        case 'b': json_object_set_new(limits, "max_bandwidth_bps", json_integer(v)); break;
        case 'd': json_object_set_new(limits, "downtime_ms", json_integer(v)); break;
        case 'T': json_object_set_new(limits, "completion_timeout_s", json_integer(v)); break;
        case 'a': json_object_set_new(limits, "auto_converge", json_true()); break;
        case 'j': as_json = true; break;
        case 'q': quiet = true; break;
        case 'p':
            json_decref(policy);
            policy = json_loads(optarg, 0, NULL);
            if (!json_is_object(policy)) {
                fprintf(stderr, "ferry: --policy wants a JSON object\n");
                json_decref(policy);
                json_decref(limits);
                return 2;
            }
            break;
        default: usage(); json_decref(limits); json_decref(policy); return 2;
        }
    }
    if (!from || !to || optind != argc - 1) {
        usage();
        json_decref(limits);
        json_decref(policy);
        return 2;
    }
    const char *name = argv[optind];
    int rc = 1;
    json_t *inst = NULL, *prep = NULL, *mig = NULL, *body = NULL;
    char *ipath = xasprintf("/v1/instances/%s", name);
    /* 1. what runs at the source */
    if (api(from, "GET", ipath, NULL, &inst, NULL) != 0)
        goto out;
    /* 2. a destination waiting for it */
    json_t *incoming = json_deep_copy(json_object_get(inst, "spec"));
    if (json_is_object(incoming) && policy_permits_postcopy(policy))
        json_object_set_new(incoming, "postcopy", json_true());
    int prc = api(to, "POST", "/v1/incoming", incoming, &prep, NULL);
    json_decref(incoming);
    if (prc != 0)
        goto out;
    const char *uri = NULL;
    long long deadline = mono_ms() + 60000;
    while (mono_ms() < deadline) {
        json_decref(prep);
        if (api(to, "GET", ipath, NULL, &prep, NULL) != 0)
            goto out;
        uri = json_string_value(json_object_get(prep, "incoming_uri"));
        const char *err = json_string_value(json_object_get(prep, "last_error"));
        if (uri)
            break;
        if (err) {
            fprintf(stderr, "ferry: destination preparation failed: %s\n", err);
            goto out;
        }
        sleep_ms(100);
    }
    if (!uri) {
        fprintf(stderr, "ferry: destination did not get ready within 60 s\n");
        goto out;
    }
    /* 3. the migration */
    body = json_pack("{s:s, s:s, s:s, s:O}", "instance", name, "dest_uri", uri, "dest_agent", to,
                     "limits", limits);
    if (policy)
        json_object_set(body, "policy", policy);
    if (api(from, "POST", "/v1/migrations", body, &mig, NULL) != 0) {
        json_t *ignored = NULL;
        if (api(to, "DELETE", ipath, NULL, &ignored, NULL) == 0)
            json_decref(ignored);
        goto out;
    }
    char *mpath = xasprintf("/v1/migrations/%s", json_string_value(json_object_get(mig, "id")));
    bool tty = isatty(1);
    const char *st = "";
    for (;;) {
        json_decref(mig);
        if (api(from, "GET", mpath, NULL, &mig, NULL) != 0) {
            free(mpath);
            goto out;
        }
        st = json_string_value(json_object_get(mig, "state"));
        if (!quiet && !as_json)
            progress_line(mig, tty);
        if (st && (strcmp(st, "succeeded") == 0 || strcmp(st, "failed") == 0 ||
                   strcmp(st, "cancelled") == 0))
            break;
        sleep_ms(tty ? 250 : 1000);
    }
    free(mpath);
    if (!quiet && !as_json && tty)
        fputc('\n', stdout);
    json_t *res = json_object_get(mig, "result");
    if (as_json) {
        char *t = json_dumps(mig, JSON_COMPACT);
        printf("%s\n", t);
        free(t);
    } else {
        printf("migration %s: %s", json_string_value(json_object_get(mig, "id")), st);
        if (res)
            printf("  total %.2f s  downtime %llu ms  sent %.1f MiB  passes %llu",
                   (double)jnum(res, "total_time_ms") / 1000.0, jnum(res, "downtime_ms"),
                   (double)jnum(res, "ram_transferred") / 1048576.0, jnum(res, "iterations"));
        const char *err = json_string_value(json_object_get(mig, "error"));
        if (err && err[0])
            printf("  (%s)", err);
        printf("\n");
    }
    rc = strcmp(st, "succeeded") == 0 ? 0 : 1;
out:
    free(ipath);
    json_decref(inst);
    json_decref(prep);
    json_decref(mig);
    json_decref(body);
    json_decref(limits);
    json_decref(policy);
    return rc;
}

static int cmd_console(int argc, char **argv)
{
    static const struct option opts[] = {{"agent", required_argument, NULL, 'a'},
                                         {"send", required_argument, NULL, 's'},
                                         {"wait", required_argument, NULL, 'w'},
                                         {"wait-ms", required_argument, NULL, 'W'},
                                         {NULL, 0, NULL, 0}};
    const char *agent = NULL, *send = NULL, *wait = NULL;
    long wait_ms = 30000;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'a': agent = optarg; break;
        case 's': send = optarg; break;
        case 'w': wait = optarg; break;
        case 'W': wait_ms = strtol(optarg, NULL, 10); break;
        default: usage(); return 2;
        }
    }
    if (!agent || optind != argc - 1 || wait_ms <= 0) {
        usage();
        return 2;
    }
    char *path = xasprintf("/v1/instances/%s/console", argv[optind]);
    json_t *r = NULL;
    unsigned long long since = 0;
    if (api(agent, "GET", path, NULL, &r, NULL) != 0) {
        free(path);
        return 1;
    }
    since = jnum(r, "next");
    if (!send && !wait)
        fputs(json_string_value(json_object_get(r, "text")), stdout);
    json_decref(r);
    if (send) {
        json_t *b = json_pack("{s:s}", "line", send);
        int rc = api(agent, "POST", path, b, &r, NULL);
        json_decref(b);
        json_decref(r);
        if (rc != 0) {
            free(path);
            return 1;
        }
    }
    int rc = 0;
    if (wait) {
        rc = 1;
        long long deadline = mono_ms() + wait_ms;
        char *acc = xstrdup("");
        while (mono_ms() < deadline && rc != 0) {
            char *p = xasprintf("%s?since=%llu", path, since);
            int ok = api(agent, "GET", p, NULL, &r, NULL);
            free(p);
            if (ok != 0)
                break;
            since = jnum(r, "next");
            char *n = xasprintf("%s%s", acc, json_string_value(json_object_get(r, "text")));
            free(acc);
            acc = n;
            json_decref(r);
            char *hit = strstr(acc, wait);
            if (hit) {
                hit[strcspn(hit, "\r\n")] = '\0';
                printf("%s\n", hit);
                rc = 0;
            } else {
                sleep_ms(200);
            }
        }
        free(acc);
        if (rc != 0)
            fprintf(stderr, "ferry: '%s' did not appear within %ld ms\n", wait, wait_ms);
    }
    free(path);
    return rc;
}

static int cmd_instances(int argc, char **argv)
{
    const char *agent = NULL;
    bool as_json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--agent") == 0 && i + 1 < argc)
            agent = argv[++i];
        else if (strcmp(argv[i], "--json") == 0)
            as_json = true;
    }
    if (!agent) {
        usage();
        return 2;
    }
    json_t *r;
    if (api(agent, "GET", "/v1/instances", NULL, &r, NULL) != 0)
        return 1;
    if (as_json) {
        char *t = json_dumps(r, JSON_COMPACT);
        printf("%s\n", t);
        free(t);
    } else {
        size_t i;
        json_t *in;
        printf("%-20s %-10s %-8s %s\n", "NAME", "STATE", "PID", "MEMORY");
        json_array_foreach(json_object_get(r, "instances"), i, in) {
            printf("%-20s %-10s %-8llu %llu MiB\n", json_string_value(json_object_get(in, "name")),
                   json_string_value(json_object_get(in, "state")), jnum(in, "pid"),
                   jnum(json_object_get(in, "spec"), "memory_mib"));
        }
    }
    json_decref(r);
    return 0;
}

int main(int argc, char **argv)
{
    token = getenv("FERRY_TOKEN");
    if (argc < 2) {
        usage();
        return 2;
    }
    if (strcmp(argv[1], "migrate") == 0)
        return cmd_migrate(argc - 1, argv + 1);
    if (strcmp(argv[1], "console") == 0)
        return cmd_console(argc - 1, argv + 1);
    if (strcmp(argv[1], "instances") == 0)
        return cmd_instances(argc - 1, argv + 1);
    usage();
    return 2;
}
