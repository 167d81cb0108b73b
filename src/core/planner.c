/* planner — see planner.h and docs/PLANNER.md. Everything is arrays and
 * indices: hosts and instances are addressed by their input index, the
 * destination search is a segment tree over host "positions" (target hosts
 * in plan order, then the others), so finding a destination costs about
 * O(log hosts) instead of a scan of the fleet. */
#include "core/planner.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

#define MV_PER_VCPU 1000 /* vCPU capacity is kept in milli-vCPUs */
#define SIM_LOOKAHEAD 64 /* queue entries a source looks at for a free dest */
#define PLAN_DUR_MAX_MS ((uint64_t)1 << 40) /* one migration's time is clamped */

struct ctx {
    const struct plan_input *in;
    const struct plan_opts *o;
    struct plan *p;
    size_t nh, ni;
    int64_t *cap_ram;   /* per host: RAM minus reserve, MiB */
    int64_t *cap_mv;    /* per host: vCPUs x overcommit, milli-vCPUs */
    int64_t *use_ram;   /* per host: RAM of residents, MiB */
    int64_t *use_mv;    /* per host: vCPUs of residents, milli-vCPUs */
    uint8_t *elig;      /* per host: may receive guests now */
    uint32_t *slot;     /* per host: index within its group */
    uint32_t *cur;      /* per instance: host it is on now */
    uint32_t *res_head; /* per host: first resident, PLAN_NONE-terminated */
    uint32_t *res_next; /* per instance: next resident of its host */
    uint64_t *dur_ms;   /* per instance: migration time, ms */
    uint8_t *moved;     /* per instance: times moved (saturates at 2) */
    uint32_t *aa;       /* per instance: compact anti-affinity group or NONE */
    uint32_t *aa_first; /* n_aa + 1 offsets into aa_mem */
    uint32_t *aa_mem;   /* instance indices, group by group */
    uint32_t *host_at;  /* tree position -> host */
    uint32_t *pos;      /* host -> tree position */
    size_t tp;          /* leaves in the tree (power of two) */
    int64_t *t_ram;     /* per node: max free RAM of eligible leaves, -1 none */
    int64_t *t_mv;      /* per node: max free milli-vCPUs, -1 none */
    uint64_t *t_lab;    /* per node: union of labels of eligible leaves */
    size_t n_targets;
    uint32_t cur_group;
    /* destination budget of the group being placed (balanced strategy) */
    uint64_t *in_ms;    /* per host: ms of migrations into it this group */
    uint8_t *sat;       /* per host: budget used up, out of the tree */
    uint32_t *touched;  /* hosts with in_ms > 0 this group */
    size_t n_touched;
    size_t n_sat;       /* hosts with sat set */
    uint64_t budget_ms; /* in_ms a destination may reach, 0 = no budget */
};

static const char *const reason_names[PLAN_R__COUNT] = {
    "none", "source_down", "labels", "too_big", "no_room", "anti_affinity",
};

const char *plan_reason_name(enum plan_reason r)
{
    if ((int)r < 0 || r >= PLAN_R__COUNT)
        return "none";
    return reason_names[r];
}

void plan_free(struct plan *p)
{
    if (!p)
        return;
    free(p->group_first);
    free(p->group_hosts);
    free(p->group_ms);
    free(p->host_group);
    free(p->host_blocked);
    free(p->moves);
    free(p->host_move_first);
    free(p->host_move_count);
    free(p->unplaced);
    memset(p, 0, sizeof(*p));
}

static int validate(const struct plan_input *in, struct ferr *e)
{
    const struct plan_opts *o = &in->opts;
    if (in->n_hosts > PLAN_HOSTS_MAX)
        return ferr_set(e, FERR_TOOBIG, "hosts", "more than %u hosts", PLAN_HOSTS_MAX);
    if (in->n_instances > PLAN_INSTANCES_MAX)
        return ferr_set(e, FERR_TOOBIG, "instances", "more than %u instances",
                        PLAN_INSTANCES_MAX);
    if ((in->n_hosts && !in->hosts) || (in->n_instances && !in->instances))
        return ferr_set(e, FERR_INVAL, "hosts", "array missing");
    if (o->max_down < 1)
        return ferr_set(e, FERR_INVAL, "max_down", "must be at least 1");
    if (!isfinite(o->vcpu_overcommit) || o->vcpu_overcommit < 0 || o->vcpu_overcommit > 1000)
        return ferr_set(e, FERR_INVAL, "vcpu_overcommit", "must be 0 (=1.0) or in (0, 1000]");
    if (!isfinite(o->ram_overcommit) || o->ram_overcommit < 0 || o->ram_overcommit > 100)
        return ferr_set(e, FERR_INVAL, "ram_overcommit", "must be 0 (=1.0) or in (0, 100]");
    if (o->strategy != PLAN_STRATEGY_BALANCED && o->strategy != PLAN_STRATEGY_NAIVE)
        return ferr_set(e, FERR_INVAL, "strategy", "unknown strategy");
    for (size_t h = 0; h < in->n_hosts; h++) {
        if (in->hosts[h].ram_mib == 0 || in->hosts[h].ram_mib > ((uint64_t)1 << 40))
            return ferr_set(e, FERR_INVAL, "hosts.ram_mib", "host %zu: must be 1..2^40 MiB", h);
        if (in->hosts[h].vcpus == 0 || in->hosts[h].vcpus > 1000000)
            return ferr_set(e, FERR_INVAL, "hosts.vcpus", "host %zu: must be 1..1000000", h);
    }
    for (size_t i = 0; i < in->n_instances; i++) {
        const struct plan_instance *x = &in->instances[i];
        if (x->host >= in->n_hosts)
            return ferr_set(e, FERR_INVAL, "instances.host", "instance %zu: no host %u", i,
                            x->host);
        if (x->ram_mib == 0 || x->ram_mib > ((uint64_t)1 << 40))
            return ferr_set(e, FERR_INVAL, "instances.ram_mib",
                            "instance %zu: must be 1..2^40 MiB", i);
        if (x->vcpus > 1000000)
            return ferr_set(e, FERR_INVAL, "instances.vcpus", "instance %zu: over 1000000", i);
        if (x->migrate_bytes > ((uint64_t)1 << 50) || x->migrate_ms > ((uint64_t)1 << 40))
            return ferr_set(e, FERR_INVAL, "instances.migrate_bytes",
                            "instance %zu: migration size or time out of range", i);
    }
    return 0;
}

