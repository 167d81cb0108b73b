/* Unit: creds — config parsing from a table (keys, comments, spaces, bad
 * lines named, caps) and resolution precedence (flag > env > file >
 * default) with the file-mode rule: a token is never taken from a file that
 * group or others may read or write, while a world-readable config file
 * holding only a URL is fine. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/test.h"
#include "cli/creds.h"
#include "util/xalloc.h"

static void t_parse(void)
{
    static const struct {
        const char *text;
        int ok;
        const char *url, *token, *msg; /* expected, or a substring of the error */
    } T[] = {
        {"", 1, NULL, NULL, NULL},
        {"# only a comment\n\n", 1, NULL, NULL, NULL},
        {"url = http://a:1\ntoken = abc\n", 1, "http://a:1", "abc", NULL},
        {"  url=http://b:2  \r\n\ttoken\t=\tt2", 1, "http://b:2", "t2", NULL},
        {"url = http://a:1\nurl = http://c:3\n", 1, "http://c:3", NULL, NULL},
        {"url http://a:1\n", 0, NULL, NULL, "line 1"},
        {"# c\ncolour = blue\n", 0, NULL, NULL, "line 2: unknown key 'colour'"},
        {"token =\n", 0, NULL, NULL, "line 1: token wants"},
    };
    for (size_t i = 0; i < sizeof(T) / sizeof(T[0]); i++) {
        char *u = NULL, *t = NULL;
        struct ferr e = {0};
        int rc = creds_parse_config(T[i].text, &u, &t, &e);
        CHECK((rc == 0) == T[i].ok, "case %zu: rc %d (%s)", i, rc, e.msg);
        if (T[i].ok) {
            CHECK(T[i].url ? u && strcmp(u, T[i].url) == 0 : !u, "case %zu: url '%s'", i,
                  u ? u : "(none)");
            CHECK(T[i].token ? t && strcmp(t, T[i].token) == 0 : !t, "case %zu: token", i);
        } else {
            CHECK(!u && !t, "case %zu: allocated on error", i);
            CHECK(strstr(e.msg, T[i].msg), "case %zu: '%s' lacks '%s'", i, e.msg, T[i].msg);
        }
        free(u);
        free(t);
    }
    /* caps: a token of CREDS_TOKEN_MAX bytes passes, one more fails */
    char *big = xmalloc(CREDS_TOKEN_MAX + 16);
    memset(big, 'x', CREDS_TOKEN_MAX + 1);
    big[CREDS_TOKEN_MAX + 1] = '\0';
    char *text = xasprintf("token = %s\n", big);
    char *u = NULL, *t = NULL;
    struct ferr e = {0};
    CHECK(creds_parse_config(text, &u, &t, &e) == FERR_TOOBIG, "token over the cap accepted");
    free(text);
    big[CREDS_TOKEN_MAX] = '\0';
    text = xasprintf("token = %s\n", big);
    CHECK(creds_parse_config(text, &u, &t, &e) == 0 && t && strlen(t) == CREDS_TOKEN_MAX,
          "token at the cap refused");
    free(t);
    free(u);
    free(text);
    free(big);
}

static char dir[64];

static void put(const char *name, const char *text, mode_t mode, char *path, size_t n)
{
    snprintf(path, n, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
        ssize_t w = write(fd, text, strlen(text));
        (void)w;
        close(fd);
    }
    if (chmod(path, mode) != 0)
        path[0] = '\0';
}

static void t_resolve(void)
{
    char cfg[128], cfg_open[128], url_only[128], tokf[128], tokf_open[128];
    put("cfg", "url = http://file:1\ntoken = filetok\n", 0600, cfg, sizeof(cfg));
    put("cfg_open", "url = http://file:1\ntoken = filetok\n", 0644, cfg_open, sizeof(cfg_open));
    put("url_only", "url = http://file:2\n", 0644, url_only, sizeof(url_only));
    put("tok", "flagtok\nignored\n", 0600, tokf, sizeof(tokf));
    put("tok_open", "flagtok\n", 0604, tokf_open, sizeof(tokf_open));
    char missing[128];
    snprintf(missing, sizeof(missing), "%s/none", dir);
    static const struct {
        const char *what;
        struct creds_in in; /* paths patched below by index */
        int cfg_kind;       /* 0 none, 1 cfg, 2 cfg_open, 3 url_only, 4 missing */
        int tok_kind;       /* 0 none, 1 tok, 2 tok_open */
        int ok;
        const char *url, *token;
    } T[] = {
        {"nothing: default URL, no token", {0}, 4, 0, 1, CREDS_DEFAULT_URL, NULL},
        {"file only", {0}, 1, 0, 1, "http://file:1", "filetok"},
        {"env beats file",
         {NULL, NULL, "http://env:1", "envtok", NULL},
         1,
         0,
         1,
         "http://env:1",
         "envtok"},
        {"flags beat env",
         {"http://flag:1", NULL, "http://env:1", "envtok", NULL},
         1,
         1,
         1,
         "http://flag:1",
         "flagtok"},
        {"open config with a token refused", {0}, 2, 0, 0, NULL, NULL},
        {"open config not needed when env has both",
         {NULL, NULL, "http://env:1", "envtok", NULL},
         2,
         0,
         1,
         "http://env:1",
         "envtok"},
        {"open config holding only a url is fine", {0}, 3, 0, 1, "http://file:2", NULL},
        {"open token file refused", {0}, 0, 2, 0, NULL, NULL},
        {"missing token file refused", {0}, 0, 3, 0, NULL, NULL},
        {"bad url refused", {"ftp://x", NULL, NULL, NULL, NULL}, 0, 0, 0, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(T) / sizeof(T[0]); i++) {
        struct creds_in in = T[i].in;
        const char *cfgs[] = {NULL, cfg, cfg_open, url_only, missing};
        const char *toks[] = {NULL, tokf, tokf_open, missing};
        in.config_path = cfgs[T[i].cfg_kind];
        in.flag_token_file = toks[T[i].tok_kind];
        struct creds c = {0};
        struct ferr e = {0};
        int rc = creds_resolve(&in, &c, &e);
        CHECK((rc == 0) == T[i].ok, "%s: rc %d (%s)", T[i].what, rc, e.msg);
        if (rc == 0) {
            CHECK(c.url && strcmp(c.url, T[i].url) == 0, "%s: url '%s'", T[i].what, c.url);
            CHECK(T[i].token ? c.token && strcmp(c.token, T[i].token) == 0 : !c.token,
                  "%s: token '%s'", T[i].what, c.token ? c.token : "(none)");
        } else {
            CHECK(!c.url && !c.token, "%s: filled on error", T[i].what);
            CHECK(e.msg[0], "%s: no message", T[i].what);
        }
        creds_free(&c);
    }
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/ferry-creds-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    test_run("creds: config lines (keys, comments, spaces, bad lines named, caps)", t_parse);
    test_run("creds: flag > env > file > default; token never from a file others can read",
             t_resolve);
    test_rm_rf(dir);
    return test_done();
}
