/* creds — where the ferry command finds ferryd and its bearer token.
 *
 * Precedence, highest first: the flags (--url, --token-file), the
 * environment (FERRY_URL, FERRY_TOKEN), the config file
 * ($XDG_CONFIG_HOME/ferry/config, else ~/.config/ferry/config: `url = ...`,
 * `token = ...` lines, `#` comments), then the default URL
 * http://127.0.0.1:7400 and no token. A file the token is taken from must
 * not be readable or writable by group or others (mode & 077 == 0), like
 * ssh's private keys: such a file is refused, never silently used. */
#ifndef FERRY_CLI_CREDS_H
#define FERRY_CLI_CREDS_H
#include <stddef.h>

#include "util/ferr.h"

#define CREDS_DEFAULT_URL "http://127.0.0.1:7400"
#define CREDS_FILE_MAX 65536 /* bytes: config or token file */
#define CREDS_TOKEN_MAX 256  /* bytes: a bearer token (ferryd's cap) */
#define CREDS_URL_MAX 255    /* bytes: a ferryd URL */

struct creds {
    char *url;   /* ferryd base URL, owned; never NULL after creds_resolve */
    char *token; /* bearer token, owned; NULL when none was found */
};

/* What creds_resolve looks at; every member may be NULL (absent). */
struct creds_in {
    const char *flag_url;        /* --url */
    const char *flag_token_file; /* --token-file: a file holding the token */
    const char *env_url;         /* FERRY_URL */
    const char *env_token;       /* FERRY_TOKEN */
    const char *config_path;     /* config file; a missing file is no error */
};

/* Resolves url and token from in by the precedence above into *out
 * (caller releases with creds_free). Returns 0, or a negative code with e
 * filled (bad config line, unreadable file, a token file readable by
 * others, over a cap); *out then holds nothing to free. */
int creds_resolve(const struct creds_in *in, struct creds *out, struct ferr *e)
    __attribute__((warn_unused_result));

/* Parses config text (NUL-terminated): sets *url and *token (new heap
 * strings, caller frees; left NULL when the key is absent). Unknown keys,
 * lines without '=', empty values and values over their caps are errors
 * naming the line; on error nothing is allocated. Pure. */
int creds_parse_config(const char *text, char **url, char **token, struct ferr *e)
    __attribute__((warn_unused_result));

/* Returns the config file path from the environment (XDG_CONFIG_HOME, else
 * HOME), a new heap string (caller frees), or NULL when neither is set. */
char *creds_config_path(void);

/* Releases what c owns; c may be reused. */
void creds_free(struct creds *c);

#endif