/* ---- segment tree over host positions ---------------------------------- */

static void tree_set(struct ctx *c, uint32_t h)
{
    size_t n = c->tp + c->pos[h];
    if (c->elig[h] && !c->sat[h]) {
        c->t_ram[n] = c->cap_ram[h] - c->use_ram[h];
        c->t_mv[n] = c->cap_mv[h] - c->use_mv[h];
        if (c->t_ram[n] < 0 || c->t_mv[n] < 0)
            c->t_ram[n] = c->t_mv[n] = -1;
        c->t_lab[n] = c->in->hosts[h].labels;
    } else {
        c->t_ram[n] = c->t_mv[n] = -1;
        c->t_lab[n] = 0;
    }
    for (n /= 2; n >= 1; n /= 2) {
        size_t l = 2 * n, r = l + 1;
        c->t_ram[n] = c->t_ram[l] > c->t_ram[r] ? c->t_ram[l] : c->t_ram[r];
        c->t_mv[n] = c->t_mv[l] > c->t_mv[r] ? c->t_mv[l] : c->t_mv[r];
        c->t_lab[n] = c->t_lab[l] | c->t_lab[r];
    }
}

/* Anti-affinity for a destination: no other member of the instance's group
 * on dst (rule AA-1), and when dst is still to be maintained, no other member
 * on any host of dst's down-group (rule AA-2). */
static int aa_ok(const struct ctx *c, uint32_t inst, uint32_t dst)
{
    uint32_t a = c->aa[inst], dg = c->p->host_group[dst];
    int later = dg != PLAN_NONE && dg > c->cur_group;
    if (a == PLAN_NONE)
        return 1;
    for (uint32_t k = c->aa_first[a]; k < c->aa_first[a + 1]; k++) {
        uint32_t m = c->aa_mem[k], hm;
        if (m == inst)
            continue;
        hm = c->cur[m];
        if (hm == dst || (later && c->p->host_group[hm] == dg))
            return 0;
    }
    return 1;
}

/* Finds a host in positions [a, b) that can take inst now. leftmost: the
 * first such position (first-fit); otherwise the search descends into the
 * child with more free RAM first (close to worst-fit: the emptiest host).
 * Returns the host or PLAN_NONE. */
static uint32_t tree_find(const struct ctx *c, size_t a, size_t b, uint32_t inst, int leftmost)
{
    const struct plan_instance *x = &c->in->instances[inst];
    int64_t r = (int64_t)x->ram_mib, v = (int64_t)x->vcpus * MV_PER_VCPU;
    uint64_t need = x->need_labels;
    size_t stk_n[128], stk_lo[128], stk_hi[128], sp = 0;
    if (a >= b)
        return PLAN_NONE;
    stk_n[sp] = 1, stk_lo[sp] = 0, stk_hi[sp] = c->tp, sp++;
    while (sp > 0) {
        sp--;
        size_t n = stk_n[sp], lo = stk_lo[sp], hi = stk_hi[sp];
        if (hi <= a || lo >= b || c->t_ram[n] < r || c->t_mv[n] < v ||
            (c->t_lab[n] & need) != need)
            continue;
        if (n >= c->tp) {
            uint32_t h = c->host_at[n - c->tp];
            if (h != c->cur[inst] && aa_ok(c, inst, h))
                return h;
            continue;
        }
        size_t mid = lo + (hi - lo) / 2, l = 2 * n, rr = l + 1;
        int right_first = leftmost ? 0 : c->t_ram[rr] > c->t_ram[l];
        /* push the one to visit second first */
        if (right_first) {
            stk_n[sp] = l, stk_lo[sp] = lo, stk_hi[sp] = mid, sp++;
            stk_n[sp] = rr, stk_lo[sp] = mid, stk_hi[sp] = hi, sp++;
        } else {
            stk_n[sp] = rr, stk_lo[sp] = mid, stk_hi[sp] = hi, sp++;
            stk_n[sp] = l, stk_lo[sp] = lo, stk_hi[sp] = mid, sp++;
        }
    }
    return PLAN_NONE;
}

