/* Proves that the agent's request validation accepts good specs and limits,
 * rejects each kind of bad input with the offending field named, and that
 * the QEMU command line built from a spec carries what the spec says. */
#include <string.h>

#include "agent/spec.h"
#include "../lib/test.h"
#include "util/jsonin.h"

struct spec_case {
    const char *json;  /* request body */
    int code;          /* expected result: 0 or FERR_* */
    const char *field; /* expected offending field when code != 0 */
};

static const struct spec_case spec_cases[] = {
    {"{\"name\":\"g1\"}", 0, ""},
    {"{\"name\":\"g1\",\"memory_mib\":256,\"vcpus\":2,\"cmdline\":\"console=ttyS0\"}", 0, ""},
    {"{\"name\":\"g1\",\"project\":\"p-1\"}", 0, ""},
    {"{}", FERR_INVAL, "name"},
    {"{\"name\":\"\"}", FERR_INVAL, "name"},
    {"{\"name\":\"../etc\"}", FERR_INVAL, "name"},
    {"{\"name\":\"a/b\"}", FERR_INVAL, "name"},
    {"{\"name\":\"-x\"}", FERR_INVAL, "name"},
    {"{\"name\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}", FERR_INVAL, "name"},
    {"{\"name\":5}", FERR_INVAL, "name"},
    {"{\"name\":\"g\",\"memory_mib\":-1}", FERR_INVAL, "memory_mib"},
    {"{\"name\":\"g\",\"memory_mib\":32}", FERR_INVAL, "memory_mib"},
    {"{\"name\":\"g\",\"memory_mib\":99999999}", FERR_INVAL, "memory_mib"},
    {"{\"name\":\"g\",\"memory_mib\":\"256\"}", FERR_INVAL, "memory_mib"},
    {"{\"name\":\"g\",\"vcpus\":0}", FERR_INVAL, "vcpus"},
    {"{\"name\":\"g\",\"kernel\":\"relative/vmlinuz\"}", FERR_INVAL, "kernel"},
    {"{\"name\":\"g\",\"kernel\":\"/a,b\"}", FERR_INVAL, "kernel"},
    {"{\"name\":\"g\",\"colour\":\"red\"}", FERR_INVAL, "colour"},
    {"{\"name\":\"g\",\"project\":\"x y\"}", FERR_INVAL, "project"},
    /* network storage: a disk is an image file or an NBD export, never both */
    {"{\"name\":\"g\",\"disks\":[{\"id\":\"vda\",\"nbd\":{\"host\":\"10.77.0.3\",\"port\":10809,"
     "\"export\":\"disk\"}}]}", 0, ""},
    {"{\"name\":\"g\",\"disks\":[{\"id\":\"vda\",\"path\":\"/d.img\",\"nbd\":{\"host\":\"h\","
     "\"port\":1,\"export\":\"e\"}}]}", FERR_INVAL, "disks"},
    {"{\"name\":\"g\",\"disks\":[{\"id\":\"vda\"}]}", FERR_INVAL, "disks"},
    {"{\"name\":\"g\",\"disks\":[{\"id\":\"vda\",\"nbd\":\"h:1/e\"}]}", FERR_INVAL, "disks"},
    {"{\"name\":\"g\",\"disks\":[{\"id\":\"vda\",\"nbd\":{\"host\":\"h,x=1\",\"port\":1,"
     "\"export\":\"e\"}}]}", FERR_INVAL, "disks"},
    {"{\"name\":\"g\",\"disks\":[{\"id\":\"vda\",\"nbd\":{\"host\":\"h\",\"port\":0,"
     "\"export\":\"e\"}}]}", FERR_INVAL, "port"},
    {"{\"name\":\"g\",\"disks\":[{\"id\":\"vda\",\"nbd\":{\"host\":\"h\",\"port\":70000,"
     "\"export\":\"e\"}}]}", FERR_INVAL, "port"},
    {"{\"name\":\"g\",\"disks\":[{\"id\":\"vda\",\"nbd\":{\"host\":\"h\",\"port\":1,"
     "\"export\":\"a,b\"}}]}", FERR_INVAL, "disks"},
    {"{\"name\":\"g\",\"disks\":[{\"id\":\"vda\",\"nbd\":{\"host\":\"h\",\"port\":1}}]}",
     FERR_INVAL, "export"},
    {"{\"name\":\"g\",\"disks\":[{\"id\":\"vda\",\"nbd\":{\"host\":\"h\",\"port\":1,"
     "\"export\":\"e\",\"tls\":true}}]}", FERR_INVAL, "tls"},
    /* a disk on an I/O thread of its own: a boolean, nothing else */
    {"{\"name\":\"g\",\"disks\":[{\"id\":\"vda\",\"path\":\"/d.img\",\"iothread\":true}]}", 0, ""},
    {"{\"name\":\"g\",\"disks\":[{\"id\":\"vda\",\"path\":\"/d.img\",\"iothread\":1}]}",
     FERR_INVAL, "iothread"},
    {"{\"name\":\"g\",\"disks\":[{\"id\":\"vda\",\"path\":\"/d.img\",\"iothread\":\"on\"}]}",
     FERR_INVAL, "iothread"},
};

