/* migstate — table-driven migration state machine. */
#include "core/migstate.h"

#include "util/ferr.h"

#define X MIGSTATE__COUNT /* illegal */

/* next[state][event]; X marks an illegal transition. */
static const unsigned char next_tab[MIGSTATE__COUNT][MIGEV__COUNT] = {
    /*                    ADMIT               PREPARED          SWITCHOVER
                          POSTCOPY            COMPLETED         DEST_CONFIRMED
                          CANCEL              CANCELLED         FAIL */
    [MIGSTATE_REQUESTED] = {MIGSTATE_PREPARING, X, X,
                            X, X, X,
                            MIGSTATE_CANCELLED, X, MIGSTATE_FAILED},
    [MIGSTATE_PREPARING] = {X, MIGSTATE_RUNNING, X,
                            X, X, X,
                            MIGSTATE_CANCELLING, X, MIGSTATE_FAILED},
    /* running may complete directly (no pause-before-switchover) */
    [MIGSTATE_RUNNING] = {X, X, MIGSTATE_SWITCHOVER,
                          MIGSTATE_POSTCOPY, MIGSTATE_COMPLETING, X,
                          MIGSTATE_CANCELLING, X, MIGSTATE_FAILED},
    [MIGSTATE_SWITCHOVER] = {X, X, X,
                             X, MIGSTATE_COMPLETING, X,
                             MIGSTATE_CANCELLING, X, MIGSTATE_FAILED},
    /* post-copy cannot be cancelled: the destination owns the guest */
    [MIGSTATE_POSTCOPY] = {X, X, X,
                           X, MIGSTATE_COMPLETING, X,
                           X, X, MIGSTATE_FAILED},
    /* QEMU finished: too late to cancel, wait for the destination */
    [MIGSTATE_COMPLETING] = {X, X, X,
                             X, X, MIGSTATE_SUCCEEDED,
                             X, X, MIGSTATE_FAILED},
    [MIGSTATE_SUCCEEDED] = {X, X, X, X, X, X, X, X, X},
    /* a second cancel is illegal; QEMU may still complete under us */
    [MIGSTATE_CANCELLING] = {X, X, X,
                             X, MIGSTATE_COMPLETING, X,
                             X, MIGSTATE_CANCELLED, MIGSTATE_FAILED},
    [MIGSTATE_CANCELLED] = {X, X, X, X, X, X, X, X, X},
    [MIGSTATE_FAILED] = {X, X, X, X, X, X, X, X, X},
};

/* What leaving each state by failure or cancel must undo. */
static const unsigned rollback_tab[MIGSTATE__COUNT] = {
    [MIGSTATE_REQUESTED] = MIGRB_NONE,
    [MIGSTATE_PREPARING] = MIGRB_CLEAN_DEST,
    [MIGSTATE_RUNNING] = MIGRB_CANCEL_MIGRATION | MIGRB_CANCEL_BLOCK_JOBS |
                         MIGRB_RESUME_SOURCE | MIGRB_CLEAN_DEST,
    [MIGSTATE_SWITCHOVER] = MIGRB_CANCEL_MIGRATION | MIGRB_CANCEL_BLOCK_JOBS |
                            MIGRB_RESUME_SOURCE | MIGRB_CLEAN_DEST,
    [MIGSTATE_POSTCOPY] = MIGRB_POSTCOPY_RECOVER,
    /* QEMU completed but the destination did not confirm: the source is
     * paused (postmigrate) and still whole, so it resumes. */
    [MIGSTATE_COMPLETING] = MIGRB_RESUME_SOURCE | MIGRB_CLEAN_DEST,
    [MIGSTATE_SUCCEEDED] = MIGRB_NONE,
    [MIGSTATE_CANCELLING] = MIGRB_CANCEL_MIGRATION | MIGRB_CANCEL_BLOCK_JOBS |
                            MIGRB_RESUME_SOURCE | MIGRB_CLEAN_DEST,
    [MIGSTATE_CANCELLED] = MIGRB_NONE,
    [MIGSTATE_FAILED] = MIGRB_NONE,
};

static const char *const state_names[MIGSTATE__COUNT] = {
    "requested", "preparing",  "running",    "switchover", "postcopy",
    "completing", "succeeded", "cancelling", "cancelled",  "failed",
};

static const char *const event_names[MIGEV__COUNT] = {
    "admit",     "prepared", "switchover", "postcopy", "completed",
    "dest_confirmed", "cancel", "cancelled", "fail",
};

int migstate_next(enum migstate st, enum migstate_event ev, enum migstate *next)
{
    if ((unsigned)st >= MIGSTATE__COUNT || (unsigned)ev >= MIGEV__COUNT || !next)
        return FERR_INVAL;
    unsigned n = next_tab[st][ev];
    if (n == X)
        return FERR_STATE;
    *next = (enum migstate)n;
    return 0;
}

unsigned migstate_rollback(enum migstate st)
{
    if ((unsigned)st >= MIGSTATE__COUNT)
        return 0;
    return rollback_tab[st];
}

unsigned migstate_on_success(void)
{
    return MIGRB_DESTROY_SOURCE;
}

int migstate_is_terminal(enum migstate st)
{
    return st == MIGSTATE_SUCCEEDED || st == MIGSTATE_CANCELLED || st == MIGSTATE_FAILED;
}

int migstate_source_recoverable(enum migstate st)
{
    return (unsigned)st < MIGSTATE__COUNT && st != MIGSTATE_POSTCOPY &&
           st != MIGSTATE_SUCCEEDED;
}

const char *migstate_name(enum migstate st)
{
    return (unsigned)st < MIGSTATE__COUNT ? state_names[st] : "unknown";
}

const char *migstate_event_name(enum migstate_event ev)
{
    return (unsigned)ev < MIGEV__COUNT ? event_names[ev] : "unknown";
}
