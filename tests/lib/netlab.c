#include "netlab.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/httpc.h"
#include "util/xalloc.h"

#define CMD_TIMEOUT_MS 10000 /* one ip/tc command, ms */
#define CMD_OUT_MAX 512      /* bytes of a command's output kept for the error */
#define ARGS_MAX 40          /* words in one command */

static struct netlab *live; /* the netlab to clean up on exit/signal */
static int safety_installed;
static struct sigaction old_actions[NSIG];

/* --- commands --------------------------------------------------------- */

/* Runs argv (NULL-terminated, argv[0] on PATH) with stdin /dev/null and
 * stdout+stderr captured (first CMD_OUT_MAX bytes into out, n bytes, may
 * be NULL). Returns its exit status (0 = success), or negative when it
 * could not run or exceeded CMD_TIMEOUT_MS (then it is killed). */
static int run_argv(char *const argv[], char *out, size_t n)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return -errno;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        close(p[0]);
        close(p[1]);
        return -err;
    }
    if (pid == 0) {
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0)
            dup2(nul, 0);
        dup2(p[1], 1);
        dup2(p[1], 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(p[1]);
    size_t len = 0;
    char sink[256];
    uint64_t deadline = lab_now_ms() + CMD_TIMEOUT_MS;
    int timed_out = 0;
    for (;;) {
        uint64_t t = lab_now_ms();
        if (t >= deadline) {
            timed_out = 1;
            break;
        }
        struct pollfd pf = {.fd = p[0], .events = POLLIN};
        int r = poll(&pf, 1, (int)(deadline - t));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            timed_out = r == 0;
            break;
        }
        char *dst = sink;
        size_t room = sizeof(sink);
        if (out && len + 1 < n) {
            dst = out + len;
            room = n - 1 - len;
        }
        ssize_t k = read(p[0], dst, room);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        if (dst != sink)
            len += (size_t)k;
    }
    close(p[0]);
    if (out && n)
        out[len < n ? len : n - 1] = '\0';
    if (timed_out)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (timed_out)
        return FERR_TIMEOUT;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return -EIO;
}

/* Puts first and the words after it in ap (up to a NULL; at most
 * ARGS_MAX in all) into argv (ARGS_MAX + 1 entries), NULL-terminated.
 * Returns how many. */
static int collect_words(char **argv, const char *first, va_list ap)
{
    int n = 0;
    for (const char *w = first; w && n < ARGS_MAX; w = va_arg(ap, const char *))
        argv[n++] = (char *)w;
    argv[n] = NULL;
    return n;
}

/* Runs the NULL-terminated word list (ip/tc command) and fills e with the
 * command and its output when it fails. */
