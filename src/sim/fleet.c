/* fleet — many simulated agents in one process (see fleet.h).
 *
 * One libevent loop serves every host: one evhttp per host bound to its
 * own loopback address, one timer per host for registration + heartbeat
 * (the coordlink protocol of src/agent/coordlink.c: a registration when
 * the host's guests changed or ferryd may not know it, else a heartbeat), one timer per
 * migration and per maintenance action. Requests to ferryd go through
 * ferryd's own non-blocking JSON client (coord/agentc.h). Migration
 * outcomes come from the pre-copy model, computed once per guest profile
 * (RAM size x dirty rate) and cached: the fleet has few distinct profiles
 * and the model costs milliseconds per run. */
#include "sim/fleet.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "coord/agentc.h"
#include "sim/precopy.h"
#include "util/httpd.h"
#include "util/log.h"
#include "util/xalloc.h"

#define MIB (1024.0 * 1024.0)
#define REQ_TIMEOUT_S 10          /* one request to ferryd, s */
#define RETRY_MS 1000             /* after a failed registration, ms (real) */
#define DEFAULT_INTERVAL_MS 10000 /* until ferryd names one, ms (real) */
#define MODEL_MAX_MS 3600000.0    /* the model gives up after this, simulated ms */
#define REREGISTER_EVERY 5        /* as COORDLINK_REREGISTER_EVERY (agent/coordlink.h) */
#define PROFILES_MAX 64           /* cached (RAM, dirty rate) outcomes */
#define MIGS_MAX 65536            /* agent migration records kept */

static const uint32_t RAM_CHOICES_MIB[] = {1024, 2048, 4096, 8192};
static const double DIRTY_CHOICES_MIBPS[] = {2, 20, 60};

struct profile {
    uint64_t ram_mib;
    double dirty_mibps;
    double total_ms, downtime_ms; /* simulated */
    uint64_t bytes;               /* on the wire */
};

struct inst {
    char name[32];
    char project[16];
    uint64_t mem_mib;
    uint32_t vcpus;
    double dirty_mibps;
    int host;     /* where it runs */
    int incoming; /* host preparing to receive it, -1 none */
    int mig;      /* running migration index, -1 none */
};

struct host;

struct mig {
    struct fleet *f;
    char id[24];
    int inst, src, dst;
    char state[16];         /* running, succeeded, cancelled */
    int64_t start_ms;       /* real, monotonic */
    int64_t dur_ms;         /* real */
    const struct profile *pr;
    struct event *done_ev;
};

struct host {
    struct fleet *f;
    int idx;
    char name[32];
    char addr[32];
    char url[64];
    struct evhttp *http;  /* NULL while rebooting */
    struct event *link_ev; /* registration + heartbeat */
    bool link_busy;
    bool dirty;              /* ferryd may not know this host as it is: register */
    unsigned beats;          /* heartbeats alone since the last registration */
    uint32_t interval_ms;
    int64_t started_wall_ms; /* agent_started_ms */
    json_t *maint;           /* the last maintenance record, owned */
    struct event *maint_ev;  /* action end */
    struct event *boot_ev;   /* reboot end */
    bool restart;
};

struct fleet {
    const struct fleet_opts *o;
    struct event_base *base;
    struct host *hosts;
    struct inst *inst;
    size_t ninst;
    struct mig *migs;
    size_t nmigs;
    struct profile prof[PROFILES_MAX];
    size_t nprof;
    /* summary */
    uint64_t migs_started, migs_done, migs_cancelled, reboots, actions, checks, registrations,
        reg_failures;
    double sim_mig_ms_sum, sim_downtime_ms_sum;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t rnd(uint64_t *s, uint64_t n)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return n ? *s % n : 0;
}

static void arm(struct event *ev, int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    event_add(ev, &tv);
}

static int64_t real_ms(const struct fleet *f, double sim_ms)
{
    double r = sim_ms * f->o->time_scale;
    return r < 1 ? 1 : (int64_t)r;
}

