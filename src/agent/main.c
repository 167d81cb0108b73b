/* ferry-agent — one per host: owns the host's QEMU guests and drives their
 * migrations. See docs/ARCHITECTURE.md and docs/AGENT.md. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/coordlink.h"
#include "agent/maint.h"
#include "util/httpd.h"
#include "util/log.h"
#include "util/xalloc.h"

static void usage(void)
{
    fprintf(stderr,
            "usage: ferry-agent --listen ADDR:PORT --state-dir DIR [--name NAME]\n"
            "                   [--qemu PATH] [--lab-dir DIR] [--token-file FILE]\n"
            "                   [--incoming-nice N]\n"
            "                   [--coordinator URL --agent-token-file FILE [--label KEY=VALUE]...]\n"
            "  --listen      address and port of the API; migrations listen on ADDR too\n"
            "                (loopback by default: 127.0.0.1:7001)\n"
            "  --state-dir   where guests' sockets, logs and specs live\n"
            "  --lab-dir     default kernel/initrd for specs without one (vmlinuz, initrd.img)\n"
            "  --token-file  require this bearer token on every request\n"
            "  --label       a host label sent to the coordinator (repeatable, at most 16)\n"
            "  --incoming-nice N  an incoming guest's QEMU runs at CPU nice N (1..19) until\n"
            "                it owns the guest, so the copy yields to the host's running\n"
            "                guests; needs the right to restore it (root or RLIMIT_NICE)\n");
}

static void on_sigchld(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    inst_reap(arg);
}

static void on_sigterm(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct agent *ag = arg;
    log_info("agent", "msg=\"stopping; guests keep running and are re-adopted on restart\"");
    event_base_loopexit(ag->base, NULL);
}

static char *read_token(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char buf[256];
    char *r = fgets(buf, sizeof(buf), f);
    fclose(f);
    if (!r)
        return NULL;
    buf[strcspn(buf, "\r\n")] = '\0';
    return buf[0] ? xstrdup(buf) : NULL;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},   {"state-dir", required_argument, NULL, 's'},
        {"name", required_argument, NULL, 'n'},     {"qemu", required_argument, NULL, 'q'},
        {"lab-dir", required_argument, NULL, 'k'},  {"token-file", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},           {"coordinator", required_argument, NULL, 'C'},
        {"agent-token-file", required_argument, NULL, 'T'},
        {"label", required_argument, NULL, 'L'},    {"incoming-nice", required_argument, NULL, 'N'},
        {NULL, 0, NULL, 0}};
    const char *labels[COORDLINK_LABELS_MAX + 1];
    size_t nlabels = 0;
    const char *coord_url = NULL, *coord_token = NULL; /* coordlink.h */
    struct agent ag = {0};
    const char *listen = "127.0.0.1:7001", *lab = NULL, *token_file = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "l:s:n:q:k:t:hC:T:L:N:", opts, NULL)) != -1) {
        switch (c) {
        case 'l': listen = optarg; break;
        case 's': ag.state_dir = xstrdup(optarg); break;
        case 'n': ag.name = xstrdup(optarg); break;
        case 'q': ag.qemu = xstrdup(optarg); break;
        case 'k': lab = optarg; break;
        case 't': token_file = optarg; break;
        case 'C': coord_url = optarg; break;
        case 'T': coord_token = optarg; break;
        case 'N': {
            char *e = NULL;
            long v = strtol(optarg, &e, 10);
            if (e == optarg || *e || v < 0 || v > 19) {
                fprintf(stderr, "ferry-agent: --incoming-nice must be 0..19\n");
                return 2;
            }
            ag.incoming_nice = (int)v;
            break;
        }
        case 'L':
            if (nlabels > COORDLINK_LABELS_MAX) {
                fprintf(stderr, "ferry-agent: more than %d --label\n", COORDLINK_LABELS_MAX);
                return 2;
            }
            labels[nlabels++] = optarg;
            break;
        default: usage(); return c == 'h' ? 0 : 2;
        }
    }
    if (!ag.state_dir) {
        usage();
        return 2;
    }
    const char *colon = strrchr(listen, ':');
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || !end || *end || port <= 0 || port > 65535) {
        fprintf(stderr, "ferry-agent: --listen must be ADDR:PORT\n");
        return 2;
    }
    ag.listen_addr = xstrndup(listen, (size_t)(colon - listen));
    ag.port = (int)port;
    if (!ag.name)
        ag.name = xasprintf("%s", ag.listen_addr);
    if (!ag.qemu)
        ag.qemu = xstrdup("/usr/bin/qemu-system-x86_64");
    if (lab) {
        ag.lab_kernel = xasprintf("%s/vmlinuz", lab);
        ag.lab_initrd = xasprintf("%s/initrd.img", lab);
        if (ag.lab_kernel[0] != '/') {
            fprintf(stderr, "ferry-agent: --lab-dir must be absolute\n");
            return 2;
        }
    }
    if (ag.incoming_nice > 0) {
        /* taking the priority back at takeover needs the right to raise it */
        struct rlimit rl;
        int self = getpriority(PRIO_PROCESS, 0);
        bool can = geteuid() == 0 ||
                   (getrlimit(RLIMIT_NICE, &rl) == 0 &&
                    (rl.rlim_cur == RLIM_INFINITY || 20 - (long)rl.rlim_cur <= self));
        if (!can) {
            fprintf(stderr, "ferry-agent: --incoming-nice needs root or an RLIMIT_NICE that "
                            "lets it restore the guest's priority at takeover\n");
            return 2;
        }
    }
    if (token_file && !(ag.token = read_token(token_file))) {
        fprintf(stderr, "ferry-agent: cannot read a token from %s\n", token_file);
        return 2;
    }
    if (mkdir(ag.state_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "ferry-agent: cannot create %s: %s\n", ag.state_dir, strerror(errno));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    ag.base = event_base_new();
    ag.http = evhttp_new(ag.base);
    httpd_apply_caps(ag.http);
    if (evhttp_bind_socket(ag.http, ag.listen_addr, (ev_uint16_t)ag.port) != 0) {
        fprintf(stderr, "ferry-agent: cannot listen on %s: %s\n", listen, strerror(errno));
        return 1;
    }
    evhttp_set_gencb(ag.http, api_handle, &ag);
    ag.sigchld = evsignal_new(ag.base, SIGCHLD, on_sigchld, &ag);
    ag.sigterm = evsignal_new(ag.base, SIGTERM, on_sigterm, &ag);
    ag.sigint = evsignal_new(ag.base, SIGINT, on_sigterm, &ag);
    event_add(ag.sigchld, NULL);
    event_add(ag.sigterm, NULL);
    event_add(ag.sigint, NULL);
    maint_init(&ag, argv); /* POST /v1/maintenance; restart re-executes argv */
    int adopted = inst_adopt_all(&ag);
    struct coordlink *link = NULL;
    struct ferr le = {0};
    if (nlabels && !coord_url) {
        fprintf(stderr, "ferry-agent: --label needs --coordinator\n");
        return 2;
    }
    if (coord_url &&
        coordlink_start(&ag, coord_url, coord_token, labels, nlabels, &link, &le) != 0) {
        fprintf(stderr, "ferry-agent: %s\n", le.msg);
        return 2;
    }
    log_info("agent", "msg=\"listening\" name=%s addr=%s port=%d adopted=%d", ag.name,
             ag.listen_addr, ag.port, adopted);
    event_base_dispatch(ag.base);
    coordlink_free(link);
    evhttp_free(ag.http);
    return 0;
}
