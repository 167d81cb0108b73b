#include "agent/spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/jsonin.h"
#include "util/xalloc.h"

static const char *const spec_keys[] = {"name",   "project", "memory_mib", "vcpus", "kernel",
                                        "initrd", "cmdline", "disks",      NULL};
static const char *const disk_keys[] = {"id", "path", "nbd", "format", "iothread", NULL};
static const char *const nbd_keys[] = {"host", "port", "export", NULL};

void spec_free(struct inst_spec *s)
{
    free(s->name);
    free(s->project);
    free(s->kernel);
    free(s->initrd);
    free(s->cmdline);
    for (unsigned i = 0; i < s->n_disks; i++) {
        free(s->disks[i].path);
        free(s->disks[i].nbd_host);
        free(s->disks[i].nbd_export);
    }
    memset(s, 0, sizeof(*s));
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

void spec_copy(struct inst_spec *dst, const struct inst_spec *src)
{
    dst->name = dup_or_null(src->name);
    dst->project = dup_or_null(src->project);
    dst->memory_mib = src->memory_mib;
    dst->vcpus = src->vcpus;
    dst->kernel = dup_or_null(src->kernel);
    dst->initrd = dup_or_null(src->initrd);
    dst->cmdline = dup_or_null(src->cmdline);
    dst->n_disks = src->n_disks;
    for (unsigned i = 0; i < src->n_disks; i++) {
        dst->disks[i] = src->disks[i];
        dst->disks[i].path = dup_or_null(src->disks[i].path);
        dst->disks[i].nbd_host = dup_or_null(src->disks[i].nbd_host);
        dst->disks[i].nbd_export = dup_or_null(src->disks[i].nbd_export);
    }
}

const char *spec_disk_format_name(enum spec_disk_format f)
{
    return f == SPEC_DISK_QCOW2 ? "qcow2" : "raw";
}

int spec_disk_format_parse(const char *name, enum spec_disk_format *out)
{
    if (strcmp(name, "raw") == 0)
        *out = SPEC_DISK_RAW;
    else if (strcmp(name, "qcow2") == 0)
        *out = SPEC_DISK_QCOW2;
    else
        return FERR_INVAL;
    return 0;
}

bool spec_disk_id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n >= SPEC_DISK_ID_MAX || id[0] < 'a' || id[0] > 'z')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9')))
            return false;
    return true;
}

static int path_ok(const char *field, const char *p, struct ferr *e)
{
    if (p[0] != '/')
        return ferr_set(e, FERR_INVAL, field, "'%s' must be an absolute path", field);
    if (strstr(p, ",") != NULL)
        return ferr_set(e, FERR_INVAL, field, "'%s' must not contain ','", field);
    return 0;
}

bool spec_nbd_host_ok(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > SPEC_NBD_HOST_MAX || h[0] == '-' || h[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((h[i] >= 'a' && h[i] <= 'z') || (h[i] >= 'A' && h[i] <= 'Z') ||
              (h[i] >= '0' && h[i] <= '9') || h[i] == '.' || h[i] == '-'))
            return false;
    return true;
}

/* Parses a disk's "nbd" object {host, port, export} into sd (network
 * storage: QEMU's NBD client is the disk's protocol node). */
static int nbd_from_json(const json_t *n, struct spec_disk *sd, struct ferr *e)
{
    int rc;
    uint64_t port = 0;
    if (!json_is_object(n))
        return ferr_set(e, FERR_INVAL, "disks",
                        "a disk 'nbd' must be an object {host, port, export}");
    if ((rc = jsonin_only_keys(n, nbd_keys, e)) != 0)
        return rc;
    if ((rc = jsonin_str(n, "host", SPEC_NBD_HOST_MAX, true, &sd->nbd_host, e)) != 0)
        return rc;
    if (!spec_nbd_host_ok(sd->nbd_host))
        return ferr_set(e, FERR_INVAL, "disks",
                        "a disk's nbd 'host' must be a host name or IPv4 address");
    if ((rc = jsonin_u64(n, "port", 1, 65535, true, &port, e)) != 0)
        return rc;
    sd->nbd_port = (uint16_t)port;
    if ((rc = jsonin_str(n, "export", SPEC_NBD_EXPORT_MAX, true, &sd->nbd_export, e)) != 0)
        return rc;
    if (!jsonin_name_ok(sd->nbd_export))
        return ferr_set(e, FERR_INVAL, "disks",
                        "a disk's nbd 'export' must be 1..63 of [A-Za-z0-9_.-]");
    return 0;
}

