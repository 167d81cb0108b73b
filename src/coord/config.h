/* config — ferryd's configuration file: plain `key = value` lines, `#`
 * comments, blank lines ignored. Every key has a default (config_defaults);
 * an unknown key, a bad value or an oversize line fails the load naming the
 * key and the line. docs/FERRYD.md and etc/ferryd.conf list the keys. */
#ifndef FERRY_COORD_CONFIG_H
#define FERRY_COORD_CONFIG_H
#include <stdint.h>

#include "util/ferr.h"

#define CONFIG_PATH_MAX 1024        /* bytes of one path value */
#define CONFIG_LINE_MAX 2048        /* bytes of one line */
#define CONFIG_FILE_MAX (64 * 1024) /* bytes of the whole file */
#define CONFIG_WEBHOOKS_MAX 8       /* webhook endpoints */
#define CONFIG_SECRET_MAX 128       /* bytes of a webhook secret */

/* One webhook endpoint: `webhook = URL SECRET [TYPE,TYPE...]`. */
struct config_webhook {
    char url[256];                      /* http://HOST:PORT/PATH */
    char secret[CONFIG_SECRET_MAX + 1]; /* HMAC-SHA256 key, 16..128 bytes */
    char types[256];                    /* "" = every type; else comma-separated
                                           types, a trailing '*' is a prefix */
};

struct config {
    char listen_addr[64];                       /* IPv4 literal, default 127.0.0.1 */
    int listen_port;                            /* default 7400 */
    char db_path[CONFIG_PATH_MAX];              /* store location, default ferryd.db */
    char policy_file[CONFIG_PATH_MAX];          /* "" = built-in defaults */
    char bootstrap_token_file[CONFIG_PATH_MAX]; /* "" = none; else an admin token */
    uint32_t heartbeat_interval_ms;             /* agents' heartbeat period, default 10000 */
    uint32_t heartbeat_missed;                  /* beats missed before down, default 3 */
    double progress_events_per_s;               /* per migration, default 1 */
    char log_level[16];                         /* debug, info, warn, error; default info */
    struct config_webhook webhooks[CONFIG_WEBHOOKS_MAX]; /* in file order */
    unsigned n_webhooks;                                 /* used entries */
    uint32_t webhook_max_tries;       /* attempts before a dead letter, default 8 */
    uint32_t webhook_backoff_base_ms; /* first retry delay, default 1000 */
    uint32_t webhook_backoff_cap_ms;  /* longest retry delay, default 300000 */
    uint32_t consent_timeout_s;       /* a consent request expires after, s; default 600 */
    char consent_timeout_action[16];  /* wait, proceed or abort; default wait */
    char agent_token_file[CONFIG_PATH_MAX]; /* "" = none; else the bearer token ferryd
                                               presents to every agent */
    uint32_t sse_max_subscribers; /* concurrent SSE streams, default 64 (1 … 100000) */
    uint32_t max_migrations;      /* in flight cluster-wide, default 8; 0 = no cap */
    uint32_t max_migrations_per_source; /* leaving one host at once, default 1; 0 = no cap */
    uint32_t max_migrations_per_dest;   /* arriving on one host at once, default 1; 0 = no cap */
    uint32_t consent_timeout_max_s; /* largest per-migration consent timeout, s; default 86400 */
    uint32_t read_threads;          /* threads answering reads beside the event loop,
                                       default 2 (0 … 64; 0 = the loop answers all) */
};

/* Fills c with every default. */
void config_defaults(struct config *c);

/* Applies the file at path over c (callers start from config_defaults).
 * On failure e names the key (field) and the line; c may be partly
 * applied, so the caller must not use it. */
int config_load(struct config *c, const char *path, struct ferr *e)
    __attribute__((warn_unused_result));

/* Applies the text buf[0..len) the same way (used by config_load; tests). */
int config_parse(struct config *c, const char *buf, size_t len, struct ferr *e)
    __attribute__((warn_unused_result));

#endif
