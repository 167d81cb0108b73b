/* creds — ferryd URL and token from flags, environment and config file. */
#include "cli/creds.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/xalloc.h"

/* Trims spaces and tabs at both ends of [*s, *end). */
static void trim(const char **s, const char **end)
{
    while (*s < *end && (**s == ' ' || **s == '\t'))
        (*s)++;
    while (*end > *s && ((*end)[-1] == ' ' || (*end)[-1] == '\t' || (*end)[-1] == '\r'))
        (*end)--;
}

int creds_parse_config(const char *text, char **url, char **token, struct ferr *e)
{
    char *u = NULL, *t = NULL;
    int lineno = 0, rc = 0;
    const char *p = text;
    *url = NULL;
    *token = NULL;
    while (*p) {
        const char *nl = strchr(p, '\n');
        const char *end = nl ? nl : p + strlen(p);
        const char *ls = p, *le = end;
        lineno++;
        p = nl ? nl + 1 : end;
        trim(&ls, &le);
        if (ls == le || *ls == '#')
            continue;
        const char *eq = memchr(ls, '=', (size_t)(le - ls));
        if (!eq) {
            rc = ferr_set(e, FERR_INVAL, "config", "line %d: expected 'key = value'", lineno);
            goto fail;
        }
        const char *ks = ls, *ke = eq, *vs = eq + 1, *ve = le;
        trim(&ks, &ke);
        trim(&vs, &ve);
        size_t klen = (size_t)(ke - ks), vlen = (size_t)(ve - vs);
        char **slot;
        size_t cap;
        if (klen == 3 && memcmp(ks, "url", 3) == 0) {
            slot = &u;
            cap = CREDS_URL_MAX;
        } else if (klen == 5 && memcmp(ks, "token", 5) == 0) {
            slot = &t;
            cap = CREDS_TOKEN_MAX;
        } else {
            rc = ferr_set(e, FERR_INVAL, "config", "line %d: unknown key '%.*s' (url, token)",
                          lineno, (int)(klen > 40 ? 40 : klen), ks);
            goto fail;
        }
        if (vlen == 0 || vlen > cap) {
            rc = ferr_set(e, vlen ? FERR_TOOBIG : FERR_INVAL, "config",
                          "line %d: %s wants 1 to %zu bytes", lineno, slot == &u ? "url" : "token",
                          cap);
            goto fail;
        }
        free(*slot);
        *slot = xstrndup(vs, vlen);
    }
    *url = u;
    *token = t;
    return 0;
fail:
    free(u);
    free(t);
    return rc;
}

/* Reads the whole file at path (≤ CREDS_FILE_MAX bytes) into *text (caller
 * frees) and its mode into *mode. A missing file gives -ENOENT without
 * filling e when missing_ok. */
static int read_file(const char *path, int missing_ok, char **text, mode_t *mode, struct ferr *e)
{
    *text = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        if (err == ENOENT && missing_ok)
            return -ENOENT;
        return ferr_set(e, -err, "config", "%s: %s", path, strerror(err));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ferr_set(e, FERR_INVAL, "config", "%s: not a regular file", path);
    }
    if (st.st_size > CREDS_FILE_MAX) {
        close(fd);
        return ferr_set(e, FERR_TOOBIG, "config", "%s: over %d bytes", path, CREDS_FILE_MAX);
    }
    char *buf = xmalloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    if (strlen(buf) != got) {
        free(buf);
        return ferr_set(e, FERR_INVAL, "config", "%s: holds a NUL byte", path);
    }
    *text = buf;
    *mode = st.st_mode;
    return 0;
}

/* Refuses a token kept in a file that group or others may read or write. */
static int check_private(const char *path, mode_t mode, struct ferr *e)
{
    if ((mode & 077) == 0)
        return 0;
    return ferr_set(e, FERR_INVAL, "config",
                    "%s holds a token but its mode is %04o: readable or writable by others; "
                    "run chmod 600 %s",
                    path, (unsigned)(mode & 07777), path);
}

