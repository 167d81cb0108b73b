/* cli_coord — ferry's commands over ferryd's public API. */
#include "cli/cli_coord.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli_api.h"
#include "cli/creds.h"
#include "cli/progress.h"
#include "util/xalloc.h"

#define POLICY_FILE_MAX 65536      /* bytes: --policy FILE (ferryd's cap) */
#define WATCH_TRANSPORT_RETRIES 10 /* consecutive failed polls before watch gives up */
#define LINE_MAX_BYTES 512         /* bytes: one rendered progress line */

/* Options every coordinator command takes. */
struct common {
    const char *url;        /* --url */
    const char *token_file; /* --token-file */
    bool json;              /* --json: print the API's JSON */
    struct creds creds;     /* resolved by connect() */
};

#define COMMON_OPTS                                                                                \
    {"url", required_argument, NULL, 'U'}, {"token-file", required_argument, NULL, 'K'},           \
    {                                                                                              \
        "json", no_argument, NULL, 'j'                                                             \
    }

/* Handles a common option; returns false when c is not one. */
static bool common_opt(struct common *co, int c)
{
    switch (c) {
    case 'U':
        co->url = optarg;
        return true;
    case 'K':
        co->token_file = optarg;
        return true;
    case 'j':
        co->json = true;
        return true;
    default:
        return false;
    }
}

/* Resolves the URL and token; prints why not and returns -1. */
static int connect_creds(struct common *co)
{
    struct creds_in in = {co->url, co->token_file, getenv("FERRY_URL"), getenv("FERRY_TOKEN"),
                          NULL};
    char *path = creds_config_path();
    struct ferr e = {0};
    in.config_path = path;
    int rc = creds_resolve(&in, &co->creds, &e);
    free(path);
    if (rc != 0) {
        fprintf(stderr, "ferry: %s\n", e.msg);
        return -1;
    }
    return 0;
}

/* One call to ferryd with the resolved credentials. */
static int coord(struct common *co, const char *method, const char *path, const json_t *body,
                 json_t **out)
{
    return cli_api_call(co->creds.url, co->creds.token, method, path, body, out, NULL);
}

void cli_coord_usage(FILE *to)
{
    fprintf(to,
            "  ferry migrate INSTANCE [--to HOST] [--policy FILE|JSON] [--bandwidth BYTES_PER_S]\n"
            "                [--downtime MS] [--auto-converge] [--timeout S]\n"
            "                [--consent-timeout S] [--consent-on-timeout wait|proceed|abort]\n"
            "                [--watch] [--json]\n"
            "  ferry migration list [--state S] [--instance I] [--host H] [--project P] [--json]\n"
            "  ferry migration show ID [--json]\n"
            "  ferry migration watch ID [--interval MS] [--json]\n"
            "  ferry migration cancel ID [--json]\n"
            "  ferry migration force-complete ID [--json]\n"
            "  ferry consent list [--json]\n"
            "  ferry consent grant ID | refuse ID [--json]\n"
            "  ferry host list [--json]\n"
            "  ferry host cordon NAME [--reason TEXT] | uncordon NAME\n"
            "  every ferryd command also takes --url URL and --token-file FILE; otherwise\n"
            "  FERRY_URL, FERRY_TOKEN, then ~/.config/ferry/config (url = ..., token = ...)\n");
}

static void usage(void)
{
    fputs("usage:\n", stderr);
    cli_coord_usage(stderr);
}

static bool is_terminal(const char *st)
{
    return st && (strcmp(st, "succeeded") == 0 || strcmp(st, "failed") == 0 ||
                  strcmp(st, "cancelled") == 0);
}

