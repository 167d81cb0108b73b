/* lab — a throw-away multi-host lab for integration tests and benchmarks:
 * N ferry-agents on 127.0.1.1.. 127.0.1.N, each in its own process group
 * with a fresh state dir, plus blocking helpers to launch lab guests, talk
 * to their serial console through the agent API, migrate them and check
 * their memory inside the guest.
 *
 *   struct lab lab;
 *   struct ferr e;
 *   if (lab_start(&lab, 2, &e) != 0) { ...e.msg...; }
 *   lab_launch_guest(&lab.agents[0], "g1", 256, "... ferry.workload=memload ...",
 *                    LAB_BOOT_TIMEOUT_MS, &e);
 *   json_t *m;
 *   lab_migrate(&lab.agents[0], &lab.agents[1], "g1", limits, 120000, &m, &e);
 *   lab_stop(&lab);
 *
 * Leaks are impossible by construction: lab_start forks a small watchdog
 * process that holds one end of a pipe; whenever the test process ends
 * (normal exit, crash, SIGKILL) the pipe closes and the watchdog SIGKILLs
 * every agent's process group (the agents' QEMUs are in it) and removes the
 * temp dir. lab_stop does the same at once. An atexit handler and the
 * usual fatal signals stop every running lab too.
 *
 * Binaries: $BUILD/ferry-agent (BUILD defaults to "build"); lab guest:
 * $BUILD/lab, or build/lab when $BUILD/lab has no vmlinuz (SANITIZE=1).
 * Paths are made absolute. Not thread-safe; one lab per process at a time
 * is the intended use (up to LAB_MAX_LABS work). */
#ifndef FERRY_TESTS_LAB_H
#define FERRY_TESTS_LAB_H
#include <jansson.h>
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/ferr.h"

#define LAB_AGENTS_MAX 4            /* agents in one lab */
#define LAB_MAX_LABS 4              /* labs alive at once in one process */
#define LAB_HTTP_TIMEOUT_MS 15000   /* one API request, ms */
#define LAB_HEALTH_TIMEOUT_MS 15000 /* agent start until /v1/health answers, ms */
#define LAB_BOOT_TIMEOUT_MS 180000  /* guest launch until FERRY-READY, ms */
#define LAB_CMD_TIMEOUT_MS 60000    /* one console command's answer, ms */
#define LAB_PATH_MAX 512            /* bytes of one path kept here */

struct lab_agent {
    pid_t pid;                    /* ferry-agent's pid = its process group, 0 when none */
    char name[16];                /* agent --name, "hostN" */
    char addr[32];                /* listen IPv4 address, 127.0.1.N */
    int port;                     /* API port */
    char url[64];                 /* "http://ADDR:PORT" */
    char state_dir[LAB_PATH_MAX]; /* --state-dir (under the lab's temp dir) */
    char log_path[LAB_PATH_MAX];  /* the agent's stdout+stderr */
};

struct lab {
    int n; /* agents started */
    struct lab_agent agents[LAB_AGENTS_MAX];
    char tmp[LAB_PATH_MAX];     /* mkdtemp dir holding everything, "" when none */
    char build[LAB_PATH_MAX];   /* absolute build dir */
    char lab_dir[LAB_PATH_MAX]; /* absolute dir holding vmlinuz and initrd.img */
    pid_t extra[32];            /* extra process groups killed on stop (lab_track) */
    int n_extra;                /* entries in extra */
    pid_t watchdog;             /* watchdog process, 0 when none */
    int watch_fd;               /* write end of the watchdog's pipe, -1 when none */
};

/* Result of lab_verify: the guest's own FERRY-RESULT line. */
struct lab_integrity {
    int ok;              /* 1 when the guest found every page intact */
    long long pages;     /* pages in the working set */
    long long bad_pages; /* pages found wrong */
    long long pass;      /* memload's pass counter (grows while the guest runs) */
    long long cursor;    /* memload's position inside the pass, pages */
};

/* Starts n (1..LAB_AGENTS_MAX) agents, agent i on 127.0.1.(i+1) at port
 * 20000 + getpid() % 10000 + i, and waits until each answers /v1/health.
 * Checks that the agent binary and lab image exist first. Returns 0, or
 * negative with e filled; on failure everything started is stopped again
 * and lab holds nothing (lab_stop is still safe to call). */