static int cmd(struct ferr *e, const char *first, ...)
{
    char *argv[ARGS_MAX + 1];
    va_list ap;
    va_start(ap, first);
    int n = collect_words(argv, first, ap);
    va_end(ap);
    char out[CMD_OUT_MAX];
    int rc = run_argv(argv, out, sizeof(out));
    if (rc == 0)
        return 0;
    char line[160];
    size_t used = 0;
    line[0] = '\0';
    for (int i = 0; i < n && used + 2 < sizeof(line); i++) {
        int w = snprintf(line + used, sizeof(line) - used, "%s%s", i ? " " : "", argv[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    size_t ol = strlen(out);
    while (ol && (out[ol - 1] == '\n' || out[ol - 1] == '\r'))
        out[--ol] = '\0';
    return ferr_set(e, rc < 0 ? rc : -EIO, "netlab", "`%s` failed (%d): %.120s", line, rc, out);
}

/* Runs a command whose failure does not matter (cleanup). */
static void cmd_quiet(const char *first, ...)
{
    char *argv[ARGS_MAX + 1];
    va_list ap;
    va_start(ap, first);
    (void)collect_words(argv, first, ap);
    va_end(ap);
    (void)run_argv(argv, NULL, 0);
}

static int on_path(const char *prog)
{
    static const char *const dirs[] = {"/usr/sbin", "/sbin", "/usr/bin", "/bin"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        char p[64];
        snprintf(p, sizeof(p), "%s/%s", dirs[i], prog);
        if (access(p, X_OK) == 0)
            return 1;
    }
    return 0;
}

/* --- safety net ------------------------------------------------------- */

/* Async-signal-safe: kills every process group started. */
static void kill_procs(const struct netlab *nl)
{
    for (int i = 0; i < nl->n_procs; i++)
        if (nl->procs[i] > 0)
            kill(-nl->procs[i], SIGKILL);
}

static void delete_namespaces(const struct netlab *nl)
{
    for (int i = 0; i < nl->n; i++)
        if (nl->hosts[i].ns[0])
            cmd_quiet("ip", "netns", "del", nl->hosts[i].ns, (char *)NULL);
    if (nl->hub[0])
        cmd_quiet("ip", "netns", "del", nl->hub, (char *)NULL);
}

static void on_exit_destroy(void)
{
    if (live)
        netlab_destroy(live);
}

static void on_fatal_signal(int sig)
{
    if (live)
        kill_procs(live); /* the watchdog deletes the namespaces once we are gone */
    sigaction(sig, &old_actions[sig], NULL);
    if (old_actions[sig].sa_handler == SIG_IGN)
        return;
    raise(sig);
}

/* The watchdog: reads process-group ids from fd until EOF (the caller is
 * gone, or netlab_destroy closed the pipe), then SIGKILLs every group,
 * deletes the lab's namespaces (names fixed before the fork) and removes
 * the temp dir. */
static void watchdog_main(int fd, struct netlab *copy)
{
    copy->n_procs = lab__watchdog_read(fd, copy->procs, NETLAB_PROCS_MAX);
    kill_procs(copy);
    lab_sleep_ms(100); /* let the killed processes release their namespaces */
    delete_namespaces(copy);
    lab__rm_tree(copy->tmp);
    _exit(0);
}

/* --- availability ----------------------------------------------------- */

int netlab_available(char *why, size_t n)
{
    if (geteuid() != 0) {
        snprintf(why, n, "network namespaces and tc need root (euid %d)", (int)geteuid());
        return 0;
    }
    if (!on_path("ip") || !on_path("tc")) {
        snprintf(why, n, "iproute2 (ip, tc) not installed");
        return 0;
    }
    char ns[NETLAB_NS_MAX];
    snprintf(ns, sizeof(ns), "fnl%d-probe", (int)getpid());
    struct ferr e = {0};
    if (cmd(&e, "ip", "netns", "add", ns, (char *)NULL) != 0) {
        snprintf(why, n, "cannot create a network namespace: %s", e.msg);
        return 0;
    }
    cmd_quiet("ip", "netns", "del", ns, (char *)NULL);
    snprintf(why, n, "ok");
    return 1;
}

int netlab_has_netem(void)
{
    char ns[NETLAB_NS_MAX];
    snprintf(ns, sizeof(ns), "fnl%d-netem", (int)getpid());
    struct ferr e = {0};
    if (cmd(&e, "ip", "netns", "add", ns, (char *)NULL) != 0)
        return 0;
    int ok = cmd(&e, "ip", "-n", ns, "link", "add", "a", "type", "veth", "peer", "name", "b",
                 (char *)NULL) == 0 &&
             cmd(&e, "tc", "-n", ns, "qdisc", "add", "dev", "a", "root", "netem", "delay", "1ms",
                 (char *)NULL) == 0;
    cmd_quiet("ip", "netns", "del", ns, (char *)NULL);
    return ok;
}

/* --- create / destroy ------------------------------------------------- */

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 8)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
            return 0;
    return 1;
}

static int build_topology(struct netlab *nl, struct ferr *e)
{
    int rc;
    const char *hub = nl->hub;
    if ((rc = cmd(e, "ip", "netns", "add", hub, (char *)NULL)) != 0)
        return rc;
    if ((rc = cmd(e, "ip", "-n", hub, "link", "set", "lo", "up", (char *)NULL)) != 0 ||
        (rc = cmd(e, "ip", "-n", hub, "link", "add", "br0", "type", "bridge", "stp_state", "0",
                  "forward_delay", "0", (char *)NULL)) != 0 ||
        (rc = cmd(e, "ip", "-n", hub, "addr", "add", NETLAB_HUB_ADDR "/24", "dev", "br0",
                  (char *)NULL)) != 0 ||
        (rc = cmd(e, "ip", "-n", hub, "link", "set", "br0", "up", (char *)NULL)) != 0)
        return rc;
    for (int i = 0; i < nl->n; i++) {
        struct netlab_host *h = &nl->hosts[i];
        char cidr[24];
        snprintf(cidr, sizeof(cidr), "%s/24", h->addr);
        if ((rc = cmd(e, "ip", "netns", "add", h->ns, (char *)NULL)) != 0 ||
            (rc = cmd(e, "ip", "-n", h->ns, "link", "set", "lo", "up", (char *)NULL)) != 0 ||
            (rc = cmd(e, "ip", "-n", hub, "link", "add", h->hub_if, "type", "veth", "peer", "name",
                      "eth0", "netns", h->ns, (char *)NULL)) != 0 ||
            (rc = cmd(e, "ip", "-n", hub, "link", "set", h->hub_if, "master", "br0",
                      (char *)NULL)) != 0 ||
            (rc = cmd(e, "ip", "-n", hub, "link", "set", h->hub_if, "up", (char *)NULL)) != 0 ||
            (rc = cmd(e, "ip", "-n", h->ns, "addr", "add", cidr, "dev", "eth0", (char *)NULL)) !=
                0 ||
            (rc = cmd(e, "ip", "-n", h->ns, "link", "set", "eth0", "up", (char *)NULL)) != 0)
            return rc;
    }
    return 0;
}

int netlab_create(struct netlab *nl, int n, const char *const *names, struct ferr *e)
{
    memset(nl, 0, sizeof(*nl));
    nl->watch_fd = -1;
    nl->home_fd = -1;
    if (live)
        return ferr_set(e, FERR_STATE, "netlab", "one netlab per process");
    if (n < 1 || n > NETLAB_HOSTS_MAX)
        return ferr_set(e, FERR_INVAL, "n", "1..%d hosts", NETLAB_HOSTS_MAX);
    for (int i = 0; i < n; i++) {
        if (!names[i] || !name_ok(names[i]) || strcmp(names[i], "hub") == 0)
            return ferr_set(e, FERR_INVAL, "names",
                            "host name %d must be 1..8 of [a-z0-9], not hub", i);
        for (int j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0)
                return ferr_set(e, FERR_INVAL, "names", "host name '%s' used twice", names[i]);
    }
    char why[160];
    if (!netlab_available(why, sizeof(why)))
        return ferr_set(e, FERR_STATE, "netlab", "%s", why);
    int pid = (int)getpid();
    snprintf(nl->hub, sizeof(nl->hub), "fnl%d-hub", pid);
    nl->n = n;
    for (int i = 0; i < n; i++) {
        struct netlab_host *h = &nl->hosts[i];
        snprintf(h->name, sizeof(h->name), "%s", names[i]);
        snprintf(h->ns, sizeof(h->ns), "fnl%d-%s", pid, names[i]);
        snprintf(h->addr, sizeof(h->addr), NETLAB_SUBNET ".%d", i + 1);
        snprintf(h->hub_if, sizeof(h->hub_if), "h%d", i + 1);
    }
    snprintf(nl->tmp, sizeof(nl->tmp), "/tmp/ferry-netlab-XXXXXX");
    if (!mkdtemp(nl->tmp)) {
        int err = errno;
        memset(nl, 0, sizeof(*nl));
        nl->watch_fd = nl->home_fd = -1;
        return ferr_set(e, -err, "", "mkdtemp: %s", strerror(err));
    }
    lab__install_safety(&safety_installed, on_exit_destroy, on_fatal_signal, old_actions);
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        int err = errno;
        lab__rm_tree(nl->tmp);
        memset(nl, 0, sizeof(*nl));
        nl->watch_fd = nl->home_fd = -1;
        return ferr_set(e, -err, "", "pipe: %s", strerror(err));
    }
    fflush(NULL);
    pid_t w = fork();
    if (w < 0) {
        int err = errno;
        close(p[0]);
        close(p[1]);
        lab__rm_tree(nl->tmp);
        memset(nl, 0, sizeof(*nl));
        nl->watch_fd = nl->home_fd = -1;
        return ferr_set(e, -err, "", "fork: %s", strerror(err));
    }
    if (w == 0) {
        close(p[1]);
        watchdog_main(p[0], nl);
    }
    close(p[0]);
    nl->watchdog = w;
    nl->watch_fd = p[1];
    live = nl;
    int rc = build_topology(nl, e);
    if (rc != 0) {
        netlab_destroy(nl);
        return rc;
    }
    return 0;
}