/* Columns of the terminal on fd 1, COLUMNS, else dflt. */
static int term_width(int dflt)
{
    struct winsize ws;
    if (ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    const char *c = getenv("COLUMNS");
    char *end = NULL;
    long v = c ? strtol(c, &end, 10) : 0;
    if (c && end && !*end && v > 0 && v < 10000)
        return (int)v;
    return dflt;
}

/* Parses a non-negative integer option value; prints and returns -1 on bad input. */
static int parse_nonneg(const char *opt, const char *s, long long *v)
{
    char *end = NULL;
    *v = strtoll(s, &end, 10);
    if (!s[0] || !end || *end || *v < 0) {
        fprintf(stderr, "ferry: --%s wants a non-negative integer\n", opt);
        return -1;
    }
    return 0;
}

/* --policy: inline JSON when it starts with '{', else a file. */
static json_t *load_policy(const char *arg)
{
    json_t *p = NULL;
    json_error_t je;
    if (arg[0] == '{') {
        p = json_loads(arg, 0, &je);
    } else {
        struct stat st;
        if (stat(arg, &st) != 0 || !S_ISREG(st.st_mode)) {
            fprintf(stderr, "ferry: --policy %s: no such file (or start inline JSON with '{')\n",
                    arg);
            return NULL;
        }
        if (st.st_size > POLICY_FILE_MAX) {
            fprintf(stderr, "ferry: --policy %s: over %d bytes\n", arg, POLICY_FILE_MAX);
            return NULL;
        }
        p = json_load_file(arg, 0, &je);
    }
    if (!json_is_object(p)) {
        fprintf(stderr, "ferry: --policy wants a JSON object%s%s\n", p ? "" : ": ",
                p ? "" : je.text);
        json_decref(p);
        return NULL;
    }
    return p;
}

/* Polls migration id until it ends, drawing its progress; returns the exit
 * code (0 when it succeeded). */
static int watch(struct common *co, const char *id, long long interval_ms)
{
    char *path = xasprintf("/v1/migrations/%s", id);
    bool tty = !co->json && isatty(1);
    char line[LINE_MAX_BYTES], last[LINE_MAX_BYTES] = "";
    json_t *m = NULL;
    int rc = 1, failures = 0;
    char *last_json = NULL; /* --json: the record printed last */
    bool drawn = false;
    for (;;) {
        int status = 0;
        json_decref(m);
        m = NULL;
        if (cli_api_call(co->creds.url, co->creds.token, "GET", path, NULL, &m, &status) != 0) {
            if (status == 0 && ++failures < WATCH_TRANSPORT_RETRIES) {
                cli_api_sleep_ms((unsigned)interval_ms);
                continue;
            }
            break;
        }
        failures = 0;
        const char *st = json_string_value(json_object_get(m, "state"));
        if (co->json) {
            char *t = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
            if (t && (!last_json || strcmp(t, last_json) != 0)) {
                printf("%s\n", t);
                free(last_json);
                last_json = t;
                t = NULL;
            }
            free(t);
        } else {
            progress_render(m, term_width(tty ? 80 : 120) - (tty ? 1 : 0), line, sizeof(line));
            if (tty) {
                printf("\r%s\033[K", line);
                drawn = true;
            } else if (strcmp(line, last) != 0) {
                printf("%s\n", line);
                snprintf(last, sizeof(last), "%s", line);
            }
        }
        fflush(stdout);
        if (is_terminal(st)) {
            if (!co->json) {
                char sum[LINE_MAX_BYTES];
                progress_summary(m, sum, sizeof(sum));
                printf("%s%s\n", tty && drawn ? "\n" : "", sum);
            }
            rc = strcmp(st, "succeeded") == 0 ? 0 : 1;
            break;
        }
        cli_api_sleep_ms((unsigned)interval_ms);
    }
    json_decref(m);
    free(last_json);
    free(path);
    return rc;
}

int cli_coord_migrate(int argc, char **argv)
{
    static const struct option opts[] = {COMMON_OPTS,
                                         {"to", required_argument, NULL, 't'},
                                         {"policy", required_argument, NULL, 'p'},
                                         {"bandwidth", required_argument, NULL, 'b'},
                                         {"downtime", required_argument, NULL, 'd'},
                                         {"auto-converge", no_argument, NULL, 'a'},
                                         {"timeout", required_argument, NULL, 'T'},
                                         {"watch", no_argument, NULL, 'w'},
                                         {"interval", required_argument, NULL, 'i'},
                                         {"consent-timeout", required_argument, NULL, 'C'},
                                         {"consent-on-timeout", required_argument, NULL, 'O'},
                                         {NULL, 0, NULL, 0}};
    struct common co = {0};
    const char *to = NULL;
    json_t *limits = json_object(), *policy = NULL, *consent = json_object();
    bool watch_it = false;
    long long interval = 1000, v = 0;
    int c, rc = CLI_EXIT_USAGE;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (common_opt(&co, c))
            continue;
        switch (c) {
        case 't':
            to = optarg;
            break;
        case 'p':
            json_decref(policy);
            if (!(policy = load_policy(optarg)))
                goto out;
            break;
        case 'b':
            if (parse_nonneg("bandwidth", optarg, &v) != 0)
                goto out;
            json_object_set_new(limits, "max_bandwidth_bps", json_integer(v));
            break;
        case 'd':
            if (parse_nonneg("downtime", optarg, &v) != 0)
                goto out;
            json_object_set_new(limits, "downtime_ms", json_integer(v));
            break;
        case 'T':
            if (parse_nonneg("timeout", optarg, &v) != 0)
                goto out;
            json_object_set_new(limits, "completion_timeout_s", json_integer(v));
            break;
        case 'a':
            json_object_set_new(limits, "auto_converge", json_true());
            break;
        case 'C':
            if (parse_nonneg("consent-timeout", optarg, &v) != 0 || v < 1) {
                fprintf(stderr, "ferry: --consent-timeout wants seconds, at least 1\n");
                goto out;
            }
            json_object_set_new(consent, "timeout_s", json_integer(v));
            break;
        case 'O':
            if (strcmp(optarg, "wait") != 0 && strcmp(optarg, "proceed") != 0 &&
                strcmp(optarg, "abort") != 0) {
                fprintf(stderr, "ferry: --consent-on-timeout wants wait, proceed or abort\n");
                goto out;
            }
            json_object_set_new(consent, "timeout_action", json_string(optarg));
            break;
        case 'w':
            watch_it = true;
            break;
        case 'i':
            if (parse_nonneg("interval", optarg, &interval) != 0 || interval < 100) {
                fprintf(stderr, "ferry: --interval wants at least 100 ms\n");
                goto out;
            }
            break;
        default:
            usage();
            goto out;
        }
    }
    if (optind != argc - 1) {
        usage();
        goto out;
    }
    if (to && (strncmp(to, "http://", 7) == 0 || strncmp(to, "https://", 8) == 0)) {
        fprintf(stderr,
                "ferry: --to %s is an agent URL: agent-direct migration needs --from URL "
                "too; through ferryd, --to names a host\n",
                to);
        goto out;
    }
    rc = CLI_EXIT_FAIL;
    if (connect_creds(&co) != 0)
        goto out;
    json_t *body = json_pack("{s:s}", "instance", argv[optind]), *mig = NULL;
    if (to)
        json_object_set_new(body, "destination", json_string(to));
    if (policy)
        json_object_set(body, "policy", policy);
    if (json_object_size(limits) > 0)
        json_object_set(body, "limits", limits);
    if (json_object_size(consent) > 0)
        json_object_set(body, "consent", consent);
    int crc = coord(&co, "POST", "/v1/migrations", body, &mig);
    json_decref(body);
    if (crc != 0)
        goto out;
    const char *id = json_string_value(json_object_get(mig, "id"));
    if (!watch_it || co.json) {
        if (co.json) {
            cli_api_print_json(mig);
        } else {
            const char *dst = cli_api_str(mig, "destination", NULL);
            printf("migration %s: %s %s%s%s\n", id ? id : "?", cli_api_str(mig, "instance", "?"),
                   cli_api_str(mig, "state", "?"), dst ? " to " : "", dst ? dst : "");
        }
    }
    rc = CLI_EXIT_OK;
    if (watch_it && id) {
        char *idc = xstrdup(id);
        rc = watch(&co, idc, interval);
        free(idc);
    }
    json_decref(mig);
out:
    json_decref(limits);
    json_decref(consent);
    json_decref(policy);
    creds_free(&co.creds);
    return rc;
}