/* The pre-copy model's outcome for a guest of this profile (cached). */
static const struct profile *profile_of(struct fleet *f, uint64_t ram_mib, double dirty_mibps)
{
    for (size_t i = 0; i < f->nprof; i++)
        if (f->prof[i].ram_mib == ram_mib && f->prof[i].dirty_mibps == dirty_mibps)
            return &f->prof[i];
    struct profile *p = &f->prof[f->nprof < PROFILES_MAX ? f->nprof++ : PROFILES_MAX - 1];
    struct precopy_workload wl;
    struct precopy_params par;
    struct precopy *m = xcalloc(1, sizeof(*m));
    struct precopy_obs ob;
    struct ferr e = {0};
    precopy_workload_default(&wl, ram_mib * 1024 * 1024);
    wl.ws_bytes = wl.ram_bytes / 8;
    wl.dirty_bps = dirty_mibps * MIB;
    wl.zero_frac = 0.3;
    precopy_params_default(&par, f->o->link_bps);
    par.auto_converge = 1; /* what ferry's default policy leaves dormant-on */
    p->ram_mib = ram_mib;
    p->dirty_mibps = dirty_mibps;
    if (precopy_init(m, &wl, &par, &e) == 0) {
        double t = 0;
        do {
            precopy_step(m);
            t += PRECOPY_TICK_MS;
        } while (!precopy_done(m) && t < MODEL_MAX_MS);
        precopy_observe(m, &ob);
        p->total_ms = ob.total_ms > 0 ? ob.total_ms : ob.t_ms;
        p->downtime_ms = ob.downtime_ms;
        p->bytes = ob.ram_transferred;
    } else {
        p->total_ms = (double)ram_mib * MIB / f->o->link_bps * 1000.0;
        p->bytes = ram_mib * 1024 * 1024;
        log_warn("fleet", "msg=\"model refused the profile\" err=\"%s\"", e.msg);
    }
    free(m);
    return p;
}

/* ---- the coordlink protocol ------------------------------------------------ */

static json_t *register_body(const struct host *h)
{
    struct fleet *f = h->f;
    json_t *inst = json_array();
    for (size_t i = 0; i < f->ninst; i++) {
        const struct inst *in = &f->inst[i];
        if (in->host != h->idx)
            continue;
        json_array_append_new(inst, json_pack("{s:s, s:s, s:I, s:I}", "name", in->name,
                                              "project_id", in->project, "memory_mib",
                                              (json_int_t)in->mem_mib, "vcpus",
                                              (json_int_t)in->vcpus));
    }
    json_t *b = json_pack("{s:s, s:s, s:I, s:I, s:o}", "name", h->name, "agent_url", h->url,
                          "ram_mib", (json_int_t)f->o->host_ram_mib, "vcpus",
                          (json_int_t)f->o->host_vcpus, "instances", inst);
    const char *lab = f->o->label;
    const char *eq = lab ? strchr(lab, '=') : NULL;
    if (eq) {
        char k[64];
        snprintf(k, sizeof(k), "%.*s", (int)(eq - lab), lab);
        json_object_set_new(b, "labels", json_pack("{s:s}", k, eq + 1));
    }
    return b;
}

static void on_heartbeat(int status, json_t *body, const struct ferr *e, void *arg)
{
    struct host *h = arg;
    (void)e;
    h->link_busy = false;
    if (!h->http)
        return; /* rebooted meanwhile: the boot re-arms */
    json_int_t iv = json_integer_value(json_object_get(body, "heartbeat_interval_ms"));
    if (status == 200 && iv >= 50 && iv <= 3600000)
        h->interval_ms = (uint32_t)iv;
    if (status != 200)
        h->dirty = true; /* e.g. 404: ferryd does not know the host */
    arm(h->link_ev, status == 200 ? h->interval_ms : RETRY_MS);
}

static void send_heartbeat(struct host *h)
{
    char path[96];
    snprintf(path, sizeof(path), "/v1/hosts/%s/heartbeat", h->name);
    json_t *b = json_object();
    h->link_busy = true;
    agentc_request(h->f->base, h->f->o->coordinator, h->f->o->token, "POST", path, b,
                   REQ_TIMEOUT_S, on_heartbeat, h);
    json_decref(b);
}

