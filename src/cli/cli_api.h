/* cli_api — what every ferry subcommand shares: one blocking JSON call to
 * an API (ferryd or an agent) that prints the error the way the CLI shows
 * it, query-string building, JSON printing and small time helpers. */
#ifndef FERRY_CLI_API_H
#define FERRY_CLI_API_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define CLI_TIMEOUT_MS 15000 /* ms: per API request */

/* Exit codes of the ferry command. */
enum {
    CLI_EXIT_OK = 0,    /* done */
    CLI_EXIT_FAIL = 1,  /* the API or the transport said no, or the operation failed */
    CLI_EXIT_USAGE = 2, /* bad command line */
};

/* Sends method path (with body, borrowed, may be NULL) to base with token
 * (may be NULL). Returns 0 and a new reference in *out (caller decrefs; an
 * empty reply gives an empty object) when the status is < 400. Otherwise
 * prints "ferry: HTTP 403: message (field x)" — or the transport failure
 * — to stderr, returns -1 and leaves *out NULL. *status_out (may be NULL)
 * receives the HTTP status, 0 on transport failure. */
int cli_api_call(const char *base, const char *token, const char *method, const char *path,
                 const json_t *body, json_t **out, int *status_out)
    __attribute__((warn_unused_result));

/* Appends "&key=value" (or "?key=value" when *path has no '?') to the
 * heap string *path, value percent-encoded (RFC 3986 unreserved kept).
 * Does nothing when value is NULL. *path is reallocated (caller frees). */
void cli_api_add_query(char **path, const char *key, const char *value);

/* Prints j to stdout as one line of compact JSON. */
void cli_api_print_json(const json_t *j);

/* Returns the integer member k of o (borrowed), or 0 when absent or not an
 * integer; a real number is truncated. */
long long cli_api_int(const json_t *o, const char *k);

/* Returns the string member k of o, or dflt when absent or not a string. */
const char *cli_api_str(const json_t *o, const char *k, const char *dflt);

/* Monotonic clock in ms. */
long long cli_api_mono_ms(void);

/* Sleeps ms milliseconds. */
void cli_api_sleep_ms(unsigned ms);

#endif
