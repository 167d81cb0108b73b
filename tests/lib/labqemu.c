/* labqemu — see labqemu.h. */
#include "labqemu.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/ferr.h"
#include "util/xalloc.h"

int labq_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

static int has_guest(const char *dir)
{
    char *k = xasprintf("%s/vmlinuz", dir), *i = xasprintf("%s/initrd.img", dir);
    int ok = labq_file_exists(k) && labq_file_exists(i);
    free(k);
    free(i);
    return ok;
}

int labq_find_dir(char *out, size_t n)
{
    const char *build = getenv("BUILD");
    snprintf(out, n, "%s/lab", build && *build ? build : "build");
    if (has_guest(out))
        return 0;
    if (has_guest("build/lab")) {
        fprintf(stderr, "note: %s has no guest image; using build/lab\n", out);
        snprintf(out, n, "build/lab");
        return 0;
    }
    return -ENOENT;
}

pid_t labq_exec_logged(char *const argv[], const char *log)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* Never outlive the caller, even if it crashes. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    return pid < 0 ? -errno : pid;
}

#define LABQ_MAX_EXTRA 16

int labq_spawn(struct labq *g, const char *lab_dir, const char *params, const char *const *extra)
{
    memset(g, 0, sizeof(*g));
    g->con.fd = -1;
    size_t nextra = 0;
    while (extra && extra[nextra])
        nextra++;
    if (nextra > LABQ_MAX_EXTRA)
        return -E2BIG;
    if (!has_guest(lab_dir))
        return -ENOENT;
    snprintf(g->dir, sizeof(g->dir), "/tmp/ferry-lab-XXXXXX");
    if (!mkdtemp(g->dir)) {
        g->dir[0] = '\0';
        return -errno;
    }
    g->ser_path = xasprintf("%s/ser.sock", g->dir);
    char *kernel = xasprintf("%s/vmlinuz", lab_dir);
    char *initrd = xasprintf("%s/initrd.img", lab_dir);
    char *append = xasprintf("console=ttyS0 quiet panic=-1 %s", params);
    char *serial = xasprintf("socket,id=ser0,path=%s,server=on,wait=off", g->ser_path);
    char *qmp = xasprintf("unix:%s/qmp.sock,server=on,wait=off", g->dir);
    char *log = xasprintf("%s/qemu.log", g->dir);
    char *argv[24 + LABQ_MAX_EXTRA + 1] = {
        "qemu-system-x86_64",
        "-accel",
        "tcg",
        "-machine",
        "pc",
        "-m",
        "262148k", /* 256 MiB + 4 KiB: see docs/LAB.md, TCG dirty tracking */
        "-smp",
        "1",
        "-nodefaults",
        "-display",
        "none",
        "-kernel",
        kernel,
        "-initrd",
        initrd,
        "-append",
        append,
        "-chardev",
        serial,
        "-serial",
        "chardev:ser0",
        "-qmp",
        qmp};
    size_t n = 24;
    for (size_t k = 0; k < nextra; k++)
        argv[n++] = (char *)extra[k];
    argv[n] = NULL;
    pid_t pid = labq_exec_logged(argv, log);
    free(kernel);
    free(initrd);
    free(append);
    free(serial);
    free(qmp);
    free(log);
    if (pid < 0) {
        labq_stop(g);
        return (int)pid;
    }
    g->pid = pid;
    return 0;
}

void labq_stop(struct labq *g)
{
    guestcon_close(&g->con);
    if (g->pid > 0) {
        kill(g->pid, SIGKILL);
        waitpid(g->pid, NULL, 0);
        g->pid = 0;
    }
    free(g->ser_path);
    g->ser_path = NULL;
    if (!g->dir[0])
        return;
    DIR *d = opendir(g->dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        size_t len = strlen(de->d_name);
        int ours = strcmp(de->d_name, "qemu.log") == 0 ||
                   (len > 5 && strcmp(de->d_name + len - 5, ".sock") == 0);
        if (ours) {
            char *p = xasprintf("%s/%s", g->dir, de->d_name);
            unlink(p);
            free(p);
        }
    }
    if (d)
        closedir(d);
    rmdir(g->dir);
    g->dir[0] = '\0';
}

void labq_dump_log(const struct labq *g)
{
    if (!g->dir[0])
        return;
    char *lp = xasprintf("%s/qemu.log", g->dir);
    FILE *f = fopen(lp, "r");
    char line[512];
    while (f && fgets(line, sizeof(line), f))
        fputs(line, stderr);
    if (f)
        fclose(f);
    free(lp);
}

