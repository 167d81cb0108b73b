/* api — ferry-agent's HTTP/JSON API (/v1). Every body is capped and
 * validated before anything changes; errors are {"error":{code,message,
 * field}} with a 4xx/5xx status. Loopback only by default; a bearer token
 * is required when the agent was given one. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/control.h"
#include "agent/maint.h"
#include "agent/storage.h"
#include "core/trace.h"
#include "util/httpd.h"
#include "util/jsonin.h"
#include "util/log.h"
#include "util/xalloc.h"

#define CONSOLE_READ_MAX (256u * 1024u) /* bytes returned per console read */
#define CONSOLE_LINE_MAX 1024           /* bytes per console write */

static void reply_err(struct evhttp_request *req, int code, const char *field, const char *msg)
{
    struct ferr e;
    ferr_set(&e, code, field, "%s", msg);
    httpd_reply_err(req, &e);
}

static bool authorised(struct agent *ag, struct evhttp_request *req)
{
    if (!ag->token)
        return true;
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (!h || strncmp(h, "Bearer ", 7) != 0)
        return false;
    const char *t = h + 7;
    size_t a = strlen(t), b = strlen(ag->token);
    unsigned diff = (unsigned)(a ^ b);
    for (size_t i = 0; i < a && i < b; i++)
        diff |= (unsigned)(t[i] ^ ag->token[i]);
    return diff == 0;
}

static void get_health(struct agent *ag, struct evhttp_request *req)
{
    char why[160] = "";
    bool pc = agent_postcopy_possible(why, sizeof(why));
    json_t *o = json_pack("{s:s, s:s, s:i, s:i, s:b}", "name", ag->name, "address",
                          ag->listen_addr, "instances", (int)ag->n_instances, "migrations",
                          (int)ag->n_migrations, "postcopy_available", pc);
    if (!pc)
        json_object_set_new(o, "postcopy_note", json_string(why));
    httpd_reply_json(req, 200, o);
}

static void list_instances(struct agent *ag, struct evhttp_request *req)
{
    json_t *a = json_array();
    for (struct instance *in = ag->instances; in; in = in->next)
        json_array_append_new(a, inst_to_json(in));
    httpd_reply_json(req, 200, json_pack("{s:o}", "instances", a));
}

static void create_instance(struct agent *ag, struct evhttp_request *req, bool incoming)
{
    struct ferr e = {0};
    json_t *body;
    if (httpd_body_json(req, 0, &body, &e) != 0) {
        httpd_reply_err(req, &e);
        return;
    }
    /* POST /v1/incoming takes "postcopy" (bool) beside the spec: the
     * destination sets postcopy-ram before migrate-incoming */
    bool postcopy = false;
    int rc = 0;
    if (incoming && json_object_get(body, "postcopy")) {
        rc = jsonin_bool(body, "postcopy", false, &postcopy, &e);
        json_object_del(body, "postcopy");
    }
    /* ... and "storage": "copy" with "disk_sizes": the destination creates
     * its own copies of the disks and exports them over NBD (storage.h) */
    bool copy = false;
    json_t *sizes = NULL;
    if (incoming && rc == 0 && json_object_get(body, "storage")) {
        char *mode = NULL;
        rc = jsonin_str(body, "storage", 16, false, &mode, &e);
        if (rc == 0 && strcmp(mode, "copy") != 0 && strcmp(mode, "shared") != 0)
            rc = ferr_set(&e, FERR_INVAL, "storage", "'storage' must be \"copy\" or \"shared\"");
        copy = rc == 0 && strcmp(mode, "copy") == 0;
        free(mode);
        json_object_del(body, "storage");
    }
    if (incoming && rc == 0 && json_object_get(body, "disk_sizes")) {
        sizes = json_incref(json_object_get(body, "disk_sizes"));
        json_object_del(body, "disk_sizes");
        if (!copy)
            rc = ferr_set(&e, FERR_INVAL, "disk_sizes",
                          "'disk_sizes' goes with \"storage\": \"copy\" only");
    }
    char why[160] = "";
    if (postcopy && !agent_postcopy_possible(why, sizeof(why))) {
        /* not an error: the instance reports postcopy false and the source
         * then leaves post-copy off */
        log_warn("agent", "msg=\"post-copy requested but unavailable\" why=\"%s\"", why);
        postcopy = false;
    }
    struct inst_spec spec;
    if (rc == 0)
        rc = spec_from_json(body, ag->lab_kernel, ag->lab_initrd, &spec, &e);
    json_decref(body);
    if (rc == 0 && copy && (rc = storage_create_copies(ag, &spec, sizes, &e)) != 0)
        spec_free(&spec);
    json_decref(sizes);
    if (rc != 0) {
        httpd_reply_err(req, &e);
        return;
    }
    struct instance *in;
    rc = inst_launch(ag, &spec, incoming, &in, &e);
    if (rc != 0 && copy)
        storage_remove_copies(&spec);
    spec_free(&spec);
    if (rc != 0) {
        httpd_reply_err(req, &e);
        return;
    }
    in->postcopy = postcopy; /* read when QMP is ready, never before */
    in->storage_copy = in->disks_owned = copy;
    json_t *o = inst_to_json(in);
    if (why[0])
        json_object_set_new(o, "postcopy_note", json_string(why));
    httpd_reply_json(req, 202, o);
}

