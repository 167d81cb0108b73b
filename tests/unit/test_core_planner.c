/* Planner: a replay checker, independent of the planner's own bookkeeping,
 * walks every plan move by move and proves capacity never exceeded at any
 * step, anti-affinity never violated (AA-1 and AA-2 of docs/PLANNER.md),
 * every instance placed or explained, every target host drained exactly
 * once, groups no bigger than max_down, and the same plan for the same
 * input. Hand-made cases cover each unplaceable reason, the preference for
 * done hosts, grouping and the makespan figures; property tests run the
 * checker over random fleets from a seeded RNG, for both strategies. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/test.h"
#include "core/planner.h"
#include "util/xalloc.h"

#define AA_IDS 4096 /* anti-affinity ids used by the tests are below this */

/* ---- the independent checker ------------------------------------------- */

static int64_t cap_mv(const struct plan_host *h, const struct plan_opts *o)
{
    double r = o->vcpu_overcommit > 0 ? o->vcpu_overcommit : 1.0;
    return (int64_t)floor((double)h->vcpus * r * 1000 + 1e-6);
}

static int64_t cap_ram(const struct plan_host *h, const struct plan_opts *o)
{
    double r = o->ram_overcommit > 0 ? o->ram_overcommit : 1.0;
    int64_t c = (int64_t)h->ram_mib - (int64_t)o->ram_reserve_mib;
    return c > 0 && r != 1.0 ? (int64_t)floor((double)c * r + 1e-6) : c;
}

/* Returns the number of violations found (0 = plan valid) and reports each
 * through CHECK with the fleet's label. */