/* Parses the "disks" array of obj (absent: none) into s. */
static int disks_from_json(const json_t *obj, struct inst_spec *s, struct ferr *e)
{
    json_t *a = json_object_get(obj, "disks");
    if (!a)
        return 0;
    if (!json_is_array(a))
        return ferr_set(e, FERR_INVAL, "disks", "'disks' must be an array");
    if (json_array_size(a) > SPEC_DISKS_MAX)
        return ferr_set(e, FERR_INVAL, "disks", "at most %d disks", SPEC_DISKS_MAX);
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *d = json_array_get(a, i);
        struct spec_disk *sd = &s->disks[s->n_disks];
        char *id = NULL, *fmt = NULL;
        int rc;
        if (!json_is_object(d))
            return ferr_set(e, FERR_INVAL, "disks", "each disk must be a JSON object");
        if ((rc = jsonin_only_keys(d, disk_keys, e)) != 0)
            return rc;
        if ((rc = jsonin_str(d, "id", SPEC_DISK_ID_MAX - 1, true, &id, e)) != 0)
            return rc;
        bool ok = spec_disk_id_ok(id);
        if (ok)
            snprintf(sd->id, sizeof(sd->id), "%s", id);
        free(id);
        if (!ok)
            return ferr_set(e, FERR_INVAL, "disks", "a disk 'id' must be [a-z][a-z0-9]{0,14}");
        for (unsigned j = 0; j < s->n_disks; j++)
            if (strcmp(s->disks[j].id, sd->id) == 0)
                return ferr_set(e, FERR_INVAL, "disks", "disk id '%s' is used twice", sd->id);
        if ((rc = jsonin_str(d, "format", 8, false, &fmt, e)) != 0)
            return rc;
        sd->format = SPEC_DISK_RAW;
        rc = fmt ? spec_disk_format_parse(fmt, &sd->format) : 0;
        free(fmt);
        if (rc != 0)
            return ferr_set(e, FERR_INVAL, "disks", "a disk 'format' must be raw or qcow2");
        if ((rc = jsonin_bool(d, "iothread", false, &sd->iothread, e)) != 0)
            return rc;
        json_t *nbd = json_object_get(d, "nbd");
        if ((nbd != NULL) == (json_object_get(d, "path") != NULL))
            return ferr_set(e, FERR_INVAL, "disks",
                            "a disk needs exactly one of 'path' (image file) and 'nbd'");
        s->n_disks++; /* path and nbd strings owned by s from here */
        if (nbd)
            rc = nbd_from_json(nbd, sd, e);
        else if ((rc = jsonin_str(d, "path", SPEC_PATH_MAX, true, &sd->path, e)) == 0)
            rc = path_ok("disks", sd->path, e);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int spec_from_json(const json_t *obj, const char *def_kernel, const char *def_initrd,
                   struct inst_spec *s, struct ferr *e)
{
    memset(s, 0, sizeof(*s));
    s->memory_mib = 256;
    s->vcpus = 1;
    int rc;
    if (!json_is_object(obj))
        return ferr_set(e, FERR_INVAL, "spec", "the instance spec must be a JSON object");
    if ((rc = jsonin_only_keys(obj, spec_keys, e)) != 0)
        return rc;
    if ((rc = jsonin_str(obj, "name", 63, true, &s->name, e)) != 0)
        goto fail;
    if (!jsonin_name_ok(s->name)) {
        rc = ferr_set(e, FERR_INVAL, "name", "'name' must be 1..63 of [A-Za-z0-9_.-]");
        goto fail;
    }
    if ((rc = jsonin_str(obj, "project", 63, false, &s->project, e)) != 0)
        goto fail;
    if (s->project && s->project[0] && !jsonin_name_ok(s->project)) {
        rc = ferr_set(e, FERR_INVAL, "project", "'project' must be 1..63 of [A-Za-z0-9_.-]");
        goto fail;
    }
    if ((rc = jsonin_u64(obj, "memory_mib", 64, 65536, false, &s->memory_mib, e)) != 0)
        goto fail;
    if ((rc = jsonin_u64(obj, "vcpus", 1, 64, false, &s->vcpus, e)) != 0)
        goto fail;
    if ((rc = jsonin_str(obj, "kernel", SPEC_PATH_MAX, false, &s->kernel, e)) != 0)
        goto fail;
    if ((rc = jsonin_str(obj, "initrd", SPEC_PATH_MAX, false, &s->initrd, e)) != 0)
        goto fail;
    if ((rc = jsonin_str(obj, "cmdline", SPEC_CMDLINE_MAX, false, &s->cmdline, e)) != 0)
        goto fail;
    if (!s->kernel && def_kernel)
        s->kernel = xstrdup(def_kernel);
    if (!s->initrd && def_initrd && !json_object_get(obj, "kernel"))
        s->initrd = xstrdup(def_initrd);
    if (!s->kernel) {
        rc = ferr_set(e, FERR_INVAL, "kernel", "'kernel' is required (no default lab kernel)");
        goto fail;
    }
    if ((rc = path_ok("kernel", s->kernel, e)) != 0)
        goto fail;
    if (s->initrd && (rc = path_ok("initrd", s->initrd, e)) != 0)
        goto fail;
    if ((rc = disks_from_json(obj, s, e)) != 0)
        goto fail;
    if (!s->project)
        s->project = xstrdup("");
    return 0;
fail:
    spec_free(s);
    return rc;
}

json_t *spec_to_json(const struct inst_spec *s)
{
    json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:s}", "name", s->name, "project",
                          s->project ? s->project : "", "memory_mib", (json_int_t)s->memory_mib,
                          "vcpus", (json_int_t)s->vcpus, "kernel", s->kernel);
    if (s->initrd)
        json_object_set_new(o, "initrd", json_string(s->initrd));
    if (s->cmdline)
        json_object_set_new(o, "cmdline", json_string(s->cmdline));
    if (s->n_disks) {
        json_t *a = json_array();
        for (unsigned i = 0; i < s->n_disks; i++) {
            const struct spec_disk *d = &s->disks[i];
            json_t *dj = json_pack("{s:s, s:s}", "id", d->id, "format",
                                   spec_disk_format_name(d->format));
            if (d->nbd_host)
                json_object_set_new(dj, "nbd",
                                    json_pack("{s:s, s:i, s:s}", "host", d->nbd_host, "port",
                                              (int)d->nbd_port, "export", d->nbd_export));
            else
                json_object_set_new(dj, "path", json_string(d->path ? d->path : ""));
            if (d->iothread)
                json_object_set_new(dj, "iothread", json_true());
            json_array_append_new(a, dj);
        }
        json_object_set_new(o, "disks", a);
    }
    return o;
}

