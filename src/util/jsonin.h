/* jsonin — parsing and validating JSON that comes from outside (HTTP bodies,
 * spec files). Every entry point enforces hard caps (size, nesting depth)
 * and reports the offending field by name in a struct ferr. */
#ifndef FERRY_UTIL_JSONIN_H
#define FERRY_UTIL_JSONIN_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/ferr.h"

#define JSONIN_MAX_BYTES (1u << 20) /* 1 MiB: every request body */
#define JSONIN_MAX_DEPTH 16         /* nesting levels of arrays/objects */

/* Parses buf[0..len) as one JSON object. Fails with FERR_TOOBIG when len >
 * max_bytes or nesting exceeds max_depth, FERR_INVAL on malformed JSON or a
 * non-object top level (field "" or "body"). On success *out is a new
 * reference the caller releases with json_decref; on failure *out is NULL. */
int jsonin_parse_object(const char *buf, size_t len, size_t max_bytes, int max_depth,
                        json_t **out, struct ferr *e) __attribute__((warn_unused_result));

/* Returns the nesting depth of the JSON text buf[0..len) (strings skipped,
 * escapes honoured), or stops counting and returns limit+1 as soon as the
 * depth passes limit. Pure scan; never reads past len. */
int jsonin_depth(const char *buf, size_t len, int limit);

/* Fails with FERR_INVAL naming the first key of obj not in the
 * NULL-terminated list allowed. */
int jsonin_only_keys(const json_t *obj, const char *const *allowed, struct ferr *e)
    __attribute__((warn_unused_result));

/* Reads obj[key] as an integer in [min, max] into *out. When the key is
 * absent: fails with FERR_INVAL if required, else leaves *out untouched and
 * succeeds. A present key of the wrong type or out of range fails, naming
 * the key. */
int jsonin_u64(const json_t *obj, const char *key, uint64_t min, uint64_t max, bool required,
               uint64_t *out, struct ferr *e) __attribute__((warn_unused_result));

/* Reads obj[key] as a string of at most max_len bytes without NUL into a new
 * copy *out (caller frees; any previous *out is freed). Absent key: as for
 * jsonin_u64. */
int jsonin_str(const json_t *obj, const char *key, size_t max_len, bool required, char **out,
               struct ferr *e) __attribute__((warn_unused_result));

/* Reads obj[key] as a boolean into *out. Absent key: as for jsonin_u64. */
int jsonin_bool(const json_t *obj, const char *key, bool required, bool *out, struct ferr *e)
    __attribute__((warn_unused_result));

/* Returns true when s is a safe object name: 1..63 chars of [A-Za-z0-9_.-],
 * not starting with '.' or '-'. Names become file names, so this matters. */
bool jsonin_name_ok(const char *s);

#endif
