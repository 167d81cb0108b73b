/* cli_plan — rolling-maintenance plans from the command line (see
 * cli_plan.h). `watch` redraws one line per host in place on a terminal
 * (and prints changes only otherwise) until the plan ends. */
#include "cli/cli_plan.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_api.h"
#include "cli/creds.h"
#include "util/ferr.h"

#define WATCH_MS 1000 /* ms between two polls of the plan */
#define BAR_WIDTH 24  /* characters of one host's progress bar */
#define HOSTS_PAGE 1000 /* hosts per GET of `show` (the API's page cap) */
#define PAGES_MAX 16    /* pages `show` reads at most (the API's 4,096-host cap) */

void cli_plan_usage(FILE *to)
{
    fputs("  ferry plan create (--hosts H1,H2,... | --all | --label KEY=VALUE) --command CMD\n"
          "                    [--reboot] [--max-down N] [--per-source N] [--per-destination N]\n"
          "                    [--cluster N] [--health-timeout S] [--health-command CMD]\n"
          "                    [--vcpu-overcommit R] [--ram-overcommit R] [--deferral S]\n"
          "                    [--watch]\n"
          "  ferry plan list | show ID | watch ID | pause ID | resume ID | abort ID\n"
          "      (every plan command takes --url URL --token-file FILE --json)\n",
          to);
}

struct popts {
    const char *url, *token_file;
    int json;
    struct creds creds;
};

static int connect_creds(struct popts *o)
{
    struct creds_in in = {o->url, o->token_file, getenv("FERRY_URL"), getenv("FERRY_TOKEN"),
                          NULL};
    char *path = creds_config_path();
    struct ferr e = {0};
    in.config_path = path;
    int rc = creds_resolve(&in, &o->creds, &e);
    free(path);
    if (rc != 0)
        fprintf(stderr, "ferry: %s\n", e.msg);
    return rc;
}

static void bar(double pct, char *out, size_t cap)
{
    int full = (int)(pct * BAR_WIDTH / 100.0 + 0.5);
    size_t k = 0;
    out[k++] = '[';
    for (int i = 0; i < BAR_WIDTH && k + 2 < cap; i++)
        out[k++] = i < full ? '#' : '.';
    out[k++] = ']';
    out[k] = '\0';
}

/* Prints plan p (the API's JSON) for people: a header and one line per host. */
static int render(const json_t *p, FILE *to)
{
    const json_t *eta = json_object_get(p, "eta");
    long long eta_s = eta && json_is_object(eta) ? cli_api_int(eta, "ms") / 1000 : -1;
    double pct = json_number_value(json_object_get(p, "progress_pct"));
    int lines = 0;
    fprintf(to, "plan %s  %-9s %5.1f%%  group %lld  ETA %s%llds%s\n",
            cli_api_str(p, "id", "?"), cli_api_str(p, "state", "?"), pct,
            cli_api_int(p, "current_group"), eta_s < 0 ? "-" : "", eta_s < 0 ? 0 : eta_s,
            eta_s < 0 ? "" : "");
    lines++;
    const char *err = cli_api_str(p, "last_error", "");
    if (err[0]) {
        fprintf(to, "  alert: %s\n", err);
        lines++;
    }
    const json_t *hs = json_object_get(p, "hosts");
    for (size_t i = 0; i < json_array_size(hs); i++) {
        const json_t *h = json_array_get(hs, i);
        char b[BAR_WIDTH + 4];
        bar(json_number_value(json_object_get(h, "pct")), b, sizeof(b));
        fprintf(to, "  %-16s g%-2lld %s %-11s %-7s %6.1fs\n", cli_api_str(h, "host", "?"),
                cli_api_int(h, "group"), b, cli_api_str(h, "step", "?"),
                cli_api_str(h, "state", "?"), (double)cli_api_int(h, "duration_ms") / 1000.0);
        lines++;
    }
    long long total = cli_api_int(p, "hosts_total");
    if (total > (long long)json_array_size(hs)) {
        const json_t *by = json_object_get(p, "hosts_by_step");
        const char *step;
        const json_t *n;
        fprintf(to, "  … %lld of %lld hosts listed (ferry plan show lists all); by step:",
                (long long)json_array_size(hs), total);
        json_object_foreach((json_t *)by, step, n) fprintf(to, " %s %lld", step,
                                                           (long long)json_integer_value(n));
        fputc('\n', to);
        lines++;
    }
    const json_t *ms = json_object_get(p, "migrations");
    for (size_t i = 0; i < json_array_size(ms); i++) {
        const json_t *m = json_array_get(ms, i);
        const json_t *res = json_object_get(m, "result");
        fprintf(to, "    %-12s %s -> %s  %-10s %5.1f%%  downtime %lld ms  total %.1f s  %lld MiB\n",
                cli_api_str(m, "instance", "?"), cli_api_str(m, "source", "?"),
                cli_api_str(m, "destination", "?"), cli_api_str(m, "state", "?"),
                json_number_value(json_object_get(m, "pct")), cli_api_int(m, "downtime_ms"),
                (double)cli_api_int(res, "total_time_ms") / 1000.0,
                cli_api_int(res, "ram_transferred") >> 20); /* the agent's result field */
        lines++;
    }
    return lines;
}