static void on_registered(int status, json_t *body, const struct ferr *e, void *arg)
{
    struct host *h = arg;
    (void)body;
    (void)e;
    h->link_busy = false;
    if (!h->http)
        return;
    if (status != 200 && status != 201) {
        h->f->reg_failures++;
        h->dirty = true;
        arm(h->link_ev, RETRY_MS);
        return;
    }
    h->f->registrations++;
    send_heartbeat(h);
}

static void on_link(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct host *h = arg;
    if (!h->http)
        return;
    if (h->link_busy) {
        arm(h->link_ev, RETRY_MS);
        return;
    }
    if (!h->dirty && h->beats < REREGISTER_EVERY) { /* as coordlink */
        h->beats++;
        return send_heartbeat(h);
    }
    h->beats = 0;
    h->link_busy = true;
    json_t *b = register_body(h);
    h->dirty = false;
    agentc_request(h->f->base, h->f->o->coordinator, h->f->o->token, "POST", "/v1/hosts/register",
                   b, REQ_TIMEOUT_S, on_registered, h);
    json_decref(b);
}

/* ---- the agent API -------------------------------------------------------- */

static void reply_err(struct evhttp_request *req, int code, const char *field, const char *msg)
{
    struct ferr e = {0};
    ferr_set(&e, code, field, "%s", msg);
    httpd_reply_err(req, &e);
}

static struct inst *find_inst(struct fleet *f, const char *name)
{
    for (size_t i = 0; i < f->ninst; i++)
        if (strcmp(f->inst[i].name, name) == 0)
            return &f->inst[i];
    return NULL;
}

static json_t *spec_json(const struct inst *in)
{
    return json_pack("{s:s, s:s, s:I, s:I}", "name", in->name, "project", in->project,
                     "memory_mib", (json_int_t)in->mem_mib, "vcpus", (json_int_t)in->vcpus);
}

static json_t *mig_json(const struct fleet *f, const struct mig *m)
{
    int64_t el = mono_ms() - m->start_ms;
    double frac = m->dur_ms > 0 ? (double)el / (double)m->dur_ms : 1;
    if (frac > 1 || strcmp(m->state, "running") != 0)
        frac = strcmp(m->state, "succeeded") == 0 ? 1 : (frac > 1 ? 1 : frac);
    double sim_left = (1 - frac) * m->pr->total_ms;
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:{s:f, s:I}, s:{s:I, s:I}}", "id", m->id, "instance",
        f->inst[m->inst].name, "state", m->state, "estimate", "progress_pct", frac * 100.0,
        "eta_ms", (json_int_t)sim_left, "last_sample", "ram_remaining",
        (json_int_t)((1 - frac) * (double)f->inst[m->inst].mem_mib * MIB), "ram_total",
        (json_int_t)(f->inst[m->inst].mem_mib * 1024 * 1024));
    if (strcmp(m->state, "succeeded") == 0)
        json_object_set_new(o, "result",
                            json_pack("{s:I, s:I, s:I}", "downtime_ms",
                                      (json_int_t)m->pr->downtime_ms, "total_time_ms",
                                      (json_int_t)m->pr->total_ms, "ram_transferred",
                                      (json_int_t)m->pr->bytes));
    return o;
}

static void on_mig_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mig *m = arg;
    struct fleet *f = m->f;
    struct inst *in = &f->inst[m->inst];
    if (strcmp(m->state, "running") == 0) {
        snprintf(m->state, sizeof(m->state), "succeeded");
        in->host = m->dst;
        f->hosts[m->src].dirty = true;
        f->hosts[m->dst].dirty = true;
        f->migs_done++;
        f->sim_mig_ms_sum += m->pr->total_ms;
        f->sim_downtime_ms_sum += m->pr->downtime_ms;
    }
    in->incoming = -1;
    in->mig = -1;
    event_free(m->done_ev);
    m->done_ev = NULL;
}

