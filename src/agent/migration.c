/* migration — the source side of an outgoing pre-copy migration: sets
 * QEMU's capabilities and parameters, starts it, samples query-migrate at
 * 4 Hz, enforces the completion timeout, and finishes by confirming that
 * the destination runs before the source QEMU quits (DESIGN invariant 1).
 * On any failure before that point the source keeps running and the
 * destination is cleaned up. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/agent.h"
#include "agent/census.h"
#include "agent/control.h"
#include "agent/pace.h"
#include "agent/storage.h"
#include "util/log.h"
#include "util/xalloc.h"

#define CONFIRM_TRIES 80       /* destination confirmation attempts */
#define CONFIRM_RETRY_MS 250   /* between attempts, ms */
#define NO_CAP_BPS (1ull << 40) /* max-bandwidth meaning "no cap", bytes/s */
#define DR_CALC_S 1             /* calc-dirty-rate calc-time, s */
#define DR_POLL_MS 250          /* query-dirty-rate period while measuring, ms */
#define DR_GIVE_UP_MS 15000     /* no result by then (ms since start): refused */

const char *mig_state_name(enum mig_state s)
{
    switch (s) {
    case MIGS_STARTING: return "starting";
    case MIGS_RUNNING: return "running";
    case MIGS_CONFIRMING: return "confirming";
    case MIGS_CANCELLING: return "cancelling";
    case MIGS_SUCCEEDED: return "succeeded";
    case MIGS_FAILED: return "failed";
    case MIGS_CANCELLED: return "cancelled";
    case MIGS_POSTCOPY: return "postcopy";
    }
    return "unknown";
}

static bool mig_terminal(const struct migration *m)
{
    return m->state == MIGS_SUCCEEDED || m->state == MIGS_FAILED || m->state == MIGS_CANCELLED;
}

struct migration *mig_find(struct agent *ag, const char *id)
{
    for (struct migration *m = ag->migrations; m; m = m->next)
        if (strcmp(m->id, id) == 0)
            return m;
    return NULL;
}

static void mig_evict(struct agent *ag)
{
    while (ag->n_migrations > AGENT_MIGRATIONS_KEPT) {
        struct migration **victim = NULL;
        for (struct migration **pp = &ag->migrations; *pp; pp = &(*pp)->next)
            if (mig_terminal(*pp) && (*pp)->refs == 0)
                victim = pp; /* the oldest finished one */
        if (!victim)
            return;
        struct migration *m = *victim;
        *victim = m->next;
        ag->n_migrations--;
        if (m->tick)
            event_free(m->tick);
        free(m->samples);
        storage_free(m);
        free(m->ctl); /* control.c */
        census_free(m->census);
        free(m->census);
        free(m);
    }
}

static void mig_stop_tick(struct migration *m)
{
    if (m->tick)
        evtimer_del(m->tick);
}

static void mig_finish(struct migration *m, enum mig_state st, const char *why)
{
    if (mig_terminal(m))
        return;
    m->state = st;
    m->end_ms = agent_now_ms();
    if (why && !m->error[0])
        snprintf(m->error, sizeof(m->error), "%s", why);
    mig_stop_tick(m);
    ctl_restore_guest(m); /* lift the budget's io throttle, on every path */
    if (m->inst && m->inst->mig == m)
        m->inst->mig = NULL;
    log_info("agent", "msg=\"migration finished\" id=%s instance=%s state=%s error=\"%s\"", m->id,
             m->inst_name, mig_state_name(st), m->error);
}

/* --- destination cleanup and source resume ---------------------------- */

static void on_dest_deleted(int status, json_t *body, const struct ferr *err, void *arg)
{
    (void)body;
    struct migration *m = arg;
    m->refs--;
    if (err)
        log_warn("agent", "msg=\"destination cleanup failed\" id=%s err=\"%s\"", m->id, err->msg);
    else
        log_info("agent", "msg=\"destination cleaned up\" id=%s status=%d", m->id, status);
}

static void cleanup_dest(struct migration *m)
{
    if (!m->dest_agent[0])
        return;
    char *path = xasprintf("/v1/instances/%s", m->inst_name);
    m->refs++;
    peer_request(m->ag, m->dest_agent, "DELETE", path, NULL, 10, on_dest_deleted, m);
    free(path);
}

static void on_cont(struct instance *in, const struct ferr *err, json_t *ret, void *ctx)
{
    (void)ret;
    struct migration *m = ctx;
    m->refs--;
    if (err && in)
        log_warn("agent", "msg=\"source resume failed\" id=%s err=\"%s\"", m->id, err->msg);
}

static void on_source_status(struct instance *in, const struct ferr *err, json_t *ret, void *ctx)
{
    struct migration *m = ctx;
    m->refs--;
    if (!in || err)
        return;
    const char *st = json_string_value(json_object_get(ret, "status"));
    if (st && strcmp(st, "running") != 0) {
        log_info("agent", "msg=\"resuming source\" id=%s status=%s", m->id, st);
        m->refs++;
        if (inst_qmp(in, "cont", NULL, on_cont, m) != 0)
            m->refs--;
    }
}

/* Makes sure the source guest runs after a failed or cancelled migration. */
static void ensure_source_runs(struct migration *m)
{
    if (!m->inst)
        return;
    m->refs++;
    if (inst_qmp(m->inst, "query-status", NULL, on_source_status, m) != 0)
        m->refs--;
}

static void fail_and_restore(struct migration *m, enum mig_state st, const char *why)
{
    mig_finish(m, st, why);
    storage_teardown(m); /* mirrors force-cancelled, NBD nodes deleted */
    ensure_source_runs(m);
    cleanup_dest(m);
}

/* --- completion: confirm the destination, then quit the source --------- */

static void confirm_dest(struct migration *m);

static void on_confirm_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct migration *m = arg;
    m->refs--;
    confirm_dest(m);
}

/* After the destination was told to drop its copy, resume the source. */
static void on_dest_dropped(int status, json_t *body, const struct ferr *err, void *arg)
{
    (void)body;
    struct migration *m = arg;
    m->refs--;
    if (err || (status != 200 && status != 202 && status != 404)) {
        /* We cannot prove the destination is gone: keep the source paused
         * rather than risk the guest running twice. */
        log_error("agent", "msg=\"destination state unknown; source left paused\" id=%s",
                  m->id);
        mig_finish(m, MIGS_FAILED,
                   "destination did not confirm running and could not be cleaned up; "
                   "source left paused for the operator");
        return;
    }
    mig_finish(m, MIGS_FAILED, "destination did not confirm that the guest runs");
    ensure_source_runs(m);
}