static void t_spec_table(void)
{
    for (size_t i = 0; i < sizeof(spec_cases) / sizeof(spec_cases[0]); i++) {
        const struct spec_case *c = &spec_cases[i];
        json_t *o = NULL;
        struct ferr e = {0};
        int rc = jsonin_parse_object(c->json, strlen(c->json), JSONIN_MAX_BYTES,
                                     JSONIN_MAX_DEPTH, &o, &e);
        REQUIRE(rc == 0, "case %zu: body did not parse: %s", i, e.msg);
        struct inst_spec s;
        rc = spec_from_json(o, "/lab/vmlinuz", "/lab/initrd.img", &s, &e);
        CHECK(rc == c->code, "case %zu (%s): rc %d, want %d (%s)", i, c->json, rc, c->code, e.msg);
        if (rc != 0)
            CHECK(strcmp(e.field, c->field) == 0, "case %zu: field '%s', want '%s'", i, e.field,
                  c->field);
        else
            spec_free(&s);
        json_decref(o);
    }
}

struct limit_case {
    const char *json;
    int code;
    const char *field;
};

static const struct limit_case limit_cases[] = {
    {"{}", 0, ""},
    {"{\"downtime_ms\":300,\"max_bandwidth_bps\":67108864,\"auto_converge\":true}", 0, ""},
    {"{\"max_bandwidth_bps\":0}", 0, ""},
    {"{\"downtime_ms\":0}", FERR_INVAL, "downtime_ms"},
    {"{\"downtime_ms\":1000000000}", FERR_INVAL, "downtime_ms"},
    {"{\"max_bandwidth_bps\":100}", FERR_INVAL, "max_bandwidth_bps"},
    {"{\"auto_converge\":1}", FERR_INVAL, "auto_converge"},
    {"{\"completion_timeout_s\":-3}", FERR_INVAL, "completion_timeout_s"},
    {"{\"speed\":1}", FERR_INVAL, "speed"},
    {"{\"max_bandwidth_bps\":4194304,\"pacing\":true}", 0, ""},
    {"{\"pacing\":\"yes\"}", FERR_INVAL, "pacing"},
    {"{\"mirror_buf_bytes\":0}", 0, ""},
    {"{\"mirror_buf_bytes\":1048576}", 0, ""},
    {"{\"mirror_buf_bytes\":4096}", FERR_INVAL, "mirror_buf_bytes"},
    {"{\"mirror_buf_bytes\":536870912}", FERR_INVAL, "mirror_buf_bytes"},
};

static void t_limits_table(void)
{
    for (size_t i = 0; i < sizeof(limit_cases) / sizeof(limit_cases[0]); i++) {
        const struct limit_case *c = &limit_cases[i];
        json_t *o = json_loads(c->json, 0, NULL);
        REQUIRE(o, "case %zu: fixture does not parse", i);
        struct mig_limits l;
        struct ferr e = {0};
        int rc = limits_from_json(o, &l, &e);
        CHECK(rc == c->code, "case %zu (%s): rc %d, want %d", i, c->json, rc, c->code);
        if (rc != 0) {
            CHECK(strcmp(e.field, c->field) == 0, "case %zu: field '%s', want '%s'", i, e.field,
                  c->field);
            CHECK(l.downtime_ms == 300, "case %zu: a rejected request changed the limits", i);
        }
        json_decref(o);
    }
}

/* Proves: pacing_given says whether the request named pacing (a budget
 * turns pacing on only when it did not). */