static int check_plan(const struct plan_input *in, const struct plan *p, const char *tag)
{
    size_t nh = in->n_hosts, ni = in->n_instances, bad = 0, mi = 0;
    uint32_t *cur = xmalloc((ni + 1) * sizeof(uint32_t));
    int64_t *ram = xcalloc(nh + 1, sizeof(int64_t)), *mv = xcalloc(nh + 1, sizeof(int64_t));
    uint32_t *seen = xcalloc(nh + 1, sizeof(uint32_t));
    uint32_t *aa_stamp = xcalloc(AA_IDS, sizeof(uint32_t));
    uint8_t *explained = xcalloc(ni + 1, 1), *moved = xcalloc(ni + 1, 1);
    const struct plan_opts *o = &in->opts;

#define V(cond, ...)                                                                               \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            bad++;                                                                                 \
            if (bad < 5)                                                                           \
                CHECK(cond, __VA_ARGS__);                                                          \
        }                                                                                          \
    } while (0)

    for (size_t i = 0; i < ni; i++) {
        cur[i] = in->instances[i].host;
        ram[cur[i]] += (int64_t)in->instances[i].ram_mib;
        mv[cur[i]] += (int64_t)in->instances[i].vcpus * 1000;
    }
    /* every target host in exactly one group, no other host in any */
    for (size_t g = 0; g < p->n_groups; g++) {
        uint32_t n = p->group_first[g + 1] - p->group_first[g];
        V(n >= 1 && n <= o->max_down, "%s: group %zu has %u hosts (max_down %u)", tag, g, n,
          o->max_down);
        for (uint32_t j = p->group_first[g]; j < p->group_first[g + 1]; j++) {
            uint32_t h = p->group_hosts[j];
            V(h < nh && in->hosts[h].target, "%s: group %zu holds non-target %u", tag, g, h);
            if (h < nh) {
                seen[h]++;
                V(p->host_group[h] == g, "%s: host_group[%u] wrong", tag, h);
            }
        }
    }
    for (size_t h = 0; h < nh; h++)
        V(seen[h] == (in->hosts[h].target ? 1u : 0u), "%s: host %zu in %u groups", tag, h,
          seen[h]);
    for (size_t u = 0; u < p->n_unplaced; u++) {
        V(p->unplaced[u].reason > PLAN_R_NONE && p->unplaced[u].reason < PLAN_R__COUNT,
          "%s: unplaced without reason", tag);
        V(p->host_blocked[p->unplaced[u].host], "%s: unplaced on unblocked host", tag);
        explained[p->unplaced[u].inst] = 1;
    }

    for (uint32_t g = 0; g < p->n_groups; g++) {
        /* AA-2: at most one member of an anti-affinity group on the group */
        for (size_t i = 0; i < ni; i++) {
            uint32_t a = in->instances[i].aa_group;
            if (a && p->host_group[cur[i]] == g) {
                V(aa_stamp[a] != g + 1, "%s: group %u holds two members of aa %u", tag, g, a);
                aa_stamp[a] = g + 1;
            }
        }
        for (; mi < p->n_moves && p->moves[mi].group == g; mi++) {
            const struct plan_move *m = &p->moves[mi];
            const struct plan_instance *x = &in->instances[m->inst];
            const struct plan_host *d = &in->hosts[m->dst];
            V(m->src == cur[m->inst], "%s: move %zu: instance not on its source", tag, mi);
            V(p->host_group[m->src] == g, "%s: move %zu: source not in group", tag, mi);
            V(p->host_group[m->dst] != g && m->dst != m->src, "%s: move %zu: dest is down", tag,
              mi);
            V(d->up, "%s: move %zu: dest not up", tag, mi);
            V(!d->cordoned, "%s: move %zu: dest cordoned", tag, mi);
            V(!(p->host_group[m->dst] < g && p->host_blocked[m->dst]),
              "%s: move %zu: dest blocked", tag, mi);
            V((d->labels & x->need_labels) == x->need_labels, "%s: move %zu: labels", tag, mi);
            V(m->end_ms > m->start_ms, "%s: move %zu: empty interval", tag, mi);
            ram[m->src] -= (int64_t)x->ram_mib;
            mv[m->src] -= (int64_t)x->vcpus * 1000;
            ram[m->dst] += (int64_t)x->ram_mib;
            mv[m->dst] += (int64_t)x->vcpus * 1000;
            V(ram[m->dst] <= cap_ram(d, o),
              "%s: move %zu: RAM over capacity on %u", tag, mi, m->dst);
            V(mv[m->dst] <= cap_mv(d, o), "%s: move %zu: vCPUs over capacity", tag, mi);
            /* AA-1: no other member already on the destination */
            if (x->aa_group)
                for (size_t i = 0; i < ni; i++)
                    V(i == m->inst || cur[i] != m->dst ||
                          in->instances[i].aa_group != x->aa_group,
                      "%s: move %zu: aa %u twice on host %u", tag, mi, x->aa_group, m->dst);
            cur[m->inst] = m->dst;
            moved[m->inst] = 1;
        }
        /* the group is drained: only explained instances stay */
        for (size_t i = 0; i < ni; i++)
            if (p->host_group[cur[i]] == g)
                V(explained[i], "%s: instance %zu left on group %u unexplained", tag, i, g);
    }
    V(mi == p->n_moves, "%s: moves out of group order", tag);
    for (size_t i = 0; i < ni; i++)
        if (in->hosts[in->instances[i].host].target)
            V(moved[i] || explained[i], "%s: instance %zu neither moved nor explained", tag, i);
    for (size_t h = 0; h < nh; h++)
        for (uint32_t k = 0; k < p->host_move_count[h]; k++)
            V(p->moves[p->host_move_first[h] + k].src == h, "%s: host_move index", tag);
    V(p->makespan_ms >= p->lower_bound_ms, "%s: makespan %llu below bound %llu", tag,
      (unsigned long long)p->makespan_ms, (unsigned long long)p->lower_bound_ms);
#undef V
    free(cur), free(ram), free(mv), free(seen), free(aa_stamp), free(explained), free(moved);
    return (int)bad;
}

static int memeq(const void *a, const void *b, size_t n)
{
    return n == 0 || memcmp(a, b, n) == 0;
}

static int same_plan(const struct plan *a, const struct plan *b, size_t nh)
{
    return a->n_groups == b->n_groups && a->n_moves == b->n_moves &&
           a->n_unplaced == b->n_unplaced && a->makespan_ms == b->makespan_ms &&
           memeq(a->group_hosts, b->group_hosts, a->group_first[a->n_groups] * 4) &&
           memeq(a->host_group, b->host_group, nh * 4) &&
           memeq(a->moves, b->moves, a->n_moves * sizeof(*a->moves)) &&
           memeq(a->unplaced, b->unplaced, a->n_unplaced * sizeof(*a->unplaced));
}

/* ---- hand-made fleets ---------------------------------------------------- */

