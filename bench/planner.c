/* planner — the rolling-maintenance planner (core/planner.h) on a simulated
 * fleet of 5,000 hosts and 100,000 instances, every host a target: planning
 * time (target < 5 s) and the makespan estimate against its lower bound
 * (total bytes / aggregate migration bandwidth under the concurrency
 * limits; target <= 1.15). Baseline, measured in the same run on the same
 * fleet: the naive strategy (hosts grouped in index order, groups in that
 * order, first-fit placement with no preference for done hosts), i.e. what
 * a "migrate everything off host X" loop does. Writes bench/out/planner.json. */
#include "core/planner.h"
#include "util/xalloc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define N_HOSTS 5000
#define N_INST 100000
#define GIB_MIB 1024

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

/* The fleet: 4,000 hosts of 256 GiB / 64 threads and 1,000 of 512 GiB / 128
 * threads (10 % carry label bit 0, "ssd"); instances of 1-32 GiB (mostly
 * small), 1-16 vCPUs, one in five in an anti-affinity group of three, 2 %
 * needing "ssd"; placed at random where they fit, about 55 % RAM used. */
static void make_fleet(struct plan_host *h, struct plan_instance *x, size_t *n_inst,
                       const struct plan_opts *o)
{
    static const uint64_t ram_gib[] = {1, 2, 2, 4, 4, 4, 8, 8, 16, 32};
    uint64_t s = 0x5eed1234abcdull;
    int64_t *fr = xmalloc(N_HOSTS * sizeof(int64_t)), *fv = xmalloc(N_HOSTS * sizeof(int64_t));
    size_t n = 0;
    memset(h, 0, N_HOSTS * sizeof(*h));
    for (size_t k = 0; k < N_HOSTS; k++) {
        int big = k % 5 == 4;
        h[k].ram_mib = (big ? 512 : 256) * GIB_MIB;
        h[k].vcpus = big ? 128 : 64;
        h[k].labels = k % 10 == 3 ? 1 : 0;
        h[k].target = 1, h[k].up = 1;
        fr[k] = (int64_t)h[k].ram_mib - (int64_t)o->ram_reserve_mib;
        fv[k] = (int64_t)(h[k].vcpus * o->vcpu_overcommit * 1000);
    }
    for (size_t k = 0; k < N_INST; k++) {
        struct plan_instance *y = &x[n];
        memset(y, 0, sizeof(*y));
        y->ram_mib = ram_gib[rng(&s) % 10] * GIB_MIB;
        y->vcpus = (uint32_t)(1u << (rng(&s) % 5));
        y->project = (uint32_t)(rng(&s) % 2000);
        y->need_labels = rng(&s) % 50 == 0 ? 1 : 0;
        y->aa_group = k % 5 == 0 ? (uint32_t)(1 + k / 15) : 0; /* groups of three */
        for (int tries = 0; tries < 16; tries++) {
            uint32_t at = (uint32_t)(rng(&s) % N_HOSTS);
            int clash = 0;
            if ((h[at].labels & y->need_labels) != y->need_labels || fr[at] < (int64_t)y->ram_mib ||
                fv[at] < (int64_t)y->vcpus * 1000 || fr[at] < (int64_t)h[at].ram_mib * 45 / 100)
                continue;
            for (size_t j = n >= 3 ? n - 3 : 0; j < n && y->aa_group; j++)
                clash |= x[j].aa_group == y->aa_group && x[j].host == at;
            if (clash)
                continue;
            y->host = at;
            fr[at] -= (int64_t)y->ram_mib;
            fv[at] -= (int64_t)y->vcpus * 1000;
            n++;
            break;
        }
    }
    free(fr), free(fv);
    *n_inst = n;
}

struct run {
    double plan_s;
    double makespan_h, bound_h, ratio, total_h;
    size_t groups, moves, twice, unplaced;
};

static int run(const struct plan_input *in, struct run *r)
{
    struct plan p;
    struct ferr e;
    double t0 = now_s();
    if (plan_compute(in, &p, &e) != 0) {
        fprintf(stderr, "planner: %s (%s)\n", e.msg, e.field);
        return -1;
    }
    r->plan_s = now_s() - t0;
    r->makespan_h = (double)p.makespan_ms / 3.6e6;
    r->bound_h = (double)p.lower_bound_ms / 3.6e6;
    r->ratio = p.lower_bound_ms ? (double)p.makespan_ms / (double)p.lower_bound_ms : 0;
    r->total_h = (double)p.total_ms / 3.6e6;
    r->groups = p.n_groups, r->moves = p.n_moves, r->twice = p.n_moved_twice;
    r->unplaced = p.n_unplaced;
    plan_free(&p);
    return 0;
}