/* GET /v1/plans/ID page after page (HOSTS_PAGE hosts each, at most
 * PAGES_MAX pages) into one object: the first page's summary with every
 * host and migration. 0, or -1 after the API call printed its error. */
static int fetch_all(struct popts *o, const char *id, json_t **out)
{
    json_t *all = NULL;
    long long total = 0;
    for (long long off = 0, k = 0; k < PAGES_MAX && (!all || off < total); k++) {
        char path[200];
        snprintf(path, sizeof(path), "/v1/plans/%s?hosts_offset=%lld&hosts_limit=%d", id, off,
                 HOSTS_PAGE);
        json_t *p = NULL;
        if (cli_api_call(o->creds.url, o->creds.token, "GET", path, NULL, &p, NULL) != 0) {
            json_decref(all);
            return -1;
        }
        total = cli_api_int(json_object_get(p, "hosts_page"), "total");
        size_t got = json_array_size(json_object_get(p, "hosts"));
        if (!all) {
            all = p;
        } else {
            json_array_extend(json_object_get(all, "hosts"), json_object_get(p, "hosts"));
            json_array_extend(json_object_get(all, "migrations"), json_object_get(p, "migrations"));
            json_decref(p);
        }
        if (got == 0)
            break;
        off += (long long)got;
    }
    json_object_del(all, "hosts_page");
    *out = all;
    return 0;
}

static bool ended(const char *st)
{
    return strcmp(st, "completed") == 0 || strcmp(st, "aborted") == 0 ||
           strcmp(st, "failed") == 0;
}

static int watch(struct popts *o, const char *id)
{
    char path[160];
    snprintf(path, sizeof(path), "/v1/plans/%s", id);
    bool tty = isatty(1);
    int drawn = 0;
    char last[64] = "";
    for (;;) {
        json_t *p = NULL;
        if (cli_api_call(o->creds.url, o->creds.token, "GET", path, NULL, &p, NULL) != 0)
            return CLI_EXIT_FAIL;
        const char *st = cli_api_str(p, "state", "?");
        if (tty) {
            for (int i = 0; i < drawn; i++)
                fputs("\033[1A\033[2K", stdout);
            drawn = render(p, stdout);
        } else {
            char now[64];
            snprintf(now, sizeof(now), "%s %.0f", st,
                     json_number_value(json_object_get(p, "progress_pct")));
            if (strcmp(now, last) != 0) {
                render(p, stdout);
                snprintf(last, sizeof(last), "%s", now);
            }
        }
        fflush(stdout);
        bool done = ended(st), ok = strcmp(st, "completed") == 0;
        json_decref(p);
        if (done)
            return ok ? CLI_EXIT_OK : CLI_EXIT_FAIL;
        cli_api_sleep_ms(WATCH_MS);
    }
}