/* Member k of o as a display string ("-" when absent or null). */
static const char *s_or_dash(const json_t *o, const char *k)
{
    return cli_api_str(o, k, "-");
}

/* "42%" or "-" for a record's progress. */
static void fmt_pct(const json_t *m, char *out, size_t cap)
{
    const json_t *p = json_object_get(json_object_get(m, "progress"), "pct");
    if (json_is_number(p))
        snprintf(out, cap, "%.0f%%", json_number_value(p));
    else
        snprintf(out, cap, "-");
}

/* "1m05s" or "-" for a record's ETA. */
static void fmt_eta(const json_t *m, char *out, size_t cap)
{
    const json_t *e = json_object_get(json_object_get(m, "eta"), "ms");
    if (json_is_number(e))
        progress_fmt_duration((long long)json_number_value(e), out, cap);
    else
        snprintf(out, cap, "-");
}

static int migration_list(struct common *co, int argc, char **argv)
{
    static const struct option opts[] = {COMMON_OPTS,
                                         {"state", required_argument, NULL, 's'},
                                         {"instance", required_argument, NULL, 'n'},
                                         {"host", required_argument, NULL, 'H'},
                                         {"project", required_argument, NULL, 'P'},
                                         {NULL, 0, NULL, 0}};
    char *path = xstrdup("/v1/migrations");
    int c, rc = CLI_EXIT_USAGE;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (common_opt(co, c))
            continue;
        switch (c) {
        case 's':
            cli_api_add_query(&path, "state", optarg);
            break;
        case 'n':
            cli_api_add_query(&path, "instance", optarg);
            break;
        case 'H':
            cli_api_add_query(&path, "host", optarg);
            break;
        case 'P':
            cli_api_add_query(&path, "project", optarg);
            break;
        default:
            usage();
            goto out;
        }
    }
    if (optind != argc) {
        usage();
        goto out;
    }
    rc = CLI_EXIT_FAIL;
    json_t *r = NULL;
    if (connect_creds(co) != 0 || coord(co, "GET", path, NULL, &r) != 0)
        goto out;
    if (co->json) {
        cli_api_print_json(r);
    } else {
        size_t i;
        json_t *m;
        printf("%-36s %-20s %-11s %-20s %5s %7s  %s\n", "ID", "INSTANCE", "STATE", "PHASE", "DONE",
               "ETA", "ROUTE");
        json_array_foreach(json_object_get(r, "migrations"), i, m)
        {
            char pct[16], eta[16];
            fmt_pct(m, pct, sizeof(pct));
            fmt_eta(m, eta, sizeof(eta));
            const char *src = cli_api_str(m, "source", NULL),
                       *dst = cli_api_str(m, "destination", NULL);
            printf("%-36s %-20s %-11s %-20s %5s %7s  %s%s%s\n", s_or_dash(m, "id"),
                   s_or_dash(m, "instance"), s_or_dash(m, "state"), s_or_dash(m, "phase"), pct, eta,
                   src ? src : "", src || dst ? " -> " : "-", dst ? dst : "");
        }
    }
    json_decref(r);
    rc = CLI_EXIT_OK;