static const char *const limit_keys[] = {
    "downtime_ms",      "max_bandwidth_bps", "auto_converge", "completion_timeout_s",
    "mirror_speed_bps", "mirror_buf_bytes",  "pacing",        NULL};

int limits_from_json(const json_t *obj, struct mig_limits *l, struct ferr *e)
{
    struct mig_limits d = {.downtime_ms = 300, .max_bandwidth_bps = 0, .auto_converge = false,
                           .completion_timeout_s = 0};
    *l = d;
    if (!obj)
        return 0;
    struct mig_limits t = d;
    int rc;
    if (!json_is_object(obj))
        return ferr_set(e, FERR_INVAL, "limits", "'limits' must be a JSON object");
    if ((rc = jsonin_only_keys(obj, limit_keys, e)) != 0)
        return rc;
    if ((rc = jsonin_u64(obj, "downtime_ms", 1, 60000, false, &t.downtime_ms, e)) != 0)
        return rc;
    if ((rc = jsonin_u64(obj, "max_bandwidth_bps", 0, (uint64_t)1 << 40, false,
                         &t.max_bandwidth_bps, e)) != 0)
        return rc;
    if (t.max_bandwidth_bps != 0 && t.max_bandwidth_bps < 65536)
        return ferr_set(e, FERR_INVAL, "max_bandwidth_bps",
                        "'max_bandwidth_bps' must be 0 (unlimited) or at least 65536");
    if ((rc = jsonin_bool(obj, "auto_converge", false, &t.auto_converge, e)) != 0)
        return rc;
    if ((rc = jsonin_u64(obj, "completion_timeout_s", 0, 7 * 86400, false,
                         &t.completion_timeout_s, e)) != 0)
        return rc;
    if ((rc = jsonin_u64(obj, "mirror_speed_bps", 0, (uint64_t)1 << 40, false,
                         &t.mirror_speed_bps, e)) != 0)
        return rc;
    if ((rc = jsonin_u64(obj, "mirror_buf_bytes", 0, (uint64_t)1 << 28, false,
                         &t.mirror_buf_bytes, e)) != 0)
        return rc;
    if (t.mirror_buf_bytes != 0 && t.mirror_buf_bytes < 65536)
        return ferr_set(e, FERR_INVAL, "mirror_buf_bytes",
                        "'mirror_buf_bytes' must be 0 (QEMU's default) or at least 65536");
    if ((rc = jsonin_bool(obj, "pacing", false, &t.pacing, e)) != 0)
        return rc;
    t.pacing_given = json_object_get(obj, "pacing") != NULL;
    *l = t;
    return 0;
}

json_t *limits_to_json(const struct mig_limits *l)
{
    return json_pack("{s:I, s:I, s:b, s:I, s:I, s:I, s:b}", "downtime_ms",
                     (json_int_t)l->downtime_ms, "max_bandwidth_bps",
                     (json_int_t)l->max_bandwidth_bps, "auto_converge", l->auto_converge,
                     "completion_timeout_s", (json_int_t)l->completion_timeout_s,
                     "mirror_speed_bps", (json_int_t)l->mirror_speed_bps, "mirror_buf_bytes",
                     (json_int_t)l->mirror_buf_bytes, "pacing", l->pacing);
}

