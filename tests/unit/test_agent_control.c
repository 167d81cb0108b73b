/* The "policy" object of a migration request (agent/control.h): absent and
 * "none" mean no controller; each kind's fields reach struct conv_policy;
 * unknown fields, wrong types and values the controller would refuse fail
 * with the offending field named. Table-driven. */
#include <string.h>

#include "../lib/test.h"
#include "agent/control.h"
#include "util/ferr.h"

static int parse(const char *text, struct ctl_policy *p, struct ferr *e)
{
    json_error_t je;
    json_t *o = text ? json_loads(text, 0, &je) : NULL;
    memset(e, 0, sizeof(*e));
    int rc = ctl_policy_from_json(o, 2048, p, e);
    json_decref(o);
    return rc;
}

/* Accepted policies and what they set. */
static void t_accepted(void)
{
    struct ctl_policy p;
    struct ferr e;
    CHECK(parse(NULL, &p, &e) == 0 && !p.enabled, "absent policy is none");
    CHECK(parse("{\"kind\":\"none\"}", &p, &e) == 0 && !p.enabled, "kind none");

    CHECK(parse("{\"kind\":\"nova\",\"downtime_ms\":200,\"downtime_steps\":3,"
                "\"downtime_delay_s\":10,\"completion_timeout_s\":5,"
                "\"timeout_action\":\"force_complete\",\"stall_min_ms\":5000}",
                &p, &e) == 0,
          "nova: %s", e.msg);
    CHECK(p.enabled && p.conv.kind == CONV_NOVA, "nova kind");
    CHECK(p.conv.nova.downtime_ms == 200 && p.conv.nova.downtime_steps == 3 &&
              p.conv.nova.downtime_delay_s == 10 && p.conv.nova.completion_timeout_s == 5,
          "nova numbers");
    CHECK(p.conv.nova.timeout_action == CONV_TIMEOUT_FORCE_COMPLETE, "nova timeout action");
    CHECK(p.conv.nova.ram_mib == 2048, "nova ram_mib from the guest");
    CHECK(p.conv.stall.min_ms == 5000, "stall_min_ms");
    CHECK(parse("{\"kind\":\"nova\"}", &p, &e) == 0 && p.conv.nova.downtime_ms == 500,
          "nova defaults: %s", e.msg);

    CHECK(parse("{\"kind\":\"schedule\",\"entries\":[{\"after_iteration\":0,"
                "\"action\":\"set_downtime\",\"downtime_ms\":100},"
                "{\"after_iteration\":5,\"action\":\"abort\"}]}",
                &p, &e) == 0,
          "schedule: %s", e.msg);
    CHECK(p.conv.kind == CONV_SCHEDULE && p.conv.schedule.n == 2 &&
              p.conv.schedule.e[0].downtime_ms == 100 &&
              p.conv.schedule.e[1].act == CONV_SCHED_ABORT &&
              p.conv.schedule.e[1].after_iteration == 5,
          "schedule entries");

    CHECK(parse("{\"kind\":\"adaptive\",\"deadline_s\":60,\"downtime_max_ms\":800,"
                "\"ladder\":[\"throttle\",\"pause\"],\"consent_required\":[\"pause\"]}",
                &p, &e) == 0,
          "adaptive: %s", e.msg);
    CHECK(p.conv.kind == CONV_ADAPTIVE && p.conv.adaptive.deadline_ms == 60000 &&
              p.conv.adaptive.downtime_max_ms == 800,
          "adaptive numbers");
    CHECK(p.conv.adaptive.n_ladder == 2 && p.conv.adaptive.ladder[0] == CONV_STEP_THROTTLE &&
              p.conv.adaptive.ladder[1] == CONV_STEP_PAUSE,
          "adaptive ladder");
    CHECK(p.conv.consent_required[CONV_STEP_PAUSE] &&
              !p.conv.consent_required[CONV_STEP_THROTTLE],
          "consent_required replaces the default set");
    CHECK(!p.conv.adaptive.postcopy_available, "post-copy not offered by the agent yet");
}

/* Rejected policies name the field. */
static void t_rejected(void)
{
    static const struct {
        const char *text;
        const char *field;
    } c[] = {
        {"[]", "policy"},
        {"{}", "kind"},
        {"{\"kind\":\"fast\"}", "kind"},
        {"{\"kind\":\"none\",\"downtime_ms\":1}", "downtime_ms"},
        {"{\"kind\":\"nova\",\"bogus\":1}", "bogus"},
        {"{\"kind\":\"nova\",\"downtime_ms\":\"x\"}", "downtime_ms"},
        {"{\"kind\":\"nova\",\"downtime_ms\":50}", "live_migration_downtime"},
        {"{\"kind\":\"nova\",\"timeout_action\":\"explode\"}", "timeout_action"},
        {"{\"kind\":\"schedule\"}", "entries"},
        {"{\"kind\":\"schedule\",\"entries\":[{\"after_iteration\":1,\"action\":\"x\"}]}",
         "action"},
        {"{\"kind\":\"schedule\",\"entries\":[{\"after_iteration\":1,"
         "\"action\":\"set_downtime\"}]}",
         "downtime_ms"},
        {"{\"kind\":\"schedule\",\"entries\":[{\"after_iteration\":1,\"action\":\"abort\","
         "\"when\":2}]}",
         "when"},
        {"{\"kind\":\"adaptive\",\"ladder\":[\"teleport\"]}", "ladder"},
        {"{\"kind\":\"adaptive\",\"ladder\":[\"pause\",\"pause\"]}", "ladder"},
        {"{\"kind\":\"adaptive\",\"downtime_start_ms\":900,\"downtime_max_ms\":500}",
         "downtime_start_ms"},
        {"{\"kind\":\"adaptive\",\"throttle_max_pct\":100}", "throttle_max_pct"},
        {"{\"kind\":\"adaptive\",\"consent_required\":\"pause\"}", "consent_required"},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        struct ctl_policy p;
        struct ferr e;
        int rc = parse(c[i].text, &p, &e);
        CHECK(rc == FERR_INVAL, "case %zu (%s) rc %d", i, c[i].text, rc);
        CHECK(strstr(e.field, c[i].field) || strstr(e.msg, c[i].field),
              "case %zu (%s): field '%s' msg '%s', want '%s'", i, c[i].text, e.field, e.msg,
              c[i].field);
        CHECK(!p.enabled, "case %zu: output zeroed", i);
    }
}

int main(void)
{
    test_run("agent control: accepted policies reach the controller", t_accepted);
    test_run("agent control: rejected policies name the field", t_rejected);
    return test_done();
}