out:
    free(path);
    return rc;
}

/* Prints a JSON member compactly, "-" when null or absent. */
static void show_json(const char *label, const json_t *v)
{
    if (!v || json_is_null(v)) {
        printf("%-12s -\n", label);
        return;
    }
    char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    printf("%-12s %s\n", label, t ? t : "?");
    free(t);
}

static double num_or(const json_t *o, const char *k, double dflt)
{
    const json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : dflt;
}

/* "guest": CPU throttle and dirty rate; "disk": the guest's own disk
 * during the migration against its baseline (the agent's impact report);
 * "budget": the impact budget's verdict. */
static void show_impact(const json_t *gi)
{
    if (!json_is_object(gi)) {
        printf("%-12s -\n", "guest");
        return;
    }
    printf("%-12s cpu throttle %.0f %% (%.0f ms in all), dirty %.0f pages/s\n", "guest",
           num_or(gi, "throttle_pct", 0), num_or(gi, "cpu_throttle_ms", 0),
           num_or(gi, "dirty_pages_rate", 0));
    const json_t *d = json_object_get(gi, "disk");
    const json_t *b = json_object_get(d, "baseline"), *du = json_object_get(d, "during");
    if (json_is_object(b) && json_is_object(du)) {
        char ret[24] = "-", ratio[24] = "-";
        if (json_is_number(json_object_get(d, "throughput_retained_pct")))
            snprintf(ret, sizeof(ret), "%.1f %%", num_or(d, "throughput_retained_pct", 0));
        if (json_is_number(json_object_get(d, "p99_latency_ratio")))
            snprintf(ratio, sizeof(ratio), "%.2fx", num_or(d, "p99_latency_ratio", 0));
        printf("%-12s throughput %s of baseline (%.2f -> %.2f MiB/s, %.0f -> %.0f IOPS), "
               "p99 %s (%.0f -> %.0f us, p50 %.0f -> %.0f us, %s)\n",
               "disk", ret, num_or(b, "bytes_per_s", 0) / 1048576.0,
               num_or(du, "bytes_per_s", 0) / 1048576.0, num_or(b, "iops", 0),
               num_or(du, "iops", 0), ratio, num_or(b, "p99_latency_us", 0),
               num_or(du, "p99_latency_us", 0), num_or(b, "p50_latency_us", 0),
               num_or(du, "p50_latency_us", 0),
               json_string_value(json_object_get(d, "latency_basis"))
                   ? json_string_value(json_object_get(d, "latency_basis"))
                   : "?");
    } else {
        printf("%-12s -\n", "disk");
    }
    const json_t *bu = json_object_get(gi, "budget");
    if (json_is_object(bu))
        printf("%-12s %s (usage %.2f, copy rate %.1f MiB/s, %.0f of %.0f measurements outside)\n",
               "budget", s_or_dash(bu, "verdict"), num_or(bu, "usage", 0),
               num_or(bu, "rate_bps", 0) / 1048576.0, num_or(bu, "violations", 0),
               num_or(bu, "judged", 0));
}