static void t_pacing_given(void)
{
    static const struct {
        const char *json;
        bool pacing, given;
    } c[] = {{"{}", false, false}, {"{\"pacing\":false}", false, true},
             {"{\"pacing\":true}", true, true}, {"{\"downtime_ms\":500}", false, false}};
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        json_t *o = json_loads(c[i].json, 0, NULL);
        REQUIRE(o, "case %zu: fixture does not parse", i);
        struct mig_limits l;
        struct ferr e = {0};
        CHECK(limits_from_json(o, &l, &e) == 0, "case %zu: %s", i, e.msg);
        CHECK(l.pacing == c[i].pacing && l.pacing_given == c[i].given,
              "case %zu (%s): pacing %d given %d", i, c[i].json, l.pacing, l.pacing_given);
        json_decref(o);
    }
}

static void t_caps(void)
{
    struct ferr e = {0};
    json_t *o = NULL;
    char big[64];
    memset(big, '[', sizeof(big));
    CHECK(jsonin_parse_object(big, sizeof(big), JSONIN_MAX_BYTES, 16, &o, &e) == FERR_TOOBIG,
          "64 levels of nesting accepted");
    CHECK(o == NULL, "output set on failure");
    CHECK(jsonin_parse_object("{}", 2, 1, 16, &o, &e) == FERR_TOOBIG, "size cap not applied");
    CHECK(jsonin_parse_object("[1]", 3, 100, 16, &o, &e) == FERR_INVAL, "array accepted as body");
    CHECK(jsonin_parse_object("{\"a\":1,\"a\":2}", 13, 100, 16, &o, &e) == FERR_INVAL,
          "duplicate keys accepted");
    CHECK(jsonin_depth("\"[[[[\"", 6, 2) == 0, "brackets inside strings counted");
    CHECK(jsonin_depth("[\"\\\"[[[\"]", 9, 2) == 1, "escaped quote ends the string");
}

static void t_argv(void)
{
    struct inst_spec s = {0};
    json_t *o = json_loads("{\"name\":\"g1\",\"memory_mib\":256,\"vcpus\":2,"
                           "\"cmdline\":\"console=ttyS0 quiet\"}",
                           0, NULL);
    struct ferr e = {0};
    REQUIRE(spec_from_json(o, "/k", "/i", &s, &e) == 0, "spec rejected: %s", e.msg);
    char **v = spec_argv(&s, "/usr/bin/qemu", "/d/qmp.sock", "/d/serial.sock", true);
    int have_m = 0, have_incoming = 0, have_noreboot = 0, have_append = 0;
    for (int i = 0; v[i]; i++) {
        if (strcmp(v[i], "-m") == 0 && v[i + 1])
            have_m = strcmp(v[i + 1], "262148k") == 0 || strcmp(v[i + 1], "256") == 0;
        if (strcmp(v[i], "-incoming") == 0 && v[i + 1])
            have_incoming = strcmp(v[i + 1], "defer") == 0;
        if (strcmp(v[i], "-no-reboot") == 0)
            have_noreboot = 1;
        if (strcmp(v[i], "-append") == 0 && v[i + 1])
            have_append = strcmp(v[i + 1], "console=ttyS0 quiet") == 0;
    }
    CHECK(have_m, "-m does not carry 256 MiB");
    CHECK(have_incoming, "-incoming defer missing");
    CHECK(have_noreboot, "-no-reboot missing: a crashed guest could reboot silently");
    CHECK(have_append, "-append does not carry the cmdline");
    spec_argv_free(v);
    spec_free(&s);
    json_decref(o);
}

/* An NBD disk becomes QEMU's NBD client as the protocol node f-ID under the
 * usual format node, and survives the JSON round trip (the spec file the
 * agent re-reads after a restart). */