static void post_migration(struct host *h, struct evhttp_request *req)
{
    struct fleet *f = h->f;
    struct ferr e = {0};
    json_t *b = NULL;
    if (httpd_body_json(req, 0, &b, &e) != 0)
        return httpd_reply_err(req, &e);
    const char *name = json_string_value(json_object_get(b, "instance"));
    const char *durl = json_string_value(json_object_get(b, "dest_agent"));
    struct inst *in = name ? find_inst(f, name) : NULL;
    int dst = -1;
    for (uint32_t i = 0; durl && i < f->o->hosts; i++)
        if (strcmp(f->hosts[i].url, durl) == 0)
            dst = (int)i;
    if (!in || in->host != h->idx) {
        json_decref(b);
        return reply_err(req, FERR_NOTFOUND, "instance", "no such instance here");
    }
    if (in->mig >= 0) {
        json_decref(b);
        return reply_err(req, FERR_EXISTS, "instance", "a migration of it runs");
    }
    if (dst < 0 || in->incoming != dst || f->nmigs >= MIGS_MAX) {
        json_decref(b);
        return reply_err(req, FERR_INVAL, "dest_agent", "the destination is not prepared");
    }
    json_decref(b);
    struct mig *m = &f->migs[f->nmigs];
    memset(m, 0, sizeof(*m));
    m->f = f;
    snprintf(m->id, sizeof(m->id), "m%zu", f->nmigs);
    m->inst = (int)(in - f->inst);
    m->src = h->idx;
    m->dst = dst;
    snprintf(m->state, sizeof(m->state), "running");
    m->pr = profile_of(f, in->mem_mib, in->dirty_mibps);
    m->start_ms = mono_ms();
    m->dur_ms = real_ms(f, m->pr->total_ms);
    m->done_ev = evtimer_new(f->base, on_mig_done, m);
    arm(m->done_ev, m->dur_ms);
    in->mig = (int)f->nmigs;
    f->nmigs++;
    f->migs_started++;
    httpd_reply_json(req, 202, mig_json(f, m));
}

static void serve(struct host *h);

static void on_boot(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct host *h = arg;
    serve(h);
    h->started_wall_ms = wall_ms();
    h->dirty = true;
    arm(h->link_ev, 0);
}

static void maint_end(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct host *h = arg;
    struct fleet *f = h->f;
    json_object_set_new(h->maint, "state", json_string("succeeded"));
    json_object_set_new(h->maint, "exit_status", json_integer(0));
    json_object_set_new(h->maint, "finished_ms", json_integer(wall_ms()));
    json_object_set_new(h->maint, "report", json_string("exit 0"));
    json_object_set_new(h->maint, "output", json_string("simulated: ok\n"));
    event_free(h->maint_ev);
    h->maint_ev = NULL;
    if (!h->restart)
        return;
    /* reboot: silent (no API, no heartbeats) for reboot_ms */
    f->reboots++;
    evhttp_free(h->http);
    h->http = NULL;
    event_del(h->link_ev);
    h->boot_ev = h->boot_ev ? h->boot_ev : evtimer_new(f->base, on_boot, h);
    arm(h->boot_ev, real_ms(f, f->o->reboot_ms));
}

static void maintenance(struct host *h, struct evhttp_request *req)
{
    struct fleet *f = h->f;
    if (evhttp_request_get_command(req) == EVHTTP_REQ_GET) {
        json_t *o = h->maint ? json_deep_copy(h->maint) : json_pack("{s:s}", "state", "none");
        json_object_set_new(o, "agent_started_ms", json_integer(h->started_wall_ms));
        return httpd_reply_json(req, 200, o);
    }
    struct ferr e = {0};
    json_t *b = NULL;
    if (httpd_body_json(req, 0, &b, &e) != 0)
        return httpd_reply_err(req, &e);
    const char *id = json_string_value(json_object_get(b, "id"));
    const char *cmd = json_string_value(json_object_get(b, "command"));
    if (!id || !cmd) {
        json_decref(b);
        return reply_err(req, FERR_INVAL, "id", "id and command are required");
    }
    const char *cur = json_string_value(json_object_get(h->maint, "id"));
    if (cur && strcmp(cur, id) == 0) {
        json_decref(b);
        return httpd_reply_json(req, 200, json_deep_copy(h->maint));
    }
    if (h->maint_ev) {
        json_decref(b);
        return reply_err(req, FERR_EXISTS, "id", "another maintenance action is running");
    }
    h->restart = json_is_true(json_object_get(b, "restart"));
    json_decref(h->maint);
    h->maint = json_pack("{s:s, s:s, s:s, s:b, s:I, s:I, s:n}", "id", id, "command", cmd,
                         "state", "running", "restart", h->restart, "started_ms",
                         (json_int_t)wall_ms(), "exit_status", (json_int_t)-1, "finished_ms");
    json_decref(b);
    if (h->restart)
        f->actions++;
    else
        f->checks++;
    h->maint_ev = evtimer_new(f->base, maint_end, h);
    arm(h->maint_ev, real_ms(f, h->restart ? f->o->action_ms : f->o->check_ms));
    json_t *o = json_deep_copy(h->maint);
    json_object_set_new(o, "agent_started_ms", json_integer(h->started_wall_ms));
    httpd_reply_json(req, 202, o);
}

