/* agent — ferry-agent's state: the QEMU instances of one host and the
 * outgoing migrations it drives. One event loop (libevent) runs everything;
 * nothing here blocks. Modules: instance.c (QEMU processes, QMP, serial
 * console), migration.c (outgoing pre-copy), storage.c (non-shared disks:
 * copies, NBD exports, mirrors), api.c (HTTP/JSON), peer.c (requests to
 * other agents). */
#ifndef FERRY_AGENT_AGENT_H
#define FERRY_AGENT_AGENT_H
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent/spec.h"
#include "core/sample.h"
#include "qmp/qmp_conn.h"
#include "util/ferr.h"

#define AGENT_CONSOLE_MAX (1u << 20) /* bytes of serial output kept per guest */
#define AGENT_SAMPLES_MAX 40000      /* samples kept per migration (2.7 h at 4 Hz) */
#define AGENT_MIGRATIONS_KEPT 64     /* finished migrations remembered */
#define AGENT_INSTANCES_MAX 64       /* guests per agent */
#define AGENT_SAMPLE_MS 250          /* query-migrate period, ms (4 Hz) */
#define AGENT_QMP_TIMEOUT_MS 10000   /* per QMP command, ms */
#define AGENT_ADOPT_TIMEOUT_MS 10000 /* adopt: QMP handshake must finish within, ms */

enum inst_state {
    INST_STARTING = 1, /* QEMU spawned, QMP not ready yet */
    INST_INCOMING,     /* waiting for an incoming migration */
    INST_RUNNING,      /* guest runs */
    INST_PAUSED,       /* guest paused (QEMU run state not "running") */
    INST_EXITED,       /* QEMU gone; object about to be freed */
};

struct agent;
struct migration;
struct qmp_holder;
struct mig_control; /* control.h */
struct ctl_policy;  /* control.h */
struct mig_storage; /* storage.h */
struct inst_impact; /* impact.h */

struct instance {
    struct agent *ag;           /* owner, borrowed */
    struct instance *next;      /* agent's list */
    struct inst_spec spec;      /* what runs */
    char *dir;                  /* state dir of this guest */
    char *qmp_path;             /* QMP socket path */
    char *serial_path;          /* serial console socket path */
    pid_t pid;                  /* QEMU's pid, 0 when unknown */
    bool is_child;              /* spawned by this agent process (reaped by us) */
    bool adopted;               /* found running, not spawned by this process */
    enum inst_state state;      /* see enum */
    char run_status[32];        /* QEMU's last query-status "status" */
    bool incoming;              /* started with -incoming defer */
    bool niced;                 /* runs at the agent's incoming_nice until
                                   it owns the guest */
    char incoming_uri[128];     /* tcp:HOST:PORT once listening, "" before */
    bool postcopy;              /* incoming: postcopy-ram is (to be) set before
                                   migrate-incoming; set right after inst_launch */
    char incoming_status[32];   /* last MIGRATION event status on this side */
    char last_error[320];       /* why preparation/launch failed, "" if not */
    struct qmp_holder *qmp;     /* owned (freed after its close); NULL if none */
    bool qmp_ready;             /* handshake done */
    struct event *timer;        /* connect retries, then 1 s status poll */
    unsigned connect_tries;     /* attempts to reach QMP/serial */
    struct bufferevent *ser;    /* serial console connection, owned */
    char *console;              /* output kept, console_len bytes */
    size_t console_len;         /* bytes in console */
    uint64_t console_base;      /* absolute offset of console[0] */
    int console_fd;             /* serial.log append fd, -1 when none */
    struct migration *mig;      /* outgoing migration in progress, borrowed */
    bool destroying;            /* quit requested */
    uint64_t started_ms;        /* monotonic ms at launch/adopt */
    bool storage_copy;          /* incoming with "storage": "copy": the disks were
                                   created here and are exported over NBD */
    bool disks_owned;           /* the disk files are this agent's copies: removed
                                   when the instance goes before its incoming
                                   migration completed */
    int nbd_port;               /* NBD server port on listen_addr, 0 when none */
    uint64_t disk_size[SPEC_DISKS_MAX]; /* virtual size per spec disk, bytes (query-block),
                                           0 unknown */
    struct inst_impact *imp;    /* disk impact sampler (impact.c), owned; NULL
                                   before the first poll */
    struct evhttp_request *adopt_req; /* POST /v1/adopt answered once the QMP handshake
                                         succeeds or fails; borrowed, NULL when none */
};