static void show_human(const json_t *m)
{
    char line[LINE_MAX_BYTES], a[24], b[24];
    printf("%-12s %s\n", "id", s_or_dash(m, "id"));
    printf("%-12s %s (project %s)\n", "instance", s_or_dash(m, "instance"),
           s_or_dash(m, "project_id"));
    if (json_object_get(m, "source") || json_object_get(m, "destination"))
        printf("%-12s %s -> %s\n", "route", s_or_dash(m, "source"), s_or_dash(m, "destination"));
    printf("%-12s %s (phase %s)\n", "state", s_or_dash(m, "state"), s_or_dash(m, "phase"));
    progress_render(m, 100, line, sizeof(line));
    printf("%-12s %s\n", "progress", line);
    const json_t *eta = json_object_get(m, "eta");
    if (json_is_object(eta)) {
        char e[24];
        progress_fmt_duration((long long)cli_api_int(eta, "ms"), e, sizeof(e));
        progress_fmt_duration((long long)cli_api_int(eta, "low_ms"), a, sizeof(a));
        progress_fmt_duration((long long)cli_api_int(eta, "high_ms"), b, sizeof(b));
        printf("%-12s %s (%s-%s)\n", "eta", e, a, b);
    } else {
        printf("%-12s -\n", "eta");
    }
    const json_t *dt = json_object_get(m, "downtime_ms");
    if (json_is_number(dt))
        printf("%-12s %.0f ms\n", "downtime", json_number_value(dt));
    else
        printf("%-12s -\n", "downtime");
    show_impact(json_object_get(m, "guest_impact"));
    show_json("stalls", json_object_get(m, "stalls"));
    show_json("limits", json_object_get(m, "limits"));
    show_json("requested", json_object_get(m, "requested_limits"));
    show_json("policy", json_object_get(m, "policy"));
    show_json("result", json_object_get(m, "result"));
    const json_t *by = json_object_get(m, "started_by");
    printf("%-12s %s@%s\n", "started by", s_or_dash(by, "user"), s_or_dash(by, "project"));
    printf("%-12s %s\n", "created", s_or_dash(m, "created"));
    printf("%-12s %s\n", "updated", s_or_dash(m, "updated"));
    printf("%-12s %s\n", "last error", s_or_dash(m, "last_error"));
}

