/* Integration: ferry-agent rejects bad requests with a clear error and
 * changes nothing (DESIGN.md invariant 6). Each case sends one bad request
 * to a real agent (tests/lib/lab) and checks the HTTP status, the error's
 * "field", and that the instance and migration lists are unchanged. Also:
 * adopting a "QEMU" that is not one (a test-side unix socket answering
 * garbage, or saying nothing) fails cleanly and the agent stays healthy; adopting a real QEMU
 * started by the test makes it appear in the list.
 *
 * One guest ("g1") runs throughout so that requests against an existing
 * instance (console line, migration limits) are exercised too. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/lab.h"
#include "../lib/test.h"
#include "util/httpc.h"
#include "util/xalloc.h"

static struct lab L;
static int lab_ok;
static int guest_ok;
static const char *const CMDLINE =
    "console=ttyS0 quiet panic=-1 ferry.workload=memload ferry.ws_mib=8 ferry.rate=0";

/* What the agent holds: instance names and migration count, as text. */
static char *snapshot(const struct lab_agent *a)
{
    struct ferr e = {0};
    int st = 0;
    json_t *o = NULL, *m = NULL;
    char *out;
    if (lab_api(a, "GET", "/v1/instances", NULL, &st, &o, &e) != 0 ||
        lab_api(a, "GET", "/v1/migrations", NULL, &st, &m, &e) != 0) {
        json_decref(o);
        return xasprintf("error: %s", e.msg);
    }
    size_t n = json_array_size(json_object_get(o, "instances"));
    char *names = xstrdup("");
    for (size_t i = 0; i < n; i++) {
        json_t *in = json_array_get(json_object_get(o, "instances"), i);
        char *t = xasprintf("%s%s,", names, json_string_value(json_object_get(in, "name")));
        free(names);
        names = t;
    }
    out = xasprintf("instances=%zu [%s] migrations=%zu", n, names,
                    json_array_size(json_object_get(m, "migrations")));
    free(names);
    json_decref(o);
    json_decref(m);
    return out;
}

/* Sends method path with a raw body (may be NULL) and checks the status is
 * one of want1/want2, the error object names field (NULL: any), and the
 * agent's lists did not change. */
static void expect_err(const char *what, const char *method, const char *path, const char *body,
                       int want1, int want2, const char *field)
{
    const struct lab_agent *a = &L.agents[0];
    char *before = snapshot(a);
    struct httpc_resp r = {0};
    struct ferr e = {0};
    int rc = httpc_request(a->url, method, path, body, NULL, LAB_HTTP_TIMEOUT_MS, &r, &e);
    CHECK(rc == 0, "%s: request failed: %s", what, e.msg);
    if (rc == 0) {
        CHECK(r.status == want1 || r.status == want2, "%s: status %d, want %d/%d, body %.200s",
              what, r.status, want1, want2, r.body);
        json_error_t je;
        json_t *o = json_loads(r.body, 0, &je);
        json_t *err = json_object_get(o, "error");
        if (field) {
            const char *f = json_string_value(json_object_get(err, "field"));
            CHECK(f && strcmp(f, field) == 0, "%s: field '%s', want '%s' (%.200s)", what,
                  f ? f : "(none)", field, r.body);
        }
        if (r.status != 413) /* libevent itself answers an oversize body */
            CHECK(json_is_string(json_object_get(err, "message")), "%s: no error message in %.200s",
                  what, r.body);
        json_decref(o);
        httpc_resp_free(&r);
    }
    char *after = snapshot(a);
    CHECK(strcmp(before, after) == 0, "%s: state changed: %s -> %s", what, before, after);
    free(before);
    free(after);
}

/* A body over 1 MiB. The agent (libevent) answers 413 as soon as it sees
 * the Content-Length and closes, so a client still writing the body may
 * get EPIPE instead of the reply: send the headers only and read the
 * answer, then the whole body over a fresh connection, where a cut
 * connection is accepted as a refusal too. Nothing may change either way. */