static struct plan_host host(uint64_t ram_mib, uint32_t vcpus, int target)
{
    struct plan_host h;
    memset(&h, 0, sizeof(h));
    h.ram_mib = ram_mib, h.vcpus = vcpus, h.target = target, h.up = 1;
    return h;
}

static struct plan_instance inst(uint32_t hst, uint64_t ram_mib, uint32_t vcpus, uint32_t aa)
{
    struct plan_instance x;
    memset(&x, 0, sizeof(x));
    x.host = hst, x.ram_mib = ram_mib, x.vcpus = vcpus, x.aa_group = aa;
    x.migrate_ms = 1000;
    return x;
}

static struct plan_opts opts1(void)
{
    struct plan_opts o;
    memset(&o, 0, sizeof(o));
    o.max_down = 1;
    return o;
}

struct reason_case {
    const char *name;
    struct plan_host h[4];
    size_t nh;
    struct plan_instance x[4];
    size_t nx;
    double overcommit;
    enum plan_reason want; /* reason for instance 0, or NONE = placed */
};

static void t_reasons(void)
{
    struct plan_host down = host(8192, 8, 1), lab = host(8192, 8, 0);
    struct plan_instance needs = inst(0, 1024, 1, 0), big = inst(0, 8192, 1, 0);
    struct plan_instance cpu = inst(0, 1024, 4, 0);
    down.up = 0;
    lab.labels = 0x4;
    needs.need_labels = 0x4;
    const struct reason_case cases[] = {
        {"source_down", {down, host(8192, 8, 0)}, 2, {inst(0, 1024, 1, 0)}, 1, 0,
         PLAN_R_SOURCE_DOWN},
        {"labels", {host(8192, 8, 1), host(8192, 8, 0)}, 2, {needs}, 1, 0, PLAN_R_LABELS},
        {"labels satisfied", {host(8192, 8, 1), lab}, 2, {needs}, 1, 0, PLAN_R_NONE},
        {"too_big", {host(16384, 8, 1), host(4096, 8, 0)}, 2, {big}, 1, 0, PLAN_R_TOO_BIG},
        {"no_room", {host(4096, 8, 1), host(4096, 8, 0)}, 2,
         {inst(0, 3072, 1, 0), inst(1, 3072, 1, 0)}, 2, 0, PLAN_R_NO_ROOM},
        {"anti_affinity", {host(8192, 8, 1), host(8192, 8, 0), host(8192, 8, 0)}, 3,
         {inst(0, 1024, 1, 7), inst(1, 1024, 1, 7), inst(2, 8000, 1, 0)}, 3, 0,
         PLAN_R_ANTI_AFFINITY},
        {"vcpus over 1.0", {host(8192, 8, 1), host(8192, 2, 0)}, 2, {cpu}, 1, 1.0,
         PLAN_R_TOO_BIG},
        {"vcpus fit at 2.0", {host(8192, 8, 1), host(8192, 2, 0)}, 2, {cpu}, 1, 2.0,
         PLAN_R_NONE},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        const struct reason_case *rc = &cases[k];
        struct plan_input in = {rc->h, rc->nh, rc->x, rc->nx, opts1()};
        struct plan p;
        struct ferr e;
        in.opts.vcpu_overcommit = rc->overcommit;
        REQUIRE(plan_compute(&in, &p, &e) == 0, "%s: %s", rc->name, e.msg);
        CHECK(check_plan(&in, &p, rc->name) == 0, "%s: invalid plan", rc->name);
        if (rc->want == PLAN_R_NONE) {
            CHECK(p.n_unplaced == 0 && p.n_moves >= 1, "%s: not placed", rc->name);
        } else {
            CHECK(p.n_unplaced == 1 && p.unplaced[0].inst == 0 && p.unplaced[0].reason == rc->want,
                  "%s: want %s, got %zu unplaced, first %s", rc->name, plan_reason_name(rc->want),
                  p.n_unplaced, p.n_unplaced ? plan_reason_name(p.unplaced[0].reason) : "-");
            CHECK(p.host_blocked[0], "%s: host with an unplaced guest not blocked", rc->name);
        }
        plan_free(&p);
    }
}

/* Three targets, one small guest each, nothing else: the first group's guest
 * must go to a later host (moves twice), the others to done hosts (once). */