/* Why inst cannot be placed now: the deepest stage any other up host reaches
 * (labels -> big enough when empty -> room now). Runs only on failures. */
static enum plan_reason classify(const struct ctx *c, uint32_t inst)
{
    const struct plan_instance *x = &c->in->instances[inst];
    int64_t r = (int64_t)x->ram_mib, v = (int64_t)x->vcpus * MV_PER_VCPU;
    int stage = 0;
    for (uint32_t h = 0; h < c->nh && stage < 3; h++) {
        const struct plan_host *ho = &c->in->hosts[h];
        if (h == c->cur[inst] || !ho->up || ho->cordoned ||
            (ho->labels & x->need_labels) != x->need_labels)
            continue;
        if (stage < 1)
            stage = 1;
        if (c->cap_ram[h] < r || c->cap_mv[h] < v)
            continue;
        if (stage < 2)
            stage = 2;
        if (c->elig[h] && c->cap_ram[h] - c->use_ram[h] >= r && c->cap_mv[h] - c->use_mv[h] >= v)
            stage = 3;
    }
    return stage == 0   ? PLAN_R_LABELS
           : stage == 1 ? PLAN_R_TOO_BIG
           : stage == 2 ? PLAN_R_NO_ROOM
                        : PLAN_R_ANTI_AFFINITY;
}

/* ---- grouping ------------------------------------------------------------ */

/* qsort has no context argument in C11, so to stay free of globals every
 * sort works on (key, key, index) triples; the index breaks ties, which
 * makes every order total and the plan deterministic. */
struct kv {
    uint64_t k1, k2; /* sort descending by k1, then ascending by k2 */
    uint32_t idx;
};

static int cmp_kv(const void *pa, const void *pb)
{
    const struct kv *a = pa, *b = pb;
    if (a->k1 != b->k1)
        return a->k1 > b->k1 ? -1 : 1;
    if (a->k2 != b->k2)
        return a->k2 < b->k2 ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* Colours target hosts: each colour (down-group) holds at most max_down
 * hosts and no two hosts that hold members of one anti-affinity group.
 * Greedy first-fit over hosts in the given order. Returns the colour count;
 * colour[h] is set for targets. */
static size_t colour_hosts(struct ctx *c, const uint32_t *order, size_t n_order, uint32_t *colour,
                           uint32_t *count)
{
    uint32_t *forbid = xmalloc((c->n_targets + 1) * sizeof(*forbid));
    size_t n_col = 0, first_open = 0;
    for (size_t k = 0; k < n_order; k++) {
        uint32_t h = order[k], col;
        for (uint32_t i = c->res_head[h]; i != PLAN_NONE; i = c->res_next[i]) {
            uint32_t a = c->aa[i];
            if (a == PLAN_NONE)
                continue;
            for (uint32_t j = c->aa_first[a]; j < c->aa_first[a + 1]; j++) {
                uint32_t h2 = c->cur[c->aa_mem[j]];
                if (h2 != h && colour[h2] != PLAN_NONE)
                    forbid[colour[h2]] = h;
            }
        }
        col = (uint32_t)first_open;
        while (col < n_col && (count[col] >= c->o->max_down || forbid[col] == h))
            col++;
        if (col == n_col) {
            count[n_col] = 0;
            forbid[n_col] = PLAN_NONE;
            n_col++;
        }
        colour[h] = col;
        count[col]++;
        while (first_open < n_col && count[first_open] >= c->o->max_down)
            first_open++;
    }
    free(forbid);
    return n_col;
}

/* ---- makespan of one group ----------------------------------------------- */

struct sim {
    uint32_t *ord;     /* move indices sorted by (slot, duration desc) */
    uint8_t *taken;    /* per ord entry */
    uint32_t *qs, *qe, *head, *src_run; /* per slot */
    uint8_t *blocked;  /* per slot */
    uint64_t *remain;  /* per slot: ms of work not started */
    uint32_t *dst_run; /* per host */
    uint64_t *heap_t;  /* running: end time, ms */
    uint32_t *heap_m;  /* running: move index */
};

static void heap_push(struct sim *s, size_t *n, uint64_t t, uint32_t m)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t pi = (i - 1) / 2;
        if (s->heap_t[pi] < t || (s->heap_t[pi] == t && s->heap_m[pi] < m))
            break;
        s->heap_t[i] = s->heap_t[pi], s->heap_m[i] = s->heap_m[pi];
        i = pi;
    }
    s->heap_t[i] = t, s->heap_m[i] = m;
}

