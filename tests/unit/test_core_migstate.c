/* Migration state machine: legal paths, illegal transitions, rollbacks. */
#include "../lib/test.h"
#include "core/migstate.h"
#include "util/ferr.h"

/* Proves: every listed transition gives the listed result, including the
 * illegal ones (cancel in post-copy or completing, anything after a
 * terminal state). */
static void t_table(void)
{
    static const struct {
        enum migstate from;
        enum migstate_event ev;
        int rc;
        enum migstate to;
    } c[] = {
        {MIGSTATE_REQUESTED, MIGEV_ADMIT, 0, MIGSTATE_PREPARING},
        {MIGSTATE_PREPARING, MIGEV_PREPARED, 0, MIGSTATE_RUNNING},
        {MIGSTATE_RUNNING, MIGEV_SWITCHOVER, 0, MIGSTATE_SWITCHOVER},
        {MIGSTATE_SWITCHOVER, MIGEV_COMPLETED, 0, MIGSTATE_COMPLETING},
        {MIGSTATE_RUNNING, MIGEV_POSTCOPY, 0, MIGSTATE_POSTCOPY},
        {MIGSTATE_POSTCOPY, MIGEV_COMPLETED, 0, MIGSTATE_COMPLETING},
        {MIGSTATE_COMPLETING, MIGEV_DEST_CONFIRMED, 0, MIGSTATE_SUCCEEDED},
        {MIGSTATE_REQUESTED, MIGEV_CANCEL, 0, MIGSTATE_CANCELLED},
        {MIGSTATE_RUNNING, MIGEV_CANCEL, 0, MIGSTATE_CANCELLING},
        {MIGSTATE_CANCELLING, MIGEV_CANCELLED, 0, MIGSTATE_CANCELLED},
        {MIGSTATE_POSTCOPY, MIGEV_FAIL, 0, MIGSTATE_FAILED},
        {MIGSTATE_POSTCOPY, MIGEV_CANCEL, FERR_STATE, MIGSTATE_REQUESTED},
        {MIGSTATE_COMPLETING, MIGEV_CANCEL, FERR_STATE, MIGSTATE_REQUESTED},
        {MIGSTATE_CANCELLING, MIGEV_CANCEL, FERR_STATE, MIGSTATE_REQUESTED},
        {MIGSTATE_SWITCHOVER, MIGEV_POSTCOPY, FERR_STATE, MIGSTATE_REQUESTED},
        {MIGSTATE_REQUESTED, MIGEV_COMPLETED, FERR_STATE, MIGSTATE_REQUESTED},
        {MIGSTATE_SUCCEEDED, MIGEV_FAIL, FERR_STATE, MIGSTATE_REQUESTED},
        {MIGSTATE_CANCELLED, MIGEV_ADMIT, FERR_STATE, MIGSTATE_REQUESTED},
        {MIGSTATE_FAILED, MIGEV_CANCEL, FERR_STATE, MIGSTATE_REQUESTED},
        {(enum migstate)99, MIGEV_ADMIT, FERR_INVAL, MIGSTATE_REQUESTED},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        enum migstate next = MIGSTATE_REQUESTED;
        int rc = migstate_next(c[i].from, c[i].ev, &next);
        CHECK(rc == c[i].rc, "%s + %s: rc %d want %d", migstate_name(c[i].from),
              migstate_event_name(c[i].ev), rc, c[i].rc);
        CHECK(next == c[i].to, "%s + %s: -> %s want %s", migstate_name(c[i].from),
              migstate_event_name(c[i].ev), migstate_name(next), migstate_name(c[i].to));
    }
}

/* Proves: terminal states accept no event at all, and FAIL is legal from
 * every non-terminal state (a failure can always be recorded). */
static void t_terminal_and_fail(void)
{
    for (int s = 0; s < MIGSTATE__COUNT; s++) {
        enum migstate next;
        if (migstate_is_terminal((enum migstate)s)) {
            for (int e = 0; e < MIGEV__COUNT; e++)
                CHECK(migstate_next((enum migstate)s, (enum migstate_event)e, &next) ==
                          FERR_STATE, "%s accepts %s", migstate_name((enum migstate)s),
                      migstate_event_name((enum migstate_event)e));
        } else {
            CHECK(migstate_next((enum migstate)s, MIGEV_FAIL, &next) == 0 &&
                      next == MIGSTATE_FAILED, "fail from %s", migstate_name((enum migstate)s));
        }
    }
}

/* Proves: rollback resumes the source in every state before the destination
 * took over, cleans the destination once it was prepared, never resumes the
 * source in post-copy (recover instead), and success destroys the source. */
static void t_rollback(void)
{
    static const struct {
        enum migstate st;
        unsigned must, mustnt;
    } r[] = {
        {MIGSTATE_REQUESTED, 0, MIGRB_RESUME_SOURCE | MIGRB_CLEAN_DEST},
        {MIGSTATE_PREPARING, MIGRB_CLEAN_DEST, MIGRB_DESTROY_SOURCE},
        {MIGSTATE_RUNNING, MIGRB_CANCEL_MIGRATION | MIGRB_CANCEL_BLOCK_JOBS |
                               MIGRB_RESUME_SOURCE | MIGRB_CLEAN_DEST, MIGRB_DESTROY_SOURCE},
        {MIGSTATE_SWITCHOVER, MIGRB_RESUME_SOURCE | MIGRB_CLEAN_DEST, MIGRB_DESTROY_SOURCE},
        {MIGSTATE_COMPLETING, MIGRB_RESUME_SOURCE | MIGRB_CLEAN_DEST, MIGRB_DESTROY_SOURCE},
        {MIGSTATE_POSTCOPY, MIGRB_POSTCOPY_RECOVER,
         MIGRB_RESUME_SOURCE | MIGRB_CLEAN_DEST | MIGRB_DESTROY_SOURCE},
    };
    for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
        unsigned b = migstate_rollback(r[i].st);
        CHECK((b & r[i].must) == r[i].must, "%s: bits %#x lack %#x",
              migstate_name(r[i].st), b, r[i].must);
        CHECK((b & r[i].mustnt) == 0, "%s: bits %#x include %#x", migstate_name(r[i].st), b,
              r[i].mustnt);
    }
    CHECK(migstate_on_success() == MIGRB_DESTROY_SOURCE, "success");
    CHECK(!migstate_source_recoverable(MIGSTATE_POSTCOPY), "postcopy recoverable");
    CHECK(migstate_source_recoverable(MIGSTATE_SWITCHOVER), "switchover not recoverable");
}

int main(void)
{
    test_run("migstate: transition table", t_table);
    test_run("migstate: terminal states and fail", t_terminal_and_fail);
    test_run("migstate: rollback per state", t_rollback);
    return test_done();
}