int lab_start(struct lab *lab, int n, struct ferr *e) __attribute__((warn_unused_result));

/* The agents' --incoming-nice from FERRY_LAB_INCOMING_NICE (docs/LAB.md):
 * when it is set and not empty, slot[0] and slot[1] become the flag and
 * its value; returns how many (0 or 2). Used by lab_start and netlab. */
int lab_incoming_nice_args(char **slot);

/* SIGKILLs every agent's process group (and each lab_track group), reaps
 * the agents, stops the watchdog and removes the temp dir. Idempotent;
 * safe on a lab whose lab_start failed. */
void lab_stop(struct lab *lab);

/* Adds process group pgid (a process the test started with setpgid(0,0))
 * to what lab_stop and the safety net kill. Returns 0 or FERR_TOOBIG. */
int lab_track(struct lab *lab, pid_t pgid) __attribute__((warn_unused_result));

/* Sends one API request (body borrowed, may be NULL) to agent a. On 0,
 * *status is the HTTP status and *out the reply (new reference, caller
 * decrefs; NULL when the body was not JSON); out may be NULL to drop it.
 * Negative with e filled when the request itself failed. */
int lab_api(const struct lab_agent *a, const char *method, const char *path, const json_t *body,
            int *status, json_t **out, struct ferr *e) __attribute__((warn_unused_result));

/* Fetches GET /v1/instances/name. Returns 0 with *out (caller decrefs, may
 * be NULL to drop), FERR_NOTFOUND on 404, other negatives on failure. */
int lab_instance(const struct lab_agent *a, const char *name, json_t **out, struct ferr *e)
    __attribute__((warn_unused_result));

/* The QEMU pid and state of an instance; state_out (may be NULL) receives
 * up to n bytes. FERR_NOTFOUND on 404. */
int lab_instance_pid(const struct lab_agent *a, const char *name, pid_t *pid, char *state_out,
                     size_t n, struct ferr *e) __attribute__((warn_unused_result));

/* Number of instances GET /v1/instances lists. */
int lab_instance_count(const struct lab_agent *a, size_t *count, struct ferr *e)
    __attribute__((warn_unused_result));

/* Launches a guest (POST /v1/instances, lab kernel and initrd) and waits
 * up to timeout_ms for FERRY-READY on its console. cmdline is borrowed.
 * On failure the guest, if created, is deleted again. */
int lab_launch_guest(const struct lab_agent *a, const char *name, unsigned memory_mib,
                     const char *cmdline, int timeout_ms, struct ferr *e)
    __attribute__((warn_unused_result));

/* POST /v1/instances on a: lab guest name (1 vcpu, memory_mib, kernel
 * cmdline; the agent's lab kernel and initrd) in project (may be NULL:
 * none) with disks (a "disks" array, borrowed, may be NULL). Does not wait
 * for it to boot. Returns 0 when the agent accepted it (200 or 202), else
 * FERR_PEER with the status and body in e, or the request's error. */
int lab_post_instance(const struct lab_agent *a, const char *name, const char *project,
                      unsigned memory_mib, const char *cmdline, const json_t *disks,
                      struct ferr *e) __attribute__((warn_unused_result));

/* Current end of the instance's console output (absolute byte offset). */
int lab_console_offset(const struct lab_agent *a, const char *name, uint64_t *off, struct ferr *e)
    __attribute__((warn_unused_result));

/* Sends line (may be NULL: send nothing) to the console and waits up to
 * timeout_ms for a complete console line starting with prefix that begins
 * at or after offset since (when line is sent: after the offset the send
 * returned, and since is ignored). On 0, *rest_out (may be NULL) is a copy
 * of what follows the prefix, caller frees with free(). FERR_TIMEOUT when
 * no such line came, FERR_NOTFOUND when the instance disappeared. */
int lab_console_expect(const struct lab_agent *a, const char *name, const char *line,
                       uint64_t since, const char *prefix, int timeout_ms, char **rest_out,
                       struct ferr *e) __attribute__((warn_unused_result));

