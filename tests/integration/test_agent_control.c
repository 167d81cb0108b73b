/* Integration: the convergence controller on real migrations between two
 * ferry-agents (tests/lib/lab) with a lab guest that never converges
 * (memload ferry.rate=max, working set 64 MiB, migration capped at 8 MiB/s).
 * Proves:
 *  - nova with timeout_action abort aborts at the completion timeout that
 *    the core computes (conv_nova_plan, ±3 s), the source runs on intact
 *    and the destination is cleaned up (DESIGN invariants 1, 2); post-copy
 *    stays off when the destination was prepared without it;
 *  - GET /v1/migrations/ID/trace is CSV that trace_parse() accepts, one row
 *    per kept sample;
 *  - POST /v1/migrations/ID/consent answers 409 when nothing is pending and
 *    400 naming the field for a bad body;
 *  - adaptive with post-copy permitted: a stall is reported, the consent
 *    request for post-copy is granted through the API, the migration
 *    finishes in post-copy (phase "postcopy" in its samples), the guest's
 *    memory is intact on the destination and the source is gone; while a
 *    consent request waits, the estimate says its ETA is a forecast that
 *    waits for consent, high end open (core/forecast.h). Needs root
 *    (userfaultfd).
 * Every wait is bounded. Needs the lab image (make lab). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/lab.h"
#include "../lib/test.h"
#include "core/conv.h"
#include "core/trace.h"

#define GUEST_MIB 256
#define SLOW_BPS (8ll << 20)  /* bytes/s: the guest dirties far more */
#define GONE_TIMEOUT_MS 10000 /* a QEMU or instance disappearing, ms */
#define NOVA_CT_S 5           /* completion_timeout_s per GiB (data_gb 2 → 10 s) */
#define ABORT_SLACK_MS 3000   /* abort time tolerance, ms */
#define PC_TIMEOUT_MS 120000  /* post-copy case, whole migration, ms */

static struct lab L;
static int lab_ok;
static char nova_id[64]; /* the aborted nova migration, for the trace/consent cases */
static const char *const NAME = "nc";
static const char *const CMDLINE_MAX =
    "console=ttyS0 quiet panic=-1 ferry.workload=memload ferry.ws_mib=64 ferry.rate=max";

static int intact(const struct lab_agent *a, const char *name)
{
    struct ferr e = {0};
    struct lab_integrity r;
    int rc = lab_verify(a, name, &r, &e);
    CHECK(rc == 0, "verify %s on %s: %s", name, a->name, e.msg);
    if (rc != 0)
        return 0;
    CHECK(r.ok == 1 && r.bad_pages == 0, "%s on %s: ok=%d bad_pages=%lld of %lld", name, a->name,
          r.ok, r.bad_pages, r.pages);
    return r.ok == 1 && r.bad_pages == 0;
}

static int ensure_guest(const struct lab_agent *a, const char *name)
{
    struct ferr e = {0};
    pid_t pid;
    char st[32];
    if (lab_instance_pid(a, name, &pid, st, sizeof(st), &e) == 0 && strcmp(st, "running") == 0)
        return 1;
    int rc = lab_launch_guest(a, name, GUEST_MIB, CMDLINE_MAX, LAB_BOOT_TIMEOUT_MS, &e);
    CHECK(rc == 0, "launch %s on %s: %s", name, a->name, e.msg);
    return rc == 0;
}

/* The event of kind action ("abort", "start_postcopy", ...) in m, or NULL. */
static json_t *find_event(json_t *m, const char *action)
{
    json_t *ev = json_object_get(m, "events");
    for (size_t i = 0; i < json_array_size(ev); i++)
        if (strcmp(lab_jstr(json_array_get(ev, i), "action"), action) == 0)
            return json_array_get(ev, i);
    return NULL;
}