enum mig_state {
    MIGS_STARTING = 1, /* capabilities/parameters being set */
    MIGS_RUNNING,      /* QEMU migrating */
    MIGS_CONFIRMING,   /* QEMU completed; waiting for the destination to run */
    MIGS_CANCELLING,   /* migrate_cancel sent */
    MIGS_SUCCEEDED,    /* destination runs, source quit */
    MIGS_FAILED,       /* source runs on; destination cleaned */
    MIGS_CANCELLED,    /* cancelled on request; source runs on */
    MIGS_POSTCOPY,     /* QEMU postcopy-active: the guest runs on the
                          destination; no cancel, no rollback */
};

/* Pass-1 dirty rate measurement (calc-dirty-rate) of a migration. */
enum mig_dirtyrate {
    MIG_DR_NONE = 0,   /* not asked */
    MIG_DR_MEASURING,  /* calc-dirty-rate accepted; polling query-dirty-rate */
    MIG_DR_MEASURED,   /* dirty_hint_pps holds the result */
    MIG_DR_REFUSED,    /* QEMU refused or failed; dirty_hint_pps stays 0 */
};

struct migration {
    struct agent *ag;              /* owner, borrowed */
    struct migration *next;        /* agent's list, newest first */
    char id[40];                   /* "m-<agentname>-<n>" */
    char inst_name[64];            /* instance migrated */
    struct instance *inst;         /* source instance; NULL once gone */
    char dest_uri[160];            /* QEMU migration URI, tcp:HOST:PORT */
    char dest_agent[160];          /* http://HOST:PORT of the destination agent */
    struct mig_limits limits;      /* requested limits */
    enum mig_state state;          /* see enum */
    char error[256];               /* reason of failure/cancel, "" otherwise */
    char qemu_status[32];          /* last query-migrate status */
    uint64_t start_ms;             /* monotonic ms at request */
    uint64_t end_ms;               /* monotonic ms at the final state, 0 before */
    int64_t started_at;            /* wall clock s at request */
    struct event *tick;            /* sampling timer */
    bool query_inflight;           /* a query-migrate is outstanding */
    bool timeout_fired;            /* completion timeout triggered the cancel */
    bool cancel_requested;         /* cancel asked through the API */
    unsigned confirm_tries;        /* destination confirmation attempts */
    unsigned complete_requeries;   /* queries waiting for QEMU's final times */
    struct mig_sample *samples;    /* kept samples, n_samples of them */
    size_t n_samples;              /* entries in samples */
    size_t cap_samples;            /* allocated entries */
    uint64_t samples_dropped;      /* samples not kept (cap reached) */
    struct mig_sample last;        /* newest sample */
    uint64_t total_time_ms;        /* QEMU's total-time at completion */
    uint64_t downtime_ms;          /* QEMU's downtime at completion */
    uint64_t setup_time_ms;        /* QEMU's setup-time */
    uint64_t migrate_t_ms;         /* ms after the request when `migrate` was
                                      sent: QEMU's total-time counts from
                                      there; 0 before */
    double final_bps;              /* this move's final stage: RAM bytes sent
                                      after the guest stopped / QEMU's
                                      downtime, bytes/s; 0 unknown */
    double link_bps;               /* link rate given to the estimator for
                                      the final stage (earlier moves' final
                                      stages to the same host), bytes/s; 0
                                      none */
    unsigned link_moves;           /* moves behind link_bps */
    uint64_t ram_transferred;      /* bytes sent in total */
    uint64_t iterations;           /* dirty-sync-count at completion */
    unsigned refs;                 /* outstanding async operations */
    struct mig_control *ctl;       /* estimator + controller (control.c), owned */
    bool postcopy;                 /* postcopy-ram negotiated on both sides */
    char postcopy_note[160];       /* why post-copy is off, "" when on or not asked */
    bool throttle_dormant;         /* auto-converge on from the start with the
                                      throttle capped at 1 % until the
                                      controller raises it (control.c) */
    enum mig_dirtyrate dr_state;   /* calc-dirty-rate progress */
    uint64_t dr_poll_ms;           /* next query-dirty-rate at (ms since start) */
    bool dr_inflight;              /* a query-dirty-rate is outstanding */
    uint64_t dirty_hint_pps;       /* measured pass-1 dirty rate, pages/s; 0 unknown */
    char dr_note[160];             /* why the measurement failed, "" otherwise */
    struct census *census;         /* pre-migration memory census (census.h),
                                      owned; NULL until taken or when it failed */
    char census_note[160];         /* why the census failed, "" otherwise */
    struct mig_storage *st;        /* non-shared disk copy (storage.c), owned;
                                      NULL for memory-only migrations */
    bool mem_started;              /* QEMU accepted `migrate` */
    bool continue_sent;            /* migrate-continue sent: past switchover */
    bool storage_failed;           /* a disk mirror failed while memory migrated:
                                      the cancel that follows ends it failed */
    bool pace_on;                  /* limits.pacing: the socket carries paced_bps */
    bool pace_given_up;            /* the kernel refused pacing (pace_note says why) */
    bool pace_default;             /* pacing on because of an impact budget
                                      (the request did not say pacing) */
    uint64_t paced_bps;            /* pacing rate in force, bytes/s (0 = none) */
    uint64_t pace_t_ms;            /* ms after the request it was first set, 0 before */
    char pace_note[160];           /* why pacing is not in force, "" when it is */
};

