/* control — per-migration estimator + controller in the agent; see
 * control.h for what each controller action becomes in QMP. */
#include "agent/control.h"

#include "core/forecast.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/storage.h"
#include "util/jsonin.h"
#include "util/log.h"
#include "util/xalloc.h"

/* --- policy parsing ------------------------------------------------------ */

static const char *const kind_names[] = {"nova", "schedule", "adaptive", NULL};

static int step_parse(const char *s, enum conv_step *out)
{
    for (int i = 0; i < CONV_STEP__COUNT; i++)
        if (strcmp(s, conv_step_name((enum conv_step)i)) == 0) {
            *out = (enum conv_step)i;
            return 0;
        }
    return -1;
}

static int u32_field(const json_t *o, const char *k, uint64_t min, uint64_t max, uint32_t *out,
                     struct ferr *e)
{
    uint64_t v = *out;
    int rc = jsonin_u64(o, k, min, max, false, &v, e);
    if (rc == 0)
        *out = (uint32_t)v;
    return rc;
}

/* "consent_required": ["throttle", ...] replaces the kind's default set. */
static int parse_steps(const json_t *o, const char *key, enum conv_step *steps, size_t *n,
                       struct ferr *e)
{
    const json_t *a = json_object_get(o, key);
    if (!json_is_array(a))
        return ferr_set(e, FERR_INVAL, key, "'%s' must be an array of step names", key);
    if (json_array_size(a) > CONV_STEP__COUNT)
        return ferr_set(e, FERR_INVAL, key, "'%s' has too many entries", key);
    *n = 0;
    for (size_t i = 0; i < json_array_size(a); i++) {
        const char *s = json_string_value(json_array_get(a, i));
        if (!s || step_parse(s, &steps[*n]) != 0)
            return ferr_set(e, FERR_INVAL, key,
                            "'%s'[%zu] must be bandwidth, throttle, postcopy, pause or "
                            "io_throttle",
                            key, i);
        (*n)++;
    }
    return 0;
}

static int parse_nova(const json_t *o, struct ctl_policy *p, struct ferr *e)
{
    static const char *const keys[] = {"kind", "consent_required", "stall_min_ms",
                                       "stall_periods", "stall_no_bytes_ms", "downtime_ms",
                                       "downtime_steps", "downtime_delay_s",
                                       "completion_timeout_s", "timeout_action",
                                       "permit_post_copy", NULL};
    struct conv_nova *n = &p->conv.nova;
    int rc = jsonin_only_keys(o, keys, e);
    if (rc == 0)
        rc = u32_field(o, "downtime_ms", 1, 60000, &n->downtime_ms, e);
    if (rc == 0)
        rc = u32_field(o, "downtime_steps", 1, 1000, &n->downtime_steps, e);
    if (rc == 0)
        rc = u32_field(o, "downtime_delay_s", 1, 100000, &n->downtime_delay_s, e);
    if (rc == 0)
        rc = u32_field(o, "completion_timeout_s", 0, 100000, &n->completion_timeout_s, e);
    if (rc == 0 && json_object_get(o, "timeout_action")) {
        const char *a = json_string_value(json_object_get(o, "timeout_action"));
        if (a && strcmp(a, "abort") == 0)
            n->timeout_action = CONV_TIMEOUT_ABORT;
        else if (a && strcmp(a, "force_complete") == 0)
            n->timeout_action = CONV_TIMEOUT_FORCE_COMPLETE;
        else
            rc = ferr_set(e, FERR_INVAL, "timeout_action",
                          "'timeout_action' must be abort or force_complete");
    }
    if (rc == 0)
        rc = jsonin_bool(o, "permit_post_copy", false, &p->permit_post_copy, e);
    n->permit_post_copy = p->permit_post_copy;
    return rc;
}

static int parse_schedule(const json_t *o, struct ctl_policy *p, struct ferr *e)
{
    static const char *const keys[] = {"kind", "consent_required", "stall_min_ms",
                                       "stall_periods", "stall_no_bytes_ms", "entries", NULL};
    static const char *const ekeys[] = {"after_iteration", "action", "downtime_ms", NULL};
    static const char *const acts[] = {"set_downtime", "postcopy", "pause", "abort"};
    int rc = jsonin_only_keys(o, keys, e);
    if (rc)
        return rc;
    const json_t *a = json_object_get(o, "entries");
    if (!json_is_array(a) || json_array_size(a) == 0)
        return ferr_set(e, FERR_INVAL, "entries", "'entries' must be a non-empty array");
    if (json_array_size(a) > CONV_SCHED_MAX)
        return ferr_set(e, FERR_INVAL, "entries", "'entries' has more than %d entries",
                        CONV_SCHED_MAX);
    struct conv_schedule *s = &p->conv.schedule;
    s->n = 0;
    for (size_t i = 0; i < json_array_size(a); i++) {
        const json_t *x = json_array_get(a, i);
        struct conv_sched_entry *en = &s->e[s->n];
        if (!json_is_object(x))
            return ferr_set(e, FERR_INVAL, "entries", "'entries'[%zu] must be an object", i);
        rc = jsonin_only_keys(x, ekeys, e);
        if (rc == 0)
            rc = jsonin_u64(x, "after_iteration", 0, 1000000, true, &en->after_iteration, e);
        const char *an = json_string_value(json_object_get(x, "action"));
        int k = -1;
        for (int j = 0; an && j < 4; j++)
            if (strcmp(an, acts[j]) == 0)
                k = j;
        if (rc == 0 && k < 0)
            rc = ferr_set(e, FERR_INVAL, "action",
                          "'entries'[%zu].action must be set_downtime, postcopy, pause or abort",
                          i);
        if (rc == 0)
            en->act = (enum conv_sched_act)k;
        if (rc == 0)
            rc = jsonin_u64(x, "downtime_ms", 1, 60000, k == CONV_SCHED_SET_DOWNTIME,
                            &en->downtime_ms, e);
        if (rc)
            return rc;
        if (en->act == CONV_SCHED_POSTCOPY)
            p->permit_post_copy = true;
        s->n++;
    }
    return 0;
}

/* "budget": the guest-impact budget of the adaptive policy
 * (docs/CONTROLLER.md "Impact budget"). */