static void t_nova_abort(void)
{
    if (!lab_ok)
        { CHECK(0, "lab did not start: a setup failure is a failure"); return; }
    const struct lab_agent *s = &L.agents[0], *d = &L.agents[1];
    if (!ensure_guest(s, NAME))
        return;
    struct ferr e = {0};
    pid_t src_pid = 0, dest_pid = 0;
    REQUIRE(lab_instance_pid(s, NAME, &src_pid, NULL, 0, &e) == 0, "%s", e.msg);
    /* the core's own schedule for these options and this guest */
    struct conv_policy cp;
    conv_policy_default(&cp, CONV_NOVA);
    cp.nova.downtime_ms = 100;
    cp.nova.downtime_steps = 3;
    cp.nova.downtime_delay_s = 10;
    cp.nova.completion_timeout_s = NOVA_CT_S;
    cp.nova.timeout_action = CONV_TIMEOUT_ABORT;
    cp.nova.ram_mib = GUEST_MIB;
    struct conv_nova_step steps[CONV_SCHED_MAX];
    size_t n = 0;
    uint64_t timeout_s = 0;
    REQUIRE(conv_nova_plan(&cp.nova, steps, CONV_SCHED_MAX, &n, &timeout_s) == 0, "nova plan");
    REQUIRE(timeout_s > 0 && timeout_s < 60, "timeout %llu s (data_gb %.2f)",
            (unsigned long long)timeout_s, conv_nova_data_gb(&cp.nova));
    /* post-copy permitted, but the destination is prepared without it: the
     * source must notice and leave post-copy off */
    json_t *pol =
        json_pack("{s:s, s:i, s:i, s:i, s:i, s:s, s:b}", "kind", "nova", "downtime_ms", 100,
                  "downtime_steps", 3, "downtime_delay_s", 10, "completion_timeout_s", NOVA_CT_S,
                  "timeout_action", "abort", "permit_post_copy", 1);
    char uri[160];
    int rc = lab_prepare_incoming_opts(s, d, NAME, 0, uri, sizeof(uri), &e);
    REQUIRE(rc == 0, "prepare: %s", e.msg);
    json_t *b =
        json_pack("{s:s, s:s, s:s, s:{s:I}, s:O}", "instance", NAME, "dest_uri", uri, "dest_agent",
                  d->url, "limits", "max_bandwidth_bps", (json_int_t)SLOW_BPS, "policy", pol);
    int st = 0;
    json_t *o = NULL;
    rc = lab_api(s, "POST", "/v1/migrations", b, &st, &o, &e);
    json_decref(b);
    json_decref(pol);
    snprintf(nova_id, sizeof(nova_id), "%s", lab_jstr(o, "id"));
    json_decref(o);
    REQUIRE(rc == 0 && st == 202 && nova_id[0], "start: %d %s", st, e.msg);
    if (lab_instance_pid(d, NAME, &dest_pid, NULL, 0, &e) != 0)
        dest_pid = 0;
    json_t *m = NULL;
    rc = lab_migration_wait(s, nova_id, (int)(timeout_s * 1000 + 40000), &m, &e);
    REQUIRE(rc == 0, "wait: %s", e.msg);
    const char *err = lab_jstr(m, "error");
    CHECK(strcmp(lab_jstr(m, "state"), "failed") == 0, "state %s error '%s'", lab_jstr(m, "state"),
          err);
    CHECK(strstr(err, "controller aborted") != NULL, "error '%s'", err);
    CHECK(!json_is_true(json_object_get(m, "postcopy")) &&
              strstr(lab_jstr(m, "postcopy_note"), "destination") != NULL,
          "post-copy negotiated with a destination prepared without it (note '%s')",
          lab_jstr(m, "postcopy_note"));
    json_t *ab = find_event(m, "abort");
    CHECK(ab != NULL, "no abort event");
    long long t_abort = ab ? lab_jint(ab, "t_ms", -1) : -1;
    long long want = (long long)timeout_s * 1000;
    CHECK(t_abort >= want - ABORT_SLACK_MS && t_abort <= want + ABORT_SLACK_MS,
          "abort at %lld ms, core's completion timeout %lld ms", t_abort, want);
    json_t *dt = find_event(m, "set_downtime");
    CHECK(dt && lab_jint(dt, "value", -1) == (long long)steps[0].downtime_ms,
          "first downtime step %lld, core says %llu", dt ? lab_jint(dt, "value", -1) : -1,
          (unsigned long long)steps[0].downtime_ms);
    printf("  nova abort at %lld ms (core: > %lld ms), dirty rate %s\n", t_abort, want,
           lab_jstr(json_object_get(m, "dirty_rate"), "state"));
    json_decref(m);
    /* source runs on, same process, intact; destination cleaned */
    pid_t pid = 0;
    char rs[32] = "";
    rc = lab_instance_pid(s, NAME, &pid, rs, sizeof(rs), &e);
    for (int i = 0; i < 30 && rc == 0 && strcmp(rs, "running") != 0; i++) {
        usleep(200000);
        rc = lab_instance_pid(s, NAME, &pid, rs, sizeof(rs), &e);
    }
    CHECK(rc == 0 && pid == src_pid && strcmp(rs, "running") == 0,
          "source pid %d (was %d) state '%s'", (int)pid, (int)src_pid, rs);
    intact(s, NAME);
    CHECK(lab_instance_wait_gone(d, NAME, GONE_TIMEOUT_MS), "destination still lists %s", NAME);
    if (dest_pid > 0)
        CHECK(lab_pid_wait_gone(dest_pid, GONE_TIMEOUT_MS), "destination QEMU %d alive",
              (int)dest_pid);
}

