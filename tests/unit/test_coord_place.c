/* Unit: ferryd's pure migration decisions (src/coord/place.c). Proves, from
 * tables: placement never exceeds a host's RAM or vCPU capacity (instances
 * and in-flight migrations counted), never picks the source or a down host,
 * prefers the most free RAM and says so when nothing fits; create and
 * limits bodies are validated field by field, naming the field; a
 * cordoned host is never chosen; host labels are validated, capped and
 * canonical, and selectors match exactly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/test.h"
#include "coord/place.h"

struct pcase {
    const char *what;
    struct place_host hosts[4];
    size_t n;
    const char *source;
    uint64_t ram;
    uint32_t vcpus;
    const char *want; /* NULL: no host fits */
};

static const struct pcase PCASES[] = {
    {"most free RAM wins",
     {{"a", true, 4096, 4, 1024, 1, false}, {"b", true, 8192, 4, 0, 0, false}, {"c", true, 2048, 4, 0, 0, false}},
     3,
     "a",
     512,
     1,
     "b"},
    {"source excluded even when it has the most room",
     {{"src", true, 65536, 64, 0, 0, false}, {"b", true, 2048, 2, 0, 0, false}},
     2,
     "src",
     512,
     1,
     "b"},
    {"down host excluded",
     {{"a", true, 1024, 2, 0, 0, false}, {"big", false, 65536, 64, 0, 0, false}, {"b", true, 2048, 2, 0, 0, false}},
     3,
     "a",
     512,
     1,
     "b"},
    {"cordoned host excluded even when it has the most room",
     {{"a", true, 1024, 2, 0, 0, false},
      {"big", true, 65536, 64, 0, 0, true},
      {"b", true, 2048, 2, 0, 0, false}},
     3,
     "a",
     512,
     1,
     "b"},
    {"RAM exactly fits",
     {{"a", true, 1024, 2, 0, 0, false}, {"b", true, 1024, 2, 512, 0, false}},
     2,
     "a",
     512,
     1,
     "b"},
    {"RAM one MiB short: nothing",
     {{"a", true, 1024, 2, 0, 0, false}, {"b", true, 1024, 2, 513, 0, false}},
     2,
     "a",
     512,
     1,
     NULL},
    {"vCPUs exhausted: nothing",
     {{"a", true, 1024, 2, 0, 0, false}, {"b", true, 8192, 2, 0, 2, false}},
     2,
     "a",
     512,
     1,
     NULL},
    {"over-committed host (used > capacity) never chosen",
     {{"a", true, 1024, 2, 0, 0, false}, {"b", true, 1024, 2, 4096, 9, false}, {"c", true, 600, 1, 0, 0, false}},
     3,
     "a",
     512,
     1,
     "c"},
    {"only the source and down hosts: nothing",
     {{"a", true, 65536, 8, 0, 0, false}, {"b", false, 65536, 8, 0, 0, false}},
     2,
     "a",
     64,
     1,
     NULL},
    {"tie broken by name",
     {{"z", true, 2048, 2, 0, 0, false}, {"m", true, 2048, 2, 0, 0, false}, {"src", true, 1, 1, 0, 0, false}},
     3,
     "src",
     256,
     1,
     "m"},
};

static void t_place_table(void)
{
    for (size_t i = 0; i < sizeof(PCASES) / sizeof(PCASES[0]); i++) {
        const struct pcase *c = &PCASES[i];
        size_t got = 99;
        struct ferr e = {0};
        int rc = place_choose(c->hosts, c->n, c->source, c->ram, c->vcpus, &got, &e);
        if (!c->want) {
            CHECK(rc == FERR_STATE && strcmp(e.field, "destination") == 0, "%s: rc %d", c->what,
                  rc);
            continue;
        }
        REQUIRE(rc == 0, "%s: rc %d %s", c->what, rc, e.msg);
        CHECK(strcmp(c->hosts[got].name, c->want) == 0, "%s: chose %s, want %s", c->what,
              c->hosts[got].name, c->want);
    }
}

/* Exhaustive over small grids: whatever is chosen fits, is up, is not the
 * source. */