static int parse_budget(const json_t *o, struct ctl_policy *p, struct ferr *e)
{
    static const char *const keys[] = {
        "min_throughput_pct", "max_p99_latency_ratio", "max_p99_latency_ms", "min_rate_bps",
        "max_rate_bps", "start_rate_bps", "steer", "io_throttle", "on_conflict", "conflict_ms",
        "min_requests", "baseline_s", "yield_to_ladder", NULL};
    struct conv_budget *b = &p->conv.budget;
    if (!json_is_object(o))
        return ferr_set(e, FERR_INVAL, "budget", "'budget' must be an object");
    conv_budget_default(b);
    int rc = jsonin_only_keys(o, keys, e);
    if (rc == 0)
        rc = u32_field(o, "min_throughput_pct", 0, 100, &b->min_throughput_pct, e);
    const json_t *r = json_object_get(o, "max_p99_latency_ratio");
    if (rc == 0 && r) {
        if (!json_is_number(r) || !(json_number_value(r) > 1.0) || json_number_value(r) > 1000.0)
            rc = ferr_set(e, FERR_INVAL, "max_p99_latency_ratio",
                          "'max_p99_latency_ratio' must be a number > 1 and <= 1000");
        else
            b->max_p99_ratio = json_number_value(r);
    }
    r = json_object_get(o, "max_p99_latency_ms");
    if (rc == 0 && r) {
        if (!json_is_number(r) || !(json_number_value(r) > 0) || json_number_value(r) > 600000.0)
            rc = ferr_set(e, FERR_INVAL, "max_p99_latency_ms",
                          "'max_p99_latency_ms' must be a number > 0 and <= 600000");
        else
            b->max_p99_us = (uint64_t)(json_number_value(r) * 1000.0);
    }
    if (rc == 0)
        rc = jsonin_u64(o, "min_rate_bps", 65536, UINT64_C(1) << 40, false, &b->rate_min_bps, e);
    if (rc == 0)
        rc = jsonin_u64(o, "max_rate_bps", 65536, UINT64_C(1) << 40, false, &b->rate_max_bps, e);
    if (rc == 0 && !json_object_get(o, "start_rate_bps")) {
        /* default start inside the given range */
        if (b->rate_start_bps > b->rate_max_bps)
            b->rate_start_bps = b->rate_max_bps;
        if (b->rate_start_bps < b->rate_min_bps)
            b->rate_start_bps = b->rate_min_bps;
    }
    if (rc == 0)
        rc = jsonin_u64(o, "start_rate_bps", 65536, UINT64_C(1) << 40, false, &b->rate_start_bps,
                        e);
    const char *steer = json_string_value(json_object_get(o, "steer"));
    if (rc == 0 && json_object_get(o, "steer")) {
        if (steer && strcmp(steer, "mirror") == 0)
            b->steer = CONV_STEER_MIRROR;
        else if (steer && strcmp(steer, "bandwidth") == 0)
            b->steer = CONV_STEER_BANDWIDTH;
        else if (steer && strcmp(steer, "both") == 0)
            b->steer = CONV_STEER_MIRROR | CONV_STEER_BANDWIDTH;
        else
            rc = ferr_set(e, FERR_INVAL, "steer", "'steer' must be mirror, bandwidth or both");
    }
    if (rc == 0)
        rc = jsonin_bool(o, "io_throttle", false, &b->io_throttle, e);
    const char *oc = json_string_value(json_object_get(o, "on_conflict"));
    if (rc == 0 && json_object_get(o, "on_conflict")) {
        if (oc && strcmp(oc, "waive") == 0)
            b->abort_on_conflict = false;
        else if (oc && strcmp(oc, "abort") == 0)
            b->abort_on_conflict = true;
        else
            rc = ferr_set(e, FERR_INVAL, "on_conflict", "'on_conflict' must be waive or abort");
    }
    if (rc == 0)
        rc = jsonin_u64(o, "conflict_ms", 1000, 3600000, false, &b->conflict_ms, e);
    if (rc == 0)
        rc = u32_field(o, "min_requests", 1, 1000000, &b->min_ops, e);
    if (rc == 0)
        rc = jsonin_bool(o, "yield_to_ladder", false, &b->yield_to_ladder, e);
    if (rc == 0)
        rc = jsonin_u64(o, "baseline_s", 1, IMPACT_RING - 4, false, &p->baseline_s, e);
    return rc;
}

static int parse_adaptive(const json_t *o, struct ctl_policy *p, struct ferr *e)
{
    static const char *const keys[] = {
        "kind", "consent_required", "stall_min_ms", "stall_periods", "stall_no_bytes_ms",
        "deadline_s", "downtime_start_ms", "downtime_max_ms", "max_bandwidth_bps",
        "throttle_initial_pct", "throttle_increment_pct", "throttle_max_pct", "ladder",
        "settle_ms", "settle_max_ms", "headroom_ms", "permit_post_copy", "budget", NULL};
    struct conv_adaptive *a = &p->conv.adaptive;
    uint64_t deadline_s = a->deadline_ms / 1000;
    int rc = jsonin_only_keys(o, keys, e);
    if (rc == 0)
        rc = jsonin_u64(o, "deadline_s", 1, 7 * 86400, false, &deadline_s, e);
    a->deadline_ms = deadline_s * 1000;
    if (rc == 0)
        rc = jsonin_u64(o, "downtime_start_ms", 1, 60000, false, &a->downtime_start_ms, e);
    if (rc == 0)
        rc = jsonin_u64(o, "downtime_max_ms", 1, 60000, false, &a->downtime_max_ms, e);
    if (rc == 0)
        rc = jsonin_u64(o, "max_bandwidth_bps", 0, UINT64_C(1) << 40, false, &a->bw_cap_bps, e);
    if (rc == 0)
        rc = u32_field(o, "throttle_initial_pct", 1, 99, &a->throttle_initial_pct, e);
    if (rc == 0)
        rc = u32_field(o, "throttle_increment_pct", 1, 99, &a->throttle_increment_pct, e);
    if (rc == 0)
        rc = u32_field(o, "throttle_max_pct", 1, 99, &a->throttle_max_pct, e);
    if (rc == 0 && json_object_get(o, "ladder"))
        rc = parse_steps(o, "ladder", a->ladder, &a->n_ladder, e);
    if (rc == 0)
        rc = jsonin_u64(o, "settle_ms", 1, 3600000, false, &a->settle_ms, e);
    if (rc == 0)
        rc = jsonin_u64(o, "settle_max_ms", 1, 3600000, false, &a->settle_max_ms, e);
    if (rc == 0)
        rc = jsonin_u64(o, "headroom_ms", 0, 60000, false, &a->headroom_ms, e);
    if (rc == 0)
        rc = jsonin_bool(o, "permit_post_copy", false, &p->permit_post_copy, e);
    if (rc == 0 && json_object_get(o, "budget"))
        rc = parse_budget(json_object_get(o, "budget"), p, e);
    /* set by ctl_set_postcopy once postcopy-ram is negotiated on both sides */
    a->postcopy_available = false;
    return rc;
}