static void t_trace(void)
{
    if (!lab_ok || !nova_id[0])
        return test_skip("no finished migration");
    const struct lab_agent *s = &L.agents[0];
    char path[128];
    snprintf(path, sizeof(path), "/v1/migrations/%s", nova_id);
    struct ferr e = {0};
    int st = 0;
    json_t *m = NULL;
    REQUIRE(lab_api(s, "GET", path, NULL, &st, &m, &e) == 0 && st == 200, "GET: %d %s", st, e.msg);
    long long kept = lab_jint(m, "samples_kept", -1);
    json_decref(m);
    snprintf(path, sizeof(path), "/v1/migrations/%s/trace", nova_id);
    char *body = NULL;
    size_t len = 0;
    REQUIRE(lab_api_text(s, "GET", path, &st, &body, &len, &e) == 0, "trace: %s", e.msg);
    CHECK(st == 200, "trace status %d", st);
    struct mig_sample *rows = calloc((size_t)(kept > 0 ? kept : 1) + 1, sizeof(*rows));
    size_t nrows = 0;
    int rc = trace_parse(body, len, rows, (size_t)kept + 1, &nrows, &e);
    CHECK(rc == 0, "trace_parse: %s (field %s)", e.msg, e.field);
    CHECK(kept > 10 && (long long)nrows == kept, "%zu rows, samples_kept %lld", nrows, kept);
    int active = 0;
    for (size_t i = 0; i < nrows; i++)
        active += rows[i].phase == MIG_PHASE_ACTIVE && rows[i].ram_transferred > 0;
    CHECK(active > 0, "no active sample with bytes sent in the trace");
    free(rows);
    free(body);
}

static void consent_expect(const char *id, const char *body, int want_status,
                           const char *want_field)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/migrations/%s/consent", id);
    json_t *b = json_loads(body, 0, NULL);
    struct ferr e = {0};
    int st = 0;
    json_t *o = NULL;
    int rc = lab_api(&L.agents[0], "POST", path, b, &st, &o, &e);
    json_decref(b);
    CHECK(rc == 0, "POST consent %s: %s", body, e.msg);
    json_t *err = json_object_get(o, "error");
    CHECK(st == want_status, "consent %s: status %d, want %d", body, st, want_status);
    if (want_field)
        CHECK(strcmp(lab_jstr(err, "field"), want_field) == 0, "consent %s: field '%s', want '%s'",
              body, lab_jstr(err, "field"), want_field);
    json_decref(o);
}

static void t_consent_api(void)
{
    if (!lab_ok || !nova_id[0])
        return test_skip("no finished migration");
    consent_expect(nova_id, "{\"step\":\"postcopy\",\"granted\":true}", 409, NULL);
    consent_expect(nova_id, "{\"step\":\"pause\",\"granted\":false}", 409, NULL);
    consent_expect(nova_id, "{\"step\":\"warp\",\"granted\":true}", 400, "step");
    consent_expect(nova_id, "{\"step\":\"pause\"}", 400, "granted");
    consent_expect(nova_id, "{\"step\":\"pause\",\"granted\":1}", 400, "granted");
    consent_expect(nova_id, "{\"step\":7,\"granted\":true}", 400, "step");
    consent_expect(nova_id, "{\"step\":\"pause\",\"granted\":true,\"x\":1}", 400, "x");
    consent_expect("m-none-1", "{\"step\":\"pause\",\"granted\":true}", 404, NULL);
}

static int has_step(json_t *arr, const char *step)
{
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const char *x = json_string_value(json_array_get(arr, i));
        if (x && strcmp(x, step) == 0)
            return 1;
    }
    return 0;
}

