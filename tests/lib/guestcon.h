/* guestcon — a small blocking client for a lab guest's serial console, for
 * tests and benchmarks. QEMU exposes the console as a unix socket
 * (-chardev socket,...,server=on,wait=off); the guest's workload speaks the
 * line protocol of docs/LAB.md on it: commands in, "FERRY-..." lines out.
 *
 *   struct guestcon gc;
 *   if (guestcon_open(&gc, "/tmp/x/ser.sock", 5000) == 0) {
 *       char *rest;
 *       if (guestcon_expect(&gc, "FERRY-READY ", 120000, &rest) == 0) free(rest);
 *       guestcon_close(&gc);
 *   }
 *
 * Depends on libc and src/util only (it is linked into every test binary).
 */
#ifndef FERRY_TESTS_GUESTCON_H
#define FERRY_TESTS_GUESTCON_H
#include <stddef.h>
#include <stdio.h>

#define GUESTCON_LINE_MAX 4096 /* bytes; longer console lines are dropped */

struct guestcon {
    int fd;       /* connected socket, -1 when closed */
    char *buf;    /* bytes received but not yet consumed as lines */
    size_t len;   /* bytes in buf */
    int skipping; /* dropping the rest of an over-long line */
    FILE *log;    /* borrowed; when non-NULL every received line is copied
                     here prefixed with "guest: " (for test diagnostics) */
};

/* Connects gc to the unix socket at path, retrying until it accepts or
 * timeout_ms has passed (QEMU creates the socket shortly after it starts).
 * Returns 0, FERR_TIMEOUT, FERR_TOOBIG (path longer than sun_path) or
 * -errno. On failure gc holds no resources and guestcon_close is optional. */
int guestcon_open(struct guestcon *gc, const char *path, int timeout_ms)
    __attribute__((warn_unused_result));

/* Sends line followed by "\n". Returns 0, FERR_CLOSED or -errno; the
 * connection stays usable only after 0. */
int guestcon_send(struct guestcon *gc, const char *line) __attribute__((warn_unused_result));

/* Reads console lines until one starts with prefix (a "\r" the guest's tty
 * adds is stripped first), discarding the lines before it. On 0, *rest_out
 * is a NUL-terminated copy of what follows the prefix on that line; the
 * caller frees it with free(). Returns FERR_TIMEOUT when no such line came
 * within timeout_ms, FERR_CLOSED when the guest end closed, or -errno;
 * *rest_out is NULL then. Lines over GUESTCON_LINE_MAX are dropped. An
 * empty prefix takes the next line, whatever it is. */
int guestcon_expect(struct guestcon *gc, const char *prefix, int timeout_ms, char **rest_out)
    __attribute__((warn_unused_result));

/* guestcon_send(line), then guestcon_expect(prefix, timeout_ms, rest_out):
 * one command and its answer. Same results and ownership as those two. */
int guestcon_command(struct guestcon *gc, const char *line, const char *prefix, int timeout_ms,
                     char **rest_out) __attribute__((warn_unused_result));

/* Closes the connection and frees the buffer; safe on a closed gc. */
void guestcon_close(struct guestcon *gc);

#endif