static void heap_pop(struct sim *s, size_t *n, uint64_t *t, uint32_t *m)
{
    uint64_t lt;
    uint32_t lm;
    size_t i = 0;
    *t = s->heap_t[0], *m = s->heap_m[0];
    (*n)--;
    lt = s->heap_t[*n], lm = s->heap_m[*n];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, b = i;
        uint64_t bt = lt;
        uint32_t bm = lm;
        if (l < *n && (s->heap_t[l] < bt || (s->heap_t[l] == bt && s->heap_m[l] < bm)))
            b = l, bt = s->heap_t[l], bm = s->heap_m[l];
        if (r < *n && (s->heap_t[r] < bt || (s->heap_t[r] == bt && s->heap_m[r] < bm)))
            b = r;
        if (b == i)
            break;
        s->heap_t[i] = s->heap_t[b], s->heap_m[i] = s->heap_m[b];
        i = b;
    }
    if (*n > 0)
        s->heap_t[i] = lt, s->heap_m[i] = lm;
}

/* List-schedules moves mv[0..k) of a group whose sources have slots
 * 0..n_src: a source with a free slot and the most work left starts its
 * longest move whose destination has a free slot. Sets start/end relative
 * to t0_ms; returns the group's length, ms. */
static uint64_t sim_group(struct ctx *c, struct sim *s, struct plan_move *mv, size_t k,
                          size_t n_src, uint64_t t0_ms)
{
    uint32_t lim_s = c->o->conc_per_source ? c->o->conc_per_source : 1;
    uint32_t lim_d = c->o->conc_per_dest ? c->o->conc_per_dest : 1;
    uint64_t lim_c = c->o->conc_cluster ? c->o->conc_cluster : UINT64_MAX;
    uint64_t t = 0, running = 0;
    size_t hn = 0, done = 0;
    struct kv *kv = xmalloc((k ? k : 1) * sizeof(*kv));

    for (size_t j = 0; j < k; j++) {
        kv[j].k1 = ((uint64_t)(n_src - c->slot[mv[j].src]) << 44) | c->dur_ms[mv[j].inst];
        kv[j].k2 = mv[j].inst;
        kv[j].idx = (uint32_t)j;
    }
    qsort(kv, k, sizeof(*kv), cmp_kv);
    for (size_t q = 0; q < n_src; q++) {
        s->qs[q] = s->qe[q] = s->head[q] = 0;
        s->src_run[q] = 0;
        s->remain[q] = 0;
    }
    for (size_t j = 0; j < k; j++) {
        uint32_t q = c->slot[mv[kv[j].idx].src];
        s->ord[j] = kv[j].idx;
        s->taken[j] = 0;
        if (s->qe[q] == 0)
            s->qs[q] = s->head[q] = (uint32_t)j;
        s->qe[q] = (uint32_t)j + 1;
        s->remain[q] += c->dur_ms[mv[kv[j].idx].inst];
    }
    free(kv);
    while (done < k) {
        memset(s->blocked, 0, n_src);
        while (running < lim_c) {
            size_t best = n_src;
            for (size_t q = 0; q < n_src; q++)
                if (!s->blocked[q] && s->src_run[q] < lim_s && s->head[q] < s->qe[q] &&
                    (best == n_src || s->remain[q] > s->remain[best]))
                    best = q;
            if (best == n_src)
                break;
            size_t seen = 0, j;
            int found = 0;
            for (j = s->head[best]; j < s->qe[best] && seen < SIM_LOOKAHEAD; j++) {
                if (s->taken[j])
                    continue;
                seen++;
                if (s->dst_run[mv[s->ord[j]].dst] < lim_d) {
                    found = 1;
                    break;
                }
            }
            if (!found) {
                s->blocked[best] = 1;
                continue;
            }
            struct plan_move *m = &mv[s->ord[j]];
            uint64_t d = c->dur_ms[m->inst];
            s->taken[j] = 1;
            while (s->head[best] < s->qe[best] && s->taken[s->head[best]])
                s->head[best]++;
            m->start_ms = t0_ms + t;
            m->end_ms = t0_ms + t + d;
            s->src_run[best]++;
            s->dst_run[m->dst]++;
            s->remain[best] -= d;
            running++;
            heap_push(s, &hn, t + d, s->ord[j]);
        }
        if (hn == 0)
            break; /* cannot happen: with nothing running every limit is free */
        do {
            uint64_t te;
            uint32_t mi;
            heap_pop(s, &hn, &te, &mi);
            t = te;
            s->src_run[c->slot[mv[mi].src]]--;
            s->dst_run[mv[mi].dst]--;
            running--;
            done++;
        } while (hn > 0 && s->heap_t[0] == t);
    }
    return t;
}

/* ---- the plan ------------------------------------------------------------ */

static void ctx_free(struct ctx *c)
{
    free(c->cap_ram), free(c->cap_mv), free(c->use_ram), free(c->use_mv);
    free(c->elig), free(c->slot), free(c->cur), free(c->res_head), free(c->res_next);
    free(c->dur_ms), free(c->moved), free(c->aa), free(c->aa_first), free(c->aa_mem);
    free(c->host_at), free(c->pos), free(c->t_ram), free(c->t_mv), free(c->t_lab);
    free(c->in_ms), free(c->sat), free(c->touched);
}

/* ceil(bytes / bw) in ms, without overflow for bytes < 2^50 */
static uint64_t dur_from_bytes(uint64_t bytes, uint64_t bw)
{
    return (bytes / bw) * 1000 + ((bytes % bw) * 1000 + bw - 1) / bw;
}

