/* netlab — a throw-away network of lab hosts in Linux network namespaces,
 * for the tests and benchmarks that need a real, shaped network between
 * hosts (a shared, limited link carrying storage and migration traffic).
 *
 *   hub namespace "fnl<pid>-hub": bridge br0 (10.77.0.254/24, the control
 *   point the test talks from), one veth "hN" per host enslaved to it
 *        |                 |                 |
 *   "fnl<pid>-src"    "fnl<pid>-dst"    "fnl<pid>-sto"     host namespaces:
 *   eth0 10.77.0.1    eth0 10.77.0.2    eth0 10.77.0.3     lo + eth0 only
 *
 * A star through one bridge: each host's veth pair is its NIC and its
 * link to the switch. netlab_shape() puts a token bucket (tc tbf: rate,
 * queue length as a delay bound) on both directions of one host's link,
 * optionally behind a fixed delay (netem, when the kernel has it).
 *
 * Everything runs inside the namespaces this module creates: nothing is
 * added to or changed in the caller's network namespace (no interface, no
 * address, no route). The caller's thread enters the hub namespace with
 * netlab_enter() to reach the hosts (HTTP to agents, NBD probes) and
 * leaves it with netlab_leave() / netlab_destroy().
 *
 * Processes in the lab (agents, the NBD server) run through `ip netns exec
 * NS ...` in their own process groups. Cleanup on every path: a watchdog
 * process holds one end of a pipe; when the caller exits in any way
 * (return, crash, SIGKILL) or netlab_destroy closes the pipe, it SIGKILLs
 * every recorded process group and deletes every namespace of the lab
 * (their veths and the bridge go with them). An atexit handler and the
 * usual fatal signals also kill the groups at once.
 *
 * Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN for setns) and iproute2's
 * `ip` and `tc`: netlab_available() says whether, and why not. Not
 * thread-safe; one netlab per process. */
#ifndef FERRY_TESTS_NETLAB_H
#define FERRY_TESTS_NETLAB_H
#include <stdint.h>
#include <sys/types.h>

#include "lab.h"
#include "util/ferr.h"

#define NETLAB_HOSTS_MAX 4      /* lab hosts besides the hub */
#define NETLAB_PROCS_MAX 16     /* process groups netlab_spawn may start */
#define NETLAB_NS_MAX 32        /* bytes of a namespace name, NUL included */
#define NETLAB_SUBNET "10.77.0" /* hosts are .1 .. .N, the hub's bridge .254 */
#define NETLAB_HUB_ADDR NETLAB_SUBNET ".254"

struct netlab_host {
    char name[12];          /* short role name given to netlab_create ("src") */
    char ns[NETLAB_NS_MAX]; /* its network namespace, "fnl<pid>-<name>" */
    char addr[16];          /* its IPv4 address on eth0 */
    char hub_if[16];        /* the hub side of its veth pair, "hN" */
};

struct netlab {
    int n;                                      /* hosts created */
    struct netlab_host hosts[NETLAB_HOSTS_MAX]; /* in creation order */
    char hub[NETLAB_NS_MAX];                    /* hub namespace name, "" when none */
    char tmp[LAB_PATH_MAX];                     /* mkdtemp dir for logs and images, "" when none */
    pid_t procs[NETLAB_PROCS_MAX];              /* process groups started (0 = reaped) */
    int n_procs;                                /* entries in procs */
    pid_t watchdog;                             /* watchdog pid, 0 when none */
    int watch_fd;                               /* write end of its pipe, -1 when none */
    int home_fd;                                /* caller's netns while entered, else -1 */
};

/* Shape of one host's link (both directions). */
struct netlab_shape {
    uint64_t rate_bps; /* bits/s of the token bucket (> 0) */
    unsigned queue_ms; /* tbf latency bound: queue length in ms at rate (1..10000) */
    unsigned delay_us; /* fixed one-way delay through netem, 0 = none */
};

/* Returns 1 when a netlab can be built here (root, `ip` and `tc` found,
 * a namespace can be created and deleted), else 0 with the reason in why
 * (n bytes) — for a test's skip message. */
int netlab_available(char *why, size_t n);

/* Returns 1 when the kernel offers the netem qdisc (fixed delay), else 0.
 * Probes in a throw-away namespace. */
int netlab_has_netem(void);

