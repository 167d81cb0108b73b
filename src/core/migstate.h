/* migstate — the migration state machine, table-driven.
 *
 *   requested → preparing → running → switchover → completing → succeeded
 *                              └──→ postcopy ──────────┘
 *   cancel: requested → cancelled; preparing/running/switchover → cancelling
 *           → cancelled. Not legal in postcopy or completing (FERR_STATE).
 *   fail:   any non-terminal state → failed.
 *
 * migstate_rollback() says, for the state in which a failure or a cancel
 * happened, what the shell must undo so that the guest keeps running in
 * exactly one place (DESIGN.md invariant 1).
 */
#ifndef FERRY_CORE_MIGSTATE_H
#define FERRY_CORE_MIGSTATE_H
#include <stdint.h>

enum migstate {
    MIGSTATE_REQUESTED = 0, /* accepted, not admitted yet */
    MIGSTATE_PREPARING,     /* destination being prepared (incoming, NBD) */
    MIGSTATE_RUNNING,       /* disk mirror and/or pre-copy running */
    MIGSTATE_SWITCHOVER,    /* pre-switchover/device: source paused */
    MIGSTATE_POSTCOPY,      /* guest runs on destination, pages pulled */
    MIGSTATE_COMPLETING,    /* QEMU completed; waiting for the destination
                               to confirm the guest runs */
    MIGSTATE_SUCCEEDED,     /* terminal: destination runs, source destroyed */
    MIGSTATE_CANCELLING,    /* cancel requested, rollback under way */
    MIGSTATE_CANCELLED,     /* terminal: source runs, destination cleaned */
    MIGSTATE_FAILED,        /* terminal */
    MIGSTATE__COUNT
};

enum migstate_event {
    MIGEV_ADMIT = 0,      /* scheduler admitted it: requested → preparing */
    MIGEV_PREPARED,       /* destination ready, migrate issued → running */
    MIGEV_SWITCHOVER,     /* QEMU pre-switchover/device → switchover */
    MIGEV_POSTCOPY,       /* QEMU postcopy-active → postcopy */
    MIGEV_COMPLETED,      /* QEMU completed → completing */
    MIGEV_DEST_CONFIRMED, /* destination guest runs → succeeded */
    MIGEV_CANCEL,         /* user or controller abort */
    MIGEV_CANCELLED,      /* rollback of a cancel finished → cancelled */
    MIGEV_FAIL,           /* anything went wrong → failed */
    MIGEV__COUNT
};

/* What the shell must undo when leaving a state through cancel or failure.
 * A bit set. */
enum migstate_rollback_bits {
    MIGRB_NONE = 0,
    MIGRB_CANCEL_MIGRATION = 1u << 0,   /* migrate_cancel on the source */
    MIGRB_CANCEL_BLOCK_JOBS = 1u << 1,  /* block-job-cancel every mirror */
    MIGRB_RESUME_SOURCE = 1u << 2,      /* `cont` the source if paused */
    MIGRB_CLEAN_DEST = 1u << 3,         /* stop dest QEMU, remove NBD export,
                                           delete copied disks */
    MIGRB_POSTCOPY_RECOVER = 1u << 4,   /* source cannot resume: try
                                           postcopy recovery, else the guest
                                           is lost — alert */
    MIGRB_DESTROY_SOURCE = 1u << 5,     /* only on success: destination runs */
};

/* Computes the state after ev in st. Returns 0 and sets *next, or
 * FERR_STATE for an illegal transition (e.g. cancel during post-copy, any
 * event in a terminal state), FERR_INVAL for out-of-range st/ev; *next is
 * unchanged on error. */
int migstate_next(enum migstate st, enum migstate_event ev, enum migstate *next)
    __attribute__((warn_unused_result));

/* Returns the MIGRB_* bits the shell must carry out when a failure or
 * cancel leaves st (for MIGSTATE_COMPLETING → succeeded it is not called;
 * see migstate_on_success). Returns 0 for terminal or unknown states. */
unsigned migstate_rollback(enum migstate st);

/* Returns what success requires: MIGRB_DESTROY_SOURCE. */
unsigned migstate_on_success(void);

/* Returns non-zero for succeeded, cancelled, failed. */
int migstate_is_terminal(enum migstate st);

/* Returns non-zero when the guest may still run on the source after a
 * failure in st (every state before the destination took over). */
int migstate_source_recoverable(enum migstate st);

/* Stable names ("requested", ...; "admit", ...); "unknown" out of range. */
const char *migstate_name(enum migstate st);
const char *migstate_event_name(enum migstate_event ev);

#endif