static void ctx_init(struct ctx *c, const struct plan_input *in, struct plan *p)
{
    const struct plan_opts *o = &in->opts;
    double ratio = o->vcpu_overcommit > 0 ? o->vcpu_overcommit : 1.0;
    double ram_ratio = o->ram_overcommit > 0 ? o->ram_overcommit : 1.0;
    uint64_t bw = o->bw_per_migration_bps ? o->bw_per_migration_bps : PLAN_BW_DEFAULT_BPS;
    size_t nh = in->n_hosts, ni = in->n_instances, n_aa_inst = 0;

    memset(c, 0, sizeof(*c));
    c->in = in, c->o = o, c->p = p, c->nh = nh, c->ni = ni;
    c->cap_ram = xcalloc(nh + 1, sizeof(int64_t));
    c->cap_mv = xcalloc(nh + 1, sizeof(int64_t));
    c->use_ram = xcalloc(nh + 1, sizeof(int64_t));
    c->use_mv = xcalloc(nh + 1, sizeof(int64_t));
    c->elig = xcalloc(nh + 1, 1);
    c->slot = xcalloc(nh + 1, sizeof(uint32_t));
    c->res_head = xmalloc((nh + 1) * sizeof(uint32_t));
    c->pos = xmalloc((nh + 1) * sizeof(uint32_t));
    c->cur = xmalloc((ni + 1) * sizeof(uint32_t));
    c->res_next = xmalloc((ni + 1) * sizeof(uint32_t));
    c->dur_ms = xmalloc((ni + 1) * sizeof(uint64_t));
    c->moved = xcalloc(ni + 1, 1);
    c->aa = xmalloc((ni + 1) * sizeof(uint32_t));
    c->in_ms = xcalloc(nh + 1, sizeof(uint64_t));
    c->sat = xcalloc(nh + 1, 1);
    c->touched = xmalloc((nh + 1) * sizeof(uint32_t));
    for (size_t h = 0; h < nh; h++) {
        const struct plan_host *ho = &in->hosts[h];
        c->cap_ram[h] = (int64_t)ho->ram_mib - (int64_t)o->ram_reserve_mib;
        if (ram_ratio != 1.0 && c->cap_ram[h] > 0)
            c->cap_ram[h] = (int64_t)floor((double)c->cap_ram[h] * ram_ratio + 1e-6);
        c->cap_mv[h] = (int64_t)floor((double)ho->vcpus * ratio * MV_PER_VCPU + 1e-6);
        c->res_head[h] = PLAN_NONE;
        if (ho->target)
            c->n_targets++;
    }
    /* resident lists in ascending instance order: fill from the back */
    for (size_t i = ni; i-- > 0;) {
        const struct plan_instance *x = &in->instances[i];
        uint64_t bytes = x->migrate_bytes ? x->migrate_bytes : x->ram_mib << 20;
        c->cur[i] = x->host;
        c->res_next[i] = c->res_head[x->host];
        c->res_head[x->host] = (uint32_t)i;
        c->use_ram[x->host] += (int64_t)x->ram_mib;
        c->use_mv[x->host] += (int64_t)x->vcpus * MV_PER_VCPU;
        c->dur_ms[i] = x->migrate_ms ? x->migrate_ms : dur_from_bytes(bytes, bw);
        if (c->dur_ms[i] == 0)
            c->dur_ms[i] = 1;
        if (c->dur_ms[i] > PLAN_DUR_MAX_MS)
            c->dur_ms[i] = PLAN_DUR_MAX_MS;
        c->aa[i] = PLAN_NONE;
        if (x->aa_group)
            n_aa_inst++;
    }
    /* compact anti-affinity groups: sort (group id, instance) pairs */
    {
        struct kv *kv = xmalloc((n_aa_inst + 1) * sizeof(*kv));
        size_t n = 0, g = 0;
        for (size_t i = 0; i < ni; i++)
            if (in->instances[i].aa_group) {
                kv[n].k1 = UINT64_MAX - in->instances[i].aa_group; /* ascending id */
                kv[n].k2 = i;
                kv[n].idx = (uint32_t)i;
                n++;
            }
        qsort(kv, n, sizeof(*kv), cmp_kv);
        c->aa_first = xmalloc((n + 2) * sizeof(uint32_t));
        c->aa_mem = xmalloc((n + 1) * sizeof(uint32_t));
        for (size_t k = 0; k < n; k++) {
            if (k == 0 || kv[k].k1 != kv[k - 1].k1)
                c->aa_first[g++] = (uint32_t)k;
            c->aa_mem[k] = kv[k].idx;
            c->aa[kv[k].idx] = (uint32_t)(g - 1);
        }
        c->aa_first[g] = (uint32_t)n;
        free(kv);
    }
    for (c->tp = 1; c->tp < nh; c->tp *= 2)
        ;
    c->host_at = xmalloc(c->tp * sizeof(uint32_t));
    c->t_ram = xmalloc(2 * c->tp * sizeof(int64_t));
    c->t_mv = xmalloc(2 * c->tp * sizeof(int64_t));
    c->t_lab = xcalloc(2 * c->tp, sizeof(uint64_t));
    for (size_t n = 0; n < 2 * c->tp; n++)
        c->t_ram[n] = c->t_mv[n] = -1;
}