int ctl_policy_from_json(const json_t *obj, uint64_t ram_mib, struct ctl_policy *out,
                         struct ferr *e)
{
    memset(out, 0, sizeof(*out));
    if (!obj)
        return 0;
    if (!json_is_object(obj))
        return ferr_set(e, FERR_INVAL, "policy", "'policy' must be an object");
    const char *k = json_string_value(json_object_get(obj, "kind"));
    if (!k)
        return ferr_set(e, FERR_INVAL, "kind",
                        "'policy.kind' must be one of none, nova, schedule, adaptive");
    if (strcmp(k, "none") == 0) {
        static const char *const keys[] = {"kind", NULL};
        return jsonin_only_keys(obj, keys, e);
    }
    int kind = -1;
    for (int i = 0; kind_names[i]; i++)
        if (strcmp(k, kind_names[i]) == 0)
            kind = i;
    if (kind < 0)
        return ferr_set(e, FERR_INVAL, "kind",
                        "'policy.kind' must be one of none, nova, schedule, adaptive");
    struct ctl_policy p;
    memset(&p, 0, sizeof(p));
    p.enabled = true;
    conv_policy_default(&p.conv, (enum conv_kind)kind);
    p.conv.nova.ram_mib = ram_mib;
    int rc;
    switch ((enum conv_kind)kind) {
    case CONV_NOVA:
        rc = parse_nova(obj, &p, e);
        break;
    case CONV_SCHEDULE:
        rc = parse_schedule(obj, &p, e);
        break;
    default:
        rc = parse_adaptive(obj, &p, e);
        break;
    }
    if (rc == 0 && json_object_get(obj, "consent_required")) {
        enum conv_step st[CONV_STEP__COUNT];
        size_t n = 0;
        rc = parse_steps(obj, "consent_required", st, &n, e);
        for (int i = 0; rc == 0 && i < CONV_STEP__COUNT; i++)
            p.conv.consent_required[i] = false;
        for (size_t i = 0; rc == 0 && i < n; i++)
            p.conv.consent_required[st[i]] = true;
    }
    uint64_t v = 0;
    if (rc == 0 && (rc = jsonin_u64(obj, "stall_min_ms", 1, 3600000, false, &v, e)) == 0)
        p.conv.stall.min_ms = v;
    v = 0;
    if (rc == 0 && (rc = jsonin_u64(obj, "stall_periods", 1, 15, false, &v, e)) == 0)
        p.conv.stall.k_periods = (uint32_t)v;
    v = 0;
    if (rc == 0 && (rc = jsonin_u64(obj, "stall_no_bytes_ms", 1, 3600000, false, &v, e)) == 0)
        p.conv.stall.no_bytes_ms = v;
    if (rc == 0) { /* what conv_init rejects, with the field it names */
        struct conv *c = xcalloc(1, sizeof(*c));
        rc = conv_init(c, &p.conv, e);
        free(c);
    }
    if (rc == 0)
        *out = p;
    return rc;
}

/* --- running ------------------------------------------------------------ */

int ctl_init(struct mig_control *c, const struct ctl_policy *pol, struct ferr *e)
{
    memset(c, 0, sizeof(*c));
    c->pol = *pol;
    struct est_params ep;
    memset(&ep, 0, sizeof(ep));
    if (pol->enabled && pol->conv.kind == CONV_ADAPTIVE)
        ep.max_downtime_ms = pol->conv.adaptive.downtime_max_ms;
    est_init(&c->est, &ep);
    if (pol->enabled)
        return conv_init(&c->conv, &pol->conv, e);
    return 0;
}

bool ctl_may_throttle(const struct ctl_policy *pol)
{
    if (!pol->enabled || pol->conv.kind != CONV_ADAPTIVE)
        return false;
    for (size_t i = 0; i < pol->conv.adaptive.n_ladder; i++)
        if (pol->conv.adaptive.ladder[i] == CONV_STEP_THROTTLE)
            return true;
    return false;
}

int ctl_set_postcopy(struct mig_control *c, bool available, struct ferr *e)
{
    if (!c->pol.enabled)
        return 0;
    c->pol.conv.adaptive.postcopy_available = available;
    c->pol.conv.nova.permit_post_copy = c->pol.permit_post_copy && available;
    return conv_init(&c->conv, &c->pol.conv, e);
}

static struct ctl_event *ev_add(struct mig_control *c, uint64_t t_ms, enum conv_act_kind k,
                                const char *note)
{
    if (c->n_ev >= CTL_EVENTS_MAX) {
        c->ev_dropped++;
        return NULL;
    }
    struct ctl_event *x = &c->ev[c->n_ev++];
    memset(x, 0, sizeof(*x));
    x->t_ms = t_ms;
    x->kind = k;
    snprintf(x->note, sizeof(x->note), "%s", note ? note : "");
    return x;
}

/* A QMP command issued for an action: reply recorded only on failure. */
struct ctl_req {
    struct migration *m;
    enum conv_act_kind kind;
    char what[48];
};

static void on_ctl_reply(struct instance *in, const struct ferr *err, json_t *ret, void *ctx)
{
    (void)in;
    (void)ret;
    struct ctl_req *r = ctx;
    r->m->refs--;
    if (err && r->m->ctl) {
        char note[CONV_REASON_MAX];
        snprintf(note, sizeof(note), "%s refused: %.100s", r->what, err->msg);
        ev_add(r->m->ctl, agent_now_ms() - r->m->start_ms, r->kind, note);
        log_warn("agent", "msg=\"controller action failed\" id=%s what=%s err=\"%s\"", r->m->id,
                 r->what, err->msg);
    }
    free(r);
}

static void qmp_act(struct migration *m, enum conv_act_kind kind, const char *cmd, json_t *args,
                    const char *what)
{
    if (!m->inst) {
        json_decref(args);
        return;
    }
    struct ctl_req *r = xcalloc(1, sizeof(*r));
    r->m = m;
    r->kind = kind;
    snprintf(r->what, sizeof(r->what), "%s", what);
    m->refs++;
    if (inst_qmp(m->inst, cmd, args, on_ctl_reply, r) != 0) {
        m->refs--;
        free(r);
        if (m->ctl) {
            char note[96];
            snprintf(note, sizeof(note), "%s not sent: QMP not ready", what);
            ev_add(m->ctl, agent_now_ms() - m->start_ms, kind, note);
        }
    }
}