/* Creates the hub and n (1..NETLAB_HOSTS_MAX) hosts named names[0..n-1]
 * (each 1..8 of [a-z0-9]), host i at NETLAB_SUBNET.(i+1), all links up
 * and unshaped, and a temp dir under /tmp. Returns 0, or negative with e
 * filled; on failure everything created is removed again and nl holds
 * nothing (netlab_destroy stays safe). */
int netlab_create(struct netlab *nl, int n, const char *const *names, struct ferr *e)
    __attribute__((warn_unused_result));

/* Index of the host named name, or -1. */
int netlab_host(const struct netlab *nl, const char *name);

/* Shapes host i's link in both directions: its eth0 (uplink) and the hub
 * side (downlink) each get tc tbf with s->rate_bps and a queue of
 * s->queue_ms (burst 2 ms at rate, at least 32 KiB), behind netem with
 * s->delay_us when non-zero. Replaces an earlier shape. Returns 0, or
 * negative with e filled (FERR_INVAL for a bad shape or a qdisc the
 * kernel lacks: the message says which). */
int netlab_shape(struct netlab *nl, int i, const struct netlab_shape *s, struct ferr *e)
    __attribute__((warn_unused_result));

/* Puts the calling thread into the hub namespace (it keeps a descriptor
 * of the one it was in). Returns 0 or negative with e filled. Entering
 * twice is a no-op. */
int netlab_enter(struct netlab *nl, struct ferr *e) __attribute__((warn_unused_result));

/* Returns the calling thread to the namespace it was in before
 * netlab_enter. Safe when not entered. */
void netlab_leave(struct netlab *nl);

/* Starts argv (argv[0] searched on PATH) as `ip netns exec NS argv...`
 * in host i's namespace, in a new process group that netlab_destroy and
 * the watchdog kill, stdout and stderr appended to log_path (may be NULL:
 * /dev/null). On 0, *pid is its pid (= the group). */
int netlab_spawn(struct netlab *nl, int i, char *const argv[], const char *log_path, pid_t *pid,
                 struct ferr *e) __attribute__((warn_unused_result));

/* Starts a ferry-agent in host i's namespace listening on the host's
 * address at port, state dir and log under the lab's temp dir, and waits
 * until it answers /v1/health (the caller must have entered the hub).
 * build and lab_dir are absolute (netlab_paths). Fills *a so the lab.h
 * helpers (lab_api, lab_launch_guest_disks, lab_migrate_start, ...) work
 * on it; a->pid is its process group. */
int netlab_start_agent(struct netlab *nl, int i, const char *build, const char *lab_dir, int port,
                       struct lab_agent *a, struct ferr *e) __attribute__((warn_unused_result));

/* Serves image (raw, absolute path) as NBD export `export` on host i's
 * address at port with qemu-nbd (writable, persistent, up to 8 clients,
 * so a migration's destination can connect while the source still is),
 * and waits until the port accepts (caller entered the hub). On 0, *pid
 * is the server's process group. */
int netlab_nbd_serve(struct netlab *nl, int i, const char *image, const char *export, int port,
                     pid_t *pid, struct ferr *e) __attribute__((warn_unused_result));

/* Bytes host i's eth0 sent (tx) and received (rx) so far, from the
 * kernel's link counters. */
int netlab_link_bytes(const struct netlab *nl, int i, uint64_t *tx, uint64_t *rx, struct ferr *e)
    __attribute__((warn_unused_result));

/* Packets host i's uplink qdiscs (tc on its eth0) dropped so far: a full
 * queue's tail drops, summed over the tbf (and netem) there. */
int netlab_uplink_drops(const struct netlab *nl, int i, uint64_t *drops, struct ferr *e)
    __attribute__((warn_unused_result));

/* Finds the build dir ($BUILD, default "build") with ferry-agent in it and
 * the lab guest image ($BUILD/lab, else build/lab), both made absolute
 * (n bytes each). Returns 0 or FERR_NOTFOUND with e saying what is missing. */
int netlab_paths(char *build, char *lab_dir, size_t n, struct ferr *e)
    __attribute__((warn_unused_result));

/* Leaves the hub, SIGKILLs and reaps every process group started, deletes
 * every namespace, removes the temp dir and stops the watchdog.
 * Idempotent; safe after a failed netlab_create. */
void netlab_destroy(struct netlab *nl);

#endif