int main(void)
{
    struct plan_host *h = xmalloc(N_HOSTS * sizeof(*h));
    struct plan_instance *x = xmalloc(N_INST * sizeof(*x));
    struct plan_input in;
    struct run bal, nai;
    struct utsname u;
    char mach[256], cpu[128] = "?";
    FILE *f = fopen("/proc/cpuinfo", "r"), *js;

    if (f) {
        char line[256];
        while (fgets(line, sizeof(line), f))
            if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
                snprintf(cpu, sizeof(cpu), "%s", strchr(line, ':') + 2);
                cpu[strcspn(cpu, "\n")] = 0;
                break;
            }
        fclose(f);
    }
    if (uname(&u) != 0)
        memset(&u, 0, sizeof(u));
    snprintf(mach, sizeof(mach), "%s %s %s, %ld cpus, %s", u.sysname, u.release, u.machine,
             sysconf(_SC_NPROCESSORS_ONLN), cpu);

    memset(&in, 0, sizeof(in));
    in.opts.max_down = 50;
    in.opts.vcpu_overcommit = 4.0;
    in.opts.ram_reserve_mib = 4 * GIB_MIB;
    in.opts.conc_per_source = 2;
    in.opts.conc_per_dest = 2;
    in.opts.conc_cluster = 64;
    in.opts.bw_per_migration_bps = 1250000000ull; /* 10 Gbit/s per migration */
    in.opts.host_action_ms = 15 * 60 * 1000;      /* patch + reboot + check */
    /* overrides for exploring: PLANNER_MAX_DOWN, PLANNER_SRC, PLANNER_DST,
     * PLANNER_CLUSTER (0 = unlimited) */
    if (getenv("PLANNER_MAX_DOWN"))
        in.opts.max_down = (uint32_t)strtoul(getenv("PLANNER_MAX_DOWN"), NULL, 10);
    if (getenv("PLANNER_SRC"))
        in.opts.conc_per_source = (uint32_t)strtoul(getenv("PLANNER_SRC"), NULL, 10);
    if (getenv("PLANNER_DST"))
        in.opts.conc_per_dest = (uint32_t)strtoul(getenv("PLANNER_DST"), NULL, 10);
    if (getenv("PLANNER_CLUSTER"))
        in.opts.conc_cluster = (uint32_t)strtoul(getenv("PLANNER_CLUSTER"), NULL, 10);
    make_fleet(h, x, &in.n_instances, &in.opts);
    in.hosts = h, in.n_hosts = N_HOSTS, in.instances = x;

    in.opts.strategy = PLAN_STRATEGY_BALANCED;
    if (run(&in, &bal) != 0)
        return 1;
    in.opts.strategy = PLAN_STRATEGY_NAIVE;
    if (run(&in, &nai) != 0)
        return 1;

    printf("planner: %d hosts, %zu instances, max_down %u, limits %u/src %u/dst %u cluster, "
           "10 Gbit/s per migration\nmachine: %s\n",
           N_HOSTS, in.n_instances, in.opts.max_down, in.opts.conc_per_source,
           in.opts.conc_per_dest, in.opts.conc_cluster, mach);
    printf("%-9s %8s %7s %11s %9s %11s %11s %8s %9s %9s\n", "strategy", "plan_s", "groups",
           "makespan_h", "bound_h", "ratio", "total_h", "moves", "twice", "unplaced");
    printf("%-9s %8.3f %7zu %11.2f %9.2f %11.3f %11.2f %8zu %9zu %9zu\n", "balanced", bal.plan_s,
           bal.groups, bal.makespan_h, bal.bound_h, bal.ratio, bal.total_h, bal.moves, bal.twice,
           bal.unplaced);
    printf("%-9s %8.3f %7zu %11.2f %9.2f %11.3f %11.2f %8zu %9zu %9zu\n", "naive", nai.plan_s,
           nai.groups, nai.makespan_h, nai.bound_h, nai.ratio, nai.total_h, nai.moves, nai.twice,
           nai.unplaced);
    printf("targets: plan time < 5 s, makespan / bound <= 1.15\n");

    js = fopen("bench/out/planner.json", "w");
    if (!js) {
        perror("planner: bench/out/planner.json");
        return 1;
    }
    fprintf(js,
            "{\"machine\":\"%s\",\"figures\":{\"hosts\":%d,\"instances\":%zu,"
            "\"plan_time_s\":%.3f,\"groups\":%zu,\"makespan_h\":%.3f,\"lower_bound_h\":%.3f,"
            "\"makespan_over_bound\":%.4f,\"total_with_actions_h\":%.3f,\"moves\":%zu,"
            "\"instances_moved_twice\":%zu,\"unplaced\":%zu},\"baselines\":{"
            "\"naive_plan_time_s\":%.3f,\"naive_makespan_h\":%.3f,\"naive_lower_bound_h\":%.3f,"
            "\"naive_makespan_over_bound\":%.4f,\"naive_moves\":%zu,"
            "\"naive_instances_moved_twice\":%zu,\"naive_unplaced\":%zu}}\n",
            mach, N_HOSTS, in.n_instances, bal.plan_s, bal.groups, bal.makespan_h, bal.bound_h,
            bal.ratio, bal.total_h, bal.moves, bal.twice, bal.unplaced, nai.plan_s, nai.makespan_h,
            nai.bound_h, nai.ratio, nai.moves, nai.twice, nai.unplaced);
    free(h), free(x);
    return fclose(js) == 0 ? 0 : 1;
}