static void t_postcopy(void)
{
    if (!lab_ok)
        { CHECK(0, "lab did not start: a setup failure is a failure"); return; }
    if (!test_is_root())
        return test_skip("post-copy needs userfaultfd: run as root");
    const struct lab_agent *s = &L.agents[0], *d = &L.agents[1];
    if (!ensure_guest(s, NAME))
        return;
    struct ferr e = {0};
    pid_t src_pid = 0;
    REQUIRE(lab_instance_pid(s, NAME, &src_pid, NULL, 0, &e) == 0, "%s", e.msg);
    json_t *pol = json_pack("{s:s, s:b, s:[s, s], s:i, s:i, s:i, s:i, s:i, s:i}", "kind",
                            "adaptive", "permit_post_copy", 1, "ladder", "throttle", "postcopy",
                            "deadline_s", 100, "downtime_max_ms", 300, "stall_min_ms", 3000,
                            "stall_periods", 1, "settle_ms", 3000, "settle_max_ms", 20000);
    json_t *lim = json_pack("{s:I}", "max_bandwidth_bps", (json_int_t)SLOW_BPS);
    char id[64];
    int rc = lab_migrate_start_policy(s, d, NAME, lim, pol, id, sizeof(id), &e);
    json_decref(lim);
    json_decref(pol);
    REQUIRE(rc == 0, "start: %s", e.msg);
    char path[128];
    snprintf(path, sizeof(path), "/v1/migrations/%s", id);
    uint64_t deadline = lab_now_ms() + PC_TIMEOUT_MS;
    json_t *m = NULL;
    int granted_pc = 0, granted_thr = 0, negotiated = 0, cancel_tried = 0;
    int asked_polls = 0, wait_seen = 0;
    const char *state = "";
    while (lab_now_ms() < deadline) {
        int st = 0;
        json_decref(m);
        m = NULL;
        rc = lab_api(s, "GET", path, NULL, &st, &m, &e);
        REQUIRE(rc == 0 && st == 200, "GET migration: %d %s", st, e.msg);
        state = lab_jstr(m, "state");
        negotiated |= json_is_true(json_object_get(m, "postcopy"));
        if (!strcmp(state, "succeeded") || !strcmp(state, "failed") || !strcmp(state, "cancelled"))
            break;
        json_t *cp = json_object_get(m, "consent_pending");
        const char *grant = NULL;
        if (has_step(cp, "throttle") && !granted_thr)
            grant = "throttle";
        /* post-copy only once the stall is on record, as an operator would */
        else if (has_step(cp, "postcopy") && !granted_pc &&
                 json_array_size(json_object_get(m, "stalls")) > 0)
            grant = "postcopy";
        if (grant) {
            /* the ETA while a request waits: forecast with a prompt yes,
             * the wait unknown (core/forecast.h) */
            json_t *est = json_object_get(m, "estimate");
            asked_polls++;
            if (json_is_true(json_object_get(est, "eta_consent_wait")) &&
                json_is_true(json_object_get(est, "eta_forecast")) &&
                json_is_null(json_object_get(est, "eta_high_ms")))
                wait_seen++;
            char cpath[160], body[96];
            snprintf(cpath, sizeof(cpath), "/v1/migrations/%s/consent", id);
            snprintf(body, sizeof(body), "{\"step\":\"%s\",\"granted\":true}", grant);
            json_t *b = json_loads(body, 0, NULL);
            rc = lab_api(s, "POST", cpath, b, &st, NULL, &e);
            json_decref(b);
            CHECK(rc == 0 && st == 200, "grant %s: %d %s", grant, st, e.msg);
            if (!strcmp(grant, "postcopy"))
                granted_pc = 1;
            else
                granted_thr = 1;
        }
        if (!strcmp(state, "postcopy")) {
            /* cancelling now must be refused: the guest runs on the destination */
            char xpath[160];
            snprintf(xpath, sizeof(xpath), "/v1/migrations/%s/cancel", id);
            rc = lab_api(s, "POST", xpath, NULL, &st, NULL, &e);
            CHECK(rc == 0 && st == 409, "cancel in post-copy: %d %s", st, e.msg);
            cancel_tried = 1;
        }
        usleep(250000);
    }
    REQUIRE(m, "no migration");
    CHECK(negotiated, "postcopy-ram not negotiated: %s", lab_jstr(m, "postcopy_note"));
    CHECK(strcmp(state, "succeeded") == 0, "state '%s' error '%s'", state, lab_jstr(m, "error"));
    CHECK(json_array_size(json_object_get(m, "stalls")) > 0, "no stall reported");
    CHECK(granted_pc, "post-copy consent never requested after a stall");
    CHECK(wait_seen > 0, "no estimate said it waits for consent (%d polls with a request)",
          asked_polls);
    CHECK(cancel_tried, "state 'postcopy' never seen by the poller");
    CHECK(find_event(m, "start_postcopy") != NULL, "no start_postcopy event");
    json_t *consent = find_event(m, "consent");
    CHECK(consent && lab_jint(consent, "t_ms", -1) >= 0, "consent answer not in events");
    char *txt = json_dumps(json_object_get(m, "events"), JSON_COMPACT);
    printf("  post-copy: state %s, events %s\n", state, txt ? txt : "");
    free(txt);
    json_decref(m);
    /* the samples show the post-copy phase */
    int st = 0;
    snprintf(path, sizeof(path), "/v1/migrations/%s?samples=1", id);
    m = NULL;
    rc = lab_api(s, "GET", path, NULL, &st, &m, &e);
    CHECK(rc == 0 && st == 200, "GET samples: %d %s", st, e.msg);
    json_t *sm = json_object_get(m, "samples");
    int pc = 0;
    long long hint = 0, thr = 0;
    for (size_t i = 0; i < json_array_size(sm); i++) {
        if (lab_jint(json_array_get(sm, i), "throttle_pct", -1) > thr)
            thr = lab_jint(json_array_get(sm, i), "throttle_pct", -1);
        pc += strcmp(lab_jstr(json_array_get(sm, i), "phase"), "postcopy") == 0;
        if (lab_jint(json_array_get(sm, i), "dirty_rate_hint_pps", -1) > hint)
            hint = lab_jint(json_array_get(sm, i), "dirty_rate_hint_pps", -1);
    }
    CHECK(pc > 0, "no post-copy sample among %zu", json_array_size(sm));
    /* the controller's throttle took effect although auto-converge cannot be
     * switched on mid-migration (dormant from the start, capped at 1 %) */
    CHECK(thr >= 20, "highest cpu-throttle-percentage %lld, controller asked for 20", thr);
    for (size_t i = 0; getenv("FERRY_TEST_VERBOSE") && i < json_array_size(sm); i += 4)
        printf("    t %lld phase %s sync %lld thr %lld rem %lld\n",
               lab_jint(json_array_get(sm, i), "t_ms", -1),
               lab_jstr(json_array_get(sm, i), "phase"),
               lab_jint(json_array_get(sm, i), "dirty_sync_count", -1),
               lab_jint(json_array_get(sm, i), "throttle_pct", -1),
               lab_jint(json_array_get(sm, i), "ram_remaining", -1));
    CHECK(hint > 0, "no pass-1 dirty rate hint in the samples (%s)",
          lab_jstr(json_object_get(m, "dirty_rate"), "note"));
    printf("  %d post-copy samples of %zu; pass-1 dirty rate hint %lld pages/s (%s); "
           "throttle up to %lld %%\n",
           pc, json_array_size(sm), hint, lab_jstr(json_object_get(m, "dirty_rate"), "state"), thr);
    json_decref(m);
    if (strcmp(state, "succeeded") != 0)
        return;
    CHECK(lab_pid_wait_gone(src_pid, GONE_TIMEOUT_MS), "source QEMU %d alive", (int)src_pid);
    CHECK(lab_instance_wait_gone(s, NAME, GONE_TIMEOUT_MS), "source still lists %s", NAME);
    intact(d, NAME);
}

int main(void)
{
    struct ferr e = {0};
    uint64_t t0 = lab_now_ms();
    lab_ok = lab_start(&L, 2, &e) == 0;
    if (!lab_ok)
        printf("FAIL lab start: %s\n", e.msg);
    test_run("agent control: nova aborts at the core's completion timeout", t_nova_abort);
    test_run("agent control: trace endpoint is CSV trace_parse accepts", t_trace);
    test_run("agent control: consent endpoint 409 without a request, 400 on bad body",
             t_consent_api);
    test_run("agent control: adaptive stalls, post-copy with consent completes intact", t_postcopy);
    lab_stop(&L);
    fprintf(stderr, "test_agent_control: %.1f s\n", (double)(lab_now_ms() - t0) / 1000.0);
    return lab_ok ? test_done() : 1;
}
