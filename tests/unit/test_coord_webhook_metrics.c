/* Unit: the Prometheus text writers of src/coord/metrics.c and the route
 * classes of its latency metric. Proves: label values escape \, " and
 * newline (and nothing else); HELP text escapes \ and newline; samples
 * print without braces when unlabelled and +Inf/NaN spelled as the format
 * wants; a histogram writes cumulative buckets ending in +Inf, then _sum
 * and _count, with its labels before le; every line produced is a comment
 * or `name{labels} value`; route classes stay few whatever the ids. */
#include <event2/buffer.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/test.h"
#include "coord/metrics.h"

static char *text(struct evbuffer *b)
{
    size_t n = evbuffer_get_length(b);
    char *s = malloc(n + 1);
    evbuffer_remove(b, s, n);
    s[n] = '\0';
    return s;
}

static void t_escape(void)
{
    struct evbuffer *b = evbuffer_new();
    metrics_escape(b, "a\\b\"c\nd'e{f}");
    char *s = text(b);
    CHECK(strcmp(s, "a\\\\b\\\"c\\nd'e{f}") == 0, "escaped: %s", s);
    free(s);
    metrics_family(b, "ferry_x", "gauge", "Line one\nwith \\ and \"quotes\"");
    s = text(b);
    CHECK(strcmp(s, "# HELP ferry_x Line one\\nwith \\\\ and \"quotes\"\n# TYPE ferry_x gauge\n") ==
              0,
          "family: %s", s);
    free(s);
    evbuffer_free(b);
}

static void t_samples(void)
{
    struct evbuffer *b = evbuffer_new();
    struct metrics_label l[] = {{"id", "m-1"}, {"instance", "we\"ird\n"}};
    metrics_sample(b, "ferry_a", NULL, 0, 3);
    metrics_sample(b, "ferry_b", l, 2, 0.25);
    metrics_sample(b, "ferry_c", l, 1, INFINITY);
    metrics_sample(b, "ferry_d", NULL, 0, NAN);
    metrics_sample(b, "ferry_e", NULL, 0, 1e21);
    metrics_sample(b, "ferry_f", NULL, 0, 0.1);
    char *s = text(b);
    CHECK(strcmp(s, "ferry_a 3\n"
                    "ferry_b{id=\"m-1\",instance=\"we\\\"ird\\n\"} 0.25\n"
                    "ferry_c{id=\"m-1\"} +Inf\n"
                    "ferry_d NaN\n"
                    "ferry_e 1e+21\n"
                    "ferry_f 0.1\n") == 0,
          "samples:\n%s", s);
    free(s);
    evbuffer_free(b);
}

static void t_hist(void)
{
    static const double le[] = {10, 100, 1000};
    struct metrics_hist h;
    metrics_hist_init(&h, le, 3);
    metrics_hist_observe(&h, 5);
    metrics_hist_observe(&h, 10); /* le is inclusive */
    metrics_hist_observe(&h, 50);
    metrics_hist_observe(&h, 5000);
    struct evbuffer *b = evbuffer_new();
    struct metrics_label l = {"route", "hosts"};
    metrics_hist_write(b, "ferry_h", &l, 1, &h);
    char *s = text(b);
    CHECK(strcmp(s, "ferry_h_bucket{route=\"hosts\",le=\"10\"} 2\n"
                    "ferry_h_bucket{route=\"hosts\",le=\"100\"} 3\n"
                    "ferry_h_bucket{route=\"hosts\",le=\"1000\"} 3\n"
                    "ferry_h_bucket{route=\"hosts\",le=\"+Inf\"} 4\n"
                    "ferry_h_sum{route=\"hosts\"} 5065\n"
                    "ferry_h_count{route=\"hosts\"} 4\n") == 0,
          "histogram:\n%s", s);
    free(s);
    metrics_hist_init(&h, le, 3);
    metrics_hist_write(b, "ferry_z", NULL, 0, &h);
    s = text(b);
    CHECK(strncmp(s, "ferry_z_bucket{le=\"10\"} 0\n", 26) == 0 && strstr(s, "ferry_z_count 0\n"),
          "unlabelled empty histogram:\n%s", s);
    free(s);
    evbuffer_free(b);
}

static void t_routes(void)
{
    static const struct {
        const char *path, *want;
    } c[] = {{"/metrics", "metrics"},
             {"/v1/health", "health"},
             {"/v1/hosts", "hosts"},
             {"/v1/hosts/register", "hosts_item"},
             {"/v1/hosts/h-123/heartbeat", "hosts_action"},
             {"/v1/events?since=5", "events"},
             {"/v1/migrations/m-77", "migrations_item"},
             {"/v1/migrations/m-77/cancel", "migrations_action"},
             {"/v1/unknown-thing", "other"},
             {"/", "other"},
             {"/etc/passwd", "other"},
             {"//v1//hosts", "hosts"}};
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        char out[48];
        metrics_route_class(c[i].path, out);
        CHECK(strcmp(out, c[i].want) == 0, "%s -> %s, want %s", c[i].path, out, c[i].want);
    }
}

int main(void)
{
    test_run("metrics: label values and HELP text escaped", t_escape);
    test_run("metrics: sample lines, unlabelled, +Inf, NaN, exact values", t_samples);
    test_run("metrics: histogram cumulative buckets, +Inf, sum, count", t_hist);
    test_run("metrics: route classes bounded whatever the ids", t_routes);
    return test_done();
}