static void on_confirm(int status, json_t *body, const struct ferr *err, void *arg)
{
    struct migration *m = arg;
    m->refs--;
    if (mig_terminal(m))
        return;
    const char *st = json_string_value(json_object_get(body, "state"));
    if (!err && status == 200 && st && strcmp(st, "running") == 0) {
        log_info("agent", "msg=\"destination runs; quitting source\" id=%s", m->id);
        if (m->inst) {
            m->state = MIGS_CONFIRMING;
            inst_destroy(m->inst, "migrated away");
            /* mig_instance_gone() marks success once the source has exited */
        } else {
            mig_finish(m, MIGS_SUCCEEDED, NULL);
        }
        m->error[0] = '\0';
        m->confirm_tries = CONFIRM_TRIES + 1; /* marks "source quitting" */
        return;
    }
    if (++m->confirm_tries >= CONFIRM_TRIES || status == 404) {
        log_warn("agent", "msg=\"destination did not confirm\" id=%s status=%d", m->id, status);
        char *path = xasprintf("/v1/instances/%s", m->inst_name);
        m->refs++;
        peer_request(m->ag, m->dest_agent, "DELETE", path, NULL, 10, on_dest_dropped, m);
        free(path);
        return;
    }
    struct timeval tv = {.tv_sec = 0, .tv_usec = CONFIRM_RETRY_MS * 1000};
    m->refs++;
    event_base_once(m->ag->base, -1, EV_TIMEOUT, on_confirm_timer, m, &tv);
}

static void confirm_dest(struct migration *m)
{
    char *path = xasprintf("/v1/instances/%s", m->inst_name);
    m->refs++;
    peer_request(m->ag, m->dest_agent, "GET", path, NULL, 5, on_confirm, m);
    free(path);
}

void mig_instance_gone(struct migration *m)
{
    m->inst = NULL;
    if (m->state == MIGS_CONFIRMING && m->confirm_tries > CONFIRM_TRIES) {
        mig_finish(m, MIGS_SUCCEEDED, NULL);
        return;
    }
    if (!mig_terminal(m)) {
        mig_finish(m, MIGS_FAILED, "the source QEMU exited during the migration");
        cleanup_dest(m);
    }
}

/* --- sampling ----------------------------------------------------------- */

static uint64_t ju(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (json_is_integer(v) && json_integer_value(v) >= 0)
        return (uint64_t)json_integer_value(v);
    if (json_is_real(v) && json_real_value(v) >= 0)
        return (uint64_t)json_real_value(v);
    return 0;
}

static void sample_from_query(const struct migration *m, json_t *ret, struct mig_sample *s)
{
    memset(s, 0, sizeof(*s));
    s->t_ms = agent_now_ms() - m->start_ms;
    const char *st = json_string_value(json_object_get(ret, "status"));
    enum mig_phase ph = MIG_PHASE_SETUP;
    if (st && mig_phase_parse(st, strlen(st), &ph) != 0)
        ph = MIG_PHASE_SETUP;
    s->phase = ph;
    json_t *ram = json_object_get(ret, "ram");
    s->ram_total = ju(ram, "total");
    s->ram_transferred = ju(ram, "transferred");
    s->ram_remaining = ju(ram, "remaining");
    s->ram_duplicate = ju(ram, "duplicate");
    s->ram_normal = ju(ram, "normal");
    s->dirty_pages_rate = ju(ram, "dirty-pages-rate");
    s->page_size = ju(ram, "page-size");
    double mbps = json_real_value(json_object_get(ram, "mbps"));
    s->bw_bps = (uint64_t)(mbps * 1e6 / 8.0);
    s->dirty_sync_count = ju(ram, "dirty-sync-count");
    s->throttle_pct = (uint32_t)ju(ret, "cpu-throttle-percentage");
    s->postcopy_requests = ju(ram, "postcopy-requests");
    s->expected_downtime_ms = ju(ret, "expected-downtime");
    s->setting_downtime_ms = m->limits.downtime_ms;
    s->setting_max_bw_bps = m->limits.max_bandwidth_bps;
    s->dirty_rate_hint_pps = m->dirty_hint_pps;
    if (m->census) { /* written since the census (census_tick) */
        s->census_dirty_bytes = m->census->dirty_bytes;
        s->census_dirty_ms = m->census->dirty_ms;
    }
    storage_fill_sample(m, s);
}

/* The final stage of a completed pre-copy move (docs/AGENT.md "Final
 * stage"): QEMU stopped the guest at migrate_t + total-time - downtime
 * (agent clock) and sent what was pending with the rate limit lifted. The
 * RAM bytes sent before the stop are the last active sample's plus the
 * rate of the last two active samples over the gap to the stop; the rest
 * of x_end (ram.transferred at completion) went in the downtime. Returns
 * bytes/s, or 0 when it cannot be told (post-copy, disks, no downtime, a
 * gap over 1 s, nothing left over). */
static double final_stage_bps(const struct migration *m, uint64_t x_end)
{
    const struct mig_sample *a = NULL, *b = NULL;
    if (!m->migrate_t_ms || !m->downtime_ms || m->total_time_ms <= m->downtime_ms ||
        m->last.postcopy_requests || m->last.disk_total)
        return 0;
    for (size_t i = m->n_samples; i-- > 0;) {
        const struct mig_sample *x = &m->samples[i];
        if (x->phase == MIG_PHASE_POSTCOPY)
            return 0;
        if (x->phase != MIG_PHASE_ACTIVE)
            continue;
        if (!b) {
            b = x;
        } else if (x->t_ms < b->t_ms) {
            a = x;
            break;
        }
    }
    if (!a || b->ram_transferred < a->ram_transferred)
        return 0;
    uint64_t t_stop = m->migrate_t_ms + m->total_time_ms - m->downtime_ms;
    double gap_ms = t_stop > b->t_ms ? (double)(t_stop - b->t_ms) : 0;
    if (gap_ms > 1000)
        return 0;
    double rate = (double)(b->ram_transferred - a->ram_transferred) / (double)(b->t_ms - a->t_ms);
    double before = (double)b->ram_transferred + rate * gap_ms;
    if ((double)x_end <= before)
        return 0;
    return ((double)x_end - before) * 1000.0 / (double)m->downtime_ms;
}

#define LINK_MOVES 5 /* earlier final stages the link rate is the median of */

static int cmp_dbl(const void *x, const void *y)
{
    double p = *(const double *)x, q = *(const double *)y;
    return p < q ? -1 : p > q;
}