int netlab_host(const struct netlab *nl, const char *name)
{
    for (int i = 0; i < nl->n; i++)
        if (strcmp(nl->hosts[i].name, name) == 0)
            return i;
    return -1;
}

void netlab_leave(struct netlab *nl)
{
    if (nl->home_fd >= 0) {
        if (setns(nl->home_fd, CLONE_NEWNET) != 0)
            fprintf(stderr, "netlab: cannot return to the original netns: %s\n", strerror(errno));
        close(nl->home_fd);
        nl->home_fd = -1;
    }
}

void netlab_destroy(struct netlab *nl)
{
    netlab_leave(nl);
    kill_procs(nl);
    lab__reap_groups(nl->procs, nl->n_procs);
    delete_namespaces(nl);
    lab__watchdog_end(&nl->watch_fd, &nl->watchdog);
    lab__rm_tree(nl->tmp);
    nl->tmp[0] = '\0';
    nl->hub[0] = '\0';
    nl->n = 0;
    nl->n_procs = 0;
    if (live == nl)
        live = NULL;
}

/* --- shaping ---------------------------------------------------------- */

static int shape_dev(const char *ns, const char *dev, const struct netlab_shape *s, struct ferr *e)
{
    char rate[32], burst[32], lat[32], delay[32];
    uint64_t bytes_per_s = s->rate_bps / 8;
    uint64_t b = bytes_per_s / 500; /* 2 ms at rate */
    if (b < 32768)
        b = 32768;
    snprintf(rate, sizeof(rate), "%llubit", (unsigned long long)s->rate_bps);
    snprintf(burst, sizeof(burst), "%llu", (unsigned long long)b);
    snprintf(lat, sizeof(lat), "%ums", s->queue_ms);
    cmd_quiet("tc", "-n", ns, "qdisc", "del", "dev", dev, "root", (char *)NULL);
    if (s->delay_us == 0)
        return cmd(e, "tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "handle", "1:", "tbf",
                   "rate", rate, "burst", burst, "latency", lat, (char *)NULL);
    snprintf(delay, sizeof(delay), "%uus", s->delay_us);
    int rc = cmd(e, "tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "handle", "1:", "netem",
                 "delay", delay, "limit", "100000", (char *)NULL);
    if (rc != 0)
        return ferr_set(e, FERR_INVAL, "delay_us",
                        "a fixed delay needs the netem qdisc, which this kernel lacks (%s)",
                        e->msg);
    return cmd(e, "tc", "-n", ns, "qdisc", "add", "dev", dev, "parent", "1:1", "handle",
               "10:", "tbf", "rate", rate, "burst", burst, "latency", lat, (char *)NULL);
}

