/* config — see config.h. */
#include "coord/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

void config_defaults(struct config *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->listen_addr, sizeof(c->listen_addr), "127.0.0.1");
    c->listen_port = 7400;
    snprintf(c->db_path, sizeof(c->db_path), "ferryd.db");
    c->heartbeat_interval_ms = 10000;
    c->heartbeat_missed = 3;
    c->progress_events_per_s = 1.0;
    snprintf(c->log_level, sizeof(c->log_level), "info");
    c->webhook_max_tries = 8;
    c->webhook_backoff_base_ms = 1000;
    c->webhook_backoff_cap_ms = 300000;
    c->consent_timeout_s = 600;
    c->sse_max_subscribers = 64;
    c->read_threads = 2;
    c->max_migrations = 8;
    c->max_migrations_per_source = 1;
    c->max_migrations_per_dest = 1;
    c->consent_timeout_max_s = 86400;
    snprintf(c->consent_timeout_action, sizeof(c->consent_timeout_action), "wait");
}

/* `URL SECRET [TYPES]`: an http:// URL, a secret of 16..128 bytes. */
static int parse_webhook(struct config *c, const char *v)
{
    char url[512], secret[512], types[512] = "", extra[8];
    int fields = sscanf(v, "%511s %511s %511s %7s", url, secret, types, extra);
    if (c->n_webhooks >= CONFIG_WEBHOOKS_MAX || fields < 2 || fields > 3 ||
        strncmp(url, "http://", 7) != 0 || strlen(url) <= 7 || strlen(url) >= 256 ||
        strlen(secret) < 16 || strlen(secret) > CONFIG_SECRET_MAX || strlen(types) >= 256)
        return -1;
    struct config_webhook *w = &c->webhooks[c->n_webhooks++];
    snprintf(w->url, sizeof(w->url), "%s", url);
    snprintf(w->secret, sizeof(w->secret), "%s", secret);
    snprintf(w->types, sizeof(w->types), "%s", types);
    return 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

static int parse_u32(const char *v, uint32_t min, uint32_t max, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-' || x < min || x > max)
        return -1;
    *out = (uint32_t)x;
    return 0;
}

static int set_path(char *dst, size_t n, const char *v)
{
    if (strlen(v) >= n)
        return -1;
    snprintf(dst, n, "%s", v);
    return 0;
}

static int apply(struct config *c, const char *k, const char *v, int line, struct ferr *e)
{
    uint32_t u;
    if (strcmp(k, "listen") == 0) {
        const char *colon = strrchr(v, ':');
        char addr[64];
        struct in_addr ia;
        if (!colon || (size_t)(colon - v) >= sizeof(addr) ||
            parse_u32(colon + 1, 1, 65535, &u) != 0)
            goto bad;
        snprintf(addr, sizeof(addr), "%.*s", (int)(colon - v), v);
        if (inet_pton(AF_INET, addr, &ia) != 1)
            goto bad;
        snprintf(c->listen_addr, sizeof(c->listen_addr), "%s", addr);
        c->listen_port = (int)u;
    } else if (strcmp(k, "db") == 0) {
        if (!v[0] || set_path(c->db_path, sizeof(c->db_path), v) != 0)
            goto bad;
    } else if (strcmp(k, "policy_file") == 0) {
        if (set_path(c->policy_file, sizeof(c->policy_file), v) != 0)
            goto bad;
    } else if (strcmp(k, "bootstrap_token_file") == 0) {
        if (set_path(c->bootstrap_token_file, sizeof(c->bootstrap_token_file), v) != 0)
            goto bad;
    } else if (strcmp(k, "heartbeat_interval_ms") == 0) {
        if (parse_u32(v, 50, 3600000, &c->heartbeat_interval_ms) != 0)
            goto bad;
    } else if (strcmp(k, "heartbeat_missed") == 0) {
        if (parse_u32(v, 1, 1000, &c->heartbeat_missed) != 0)
            goto bad;
    } else if (strcmp(k, "progress_events_per_s") == 0) {
        char *end;
        errno = 0;
        double d = strtod(v, &end);
        if (errno || end == v || *end || !(d > 0.0 && d <= 100.0))
            goto bad;
        c->progress_events_per_s = d;
    } else if (strcmp(k, "log_level") == 0) {
        if (strcmp(v, "debug") && strcmp(v, "info") && strcmp(v, "warn") && strcmp(v, "error"))
            goto bad;
        snprintf(c->log_level, sizeof(c->log_level), "%s", v);
    } else if (strcmp(k, "webhook") == 0) {
        if (parse_webhook(c, v) != 0)
            goto bad;
    } else if (strcmp(k, "webhook_max_tries") == 0) {
        if (parse_u32(v, 1, 100, &c->webhook_max_tries) != 0)
            goto bad;
    } else if (strcmp(k, "webhook_backoff_base_ms") == 0) {
        if (parse_u32(v, 10, 60000, &c->webhook_backoff_base_ms) != 0)
            goto bad;
    } else if (strcmp(k, "webhook_backoff_cap_ms") == 0) {
        if (parse_u32(v, 10, 86400000, &c->webhook_backoff_cap_ms) != 0)
            goto bad;
    } else if (strcmp(k, "consent_timeout_s") == 0) {
        if (parse_u32(v, 1, 7 * 86400, &c->consent_timeout_s) != 0)
            goto bad;
    } else if (strcmp(k, "consent_timeout_action") == 0) {
        if (strcmp(v, "wait") && strcmp(v, "proceed") && strcmp(v, "abort"))
            goto bad;
        snprintf(c->consent_timeout_action, sizeof(c->consent_timeout_action), "%s", v);
    } else if (strcmp(k, "sse_max_subscribers") == 0) {
        if (parse_u32(v, 1, 100000, &c->sse_max_subscribers) != 0)
            goto bad;
    } else if (strcmp(k, "read_threads") == 0) {
        if (parse_u32(v, 0, 64, &c->read_threads) != 0)
            goto bad;
    } else if (strcmp(k, "max_migrations") == 0) {
        if (parse_u32(v, 0, 4096, &c->max_migrations) != 0)
            goto bad;
    } else if (strcmp(k, "max_migrations_per_source") == 0) {
        if (parse_u32(v, 0, 64, &c->max_migrations_per_source) != 0)
            goto bad;
    } else if (strcmp(k, "max_migrations_per_destination") == 0) {
        if (parse_u32(v, 0, 64, &c->max_migrations_per_dest) != 0)
            goto bad;
    } else if (strcmp(k, "consent_timeout_max_s") == 0) {
        if (parse_u32(v, 1, 7 * 86400, &c->consent_timeout_max_s) != 0)
            goto bad;
    } else if (strcmp(k, "agent_token_file") == 0) {
        if (set_path(c->agent_token_file, sizeof(c->agent_token_file), v) != 0)
            goto bad;
    } else {
        return ferr_set(e, FERR_INVAL, k, "line %d: unknown key %s", line, k);
    }
    return 0;
bad:
    return ferr_set(e, FERR_INVAL, k, "line %d: bad value for %s", line, k);
}

int config_parse(struct config *c, const char *buf, size_t len, struct ferr *e)
{
    if (len > CONFIG_FILE_MAX)
        return ferr_set(e, FERR_TOOBIG, "", "config exceeds %d bytes", CONFIG_FILE_MAX);
    size_t pos = 0;
    int line = 0;
    while (pos < len) {
        line++;
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t l = nl ? (size_t)(nl - (buf + pos)) : len - pos;
        if (l >= CONFIG_LINE_MAX)
            return ferr_set(e, FERR_TOOBIG, "", "line %d exceeds %d bytes", line, CONFIG_LINE_MAX);
        char tmp[CONFIG_LINE_MAX];
        memcpy(tmp, buf + pos, l);
        tmp[l] = '\0';
        pos += l + (nl ? 1 : 0);
        if (memchr(tmp, '\0', l))
            return ferr_set(e, FERR_INVAL, "", "line %d holds a NUL byte", line);
        char *s = trim(tmp);
        if (!s[0] || s[0] == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq)
            return ferr_set(e, FERR_INVAL, "", "line %d: expected key = value", line);
        *eq = '\0';
        char *k = trim(s), *v = trim(eq + 1);
        int rc = apply(c, k, v, line, e);
        if (rc)
            return rc;
    }
    return 0;
}

int config_load(struct config *c, const char *path, struct ferr *e)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return ferr_set(e, -errno, "config", "cannot open %s: %s", path, strerror(errno));
    char *buf = xmalloc(CONFIG_FILE_MAX + 1);
    size_t n = fread(buf, 1, CONFIG_FILE_MAX + 1, f);
    int err = ferror(f);
    fclose(f);
    int rc = err ? ferr_set(e, -EIO, "config", "cannot read %s", path) : config_parse(c, buf, n, e);
    free(buf);
    return rc;
}
