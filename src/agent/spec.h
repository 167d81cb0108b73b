/* spec — an instance spec (what QEMU runs) and migration limits, parsed
 * from untrusted JSON with every field validated, and the QEMU command line
 * built from a spec. Pure: no I/O beyond the caller's buffers. */
#ifndef FERRY_AGENT_SPEC_H
#define FERRY_AGENT_SPEC_H
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/ferr.h"

#define SPEC_PATH_MAX 1024    /* bytes in a kernel/initrd path */
#define SPEC_CMDLINE_MAX 2048 /* bytes in a kernel command line */
#define SPEC_DISKS_MAX 4      /* virtio disks per instance */
#define SPEC_DISK_ID_MAX 16   /* bytes in a disk id, NUL included */
#define SPEC_NBD_HOST_MAX 253 /* bytes in an NBD server host name or IPv4 address */
#define SPEC_NBD_EXPORT_MAX 63 /* bytes in an NBD export name */

enum spec_disk_format {
    SPEC_DISK_RAW = 1, /* "raw" */
    SPEC_DISK_QCOW2,   /* "qcow2" */
};

/* One virtio disk: QEMU gets -blockdev protocol node "f-ID" (an image file,
 * or an NBD client for network storage), format node "d-ID" and -device
 * virtio-blk-pci,drive=d-ID,id=ID (identical device arguments on both sides
 * of a migration, whatever the path). Exactly one of path and nbd_host is
 * set. */
struct spec_disk {
    char id[SPEC_DISK_ID_MAX];    /* [a-z][a-z0-9]{0,14}: the guest's device id */
    char *path;                   /* absolute image path, no ','; NULL for an NBD disk */
    char *nbd_host;               /* NBD server: host name or IPv4 address, NULL for a file */
    uint16_t nbd_port;            /* NBD server TCP port (1..65535) */
    char *nbd_export;             /* NBD export name, jsonin_name_ok() */
    enum spec_disk_format format; /* image format */
    bool iothread;                /* the device's requests run on an I/O thread of
                                     its own (iot-ID), not QEMU's main loop */
    bool no_direct;               /* not in JSON: the file system refuses O_DIRECT,
                                     so QEMU opens it cached (set at launch) */
};

struct inst_spec {
    char *name;           /* instance name, jsonin_name_ok() */
    char *project;        /* owner project id, "" when none */
    uint64_t memory_mib;  /* guest RAM, MiB (64..65536) */
    uint64_t vcpus;       /* virtual CPUs (1..64) */
    char *kernel;         /* absolute path of the kernel image */
    char *initrd;         /* absolute path of the initramfs, may be NULL */
    char *cmdline;        /* kernel command line, may be NULL */
    struct spec_disk disks[SPEC_DISKS_MAX]; /* virtio disks, in guest order */
    unsigned n_disks;     /* entries in disks */
};

struct mig_limits {
    uint64_t downtime_ms;          /* QEMU downtime-limit, ms (1..60000) */
    uint64_t max_bandwidth_bps;    /* max-bandwidth, bytes/s; 0 = QEMU default */
    bool auto_converge;            /* enable QEMU auto-converge */
    uint64_t completion_timeout_s; /* abort after this many s; 0 = never */
    uint64_t mirror_speed_bps;     /* block-mirror speed per disk, bytes/s; 0 = no cap */
    uint64_t mirror_buf_bytes;     /* blockdev-mirror buf-size per disk, bytes; 0 = QEMU's
                                      default (16 MiB) */
    bool pacing;                   /* pace the migration socket at max-bandwidth
                                      (agent/pace.h) instead of QEMU's 100 ms bursts */
    bool pacing_given;             /* "pacing" was in the request (else a
                                      policy with an impact budget turns it on) */
};

/* Parses obj into *s. Unknown fields, wrong types, out-of-range values,
 * unsafe names and relative paths fail with e naming the field; on failure
 * *s is left empty (nothing to free). kernel/initrd default to the given
 * defaults (may be NULL) when absent. On success the caller releases *s
 * with spec_free. */
int spec_from_json(const json_t *obj, const char *def_kernel, const char *def_initrd,
                   struct inst_spec *s, struct ferr *e) __attribute__((warn_unused_result));

/* Returns the name of a disk format ("raw", "qcow2"). */
const char *spec_disk_format_name(enum spec_disk_format f);

/* Parses a format name; returns 0 and sets *out, or FERR_INVAL. */
int spec_disk_format_parse(const char *name, enum spec_disk_format *out)
    __attribute__((warn_unused_result));

/* Returns true when id is a valid disk id ([a-z][a-z0-9]{0,14}). */
bool spec_disk_id_ok(const char *id);

/* Returns true when h may name an NBD server: 1..253 of [A-Za-z0-9.-], not
 * starting with '-' or '.' (a host name or dotted IPv4 address; nothing
 * QEMU's option parser would split). */
bool spec_nbd_host_ok(const char *h);

/* Returns a new JSON object describing s (caller decrefs). */
json_t *spec_to_json(const struct inst_spec *s);

/* Releases the strings of s and zeroes it. */
void spec_free(struct inst_spec *s);

/* Copies src into dst (dst must be empty); caller releases dst. */
void spec_copy(struct inst_spec *dst, const struct inst_spec *src);

/* Sets *l to the defaults (300 ms, unlimited, no auto-converge, no timeout)
 * then applies the fields of obj (may be NULL). Validation as for
 * spec_from_json; on failure *l holds the defaults. */
int limits_from_json(const json_t *obj, struct mig_limits *l, struct ferr *e)
    __attribute__((warn_unused_result));

/* Returns a new JSON object describing l (caller decrefs). */
json_t *limits_to_json(const struct mig_limits *l);

/* Builds the QEMU argv (NULL-terminated; caller frees with spec_argv_free)
 * for s with its QMP and serial sockets at the given paths; with incoming
 * the guest waits for a migration (-incoming defer). */
char **spec_argv(const struct inst_spec *s, const char *qemu, const char *qmp_path,
                 const char *serial_path, bool incoming);

/* Frees an argv from spec_argv. */
void spec_argv_free(char **argv);

#endif
