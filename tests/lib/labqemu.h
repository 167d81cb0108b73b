/* labqemu — plain QEMU lab guests for tests and benchmarks that drive QEMU
 * directly (without an agent): spawning with the documented flags and a
 * private socket directory, stopping, QMP over a guestcon, the fill
 * checksum diskload uses, and tiny extractors for the flat JSON the guest
 * workloads print on their console.
 *
 *   char dir[LABQ_PATH_MAX];
 *   struct labq g;
 *   if (labq_find_dir(dir, sizeof(dir)) == 0 &&
 *       labq_spawn(&g, dir, "ferry.workload=memload", NULL) == 0) {
 *       ... guestcon_open(&g.con, g.ser_path, 10000) ...
 *       labq_stop(&g);
 *   }
 *
 * Depends on libc, src/util and tests/lib/guestcon only.
 */
#ifndef FERRY_TESTS_LABQEMU_H
#define FERRY_TESTS_LABQEMU_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "guestcon.h"

#define LABQ_PATH_MAX 512

struct labq {
    pid_t pid;      /* QEMU, 0 when not running */
    char dir[64];   /* private temp dir holding the sockets and the log */
    char *ser_path; /* serial console socket (dir/ser.sock) */
    struct guestcon con;
};

/* Writes the directory holding the lab guest (vmlinuz, initrd.img) to out:
 * $BUILD/lab (BUILD defaults to "build"), or build/lab when $BUILD/lab has
 * no kernel (`make lab` always builds into build/lab, e.g. under
 * SANITIZE=1). Returns 0, or -ENOENT when neither holds the guest. */
int labq_find_dir(char *out, size_t n);

/* 1 when path is a non-empty regular file. */
int labq_file_exists(const char *path);

/* Forks and execs argv[0] (PATH search) with stdout and stderr appended to
 * log (created 0600, truncated), dying with the caller (PDEATHSIG). Returns
 * the child's pid or -errno. */
pid_t labq_exec_logged(char *const argv[], const char *log);

/* Starts QEMU (TCG, pc, 256 MiB + 4 KiB as docs/LAB.md explains, 1 vCPU)
 * on the lab guest in lab_dir with the kernel command line
 * "console=ttyS0 quiet panic=-1 <params>", its serial console and QMP as
 * unix sockets in a private directory (g->dir/ser.sock, g->dir/qmp.sock),
 * its output in g->dir/qemu.log, and extra arguments appended (a
 * NULL-terminated list, or NULL). The console is not connected yet.
 * Returns 0 or a negative code; on failure g holds nothing. */
int labq_spawn(struct labq *g, const char *lab_dir, const char *params, const char *const *extra);

/* Kills QEMU, closes the console and removes g->dir with the files QEMU
 * and these helpers put there (sockets named *.sock, qemu.log). Safe on a
 * stopped or zeroed g (con.fd must be -1 or open). */
void labq_stop(struct labq *g);

/* Copies QEMU's log to stderr (for a failed case). */
void labq_dump_log(const struct labq *g);

/* Connects q to g's QMP socket and negotiates capabilities. Returns 0 or
 * a negative code (q closed then). */
int labq_qmp_open(const struct labq *g, struct guestcon *q, int timeout_ms);

/* Sends one QMP command (a JSON object on one line) and waits for its
 * answer, skipping events. Returns 0 when the answer is a "return" (*out
 * gets the line after its opening brace; caller frees), FERR_PEER on an
 * "error" answer (printed to stderr), or a guestcon error. */
int labq_qmp_cmd(struct guestcon *q, const char *json, int timeout_ms, char **out);

/* Sends {"execute": cmd, "arguments": {"uri": uri}} ("migrate",
 * "migrate-incoming") and drops the answer. Returns as labq_qmp_cmd. */
int labq_qmp_uri(struct guestcon *q, const char *cmd, const char *uri, int timeout_ms);

/* Polls query-migrate on q (each answer within timeout_ms) every 200 ms,
 * at most tries times, until the migration completed: 0. Else, with why
 * (n bytes) saying what happened: a QMP error (its negative code), the
 * migration failed or was cancelled (FERR_PEER), or still not completed
 * (FERR_TIMEOUT). */
int labq_migrate_wait(struct guestcon *q, int tries, int timeout_ms, char *why, size_t n);

/* FNV-1a over the first span bytes of the image file at path, read as
 * 64-bit little-endian words: diskload's span checksum recomputed on the
 * host. Returns 0, -errno, or -EIO when the file is shorter than span. */
int labq_disk_checksum(const char *path, uint64_t span, uint64_t *out);

/* The flat JSON on a workload's console line ("FERRY-RESULT {...}"):
 * the number after "\"key\":", or def when absent or not a number. */
double labq_json_num(const char *json, const char *key, double def);

/* 1/0 for "\"key\":true/false", -1 when absent. */
int labq_json_bool(const char *json, const char *key);

/* Copies the string value of "\"key\":\"...\"" into out (n bytes,
 * truncated); "" when absent. */
void labq_json_str(const char *json, const char *key, char *out, size_t n);

#endif
