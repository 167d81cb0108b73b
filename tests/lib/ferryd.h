/* ferryd (test helper) — runs the real ferryd binary for integration tests
 * and benchmarks: a temp config, store, log and bootstrap admin token, the
 * daemon in its own process group, requests to it over real HTTP, tokens
 * made with `ferryd --add-token`, and lab agents relaunched so that they
 * register with it.
 *
 *   struct lab L;            // optional: a lab (tests/lib/lab.h)
 *   struct ferryd D;
 *   ferryd_init(&D, &L, &e);               // files under the lab's temp dir
 *   ferryd_write_conf(&D, "heartbeat_interval_ms = %d\n", 500);
 *   ferryd_add_token(&D, "alice", "p1", "member", alice, sizeof(alice));
 *   ferryd_start(&D);                      // waits for /v1/health, reads D.admin
 *   ferryd_relaunch_agent(&D, &L, 0, NULL); // agent 0 now registers with ferryd
 *   ferryd_api(&D, "GET", "/v1/hosts", D.admin, NULL, &o);
 *
 * Benchmarks that write their own config (an ephemeral port, their own
 * settings) use the bare process calls instead of struct ferryd:
 *
 *   static pid_t daemon_pid;
 *   ferryd_guard(&daemon_pid);             // killed at exit / fatal signal
 *   daemon_pid = ferryd_spawn(conf, log);
 *   ferryd_wait_health(url, &daemon_pid, FERRYD_T_START_TIMEOUT_MS);
 *   ferryd_kill(&daemon_pid, SIGTERM, 10000);
 *
 * Leaks: the daemon runs with PR_SET_PDEATHSIG; with a lab its process
 * group is handed to lab_track (the lab's watchdog kills it); without one
 * an atexit handler and the usual fatal signals SIGKILL it (ferryd_guard).
 * Not thread-safe; one or two daemons per process is the intended use. */
#ifndef FERRY_TESTS_FERRYD_H
#define FERRY_TESTS_FERRYD_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lab.h"
#include "util/ferr.h"

#define FERRYD_T_HTTP_TIMEOUT_MS 15000  /* one request to ferryd, ms */
#define FERRYD_T_START_TIMEOUT_MS 10000 /* start until /v1/health answers, ms */
#define FERRYD_T_TOKEN_MAX 300          /* bytes of a token kept here */

struct ferryd {
    char dir[LAB_PATH_MAX];                 /* holds conf, db, log and token files */
    char conf[LAB_PATH_MAX + 32];           /* config file (ferryd_write_conf) */
    char log_path[LAB_PATH_MAX + 32];       /* ferryd's stderr, appended across restarts */
    char admin_path[LAB_PATH_MAX + 32];     /* bootstrap_token_file */
    char agent_tok_path[LAB_PATH_MAX + 32]; /* the agents' ferryd token (role agent) */
    char url[64];                           /* "http://127.0.0.1:PORT" */
    int port;                               /* API port: 10000 + pid % 9000 */
    pid_t pid;                              /* daemon pid = its process group; 0 when none */
    char admin[FERRYD_T_TOKEN_MAX];         /* bootstrap admin token, once started */
    char agent_tok[FERRYD_T_TOKEN_MAX];     /* role-agent token (ferryd_agent_token) */
    struct lab *lab;                        /* tracks the daemon's group, NULL when none */
    int own_dir;                            /* dir made by ferryd_init (ferryd_fini removes it) */
};

/* Path of binary name in $BUILD (default "build"). Two calls may be in use
 * at once (a rotating pair of static buffers). */
const char *ferryd_bin(const char *name);

/* Fills d: with lab non-NULL every file goes under lab->tmp (removed by
 * the lab's watchdog), else under a new /tmp/ferryd-test-XXXXXX. Port
 * 10000 + getpid() % 9000 (below the ephemeral range). Nothing runs yet.
 * Returns 0, or negative with e filled (d then holds no directory). */
int ferryd_init(struct ferryd *d, struct lab *lab, struct ferr *e)
    __attribute__((warn_unused_result));

/* (Re)writes the config file: listen, db and bootstrap_token_file for d,
 * followed by extra (a printf format, may be NULL: nothing more). Takes
 * effect at the next ferryd_start. Returns 0 or -1. */
int ferryd_write_conf(struct ferryd *d, const char *extra, ...)
    __attribute__((format(printf, 2, 3), warn_unused_result));

/* Starts ferryd --config d->conf in its own process group and waits until
 * GET /v1/health answers 200, then reads the bootstrap admin token into
 * d->admin. Returns 0, or -1 (the daemon exited, or did not answer in
 * FERRYD_T_START_TIMEOUT_MS; it is killed then). */
int ferryd_start(struct ferryd *d) __attribute__((warn_unused_result));

/* Sends sig to the daemon's process group and reaps it (SIGTERM: clean
 * shutdown, SIGKILL: crash). No-op when it does not run. */
void ferryd_stop(struct ferryd *d, int sig);

/* ferryd_stop(SIGTERM) then ferryd_start. */
int ferryd_restart(struct ferryd *d) __attribute__((warn_unused_result));

/* Runs `ferryd --config CONF --add-token USER PROJECT ROLES` and copies the
 * printed token to out (n bytes). Works whether or not the daemon runs.
 * Returns 0, or -1 with out "". */