/* Sends "verify" and parses the guest's FERRY-RESULT into *out. Returns 0
 * whenever a result came (check out->ok), negative when none did. */
int lab_verify(const struct lab_agent *a, const char *name, struct lab_integrity *out,
               struct ferr *e) __attribute__((warn_unused_result));

/* Prepares the destination: POST /v1/incoming on dst with the source
 * instance's own spec, then waits (bounded) for its incoming_uri, copied to
 * uri (n bytes). On failure the destination instance is deleted again. */
int lab_prepare_incoming(const struct lab_agent *src, const struct lab_agent *dst, const char *name,
                         char *uri, size_t n, struct ferr *e) __attribute__((warn_unused_result));

/* As lab_prepare_incoming; with postcopy non-zero the destination is asked
 * for postcopy-ram ("postcopy": true in POST /v1/incoming). */
int lab_prepare_incoming_opts(const struct lab_agent *src, const struct lab_agent *dst,
                              const char *name, int postcopy, char *uri, size_t n,
                              struct ferr *e) __attribute__((warn_unused_result));

/* Returns 1 when the policy object (borrowed, may be NULL) may switch to
 * post-copy (permit_post_copy, or a schedule entry "postcopy"), else 0. */
int lab_policy_permits_postcopy(const json_t *policy);

/* As lab_migrate_start with a "policy" object (borrowed, may be NULL); the
 * destination gets postcopy-ram when the policy permits post-copy, as
 * `ferry migrate --policy` does. */
int lab_migrate_start_policy(const struct lab_agent *src, const struct lab_agent *dst,
                             const char *name, const json_t *limits, const json_t *policy,
                             char *id, size_t n, struct ferr *e)
    __attribute__((warn_unused_result));

/* Sends a request without a body and returns the raw answer: *status, and
 * *body (NUL-terminated, *len bytes; caller frees with free()). Negative
 * with e filled when the request failed. */
int lab_api_text(const struct lab_agent *a, const char *method, const char *path, int *status,
                 char **body, size_t *len, struct ferr *e) __attribute__((warn_unused_result));

/* Prepares dst and POSTs the migration of name from src with limits
 * (borrowed JSON object, may be NULL). On 0, id (n bytes) holds the
 * migration id. On failure the prepared destination is deleted. */
int lab_migrate_start(const struct lab_agent *src, const struct lab_agent *dst, const char *name,
                      const json_t *limits, char *id, size_t n, struct ferr *e)
    __attribute__((warn_unused_result));

/* Polls GET /v1/migrations/id on src every 200 ms until its state is
 * terminal (succeeded, failed, cancelled) or timeout_ms passes. On 0, *out
 * is the final migration object (caller decrefs). FERR_TIMEOUT otherwise. */
int lab_migration_wait(const struct lab_agent *src, const char *id, int timeout_ms, json_t **out,
                       struct ferr *e) __attribute__((warn_unused_result));

/* lab_migrate_start + lab_migration_wait. Returns 0 whenever the migration
 * reached a terminal state (check its "state"); *out as for the wait. */
int lab_migrate(const struct lab_agent *src, const struct lab_agent *dst, const char *name,
                const json_t *limits, int timeout_ms, json_t **out, struct ferr *e)
    __attribute__((warn_unused_result));

/* Polls the migration until its last_sample shows ram_transferred of at
 * least bytes (it is really moving data) or timeout_ms passes. */
int lab_migration_wait_transferred(const struct lab_agent *src, const char *id, uint64_t bytes,
                                   int timeout_ms, struct ferr *e)
    __attribute__((warn_unused_result));

/* Returns 1 when pid exists and is not a zombie, else 0. */
int lab_pid_alive(pid_t pid);

/* Waits up to timeout_ms for pid to be gone; returns 1 when it is. */
int lab_pid_wait_gone(pid_t pid, int timeout_ms);

/* Waits up to timeout_ms until GET on the instance returns 404; 1 when so. */
int lab_instance_wait_gone(const struct lab_agent *a, const char *name, int timeout_ms);

/* The string member k of o, "" when absent or not a string (borrowed
 * from o). */
const char *lab_jstr(const json_t *o, const char *k);

/* The integer member k of o, def when absent or not an integer. */
long long lab_jint(const json_t *o, const char *k, long long def);