static void oversize_body(void)
{
    const struct lab_agent *a = &L.agents[0];
    char *before = snapshot(a);
    size_t big = (1u << 20) + 4096;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)a->port)};
    inet_pton(AF_INET, a->addr, &sin.sin_addr);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    REQUIRE(connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0, "connect: %s", strerror(errno));
    char *hdr = xasprintf("POST /v1/instances HTTP/1.1\r\nHost: %s\r\nContent-Type: "
                          "application/json\r\nContent-Length: %zu\r\n\r\n{\"name\":\"x\"",
                          a->addr, big);
    ssize_t w = write(fd, hdr, strlen(hdr));
    CHECK(w == (ssize_t)strlen(hdr), "write headers");
    free(hdr);
    char buf[256] = "";
    ssize_t r = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[r > 0 ? r : 0] = '\0';
    CHECK(strncmp(buf, "HTTP/1.1 413", 12) == 0 || strncmp(buf, "HTTP/1.0 413", 12) == 0,
          "oversize Content-Length: reply '%.40s'", buf);

    char *huge = xmalloc(big + 64);
    int n = snprintf(huge, 64, "{\"name\":\"x\",\"cmdline\":\"");
    memset(huge + n, 'a', big);
    memcpy(huge + n + big, "\"}", 3);
    struct httpc_resp hr = {0};
    struct ferr e = {0};
    int rc =
        httpc_request(a->url, "POST", "/v1/instances", huge, NULL, LAB_HTTP_TIMEOUT_MS, &hr, &e);
    if (rc == 0) {
        CHECK(hr.status == 413 || hr.status == 400, "whole oversize body: status %d", hr.status);
        httpc_resp_free(&hr);
    }
    free(huge);
    int st = 0;
    CHECK(lab_api(a, "GET", "/v1/health", NULL, &st, NULL, &e) == 0 && st == 200,
          "agent unhealthy after an oversize body: %s", e.msg);
    char *after = snapshot(a);
    CHECK(strcmp(before, after) == 0, "oversize body: state changed: %s -> %s", before, after);
    free(before);
    free(after);
}

static void t_malformed(void)
{
    if (!lab_ok)
        { CHECK(0, "lab did not start: a setup failure is a failure"); return; }
    expect_err("malformed JSON", "POST", "/v1/instances", "{\"name\": \"x\",", 400, 400, NULL);
    expect_err("not an object", "POST", "/v1/instances", "[1,2,3]", 400, 400, NULL);
    expect_err("string body", "POST", "/v1/instances", "\"g\"", 400, 400, NULL);
    expect_err("empty body", "POST", "/v1/instances", "", 400, 400, NULL);
    expect_err("unknown field", "POST", "/v1/instances", "{\"name\":\"x\",\"colour\":\"red\"}", 400,
               400, "colour");
    char *deep = xmalloc(100 * 2 + 1);
    for (int i = 0; i < 100; i++) {
        deep[i] = '[';
        deep[100 + i] = ']';
    }
    deep[200] = '\0';
    char *body = xasprintf("{\"name\":\"x\",\"cmdline\":%s}", deep);
    expect_err("nested 100 deep", "POST", "/v1/instances", body, 413, 400, NULL);
    free(body);
    free(deep);
    oversize_body();
}

static void t_spec_fields(void)
{
    if (!lab_ok)
        { CHECK(0, "lab did not start: a setup failure is a failure"); return; }
    expect_err("name wrong type", "POST", "/v1/instances", "{\"name\":5}", 400, 400, "name");
    expect_err("memory_mib string", "POST", "/v1/instances",
               "{\"name\":\"x\",\"memory_mib\":\"256\"}", 400, 400, "memory_mib");
    expect_err("memory_mib negative", "POST", "/v1/instances",
               "{\"name\":\"x\",\"memory_mib\":-256}", 400, 400, "memory_mib");
    expect_err("memory_mib absurd", "POST", "/v1/instances",
               "{\"name\":\"x\",\"memory_mib\":1000000000000}", 400, 400, "memory_mib");
    expect_err("vcpus float", "POST", "/v1/instances", "{\"name\":\"x\",\"vcpus\":1.5}", 400, 400,
               "vcpus");
    expect_err("name ../x", "POST", "/v1/instances", "{\"name\":\"../x\"}", 400, 400, "name");
    expect_err("name empty", "POST", "/v1/instances", "{\"name\":\"\"}", 400, 400, "name");
    char n64[65];
    memset(n64, 'a', 64);
    n64[64] = '\0';
    char *b = xasprintf("{\"name\":\"%s\"}", n64);
    expect_err("name 64 chars", "POST", "/v1/instances", b, 400, 400, "name");
    free(b);
    expect_err("relative kernel", "POST", "/v1/instances",
               "{\"name\":\"x\",\"kernel\":\"build/lab/vmlinuz\"}", 400, 400, "kernel");
    expect_err("incoming name ../x", "POST", "/v1/incoming", "{\"name\":\"../x\"}", 400, 400,
               "name");
    if (guest_ok)
        expect_err("existing name", "POST", "/v1/instances", "{\"name\":\"g1\"}", 409, 409, NULL);
}