struct agent {
    struct event_base *base;        /* the loop */
    struct evhttp *http;            /* API server */
    char *name;                     /* host name of this agent */
    char *listen_addr;              /* IPv4 address the API and migrations bind to */
    int port;                       /* API port */
    char *state_dir;                /* root of per-guest dirs */
    char *qemu;                     /* qemu-system-x86_64 path */
    char *lab_kernel;               /* default kernel, may be NULL */
    char *lab_initrd;               /* default initrd, may be NULL */
    char *token;                    /* bearer token required on the API, NULL = none */
    int incoming_nice;              /* CPU nice of an incoming QEMU until it
                                       owns the guest (0: as the agent) */
    struct instance *instances;     /* live guests */
    unsigned n_instances;           /* entries in instances */
    struct migration *migrations;   /* newest first */
    unsigned n_migrations;          /* entries in migrations */
    uint64_t mig_seq;               /* ids */
    struct event *sigchld;          /* SIGCHLD handler */
    struct event *sigterm;          /* SIGTERM handler */
    struct event *sigint;           /* SIGINT handler */
};

/* Returns monotonic time in ms. */
uint64_t agent_now_ms(void);

/* Returns true when QEMU processes of this agent can use userfaultfd
 * (post-copy): the agent runs as root, or vm.unprivileged_userfaultfd is 1.
 * Otherwise writes why (one sentence) to why (n bytes) and returns false. */
bool agent_postcopy_possible(char *why, size_t n);

/* --- instance.c --- */

/* Spawns QEMU for spec (copied) — as a normal guest, or with incoming
 * waiting for a migration on the agent's address (the URI appears in
 * incoming_uri once QEMU listens). Fails with FERR_EXISTS when the name is
 * taken, FERR_TOOBIG over AGENT_INSTANCES_MAX, or -errno when the spawn
 * fails; then nothing is left behind. */
int inst_launch(struct agent *ag, const struct inst_spec *spec, bool incoming,
                struct instance **out, struct ferr *e) __attribute__((warn_unused_result));

/* Adopts a running QEMU by its QMP socket path: finds its pid (SO_PEERCRED)
 * and rebuilds its spec from /proc/PID/cmdline. serial_path may be NULL.
 * On failure nothing changes. On success the QMP handshake is still under
 * way: a caller that sets (*out)->adopt_req gets that request answered with
 * the instance once QMP is ready, or with an error (502/504) when the peer
 * is not a QEMU or stays silent for AGENT_ADOPT_TIMEOUT_MS — the instance is
 * dropped again then. */
int inst_adopt(struct agent *ag, const char *qmp_path, const char *serial_path,
               struct instance **out, struct ferr *e) __attribute__((warn_unused_result));

/* Re-adopts every guest found under the state dir (after an agent restart).
 * Returns the count adopted. */
int inst_adopt_all(struct agent *ag);

/* Returns the instance called name, or NULL. */
struct instance *inst_find(struct agent *ag, const char *name);

/* Asks QEMU to quit and removes the instance once it has exited (SIGKILL
 * after a grace period). Idempotent. */
void inst_destroy(struct instance *in, const char *why);

/* Writes line plus "\n" to the guest's serial console. Fails with
 * FERR_STATE when the console is not connected. */
int inst_console_write(struct instance *in, const char *line, struct ferr *e)
    __attribute__((warn_unused_result));