static void t_place_never_exceeds(void)
{
    unsigned checked = 0;
    for (uint64_t used = 0; used <= 2048; used += 128)
        for (uint32_t uv = 0; uv <= 4; uv++)
            for (uint64_t need = 64; need <= 2048; need += 192)
                for (int up = 0; up <= 1; up++) {
                    struct place_host h[3] = {{"src", true, 4096, 4, 0, 0, false},
                                              {"x", up != 0, 2048, 4, used, uv, false},
                                              {"y", true, 1536, 2, 2048 - used, 4 - uv, false}};
                    size_t got;
                    if (place_choose(h, 3, "src", need, 1, &got, NULL) != 0)
                        continue;
                    checked++;
                    CHECK(got != 0, "source chosen");
                    CHECK(h[got].up, "down host chosen");
                    CHECK(h[got].used_ram_mib + need <= h[got].ram_mib, "RAM exceeded on %s",
                          h[got].name);
                    CHECK(h[got].used_vcpus + 1 <= h[got].vcpus, "vCPUs exceeded on %s",
                          h[got].name);
                }
    CHECK(checked > 50, "only %u placements made", checked);
}

static void t_account(void)
{
    struct place_host h[2] = {{"a", true, 4096, 4, 0, 0, false}, {"b", true, 4096, 4, 0, 0, false}};
    struct store_instance inst[3] = {
        {"i1", "a", "p", 1024, 1}, {"i2", "a", "p", 512, 2}, {"i3", "b", "p", 256, 1}};
    struct store_migration m[3];
    memset(m, 0, sizeof(m));
    snprintf(m[0].instance, sizeof(m[0].instance), "i1"); /* a → b, running: counts on b */
    snprintf(m[0].destination, sizeof(m[0].destination), "b");
    snprintf(m[0].state, sizeof(m[0].state), "running");
    snprintf(m[1].instance, sizeof(m[1].instance), "i2"); /* finished: not counted */
    snprintf(m[1].destination, sizeof(m[1].destination), "b");
    snprintf(m[1].state, sizeof(m[1].state), "failed");
    snprintf(m[2].instance, sizeof(m[2].instance), "i3"); /* already registered on b */
    snprintf(m[2].destination, sizeof(m[2].destination), "b");
    snprintf(m[2].state, sizeof(m[2].state), "completing");
    place_account(h, 2, inst, 3, m, 3);
    CHECK(h[0].used_ram_mib == 1536 && h[0].used_vcpus == 3, "a: %llu MiB %u vCPUs",
          (unsigned long long)h[0].used_ram_mib, h[0].used_vcpus);
    CHECK(h[1].used_ram_mib == 256 + 1024 && h[1].used_vcpus == 2, "b: %llu MiB %u vCPUs",
          (unsigned long long)h[1].used_ram_mib, h[1].used_vcpus);
}

/* The accounting as first written (quadratic): the reference the indexed
 * place_account must agree with. */
static void account_ref(struct place_host *hosts, size_t nh, const struct store_instance *inst,
                        size_t ni, const struct store_migration *migs, size_t nm)
{
    for (size_t h = 0; h < nh; h++) {
        hosts[h].used_ram_mib = 0;
        hosts[h].used_vcpus = 0;
        for (size_t i = 0; i < ni; i++)
            if (strcmp(inst[i].host, hosts[h].name) == 0) {
                hosts[h].used_ram_mib += inst[i].memory_mib;
                hosts[h].used_vcpus += inst[i].vcpus;
            }
        for (size_t m = 0; m < nm; m++) {
            if (place_state_terminal(migs[m].state) ||
                strcmp(migs[m].destination, hosts[h].name) != 0)
                continue;
            const struct store_instance *in = NULL;
            for (size_t i = 0; i < ni && !in; i++)
                if (strcmp(inst[i].name, migs[m].instance) == 0)
                    in = &inst[i];
            if (!in || strcmp(in->host, hosts[h].name) == 0)
                continue;
            hosts[h].used_ram_mib += in->memory_mib;
            hosts[h].used_vcpus += in->vcpus;
        }
    }
}

/* Random fleets (unknown hosts and instances, repeated instance names,
 * finished and active migrations, migrations to the current host): the
 * indexed accounting gives exactly the reference's figures. */