static void t_prefers_done(void)
{
    struct plan_host h[3] = {host(8192, 8, 1), host(8192, 8, 1), host(8192, 8, 1)};
    struct plan_instance x[3] = {inst(0, 1024, 1, 0), inst(1, 2048, 1, 0), inst(2, 3072, 1, 0)};
    struct plan_input in = {h, 3, x, 3, opts1()};
    struct plan p;
    struct ferr e;
    REQUIRE(plan_compute(&in, &p, &e) == 0, "%s", e.msg);
    CHECK(check_plan(&in, &p, "prefers_done") == 0, "invalid plan");
    CHECK(p.n_groups == 3, "groups %zu", p.n_groups);
    CHECK(p.n_moves == 4 && p.n_moved_twice == 1, "moves %zu, twice %zu", p.n_moves,
          p.n_moved_twice);
    for (size_t m = 0; m < p.n_moves; m++)
        if (p.moves[m].group > 0)
            CHECK(p.host_group[p.moves[m].dst] < p.moves[m].group,
                  "move %zu in group %u went to a host not done", m, p.moves[m].group);
    plan_free(&p);
}

/* Anti-affinity members on two targets keep them apart even when max_down
 * allows both at once; without the conflict they share a group. */
static void t_grouping(void)
{
    struct plan_host h[3] = {host(8192, 8, 1), host(8192, 8, 1), host(65536, 64, 0)};
    struct plan_instance x[2] = {inst(0, 1024, 1, 5), inst(1, 1024, 1, 5)};
    struct plan_input in = {h, 3, x, 2, opts1()};
    struct plan p;
    struct ferr e;
    in.opts.max_down = 2;
    REQUIRE(plan_compute(&in, &p, &e) == 0, "%s", e.msg);
    CHECK(p.n_groups == 2, "conflicting hosts share a group (%zu groups)", p.n_groups);
    CHECK(check_plan(&in, &p, "grouping aa") == 0, "invalid plan");
    plan_free(&p);
    x[1].aa_group = 6;
    REQUIRE(plan_compute(&in, &p, &e) == 0, "%s", e.msg);
    CHECK(p.n_groups == 1, "free hosts not grouped (%zu groups)", p.n_groups);
    CHECK(check_plan(&in, &p, "grouping free") == 0, "invalid plan");
    plan_free(&p);
}

/* Four 1 s migrations out of one host, two at a time, into a host that
 * takes four: 2 s, equal to the lower bound; one per destination: 4 s. */
static void t_makespan(void)
{
    struct plan_host h[2] = {host(8192, 8, 1), host(65536, 64, 0)};
    struct plan_instance x[4] = {inst(0, 512, 1, 0), inst(0, 512, 1, 0), inst(0, 512, 1, 0),
                                 inst(0, 512, 1, 0)};
    struct plan_input in = {h, 2, x, 4, opts1()};
    struct plan p;
    struct ferr e;
    in.opts.conc_per_source = 2, in.opts.conc_per_dest = 4, in.opts.host_action_ms = 60000;
    REQUIRE(plan_compute(&in, &p, &e) == 0, "%s", e.msg);
    CHECK(p.makespan_ms == 2000 && p.lower_bound_ms == 2000, "makespan %llu bound %llu",
          (unsigned long long)p.makespan_ms, (unsigned long long)p.lower_bound_ms);
    CHECK(p.total_ms == 62000, "total %llu", (unsigned long long)p.total_ms);
    plan_free(&p);
    in.opts.conc_per_dest = 1;
    REQUIRE(plan_compute(&in, &p, &e) == 0, "%s", e.msg);
    CHECK(p.makespan_ms == 4000, "dest-limited makespan %llu", (unsigned long long)p.makespan_ms);
    plan_free(&p);
    /* bytes / bandwidth when no time is given: 1 GiB at 1 GiB/s = 1 s each */
    for (int i = 0; i < 4; i++)
        x[i].migrate_ms = 0, x[i].migrate_bytes = 1u << 30;
    in.opts.bw_per_migration_bps = 1u << 30, in.opts.conc_per_dest = 4;
    REQUIRE(plan_compute(&in, &p, &e) == 0, "%s", e.msg);
    CHECK(p.makespan_ms == 2000, "bytes-based makespan %llu", (unsigned long long)p.makespan_ms);
    plan_free(&p);
}