static void t_argv_nbd(void)
{
    struct inst_spec s = {0}, s2 = {0};
    json_t *o = json_loads("{\"name\":\"g1\",\"disks\":[{\"id\":\"vda\",\"nbd\":{\"host\":"
                           "\"10.77.0.3\",\"port\":10809,\"export\":\"disk\"}}]}",
                           0, NULL);
    struct ferr e = {0};
    REQUIRE(spec_from_json(o, "/k", "/i", &s, &e) == 0, "spec rejected: %s", e.msg);
    char **v = spec_argv(&s, "/usr/bin/qemu", "/d/qmp.sock", "/d/serial.sock", false);
    int have_nbd = 0, have_fmt = 0, have_dev = 0;
    for (int i = 0; v[i]; i++) {
        if (strcmp(v[i], "-blockdev") == 0 && v[i + 1]) {
            have_nbd |= strcmp(v[i + 1], "driver=nbd,node-name=f-vda,server.type=inet,"
                                         "server.host=10.77.0.3,server.port=10809,"
                                         "export=disk") == 0;
            have_fmt |= strcmp(v[i + 1], "driver=raw,node-name=d-vda,file=f-vda") == 0;
        }
        if (strcmp(v[i], "-device") == 0 && v[i + 1])
            have_dev |= strcmp(v[i + 1], "virtio-blk-pci,drive=d-vda,id=vda") == 0;
    }
    CHECK(have_nbd, "no NBD client blockdev for vda");
    CHECK(have_fmt, "no raw format node over the NBD client");
    CHECK(have_dev, "no virtio-blk device for vda");
    spec_argv_free(v);
    json_t *back = spec_to_json(&s);
    REQUIRE(spec_from_json(back, NULL, NULL, &s2, &e) == 0, "own JSON rejected: %s", e.msg);
    CHECK(s2.n_disks == 1 && s2.disks[0].path == NULL && s2.disks[0].nbd_host &&
              strcmp(s2.disks[0].nbd_host, "10.77.0.3") == 0 && s2.disks[0].nbd_port == 10809 &&
              strcmp(s2.disks[0].nbd_export, "disk") == 0,
          "NBD disk changed in the JSON round trip");
    json_decref(back);
    spec_free(&s2);
    spec_free(&s);
    json_decref(o);
}

/* A disk with "iothread": its own iothread object, created before the
 * virtio-blk device that names it; a disk without one has neither; the
 * flag survives the JSON round trip (the spec the destination launches). */
static void t_argv_iothread(void)
{
    struct inst_spec s = {0}, s2 = {0};
    json_t *o = json_loads("{\"name\":\"g1\",\"disks\":[{\"id\":\"vda\",\"path\":\"/a.img\","
                           "\"iothread\":true},{\"id\":\"vdb\",\"path\":\"/b.img\"}]}",
                           0, NULL);
    struct ferr e = {0};
    REQUIRE(spec_from_json(o, "/k", "/i", &s, &e) == 0, "spec rejected: %s", e.msg);
    char **v = spec_argv(&s, "/usr/bin/qemu", "/d/qmp.sock", "/d/serial.sock", true);
    int obj_at = -1, dev_at = -1, objects = 0, plain_b = 0;
    for (int i = 0; v[i]; i++) {
        if (strcmp(v[i], "-object") == 0 && v[i + 1] && strncmp(v[i + 1], "iothread,", 9) == 0) {
            objects++;
            if (strcmp(v[i + 1], "iothread,id=iot-vda") == 0)
                obj_at = i;
        }
        if (strcmp(v[i], "-device") == 0 && v[i + 1]) {
            if (strcmp(v[i + 1], "virtio-blk-pci,drive=d-vda,id=vda,iothread=iot-vda") == 0)
                dev_at = i;
            plain_b |= strcmp(v[i + 1], "virtio-blk-pci,drive=d-vdb,id=vdb") == 0;
        }
    }
    CHECK(obj_at >= 0, "no iothread object for vda");
    CHECK(dev_at >= 0, "vda's device does not name its iothread");
    CHECK(obj_at < dev_at, "the iothread object comes after the device naming it");
    CHECK(objects == 1, "%d iothread objects, want 1 (vdb has none)", objects);
    CHECK(plain_b, "vdb's device is not the plain virtio-blk");
    spec_argv_free(v);
    json_t *back = spec_to_json(&s);
    REQUIRE(spec_from_json(back, NULL, NULL, &s2, &e) == 0, "own JSON rejected: %s", e.msg);
    CHECK(s2.n_disks == 2 && s2.disks[0].iothread && !s2.disks[1].iothread,
          "iothread changed in the JSON round trip");
    CHECK(json_object_get(json_array_get(json_object_get(back, "disks"), 1), "iothread") == NULL,
          "a disk without an iothread says so in its JSON");
    json_decref(back);
    spec_free(&s2);
    spec_free(&s);
    json_decref(o);
}

int main(void)
{
    test_run("agent spec: each bad field rejected and named", t_spec_table);
    test_run("agent limits: ranges and types enforced, rejection changes nothing", t_limits_table);
    test_run("limits: pacing given or defaulted", t_pacing_given);
    test_run("jsonin: size, depth, duplicate and type caps", t_caps);
    test_run("agent argv: QEMU command line carries the spec", t_argv);
    test_run("agent argv: an NBD disk is QEMU's NBD client, round trip intact", t_argv_nbd);
    test_run("agent argv: a disk on its own iothread, round trip intact", t_argv_iothread);
    return test_done();
}