static void handle(struct evhttp_request *req, void *arg)
{
    struct host *h = arg;
    struct fleet *f = h->f;
    char seg[HTTPD_MAX_SEGS][HTTPD_SEG_MAX];
    int n = httpd_path(req, seg);
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    if (n < 2 || strcmp(seg[0], "v1") != 0)
        return reply_err(req, FERR_NOTFOUND, "path", "no such endpoint");
    if (n == 2 && strcmp(seg[1], "health") == 0)
        return httpd_reply_json(req, 200, json_pack("{s:s, s:s}", "status", "ok", "name", h->name));
    if (n == 2 && strcmp(seg[1], "maintenance") == 0)
        return maintenance(h, req);
    if (n == 3 && strcmp(seg[1], "instances") == 0) {
        struct inst *in = find_inst(f, seg[2]);
        bool here = in && (in->host == h->idx || in->incoming == h->idx);
        if (!here)
            return reply_err(req, FERR_NOTFOUND, "name", "no such instance");
        if (m == EVHTTP_REQ_DELETE) {
            if (in->incoming == h->idx && in->host != h->idx)
                in->incoming = -1;
            return httpd_reply_json(req, 202, json_pack("{s:s}", "state", "deleting"));
        }
        json_t *o = json_pack("{s:s, s:o}", "name", in->name, "spec", spec_json(in));
        if (in->incoming == h->idx && in->host != h->idx) {
            char uri[80];
            snprintf(uri, sizeof(uri), "tcp:%s:%d", h->addr, 30000 + (int)(in - f->inst) % 20000);
            json_object_set_new(o, "state", json_string("incoming"));
            json_object_set_new(o, "incoming_uri", json_string(uri));
        } else {
            json_object_set_new(o, "state", json_string("running"));
        }
        return httpd_reply_json(req, 200, o);
    }
    if (n == 2 && strcmp(seg[1], "incoming") == 0 && m == EVHTTP_REQ_POST) {
        struct ferr e = {0};
        json_t *b = NULL;
        if (httpd_body_json(req, 0, &b, &e) != 0)
            return httpd_reply_err(req, &e);
        struct inst *in = find_inst(f, json_string_value(json_object_get(b, "name"))
                                           ? json_string_value(json_object_get(b, "name"))
                                           : "");
        json_decref(b);
        if (!in)
            return reply_err(req, FERR_NOTFOUND, "name", "unknown instance");
        if (in->host == h->idx)
            return reply_err(req, FERR_EXISTS, "name", "the instance runs here");
        if (in->incoming == h->idx)
            return reply_err(req, FERR_EXISTS, "name", "prepared already");
        in->incoming = h->idx;
        return httpd_reply_json(req, 202, json_pack("{s:s, s:s}", "name", in->name, "state",
                                                    "incoming"));
    }
    if (strcmp(seg[1], "migrations") == 0) {
        if (n == 2 && m == EVHTTP_REQ_POST)
            return post_migration(h, req);
        if (n == 2) {
            json_t *a = json_array();
            for (size_t i = 0; i < f->nmigs; i++)
                if (f->migs[i].src == h->idx && strcmp(f->migs[i].state, "running") == 0)
                    json_array_append_new(a, mig_json(f, &f->migs[i]));
            return httpd_reply_json(req, 200, json_pack("{s:o}", "migrations", a));
        }
        struct mig *mg = NULL;
        char *end = NULL;
        long k = seg[2][0] == 'm' ? strtol(seg[2] + 1, &end, 10) : -1;
        if (k >= 0 && (size_t)k < f->nmigs && end && !*end && f->migs[k].src == h->idx)
            mg = &f->migs[k];
        if (!mg)
            return reply_err(req, FERR_NOTFOUND, "id", "no such migration");
        if (n == 4 && strcmp(seg[3], "cancel") == 0 && m == EVHTTP_REQ_POST) {
            if (strcmp(mg->state, "running") == 0) {
                snprintf(mg->state, sizeof(mg->state), "cancelled");
                f->migs_cancelled++;
                f->inst[mg->inst].incoming = -1;
                f->inst[mg->inst].mig = -1;
                if (mg->done_ev) {
                    event_free(mg->done_ev);
                    mg->done_ev = NULL;
                }
            }
            return httpd_reply_json(req, 202, mig_json(f, mg));
        }
        if (n == 3)
            return httpd_reply_json(req, 200, mig_json(f, mg));
    }
    reply_err(req, FERR_NOTFOUND, "path", "no such endpoint");
}