/* show, watch, cancel, force-complete: one ID argument. */
static int migration_one(struct common *co, const char *verb, int argc, char **argv)
{
    static const struct option opts[] = {
        COMMON_OPTS, {"interval", required_argument, NULL, 'i'}, {NULL, 0, NULL, 0}};
    long long interval = isatty(1) ? 500 : 1000;
    int c;
    bool is_watch = strcmp(verb, "watch") == 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (common_opt(co, c))
            continue;
        if (c == 'i' && is_watch) {
            if (parse_nonneg("interval", optarg, &interval) != 0 || interval < 100) {
                fprintf(stderr, "ferry: --interval wants at least 100 ms\n");
                return CLI_EXIT_USAGE;
            }
            continue;
        }
        usage();
        return CLI_EXIT_USAGE;
    }
    if (optind != argc - 1 || !argv[optind][0]) {
        usage();
        return CLI_EXIT_USAGE;
    }
    const char *id = argv[optind];
    if (strchr(id, '/') || strchr(id, '?') || strchr(id, '%') || strlen(id) > 64) {
        fprintf(stderr, "ferry: '%s' is not a migration id\n", id);
        return CLI_EXIT_USAGE;
    }
    if (connect_creds(co) != 0)
        return CLI_EXIT_FAIL;
    if (is_watch)
        return watch(co, id, interval);
    json_t *r = NULL;
    char *path;
    int rc;
    if (strcmp(verb, "show") == 0) {
        path = xasprintf("/v1/migrations/%s", id);
        rc = coord(co, "GET", path, NULL, &r);
    } else {
        json_t *empty = json_object();
        path = xasprintf("/v1/migrations/%s/%s", id, verb);
        rc = coord(co, "POST", path, empty, &r);
        json_decref(empty);
    }
    free(path);
    if (rc != 0)
        return CLI_EXIT_FAIL;
    if (co->json)
        cli_api_print_json(r);
    else if (strcmp(verb, "show") == 0)
        show_human(r);
    else
        printf("migration %s: %s (%s)\n", s_or_dash(r, "id"), s_or_dash(r, "state"), verb);
    json_decref(r);
    return CLI_EXIT_OK;
}

int cli_coord_migration(int argc, char **argv)
{
    struct common co = {0};
    int rc;
    if (argc < 2) {
        usage();
        return CLI_EXIT_USAGE;
    }
    const char *verb = argv[1];
    if (strcmp(verb, "list") == 0)
        rc = migration_list(&co, argc - 1, argv + 1);
    else if (strcmp(verb, "show") == 0 || strcmp(verb, "watch") == 0 ||
             strcmp(verb, "cancel") == 0 || strcmp(verb, "force-complete") == 0)
        rc = migration_one(&co, verb, argc - 1, argv + 1);
    else {
        fprintf(stderr, "ferry: unknown migration command '%s'\n", verb);
        usage();
        rc = CLI_EXIT_USAGE;
    }
    creds_free(&co.creds);
    return rc;
}