static void adopt(struct agent *ag, struct evhttp_request *req)
{
    static const char *const keys[] = {"qmp", "serial", NULL};
    struct ferr e = {0};
    json_t *body;
    if (httpd_body_json(req, 0, &body, &e) != 0) {
        httpd_reply_err(req, &e);
        return;
    }
    char *qmp = NULL, *serial = NULL;
    int rc = jsonin_only_keys(body, keys, &e);
    if (rc == 0)
        rc = jsonin_str(body, "qmp", SPEC_PATH_MAX, true, &qmp, &e);
    if (rc == 0)
        rc = jsonin_str(body, "serial", SPEC_PATH_MAX, false, &serial, &e);
    json_decref(body);
    if (rc == 0 && qmp[0] != '/')
        rc = ferr_set(&e, FERR_INVAL, "qmp", "'qmp' must be an absolute socket path");
    struct instance *in = NULL;
    if (rc == 0)
        rc = inst_adopt(ag, qmp, serial, &in, &e);
    free(qmp);
    free(serial);
    if (rc != 0) {
        httpd_reply_err(req, &e);
        return;
    }
    if (!in->qmp_ready) { /* answered when the QMP handshake ends (instance.c) */
        in->adopt_req = req;
        return;
    }
    httpd_reply_json(req, 200, inst_to_json(in));
}

static json_t *console_text(const char *p, size_t n)
{
    char *s = xmalloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        s[i] = (c >= 0x20 && c < 0x7f) || c == '\n' || c == '\t' ? (char)c : (c == '\r' ? '\r' : '?');
    }
    json_t *j = json_stringn(s, n);
    free(s);
    return j;
}

static void get_console(struct instance *in, struct evhttp_request *req)
{
    char buf[32];
    uint64_t since = 0;
    if (httpd_query(req, "since", buf, sizeof(buf)) == 0) {
        char *end = NULL;
        /* strtoull takes "-1" (and " 1") and wraps: digits only */
        since = buf[0] >= '0' && buf[0] <= '9' ? strtoull(buf, &end, 10) : 0;
        if (!end || *end) {
            reply_err(req, FERR_INVAL, "since", "'since' must be a non-negative integer");
            return;
        }
    }
    uint64_t end_off = in->console_base + in->console_len;
    uint64_t from = since < in->console_base ? in->console_base : since;
    if (from > end_off)
        from = end_off;
    size_t n = (size_t)(end_off - from);
    if (n > CONSOLE_READ_MAX)
        n = CONSOLE_READ_MAX;
    const char *p = in->console + (from - in->console_base);
    httpd_reply_json(req, 200,
                     json_pack("{s:I, s:I, s:o}", "offset", (json_int_t)from, "next",
                               (json_int_t)(from + n), "text", console_text(p, n)));
}

static void post_console(struct instance *in, struct evhttp_request *req)
{
    static const char *const keys[] = {"line", NULL};
    struct ferr e = {0};
    json_t *body;
    if (httpd_body_json(req, 0, &body, &e) != 0) {
        httpd_reply_err(req, &e);
        return;
    }
    char *line = NULL;
    int rc = jsonin_only_keys(body, keys, &e);
    if (rc == 0)
        rc = jsonin_str(body, "line", CONSOLE_LINE_MAX, true, &line, &e);
    json_decref(body);
    if (rc == 0 && strpbrk(line, "\r\n"))
        rc = ferr_set(&e, FERR_INVAL, "line", "'line' must be one line without CR/LF");
    if (rc == 0)
        rc = inst_console_write(in, line, &e);
    free(line);
    if (rc != 0) {
        httpd_reply_err(req, &e);
        return;
    }
    httpd_reply_json(req, 200,
                     json_pack("{s:I}", "offset", (json_int_t)(in->console_base + in->console_len)));
}