/* The host part of a tcp:HOST:PORT URI into host (n bytes); "" otherwise. */
static void uri_host(const char *uri, char *host, size_t n)
{
    host[0] = 0;
    if (strncmp(uri, "tcp:", 4) != 0)
        return;
    const char *h = uri + 4, *colon = strrchr(h, ':');
    if (!colon || (size_t)(colon - h) >= n)
        return;
    memcpy(host, h, (size_t)(colon - h));
    host[colon - h] = 0;
}

/* The link rate for m's final stage: the median of the final stages of
 * this agent's newest LINK_MOVES moves to the same destination host
 * (final_bps). 0 when there are none, or when m paces its socket (the
 * final stage then stays at the paced rate). *moves gets how many. */
static double link_from_history(const struct migration *m, unsigned *moves)
{
    double v[LINK_MOVES];
    unsigned n = 0;
    char want[128], host[128];
    *moves = 0;
    if (m->limits.pacing)
        return 0;
    uri_host(m->dest_uri, want, sizeof(want));
    if (!want[0])
        return 0;
    for (const struct migration *x = m->ag->migrations; x && n < LINK_MOVES; x = x->next) {
        if (x == m || !(x->final_bps > 0))
            continue;
        uri_host(x->dest_uri, host, sizeof(host));
        if (strcmp(host, want) == 0)
            v[n++] = x->final_bps;
    }
    if (!n)
        return 0;
    qsort(v, n, sizeof(v[0]), cmp_dbl);
    *moves = n;
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void keep_sample(struct migration *m, const struct mig_sample *s)
{
    m->last = *s;
    if (m->n_samples >= AGENT_SAMPLES_MAX) {
        m->samples_dropped++;
        return;
    }
    if (m->n_samples == m->cap_samples) {
        m->cap_samples = m->cap_samples ? m->cap_samples * 2 : 256;
        m->samples = xrealloc(m->samples, m->cap_samples * sizeof(*m->samples));
    }
    m->samples[m->n_samples++] = *s;
}

static void on_migrate_cancel(struct instance *in, const struct ferr *err, json_t *ret, void *ctx)
{
    (void)in;
    (void)ret;
    struct migration *m = ctx;
    m->refs--;
    if (err)
        log_warn("agent", "msg=\"migrate_cancel failed\" id=%s err=\"%s\"", m->id, err->msg);
}

static void send_cancel(struct migration *m)
{
    m->state = MIGS_CANCELLING;
    if (!m->inst)
        return;
    m->refs++;
    if (inst_qmp(m->inst, "migrate_cancel", NULL, on_migrate_cancel, m) != 0)
        m->refs--;
}

/* limits.pacing: keeps QEMU's migration socket paced at the current
 * max-bandwidth (set at start, by the controller or by PATCH; checked at
 * every sample, so a change takes effect within one tick). The socket
 * appears once QEMU connected; a kernel refusal is recorded once and
 * pacing given up (max-bandwidth alone still applies). */
static void pace_sync(struct migration *m, const struct instance *in)
{
    if (!m->limits.pacing || m->pace_given_up || !m->mem_started || !in || in->pid <= 0)
        return;
    uint64_t want = m->limits.max_bandwidth_bps;
    if (m->pace_on && want == m->paced_bps)
        return;
    struct ferr e = {0};
    int rc = pace_set(in->pid, m->dest_uri, want, &e);
    if (rc == FERR_NOTFOUND) {
        snprintf(m->pace_note, sizeof(m->pace_note), "%.150s", e.msg);
        return; /* not connected yet: next tick */
    }
    if (rc != 0) {
        m->pace_given_up = true;
        m->pace_on = false;
        snprintf(m->pace_note, sizeof(m->pace_note), "%.150s", e.msg);
        log_warn("agent", "msg=\"socket pacing unavailable\" id=%s err=\"%s\"", m->id, e.msg);
        return;
    }
    if (!m->pace_on)
        m->pace_t_ms = agent_now_ms() - m->start_ms;
    m->pace_on = true;
    m->paced_bps = want;
    m->pace_note[0] = '\0';
    log_info("agent", "msg=\"migration socket paced\" id=%s rate_bps=%llu", m->id,
             (unsigned long long)want);
}

static void on_query(struct instance *in, const struct ferr *err, json_t *ret, void *ctx)
{
    struct migration *m = ctx;
    m->refs--;
    m->query_inflight = false;
    if (mig_terminal(m) || m->state == MIGS_CONFIRMING || !in)
        return;
    if (err) {
        log_warn("agent", "msg=\"query-migrate failed\" id=%s err=\"%s\"", m->id, err->msg);
        return;
    }
    struct mig_sample s;
    sample_from_query(m, ret, &s);
    if (s.phase == MIG_PHASE_PRE_SWITCHOVER && m->st)
        storage_switchover(m); /* also on the MIGRATION event; idempotent */
    if (s.phase == MIG_PHASE_POSTCOPY && m->state == MIGS_RUNNING) {
        m->state = MIGS_POSTCOPY; /* the guest runs on the destination now */
        log_info("agent", "msg=\"post-copy active\" id=%s", m->id);
    }
    ctl_impact_sample(m, &s); /* control.c: the guest's disk against its baseline */
    keep_sample(m, &s);
    ctl_on_sample(m, &s); /* control.c: estimate, controller actions */
    pace_sync(m, in);     /* after the controller: its bandwidth is the rate */
    const char *st = json_string_value(json_object_get(ret, "status"));
    if (st)
        snprintf(m->qemu_status, sizeof(m->qemu_status), "%s", st);
    if (s.phase == MIG_PHASE_COMPLETED) {
        /* QEMU 7.2 reports "completed" a moment before it has computed
         * total-time and downtime (both read 0 until
         * migration_calculate_complete runs): wait a few ticks for them. */
        if (ju(ret, "total-time") == 0 && ++m->complete_requeries <= 8)
            return;
        m->total_time_ms = ju(ret, "total-time");
        m->downtime_ms = ju(ret, "downtime");
        m->setup_time_ms = ju(ret, "setup-time");
        m->ram_transferred = s.ram_transferred;
        m->iterations = s.dirty_sync_count;
        m->final_bps = final_stage_bps(m, s.ram_transferred);
        m->state = MIGS_CONFIRMING;
        mig_stop_tick(m);
        log_info("agent",
                 "msg=\"QEMU completed; confirming destination\" id=%s total_ms=%llu "
                 "downtime_ms=%llu",
                 m->id, (unsigned long long)m->total_time_ms, (unsigned long long)m->downtime_ms);
        confirm_dest(m);
        return;
    }
    if (s.phase == MIG_PHASE_FAILED) {
        const char *desc = json_string_value(json_object_get(ret, "error-desc"));
        char why[300];
        if (m->state == MIGS_POSTCOPY) {
            /* The guest's memory is split between the hosts: resuming the
             * source would run a stale guest. Leave both for the operator
             * (postcopy recovery), as core/migstate's rollback says. */
            snprintf(why, sizeof(why),
                     "QEMU failed during post-copy: %.200s; source left paused, destination "
                     "kept (post-copy recovery needed)",
                     desc ? desc : "unknown");
            mig_finish(m, MIGS_FAILED, why);
            return;
        }
        snprintf(why, sizeof(why), "QEMU reported failure: %.250s", desc ? desc : "unknown");
        fail_and_restore(m, MIGS_FAILED, why);
        return;
    }
    if (s.phase == MIG_PHASE_CANCELLED && st && strcmp(st, "cancelled") == 0) {
        if (m->storage_failed) { /* mig__storage_failed set the error */
            fail_and_restore(m, MIGS_FAILED, NULL);
        } else if (m->timeout_fired || (m->ctl && m->ctl->aborted)) { /* control.c set error */
            char why[128];
            snprintf(why, sizeof(why), "completion timeout of %llu s reached; aborted",
                     (unsigned long long)m->limits.completion_timeout_s);
            fail_and_restore(m, MIGS_FAILED, why);
        } else {
            fail_and_restore(m, MIGS_CANCELLED, "cancelled on request");
        }
        return;
    }
    uint64_t elapsed_ms = agent_now_ms() - m->start_ms;
    if (m->limits.completion_timeout_s && !m->timeout_fired && m->state == MIGS_RUNNING &&
        elapsed_ms > m->limits.completion_timeout_s * 1000u) {
        log_warn("agent", "msg=\"completion timeout; cancelling\" id=%s elapsed_ms=%llu", m->id,
                 (unsigned long long)elapsed_ms);
        m->timeout_fired = true;
        send_cancel(m);
    }
}

/* --- pass-1 dirty rate (calc-dirty-rate) ------------------------------- */

static void dr_refused(struct migration *m, const char *why)
{
    m->dr_state = MIG_DR_REFUSED;
    snprintf(m->dr_note, sizeof(m->dr_note), "%s", why);
    log_info("agent", "msg=\"dirty rate not measured\" id=%s why=\"%s\"", m->id, why);
}

static void on_dirty_rate(struct instance *in, const struct ferr *err, json_t *ret, void *ctx)
{
    struct migration *m = ctx;
    m->refs--;
    m->dr_inflight = false;
    if (!in || m->dr_state != MIG_DR_MEASURING)
        return;
    uint64_t now = agent_now_ms() - m->start_ms;
    if (err) {
        char why[160];
        snprintf(why, sizeof(why), "query-dirty-rate: %.120s", err->msg);
        dr_refused(m, why);
        return;
    }
    const char *st = json_string_value(json_object_get(ret, "status"));
    json_t *rate = json_object_get(ret, "dirty-rate");
    if (st && strcmp(st, "measured") == 0 && json_is_integer(rate)) {
        /* QEMU reports MiB/s (2^20 bytes per second); pages/s = MiB/s x
         * 2^20 / page size (4096 until query-migrate reports the size).
         * A measured 0 (below QEMU's 1 MiB/s resolution) reads as 1 page/s,
         * as in the simulator: the guest is close to idle, which the
         * estimator would otherwise not know (0 = unknown, prior D/R 0.1). */
        uint64_t page = m->last.page_size ? m->last.page_size : 4096;
        json_int_t mibs = json_integer_value(rate);
        m->dirty_hint_pps = mibs > 0 ? (uint64_t)mibs * 1048576u / page : 1;
        m->dr_state = MIG_DR_MEASURED;
        log_info("agent", "msg=\"pass-1 dirty rate measured\" id=%s mib_s=%lld pages_s=%llu",
                 m->id, (long long)mibs, (unsigned long long)m->dirty_hint_pps);
        return;
    }
    if (now >= DR_GIVE_UP_MS) {
        dr_refused(m, "calc-dirty-rate gave no result in time");
        return;
    }
    m->dr_poll_ms = now + DR_POLL_MS;
}

static void on_calc_dirty_rate(struct instance *in, const struct ferr *err, json_t *ret,
                               void *ctx)
{
    (void)ret;
    struct migration *m = ctx;
    m->refs--;
    if (!in)
        return;
    if (err) {
        char why[160];
        snprintf(why, sizeof(why), "calc-dirty-rate refused: %.120s", err->msg);
        dr_refused(m, why);
        return;
    }
    m->dr_state = MIG_DR_MEASURING;
    m->dr_poll_ms = agent_now_ms() - m->start_ms + DR_CALC_S * 1000u + 100u;
}

/* Starts QEMU's page-sampling dirty-rate measurement (DR_CALC_S); it runs
 * in its own QEMU thread beside the migration. */
static void start_dirty_rate(struct migration *m, struct instance *in)
{
    m->refs++;
    if (inst_qmp(in, "calc-dirty-rate",
                 json_pack("{s:i, s:s}", "calc-time", DR_CALC_S, "mode", "page-sampling"),
                 on_calc_dirty_rate, m) != 0) {
        m->refs--;
        dr_refused(m, "calc-dirty-rate not sent: QMP not ready");
    }
}

static void poll_dirty_rate(struct migration *m)
{
    if (m->dr_state != MIG_DR_MEASURING || m->dr_inflight ||
        agent_now_ms() - m->start_ms < m->dr_poll_ms)
        return;
    m->refs++;
    m->dr_inflight = true;
    if (inst_qmp(m->inst, "query-dirty-rate", NULL, on_dirty_rate, m) != 0) {
        m->refs--;
        m->dr_inflight = false;
    }
}

/* While pass 1 runs, re-reads the census's sample when due (census_tick:
 * RAM written since the census, for the estimator); after it, drops the
 * sample. */
static void census_step(struct migration *m)
{
    struct census *c = m->census;
    if (!c || !c->n_smp)
        return;
    if (!m->mem_started || m->last.dirty_sync_count > 1 || m->state != MIGS_RUNNING) {
        if (m->last.dirty_sync_count > 1 || mig_terminal(m))
            census_drop_sample(c);
        return;
    }
    int rc = census_tick(m->inst->pid, c);
    if (rc < 0) {
        log_info("agent", "msg=\"census re-read failed\" id=%s errno=%d", m->id, -rc);
        census_drop_sample(c);
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct migration *m = arg;
    if (mig_terminal(m) || m->state == MIGS_CONFIRMING)
        return;
    if (!m->inst) {
        mig_instance_gone(m);
        return;
    }
    if (m->mem_started && !m->query_inflight) {
        m->refs++;
        m->query_inflight = true;
        if (inst_qmp(m->inst, "query-migrate", NULL, on_query, m) != 0) {
            m->refs--;
            m->query_inflight = false;
        }
    }
    poll_dirty_rate(m);
    census_step(m);
    storage_tick(m); /* query-block-jobs: disk progress, readiness */
    struct timeval tv = {.tv_sec = 0, .tv_usec = AGENT_SAMPLE_MS * 1000};
    evtimer_add(m->tick, &tv);
}

/* --- start -------------------------------------------------------------- */

/* A start step's reply: drops its reference; with the instance gone or the
 * command refused ("<what>: <QEMU's message>") the migration is ended
 * (restored) and false returned; true: go on. */
static bool start_reply(struct migration *m, struct instance *in, const struct ferr *err,
                        const char *what)
{
    m->refs--;
    if (!in) {
        mig_instance_gone(m);
        return false;
    }
    if (err) {
        char why[300];
        snprintf(why, sizeof(why), "%s: %.230s", what, err->msg);
        fail_and_restore(m, MIGS_FAILED, why);
        return false;
    }
    return true;
}

static void on_migrate(struct instance *in, const struct ferr *err, json_t *ret, void *ctx)
{
    (void)ret;
    struct migration *m = ctx;
    if (!start_reply(m, in, err, "migrate refused"))
        return;
    m->mem_started = true;
    bool ticking = m->state == MIGS_RUNNING && m->st; /* the mirror phase ticks already */
    if (m->cancel_requested) {
        send_cancel(m);
    } else {
        m->state = MIGS_RUNNING;
    }
    if (!ticking)
        on_tick(-1, 0, m);
}

/* The pre-migration memory census (census.h): how much of the guest's RAM
 * pass 1 will send in full, for the estimator. Taken right before
 * `migrate` (its t0), on the event loop: bounded, ~10 ms for 256 MiB. A
 * failure only leaves the estimator without it. */
static void take_census(struct migration *m, struct instance *in)
{
    struct ferr e = {0};
    struct census *c = xcalloc(1, sizeof(*c));
    if (census_take(in->pid, in->spec.memory_mib << 20, c, &e) != 0) {
        snprintf(m->census_note, sizeof(m->census_note), "%.150s", e.msg);
        log_info("agent", "msg=\"no memory census\" id=%s why=\"%s\"", m->id, e.msg);
        free(c);
        return;
    }
    m->census = c;
    if (m->ctl) {
        est_set_census(&m->ctl->est, c->nonzero_bytes, c->ram_bytes, c->rel_err);
        if (est_set_census_profile(&m->ctl->est, c->profile, c->nprofile) != 0)
            log_warn("agent", "msg=\"census profile refused\" id=%s", m->id);
    }
    log_info("agent",
             "msg=\"memory census\" id=%s nonzero_mib=%.1f rel_err=%.4f candidates=%llu "
             "sampled=%llu wall_us=%llu",
             m->id, (double)c->nonzero_bytes / 1048576.0, c->rel_err,
             (unsigned long long)c->candidate_pages, (unsigned long long)c->sampled_pages,
             (unsigned long long)c->wall_us);
}

/* Starts the memory migration: the census, the pass-1 dirty rate
 * measurement, then migrate. */
static void start_memory(struct migration *m)
{
    struct instance *in = m->inst;
    take_census(m, in);
    /* queued before migrate, so no migration is running when QEMU checks
     * it; the page-sampling measurement then runs concurrently with pass 1 */
    start_dirty_rate(m, in);
    /* QEMU lifts the cap for the final stage: the estimator sends what is
     * pending then at the link rate earlier moves to this host measured */
    m->link_bps = link_from_history(m, &m->link_moves);
    if (m->ctl)
        est_set_link(&m->ctl->est, m->link_bps);
    m->migrate_t_ms = agent_now_ms() - m->start_ms;
    m->refs++;
    if (inst_qmp(in, "migrate", json_pack("{s:s}", "uri", m->dest_uri), on_migrate, m) != 0) {
        m->refs--;
        fail_and_restore(m, MIGS_FAILED, "QMP unavailable");
    }
}

void mig__storage_ready(struct migration *m)
{
    if (mig_terminal(m) || m->mem_started || !m->inst)
        return;
    if (m->cancel_requested) {
        fail_and_restore(m, MIGS_CANCELLED, "cancelled on request");
        return;
    }
    start_memory(m);
}

static void on_continue(struct instance *in, const struct ferr *err, json_t *ret, void *ctx)
{
    (void)ret;
    struct migration *m = ctx;
    m->refs--;
    if (!in || !err || mig_terminal(m))
        return;
    snprintf(m->error, sizeof(m->error), "migrate-continue: %.200s", err->msg);
    m->storage_failed = true;
    m->continue_sent = false;
    send_cancel(m);
}

void mig__storage_switched(struct migration *m)
{
    if (mig_terminal(m) || !m->inst)
        return;
    if (m->cancel_requested) { /* asked during the switchover: still possible */
        send_cancel(m);
        return;
    }
    log_info("agent", "msg=\"disks consistent on the destination; migrate-continue\" id=%s", m->id);
    m->continue_sent = true;
    m->refs++;
    if (inst_qmp(m->inst, "migrate-continue", json_pack("{s:s}", "state", "pre-switchover"),
                 on_continue, m) != 0) {
        m->refs--;
        m->continue_sent = false;
        fail_and_restore(m, MIGS_FAILED, "QMP unavailable at switchover");
    }
}

void mig__storage_failed(struct migration *m, const char *why)
{
    if (mig_terminal(m))
        return;
    bool cancelled = m->cancel_requested && strcmp(why, "cancelled on request") == 0;
    if (m->mem_started && m->state != MIGS_CANCELLING) {
        /* QEMU migrates memory: cancel it; on_query finishes the job */
        snprintf(m->error, sizeof(m->error), "%s", why);
        m->storage_failed = !cancelled;
        send_cancel(m);
        return;
    }
    if (m->mem_started)
        return; /* migrate_cancel sent already */
    fail_and_restore(m, cancelled ? MIGS_CANCELLED : MIGS_FAILED, why);
}

void mig__storage_sample(struct migration *m)
{
    if (mig_terminal(m) || m->mem_started)
        return;
    struct mig_sample s;
    memset(&s, 0, sizeof(s));
    s.t_ms = agent_now_ms() - m->start_ms;
    s.phase = MIG_PHASE_SETUP;
    s.ram_total = m->inst ? m->inst->spec.memory_mib << 20 : 0;
    s.ram_remaining = s.ram_total;
    s.page_size = 4096;
    s.setting_downtime_ms = m->limits.downtime_ms;
    s.setting_max_bw_bps = m->limits.max_bandwidth_bps;
    storage_fill_sample(m, &s);
    ctl_impact_sample(m, &s);
    keep_sample(m, &s);
    ctl_on_sample(m, &s);
    if (m->ctl && m->ctl->aborted) {
        fail_and_restore(m, MIGS_FAILED, NULL); /* control.c set the error */
        return;
    }
    uint64_t elapsed_ms = agent_now_ms() - m->start_ms;
    if (m->limits.completion_timeout_s && elapsed_ms > m->limits.completion_timeout_s * 1000u) {
        char why[128];
        snprintf(why, sizeof(why), "completion timeout of %llu s reached while mirroring disks",
                 (unsigned long long)m->limits.completion_timeout_s);
        m->timeout_fired = true;
        fail_and_restore(m, MIGS_FAILED, why);
    }
}

static void on_params(struct instance *in, const struct ferr *err, json_t *ret, void *ctx)
{
    (void)ret;
    struct migration *m = ctx;
    m->refs--;
    if (!in) {
        mig_instance_gone(m);
        return;
    }
    if (err || m->cancel_requested) {
        char why[300];
        snprintf(why, sizeof(why), "%.250s",
                 err ? err->msg : "cancelled on request before the migration started");
        fail_and_restore(m, err ? MIGS_FAILED : MIGS_CANCELLED, why);
        return;
    }
    if (m->st) {
        /* non-shared disks: mirror first, memory once every mirror is
         * READY (mig__storage_ready) */
        m->state = MIGS_RUNNING;
        storage_mirror_start(m);
        on_tick(-1, 0, m);
        return;
    }
    start_memory(m);
}

static void on_caps(struct instance *in, const struct ferr *err, json_t *ret, void *ctx)
{
    (void)ret;
    struct migration *m = ctx;
    if (!start_reply(m, in, err, "migrate-set-capabilities"))
        return;
    uint64_t bw = m->limits.max_bandwidth_bps ? m->limits.max_bandwidth_bps : NO_CAP_BPS;
    json_t *p = json_pack("{s:I, s:I}", "downtime-limit", (json_int_t)m->limits.downtime_ms,
                          "max-bandwidth", (json_int_t)bw);
    if (m->postcopy && m->limits.max_bandwidth_bps)
        /* the operator's cap holds in post-copy too (QEMU's own default
         * there is unlimited) */
        json_object_set_new(p, "max-postcopy-bandwidth",
                            json_integer((json_int_t)m->limits.max_bandwidth_bps));
    if (m->throttle_dormant) {
        /* auto-converge is on so that the controller can throttle later
         * (QEMU refuses to turn it on mid-migration), but capped at 1 %
         * until the controller lifts the cap (control.c do_throttle) */
        json_object_set_new(p, "cpu-throttle-initial", json_integer(1));
        json_object_set_new(p, "cpu-throttle-increment", json_integer(1));
        json_object_set_new(p, "max-cpu-throttle", json_integer(1));
    }
    m->refs++;
    if (inst_qmp(in, "migrate-set-parameters", p, on_params, m) != 0) {
        m->refs--;
        fail_and_restore(m, MIGS_FAILED, "QMP unavailable");
    }
}

/* migrate-set-capabilities: events; auto-converge when asked or dormant for
 * the controller; postcopy-ram when the destination has it. Returns 0, or
 * -1 when QMP is not ready (nothing sent). */
static int send_caps(struct migration *m)
{
    json_t *caps = json_pack("{s:[{s:s, s:b}, {s:s, s:b}]}", "capabilities", "capability",
                             "events", "state", 1, "capability", "auto-converge", "state",
                             m->limits.auto_converge || m->throttle_dormant);
    /* always explicit: a guest that arrived by post-copy keeps postcopy-ram
       on, and a destination without it would then fail the stream */
    json_array_append_new(json_object_get(caps, "capabilities"),
                          json_pack("{s:s, s:b}", "capability", "postcopy-ram", "state",
                                    (int)m->postcopy));
    /* the disk mirrors end at pre-switchover (storage.c); always explicit
     * too: left on by an earlier storage migration of this QEMU, a
     * memory-only migration would wait at pre-switchover for ever */
    json_array_append_new(json_object_get(caps, "capabilities"),
                          json_pack("{s:s, s:b}", "capability", "pause-before-switchover",
                                    "state", m->st != NULL));
    if (!m->inst) {
        json_decref(caps);
        return -1;
    }
    m->refs++;
    if (inst_qmp(m->inst, "migrate-set-capabilities", caps, on_caps, m) != 0) {
        m->refs--;
        return -1;
    }
    return 0;
}

static void on_dest_postcopy(int status, json_t *body, const struct ferr *err, void *arg)
{
    struct migration *m = arg;
    m->refs--;
    if (mig_terminal(m))
        return;
    if (!m->inst) {
        mig_instance_gone(m);
        return;
    }
    if (!err && status == 200 && json_is_true(json_object_get(body, "postcopy"))) {
        struct ferr e2;
        m->postcopy = ctl_set_postcopy(m->ctl, true, &e2) == 0;
    } else {
        snprintf(m->postcopy_note, sizeof(m->postcopy_note), "%s",
                 "post-copy not negotiated: the destination did not set postcopy-ram "
                 "(POST /v1/incoming without \"postcopy\": true, or no userfaultfd there)");
    }
    log_info("agent", "msg=\"post-copy negotiation\" id=%s postcopy=%d", m->id,
             (int)m->postcopy);
    if (m->cancel_requested) {
        fail_and_restore(m, MIGS_CANCELLED, "cancelled on request before the migration started");
        return;
    }
    if (send_caps(m) != 0)
        fail_and_restore(m, MIGS_FAILED, "QMP unavailable");
}

int mig_start(struct agent *ag, struct instance *in, const char *dest_uri,
              const char *dest_agent, const struct mig_limits *limits,
              const struct ctl_policy *policy, struct migration **out, struct ferr *e)
{
    return mig_start_storage(ag, in, dest_uri, dest_agent, limits, policy, false, out, e);
}

int mig_start_storage(struct agent *ag, struct instance *in, const char *dest_uri,
                      const char *dest_agent, const struct mig_limits *limits,
                      const struct ctl_policy *policy, bool storage_copy,
                      struct migration **out, struct ferr *e)
{
    if (storage_copy && in->spec.n_disks == 0)
        return ferr_set(e, FERR_STATE, "storage", "instance '%s' has no disks to copy",
                        in->spec.name);
    if (in->mig)
        return ferr_set(e, FERR_STATE, "instance", "instance '%s' is migrating already (%s)",
                        in->spec.name, in->mig->id);
    if (in->state != INST_RUNNING || !in->qmp_ready)
        return ferr_set(e, FERR_STATE, "instance", "instance '%s' is %s, not running",
                        in->spec.name, inst_state_name(in->state));
    struct migration *m = xcalloc(1, sizeof(*m));
    m->ag = ag;
    snprintf(m->id, sizeof(m->id), "m-%.20s-%llu", ag->name, (unsigned long long)++ag->mig_seq);
    snprintf(m->inst_name, sizeof(m->inst_name), "%s", in->spec.name);
    m->inst = in;
    snprintf(m->dest_uri, sizeof(m->dest_uri), "%s", dest_uri);
    snprintf(m->dest_agent, sizeof(m->dest_agent), "%s", dest_agent ? dest_agent : "");
    m->limits = *limits;
    m->state = MIGS_STARTING;
    m->start_ms = agent_now_ms();
    m->started_at = (int64_t)time(NULL);
    m->tick = evtimer_new(ag->base, on_tick, m);
    struct ctl_policy none = {0};
    if (!policy)
        policy = &none;
    m->ctl = xcalloc(1, sizeof(*m->ctl)); /* control.c */
    if (ctl_init(m->ctl, policy, e) != 0 || ctl_set_postcopy(m->ctl, false, e) != 0) {
        event_free(m->tick);
        free(m->ctl);
        free(m);
        return FERR_INVAL;
    }
    ctl_impact_start(m); /* baseline: the guest's disk before the migration */
    if (!limits->pacing_given && policy->enabled && policy->conv.budget.enabled) {
        /* an impact budget steers max-bandwidth: QEMU's 100 ms line-rate
         * bursts, not the mean rate, are what the guest waits behind */
        m->limits.pacing = true;
        m->pace_default = true;
    }
    if (storage_copy && policy->enabled && policy->conv.budget.enabled &&
        (policy->conv.budget.steer & CONV_STEER_MIRROR)) {
        /* the mirrors start at the budget's first rate (or the request's
         * lower cap), not uncapped until the controller's first action:
         * a 1 GiB mirror can reach READY before it */
        uint64_t r0 = policy->conv.budget.rate_start_bps;
        if (r0 && (m->limits.mirror_speed_bps == 0 || m->limits.mirror_speed_bps > r0))
            m->limits.mirror_speed_bps = r0;
    }
    m->throttle_dormant = !limits->auto_converge && ctl_may_throttle(policy);
    if (storage_copy)
        storage_init(m);
    bool ask_dest = false;
    if (policy->permit_post_copy) {
        char why[160] = "";
        if (agent_postcopy_possible(why, sizeof(why)))
            ask_dest = true;
        else
            snprintf(m->postcopy_note, sizeof(m->postcopy_note), "%s", why);
    }
    if (ask_dest) {
        /* does the destination have postcopy-ram? (POST /v1/incoming with
         * "postcopy": true); the capabilities follow its answer */
        char *path = xasprintf("/v1/instances/%s", m->inst_name);
        m->refs++;
        peer_request(ag, m->dest_agent, "GET", path, NULL, 5, on_dest_postcopy, m);
        free(path);
    } else if (send_caps(m) != 0) {
        event_free(m->tick);
        storage_free(m);
        free(m->ctl);
        free(m);
        return ferr_set(e, FERR_STATE, "instance", "QMP of '%s' is not ready", in->spec.name);
    }
    in->mig = m;
    m->next = ag->migrations;
    ag->migrations = m;
    ag->n_migrations++;
    mig_evict(ag);
    log_info("agent", "msg=\"migration started\" id=%s instance=%s dest=%s", m->id,
             m->inst_name, m->dest_uri);
    *out = m;
    return 0;
}

int mig_cancel(struct migration *m, struct ferr *e)
{
    if (mig_terminal(m))
        return ferr_set(e, FERR_STATE, "", "migration %s has ended (%s)", m->id,
                        mig_state_name(m->state));
    if (m->state == MIGS_CONFIRMING)
        return ferr_set(e, FERR_STATE, "", "migration %s is past switchover; too late to cancel",
                        m->id);
    if (m->state == MIGS_POSTCOPY)
        return ferr_set(e, FERR_STATE, "",
                        "migration %s is in post-copy: the guest runs on the destination and "
                        "cannot go back",
                        m->id);
    if (m->continue_sent)
        return ferr_set(e, FERR_STATE, "", "migration %s is past switchover; too late to cancel",
                        m->id);
    m->cancel_requested = true;
    if (m->state == MIGS_RUNNING && !m->mem_started && m->st) /* mirroring disks */
        fail_and_restore(m, MIGS_CANCELLED, "cancelled on request");
    else if (m->state == MIGS_RUNNING)
        send_cancel(m);
    return 0;
}

int mig_set_mirror_speed(struct migration *m, uint64_t bps, struct ferr *e)
{
    if (mig_terminal(m))
        return ferr_set(e, FERR_STATE, "", "migration %s has ended (%s)", m->id,
                        mig_state_name(m->state));
    if (bps > (1ull << 40))
        return ferr_set(e, FERR_INVAL, "mirror_speed_bps",
                        "'mirror_speed_bps' must be 0 (no cap) .. 2^40");
    m->limits.mirror_speed_bps = bps;
    storage_set_speed(m, bps);
    log_info("agent", "msg=\"mirror speed set\" id=%s bps=%llu", m->id, (unsigned long long)bps);
    return 0;
}

void mig_on_event(struct migration *m, const char *event, json_t *data)
{
    if (!m->st || mig_terminal(m))
        return;
    if (strncmp(event, "BLOCK_JOB_", 10) == 0) {
        storage_on_event(m, event, data);
    } else if (strcmp(event, "MIGRATION") == 0) {
        const char *st = json_string_value(json_object_get(data, "status"));
        if (st && strcmp(st, "pre-switchover") == 0)
            storage_switchover(m);
    }
}

json_t *mig_sample_to_json(const struct mig_sample *s)
{
    json_t *o = json_pack("{s:I, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:i, s:I, s:I, s:I, s:I, s:I}",
                     "t_ms",
                     (json_int_t)s->t_ms, "phase", mig_phase_name(s->phase), "ram_total",
                     (json_int_t)s->ram_total, "ram_transferred", (json_int_t)s->ram_transferred,
                     "ram_remaining", (json_int_t)s->ram_remaining, "dirty_pages_rate",
                     (json_int_t)s->dirty_pages_rate, "bw_bps", (json_int_t)s->bw_bps,
                     "dirty_sync_count", (json_int_t)s->dirty_sync_count, "ram_duplicate",
                     (json_int_t)s->ram_duplicate, "throttle_pct", (int)s->throttle_pct,
                     "expected_downtime_ms", (json_int_t)s->expected_downtime_ms,
                     "postcopy_requests", (json_int_t)s->postcopy_requests,
                     "dirty_rate_hint_pps", (json_int_t)s->dirty_rate_hint_pps, "disk_total",
                     (json_int_t)s->disk_total, "disk_done", (json_int_t)s->disk_done);
    json_object_set_new(o, "census_dirty_bytes", json_integer((json_int_t)s->census_dirty_bytes));
    json_object_set_new(o, "census_dirty_ms", json_integer((json_int_t)s->census_dirty_ms));
    /* the guest's own disk (impact sampler, control.c) */
    json_object_set_new(o, "guest_disk_bps", json_integer((json_int_t)s->guest_disk_bps));
    json_object_set_new(o, "guest_disk_iops", json_integer((json_int_t)s->guest_disk_iops));
    json_object_set_new(o, "guest_p99_us", json_integer((json_int_t)s->guest_p99_us));
    return o;
}

/* The census as the API shows it (docs/AGENT.md). */
static json_t *census_to_json(const struct migration *m)
{
    const struct census *c = m->census;
    if (!c)
        return json_pack("{s:s, s:s}", "state", m->census_note[0] ? "failed" : "none", "note",
                         m->census_note);
    json_t *prof = json_array();
    for (uint32_t i = 0; i < c->nprofile; i++)
        json_array_append_new(prof, json_integer((json_int_t)c->profile[i]));
    json_t *o = json_pack(
        "{s:s, s:I, s:I, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:I, s:I, s:I}", "state", "taken",
        "nonzero_bytes", (json_int_t)c->nonzero_bytes, "ram_bytes", (json_int_t)c->ram_bytes,
        "rel_err", c->rel_err, "untouched_pages", (json_int_t)c->untouched_pages,
        "zero_mapped_pages", (json_int_t)c->zero_mapped_pages, "candidate_pages",
        (json_int_t)c->candidate_pages, "swapped_pages", (json_int_t)c->swapped_pages,
        "sampled_pages", (json_int_t)c->sampled_pages, "sampled_zero_pages",
        (json_int_t)c->sampled_zero, "pagemap_scaled", c->pagemap_scaled, "pagemap_bytes",
        (json_int_t)c->pagemap_bytes, "wall_us", (json_int_t)c->wall_us, "cpu_us",
        (json_int_t)c->cpu_us);
    json_object_set_new(o, "dirty_bytes", json_integer((json_int_t)c->dirty_bytes));
    json_object_set_new(o, "dirty_ms", json_integer((json_int_t)c->dirty_ms));
    json_object_set_new(o, "resamples", json_integer((json_int_t)c->resamples));
    json_object_set_new(o, "resample_us", json_integer((json_int_t)c->resample_us));
    json_object_set_new(o, "profile", prof);
    return o;
}

json_t *mig_to_json(const struct migration *m, bool samples)
{
    uint64_t now = agent_now_ms();
    uint64_t elapsed = (m->end_ms ? m->end_ms : now) - m->start_ms;
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:I, s:I, s:s}", "id", m->id, "instance",
        m->inst_name, "state", mig_state_name(m->state), "qemu_status", m->qemu_status,
        "dest_uri", m->dest_uri, "dest_agent", m->dest_agent, "limits",
        limits_to_json(&m->limits), "elapsed_ms", (json_int_t)elapsed, "started_at",
        (json_int_t)m->started_at, "error", m->error);
    json_object_set_new(o, "last_sample", mig_sample_to_json(&m->last));
    json_object_set_new(o, "samples_kept", json_integer((json_int_t)m->n_samples));
    json_object_set_new(o, "postcopy", json_boolean(m->postcopy));
    if (m->postcopy_note[0])
        json_object_set_new(o, "postcopy_note", json_string(m->postcopy_note));
    json_object_set_new(o, "auto_converge_dormant", json_boolean(m->throttle_dormant));
    if (m->limits.pacing) {
        json_t *pc = json_pack("{s:b, s:I, s:s}", "active", m->pace_on, "rate_bps",
                               (json_int_t)m->paced_bps, "by",
                               m->pace_default ? "budget" : "request");
        if (m->pace_t_ms)
            json_object_set_new(pc, "since_ms", json_integer((json_int_t)m->pace_t_ms));
        if (m->pace_note[0])
            json_object_set_new(pc, "note", json_string(m->pace_note));
        json_object_set_new(o, "pacing", pc);
    }
    static const char *const dr_names[] = {"none", "measuring", "measured", "refused"};
    json_t *dr = json_pack("{s:s, s:I}", "state", dr_names[m->dr_state], "pages_per_s",
                           (json_int_t)m->dirty_hint_pps);
    if (m->dr_note[0])
        json_object_set_new(dr, "note", json_string(m->dr_note));
    json_object_set_new(o, "dirty_rate", dr);
    json_object_set_new(o, "census", census_to_json(m));
    ctl_to_json(m->ctl, o); /* control.c: estimate, stalls, consent_pending */
    storage_to_json(m, o);  /* storage.c: the disk mirrors */
    if (m->mem_started)
        json_object_set_new(o, "final_stage",
                            json_pack("{s:I, s:I, s:I}", "link_bps", (json_int_t)m->link_bps,
                                      "link_moves", (json_int_t)m->link_moves, "migrate_t_ms",
                                      (json_int_t)m->migrate_t_ms));
    if (m->state == MIGS_SUCCEEDED || m->total_time_ms) {
        json_t *r = json_pack("{s:I, s:I, s:I, s:I, s:I}", "total_time_ms",
                              (json_int_t)m->total_time_ms, "downtime_ms",
                              (json_int_t)m->downtime_ms, "setup_time_ms",
                              (json_int_t)m->setup_time_ms, "ram_transferred",
                              (json_int_t)m->ram_transferred, "iterations",
                              (json_int_t)m->iterations);
        if (m->final_bps > 0)
            json_object_set_new(r, "final_stage_bps", json_integer((json_int_t)m->final_bps));
        json_object_set_new(o, "result", r);
    }
    if (samples) {
        json_t *a = json_array();
        for (size_t i = 0; i < m->n_samples; i++)
            json_array_append_new(a, mig_sample_to_json(&m->samples[i]));
        json_object_set_new(o, "samples", a);
    }
    return o;
}
