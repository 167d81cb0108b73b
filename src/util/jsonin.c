#include "util/jsonin.h"

#include <string.h>

#include "util/xalloc.h"

int jsonin_depth(const char *buf, size_t len, int limit)
{
    int depth = 0, max = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (in_str) {
            if (c == '\\')
                i++; /* skip the escaped byte; bound checked by the loop */
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            depth++;
            if (depth > max)
                max = depth;
            if (max > limit)
                return limit + 1;
        } else if (c == '}' || c == ']') {
            if (depth > 0)
                depth--;
        }
    }
    return max;
}

int jsonin_parse_object(const char *buf, size_t len, size_t max_bytes, int max_depth,
                        json_t **out, struct ferr *e)
{
    *out = NULL;
    if (len > max_bytes)
        return ferr_set(e, FERR_TOOBIG, "body", "body of %zu bytes exceeds the cap of %zu bytes",
                        len, max_bytes);
    if (len == 0)
        return ferr_set(e, FERR_INVAL, "body", "empty body: a JSON object is required");
    if (jsonin_depth(buf, len, max_depth) > max_depth)
        return ferr_set(e, FERR_TOOBIG, "body", "JSON nesting deeper than %d levels", max_depth);
    json_error_t jerr;
    json_t *v = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v)
        return ferr_set(e, FERR_INVAL, "body", "malformed JSON at line %d column %d: %s",
                        jerr.line, jerr.column, jerr.text);
    if (!json_is_object(v)) {
        json_decref(v);
        return ferr_set(e, FERR_INVAL, "body", "the body must be a JSON object");
    }
    *out = v;
    return 0;
}

int jsonin_only_keys(const json_t *obj, const char *const *allowed, struct ferr *e)
{
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val) {
        (void)val;
        bool ok = false;
        for (size_t i = 0; allowed[i]; i++) {
            if (strcmp(key, allowed[i]) == 0) {
                ok = true;
                break;
            }
        }
        if (!ok)
            return ferr_set(e, FERR_INVAL, key, "unknown field '%.48s'", key);
    }
    return 0;
}

int jsonin_u64(const json_t *obj, const char *key, uint64_t min, uint64_t max, bool required,
               uint64_t *out, struct ferr *e)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        if (required)
            return ferr_set(e, FERR_INVAL, key, "missing required field '%s'", key);
        return 0;
    }
    if (!json_is_integer(v))
        return ferr_set(e, FERR_INVAL, key, "'%s' must be an integer", key);
    json_int_t n = json_integer_value(v);
    if (n < 0 || (uint64_t)n < min || (uint64_t)n > max)
        return ferr_set(e, FERR_INVAL, key, "'%s' must be between %llu and %llu", key,
                        (unsigned long long)min, (unsigned long long)max);
    *out = (uint64_t)n;
    return 0;
}

int jsonin_str(const json_t *obj, const char *key, size_t max_len, bool required, char **out,
               struct ferr *e)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        if (required)
            return ferr_set(e, FERR_INVAL, key, "missing required field '%s'", key);
        return 0;
    }
    if (!json_is_string(v))
        return ferr_set(e, FERR_INVAL, key, "'%s' must be a string", key);
    size_t len = json_string_length(v);
    const char *s = json_string_value(v);
    if (len > max_len)
        return ferr_set(e, FERR_INVAL, key, "'%s' is longer than %zu bytes", key, max_len);
    if (memchr(s, '\0', len))
        return ferr_set(e, FERR_INVAL, key, "'%s' must not contain NUL", key);
    free(*out);
    *out = xstrndup(s, len);
    return 0;
}

int jsonin_bool(const json_t *obj, const char *key, bool required, bool *out, struct ferr *e)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        if (required)
            return ferr_set(e, FERR_INVAL, key, "missing required field '%s'", key);
        return 0;
    }
    if (!json_is_boolean(v))
        return ferr_set(e, FERR_INVAL, key, "'%s' must be true or false", key);
    *out = json_is_true(v);
    return 0;
}

bool jsonin_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || s[0] == '.' || s[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}