static void t_migration_requests(void)
{
    if (!lab_ok)
        { CHECK(0, "lab did not start: a setup failure is a failure"); return; }
    char *good_agent = xasprintf("%s", L.agents[1].url);
    struct {
        const char *what, *limits, *field;
    } lim[] = {
        {"downtime_ms 0", "{\"downtime_ms\":0}", "downtime_ms"},
        {"downtime_ms 1e9", "{\"downtime_ms\":1000000000}", "downtime_ms"},
        {"max_bandwidth_bps 100", "{\"max_bandwidth_bps\":100}", "max_bandwidth_bps"},
        {"max_bandwidth_bps negative", "{\"max_bandwidth_bps\":-1}", "max_bandwidth_bps"},
        {"auto_converge string", "{\"auto_converge\":\"yes\"}", "auto_converge"},
        {"unknown limit", "{\"speed\":1}", "speed"},
        {"limits not an object", "[]", "limits"},
    };
    for (size_t i = 0; i < sizeof(lim) / sizeof(lim[0]); i++) {
        char *b = xasprintf("{\"instance\":\"g1\",\"dest_uri\":\"tcp:127.0.1.2:4444\","
                            "\"dest_agent\":\"%s\",\"limits\":%s}",
                            good_agent, lim[i].limits);
        expect_err(lim[i].what, "POST", "/v1/migrations", b, 400, 400, lim[i].field);
        free(b);
    }
    char *b = xasprintf("{\"instance\":\"nope\",\"dest_uri\":\"tcp:127.0.1.2:4444\","
                        "\"dest_agent\":\"%s\"}",
                        good_agent);
    expect_err("migration of unknown instance", "POST", "/v1/migrations", b, 404, 404, "instance");
    free(b);
    static const char *const bad_uris[] = {"unix:/tmp/x", "tcp:", "tcp:1.2.3.4:5 -x", "exec:sh",
                                           "tcp:a,b:1"};
    for (size_t i = 0; i < sizeof(bad_uris) / sizeof(bad_uris[0]); i++) {
        b = xasprintf("{\"instance\":\"g1\",\"dest_uri\":\"%s\",\"dest_agent\":\"%s\"}",
                      bad_uris[i], good_agent);
        char what[64];
        snprintf(what, sizeof(what), "dest_uri %s", bad_uris[i]);
        expect_err(what, "POST", "/v1/migrations", b, 400, 400, "dest_uri");
        free(b);
    }
    expect_err("bad dest_agent", "POST", "/v1/migrations",
               "{\"instance\":\"g1\",\"dest_uri\":\"tcp:127.0.1.2:4444\","
               "\"dest_agent\":\"ftp://x\"}",
               400, 400, "dest_agent");
    expect_err("missing dest_uri", "POST", "/v1/migrations", "{\"instance\":\"g1\"}", 400, 400,
               "dest_uri");
    expect_err("cancel unknown migration", "POST", "/v1/migrations/m-none-1/cancel", NULL, 404, 404,
               "migration");
    expect_err("get unknown migration", "GET", "/v1/migrations/m-none-1", NULL, 404, 404,
               "migration");
    free(good_agent);
}

/* A migration that ends at once (destination port closed) and then can
 * not be cancelled any more. */