static void serve(struct host *h)
{
    h->http = evhttp_new(h->f->base);
    httpd_apply_caps(h->http);
    evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_DELETE);
    if (evhttp_bind_socket(h->http, h->addr, (ev_uint16_t)h->f->o->port) != 0)
        log_warn("fleet", "msg=\"cannot bind\" host=%s addr=%s:%d err=\"%s\"", h->name, h->addr,
                 h->f->o->port, strerror(errno));
    evhttp_set_gencb(h->http, handle, h);
}

/* ---- the fleet ------------------------------------------------------------ */

void fleet_opts_default(struct fleet_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->hosts = 1000;
    o->port = 20500;
    o->host_ram_mib = 65536;
    o->host_vcpus = 32;
    o->inst_min = 10;
    o->inst_max = 20;
    o->fill = 0.6;
    o->link_bps = 125e6;
    o->time_scale = 0.02;
    o->action_ms = 10000;
    o->reboot_ms = 20000;
    o->check_ms = 2000;
    o->seed = 1;
}

static void on_signal(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopexit(arg, NULL);
}

static void write_summary(const struct fleet *f)
{
    if (!f->o->summary_path)
        return;
    json_t *o = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:I}", "hosts",
        (json_int_t)f->o->hosts, "instances", (json_int_t)f->ninst, "migrations_started",
        (json_int_t)f->migs_started, "migrations_succeeded", (json_int_t)f->migs_done,
        "migrations_cancelled", (json_int_t)f->migs_cancelled, "actions", (json_int_t)f->actions,
        "reboots", (json_int_t)f->reboots, "checks", (json_int_t)f->checks, "registrations",
        (json_int_t)f->registrations, "sim_migration_ms_mean",
        f->migs_done ? f->sim_mig_ms_sum / (double)f->migs_done : 0.0, "sim_downtime_ms_mean",
        f->migs_done ? f->sim_downtime_ms_sum / (double)f->migs_done : 0.0, "time_scale",
        f->o->time_scale, "registration_failures", (json_int_t)f->reg_failures);
    if (json_dump_file(o, f->o->summary_path, JSON_COMPACT) != 0)
        log_warn("fleet", "msg=\"cannot write the summary\" path=%s", f->o->summary_path);
    json_decref(o);
}