/* Groups and orders the target hosts; fills p->group_*, p->host_group and
 * the tree positions. */
static void make_groups(struct ctx *c)
{
    struct plan *p = c->p;
    size_t nh = c->nh, nt = c->n_targets, n_col, k = 0;
    uint32_t *order = xmalloc((nt + 1) * sizeof(uint32_t));
    uint32_t *colour = xmalloc((nh + 1) * sizeof(uint32_t));
    uint32_t *count = xmalloc((nt + 1) * sizeof(uint32_t));
    uint32_t *rank = xmalloc((nt + 1) * sizeof(uint32_t));
    uint64_t *load = xcalloc(nt + 1, sizeof(uint64_t));
    struct kv *kv = xmalloc((nt + 1) * sizeof(*kv));
    int naive = c->o->strategy == PLAN_STRATEGY_NAIVE;

    for (size_t h = 0; h < nh; h++) {
        colour[h] = PLAN_NONE;
        if (!c->in->hosts[h].target)
            continue;
        uint64_t l = 0;
        for (uint32_t i = c->res_head[h]; i != PLAN_NONE; i = c->res_next[i])
            l += c->dur_ms[i];
        kv[k].k1 = naive ? 0 : l, kv[k].k2 = h, kv[k].idx = (uint32_t)h;
        k++;
    }
    qsort(kv, k, sizeof(*kv), cmp_kv); /* heaviest first (naive: index order) */
    for (size_t j = 0; j < k; j++)
        order[j] = kv[j].idx;
    n_col = colour_hosts(c, order, k, colour, count);

    /* group order: balanced runs the lightest colour first */
    for (size_t h = 0; h < nh; h++)
        if (colour[h] != PLAN_NONE)
            for (uint32_t i = c->res_head[h]; i != PLAN_NONE; i = c->res_next[i])
                load[colour[h]] += c->dur_ms[i];
    for (size_t col = 0; col < n_col; col++) {
        kv[col].k1 = naive ? 0 : UINT64_MAX - load[col];
        kv[col].k2 = col, kv[col].idx = (uint32_t)col;
    }
    qsort(kv, n_col, sizeof(*kv), cmp_kv);
    for (size_t j = 0; j < n_col; j++)
        rank[kv[j].idx] = (uint32_t)j;

    p->n_groups = n_col;
    p->group_first = xcalloc(n_col + 2, sizeof(uint32_t));
    p->group_hosts = xmalloc((nt + 1) * sizeof(uint32_t));
    p->group_ms = xcalloc(n_col + 1, sizeof(uint64_t));
    for (size_t h = 0; h < nh; h++) {
        p->host_group[h] = colour[h] == PLAN_NONE ? PLAN_NONE : rank[colour[h]];
        if (colour[h] != PLAN_NONE)
            p->group_first[p->host_group[h] + 1]++;
    }
    for (size_t g = 0; g < n_col; g++)
        p->group_first[g + 1] += p->group_first[g];
    memcpy(count, p->group_first, n_col * sizeof(uint32_t)); /* fill cursors */
    for (size_t h = 0; h < nh; h++)
        if (p->host_group[h] != PLAN_NONE) {
            uint32_t at = count[p->host_group[h]]++;
            p->group_hosts[at] = (uint32_t)h;
            c->slot[h] = at - p->group_first[p->host_group[h]];
        }
    /* tree positions: balanced = targets in plan order, then the others */
    if (naive) {
        for (size_t h = 0; h < nh; h++)
            c->pos[h] = (uint32_t)h;
    } else {
        size_t at = nt;
        for (size_t j = 0; j < nt; j++)
            c->pos[p->group_hosts[j]] = (uint32_t)j;
        for (size_t h = 0; h < nh; h++)
            if (p->host_group[h] == PLAN_NONE)
                c->pos[h] = (uint32_t)at++;
    }
    for (size_t h = 0; h < nh; h++)
        c->host_at[c->pos[h]] = (uint32_t)h;
    free(order), free(colour), free(count), free(rank), free(load), free(kv);
}

/* Puts every host whose budget is used up back into the tree. */
static void budget_restore(struct ctx *c)
{
    for (size_t j = 0; j < c->n_touched && c->n_sat > 0; j++) {
        uint32_t h = c->touched[j];
        if (c->sat[h]) {
            c->sat[h] = 0;
            c->n_sat--;
            tree_set(c, h);
        }
    }
}

/* Searches the position ranges ranges[2k]..ranges[2k+1], k < n, in order,
 * among hosts within their destination budget; when none fits and some
 * hosts are over budget, doubles the budget, puts them back and searches
 * again. Returns the host or PLAN_NONE. */
static uint32_t find_budgeted(struct ctx *c, const size_t *ranges, size_t n, uint32_t inst)
{
    for (;;) {
        for (size_t k = 0; k < n; k++) {
            uint32_t h = tree_find(c, ranges[2 * k], ranges[2 * k + 1], inst, 0);
            if (h != PLAN_NONE)
                return h;
        }
        if (c->n_sat == 0)
            return PLAN_NONE;
        c->budget_ms *= 2;
        for (size_t j = 0; j < c->n_touched; j++) {
            uint32_t h = c->touched[j];
            if (c->sat[h] && c->in_ms[h] < c->budget_ms) {
                c->sat[h] = 0;
                c->n_sat--;
                tree_set(c, h);
            }
        }
    }
}