char **spec_argv(const struct inst_spec *s, const char *qemu, const char *qmp_path,
                 const char *serial_path, bool incoming)
{
    char **v = xcalloc(40 + 8 * SPEC_DISKS_MAX, sizeof(char *));
    int n = 0;
    v[n++] = xstrdup(qemu);
    v[n++] = xstrdup("-name");
    v[n++] = xasprintf("%s", s->name);
    const char *accel = getenv("FERRY_QEMU_ACCEL") ? getenv("FERRY_QEMU_ACCEL") : "tcg";
    v[n++] = xstrdup("-accel");
    v[n++] = xstrdup(accel);
    v[n++] = xstrdup("-machine");
    v[n++] = xstrdup("pc");
    v[n++] = xstrdup("-m");
    /* QEMU 7.2 under TCG loses guest writes during pre-copy when the RAM
     * block is 64-page aligned: its fast dirty-bitmap sync path does not
     * reset the vCPU TLB's dirty tracking (fixed upstream later by
     * cpu_physical_memory_dirty_bits_cleared), so pages that stay hot in the
     * TLB (kernel stacks, per-CPU data) arrive stale and the guest crashes
     * after switchover. One extra 4 KiB page forces the exact slow path. */
    if (strncmp(accel, "tcg", 3) == 0)
        v[n++] = xasprintf("%lluk", (unsigned long long)s->memory_mib * 1024ull + 4ull);
    else
        v[n++] = xasprintf("%llu", (unsigned long long)s->memory_mib);
    v[n++] = xstrdup("-smp");
    v[n++] = xasprintf("%llu", (unsigned long long)s->vcpus);
    v[n++] = xstrdup("-nodefaults");
    v[n++] = xstrdup("-no-user-config");
    v[n++] = xstrdup("-no-reboot"); /* a guest crash ends QEMU: never a silent reboot */
    v[n++] = xstrdup("-display");
    v[n++] = xstrdup("none");
    v[n++] = xstrdup("-kernel");
    v[n++] = xstrdup(s->kernel);
    if (s->initrd) {
        v[n++] = xstrdup("-initrd");
        v[n++] = xstrdup(s->initrd);
    }
    if (s->cmdline) {
        v[n++] = xstrdup("-append");
        v[n++] = xstrdup(s->cmdline);
    }
    v[n++] = xstrdup("-chardev");
    v[n++] = xasprintf("socket,id=ser0,path=%s,server=on,wait=off", serial_path);
    v[n++] = xstrdup("-serial");
    v[n++] = xstrdup("chardev:ser0");
    v[n++] = xstrdup("-qmp");
    v[n++] = xasprintf("unix:%s,server=on,wait=off", qmp_path);
    for (unsigned i = 0; i < s->n_disks; i++) {
        const struct spec_disk *d = &s->disks[i];
        /* cache.direct: the guest's O_DIRECT requests reach the image
         * (cache=none), unless the file system cannot do O_DIRECT */
        if (d->iothread) {
            v[n++] = xstrdup("-object");
            v[n++] = xasprintf("iothread,id=iot-%s", d->id);
        }
        v[n++] = xstrdup("-blockdev");
        if (d->nbd_host) /* network storage: the NBD client has no host cache */
            v[n++] = xasprintf("driver=nbd,node-name=f-%s,server.type=inet,server.host=%s,"
                               "server.port=%u,export=%s",
                               d->id, d->nbd_host, (unsigned)d->nbd_port, d->nbd_export);
        else
            v[n++] = xasprintf("driver=file,node-name=f-%s,filename=%s,cache.direct=%s", d->id,
                               d->path, d->no_direct ? "off" : "on");
        v[n++] = xstrdup("-blockdev");
        v[n++] = xasprintf("driver=%s,node-name=d-%s,file=f-%s", spec_disk_format_name(d->format),
                           d->id, d->id);
        v[n++] = xstrdup("-device");
        if (d->iothread) /* the object is created before the device that names it */
            v[n++] =
                xasprintf("virtio-blk-pci,drive=d-%s,id=%s,iothread=iot-%s", d->id, d->id, d->id);
        else
            v[n++] = xasprintf("virtio-blk-pci,drive=d-%s,id=%s", d->id, d->id);
    }
    if (incoming) {
        v[n++] = xstrdup("-incoming");
        v[n++] = xstrdup("defer");
    }
    v[n] = NULL;
    return v;
}

void spec_argv_free(char **argv)
{
    if (!argv)
        return;
    for (char **p = argv; *p; p++)
        free(*p);
    free(argv);
}