int netlab_shape(struct netlab *nl, int i, const struct netlab_shape *s, struct ferr *e)
{
    if (i < 0 || i >= nl->n)
        return ferr_set(e, FERR_INVAL, "host", "no host %d", i);
    if (s->rate_bps < 8000 || s->rate_bps > UINT64_C(100000000000))
        return ferr_set(e, FERR_INVAL, "rate_bps", "rate must be 8 kbit/s .. 100 Gbit/s");
    if (s->queue_ms < 1 || s->queue_ms > 10000)
        return ferr_set(e, FERR_INVAL, "queue_ms", "queue must be 1..10000 ms");
    if (s->delay_us > 10000000)
        return ferr_set(e, FERR_INVAL, "delay_us", "delay must be at most 10 s");
    int rc = shape_dev(nl->hosts[i].ns, "eth0", s, e);
    if (rc == 0)
        rc = shape_dev(nl->hub, nl->hosts[i].hub_if, s, e);
    return rc;
}

/* --- entering, processes ---------------------------------------------- */

static int open_ns(const char *name)
{
    char p[96];
    snprintf(p, sizeof(p), "/run/netns/%s", name);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(p, sizeof(p), "/var/run/netns/%s", name);
        fd = open(p, O_RDONLY | O_CLOEXEC);
    }
    return fd < 0 ? -errno : fd;
}

int netlab_enter(struct netlab *nl, struct ferr *e)
{
    if (nl->home_fd >= 0)
        return 0;
    if (!nl->hub[0])
        return ferr_set(e, FERR_STATE, "netlab", "no netlab");
    int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (home < 0)
        return ferr_set(e, -errno, "netlab", "open own netns: %s", strerror(errno));
    int fd = open_ns(nl->hub);
    if (fd < 0) {
        close(home);
        return ferr_set(e, fd, "netlab", "open netns %s: %s", nl->hub, strerror(-fd));
    }
    int rc = setns(fd, CLONE_NEWNET);
    int err = errno;
    close(fd);
    if (rc != 0) {
        close(home);
        return ferr_set(e, -err, "netlab", "setns %s: %s", nl->hub, strerror(err));
    }
    nl->home_fd = home;
    return 0;
}

