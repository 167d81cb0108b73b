#include "agent/pace.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SO_MAX_PACING_RATE
#define SO_MAX_PACING_RATE 47
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

/* Splits "tcp:HOST:PORT" into host (n bytes) and port. */
static int parse_uri(const char *uri, char *host, size_t n, unsigned *port)
{
    if (strncmp(uri, "tcp:", 4) != 0)
        return FERR_INVAL;
    const char *h = uri + 4, *c = strrchr(h, ':');
    if (!c || c == h || (size_t)(c - h) >= n)
        return FERR_INVAL;
    char *end = NULL;
    unsigned long p = strtoul(c + 1, &end, 10);
    if (!end || *end || p == 0 || p > 65535)
        return FERR_INVAL;
    memcpy(host, h, (size_t)(c - h));
    host[c - h] = '\0';
    *port = (unsigned)p;
    return 0;
}

/* Socket inode of pid's established connection to (addr, port); addr may
 * be NULL (match the port alone). 0 when none. */
static unsigned long find_inode(pid_t pid, const struct in_addr *addr, unsigned port)
{
    char path[64], want[24];
    snprintf(path, sizeof(path), "/proc/%d/net/tcp", (int)pid);
    if (addr)
        snprintf(want, sizeof(want), "%08X:%04X", (unsigned)addr->s_addr, port);
    else
        snprintf(want, sizeof(want), ":%04X", port);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[512];
    unsigned long inode = 0;
    while (!inode && fgets(line, sizeof(line), f)) {
        char rem[64], st[8];
        unsigned long ino = 0;
        if (sscanf(line, " %*s %*s %63s %7s %*s %*s %*s %*s %*s %lu", rem, st, &ino) != 3)
            continue;
        size_t rl = strlen(rem), wl = strlen(want);
        int match = addr ? strcmp(rem, want) == 0 : (rl >= wl && strcmp(rem + rl - wl, want) == 0);
        if (match && strcmp(st, "01") == 0) /* TCP_ESTABLISHED */
            inode = ino;
    }
    fclose(f);
    return inode;
}

/* pid's descriptor number for socket inode, -1 when none. */
static int find_fd(pid_t pid, unsigned long inode)
{
    char dir[64], want[48];
    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
    snprintf(want, sizeof(want), "socket:[%lu]", inode);
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int target = -1;
    struct dirent *de;
    while (target < 0 && (de = readdir(d)) != NULL) {
        char lp[384], ln[64];
        snprintf(lp, sizeof(lp), "%s/%s", dir, de->d_name);
        ssize_t k = readlink(lp, ln, sizeof(ln) - 1);
        if (k <= 0)
            continue;
        ln[k] = '\0';
        if (strcmp(ln, want) == 0)
            target = (int)strtol(de->d_name, NULL, 10);
    }
    closedir(d);
    return target;
}

int pace_set(pid_t pid, const char *uri, uint64_t rate_bps, struct ferr *e)
{
    char host[128];
    unsigned port = 0;
    if (parse_uri(uri, host, sizeof(host), &port) != 0)
        return ferr_set(e, FERR_INVAL, "uri", "pacing needs a tcp:HOST:PORT migration URI");
    struct in_addr ia;
    int lit = inet_pton(AF_INET, host, &ia) == 1;
    unsigned long inode = find_inode(pid, lit ? &ia : NULL, port);
    if (!inode)
        return ferr_set(e, FERR_NOTFOUND, "pacing", "no established connection to %s:%u yet",
                        host, port);
    int target = find_fd(pid, inode);
    if (target < 0)
        return ferr_set(e, FERR_NOTFOUND, "pacing", "connection to %s:%u has no descriptor",
                        host, port);
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd < 0)
        return ferr_set(e, -errno, "pacing", "pidfd_open: %s", strerror(errno));
    int fd = (int)syscall(SYS_pidfd_getfd, pfd, target, 0);
    int err = errno;
    close(pfd);
    if (fd < 0)
        return ferr_set(e, -err, "pacing", "pidfd_getfd: %s", strerror(err));
    /* ~0: no pacing; the kernel takes an unsigned long (u64 since 5.x) */
    unsigned long r = rate_bps ? (unsigned long)rate_bps : ~0UL;
    int rc = setsockopt(fd, SOL_SOCKET, SO_MAX_PACING_RATE, &r, sizeof(r));
    err = errno;
    close(fd);
    if (rc != 0)
        return ferr_set(e, -err, "pacing", "SO_MAX_PACING_RATE: %s", strerror(err));
    return 0;
}