static void t_invalid(void)
{
    struct plan_host h[1] = {host(8192, 8, 1)};
    struct plan_instance x[1] = {inst(3, 512, 1, 0)};
    struct plan_input in = {h, 1, x, 1, opts1()};
    struct plan p;
    struct ferr e;
    CHECK(plan_compute(&in, &p, &e) == FERR_INVAL && !strcmp(e.field, "instances.host"),
          "bad host index accepted (%s)", e.field);
    x[0].host = 0;
    in.opts.max_down = 0;
    CHECK(plan_compute(&in, &p, &e) == FERR_INVAL && !strcmp(e.field, "max_down"),
          "max_down 0 accepted");
    in.opts.max_down = 1, in.opts.vcpu_overcommit = NAN;
    CHECK(plan_compute(&in, &p, &e) == FERR_INVAL, "NaN overcommit accepted");
    in.opts.vcpu_overcommit = 0, h[0].ram_mib = 0;
    CHECK(plan_compute(&in, &p, &e) == FERR_INVAL, "host with 0 RAM accepted");
    h[0].ram_mib = 8192;
    REQUIRE(plan_compute(&in, &p, &e) == 0, "valid input refused: %s", e.msg);
    CHECK(p.n_unplaced == 1 && p.unplaced[0].reason == PLAN_R_LABELS,
          "lone host: its guest has nowhere to go");
    plan_free(&p);
    in.n_hosts = 0, in.n_instances = 0;
    REQUIRE(plan_compute(&in, &p, &e) == 0, "empty fleet refused");
    CHECK(p.n_groups == 0 && p.n_moves == 0, "empty fleet has a plan");
    plan_free(&p);
}

/* ---- random fleets ------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

static uint64_t rnd(uint64_t *s, uint64_t n)
{
    return n ? rng_next(s) % n : 0;
}

/* A fleet that is valid to start with: capacity held, no two members of an
 * anti-affinity group on one host. Sizes, fill and limits vary with seed. */
static void random_fleet(uint64_t seed, struct plan_host **hp, size_t *nh, struct plan_instance **xp,
                         size_t *ni, struct plan_opts *o)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    size_t H = 1 + rnd(&s, seed % 10 == 0 ? 400 : 40), I = rnd(&s, H * 14 + 1), n = 0;
    static const uint64_t rams[] = {4096, 8192, 16384, 32768};
    static const uint32_t cpus[] = {2, 4, 8, 16};
    static const uint64_t irams[] = {256, 512, 1024, 2048, 4096, 8192};
    struct plan_host *h = xcalloc(H, sizeof(*h));
    struct plan_instance *x = xcalloc(I + 1, sizeof(*x));
    int64_t *fr = xmalloc(H * sizeof(int64_t)), *fv = xmalloc(H * sizeof(int64_t));
    uint32_t target_pct = (uint32_t)(50 + rnd(&s, 51));

    memset(o, 0, sizeof(*o));
    o->max_down = (uint32_t)(1 + rnd(&s, 5));
    o->vcpu_overcommit = (double)(1 + rnd(&s, 4)) / (rnd(&s, 2) ? 1 : 2);
    o->ram_reserve_mib = rnd(&s, 2) ? 0 : 512;
    o->ram_overcommit = rnd(&s, 3) == 0 ? 1.5 : 0;
    o->conc_per_source = (uint32_t)rnd(&s, 4);
    o->conc_per_dest = (uint32_t)rnd(&s, 4);
    o->conc_cluster = (uint32_t)rnd(&s, 10);
    o->bw_per_migration_bps = 1 + rnd(&s, 2000000000);
    o->strategy = seed % 2 ? PLAN_STRATEGY_NAIVE : PLAN_STRATEGY_BALANCED;
    for (size_t k = 0; k < H; k++) {
        h[k].ram_mib = rams[rnd(&s, 4)];
        h[k].vcpus = cpus[rnd(&s, 4)];
        h[k].labels = rnd(&s, 4);
        h[k].target = rnd(&s, 100) < target_pct;
        h[k].up = rnd(&s, 100) < 96;
        h[k].cordoned = rnd(&s, 100) < 5;
        fr[k] = cap_ram(&h[k], o);
        fv[k] = (int64_t)floor(h[k].vcpus * o->vcpu_overcommit * 1000 + 1e-6);
        if (o->vcpu_overcommit == 0)
            fv[k] = h[k].vcpus * 1000;
    }
    for (size_t k = 0; k < I; k++) {
        struct plan_instance *y = &x[n];
        uint32_t at = (uint32_t)rnd(&s, H), aa = rnd(&s, 3) == 0 ? (uint32_t)(1 + rnd(&s, 1 + I / 4)) : 0;
        memset(y, 0, sizeof(*y));
        y->ram_mib = irams[rnd(&s, 6)];
        y->vcpus = (uint32_t)(1 + rnd(&s, 4));
        y->project = (uint32_t)rnd(&s, 5);
        y->need_labels = rnd(&s, 8) == 0 ? 1 + rnd(&s, 2) : 0;
        if (rnd(&s, 2))
            y->migrate_ms = 1 + rnd(&s, 100000);
        else
            y->migrate_bytes = rnd(&s, (uint64_t)y->ram_mib << 21);
        if (fr[at] < (int64_t)y->ram_mib || fv[at] < (int64_t)y->vcpus * 1000)
            continue;
        for (size_t j = 0; j < n && aa; j++)
            if (x[j].aa_group == aa && x[j].host == at)
                aa = 0;
        y->host = at, y->aa_group = aa % AA_IDS;
        fr[at] -= (int64_t)y->ram_mib;
        fv[at] -= (int64_t)y->vcpus * 1000;
        n++;
    }
    free(fr), free(fv);
    *hp = h, *nh = H, *xp = x, *ni = n;
}