int labq_qmp_cmd(struct guestcon *q, const char *json, int timeout_ms, char **out)
{
    *out = NULL;
    int rc = guestcon_send(q, json);
    while (rc == 0) {
        char *rest = NULL;
        rc = guestcon_expect(q, "{\"", timeout_ms, &rest);
        if (rc < 0)
            break;
        if (strncmp(rest, "return\"", 7) == 0) {
            *out = rest;
            return 0;
        }
        int is_err = strncmp(rest, "error\"", 6) == 0;
        if (is_err)
            fprintf(stderr, "qmp error: %s\n", rest);
        free(rest);
        if (is_err)
            return FERR_PEER;
    }
    return rc;
}

int labq_qmp_uri(struct guestcon *q, const char *cmd, const char *uri, int timeout_ms)
{
    char *json = xasprintf("{\"execute\":\"%s\",\"arguments\":{\"uri\":\"%s\"}}", cmd, uri);
    char *res = NULL;
    int rc = labq_qmp_cmd(q, json, timeout_ms, &res);
    free(json);
    free(res);
    return rc;
}

int labq_migrate_wait(struct guestcon *q, int tries, int timeout_ms, char *why, size_t n)
{
    for (int k = 0; k < tries; k++) {
        char *res = NULL;
        int rc = labq_qmp_cmd(q, "{\"execute\":\"query-migrate\"}", timeout_ms, &res);
        if (rc < 0) {
            snprintf(why, n, "query-migrate: %d", rc);
            return rc;
        }
        int done = strstr(res, "\"status\": \"completed\"") != NULL;
        int ended =
            strstr(res, "\"status\": \"failed\"") || strstr(res, "\"status\": \"cancelled\"");
        if (ended)
            snprintf(why, n, "migration ended: %.300s", res);
        free(res);
        if (done)
            return 0;
        if (ended)
            return FERR_PEER;
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    snprintf(why, n, "migration did not complete in %d s", tries / 5);
    return FERR_TIMEOUT;
}

int labq_qmp_open(const struct labq *g, struct guestcon *q, int timeout_ms)
{
    char *path = xasprintf("%s/qmp.sock", g->dir);
    int rc = guestcon_open(q, path, 10000);
    free(path);
    if (rc < 0)
        return rc;
    char *rest = NULL;
    rc = guestcon_expect(q, "{\"QMP\"", timeout_ms, &rest);
    free(rest);
    rest = NULL;
    if (rc == 0)
        rc = labq_qmp_cmd(q, "{\"execute\":\"qmp_capabilities\"}", timeout_ms, &rest);
    free(rest);
    if (rc < 0)
        guestcon_close(q);
    return rc;
}

int labq_disk_checksum(const char *path, uint64_t span, uint64_t *out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    uint64_t *buf = xmalloc((size_t)1 << 20); /* 1 MiB */
    uint64_t h = 0xcbf29ce484222325ull, done = 0;
    int rc = 0;
    while (done < span) {
        size_t want = span - done < ((size_t)1 << 20) ? (size_t)(span - done) : ((size_t)1 << 20);
        if (fread(buf, 1, want, f) != want) {
            rc = -EIO;
            break;
        }
        for (size_t k = 0; k < want / 8; k++) {
            h ^= buf[k];
            h *= 0x100000001b3ull;
        }
        done += want;
    }
    free(buf);
    fclose(f);
    if (rc == 0)
        *out = h;
    return rc;
}

/* Points at the value after "\"key\":" (suffix appended to the pattern),
 * or NULL. */
static const char *value_of(const char *json, const char *key, const char *suffix)
{
    char pat[96];
    if (!json || (size_t)snprintf(pat, sizeof(pat), "\"%s\":%s", key, suffix) >= sizeof(pat))
        return NULL;
    const char *p = strstr(json, pat);
    return p ? p + strlen(pat) : NULL;
}

double labq_json_num(const char *json, const char *key, double def)
{
    const char *p = value_of(json, key, "");
    if (!p)
        return def;
    char *end;
    double v = strtod(p, &end);
    return end == p ? def : v;
}

int labq_json_bool(const char *json, const char *key)
{
    const char *p = value_of(json, key, "");
    if (!p)
        return -1;
    if (strncmp(p, "true", 4) == 0)
        return 1;
    if (strncmp(p, "false", 5) == 0)
        return 0;
    return -1;
}

void labq_json_str(const char *json, const char *key, char *out, size_t n)
{
    const char *p = value_of(json, key, "\"");
    out[0] = '\0';
    if (!p || n == 0)
        return;
    size_t k = 0;
    while (p[k] && p[k] != '"' && k + 1 < n) {
        out[k] = p[k];
        k++;
    }
    out[k] = '\0';
}