/* Sends cpu-throttle-initial/-increment and max-cpu-throttle, and
 * throttle-trigger-threshold 1 %: QEMU then throttles (or steps up) at the
 * second bitmap sync from now whenever the guest dirtied more than 1 % of
 * what was sent, instead of waiting for its default 50 %. The controller
 * has decided that the throttle is needed; this makes it happen. */
static void set_throttle_params(struct migration *m, uint32_t initial, uint32_t inc,
                                uint32_t max)
{
    qmp_act(m, CONV_ACT_SET_THROTTLE, "migrate-set-parameters",
            json_pack("{s:i, s:i, s:i, s:i}", "cpu-throttle-initial", (int)initial,
                      "cpu-throttle-increment", (int)inc, "max-cpu-throttle", (int)max,
                      "throttle-trigger-threshold", 1),
            "cpu-throttle parameters");
}

/* SET_THROTTLE. QEMU throttles at cpu-throttle-initial when auto-converge
 * first triggers, then adds cpu-throttle-increment at each later trigger up
 * to max-cpu-throttle; there is no command to set the throttle itself, and
 * a trigger needs two bitmap syncs in a row where the guest dirtied more
 * than throttle-trigger-threshold % of what was sent. When
 * auto-converge was on from the start in its dormant form (capped at 1 %,
 * migration.c) and QEMU throttles already (cur > 0), a new initial value
 * would be ignored: the increment is set to reach the controller's target
 * at QEMU's next trigger with the maximum at the target, and the policy's
 * increment and maximum are restored once the samples show it reached. */
static void do_throttle(struct migration *m, const struct conv_action *a, uint32_t cur)
{
    struct mig_control *c = m->ctl;
    uint32_t x = a->throttle_initial_pct, inc = a->throttle_increment_pct,
             max = a->throttle_max_pct;
    if (max < x)
        max = x;
    if (!m->limits.auto_converge && !m->throttle_dormant) {
        /* refused by QEMU during a migration; the refusal becomes an event */
        qmp_act(m, a->kind, "migrate-set-capabilities",
                json_pack("{s:[{s:s, s:b}]}", "capabilities", "capability", "auto-converge",
                          "state", 1),
                "auto-converge");
        set_throttle_params(m, x, inc, max);
        return;
    }
    if (cur == 0 || cur >= x) {
        set_throttle_params(m, x, inc, max);
        c->throttle_target = 0;
        return;
    }
    set_throttle_params(m, x, x - cur, x);
    c->throttle_target = x;
    c->throttle_final_inc = inc;
    c->throttle_final_max = max;
}


/* --- guest io throttle (budget step io_throttle) ------------------------- */

static const char *const io_keys[6] = {"bps", "bps_rd", "bps_wr", "iops", "iops_rd", "iops_wr"};

struct io_req {
    struct migration *m;
    bool restore; /* lifting, not setting */
};

static void on_io_set(struct instance *in, const struct ferr *err, json_t *ret, void *ctx)
{
    (void)in;
    (void)ret;
    struct io_req *r = ctx;
    struct migration *m = r->m;
    m->refs--;
    if (err && m->ctl) {
        char note[CONV_REASON_MAX];
        snprintf(note, sizeof(note), "block_set_io_throttle (%s) refused: %.100s",
                 r->restore ? "restore" : "cap", err->msg);
        ev_add(m->ctl, agent_now_ms() - m->start_ms, CONV_ACT_SET_IO_THROTTLE, note);
        log_warn("agent", "msg=\"io throttle failed\" id=%s err=\"%s\"", m->id, err->msg);
    }
    free(r);
}

/* Sends block_set_io_throttle for device k of m with limits v. */
static void io_send(struct migration *m, unsigned k, const int64_t v[6], bool restore)
{
    if (!m->inst)
        return;
    json_t *args = json_pack("{s:s}", "id", m->ctl->imp.io_devs[k]);
    for (int i = 0; i < 6; i++)
        json_object_set_new(args, io_keys[i], json_integer((json_int_t)v[i]));
    struct io_req *r = xcalloc(1, sizeof(*r));
    r->m = m;
    r->restore = restore;
    m->refs++;
    if (inst_qmp(m->inst, "block_set_io_throttle", args, on_io_set, r) != 0) {
        m->refs--;
        free(r);
    }
}

/* query-block reply: remember each guest device's limits (the first time),
 * then cap its writes. */
static void on_io_query(struct instance *in, const struct ferr *err, json_t *ret, void *ctx)
{
    struct migration *m = ctx;
    m->refs--;
    struct mig_control *c = m->ctl;
    if (!in || !c || c->imp.io_lifted)
        return; /* the migration ended meanwhile: nothing to cap */
    if (err) {
        char note[CONV_REASON_MAX];
        snprintf(note, sizeof(note), "io throttle not set: query-block: %.100s", err->msg);
        ev_add(c, agent_now_ms() - m->start_ms, CONV_ACT_SET_IO_THROTTLE, note);
        return;
    }
    struct ctl_impact *ci = &c->imp;
    for (size_t i = 0; i < json_array_size(ret); i++) {
        const json_t *b = json_array_get(ret, i);
        const char *qdev = json_string_value(json_object_get(b, "qdev"));
        const json_t *ins = json_object_get(b, "inserted");
        if (!qdev || !qdev[0] || strlen(qdev) >= IMPACT_QDEV_MAX || !json_is_object(ins))
            continue;
        unsigned k = 0;
        while (k < ci->io_n && strcmp(ci->io_devs[k], qdev) != 0)
            k++;
        if (k == ci->io_n) {
            if (ci->io_n >= IMPACT_DEVS)
                continue;
            snprintf(ci->io_devs[k], IMPACT_QDEV_MAX, "%s", qdev);
            for (int j = 0; j < 6; j++) {
                const json_t *v = json_object_get(ins, io_keys[j]);
                ci->io_prev[k][j] = json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
            }
            ci->io_n++;
        }
        int64_t v[6];
        memcpy(v, ci->io_prev[k], sizeof(v));
        int64_t cap = (int64_t)ci->io_bps;
        if (v[0] > 0) /* a total cap cannot go with a write cap */
            v[0] = v[0] < cap ? v[0] : cap;
        else
            v[2] = v[2] > 0 && v[2] < cap ? v[2] : cap;
        io_send(m, k, v, false);
    }
}

static void io_throttle_set(struct migration *m, uint64_t bps)
{
    struct mig_control *c = m->ctl;
    if (!m->inst || c->imp.io_lifted)
        return;
    c->imp.io_on = true;
    c->imp.io_bps = bps;
    m->refs++;
    if (inst_qmp(m->inst, "query-block", NULL, on_io_query, m) != 0) {
        m->refs--;
        ev_add(c, agent_now_ms() - m->start_ms, CONV_ACT_SET_IO_THROTTLE,
               "io throttle not set: QMP not ready");
    }
}