static void t_cancel_finished(void)
{
    if (!lab_ok || !guest_ok)
        return test_skip("no guest");
    const struct lab_agent *a = &L.agents[0];
    char *b = xasprintf("{\"instance\":\"g1\",\"dest_uri\":\"tcp:127.0.1.2:1\","
                        "\"dest_agent\":\"%s\"}",
                        L.agents[1].url);
    int st = 0;
    json_t *o = NULL;
    struct ferr e = {0};
    int rc = lab_api(a, "POST", "/v1/migrations", json_loads(b, 0, NULL), &st, &o, &e);
    free(b);
    REQUIRE(rc == 0 && st == 202, "start: rc %d status %d", rc, st);
    char id[64];
    snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(o, "id")));
    json_decref(o);
    json_t *m = NULL;
    rc = lab_migration_wait(a, id, 30000, &m, &e);
    REQUIRE(rc == 0, "%s", e.msg);
    CHECK(strcmp(json_string_value(json_object_get(m, "state")), "failed") == 0,
          "migration to a closed port: %s", json_string_value(json_object_get(m, "state")));
    json_decref(m);
    char path[128];
    snprintf(path, sizeof(path), "/v1/migrations/%s/cancel", id);
    expect_err("cancel finished migration", "POST", path, NULL, 409, 404, NULL);
    pid_t pid;
    char state[32];
    rc = lab_instance_pid(a, "g1", &pid, state, sizeof(state), &e);
    CHECK(rc == 0 && lab_pid_alive(pid), "g1 gone after a failed migration: %s", e.msg);
}

static void t_instances_and_console(void)
{
    if (!lab_ok)
        { CHECK(0, "lab did not start: a setup failure is a failure"); return; }
    expect_err("unknown instance", "GET", "/v1/instances/nope", NULL, 404, 404, "instance");
    expect_err("delete unknown instance", "DELETE", "/v1/instances/nope", NULL, 404, 404,
               "instance");
    expect_err("console of unknown instance", "POST", "/v1/instances/nope/console",
               "{\"line\":\"status\"}", 404, 404, "instance");
    if (guest_ok) {
        expect_err("console line with newline", "POST", "/v1/instances/g1/console",
                   "{\"line\":\"status\\nreboot\"}", 400, 400, "line");
        expect_err("console line not a string", "POST", "/v1/instances/g1/console", "{\"line\":7}",
                   400, 400, "line");
        expect_err("console bad since", "GET", "/v1/instances/g1/console?since=-1", NULL, 400, 400,
                   "since");
    }
    expect_err("unknown endpoint", "GET", "/v1/nothing", NULL, 404, 404, NULL);
    expect_err("no version", "GET", "/health", NULL, 404, 404, NULL);
    expect_err("wrong method on health", "DELETE", "/v1/health", NULL, 404, 405, NULL);
    expect_err("wrong method on instances", "PUT", "/v1/instances", "{}", 404, 405, NULL);
    expect_err("adopt relative path", "POST", "/v1/adopt", "{\"qmp\":\"x.sock\"}", 400, 400, "qmp");
    expect_err("adopt missing socket", "POST", "/v1/adopt", "{\"qmp\":\"/nonexistent/q.sock\"}",
               404, 400, "qmp");
}

/* --- a QEMU that is not a QEMU --------------------------------------- */

#define FAKE_ENV "FERRY_TEST_FAKE_QMP" /* set: this process is the fake QEMU */

/* The fake: this very test binary re-executed with a QEMU-like command
 * line (argv[0] qemu-system-x86_64, -name, -kernel, -qmp unix:PATH,...),
 * so the agent's /proc/PID/cmdline check passes and its QMP client meets
 * the garbage. Serves every connection a burst of non-QMP bytes. */
static int fake_qemu_main(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], "-qmp") == 0 && strncmp(argv[i + 1], "unix:", 5) == 0)
            path = argv[i + 1] + 5;
    if (!path)
        return 2;
    char p[108];
    size_t n = strcspn(path, ",");
    if (n >= sizeof(p))
        return 2;
    memcpy(p, path, n);
    p[n] = '\0';
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, p, n + 1);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 8) != 0)
        return 3;
    alarm(120); /* never outlive a run, whatever happens */
    for (;;) {
        int c = accept(lfd, NULL, NULL);
        if (c < 0)
            continue;
        if (strcmp(getenv(FAKE_ENV), "silent") == 0)
            continue; /* keep it open, say nothing */
        static const char junk[] = "\x01\x02garbage {\"QMP\": [not json\r\n\xff\xfe{{{{\n";
        ssize_t w = write(c, junk, sizeof(junk) - 1);
        (void)w;
        usleep(200000);
        close(c);
    }
}