int fleet_run(const struct fleet_opts *o, struct ferr *e)
{
    if (!o->coordinator || !o->token || o->hosts == 0 || o->hosts > FLEET_HOSTS_MAX ||
        o->port <= 0 || o->port > 65535 || !(o->time_scale > 0) || o->time_scale > 1 ||
        o->inst_min > o->inst_max || o->inst_max > FLEET_INST_PER_HOST_MAX || o->link_bps < 1e6 ||
        o->host_ram_mib < 1024 || o->host_vcpus == 0)
        return ferr_set(e, FERR_INVAL, "fleet", "bad fleet options");
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max; /* a listener per host, connections besides */
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    struct fleet f;
    memset(&f, 0, sizeof(f));
    f.o = o;
    f.base = event_base_new();
    f.hosts = xcalloc(o->hosts, sizeof(*f.hosts));
    f.inst = xcalloc((size_t)o->hosts * o->inst_max + 1, sizeof(*f.inst));
    f.migs = xcalloc(MIGS_MAX, sizeof(*f.migs));
    uint64_t s = o->seed * 0x9E3779B97F4A7C15ull + 7;
    int64_t now_wall = wall_ms();
    for (uint32_t i = 0; i < o->hosts; i++) {
        struct host *h = &f.hosts[i];
        h->f = &f;
        h->idx = (int)i;
        snprintf(h->name, sizeof(h->name), "s%04u", i);
        snprintf(h->addr, sizeof(h->addr), "127.77.%u.%u", i / 200, i % 200 + 1);
        snprintf(h->url, sizeof(h->url), "http://%s:%d", h->addr, o->port);
        h->interval_ms = DEFAULT_INTERVAL_MS;
        h->dirty = true;
        h->started_wall_ms = now_wall;
        uint32_t want = o->inst_min + (uint32_t)rnd(&s, o->inst_max - o->inst_min + 1);
        uint64_t used = 0;
        uint32_t vused = 0;
        for (uint32_t k = 0; k < want; k++) {
            uint64_t mem = RAM_CHOICES_MIB[rnd(&s, 4)];
            uint32_t vc = (uint32_t)(1 + rnd(&s, 2));
            if ((double)(used + mem) > o->fill * (double)o->host_ram_mib ||
                vused + vc > o->host_vcpus)
                break;
            struct inst *in = &f.inst[f.ninst++];
            snprintf(in->name, sizeof(in->name), "s%04u-g%02u", i, k);
            snprintf(in->project, sizeof(in->project), "p%u", (unsigned)rnd(&s, 50));
            in->mem_mib = mem;
            in->vcpus = vc;
            in->dirty_mibps = DIRTY_CHOICES_MIBPS[rnd(&s, 3)];
            in->host = (int)i;
            in->incoming = -1;
            in->mig = -1;
            used += mem;
            vused += vc;
        }
        serve(h);
        h->link_ev = evtimer_new(f.base, on_link, h);
        /* spread the first registrations over one default interval */
        arm(h->link_ev, (int64_t)rnd(&s, DEFAULT_INTERVAL_MS));
    }
    /* warm the model cache so the first migrations do not stall the loop */
    for (size_t a = 0; a < 4; a++)
        for (size_t b = 0; b < 3; b++)
            (void)profile_of(&f, RAM_CHOICES_MIB[a], DIRTY_CHOICES_MIBPS[b]);
    struct event *sigterm = evsignal_new(f.base, SIGTERM, on_signal, f.base);
    struct event *sigint = evsignal_new(f.base, SIGINT, on_signal, f.base);
    event_add(sigterm, NULL);
    event_add(sigint, NULL);
    log_info("fleet", "msg=\"simulated fleet up\" hosts=%u instances=%zu port=%d scale=%g",
             o->hosts, f.ninst, o->port, o->time_scale);
    event_base_dispatch(f.base);
    write_summary(&f);
    event_free(sigterm);
    event_free(sigint);
    for (uint32_t i = 0; i < o->hosts; i++) {
        struct host *h = &f.hosts[i];
        if (h->http)
            evhttp_free(h->http);
        event_free(h->link_ev);
        if (h->maint_ev)
            event_free(h->maint_ev);
        if (h->boot_ev)
            event_free(h->boot_ev);
        json_decref(h->maint);
    }
    for (size_t i = 0; i < f.nmigs; i++)
        if (f.migs[i].done_ev)
            event_free(f.migs[i].done_ev);
    free(f.hosts);
    free(f.inst);
    free(f.migs);
    event_base_free(f.base);
    return 0;
}