static void t_account_random(void)
{
    static const char *const states[] = {"running", "succeeded", "preparing", "failed",
                                         "cancelled", "completing"};
    uint64_t x = 0x9e3779b97f4a7c15ull;
#define RND() (x ^= x << 13, x ^= x >> 7, x ^= x << 17, x)
    unsigned compared = 0;
    for (int round = 0; round < 200; round++) {
        size_t nh = RND() % 12, ni = RND() % 60, nm = RND() % 30;
        struct place_host h[12], r[12];
        char hn[12][8];
        struct store_instance in[60];
        struct store_migration m[30];
        memset(h, 0, sizeof(h));
        memset(in, 0, sizeof(in));
        memset(m, 0, sizeof(m));
        for (size_t i = 0; i < nh; i++) {
            snprintf(hn[i], sizeof(hn[i]), "h%u", (unsigned)(RND() % 14)); /* may repeat */
            h[i].name = hn[i];
        }
        for (size_t i = 0; i < ni; i++) {
            snprintf(in[i].name, sizeof(in[i].name), "i%u", (unsigned)(RND() % 50));
            snprintf(in[i].host, sizeof(in[i].host), "h%u", (unsigned)(RND() % 14));
            in[i].memory_mib = 1 + RND() % 4096;
            in[i].vcpus = 1 + (uint32_t)(RND() % 8);
        }
        for (size_t i = 0; i < nm; i++) {
            snprintf(m[i].instance, sizeof(m[i].instance), "i%u", (unsigned)(RND() % 55));
            snprintf(m[i].destination, sizeof(m[i].destination), "h%u", (unsigned)(RND() % 14));
            snprintf(m[i].state, sizeof(m[i].state), "%s", states[RND() % 6]);
        }
        memcpy(r, h, sizeof(h));
        place_account(h, nh, in, ni, m, nm);
        account_ref(r, nh, in, ni, m, nm);
        for (size_t i = 0; i < nh; i++) {
            CHECK(h[i].used_ram_mib == r[i].used_ram_mib && h[i].used_vcpus == r[i].used_vcpus,
                  "round %d host %s: %llu MiB %u vCPUs, reference %llu MiB %u vCPUs", round,
                  h[i].name, (unsigned long long)h[i].used_ram_mib, h[i].used_vcpus,
                  (unsigned long long)r[i].used_ram_mib, r[i].used_vcpus);
            compared += r[i].used_ram_mib > 0;
        }
    }
#undef RND
    CHECK(compared > 200, "only %u non-empty hosts compared", compared);
}

struct vcase {
    const char *body;
    const char *field; /* NULL: valid */
};