static void t_random(void)
{
    size_t fleets = 0, moves = 0, unplaced = 0, twice = 0, reasons[PLAN_R__COUNT] = {0};
    for (uint64_t seed = 1; seed <= 400; seed++) {
        struct plan_host *h;
        struct plan_instance *x;
        struct plan_input in;
        struct plan p, q;
        struct ferr e;
        char tag[64];
        random_fleet(seed, &h, &in.n_hosts, &x, &in.n_instances, &in.opts);
        in.hosts = h, in.instances = x;
        snprintf(tag, sizeof(tag), "fleet %llu (%zu hosts, %zu instances, %s)",
                 (unsigned long long)seed, in.n_hosts, in.n_instances,
                 in.opts.strategy ? "naive" : "balanced");
        if (plan_compute(&in, &p, &e) != 0) {
            CHECK(0, "%s: %s", tag, e.msg);
            free(h), free(x);
            continue;
        }
        CHECK(check_plan(&in, &p, tag) == 0, "%s: invalid plan", tag);
        REQUIRE(plan_compute(&in, &q, &e) == 0, "%s: second run failed", tag);
        CHECK(same_plan(&p, &q, in.n_hosts), "%s: not deterministic", tag);
        fleets++, moves += p.n_moves, unplaced += p.n_unplaced, twice += p.n_moved_twice;
        for (size_t u = 0; u < p.n_unplaced; u++)
            reasons[p.unplaced[u].reason]++;
        plan_free(&p), plan_free(&q);
        free(h), free(x);
    }
    CHECK(fleets == 400, "only %zu fleets planned", fleets);
    /* the fleets must exercise the interesting paths, or the test proves little */
    CHECK(moves > 10000 && unplaced > 0 && twice > 0, "moves %zu unplaced %zu twice %zu", moves,
          unplaced, twice);
    CHECK(reasons[PLAN_R_SOURCE_DOWN] && reasons[PLAN_R_NO_ROOM] && reasons[PLAN_R_LABELS],
          "reasons not all seen: down %zu room %zu labels %zu", reasons[PLAN_R_SOURCE_DOWN],
          reasons[PLAN_R_NO_ROOM], reasons[PLAN_R_LABELS]);
    fprintf(stderr, "random: %zu fleets, %zu moves, %zu unplaced, %zu moved twice\n", fleets,
            moves, unplaced, twice);
}

int main(void)
{
    test_run("planner: each unplaceable reason, hand-made", t_reasons);
    test_run("planner: guests prefer hosts already done", t_prefers_done);
    test_run("planner: anti-affinity keeps hosts in separate groups", t_grouping);
    test_run("planner: makespan under source/dest limits and its lower bound", t_makespan);
    test_run("planner: invalid input refused with the field named", t_invalid);
    test_run("planner: 400 random fleets: capacity, anti-affinity, explained, deterministic",
             t_random);
    return test_done();
}
