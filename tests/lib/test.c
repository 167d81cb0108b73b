#include "test.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int case_failed;
static int case_skipped;
static char skip_reason[256];
static int total_failed;

void test__fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stdout, "  check failed at %s:%d: %s: %s\n", file, line, expr, msg);
    fflush(stdout);
    case_failed = 1;
}

void test_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(skip_reason, sizeof(skip_reason), fmt, ap);
    va_end(ap);
    case_skipped = 1;
}

void test_run(const char *name, test_fn fn)
{
    case_failed = 0;
    case_skipped = 0;
    skip_reason[0] = '\0';
    fn();
    if (case_failed) {
        fprintf(stdout, "FAIL %s\n", name);
        total_failed++;
    } else if (case_skipped) {
        fprintf(stdout, "SKIP %s: %s\n", name, skip_reason);
    } else {
        fprintf(stdout, "PASS %s\n", name);
    }
    fflush(stdout);
}

int test_done(void)
{
    return total_failed ? 1 : 0;
}

int test_is_root(void)
{
    return geteuid() == 0;
}

void test_rm_rf(const char *dir)
{
    char cmd[512];
    if ((size_t)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir) >= sizeof(cmd) || system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}