/* Monotonic milliseconds. */
uint64_t lab_now_ms(void);

/* Sleeps ms milliseconds (resumed after a signal). */
void lab_sleep_ms(int ms);

/* Finds the build dir ($BUILD, default "build") with ferry-agent in it and
 * the lab guest image ($BUILD/lab, else build/lab), both made absolute
 * (n bytes each). Returns 0 or FERR_NOTFOUND / FERR_TOOBIG with e saying
 * what is missing. */
int lab_paths(char *build, char *lab_dir, size_t n, struct ferr *e)
    __attribute__((warn_unused_result));

/* Shared by the test helpers (lab, netlab, ferryd). */

/* Polls agent a's GET /v1/health every 100 ms until it answers 200 (0),
 * the agent a->pid exits (FERR_CLOSED; reaped, a->pid set to 0) or
 * LAB_HEALTH_TIMEOUT_MS passes (FERR_TIMEOUT). */
int lab__agent_wait_health(struct lab_agent *a, struct ferr *e)
    __attribute__((warn_unused_result));

/* Once per *installed (0 the first time; set to 1): registers at_exit
 * with atexit and installs handler for SIGINT, SIGTERM, SIGHUP, SIGQUIT,
 * SIGSEGV, SIGBUS, SIGABRT and SIGFPE; with old non-NULL (NSIG entries),
 * old[sig] receives the action each replaced. */
void lab__install_safety(int *installed, void (*at_exit)(void), void (*handler)(int),
                         struct sigaction *old);

/* For a watchdog process: ignores SIGINT, SIGTERM, SIGHUP and SIGQUIT,
 * then reads pid_t records from fd until EOF or an error (other than
 * EINTR), keeping the first max in groups. Returns how many it kept. */
int lab__watchdog_read(int fd, pid_t *groups, int max);

/* Reaps each of the n process groups' leaders groups[i] > 0 (ECHILD at
 * once when the caller reaped it already) and sets every entry to 0. */
void lab__reap_groups(pid_t *groups, int n);

/* Closes *watch_fd (the write end of a watchdog's pipe: the watchdog then
 * does its work and exits) and reaps *watchdog; sets them to -1 and 0.
 * Each is skipped when already so. */
void lab__watchdog_end(int *watch_fd, pid_t *watchdog);

/* In a child after fork, before exec: stdout and stderr appended to
 * log_path (created 0600; left as they are when it cannot be opened),
 * stdin from /dev/null, SIGINT and SIGTERM back to their default. */
void lab__child_stdio(const char *log_path);

/* Removes the tree at path (depth first, links not followed; errors
 * ignored). No-op when path is "". */
void lab__rm_tree(const char *path);

/* As lab_launch_guest with a "disks" array (borrowed JSON, may be NULL)
 * in the spec, waiting for ready_lines FERRY-READY lines (one per
 * workload: 2 for "memload,diskload"). On failure the guest is deleted. */
int lab_launch_guest_disks(const struct lab_agent *a, const char *name, unsigned memory_mib,
                           const char *cmdline, const json_t *disks, int ready_lines,
                           int timeout_ms, struct ferr *e) __attribute__((warn_unused_result));

/* Non-shared storage: prepares dst with POST /v1/incoming carrying the
 * source's spec, "storage": "copy" and the source's "disk_sizes" (the
 * destination creates and exports its own copies), waits for its
 * incoming_uri, then POSTs the migration with "storage": "copy" and limits
 * (borrowed, may be NULL). On 0, id (n bytes) holds the migration id. On
 * failure the prepared destination is deleted. */
int lab_migrate_start_storage(const struct lab_agent *src, const struct lab_agent *dst,
                              const char *name, const json_t *limits, char *id, size_t n,
                              struct ferr *e) __attribute__((warn_unused_result));

/* As lab_migrate_start_storage with a "policy" object (borrowed, may be
 * NULL) in the migration request. */
int lab_migrate_start_storage_policy(const struct lab_agent *src, const struct lab_agent *dst,
                                     const char *name, const json_t *limits,
                                     const json_t *policy, char *id, size_t n, struct ferr *e)
    __attribute__((warn_unused_result));

#endif
