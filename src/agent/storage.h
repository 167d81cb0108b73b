/* storage — non-shared disk migration (DESIGN.md "Non-shared disks"; the
 * sequence libvirt's qemu_migration.c uses).
 *
 * Destination (POST /v1/incoming with "storage": "copy"): the agent creates
 * an empty image per disk under its state dir with the source's virtual
 * size, starts QEMU on those copies, then nbd-server-start on its own
 * address and block-export-add (nbd, writable, export name = disk id) per
 * disk before migrate-incoming. After the incoming migration completed it
 * sends nbd-server-stop and keeps the files; if the instance goes away
 * before that, its copies are removed.
 *
 * Source: blockdev-add (driver nbd, node "nbd-ID") + blockdev-mirror (sync
 * full, job "mirror-ID", speed from limits.mirror_speed_bps) per disk; wait
 * for BLOCK_JOB_READY on every disk (events, and query-block-jobs at each
 * tick, whose len/offset become the samples' disk_total/disk_done); then
 * the memory migration with pause-before-switchover; at pre-switchover
 * block-job-cancel each job (no pivot: a READY mirror then completes with
 * the copy consistent), blockdev-del the NBD nodes, migrate-continue.
 *
 * Every failure restores the source: storage_teardown force-cancels the
 * mirrors and deletes the NBD nodes (migration.c cancels the memory
 * migration and deletes the destination, whose copies go with it). The
 * source's own disk is never touched. */
#ifndef FERRY_AGENT_STORAGE_H
#define FERRY_AGENT_STORAGE_H
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent/agent.h"

enum stg_phase {
    STG_CONNECTING = 1, /* asking the destination, adding NBD nodes, starting mirrors */
    STG_MIRRORING,      /* mirrors running, not all READY */
    STG_READY,          /* every mirror READY; memory migration may run */
    STG_SWITCHING,      /* pre-switchover: block-job-cancel sent, waiting */
    STG_DONE,           /* jobs ended consistently, NBD nodes deleted */
    STG_TEARDOWN,       /* failure: force-cancel, then delete NBD nodes */
    STG_RESTORED,       /* teardown finished: no job, no NBD node left */
};

struct stg_disk {
    char id[SPEC_DISK_ID_MAX]; /* spec disk id */
    bool target_added;         /* NBD node nbd-ID exists on the source */
    bool job_started;          /* blockdev-mirror accepted */
    bool job_active;           /* the job exists in QEMU */
    bool ready;                /* BLOCK_JOB_READY seen (or query says ready) */
    uint64_t len;              /* job length, bytes (grows with guest writes) */
    uint64_t offset;           /* job progress, bytes */
    char error[160];           /* why the job failed, "" otherwise */
};

struct mig_storage {
    enum stg_phase phase;                  /* see enum */
    char host[64];                         /* destination NBD host */
    int port;                              /* destination NBD port */
    struct stg_disk disks[SPEC_DISKS_MAX]; /* the source's disks, spec order */
    unsigned n_disks;                      /* entries in disks */
    unsigned pending;                      /* QMP replies awaited in this step */
    bool step_failed;                      /* a reply in this step was an error */
    char step_error[200];                  /* its message */
    bool poll_inflight;                    /* query-block-jobs outstanding */
    unsigned teardown_polls;               /* query-block-jobs rounds in teardown */
    struct event *timer;                   /* teardown polling, owned */
    uint64_t ready_ms;                     /* ms since start when all were READY, 0 before */
};

/* --- destination ---------------------------------------------------------- */

/* Rewrites the path of every disk of spec to an image of this agent
 * (state-dir/disks/NAME.ID.FORMAT) and creates it empty with the virtual
 * size given in sizes (JSON object id → bytes, borrowed): raw by
 * ftruncate, qcow2 by `qemu-img create` (run to completion; it takes
 * milliseconds). Returns 0; FERR_INVAL naming "disk_sizes" when a size is
 * missing or out of range, -errno when a file cannot be made; then no file
 * is left behind. */
int storage_create_copies(struct agent *ag, struct inst_spec *spec, const json_t *sizes,
                          struct ferr *e) __attribute__((warn_unused_result));

/* Removes the image files of spec's disks (the agent's copies). */
void storage_remove_copies(const struct inst_spec *spec);

/* Reply of storage_dest_export: err NULL on success (in->nbd_port set). */
typedef void (*storage_export_cb)(struct instance *in, const char *err);

/* Starts the NBD server on the agent's address (a free port the agent
 * picks; retried on a clash) and exports every disk of in (writable, name =
 * disk id). cb fires exactly once (in NULL when the instance went away). */
void storage_dest_export(struct instance *in, storage_export_cb cb);

/* nbd-server-stop on in (reply ignored); in->nbd_port becomes 0. */
void storage_dest_stop(struct instance *in);

/* Asks QEMU for the virtual size of each disk of in (query-block) and
 * stores them in in->disk_size. */
void storage_query_sizes(struct instance *in);

/* --- source --------------------------------------------------------------- */

/* Allocates m->st for the disks of m->inst. */
void storage_init(struct migration *m);

/* Begins the mirrors: asks the destination agent for its NBD address,
 * then blockdev-add + blockdev-mirror per disk. Progress and the outcome
 * reach migration.c through mig__storage_ready / mig__storage_failed. */
void storage_mirror_start(struct migration *m);

/* Polls query-block-jobs (len/offset, readiness, vanished jobs); called
 * from the migration's tick. */
void storage_tick(struct migration *m);

/* Block job events of the source guest. */
void storage_on_event(struct migration *m, const char *event, json_t *data);

/* At pre-switchover: block-job-cancel every job, wait for them to end,
 * delete the NBD nodes, then mig__storage_switched. Idempotent. */
void storage_switchover(struct migration *m);

/* Failure path: force-cancels every job, waits (bounded) until they are
 * gone, deletes the NBD nodes. Idempotent; runs after the migration ended. */
void storage_teardown(struct migration *m);

/* block-job-set-speed on every active job. */
void storage_set_speed(struct migration *m, uint64_t bps);

/* Copies the disk totals into s. */
void storage_fill_sample(const struct migration *m, struct mig_sample *s);

/* Adds "storage" to o (borrowed) for m->st (NULL: nothing). */
void storage_to_json(const struct migration *m, json_t *o);

/* Frees m->st (after the migration ended and no callback is pending). */
void storage_free(struct migration *m);

#endif