static void create_migration(struct agent *ag, struct evhttp_request *req)
{
    static const char *const keys[] = {"instance", "dest_uri", "dest_agent", "limits",
                                       "policy",   "storage",  "hints",      NULL};
    static const char *const hint_keys[] = {"nonzero_bytes", "dirty_set_bytes", "dirty_bps", NULL};
    uint64_t h_nz = 0, h_ws = 0, h_d = 0; /* hints from an earlier migration, bytes, bytes/s */
    struct ferr e = {0};
    json_t *body;
    if (httpd_body_json(req, 0, &body, &e) != 0) {
        httpd_reply_err(req, &e);
        return;
    }
    char *name = NULL, *uri = NULL, *dagent = NULL, *storage = NULL;
    struct mig_limits lim;
    int rc = jsonin_only_keys(body, keys, &e);
    if (rc == 0)
        rc = jsonin_str(body, "storage", 16, false, &storage, &e);
    if (rc == 0 && storage && strcmp(storage, "copy") != 0 && strcmp(storage, "shared") != 0)
        rc = ferr_set(&e, FERR_INVAL, "storage", "'storage' must be \"copy\" or \"shared\"");
    bool copy = rc == 0 && storage && strcmp(storage, "copy") == 0;
    free(storage);
    if (rc == 0)
        rc = jsonin_str(body, "instance", 63, true, &name, &e);
    if (rc == 0)
        rc = jsonin_str(body, "dest_uri", 150, true, &uri, &e);
    if (rc == 0)
        rc = jsonin_str(body, "dest_agent", 150, true, &dagent, &e);
    if (rc == 0)
        rc = limits_from_json(json_object_get(body, "limits"), &lim, &e);
    struct ctl_policy pol; /* control.h; "none" when absent */
    if (rc == 0)
        rc = ctl_policy_from_json(json_object_get(body, "policy"), 0, &pol, &e);
    const json_t *hints = json_object_get(body, "hints");
    if (rc == 0 && hints && !json_is_object(hints))
        rc = ferr_set(&e, FERR_INVAL, "hints", "'hints' must be an object");
    if (rc == 0 && hints)
        rc = jsonin_only_keys(hints, hint_keys, &e);
    if (rc == 0 && hints)
        rc = jsonin_u64(hints, "nonzero_bytes", 0, UINT64_MAX / 2, false, &h_nz, &e);
    if (rc == 0 && hints)
        rc = jsonin_u64(hints, "dirty_set_bytes", 0, UINT64_MAX / 2, false, &h_ws, &e);
    if (rc == 0 && hints)
        rc = jsonin_u64(hints, "dirty_bps", 0, UINT64_MAX / 2, false, &h_d, &e);
    json_decref(body);
    if (rc == 0 && (strncmp(uri, "tcp:", 4) != 0 || strlen(uri) < 8 || strpbrk(uri, " ,")))
        rc = ferr_set(&e, FERR_INVAL, "dest_uri", "'dest_uri' must look like tcp:HOST:PORT");
    if (rc == 0 && strncmp(dagent, "http://", 7) != 0)
        rc = ferr_set(&e, FERR_INVAL, "dest_agent", "'dest_agent' must look like http://HOST:PORT");
    struct instance *in = NULL;
    if (rc == 0 && !(in = inst_find(ag, name)))
        rc = ferr_set(&e, FERR_NOTFOUND, "instance", "no instance '%s' on this host", name);
    struct migration *m = NULL;
    if (rc == 0) {
        pol.conv.nova.ram_mib = in->spec.memory_mib; /* nova's data_gb */
        rc = mig_start_storage(ag, in, uri, dagent, &lim, &pol, copy, &m, &e);
    }
    if (rc == 0 && m->ctl) /* before the first sample: the event loop is ours */
        est_set_hints(&m->ctl->est, h_nz, h_ws, (double)h_d);
    free(name);
    free(uri);
    free(dagent);
    if (rc != 0) {
        httpd_reply_err(req, &e);
        return;
    }
    httpd_reply_json(req, 202, mig_to_json(m, false));
}

/* GET /v1/migrations/ID/trace: every kept sample as core trace CSV
 * (trace.h), canonical header first. */
