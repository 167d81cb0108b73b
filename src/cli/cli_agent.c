/* cli_agent — the agent-direct commands of ferry: they talk to two
 * ferry-agents without a coordinator (the demo and the lab tests use them).
 *
 *   ferry migrate --from http://A:P --to http://B:P INSTANCE [limits] [--policy JSON]
 *   ferry console --agent http://A:P INSTANCE [--send LINE] [--wait PREFIX]
 *   ferry instances --agent http://A:P
 *
 * Credentials: FERRY_TOKEN in the environment (the agent's bearer token). */
#include "cli/cli_agent.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_api.h"
#include "util/xalloc.h"

static void usage(void);

void cli_agent_usage(FILE *to)
{
    fprintf(to,
            "  ferry migrate --from URL --to URL INSTANCE [--bandwidth BYTES_PER_S]\n"
            "                [--downtime MS] [--auto-converge] [--pacing] [--timeout S] [--json]\n"
            "                [--quiet] [--policy JSON]   (agent-direct, no ferryd; docs/CONTROLLER.md:\n"
            "                                   post-copy is prepared on the destination when\n"
            "                                   the policy permits it)\n"
            "  ferry console --agent URL INSTANCE [--send LINE] [--wait PREFIX] [--wait-ms MS]\n"
            "  ferry instances --agent URL [--json]\n"
            "  (agent URLs look like http://127.0.1.1:7001; FERRY_TOKEN is the agent's token)\n");
}

static void usage(void)
{
    fputs("usage:\n", stderr);
    cli_agent_usage(stderr);
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
            tty ? "\r" : "", b, pct, sent / 1048576.0, rem / 1048576.0, jnum(s, "dirty_pages_rate"),
            (double)jnum(s, "bw_bps") / 1048576.0, jnum(s, "dirty_sync_count"),
            json_string_value(json_object_get(m, "state")), (double)jnum(m, "elapsed_ms") / 1000.0,
            "");
    json_t *est = json_object_get(m, "estimate"), *eta = json_object_get(est, "eta_ms");
    if (est)
        fprintf(stdout, "  eta %s%.0fs %s", json_is_integer(eta) ? "" : "? ",
                (double)jnum(est, "eta_ms") / 1000.0,
                json_string_value(json_object_get(est, "verdict")));
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