/* Parses the common options and expects exactly `want` positional
 * arguments; returns 0 or the usage exit code. */
static int simple_args(struct common *co, int argc, char **argv, int want)
{
    static const struct option opts[] = {COMMON_OPTS, {NULL, 0, NULL, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (!common_opt(co, c)) {
            usage();
            return CLI_EXIT_USAGE;
        }
    }
    if (argc - optind != want) {
        usage();
        return CLI_EXIT_USAGE;
    }
    return 0;
}

int cli_coord_consent(int argc, char **argv)
{
    struct common co = {0};
    json_t *r = NULL;
    int rc = CLI_EXIT_USAGE;
    if (argc < 2) {
        usage();
        return rc;
    }
    const char *verb = argv[1];
    if (strcmp(verb, "list") == 0) {
        if ((rc = simple_args(&co, argc - 1, argv + 1, 0)) != 0)
            goto out;
        rc = CLI_EXIT_FAIL;
        if (connect_creds(&co) != 0 || coord(&co, "GET", "/v1/consents", NULL, &r) != 0)
            goto out;
        if (co.json) {
            cli_api_print_json(r);
        } else {
            size_t i;
            json_t *x;
            printf("%-36s %-36s %-20s %-10s %-9s %s\n", "ID", "MIGRATION", "INSTANCE", "STEP",
                   "STATE", "DEADLINE");
            json_array_foreach(json_object_get(r, "consents"), i, x)
            {
                printf("%-36s %-36s %-20s %-10s %-9s %s\n", s_or_dash(x, "id"),
                       cli_api_str(x, "migration_id", s_or_dash(x, "migration")),
                       s_or_dash(x, "instance"), s_or_dash(x, "step"), s_or_dash(x, "state"),
                       s_or_dash(x, "deadline"));
            }
        }
        rc = CLI_EXIT_OK;
    } else if (strcmp(verb, "grant") == 0 || strcmp(verb, "refuse") == 0) {
        if ((rc = simple_args(&co, argc - 1, argv + 1, 1)) != 0)
            goto out;
        const char *id = argv[1 + optind];
        if (!id[0] || strchr(id, '/') || strchr(id, '?') || strchr(id, '%') || strlen(id) > 64) {
            fprintf(stderr, "ferry: '%s' is not a consent request id\n", id);
            rc = CLI_EXIT_USAGE;
            goto out;
        }
        rc = CLI_EXIT_FAIL;
        if (connect_creds(&co) != 0)
            goto out;
        char *path = xasprintf("/v1/consents/%s/%s", id, verb);
        json_t *empty = json_object();
        int crc = coord(&co, "POST", path, empty, &r);
        json_decref(empty);
        free(path);
        if (crc != 0)
            goto out;
        if (co.json)
            cli_api_print_json(r);
        else
            printf("consent %s: %s\n", id, cli_api_str(r, "state", verb));
        rc = CLI_EXIT_OK;
    } else {
        fprintf(stderr, "ferry: unknown consent command '%s'\n", verb);
        usage();
    }
out:
    json_decref(r);
    creds_free(&co.creds);
    return rc;
}

/* The labels object as "k=v,k=v" into out. */
static void labels_text(const json_t *labels, char *out, size_t n)
{
    const char *k;
    json_t *v;
    size_t used = 0;
    out[0] = '\0';
    json_object_foreach((json_t *)labels, k, v)
    {
        int w = snprintf(out + used, n - used, "%s%s=%s", used ? "," : "", k,
                         json_string_value(v) ? json_string_value(v) : "");
        if (w < 0 || (size_t)w >= n - used)
            break;
        used += (size_t)w;
    }
    if (!out[0])
        snprintf(out, n, "-");
}

static int host_cordon(int argc, char **argv, bool on)
{
    static const struct option opts[] = {COMMON_OPTS, {"reason", required_argument, NULL, 'R'},
                                         {NULL, 0, NULL, 0}};
    struct common co = {0};
    const char *reason = NULL;
    json_t *r = NULL;
    int c, rc = CLI_EXIT_USAGE;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'R' && on)
            reason = optarg;
        else if (!common_opt(&co, c)) {
            usage();
            return rc;
        }
    }
    if (argc - optind != 1) {
        usage();
        return rc;
    }
    const char *name = argv[optind];
    if (!name[0] || strchr(name, '/') || strchr(name, '?') || strchr(name, '%') ||
        strlen(name) > 63) {
        fprintf(stderr, "ferry: '%s' is not a host name\n", name);
        return rc;
    }
    rc = CLI_EXIT_FAIL;
    char *path = xasprintf("/v1/hosts/%s/%s", name, on ? "cordon" : "uncordon");
    json_t *b = reason ? json_pack("{s:s}", "reason", reason) : json_object();
    if (connect_creds(&co) == 0 && coord(&co, "POST", path, b, &r) == 0) {
        if (co.json)
            cli_api_print_json(r);
        else
            printf("host %s: %s%s%s\n", name, on ? "cordoned" : "uncordoned",
                   on ? " — " : "", on ? cli_api_str(r, "cordon", "") : "");
        rc = CLI_EXIT_OK;
    }
    json_decref(b);
    free(path);
    json_decref(r);
    creds_free(&co.creds);
    return rc;
}