static void get_trace(struct migration *m, struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();
    char line[TRACE_LINE_MAX + 2];
    size_t n = 0;
    if (!b || trace_format_header(line, sizeof(line), &n) != 0) {
        if (b)
            evbuffer_free(b);
        reply_err(req, -EIO, "", "cannot format the trace header");
        return;
    }
    evbuffer_add(b, line, n);
    for (size_t i = 0; i < m->n_samples; i++) {
        if (trace_format_row(&m->samples[i], line, sizeof(line), &n) != 0)
            continue; /* phase out of range: cannot happen for agent samples */
        evbuffer_add(b, line, n);
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/csv; charset=utf-8");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

/* PATCH /v1/migrations/ID {"mirror_speed_bps": N}: the disk mirrors'
 * speed, bytes/s (0 = no cap), at once on every running mirror. */
static void patch_migration(struct migration *m, struct evhttp_request *req)
{
    static const char *const keys[] = {"mirror_speed_bps", NULL};
    struct ferr e = {0};
    json_t *body;
    if (httpd_body_json(req, 0, &body, &e) != 0) {
        httpd_reply_err(req, &e);
        return;
    }
    uint64_t bps = 0;
    int rc = jsonin_only_keys(body, keys, &e);
    if (rc == 0)
        rc = jsonin_u64(body, "mirror_speed_bps", 0, (uint64_t)1 << 40, true, &bps, &e);
    json_decref(body);
    if (rc == 0)
        rc = mig_set_mirror_speed(m, bps, &e);
    if (rc != 0) {
        httpd_reply_err(req, &e);
        return;
    }
    httpd_reply_json(req, 200, mig_to_json(m, false));
}

/* POST /v1/migrations/ID/consent {"step": NAME, "granted": bool}. */
static void post_consent(struct migration *m, struct evhttp_request *req)
{
    static const char *const keys[] = {"step", "granted", NULL};
    struct ferr e = {0};
    json_t *body;
    if (httpd_body_json(req, 0, &body, &e) != 0) {
        httpd_reply_err(req, &e);
        return;
    }
    char *step = NULL;
    bool granted = false;
    int rc = jsonin_only_keys(body, keys, &e);
    if (rc == 0)
        rc = jsonin_str(body, "step", 32, true, &step, &e);
    if (rc == 0)
        rc = jsonin_bool(body, "granted", true, &granted, &e);
    json_decref(body);
    if (rc == 0)
        rc = ctl_consent(m, step, granted, &e);
    free(step);
    if (rc != 0) {
        httpd_reply_err(req, &e);
        return;
    }
    httpd_reply_json(req, 200, mig_to_json(m, false));
}

/* POST /v1/migrations/ID/force-complete (empty body or {}). */
static void post_force_complete(struct migration *m, struct evhttp_request *req)
{
    static const char *const keys[] = {NULL};
    struct ferr e = {0};
    json_t *body = NULL;
    const char *how = NULL;
    int rc = httpd_body_json(req, 1, &body, &e);
    if (rc == 0 && body)
        rc = jsonin_only_keys(body, keys, &e);
    json_decref(body);
    if (rc == 0)
        rc = ctl_force_complete(m, &how, &e);
    if (rc != 0) {
        httpd_reply_err(req, &e);
        return;
    }
    json_t *o = mig_to_json(m, false);
    json_object_set_new(o, "force_complete", json_string(how));
    httpd_reply_json(req, 202, o);
}

/* PATCH /v1/migrations/ID/limits {max_bandwidth_bps?, downtime_max_ms?}. */
static void patch_limits(struct migration *m, struct evhttp_request *req)
{
    static const char *const keys[] = {"max_bandwidth_bps", "downtime_max_ms", NULL};
    struct ferr e = {0};
    json_t *body;
    if (httpd_body_json(req, 0, &body, &e) != 0) {
        httpd_reply_err(req, &e);
        return;
    }
    uint64_t bw = 0, dt = 0;
    bool has_bw = json_object_get(body, "max_bandwidth_bps") != NULL,
         has_dt = json_object_get(body, "downtime_max_ms") != NULL;
    int rc = jsonin_only_keys(body, keys, &e);
    if (rc == 0)
        rc = jsonin_u64(body, "max_bandwidth_bps", 0, (uint64_t)1 << 40, false, &bw, &e);
    if (rc == 0)
        rc = jsonin_u64(body, "downtime_max_ms", 1, 60000, false, &dt, &e);
    if (rc == 0 && !has_bw && !has_dt)
        rc = ferr_set(&e, FERR_INVAL, "body", "give max_bandwidth_bps and/or downtime_max_ms");
    json_decref(body);
    if (rc == 0)
        rc = ctl_set_limits(m, has_bw, bw, has_dt, dt, &e);
    if (rc != 0) {
        httpd_reply_err(req, &e);
        return;
    }
    httpd_reply_json(req, 200, mig_to_json(m, false));
}

static void list_migrations(struct agent *ag, struct evhttp_request *req)
{
    json_t *a = json_array();
    for (struct migration *m = ag->migrations; m; m = m->next)
        json_array_append_new(a, mig_to_json(m, false));
    httpd_reply_json(req, 200, json_pack("{s:o}", "migrations", a));
}

void api_handle(struct evhttp_request *req, void *arg)
{
    struct agent *ag = arg;
    char seg[HTTPD_MAX_SEGS][HTTPD_SEG_MAX];
    int n = httpd_path(req, seg);
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    bool get = method == EVHTTP_REQ_GET, post = method == EVHTTP_REQ_POST,
         del = method == EVHTTP_REQ_DELETE;
    if (n < 0) {
        reply_err(req, FERR_INVAL, "path", "malformed or overlong path");
        return;
    }
    if (n < 2 || strcmp(seg[0], "v1") != 0) {
        reply_err(req, FERR_NOTFOUND, "path", "no such endpoint");
        return;
    }
    if (!authorised(ag, req)) {
        httpd_reply_json(req, 401,
                         json_pack("{s:{s:s, s:s}}", "error", "code", "unauthorised", "message",
                                   "a valid bearer token is required"));
        return;
    }
    const char *r = seg[1];
    if (n == 2 && strcmp(r, "maintenance") == 0)
        return maint_handle(ag, req);
    if (n == 2 && strcmp(r, "health") == 0 && get)
        return get_health(ag, req);
    if (n == 2 && strcmp(r, "instances") == 0 && get)
        return list_instances(ag, req);
    if (n == 2 && strcmp(r, "instances") == 0 && post)
        return create_instance(ag, req, false);
    if (n == 2 && strcmp(r, "incoming") == 0 && post)
        return create_instance(ag, req, true);
    if (n == 2 && strcmp(r, "adopt") == 0 && post)
        return adopt(ag, req);
    if (n == 2 && strcmp(r, "migrations") == 0 && get)
        return list_migrations(ag, req);
    if (n == 2 && strcmp(r, "migrations") == 0 && post)
        return create_migration(ag, req);
    if (n >= 3 && strcmp(r, "instances") == 0) {
        struct instance *in = inst_find(ag, seg[2]);
        if (!in) {
            reply_err(req, FERR_NOTFOUND, "instance", "no such instance on this host");
            return;
        }
        if (n == 3 && get) {
            httpd_reply_json(req, 200, inst_to_json(in));
            return;
        }
        if (n == 3 && del) {
            inst_destroy(in, "deleted through the API");
            httpd_reply_json(req, 202, json_pack("{s:s, s:s}", "name", in->spec.name, "state",
                                                 "destroying"));
            return;
        }
        if (n == 4 && strcmp(seg[3], "console") == 0 && get)
            return get_console(in, req);
        if (n == 4 && strcmp(seg[3], "console") == 0 && post)
            return post_console(in, req);
    }
    if (n >= 3 && strcmp(r, "migrations") == 0) {
        struct migration *m = mig_find(ag, seg[2]);
        if (!m) {
            reply_err(req, FERR_NOTFOUND, "migration", "no such migration on this host");
            return;
        }
        if (n == 3 && get) {
            char buf[8];
            bool samples = httpd_query(req, "samples", buf, sizeof(buf)) == 0 &&
                           strcmp(buf, "1") == 0;
            httpd_reply_json(req, 200, mig_to_json(m, samples));
            return;
        }
        if (n == 3 && method == EVHTTP_REQ_PATCH)
            return patch_migration(m, req);
        if (n == 4 && strcmp(seg[3], "trace") == 0 && get)
            return get_trace(m, req);
        if (n == 4 && strcmp(seg[3], "consent") == 0 && post)
            return post_consent(m, req);
        if (n == 4 && strcmp(seg[3], "force-complete") == 0 && post)
            return post_force_complete(m, req);
        if (n == 4 && strcmp(seg[3], "limits") == 0 && method == EVHTTP_REQ_PATCH)
            return patch_limits(m, req);
        if (n == 4 && strcmp(seg[3], "cancel") == 0 && post) {
            struct ferr e = {0};
            if (mig_cancel(m, &e) != 0) {
                httpd_reply_err(req, &e);
                return;
            }
            httpd_reply_json(req, 202, mig_to_json(m, false));
            return;
        }
    }
    reply_err(req, FERR_NOTFOUND, "path", "no such endpoint or method");
}