void ctl_restore_guest(struct migration *m)
{
    struct mig_control *c = m->ctl;
    if (!c || c->imp.io_lifted)
        return;
    c->imp.io_lifted = true; /* also stops a cap whose query is in flight */
    if (!c->imp.io_on)
        return;
    for (unsigned k = 0; k < c->imp.io_n; k++)
        io_send(m, k, c->imp.io_prev[k], true);
    ev_add(c, agent_now_ms() - m->start_ms, CONV_ACT_SET_IO_THROTTLE,
           m->inst ? "io throttle lifted: the guest's previous disk limits restored"
                   : "io throttle ends with the source guest");
    log_info("agent", "msg=\"io throttle lifted\" id=%s devices=%u", m->id, c->imp.io_n);
}

/* --- impact --------------------------------------------------------------- */

/* Sorts v[0..n) ascending (insertion sort: n <= IMPACT_RING). */
static void sort_small(double *v, size_t n)
{
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
}

void ctl_impact_start(struct migration *m)
{
    struct mig_control *c = m->ctl;
    if (!c || c->imp.started)
        return;
    c->imp.started = true;
    const struct inst_impact *im = m->inst ? m->inst->imp : NULL;
    uint64_t win = (c->pol.baseline_s ? c->pol.baseline_s : 10) * 1000;
    uint64_t now = agent_now_ms();
    impact_window(im, now > win ? now - win : 0, now, &c->imp.base);
    c->imp.start_seq = im ? im->seq : 0;
    c->imp.last_seq = c->imp.start_seq;
    /* the p99 of every IMPACT_WINDOW-interval window inside the baseline */
    double p[IMPACT_RING], bw[IMPACT_RING];
    size_t n = 0, nb = 0;
    c->imp.ref_p99_us = -1;
    c->imp.ref_low_bps = -1;
    for (uint64_t q = c->imp.start_seq;
         im && q > IMPACT_WINDOW - 1 && n < IMPACT_RING && nb < IMPACT_RING; q--) {
        const struct impact_iv *last = impact_get(im, q);
        const struct impact_iv *first = impact_get(im, q - (IMPACT_WINDOW - 1));
        if (!last || !first || first->t_ms - first->dur_ms + 1 < now - (now > win ? win : now))
            break;
        struct impact_agg w;
        memset(&w, 0, sizeof(w));
        for (uint64_t k = q - (IMPACT_WINDOW - 1); k <= q; k++) {
            const struct impact_iv *iv = impact_get(im, k);
            if (iv)
                impact_agg_add(&w, iv);
        }
        struct impact_fig f;
        impact_figures(&w, &f);
        if (f.p99_us > 0)
            p[n++] = f.p99_us;
        if (f.secs > 0)
            bw[nb++] = f.bps;
    }
    sort_small(bw, nb);
    if (nb >= 2)
        c->imp.ref_low_bps = bw[(nb - 1) / 4];
    sort_small(p, n);
    if (n >= 2)
        c->imp.ref_p99_us = p[(3 * (n - 1)) / 4];
}

/* Budget input from the baseline and the newest window: without a
 * histogram on both sides, the mean latency stands for the p99. */
static void to_conv_impact(const struct ctl_impact *ci, const struct impact_fig *base,
                           uint64_t seq, struct conv_impact *out)
{
    memset(out, 0, sizeof(*out));
    out->seq = seq;
    const struct impact_fig *now = &ci->now;
    bool pct = base->p99_us >= 0 && now->p99_us >= 0;
    out->have_baseline = ci->base.n > 0 && base->secs > 0;
    out->base_bps = base->bps;
    out->base_iops = base->iops;
    out->base_low_bps = ci->ref_low_bps > 0 ? ci->ref_low_bps : 0;
    out->base_p99_us = pct ? (ci->ref_p99_us > 0 ? ci->ref_p99_us : base->p99_us) : base->mean_us;
    out->bps = now->bps;
    out->iops = now->iops;
    out->wr_bps = now->wr_bps;
    out->p99_us = pct ? now->p99_us : now->mean_us;
    out->ops = now->ops;
    out->window = IMPACT_WINDOW;
}

void ctl_impact_sample(struct migration *m, struct mig_sample *s)
{
    struct mig_control *c = m->ctl;
    if (!c)
        return;
    struct ctl_impact *ci = &c->imp;
    if (ci->last_t_ms && s->t_ms > ci->last_t_ms)
        ci->throttle_pct_ms += (double)(s->t_ms - ci->last_t_ms) * (double)s->throttle_pct;
    ci->last_t_ms = s->t_ms;
    const struct inst_impact *im = m->inst ? m->inst->imp : NULL;
    if (!im || !ci->started)
        return;
    bool fresh = false;
    for (uint64_t q = ci->last_seq + 1; q <= im->seq; q++) {
        const struct impact_iv *iv = impact_get(im, q);
        if (iv)
            impact_agg_add(&ci->during, iv);
        fresh = true;
    }
    if (fresh) {
        ci->last_seq = im->seq;
        struct impact_agg w;
        memset(&w, 0, sizeof(w));
        for (uint64_t q = im->seq; q > ci->start_seq && im->seq - q < IMPACT_WINDOW; q--) {
            const struct impact_iv *iv = impact_get(im, q);
            if (iv)
                impact_agg_add(&w, iv);
        }
        if (w.n) {
            impact_figures(&w, &ci->now);
            ci->have_now = true;
            if (c->pol.enabled) {
                struct impact_fig base;
                impact_figures(&ci->base, &base);
                struct conv_impact x;
                to_conv_impact(ci, &base, im->seq, &x);
                const struct impact_iv *lv = impact_get(im, im->seq);
                if (lv && w.n > 1) { /* the newest interval alone */
                    struct impact_agg one;
                    struct impact_fig lf;
                    memset(&one, 0, sizeof(one));
                    impact_agg_add(&one, lv);
                    impact_figures(&one, &lf);
                    bool pct = base.p99_us >= 0 && lf.p99_us >= 0 && ci->now.p99_us >= 0;
                    x.have_last = lf.secs > 0;
                    x.last_bps = lf.bps;
                    x.last_p99_us = pct ? lf.p99_us : lf.mean_us;
                    x.last_ops = lf.ops;
                }
                (void)!conv_set_impact(&c->conv, &x);
            }
        }
    }
    if (ci->have_now) {
        s->guest_disk_bps = (uint64_t)ci->now.bps;
        s->guest_disk_iops = (uint64_t)ci->now.iops;
        double p = ci->now.p99_us >= 0 ? ci->now.p99_us : ci->now.mean_us;
        s->guest_p99_us = (uint64_t)p;
    }
}

