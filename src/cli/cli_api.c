/* cli_api — shared HTTP call and helpers of the ferry command. */
#include "cli/cli_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/ferr.h"
#include "util/httpc.h"
#include "util/xalloc.h"

int cli_api_call(const char *base, const char *token, const char *method, const char *path,
                 const json_t *body, json_t **out, int *status_out)
{
    struct ferr e = {0};
    int status = 0;
    json_t *reply = NULL;
    *out = NULL;
    if (status_out)
        *status_out = 0;
    if (httpc_json(base, method, path, body, token, CLI_TIMEOUT_MS, &status, &reply, &e) != 0) {
        fprintf(stderr, "ferry: %s %s%s: %s\n", method, base, path, e.msg);
        return -1;
    }
    if (status_out)
        *status_out = status;
    if (status >= 400) {
        const json_t *err = json_object_get(reply, "error");
        const char *msg = cli_api_str(err, "message", NULL);
        const char *field = cli_api_str(err, "field", NULL);
        if (!msg)
            msg = cli_api_str(err, "code", "error");
        fprintf(stderr, "ferry: HTTP %d: %s", status, msg);
        if (field && field[0])
            fprintf(stderr, " (field %s)", field);
        fputc('\n', stderr);
        json_decref(reply);
        return -1;
    }
    *out = reply ? reply : json_object();
    return 0;
}

void cli_api_add_query(char **path, const char *key, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    if (!value)
        return;
    size_t n = strlen(value);
    char *enc = xmalloc(n * 3 + 1), *w = enc;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)value[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            *w++ = (char)c;
        } else {
            *w++ = '%';
            *w++ = hex[c >> 4];
            *w++ = hex[c & 15];
        }
    }
    *w = '\0';
    char *p = xasprintf("%s%c%s=%s", *path, strchr(*path, '?') ? '&' : '?', key, enc);
    free(enc);
    free(*path);
    *path = p;
}

void cli_api_print_json(const json_t *j)
{
    char *t = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    printf("%s\n", t ? t : "null");
    free(t);
}

long long cli_api_int(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    if (json_is_integer(v))
        return (long long)json_integer_value(v);
    if (json_is_real(v)) {
        double d = json_real_value(v); /* NaN fails both tests */
        return d > -9.2e18 && d < 9.2e18 ? (long long)d : 0;
    }
    return 0;
}

const char *cli_api_str(const json_t *o, const char *k, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : dflt;
}

long long cli_api_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void cli_api_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}