/* Returns a new JSON object describing in (caller decrefs). */
json_t *inst_to_json(const struct instance *in);

/* Called from the SIGCHLD handler: reaps children and retires instances. */
void inst_reap(struct agent *ag);

/* Reply of inst_qmp: in is NULL when the instance went away meanwhile;
 * err/ret as in qmp_cmd_cb (ret borrowed for the call). */
typedef void (*inst_qmp_cb)(struct instance *in, const struct ferr *err, json_t *ret, void *ctx);

/* Sends a QMP command to the guest (see qmp_conn_cmd); FERR_STATE when QMP
 * is not ready. args ownership is taken in every case. On success cb fires
 * exactly once later, even if the instance is retired first. */
int inst_qmp(struct instance *in, const char *cmd, json_t *args, inst_qmp_cb cb, void *ctx)
    __attribute__((warn_unused_result));

/* Name of a state. */
const char *inst_state_name(enum inst_state s);

/* --- migration.c --- */

/* Starts an outgoing migration of instance in to dest_uri (a prepared
 * destination at the agent dest_agent) under limits. Fails with FERR_STATE
 * when the instance is not running or already migrating. policy (borrowed,
 * NULL = "none") selects the convergence controller (control.h). */
int mig_start(struct agent *ag, struct instance *in, const char *dest_uri,
              const char *dest_agent, const struct mig_limits *limits,
              const struct ctl_policy *policy, struct migration **out, struct ferr *e)
    __attribute__((warn_unused_result));

/* As mig_start; with storage_copy the instance's disks are mirrored to the
 * destination's NBD exports first (storage.h), and the memory migration
 * runs with pause-before-switchover. FERR_STATE when storage_copy is asked
 * for an instance without disks. */
int mig_start_storage(struct agent *ag, struct instance *in, const char *dest_uri,
                      const char *dest_agent, const struct mig_limits *limits,
                      const struct ctl_policy *policy, bool storage_copy,
                      struct migration **out, struct ferr *e)
    __attribute__((warn_unused_result));

/* Changes the mirror speed of a migration's disks (block-job-set-speed on
 * every running mirror; later mirrors start at it). FERR_STATE when the
 * migration has ended; FERR_INVAL for a speed out of range. */
int mig_set_mirror_speed(struct migration *m, uint64_t bps, struct ferr *e)
    __attribute__((warn_unused_result));

/* Called by instance.c for every QMP event of a migrating source guest
 * (data borrowed, may be NULL). */
void mig_on_event(struct migration *m, const char *event, json_t *data);

/* storage.c → migration.c: every mirror is READY (start the memory
 * migration); the jobs ended consistently at pre-switchover (send
 * migrate-continue); a mirror failed (why: one sentence). */
void mig__storage_ready(struct migration *m);
void mig__storage_switched(struct migration *m);
void mig__storage_failed(struct migration *m, const char *why);

/* storage.c → migration.c: keep a sample built from the block jobs alone
 * (before the memory migration runs) and feed it to the controller. */
void mig__storage_sample(struct migration *m);

/* Requests cancellation. FERR_STATE when the migration already ended or is
 * confirming (the guest is past the point of no return). */
int mig_cancel(struct migration *m, struct ferr *e) __attribute__((warn_unused_result));

/* Returns the migration with this id, or NULL. */
struct migration *mig_find(struct agent *ag, const char *id);

/* Returns a new JSON object for m; with samples, every kept sample too. */
json_t *mig_to_json(const struct migration *m, bool samples);

/* Returns a JSON object for one sample (caller decrefs). */
json_t *mig_sample_to_json(const struct mig_sample *s);

/* Called when the source instance goes away under a migration. */
void mig_instance_gone(struct migration *m);

/* Name of a migration state. */
const char *mig_state_name(enum mig_state s);

/* --- api.c --- */

/* Routes every request of the agent's API. */
void api_handle(struct evhttp_request *req, void *arg);

/* --- peer.c --- */

typedef void (*peer_cb)(int status, json_t *body, const struct ferr *err, void *arg);

/* Sends method path (JSON body borrowed, may be NULL) to the agent at url
 * ("http://HOST:PORT") without blocking; cb fires exactly once with the
 * HTTP status and parsed body (borrowed for the call, may be NULL), or with
 * err set when the request failed (status 0). */
void peer_request(struct agent *ag, const char *url, const char *method, const char *path,
                  const json_t *body, int timeout_s, peer_cb cb, void *arg);

#endif