/* "impact": baseline, during and now, with the ratios people ask for. */
static json_t *impact_json(const struct mig_control *c)
{
    const struct ctl_impact *ci = &c->imp;
    struct impact_fig b, d;
    impact_figures(&ci->base, &b);
    impact_figures(&ci->during, &d);
    json_t *o = json_object();
    json_object_set_new(o, "baseline", ci->base.n ? impact_fig_json(&b) : json_null());
    json_object_set_new(o, "during", ci->during.n ? impact_fig_json(&d) : json_null());
    json_object_set_new(o, "now", ci->have_now ? impact_fig_json(&ci->now) : json_null());
    bool busy = ci->base.n && b.iops >= 1.0 && b.bps > 0;
    json_object_set_new(o, "throughput_retained_pct",
                        busy && ci->during.n ? json_real(round(1000.0 * d.bps / b.bps) / 10.0)
                                             : json_null());
    double bp = b.p99_us >= 0 && d.p99_us >= 0 ? b.p99_us : b.mean_us;
    double dp = b.p99_us >= 0 && d.p99_us >= 0 ? d.p99_us : d.mean_us;
    json_object_set_new(o, "p99_latency_ratio",
                        busy && ci->during.n && bp > 0 ? json_real(round(100.0 * dp / bp) / 100.0)
                                                       : json_null());
    json_object_set_new(o, "latency_basis",
                        json_string(b.p99_us >= 0 && d.p99_us >= 0 ? "histogram" : "mean"));
    json_object_set_new(o, "cpu_throttle_ms", json_integer((json_int_t)(ci->throttle_pct_ms / 100.0)));
    json_object_set_new(o, "io_throttle",
                        ci->io_on ? json_pack("{s:I, s:b, s:i}", "write_bytes_per_s",
                                              (json_int_t)ci->io_bps, "lifted", ci->io_lifted,
                                              "devices", (int)ci->io_n)
                                  : json_null());
    return o;
}

static void carry_out(struct migration *m, const struct conv_action *a,
                      const struct mig_sample *s)
{
    uint64_t t_ms = s->t_ms;
    struct mig_control *c = m->ctl;
    struct ctl_event *x = ev_add(c, t_ms, a->kind, a->reason);
    if (x)
        x->step = a->step;
    switch (a->kind) {
    case CONV_ACT_SET_DOWNTIME:
        if (x)
            x->value = a->downtime_ms;
        m->limits.downtime_ms = a->downtime_ms; /* samples carry the setting */
        qmp_act(m, a->kind, "migrate-set-parameters",
                json_pack("{s:I}", "downtime-limit", (json_int_t)a->downtime_ms),
                "downtime-limit");
        break;
    case CONV_ACT_SET_BANDWIDTH:
        if (x)
            x->value = a->bw_bps;
        m->limits.max_bandwidth_bps = a->bw_bps;
        qmp_act(m, a->kind, "migrate-set-parameters",
                m->postcopy ? json_pack("{s:I, s:I}", "max-bandwidth", (json_int_t)a->bw_bps,
                                        "max-postcopy-bandwidth", (json_int_t)a->bw_bps)
                            : json_pack("{s:I}", "max-bandwidth", (json_int_t)a->bw_bps),
                "max-bandwidth");
        break;
    case CONV_ACT_SET_THROTTLE:
        if (x)
            x->value = a->throttle_initial_pct;
        do_throttle(m, a, s->throttle_pct);
        break;
    case CONV_ACT_START_POSTCOPY:
        if (m->postcopy)
            qmp_act(m, a->kind, "migrate-start-postcopy", NULL, "migrate-start-postcopy");
        else
            ev_add(c, t_ms, a->kind,
                   m->postcopy_note[0] ? m->postcopy_note
                                       : "post-copy not available: postcopy-ram is not "
                                         "negotiated with the destination");
        break;
    case CONV_ACT_PAUSE_GUEST:
        qmp_act(m, a->kind, "stop", NULL, "stop");
        break;
    case CONV_ACT_ABORT:
        if (m->state != MIGS_RUNNING) { /* post-copy: the source cannot resume */
            ev_add(c, t_ms, a->kind, "abort ignored: past the point of no return");
            break;
        }
        snprintf(m->error, sizeof(m->error), "controller aborted: %.200s", a->reason);
        c->aborted = true;
        m->state = MIGS_CANCELLING;
        qmp_act(m, a->kind, "migrate_cancel", NULL, "migrate_cancel");
        break;
    case CONV_ACT_SET_MIRROR_SPEED:
        if (x)
            x->value = a->bw_bps;
        m->limits.mirror_speed_bps = a->bw_bps; /* later mirrors start at it */
        storage_set_speed(m, a->bw_bps);
        break;
    case CONV_ACT_SET_IO_THROTTLE:
        if (x)
            x->value = a->io_bps;
        io_throttle_set(m, a->io_bps);
        break;
    case CONV_ACT_REPORT_BUDGET:
        if (x)
            x->budget = a->budget;
        break;
    case CONV_ACT_REQUEST_CONSENT:
    case CONV_ACT_REPORT_STALL:
    default:
        if (x)
            x->stall = a->stall;
        break;
    }
    log_info("agent", "msg=\"controller action\" id=%s t_ms=%llu action=%s reason=\"%s\"", m->id,
             (unsigned long long)t_ms, conv_act_name(a->kind), a->reason);
}

void ctl_on_sample(struct migration *m, const struct mig_sample *s)
{
    struct mig_control *c = m->ctl;
    if (!c)
        return;
    if (est_update(&c->est, s) != 0)
        return; /* out of order: keep the previous estimate */
    est_get(&c->est, &c->out);
    c->have_out = true;
    if (!c->pol.enabled || c->aborted ||
        (m->state != MIGS_RUNNING && m->state != MIGS_POSTCOPY))
        return;
    if (c->throttle_target && s->throttle_pct >= c->throttle_target) {
        /* the jump to the controller's throttle happened: back to the
         * policy's increment and maximum */
        set_throttle_params(m, c->throttle_target, c->throttle_final_inc,
                            c->throttle_final_max);
        c->throttle_target = 0;
    }
    struct conv_action acts[CONV_ACTIONS_MAX];
    size_t n = 0;
    if (conv_tick(&c->conv, s, &c->out, s->t_ms, acts, CONV_ACTIONS_MAX, &n) != 0)
        return;
    for (size_t i = 0; i < n; i++)
        carry_out(m, &acts[i], s);
    struct est_sched_step sched[EST_SCHED_MAX];
    size_t ns = 0;
    if (conv_future_downtime(&c->conv, sched, EST_SCHED_MAX, &ns) == 0 &&
        est_set_schedule(&c->est, sched, ns) != 0)
        log_warn("agent", "msg=\"downtime schedule not usable by the estimator\" id=%s", m->id);
    /* the reported ETA includes what the controller will do later
     * (core/forecast.h); FERR_STATE (nothing to forecast) leaves it as is */
    if (fc_estimate(&c->conv, &c->est, s, &c->out, NULL) != 0) {
    }
}