int cli_agent_migrate(int argc, char **argv)
{
    const char *token = getenv("FERRY_TOKEN");
    static const struct option opts[] = {{"from", required_argument, NULL, 'f'},
                                         {"to", required_argument, NULL, 't'},
                                         {"bandwidth", required_argument, NULL, 'b'},
                                         {"downtime", required_argument, NULL, 'd'},
                                         {"auto-converge", no_argument, NULL, 'a'},
                                         {"pacing", no_argument, NULL, 'P'},
                                         {"timeout", required_argument, NULL, 'T'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"policy", required_argument, NULL, 'p'},
                                         {NULL, 0, NULL, 0}};
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
                        c == 'b'   ? "bandwidth"
                        : c == 'd' ? "downtime"
                                   : "timeout");
                json_decref(limits);
                return 2;
            }
        }
        switch (c) {
        case 'f':
            from = optarg;
            break;
        case 't':
            to = optarg;
            break;
        case 'b':
            json_object_set_new(limits, "max_bandwidth_bps", json_integer(v));
            break;
        case 'd':
            json_object_set_new(limits, "downtime_ms", json_integer(v));
            break;
        case 'T':
            json_object_set_new(limits, "completion_timeout_s", json_integer(v));
            break;
        case 'a':
            json_object_set_new(limits, "auto_converge", json_true());
            break;
        case 'P':
            json_object_set_new(limits, "pacing", json_true());
            break;
        case 'j':
            as_json = true;
            break;
        case 'q':
            quiet = true;
            break;
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
        default:
            usage();
            json_decref(limits);
            json_decref(policy);
            return 2;
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
    if (cli_api_call(from, token, "GET", ipath, NULL, &inst, NULL) != 0)
        goto out;
    /* 2. a destination waiting for it */
    json_t *incoming = json_deep_copy(json_object_get(inst, "spec"));
    if (json_is_object(incoming) && policy_permits_postcopy(policy))
        json_object_set_new(incoming, "postcopy", json_true());
    int prc = cli_api_call(to, token, "POST", "/v1/incoming", incoming, &prep, NULL);
    json_decref(incoming);
    if (prc != 0)
        goto out;
    const char *uri = NULL;
    long long deadline = cli_api_mono_ms() + 60000;
    while (cli_api_mono_ms() < deadline) {
        json_decref(prep);
        if (cli_api_call(to, token, "GET", ipath, NULL, &prep, NULL) != 0)
            goto out;
        uri = json_string_value(json_object_get(prep, "incoming_uri"));
        const char *err = json_string_value(json_object_get(prep, "last_error"));
        if (uri)
            break;
        if (err) {
            fprintf(stderr, "ferry: destination preparation failed: %s\n", err);
            goto out;
        }
        cli_api_sleep_ms(100);
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
    if (cli_api_call(from, token, "POST", "/v1/migrations", body, &mig, NULL) != 0) {
        json_t *ignored = NULL;
        if (cli_api_call(to, token, "DELETE", ipath, NULL, &ignored, NULL) == 0)
            json_decref(ignored);
        goto out;
    }
    char *mpath = xasprintf("/v1/migrations/%s", json_string_value(json_object_get(mig, "id")));
    bool tty = isatty(1);
    const char *st = "";
    for (;;) {
        json_decref(mig);
        if (cli_api_call(from, token, "GET", mpath, NULL, &mig, NULL) != 0) {
            free(mpath);
            goto out;
        }
        st = json_string_value(json_object_get(mig, "state"));
        if (!quiet && !as_json)
            progress_line(mig, tty);
        if (st && (strcmp(st, "succeeded") == 0 || strcmp(st, "failed") == 0 ||
                   strcmp(st, "cancelled") == 0))
            break;
        cli_api_sleep_ms(tty ? 250 : 1000);
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

int cli_agent_console(int argc, char **argv)
{
    const char *token = getenv("FERRY_TOKEN");
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
        case 'a':
            agent = optarg;
            break;
        case 's':
            send = optarg;
            break;
        case 'w':
            wait = optarg;
            break;
        case 'W':
            wait_ms = strtol(optarg, NULL, 10);
            break;
        default:
            usage();
            return 2;
        }
    }
    if (!agent || optind != argc - 1 || wait_ms <= 0) {
        usage();
        return 2;
    }
    char *path = xasprintf("/v1/instances/%s/console", argv[optind]);
    json_t *r = NULL;
    unsigned long long since = 0;
    if (cli_api_call(agent, token, "GET", path, NULL, &r, NULL) != 0) {
        free(path);
        return 1;
    }
    since = jnum(r, "next");
    if (!send && !wait)
        fputs(json_string_value(json_object_get(r, "text")), stdout);
    json_decref(r);
    if (send) {
        json_t *b = json_pack("{s:s}", "line", send);
        int rc = cli_api_call(agent, token, "POST", path, b, &r, NULL);
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
        long long deadline = cli_api_mono_ms() + wait_ms;
        char *acc = xstrdup("");
        while (cli_api_mono_ms() < deadline && rc != 0) {
            char *p = xasprintf("%s?since=%llu", path, since);
            int ok = cli_api_call(agent, token, "GET", p, NULL, &r, NULL);
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
                cli_api_sleep_ms(200);
            }
        }
        free(acc);
        if (rc != 0)
            fprintf(stderr, "ferry: '%s' did not appear within %ld ms\n", wait, wait_ms);
    }
    free(path);
    return rc;
}

int cli_agent_instances(int argc, char **argv)
{
    const char *token = getenv("FERRY_TOKEN");
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
    if (cli_api_call(agent, token, "GET", "/v1/instances", NULL, &r, NULL) != 0)
        return 1;
    if (as_json) {
        char *t = json_dumps(r, JSON_COMPACT);
        printf("%s\n", t);
        free(t);
    } else {
        size_t i;
        json_t *in;
        printf("%-20s %-10s %-8s %s\n", "NAME", "STATE", "PID", "MEMORY");
        json_array_foreach(json_object_get(r, "instances"), i, in)
        {
            printf("%-20s %-10s %-8llu %llu MiB\n", json_string_value(json_object_get(in, "name")),
                   json_string_value(json_object_get(in, "state")), jnum(in, "pid"),
                   jnum(json_object_get(in, "spec"), "memory_mib"));
        }
    }
    json_decref(r);
    return 0;
}