int netlab_spawn(struct netlab *nl, int i, char *const argv[], const char *log_path, pid_t *pid,
                 struct ferr *e)
{
    if (i < 0 || i >= nl->n)
        return ferr_set(e, FERR_INVAL, "host", "no host %d", i);
    if (nl->n_procs >= NETLAB_PROCS_MAX)
        return ferr_set(e, FERR_TOOBIG, "netlab", "more than %d processes", NETLAB_PROCS_MAX);
    char *v[ARGS_MAX + 5];
    int n = 0;
    v[n++] = "ip";
    v[n++] = "netns";
    v[n++] = "exec";
    v[n++] = nl->hosts[i].ns;
    for (int k = 0; argv[k] && n < ARGS_MAX + 4; k++)
        v[n++] = argv[k];
    v[n] = NULL;
    fflush(NULL);
    pid_t p = fork();
    if (p < 0)
        return ferr_set(e, -errno, "", "fork: %s", strerror(errno));
    if (p == 0) {
        setpgid(0, 0);
        lab__child_stdio(log_path ? log_path : "/dev/null");
        signal(SIGPIPE, SIG_DFL);
        execvp(v[0], v);
        _exit(127);
    }
    setpgid(p, p); /* both sides, so the group exists before anyone kills it */
    nl->procs[nl->n_procs++] = p;
    if (nl->watch_fd >= 0) {
        ssize_t w = write(nl->watch_fd, &p, sizeof(p));
        (void)w;
    }
    *pid = p;
    return 0;
}

int netlab_paths(char *build, char *lab_dir, size_t n, struct ferr *e)
{
    return lab_paths(build, lab_dir, n, e);
}

static int proc_exited(pid_t pid)
{
    int status;
    return waitpid(pid, &status, WNOHANG) == pid;
}

int netlab_start_agent(struct netlab *nl, int i, const char *build, const char *lab_dir, int port,
                       struct lab_agent *a, struct ferr *e)
{
    if (i < 0 || i >= nl->n)
        return ferr_set(e, FERR_INVAL, "host", "no host %d", i);
    const struct netlab_host *h = &nl->hosts[i];
    memset(a, 0, sizeof(*a));
    snprintf(a->name, sizeof(a->name), "%s", h->name);
    snprintf(a->addr, sizeof(a->addr), "%s", h->addr);
    a->port = port;
    snprintf(a->url, sizeof(a->url), "http://%s:%d", h->addr, port);
    if ((size_t)snprintf(a->state_dir, sizeof(a->state_dir), "%s/%s-agent", nl->tmp, h->name) >=
            sizeof(a->state_dir) ||
        (size_t)snprintf(a->log_path, sizeof(a->log_path), "%s/%s-agent.log", nl->tmp, h->name) >=
            sizeof(a->log_path))
        return ferr_set(e, FERR_TOOBIG, "netlab", "temp path too long");
    if (mkdir(a->state_dir, 0700) != 0)
        return ferr_set(e, -errno, "state_dir", "mkdir %s: %s", a->state_dir, strerror(errno));
    char *bin = xasprintf("%s/ferry-agent", build);
    char *listen = xasprintf("%s:%d", h->addr, port);
    char *argv[] = {bin,      "--listen", listen,      "--state-dir",   a->state_dir,
                    "--name", a->name,    "--lab-dir", (char *)lab_dir, NULL, NULL, NULL};
    (void)lab_incoming_nice_args(&argv[9]); /* FERRY_LAB_INCOMING_NICE */
    pid_t pid = 0;
    int rc = netlab_spawn(nl, i, argv, a->log_path, &pid, e);
    free(bin);
    free(listen);
    if (rc != 0)
        return rc;
    a->pid = pid;
    return lab__agent_wait_health(a, e);
}

/* Returns 1 when a TCP connection to addr:port succeeds (from the
 * calling thread's namespace). */