static const struct vcase VCASES[] = {
    {"{\"instance\":\"vm1\"}", NULL},
    {"{\"instance\":\"vm1\",\"destination\":\"h2\",\"limits\":{\"downtime_ms\":500,"
     "\"max_bandwidth_bps\":0,\"auto_converge\":true,\"completion_timeout_s\":60},"
     "\"policy\":{\"kind\":\"adaptive\"}}",
     NULL},
    {"{}", "instance"},
    {"{\"instance\":5}", "instance"},
    {"{\"instance\":\"../etc\"}", "instance"},
    {"{\"instance\":\"vm1\",\"bogus\":1}", "bogus"},
    {"{\"instance\":\"vm1\",\"destination\":\"-x\"}", "destination"},
    {"{\"instance\":\"vm1\",\"destination\":7}", "destination"},
    {"{\"instance\":\"vm1\",\"limits\":[]}", "limits"},
    {"{\"instance\":\"vm1\",\"limits\":{\"downtime_ms\":0}}", "limits.downtime_ms"},
    {"{\"instance\":\"vm1\",\"limits\":{\"downtime_ms\":60001}}", "limits.downtime_ms"},
    {"{\"instance\":\"vm1\",\"limits\":{\"max_bandwidth_bps\":1000}}", "limits.max_bandwidth_bps"},
    {"{\"instance\":\"vm1\",\"limits\":{\"max_bandwidth_bps\":-1}}", "limits.max_bandwidth_bps"},
    {"{\"instance\":\"vm1\",\"limits\":{\"auto_converge\":1}}", "limits.auto_converge"},
    {"{\"instance\":\"vm1\",\"limits\":{\"pacing\":false}}", NULL},
    {"{\"instance\":\"vm1\",\"limits\":{\"pacing\":true,\"max_bandwidth_bps\":1048576}}", NULL},
    {"{\"instance\":\"vm1\",\"limits\":{\"pacing\":\"yes\"}}", "limits.pacing"},
    {"{\"instance\":\"vm1\",\"limits\":{\"x\":1}}", "limits.x"},
    {"{\"instance\":\"vm1\",\"policy\":\"nova\"}", "policy"},
    {"{\"instance\":\"vm1\",\"policy\":{\"kind\":\"magic\"}}", "policy.kind"},
    {"{\"instance\":\"vm1\",\"consent\":{\"timeout_s\":30,\"timeout_action\":\"proceed\"}}", NULL},
    {"{\"instance\":\"vm1\",\"consent\":{}}", NULL},
    {"{\"instance\":\"vm1\",\"consent\":null}", NULL},
    {"{\"instance\":\"vm1\",\"consent\":7}", "consent"},
    {"{\"instance\":\"vm1\",\"consent\":{\"timeout_s\":0}}", "consent.timeout_s"},
    {"{\"instance\":\"vm1\",\"consent\":{\"timeout_s\":604801}}", "consent.timeout_s"},
    {"{\"instance\":\"vm1\",\"consent\":{\"timeout_s\":\"5\"}}", "consent.timeout_s"},
    {"{\"instance\":\"vm1\",\"consent\":{\"timeout_action\":\"later\"}}",
     "consent.timeout_action"},
    {"{\"instance\":\"vm1\",\"consent\":{\"timeout_action\":1}}", "consent.timeout_action"},
    {"{\"instance\":\"vm1\",\"consent\":{\"deadline\":1}}", "consent.deadline"},
};

static void t_validate(void)
{
    for (size_t i = 0; i < sizeof(VCASES) / sizeof(VCASES[0]); i++) {
        json_t *b = json_loads(VCASES[i].body, 0, NULL);
        REQUIRE(b, "case %zu does not parse", i);
        struct migreq r;
        struct ferr e = {0};
        int rc = migreq_parse(b, &r, &e);
        if (!VCASES[i].field) {
            CHECK(rc == 0, "%s: rc %d field %s %s", VCASES[i].body, rc, e.field, e.msg);
            if (rc == 0)
                CHECK(strcmp(r.instance, "vm1") == 0, "instance %s", r.instance);
            if (rc == 0 && strstr(VCASES[i].body, "proceed"))
                CHECK(r.consent_timeout_s == 30 && strcmp(r.consent_action, "proceed") == 0,
                      "consent override %u %s", r.consent_timeout_s, r.consent_action);
            if (rc == 0 && !strstr(VCASES[i].body, "consent\":{\"t"))
                CHECK(r.consent_timeout_s == 0 && !r.consent_action[0], "no override expected");
            migreq_free(&r);
        } else {
            CHECK(rc == FERR_INVAL && strcmp(e.field, VCASES[i].field) == 0,
                  "%s: rc %d field '%s' want '%s'", VCASES[i].body, rc, e.field, VCASES[i].field);
            CHECK(!r.policy && !r.limits, "%s: output left behind", VCASES[i].body);
        }
        json_decref(b);
    }
}

static void t_limits_patch(void)
{
    static const struct vcase C[] = {
        {"{\"max_bandwidth_bps\":1048576}", NULL},
        {"{\"downtime_max_ms\":800,\"max_bandwidth_bps\":0}", NULL},
        {"{}", "body"},
        {"{\"downtime_max_ms\":0}", "downtime_max_ms"},
        {"{\"max_bandwidth_bps\":10}", "max_bandwidth_bps"},
        {"{\"downtime_ms\":10}", "downtime_ms"},
    };
    for (size_t i = 0; i < sizeof(C) / sizeof(C[0]); i++) {
        json_t *b = json_loads(C[i].body, 0, NULL), *out = NULL;
        struct ferr e = {0};
        int rc = migreq_limits_patch(b, &out, &e);
        if (!C[i].field)
            CHECK(rc == 0 && json_equal(out, b), "%s: rc %d %s", C[i].body, rc, e.msg);
        else
            CHECK(rc == FERR_INVAL && strcmp(e.field, C[i].field) == 0 && !out,
                  "%s: rc %d field %s", C[i].body, rc, e.field);
        json_decref(out);
        json_decref(b);
    }
}