int creds_resolve(const struct creds_in *in, struct creds *out, struct ferr *e)
{
    char *furl = NULL, *ftok = NULL;
    out->url = NULL;
    out->token = NULL;
    /* the config file matters only for what flags and environment leave open */
    int need_url = !(in->flag_url && in->flag_url[0]) && !(in->env_url && in->env_url[0]);
    int need_tok =
        !(in->flag_token_file && in->flag_token_file[0]) && !(in->env_token && in->env_token[0]);
    if ((need_url || need_tok) && in->config_path) {
        char *text = NULL;
        mode_t mode = 0;
        int rc = read_file(in->config_path, 1, &text, &mode, e);
        if (rc == 0) {
            rc = creds_parse_config(text, &furl, &ftok, e);
            free(text);
            if (rc != 0) {
                /* name the file in the message */
                char msg[FERR_MSG_MAX];
                snprintf(msg, sizeof(msg), "%s", e->msg);
                return ferr_set(e, rc, "config", "%s: %s", in->config_path, msg);
            }
            if (ftok && need_tok && (rc = check_private(in->config_path, mode, e)) != 0) {
                free(furl);
                free(ftok);
                return rc;
            }
        } else if (rc != -ENOENT) {
            return rc;
        }
    }
    const char *url = in->flag_url && in->flag_url[0] ? in->flag_url
                      : in->env_url && in->env_url[0] ? in->env_url
                      : furl                          ? furl
                                                      : CREDS_DEFAULT_URL;
    if (strlen(url) > CREDS_URL_MAX ||
        (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)) {
        free(furl);
        free(ftok);
        return ferr_set(e, FERR_INVAL, "url", "ferryd URL must be http(s)://HOST:PORT, ≤ %d bytes",
                        CREDS_URL_MAX);
    }
    char *tok = NULL;
    if (in->flag_token_file && in->flag_token_file[0]) {
        char *text = NULL;
        mode_t mode = 0;
        int rc = read_file(in->flag_token_file, 0, &text, &mode, e);
        if (rc == 0)
            rc = check_private(in->flag_token_file, mode, e);
        if (rc != 0) {
            free(text);
            free(furl);
            free(ftok);
            return rc;
        }
        const char *s = text, *end = text + strcspn(text, "\r\n");
        trim(&s, &end);
        if (end == s || (size_t)(end - s) > CREDS_TOKEN_MAX) {
            free(text);
            free(furl);
            free(ftok);
            return ferr_set(e, FERR_INVAL, "token",
                            "%s: the first line must hold a token of 1 to %d bytes",
                            in->flag_token_file, CREDS_TOKEN_MAX);
        }
        tok = xstrndup(s, (size_t)(end - s));
        free(text);
    } else if (in->env_token && in->env_token[0]) {
        if (strlen(in->env_token) > CREDS_TOKEN_MAX) {
            free(furl);
            free(ftok);
            return ferr_set(e, FERR_TOOBIG, "token", "FERRY_TOKEN is over %d bytes",
                            CREDS_TOKEN_MAX);
        }
        tok = xstrdup(in->env_token);
    } else if (ftok) {
        tok = ftok;
        ftok = NULL;
    }
    out->url = xstrdup(url);
    out->token = tok;
    free(furl);
    free(ftok);
    return 0;
}

char *creds_config_path(void)
{
    const char *x = getenv("XDG_CONFIG_HOME");
    if (x && x[0] == '/')
        return xasprintf("%s/ferry/config", x);
    const char *h = getenv("HOME");
    if (h && h[0])
        return xasprintf("%s/.config/ferry/config", h);
    return NULL;
}

void creds_free(struct creds *c)
{
    free(c->url);
    free(c->token);
    c->url = NULL;
    c->token = NULL;
}