/* mode: "garbage" (the fake answers junk) or "silent" (it never speaks). */
static void adopt_fake(const char *mode)
{
    if (!lab_ok)
        { CHECK(0, "lab did not start: a setup failure is a failure"); return; }
    char *path = xasprintf("%s/fake-%s.sock", L.tmp, mode);
    char *qmparg = xasprintf("unix:%s,server=on,wait=off", path);
    char *kernel = xasprintf("%s/vmlinuz", L.lab_dir);
    char *argv[] = {"qemu-system-x86_64",
                    "-name",
                    "fakeqemu",
                    "-m",
                    "128",
                    "-kernel",
                    kernel,
                    "-qmp",
                    qmparg,
                    NULL};
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) {
        setpgid(0, 0);
        setenv(FAKE_ENV, mode, 1);
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    setpgid(pid, pid);
    CHECK(lab_track(&L, pid) == 0, "track");
    for (int i = 0; i < 50 && access(path, F_OK) != 0; i++)
        usleep(100000);
    char *body = xasprintf("{\"qmp\":\"%s\"}", path);
    const struct lab_agent *a = &L.agents[0];
    char *before = snapshot(a);
    struct httpc_resp r = {0};
    struct ferr e = {0};
    int rc = httpc_request(a->url, "POST", "/v1/adopt", body, NULL, LAB_HTTP_TIMEOUT_MS, &r, &e);
    CHECK(rc == 0, "adopt request failed: %s", e.msg);
    if (rc == 0) {
        CHECK(r.status >= 400 && r.status < 600, "adopt of %s: status %d %.300s", mode, r.status,
              r.body);
        printf("  adopt of %s: %d %.300s", mode, r.status, r.body);
        json_t *o = json_loads(r.body, 0, NULL);
        CHECK(json_is_string(json_object_get(json_object_get(o, "error"), "message")),
              "no error message: %.200s", r.body);
        json_decref(o);
        httpc_resp_free(&r);
    }
    int st = 0;
    rc = lab_api(a, "GET", "/v1/health", NULL, &st, NULL, &e);
    CHECK(rc == 0 && st == 200, "agent unhealthy after fake adopt: %s", e.msg);
    char *after = snapshot(a);
    CHECK(strcmp(before, after) == 0, "state changed: %s -> %s", before, after);
    /* whatever the agent made of it, leave no trace for the next cases */
    if (strcmp(before, after) != 0 &&
        lab_api(a, "DELETE", "/v1/instances/fakeqemu", NULL, &st, NULL, &e) != 0) {
    }
    kill(-pid, SIGKILL);
    waitpid(pid, NULL, 0);
    lab_instance_wait_gone(a, "fakeqemu", 10000);
    free(before);
    free(after);
    free(body);
    free(path);
    free(qmparg);
    free(kernel);
}

static void t_adopt_fake(void)
{
    adopt_fake("garbage");
}

static void t_adopt_silent(void)
{
    adopt_fake("silent");
}