int cli_coord_host(int argc, char **argv)
{
    struct common co = {0};
    json_t *r = NULL;
    int rc = CLI_EXIT_USAGE;
    if (argc >= 2 && (strcmp(argv[1], "cordon") == 0 || strcmp(argv[1], "uncordon") == 0))
        return host_cordon(argc - 1, argv + 1, strcmp(argv[1], "cordon") == 0);
    if (argc < 2 || strcmp(argv[1], "list") != 0) {
        if (argc >= 2)
            fprintf(stderr, "ferry: unknown host command '%s'\n", argv[1]);
        usage();
        return rc;
    }
    if ((rc = simple_args(&co, argc - 1, argv + 1, 0)) != 0)
        goto out;
    rc = CLI_EXIT_FAIL;
    if (connect_creds(&co) != 0 || coord(&co, "GET", "/v1/hosts", NULL, &r) != 0)
        goto out;
    if (co.json) {
        cli_api_print_json(r);
    } else {
        size_t i;
        json_t *h;
        printf("%-24s %-5s %-28s %9s %5s %9s  %-24s %-20s %s\n", "NAME", "STATE", "AGENT",
               "RAM_MIB", "VCPUS", "INSTANCES", "LAST_HEARTBEAT", "CORDON", "LABELS");
        json_array_foreach(json_object_get(r, "hosts"), i, h)
        {
            char labels[1100], cordon[80];
            labels_text(json_object_get(h, "labels"), labels, sizeof(labels));
            const char *op = json_string_value(json_object_get(h, "cordon"));
            const char *pl = json_string_value(json_object_get(h, "maintenance"));
            snprintf(cordon, sizeof(cordon), "%s%s%s", op ? "operator" : "",
                     op && pl ? "," : "", pl ? pl : (op ? "" : "-"));
            printf("%-24s %-5s %-28s %9lld %5lld %9zu  %-24s %-20s %s\n", s_or_dash(h, "name"),
                   s_or_dash(h, "state"), s_or_dash(h, "agent_url"), cli_api_int(h, "ram_mib"),
                   cli_api_int(h, "vcpus"), json_array_size(json_object_get(h, "instances")),
                   s_or_dash(h, "last_heartbeat"), cordon, labels);
        }
    }
    rc = CLI_EXIT_OK;
out:
    json_decref(r);
    creds_free(&co.creds);
    return rc;
}