static int tcp_accepts(const char *addr, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    int ok = inet_pton(AF_INET, addr, &sa.sin_addr) == 1 &&
             connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

int netlab_nbd_serve(struct netlab *nl, int i, const char *image, const char *export, int port,
                     pid_t *pid, struct ferr *e)
{
    if (i < 0 || i >= nl->n)
        return ferr_set(e, FERR_INVAL, "host", "no host %d", i);
    if (!on_path("qemu-nbd"))
        return ferr_set(e, FERR_NOTFOUND, "qemu-nbd", "qemu-nbd not installed (qemu-utils)");
    const struct netlab_host *h = &nl->hosts[i];
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    char *log = xasprintf("%s/%s-nbd.log", nl->tmp, h->name);
    char *exp = xstrdup(export), *img = xstrdup(image), *bind = xstrdup(h->addr);
    char *argv[] = {"qemu-nbd", "--format=raw", "--export-name", exp, "--bind", bind, "--port",
                    portstr,    "--shared=8",   "--persistent",  img, NULL};
    int rc = netlab_spawn(nl, i, argv, log, pid, e);
    free(exp);
    free(img);
    free(bind);
    if (rc != 0) {
        free(log);
        return rc;
    }
    uint64_t deadline = lab_now_ms() + 10000;
    while (lab_now_ms() < deadline) {
        if (tcp_accepts(h->addr, port)) {
            free(log);
            return 0;
        }
        if (proc_exited(*pid)) {
            rc = ferr_set(e, FERR_CLOSED, "qemu-nbd", "qemu-nbd exited at start (log %s)", log);
            free(log);
            return rc;
        }
        lab_sleep_ms(50);
    }
    rc = ferr_set(e, FERR_TIMEOUT, "qemu-nbd", "qemu-nbd did not accept on %s:%d (log %s)", h->addr,
                  port, log);
    free(log);
    return rc;
}

int netlab_link_bytes(const struct netlab *nl, int i, uint64_t *tx, uint64_t *rx, struct ferr *e)
{
    if (i < 0 || i >= nl->n)
        return ferr_set(e, FERR_INVAL, "host", "no host %d", i);
    int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (home < 0)
        return ferr_set(e, -errno, "netlab", "open own netns: %s", strerror(errno));
    int fd = open_ns(nl->hosts[i].ns);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
        int err = fd < 0 ? -fd : errno;
        if (fd >= 0)
            close(fd);
        close(home);
        return ferr_set(e, -err, "netlab", "enter %s: %s", nl->hosts[i].ns, strerror(err));
    }
    close(fd);
    FILE *f = fopen("/proc/thread-self/net/dev", "r");
    int found = 0;
    if (f) {
        char line[512];
        while (fgets(line, sizeof(line), f)) {
            char *c = strchr(line, ':');
            if (!c)
                continue;
            char *nm = line;
            while (*nm == ' ')
                nm++;
            if ((size_t)(c - nm) != 4 || strncmp(nm, "eth0", 4) != 0)
                continue;
            unsigned long long v[16] = {0};
            int k = sscanf(c + 1, "%llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
                           &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8]);
            if (k == 9) {
                *rx = v[0];
                *tx = v[8];
                found = 1;
            }
        }
        fclose(f);
    }
    if (setns(home, CLONE_NEWNET) != 0)
        fprintf(stderr, "netlab: cannot return to the previous netns: %s\n", strerror(errno));
    close(home);
    return found ? 0
                 : ferr_set(e, FERR_NOTFOUND, "netlab", "no eth0 counters in %s", nl->hosts[i].ns);
}

int netlab_uplink_drops(const struct netlab *nl, int i, uint64_t *drops, struct ferr *e)
{
    if (i < 0 || i >= nl->n)
        return ferr_set(e, FERR_INVAL, "host", "no host %d", i);
    char *argv[] = {"tc", "-s", "-n", (char *)nl->hosts[i].ns, "qdisc", "show", "dev", "eth0",
                    NULL};
    char out[4096];
    int rc = run_argv(argv, out, sizeof(out));
    if (rc != 0)
        return ferr_set(e, rc < 0 ? rc : -EIO, "netlab", "tc -s qdisc show in %s failed (%d)",
                        nl->hosts[i].ns, rc);
    uint64_t sum = 0;
    int found = 0;
    for (const char *p = strstr(out, "(dropped "); p; p = strstr(p + 1, "(dropped ")) {
        unsigned long long d = 0;
        if (sscanf(p, "(dropped %llu", &d) == 1) {
            sum += d;
            found = 1;
        }
    }
    if (!found)
        return ferr_set(e, FERR_PEER, "netlab", "no qdisc statistics on %s eth0",
                        nl->hosts[i].ns);
    *drops = sum;
    return 0;
}