static void add_unplaced(struct plan *p, size_t *cap, uint32_t inst, uint32_t host, uint32_t g,
                         enum plan_reason r)
{
    if (p->n_unplaced == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        p->unplaced = xrealloc(p->unplaced, *cap * sizeof(*p->unplaced));
    }
    p->unplaced[p->n_unplaced].inst = inst;
    p->unplaced[p->n_unplaced].host = host;
    p->unplaced[p->n_unplaced].group = g;
    p->unplaced[p->n_unplaced].reason = r;
    p->n_unplaced++;
}

int plan_compute(const struct plan_input *in, struct plan *out, struct ferr *e)
{
    struct ctx c;
    struct sim s;
    struct plan *p = out;
    size_t nh, ni, cap_moves, cap_unpl = 0, max_group = 1;
    struct kv *kv;
    struct plan_move *gm;
    uint64_t t0 = 0, sum_first_ms = 0;
    int naive, rc;

    memset(out, 0, sizeof(*out));
    if (!in)
        return ferr_set(e, FERR_INVAL, "input", "no input");
    rc = validate(in, e);
    if (rc != 0)
        return rc;
    nh = in->n_hosts, ni = in->n_instances;
    naive = in->opts.strategy == PLAN_STRATEGY_NAIVE;
    p->host_group = xmalloc((nh + 1) * sizeof(uint32_t));
    p->host_blocked = xcalloc(nh + 1, 1);
    p->host_move_first = xcalloc(nh + 1, sizeof(uint32_t));
    p->host_move_count = xcalloc(nh + 1, sizeof(uint32_t));
    ctx_init(&c, in, p);
    make_groups(&c);
    for (size_t g = 0; g < p->n_groups; g++)
        if (p->group_first[g + 1] - p->group_first[g] > max_group)
            max_group = p->group_first[g + 1] - p->group_first[g];

    for (size_t h = 0; h < nh; h++) {
        c.elig[h] = (uint8_t)(in->hosts[h].up && !in->hosts[h].cordoned);
        tree_set(&c, (uint32_t)h);
    }
    cap_moves = ni + 16;
    p->moves = xmalloc(cap_moves * sizeof(*p->moves));
    kv = xmalloc((ni + 1) * sizeof(*kv));
    gm = xmalloc((ni + 1) * sizeof(*gm));
    memset(&s, 0, sizeof(s));
    s.ord = xmalloc((ni + 1) * sizeof(uint32_t));
    s.taken = xmalloc(ni + 1);
    s.heap_t = xmalloc((ni + 1) * sizeof(uint64_t));
    s.heap_m = xmalloc((ni + 1) * sizeof(uint32_t));
    s.qs = xmalloc(max_group * sizeof(uint32_t));
    s.qe = xmalloc(max_group * sizeof(uint32_t));
    s.head = xmalloc(max_group * sizeof(uint32_t));
    s.src_run = xmalloc(max_group * sizeof(uint32_t));
    s.blocked = xmalloc(max_group);
    s.remain = xmalloc(max_group * sizeof(uint64_t));
    s.dst_run = xcalloc(nh + 1, sizeof(uint32_t));

    for (uint32_t g = 0; g < p->n_groups; g++) {
        uint32_t gs = p->group_first[g], ge = p->group_first[g + 1];
        size_t n = 0, k = 0, nt = c.n_targets;
        c.cur_group = g;
        for (uint32_t j = gs; j < ge; j++) {
            uint32_t h = p->group_hosts[j];
            c.elig[h] = 0;
            tree_set(&c, h);
            for (uint32_t i = c.res_head[h]; i != PLAN_NONE; i = c.res_next[i]) {
                if (!in->hosts[h].up) {
                    add_unplaced(p, &cap_unpl, i, h, g, PLAN_R_SOURCE_DOWN);
                    p->host_blocked[h] = 1;
                    continue;
                }
                kv[n].k1 = in->instances[i].ram_mib;
                kv[n].k2 = ((uint64_t)(UINT32_MAX - in->instances[i].vcpus) << 32) | i;
                kv[n].idx = i;
                n++;
            }
        }
        qsort(kv, n, sizeof(*kv), cmp_kv); /* first-fit decreasing by RAM */
        if (!naive) {
            /* a destination takes lim_d migrations at a time, so over the
             * group's ideal length (work / concurrency) it can absorb
             * lim_d x that much migration time */
            uint64_t work = 0, lim_s = in->opts.conc_per_source ? in->opts.conc_per_source : 1;
            uint64_t lim_d = in->opts.conc_per_dest ? in->opts.conc_per_dest : 1;
            uint64_t conc = lim_s * (ge - gs);
            if (in->opts.conc_cluster && in->opts.conc_cluster < conc)
                conc = in->opts.conc_cluster;
            for (size_t j = 0; j < n; j++)
                work += c.dur_ms[kv[j].idx];
            c.budget_ms = (work + conc - 1) / conc * lim_d;
            if (c.budget_ms == 0)
                c.budget_ms = 1;
        }
        for (size_t j = 0; j < n; j++) {
            uint32_t i = kv[j].idx, src = c.cur[i], dst;
            const struct plan_instance *x = &in->instances[i];
            if (naive) {
                dst = tree_find(&c, 0, nh, i, 1);
            } else {
                const size_t first[4] = {0, gs, nt, nh}; /* done, never maintained */
                const size_t later[2] = {ge, nt};        /* still to do: moves again */
                dst = find_budgeted(&c, first, 2, i);
                if (dst == PLAN_NONE)
                    dst = find_budgeted(&c, later, 1, i);
            }
            if (dst == PLAN_NONE) {
                add_unplaced(p, &cap_unpl, i, src, g, classify(&c, i));
                p->host_blocked[src] = 1;
                continue;
            }
            c.cur[i] = dst;
            c.res_next[i] = c.res_head[dst];
            c.res_head[dst] = i;
            c.use_ram[dst] += (int64_t)x->ram_mib;
            c.use_mv[dst] += (int64_t)x->vcpus * MV_PER_VCPU;
            if (c.budget_ms) {
                if (c.in_ms[dst] == 0)
                    c.touched[c.n_touched++] = dst;
                c.in_ms[dst] += c.dur_ms[i];
                if (c.in_ms[dst] >= c.budget_ms) {
                    c.sat[dst] = 1;
                    c.n_sat++;
                }
            }
            tree_set(&c, dst);
            if (c.moved[i] == 0)
                sum_first_ms += c.dur_ms[i];
            else if (c.moved[i] == 1)
                p->n_moved_twice++;
            if (c.moved[i] < 2)
                c.moved[i]++;
            gm[k].inst = i, gm[k].src = src, gm[k].dst = dst, gm[k].group = g;
            gm[k].start_ms = gm[k].end_ms = 0;
            k++;
        }
        budget_restore(&c);
        for (size_t j = 0; j < c.n_touched; j++)
            c.in_ms[c.touched[j]] = 0;
        c.n_touched = 0;
        /* the group's hosts keep only what could not move */
        for (uint32_t j = gs; j < ge; j++) {
            uint32_t h = p->group_hosts[j], keep = PLAN_NONE, i, nx;
            c.use_ram[h] = c.use_mv[h] = 0;
            for (i = c.res_head[h]; i != PLAN_NONE; i = nx) {
                nx = c.res_next[i];
                if (c.cur[i] != h)
                    continue;
                c.res_next[i] = keep;
                keep = i;
                c.use_ram[h] += (int64_t)in->instances[i].ram_mib;
                c.use_mv[h] += (int64_t)in->instances[i].vcpus * MV_PER_VCPU;
            }
            c.res_head[h] = keep;
            c.elig[h] = (uint8_t)(in->hosts[h].up && !in->hosts[h].cordoned && !p->host_blocked[h]);
            tree_set(&c, h);
        }
        p->group_ms[g] = sim_group(&c, &s, gm, k, ge - gs, t0);
        t0 += p->group_ms[g] + in->opts.host_action_ms;
        p->makespan_ms += p->group_ms[g];
        /* append in source order (slot), placement order within a source */
        if (p->n_moves + k > cap_moves) {
            cap_moves = 2 * (p->n_moves + k);
            p->moves = xrealloc(p->moves, cap_moves * sizeof(*p->moves));
        }
        {
            size_t base = p->n_moves;
            for (uint32_t j = gs; j < ge; j++) {
                p->host_move_count[p->group_hosts[j]] = 0;
                s.qs[j - gs] = 0; /* per-source cursor */
            }
            for (size_t j = 0; j < k; j++)
                p->host_move_count[gm[j].src]++;
            for (uint32_t j = gs; j < ge; j++) {
                uint32_t h = p->group_hosts[j];
                p->host_move_first[h] = (uint32_t)base;
                base += p->host_move_count[h];
            }
            for (size_t j = 0; j < k; j++) {
                uint32_t h = gm[j].src;
                p->moves[p->host_move_first[h] + s.qs[c.slot[h]]++] = gm[j];
            }
            p->n_moves += k;
        }
    }
    /* lower bound: every instance that moves must move once; at most
     * min(cluster, per_source x hosts down at once) migrations run at once */
    {
        uint64_t per_src = in->opts.conc_per_source ? in->opts.conc_per_source : 1;
        uint64_t down = in->opts.max_down < c.n_targets ? in->opts.max_down : c.n_targets;
        uint64_t conc = per_src * (down ? down : 1);
        if (in->opts.conc_cluster && in->opts.conc_cluster < conc)
            conc = in->opts.conc_cluster;
        p->lower_bound_ms = (sum_first_ms + conc - 1) / conc;
    }
    p->total_ms = p->makespan_ms + p->n_groups * in->opts.host_action_ms;

    free(kv), free(gm);
    free(s.ord), free(s.taken), free(s.heap_t), free(s.heap_m), free(s.qs), free(s.qe);
    free(s.head), free(s.src_run), free(s.blocked), free(s.remain), free(s.dst_run);
    ctx_free(&c);
    return 0;
}