static void t_adopt_real(void)
{
    if (!lab_ok)
        { CHECK(0, "lab did not start: a setup failure is a failure"); return; }
    char *qmp = xasprintf("%s/real-qmp.sock", L.tmp);
    char *kernel = xasprintf("%s/vmlinuz", L.lab_dir);
    char *initrd = xasprintf("%s/initrd.img", L.lab_dir);
    char *qmparg = xasprintf("unix:%s,server=on,wait=off", qmp);
    /* a disk on its own iothread, as spec_argv writes it */
    char *img = xasprintf("%s/adoptee.raw", L.tmp);
    int ifd = open(img, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(ifd >= 0 && ftruncate(ifd, 1 << 20) == 0, "create %s", img);
    close(ifd);
    char *fnode = xasprintf("driver=file,node-name=f-vda,filename=%s,cache.direct=off", img);
    char *argv[] = {"qemu-system-x86_64",
                    "-name",
                    "adoptee",
                    "-accel",
                    "tcg",
                    "-machine",
                    "pc",
                    "-m",
                    "128",
                    "-nodefaults",
                    "-no-user-config",
                    "-display",
                    "none",
                    "-kernel",
                    kernel,
                    "-initrd",
                    initrd,
                    "-append",
                    "console=ttyS0 quiet panic=-1 ferry.workload=memload ferry.ws_mib=8",
                    "-qmp",
                    qmparg,
                    "-object",
                    "iothread,id=iot-vda",
                    "-blockdev",
                    fnode,
                    "-blockdev",
                    "driver=raw,node-name=d-vda,file=f-vda",
                    "-device",
                    "virtio-blk-pci,drive=d-vda,id=vda,iothread=iot-vda",
                    NULL};
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) {
        setpgid(0, 0);
        execvp(argv[0], argv);
        _exit(127);
    }
    setpgid(pid, pid);
    CHECK(lab_track(&L, pid) == 0, "track");
    const struct lab_agent *a = &L.agents[0];
    int st = 0;
    json_t *o = NULL;
    struct ferr e = {0};
    json_t *body = json_pack("{s:s}", "qmp", qmp);
    int rc = -1;
    for (int i = 0; i < 100; i++) { /* QEMU creates its socket within a second or so */
        if (access(qmp, F_OK) == 0)
            break;
        usleep(100000);
    }
    rc = lab_api(a, "POST", "/v1/adopt", body, &st, &o, &e);
    json_decref(body);
    CHECK(rc == 0 && st == 200, "adopt: rc %d status %d %s", rc, st,
          o ? json_string_value(json_object_get(json_object_get(o, "error"), "message")) : e.msg);
    const char *name = json_string_value(json_object_get(o, "name"));
    CHECK(name && strcmp(name, "adoptee") == 0, "adopted name '%s'", name ? name : "(none)");
    CHECK(json_integer_value(json_object_get(o, "pid")) == pid, "adopted pid %lld, want %d",
          (long long)json_integer_value(json_object_get(o, "pid")), (int)pid);
    /* the spec read back from the command line keeps the disk's iothread
     * (a migration launches the destination from it) */
    json_t *dk = json_array_get(json_object_get(json_object_get(o, "spec"), "disks"), 0);
    const char *dpath = json_string_value(json_object_get(dk, "path"));
    CHECK(dk && dpath && strcmp(dpath, img) == 0 && json_is_true(json_object_get(dk, "iothread")),
          "adopted disk: path '%s' iothread %d", dpath ? dpath : "(none)",
          json_is_true(json_object_get(dk, "iothread")));
    json_decref(o);
    pid_t got = 0;
    rc = lab_instance_pid(a, "adoptee", &got, NULL, 0, &e);
    CHECK(rc == 0 && got == pid, "adoptee not listed: %s", e.msg);
    /* a second adopt of the same QEMU is refused and changes nothing */
    char *b2 = xasprintf("{\"qmp\":\"%s\"}", qmp);
    expect_err("adopt twice", "POST", "/v1/adopt", b2, 409, 409, NULL);
    free(b2);
    kill(-pid, SIGKILL);
    waitpid(pid, NULL, 0);
    CHECK(lab_instance_wait_gone(a, "adoptee", 10000), "adoptee still listed after it died");
    free(qmp);
    free(kernel);
    free(initrd);
    free(qmparg);
    unlink(img);
    free(img);
    free(fnode);
}

int main(int argc, char **argv)
{
    if (getenv(FAKE_ENV))
        return fake_qemu_main(argc, argv);
    struct ferr e = {0};
    uint64_t t0 = lab_now_ms();
    lab_ok = lab_start(&L, 2, &e) == 0;
    if (!lab_ok) {
        printf("FAIL lab start: %s\n", e.msg);
    } else {
        guest_ok = lab_launch_guest(&L.agents[0], "g1", 128, CMDLINE, LAB_BOOT_TIMEOUT_MS, &e) == 0;
        if (!guest_ok)
            printf("FAIL guest g1 start: %s\n", e.msg);
    }
    test_run("agent api: malformed, non-object, oversize and deep bodies", t_malformed);
    test_run("agent api: bad instance specs", t_spec_fields);
    test_run("agent api: bad migration requests and limits", t_migration_requests);
    test_run("agent api: cancel of a finished migration", t_cancel_finished);
    test_run("agent api: unknown instances, console lines, endpoints and methods",
             t_instances_and_console);
    test_run("agent api: adopt a socket that is not QEMU", t_adopt_fake);
    test_run("agent api: adopt a socket that never speaks", t_adopt_silent);
    test_run("agent api: adopt a real QEMU", t_adopt_real);
    lab_stop(&L);
    fprintf(stderr, "test_agent_api: %.1f s\n", (double)(lab_now_ms() - t0) / 1000.0);
    return lab_ok && guest_ok ? test_done() : 1;
}