static json_t *hosts_array(const char *list)
{
    json_t *a = json_array();
    const char *p = list;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n)
            json_array_append_new(a, json_stringn(p, n));
        p += n + (comma ? 1 : 0);
    }
    return a;
}

int cli_plan(int argc, char **argv)
{
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'U'},       {"token-file", required_argument, NULL, 'K'},
        {"json", no_argument, NULL, 'j'},            {"hosts", required_argument, NULL, 'H'},
        {"all", no_argument, NULL, 'A'},             {"command", required_argument, NULL, 'c'},
        {"reboot", no_argument, NULL, 'r'},          {"max-down", required_argument, NULL, 'd'},
        {"per-source", required_argument, NULL, 's'},
        {"per-destination", required_argument, NULL, 't'},
        {"cluster", required_argument, NULL, 'C'},   {"health-timeout", required_argument, NULL, 'h'},
        {"deferral", required_argument, NULL, 'D'},  {"watch", no_argument, NULL, 'w'},
        {"label", required_argument, NULL, 'l'},     {"health-command", required_argument, NULL, 'k'},
        {"vcpu-overcommit", required_argument, NULL, 'v'},
        {"ram-overcommit", required_argument, NULL, 'm'},
        {NULL, 0, NULL, 0}};
    struct popts o = {0};
    const char *hosts = NULL, *command = NULL, *label = NULL, *hcmd = NULL;
    double vcpu_oc = 0, ram_oc = 0;
    bool all = false, reboot = false, do_watch = false;
    long long max_down = 1, per_src = 1, per_dst = 1, cluster = 0, health = 120, deferral = 300;
    if (argc < 2) {
        cli_plan_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *verb = argv[1];
    optind = 2;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end = NULL;
        long long v = 0;
        if (strchr("dstChD", c) && optarg) {
            v = strtoll(optarg, &end, 10);
            if (!*optarg || *end || v < 0) {
                fprintf(stderr, "ferry: bad number '%s'\n", optarg);
                return CLI_EXIT_USAGE;
            }
        }
        if (strchr("vm", c) && optarg) {
            double d = strtod(optarg, &end);
            if (!*optarg || *end || !(d > 0)) {
                fprintf(stderr, "ferry: bad ratio '%s'\n", optarg);
                return CLI_EXIT_USAGE;
            }
            *(c == 'v' ? &vcpu_oc : &ram_oc) = d;
        }
        switch (c) {
        case 'U': o.url = optarg; break;
        case 'l': label = optarg; break;
        case 'k': hcmd = optarg; break;
        case 'v':
        case 'm': break;
        case 'K': o.token_file = optarg; break;
        case 'j': o.json = 1; break;
        case 'H': hosts = optarg; break;
        case 'A': all = true; break;
        case 'c': command = optarg; break;
        case 'r': reboot = true; break;
        case 'd': max_down = v; break;
        case 's': per_src = v; break;
        case 't': per_dst = v; break;
        case 'C': cluster = v; break;
        case 'h': health = v; break;
        case 'D': deferral = v; break;
        case 'w': do_watch = true; break;
        default: cli_plan_usage(stderr); return CLI_EXIT_USAGE;
        }
    }
    bool needs_id = strcmp(verb, "create") != 0 && strcmp(verb, "list") != 0;
    if ((needs_id && optind != argc - 1) || (!needs_id && optind != argc)) {
        cli_plan_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *id = needs_id ? argv[optind] : NULL;
    if (connect_creds(&o) != 0)
        return CLI_EXIT_FAIL;
    json_t *out = NULL;
    char path[160];
    int rc = CLI_EXIT_OK;
    if (strcmp(verb, "create") == 0) {
        if (!command || (!!hosts + all + !!label) != 1) {
            fprintf(stderr,
                    "ferry: plan create needs --command and one of --hosts, --all, --label\n");
            rc = CLI_EXIT_USAGE;
            goto out;
        }
        json_t *b = json_pack("{s:I, s:{s:I, s:I, s:I}, s:{s:s, s:b}, s:{s:I}, s:I}", "max_down",
                              max_down, "concurrency", "per_source", per_src, "per_destination",
                              per_dst, "cluster", cluster, "action", "command", command, "reboot",
                              reboot, "health_check", "timeout_s", health, "deferral_deadline_s",
                              deferral);
        if (hcmd)
            json_object_set_new(json_object_get(b, "health_check"), "command", json_string(hcmd));
        if (vcpu_oc > 0)
            json_object_set_new(b, "vcpu_overcommit", json_real(vcpu_oc));
        if (ram_oc > 0)
            json_object_set_new(b, "ram_overcommit", json_real(ram_oc));
        if (all || label)
            json_object_set_new(b, "label", json_string(all ? "all" : label));
        else
            json_object_set_new(b, "hosts", hosts_array(hosts));
        int status = 0;
        int r = cli_api_call(o.creds.url, o.creds.token, "POST", "/v1/plans", b, &out, &status);
        json_decref(b);
        if (r != 0) {
            rc = CLI_EXIT_FAIL;
            goto out;
        }
        if (o.json)
            cli_api_print_json(out);
        else
            printf("plan %s created: %lld group(s), %lld migration(s), estimate %.0f s\n",
                   cli_api_str(out, "id", "?"), cli_api_int(out, "groups"),
                   cli_api_int(out, "moves"), (double)cli_api_int(out, "estimate_ms") / 1000.0);
        if (do_watch)
            rc = watch(&o, cli_api_str(out, "id", "?"));
    } else if (strcmp(verb, "list") == 0) {
        if (cli_api_call(o.creds.url, o.creds.token, "GET", "/v1/plans", NULL, &out, NULL) != 0) {
            rc = CLI_EXIT_FAIL;
            goto out;
        }
        if (o.json) {
            cli_api_print_json(out);
        } else {
            const json_t *a = json_object_get(out, "plans");
            for (size_t i = 0; i < json_array_size(a); i++) {
                const json_t *p = json_array_get(a, i);
                printf("%-20s %-10s %5.1f%%  %lld host(s)\n", cli_api_str(p, "id", "?"),
                       cli_api_str(p, "state", "?"),
                       json_number_value(json_object_get(p, "progress_pct")),
                       cli_api_int(p, "hosts_total"));
            }
        }
    } else if (strcmp(verb, "show") == 0) {
        if (fetch_all(&o, id, &out) != 0) {
            rc = CLI_EXIT_FAIL;
            goto out;
        }
        if (o.json)
            cli_api_print_json(out);
        else
            render(out, stdout);
    } else if (strcmp(verb, "watch") == 0) {
        rc = watch(&o, id);
    } else if (strcmp(verb, "pause") == 0 || strcmp(verb, "resume") == 0 ||
               strcmp(verb, "abort") == 0) {
        snprintf(path, sizeof(path), "/v1/plans/%s/%s", id, verb);
        if (cli_api_call(o.creds.url, o.creds.token, "POST", path, NULL, &out, NULL) != 0) {
            rc = CLI_EXIT_FAIL;
            goto out;
        }
        if (o.json)
            cli_api_print_json(out);
        else
            printf("plan %s: %s\n", id, cli_api_str(out, "state", "?"));
    } else {
        fprintf(stderr, "ferry: unknown plan command '%s'\n", verb);
        cli_plan_usage(stderr);
        rc = CLI_EXIT_USAGE;
    }
out:
    json_decref(out);
    creds_free(&o.creds);
    return rc;
}