int ferryd_add_token(const struct ferryd *d, const char *user, const char *project,
                     const char *roles, char *out, size_t n) __attribute__((warn_unused_result));

/* Makes a role-agent token (user agent1, project infra) into d->agent_tok
 * and writes it to d->agent_tok_path for the agents' --agent-token-file. */
int ferryd_agent_token(struct ferryd *d) __attribute__((warn_unused_result));

/* One JSON request (body borrowed, may be NULL; token may be NULL).
 * Returns the HTTP status with *out the reply (new reference, caller
 * decrefs; NULL when not JSON) — out may be NULL to drop it — or -1 when
 * the request itself failed (printed on stderr). */
int ferryd_api(const struct ferryd *d, const char *method, const char *path, const char *token,
               const json_t *body, json_t **out);

/* Restarts lab agent i (SIGTERM, reaped) with --coordinator d->url and
 * --agent-token-file d->agent_tok_path, plus --token-file token_file when
 * token_file is non-NULL (the agent then requires that bearer token). The
 * agent re-adopts its guests; it gets its own process group, tracked by the
 * lab. Waits until it answers /v1/health (200, or 401 when it requires a
 * token). Returns 0 or -1. */
int ferryd_relaunch_agent(const struct ferryd *d, struct lab *lab, int i, const char *token_file)
    __attribute__((warn_unused_result));

/* As ferryd_relaunch_agent, with extra agent arguments appended (a
 * NULL-terminated list of at most 16, e.g. "--label", "zone=lab"). The
 * agent's stdout goes to its log too. */
int ferryd_relaunch_agent_args(const struct ferryd *d, struct lab *lab, int i,
                               const char *token_file, const char *const *extra)
    __attribute__((warn_unused_result));

/* Polls GET /v1/migrations/ID with token every 100 ms until its state is
 * state (0), or timeout_ms passes (-1). */
int ferryd_wait_state(const struct ferryd *d, const char *token, const char *id, const char *state,
                      int timeout_ms) __attribute__((warn_unused_result));

/* Polls the migration every 250 ms until it is succeeded, failed or
 * cancelled; on 0 *out is the final record (caller decrefs). -1 on
 * timeout. */
int ferryd_wait_terminal(const struct ferryd *d, const char *token, const char *id, int timeout_ms,
                         json_t **out) __attribute__((warn_unused_result));

/* --- bare process (a config of the caller's own) ---------------------- */

/* Hands the process group *pid (the variable, read when it fires; 0 or
 * less: none) to the safety net: an atexit handler SIGKILLs and reaps it,
 * and SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGSEGV, SIGBUS, SIGABRT and SIGFPE
 * SIGKILL it before the signal's default action. pid must stay valid for
 * the life of the process, or until ferryd_fini of the struct holding it.
 * Returns 0, or -1 when 4 are already guarded. */
int ferryd_guard(pid_t *pid) __attribute__((warn_unused_result));

/* mkdtemp(tmpl) (tmpl "…XXXXXX", filled in place), the directory removed
 * (rm -rf) by the safety net's atexit handler after the guarded daemons
 * are killed; not on a fatal signal. Returns 0, or -1 with errno (ENOSPC:
 * 4 directories already). */
int ferryd_tmpdir(char *tmpl) __attribute__((warn_unused_result));

/* A free loopback TCP port (bound, then released), or -1. */
int ferryd_free_port(void);

/* Starts `$BUILD/ferryd --config conf` in its own process group, with
 * PR_SET_PDEATHSIG and stderr appended to log_path; does not wait. Returns
 * its pid (= its process group), or -1 when fork failed. */
pid_t ferryd_spawn(const char *conf, const char *log_path);

/* Polls GET url/v1/health every 50 ms until it answers 200 (0), the daemon
 * *pid exits (-1, reaped, *pid set to 0) or timeout_ms passes (-1, *pid
 * still running). */
int ferryd_wait_health(const char *url, pid_t *pid, int timeout_ms)
    __attribute__((warn_unused_result));

/* Sends sig to the process group *pid, waits up to grace_ms (in 100 ms
 * steps) for it to exit, then SIGKILLs the group, reaps it and sets *pid
 * to 0. No-op when *pid <= 0. */
void ferryd_kill(pid_t *pid, int sig, int grace_ms);

/* As ferryd_add_token for the config file conf, ferryd's stderr appended
 * to log_path. */
int ferryd_conf_add_token(const char *conf, const char *log_path, const char *user,
                          const char *project, const char *roles, char *out, size_t n)
    __attribute__((warn_unused_result));

/* Prints the last lines lines of ferryd's log on stderr. */
void ferryd_tail_log(const struct ferryd *d, int lines);

/* Kills the daemon (SIGKILL) and, when ferryd_init made the directory and
 * remove_dir is non-zero, removes it. Idempotent. */
void ferryd_fini(struct ferryd *d, int remove_dir);

/* First line of the file at path into buf (n bytes), without its newline.
 * Returns 0, or -1 when unreadable or empty. */
int ferryd_read_line(const char *path, char *buf, size_t n) __attribute__((warn_unused_result));

/* The string member k of o, "" when absent or not a string. */
const char *ferryd_jstr(const json_t *o, const char *k);

/* Sleeps ms milliseconds. */
void ferryd_sleep_ms(int ms);

#endif