int ctl_consent(struct migration *m, const char *step, bool granted, struct ferr *e)
{
    struct mig_control *c = m->ctl;
    enum conv_step st;
    if (step_parse(step, &st) != 0)
        return ferr_set(e, FERR_INVAL, "step",
                        "'step' must be bandwidth, throttle, postcopy, pause or io_throttle");
    if (!c || !c->pol.enabled || c->conv.consent[st] != CONV_CONSENT_PENDING)
        return ferr_set(e, FERR_STATE, "step", "migration %s has no pending consent request for %s",
                        m->id, step);
    if (conv_consent(&c->conv, st, granted) != 0)
        return ferr_set(e, FERR_STATE, "step", "consent for %s was answered already", step);
    char note[CONV_REASON_MAX];
    snprintf(note, sizeof(note), "consent for %s %s through the API", step,
             granted ? "granted" : "refused");
    struct ctl_event *x = ev_add(c, agent_now_ms() - m->start_ms, CONV_ACT_REQUEST_CONSENT, note);
    if (x) {
        x->step = st;
        x->answer = granted ? 1 : 2;
    }
    log_info("agent", "msg=\"consent answered\" id=%s step=%s granted=%d", m->id, step,
             (int)granted);
    return 0;
}

int ctl_force_complete(struct migration *m, const char **how, struct ferr *e)
{
    struct mig_control *c = m->ctl;
    if (m->state != MIGS_RUNNING)
        return ferr_set(e, FERR_STATE, "state",
                        "migration %s is %s: only a running pre-copy migration can be forced",
                        m->id, mig_state_name(m->state));
    if (!m->mem_started || m->continue_sent)
        return ferr_set(e, FERR_STATE, "state",
                        m->continue_sent ? "migration %s is past switchover already"
                                         : "migration %s has not started migrating memory "
                                           "(disks still mirroring)",
                        m->id);
    bool permit = c && c->pol.permit_post_copy;
    enum conv_step st = m->postcopy && permit ? CONV_STEP_POSTCOPY : CONV_STEP_PAUSE;
    if (c && c->pol.enabled && c->pol.conv.consent_required[st] &&
        c->conv.consent[st] != CONV_CONSENT_GRANTED)
        return ferr_set(e, FERR_STATE, "consent",
                        "the policy marks %s as intrusive and its consent has not been granted; "
                        "nothing was done",
                        conv_step_name(st));
    *how = conv_step_name(st);
    uint64_t t_ms = agent_now_ms() - m->start_ms;
    if (st == CONV_STEP_POSTCOPY) {
        if (c)
            ev_add(c, t_ms, CONV_ACT_START_POSTCOPY, "force-complete through the API: post-copy");
        qmp_act(m, CONV_ACT_START_POSTCOPY, "migrate-start-postcopy", NULL,
                "migrate-start-postcopy");
    } else {
        if (c)
            ev_add(c, t_ms, CONV_ACT_PAUSE_GUEST,
                   "force-complete through the API: pause to complete");
        qmp_act(m, CONV_ACT_PAUSE_GUEST, "stop", NULL, "stop");
    }
    log_info("agent", "msg=\"force-complete\" id=%s how=%s", m->id, *how);
    return 0;
}

int ctl_set_limits(struct migration *m, bool has_bw, uint64_t bw_bps, bool has_dt,
                   uint64_t dt_ms, struct ferr *e)
{
    struct mig_control *c = m->ctl;
    if (m->state != MIGS_RUNNING && m->state != MIGS_POSTCOPY)
        return ferr_set(e, FERR_STATE, "state", "migration %s is %s: limits apply while running",
                        m->id, mig_state_name(m->state));
    if (has_dt && m->state == MIGS_POSTCOPY)
        return ferr_set(e, FERR_STATE, "downtime_max_ms",
                        "migration %s is in post-copy: the downtime limit no longer applies",
                        m->id);
    if (has_bw && bw_bps != 0 && bw_bps < 65536)
        return ferr_set(e, FERR_INVAL, "max_bandwidth_bps",
                        "max_bandwidth_bps must be 0 (no cap) or >= 65536");
    if (has_dt && (dt_ms < 1 || dt_ms > 60000))
        return ferr_set(e, FERR_INVAL, "downtime_max_ms", "downtime_max_ms must be 1..60000");
    uint64_t t_ms = agent_now_ms() - m->start_ms;
    bool adaptive = c && c->pol.enabled && c->pol.conv.kind == CONV_ADAPTIVE;
    if (has_bw) {
        /* QEMU's 0 would mean "stop sending": no cap is its maximum */
        uint64_t q = bw_bps ? bw_bps : (UINT64_C(1) << 40);
        m->limits.max_bandwidth_bps = bw_bps;
        if (adaptive) /* the BANDWIDTH rung never raises above the new cap */
            c->conv.pol.adaptive.bw_cap_bps = q;
        qmp_act(m, CONV_ACT_SET_BANDWIDTH, "migrate-set-parameters",
                m->postcopy ? json_pack("{s:I, s:I}", "max-bandwidth", (json_int_t)q,
                                        "max-postcopy-bandwidth", (json_int_t)q)
                            : json_pack("{s:I}", "max-bandwidth", (json_int_t)q),
                "max-bandwidth");
        if (c) {
            struct ctl_event *x = ev_add(c, t_ms, CONV_ACT_SET_BANDWIDTH, "limits through the API");
            if (x)
                x->value = bw_bps;
        }
    }
    if (has_dt) {
        uint64_t limit = dt_ms;
        if (adaptive) {
            /* the controller's bound: it raises the limit only up to here */
            struct conv_adaptive *a = &c->conv.pol.adaptive;
            a->downtime_max_ms = dt_ms;
            if (a->downtime_start_ms > dt_ms)
                a->downtime_start_ms = dt_ms;
            if (a->headroom_ms >= dt_ms)
                a->headroom_ms = 0;
            limit = c->conv.cur_downtime_ms && c->conv.cur_downtime_ms < dt_ms
                        ? c->conv.cur_downtime_ms
                        : dt_ms;
            c->conv.cur_downtime_ms = limit;
        }
        m->limits.downtime_ms = limit;
        qmp_act(m, CONV_ACT_SET_DOWNTIME, "migrate-set-parameters",
                json_pack("{s:I}", "downtime-limit", (json_int_t)limit), "downtime-limit");
        if (c) {
            struct ctl_event *x = ev_add(c, t_ms, CONV_ACT_SET_DOWNTIME, "limits through the API");
            if (x)
                x->value = limit;
        }
    }
    log_info("agent", "msg=\"limits changed\" id=%s bw=%llu dt=%llu", m->id,
             has_bw ? (unsigned long long)bw_bps : 0ULL, has_dt ? (unsigned long long)dt_ms : 0ULL);
    return 0;
}