static void t_labels(void)
{
    char out[STORE_LABELS_MAX + 1];
    struct ferr e = {0};
    json_t *o = json_pack("{s:s, s:s, s:s}", "zone", "b", "rack", "r-12", "topology.io/ssd", "");
    CHECK(place_labels_parse(o, out, sizeof(out), &e) == 0, "%s", e.msg);
    CHECK(strcmp(out, "rack=r-12,topology.io/ssd=,zone=b") == 0, "canonical '%s'", out);
    json_t *back = place_labels_json(out);
    CHECK(json_equal(back, o), "round trip");
    json_decref(back);
    json_decref(o);
    CHECK(place_labels_match("rack=r-12,zone=b", "zone", "b"), "zone=b matches");
    CHECK(!place_labels_match("rack=r-12,zone=bb", "zone", "b"), "zone=bb is not zone=b");
    CHECK(!place_labels_match("rack=r-12,xzone=b", "zone", "b"), "xzone=b is not zone=b");
    CHECK(!place_labels_match("", "zone", "b"), "no labels");
    CHECK(place_labels_parse(NULL, out, sizeof(out), &e) == 0 && out[0] == '\0', "none");
    static const char *const bad[] = {
        "[1]", "{\"\": \"x\"}", "{\"-a\": \"x\"}", "{\"a b\": \"x\"}", "{\"a\": 1}",
        "{\"a\": \"x,y\"}", "{\"a\": \"x=y\"}", "{\"a\": \"x/y\"}",
        "{\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\": \"x\"}", NULL};
    for (int i = 0; bad[i]; i++) {
        json_t *b = json_loads(bad[i], JSON_DECODE_ANY, NULL);
        memset(&e, 0, sizeof(e));
        snprintf(out, sizeof(out), "junk");
        CHECK(b && place_labels_parse(b, out, sizeof(out), &e) == FERR_INVAL &&
                  strncmp(e.field, "labels", 6) == 0 && e.msg[0] && out[0] == '\0',
              "%s accepted or field '%s'", bad[i], e.field);
        json_decref(b);
    }
    json_t *many = json_object();
    for (int i = 0; i <= PLACE_LABELS_MAX; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        json_object_set_new(many, k, json_string("v"));
    }
    CHECK(place_labels_parse(many, out, sizeof(out), &e) == FERR_TOOBIG, "17 labels accepted");
    json_object_del(many, "k0");
    CHECK(place_labels_parse(many, out, sizeof(out), &e) == 0, "16 labels refused: %s", e.msg);
    json_decref(many);
    char k[PLACE_LABEL_KEY_MAX + 1], v[PLACE_LABEL_VAL_MAX + 1];
    CHECK(place_selector_parse("zone=b", "label", k, v, &e) == 0 && !strcmp(k, "zone") &&
              !strcmp(v, "b"),
          "selector zone=b");
    CHECK(place_selector_parse("ssd=", "label", k, v, &e) == 0 && !strcmp(k, "ssd") && !v[0],
          "selector ssd=");
    static const char *const badsel[] = {"zone", "=b", "zo ne=b", "zone=b,c", "", NULL};
    for (int i = 0; badsel[i]; i++)
        CHECK(place_selector_parse(badsel[i], "label", k, v, &e) == FERR_INVAL &&
                  !strcmp(e.field, "label"),
              "selector '%s' accepted", badsel[i]);
}

int main(void)
{
    test_run("place: table — most room, source/down excluded, exact fit, nothing fits",
             t_place_table);
    test_run("place: a chosen host is up, not the source, within RAM and vCPUs (grid)",
             t_place_never_exceeds);
    test_run("place: accounting counts instances and in-flight migrations once", t_account);
    test_run("place: indexed accounting equals the quadratic reference on random fleets",
             t_account_random);
    test_run("migreq: create body validated per field", t_validate);
    test_run("labels: validated, capped, canonical; selectors match exactly", t_labels);
    test_run("migreq: limits patch validated per field", t_limits_patch);
    return test_done();
}
