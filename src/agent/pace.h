/* pace — kernel pacing of a QEMU migration connection.
 *
 * QEMU 7.2 enforces max-bandwidth per 100 ms window: it writes the
 * window's quota (bandwidth / 10) as fast as the socket takes it, then
 * sleeps. On a link shared with the guest's network storage each quota
 * leaves at line rate and fills the link's queue, so the guest's storage
 * requests wait behind it even when the average rate is low
 * (docs/BENCH.md impact_net). Pacing the socket makes TCP space its
 * packets at the rate instead (SO_MAX_PACING_RATE; TCP paces internally
 * without the fq qdisc since Linux 4.13).
 *
 * The socket is QEMU's: the agent finds the established IPv4 TCP
 * connection from QEMU's process to the migration URI's host and port
 * (/proc/PID/net/tcp, /proc/PID/fd), takes a copy of the descriptor with
 * pidfd_getfd (Linux 5.6; needs ptrace rights over QEMU: the agent's own
 * child, root or CAP_SYS_PTRACE), sets the rate and closes the copy. */
#ifndef FERRY_AGENT_PACE_H
#define FERRY_AGENT_PACE_H
#include <stdint.h>
#include <sys/types.h>

#include "util/ferr.h"

/* Sets the pacing rate of QEMU process pid's migration connection to the
 * peer named by uri ("tcp:HOST:PORT", HOST an IPv4 literal or a name:
 * then the port alone is matched) to rate_bps bytes/s (0 = no pacing).
 * Returns 0; FERR_NOTFOUND while the connection is not (yet) there;
 * FERR_INVAL for a URI that is not tcp:; -errno when the kernel refuses
 * (e.g. -EPERM from pidfd_getfd, -ENOSYS on an old kernel), with e
 * saying why. Changes nothing in QEMU besides the socket's pacing. */
int pace_set(pid_t pid, const char *uri, uint64_t rate_bps, struct ferr *e)
    __attribute__((warn_unused_result));

#endif
