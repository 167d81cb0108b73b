#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int min_level = -1;

void log_set_level(enum log_level lvl)
{
    min_level = (int)lvl;
}

static int level_from_env(void)
{
    const char *v = getenv("FERRY_LOG");
    if (v && strcmp(v, "debug") == 0)
        return LOG_DEBUG;
    if (v && strcmp(v, "warn") == 0)
        return LOG_WARN;
    if (v && strcmp(v, "error") == 0)
        return LOG_ERROR;
    return LOG_INFO;
}

void log_write(enum log_level lvl, const char *comp, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (min_level < 0)
        min_level = level_from_env();
    if ((int)lvl < min_level)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char line[2048];
    int n = snprintf(line, sizeof(line),
                     "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s comp=%s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L, names[lvl], comp);
    if (n < 0 || (size_t)n >= sizeof(line))
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}