static json_t *ms_or_null(uint64_t v)
{
    return v == EST_ETA_INFINITE ? json_null() : json_integer((json_int_t)v);
}

void ctl_to_json(const struct mig_control *c, json_t *o)
{
    if (!c)
        return;
    json_object_set_new(o, "policy",
                        json_string(c->pol.enabled ? conv_kind_name(c->pol.conv.kind) : "none"));
    if (c->have_out) {
        const struct est_out *x = &c->out;
        json_object_set_new(
            o, "estimate",
            json_pack("{s:f, s:o, s:o, s:o, s:I, s:s, s:f, s:f, s:I, s:f}", "progress_pct",
                      x->progress_pct, "eta_ms",
                      x->eta_known ? ms_or_null(x->eta_ms) : json_null(), "eta_low_ms",
                      x->eta_known ? ms_or_null(x->eta_low_ms) : json_null(), "eta_high_ms",
                      x->eta_known ? ms_or_null(x->eta_high_ms) : json_null(),
                      "predicted_downtime_ms", (json_int_t)x->predicted_downtime_ms, "verdict",
                      est_verdict_name(x->verdict), "bw_bps", x->bw_bps, "dirty_bps",
                      x->dirty_bps, "dirty_set_bytes", (json_int_t)x->dirty_set_bytes,
                      "pass1_dirty_bps", x->pass1_dirty_bps));
        json_t *est = json_object_get(o, "estimate");
        json_object_set_new(est, "eta_forecast", json_boolean(x->eta_forecast));
        json_object_set_new(est, "eta_consent_wait", json_boolean(x->eta_consent_wait));
    }
    json_t *stalls = json_array(), *events = json_array();
    for (size_t i = 0; i < c->n_ev; i++) {
        const struct ctl_event *x = &c->ev[i];
        json_t *j = json_pack("{s:I, s:s, s:s}", "t_ms", (json_int_t)x->t_ms, "action",
                              x->answer ? "consent" : conv_act_name(x->kind), "reason", x->note);
        if (x->answer)
            json_object_set_new(j, "granted", json_boolean(x->answer == 1));
        if (x->kind == CONV_ACT_REPORT_STALL) {
            json_array_append_new(stalls,
                                  json_pack("{s:I, s:s, s:s}", "t_ms", (json_int_t)x->t_ms,
                                            "stall", stall_reason_name(x->stall), "reason",
                                            x->note));
        }
        if (x->kind == CONV_ACT_REQUEST_CONSENT)
            json_object_set_new(j, "step", json_string(conv_step_name(x->step)));
        if (x->value)
            json_object_set_new(j, "value", json_integer((json_int_t)x->value));
        if (x->kind == CONV_ACT_REPORT_BUDGET)
            json_object_set_new(
                j, "verdict", json_string(conv_budget_verdict_name((enum conv_budget_verdict)x->budget)));
        json_array_append_new(events, j);
    }
    json_object_set_new(o, "stalls", stalls);
    json_object_set_new(o, "events", events);
    if (c->ev_dropped)
        json_object_set_new(o, "events_dropped", json_integer((json_int_t)c->ev_dropped));
    json_t *cp = json_array();
    for (int i = 0; c->pol.enabled && i < CONV_STEP__COUNT; i++)
        if (c->conv.consent[i] == CONV_CONSENT_PENDING)
            json_array_append_new(cp, json_string(conv_step_name((enum conv_step)i)));
    json_object_set_new(o, "consent_pending", cp);
    json_object_set_new(o, "impact", impact_json(c));
    const struct conv_budget *b = &c->pol.conv.budget;
    if (c->pol.enabled && b->enabled) {
        const struct conv *cv = &c->conv;
        json_t *bj = json_pack(
            "{s:s, s:o, s:I, s:I, s:I, s:I, s:i, s:o, s:o, s:o}", "verdict",
            conv_budget_verdict_name(conv_budget_verdict(cv)), "usage",
            cv->usage < 0 ? json_null() : json_real(round(cv->usage * 100.0) / 100.0), "rate_bps",
            (json_int_t)cv->rate_bps, "judged", (json_int_t)cv->judged, "violations",
            (json_int_t)cv->violations, "ceiling_bps", (json_int_t)cv->ceiling_bps,
            "min_throughput_pct", (int)b->min_throughput_pct, "max_p99_latency_ratio",
            b->max_p99_ratio > 0 ? json_real(b->max_p99_ratio) : json_null(),
            "max_p99_latency_ms",
            b->max_p99_us ? json_real((double)b->max_p99_us / 1000.0) : json_null(), "steer",
            json_string(b->steer == CONV_STEER_MIRROR      ? "mirror"
                        : b->steer == CONV_STEER_BANDWIDTH ? "bandwidth"
                                                           : "both"));
        json_object_set_new(bj, "baseline_window_p99_us",
                            c->imp.ref_p99_us > 0
                                ? json_real(round(c->imp.ref_p99_us * 10.0) / 10.0)
                                : json_null());
        json_object_set_new(bj, "rate_independent",
                            cv->ri ? json_pack("{s:f, s:I}", "usage",
                                               round(cv->ri_usage * 100.0) / 100.0, "rate_bps",
                                               (json_int_t)cv->ri_bps)
                                   : json_null());
        /* the account the aim follows: the mean usage charged so far */
        json_object_set_new(bj, "mean_usage",
                            cv->usage_n ? json_real(round(cv->usage_sum / (double)cv->usage_n *
                                                          100.0) / 100.0)
                                        : json_null());
        json_object_set_new(o, "budget", bj);
        json_t *est = json_object_get(o, "estimate");
        if (est)
            json_object_set_new(est, "budget_verdict",
                                json_string(conv_budget_verdict_name(conv_budget_verdict(cv))));
    }
}
