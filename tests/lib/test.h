/* test — the project's minimal test harness. A test binary calls
 * test_run() for each case; each case reports PASS, FAIL or SKIP on its own
 * line, which tests/run.sh counts. A case fails when any CHECK fails.
 *
 *   static void t_parse(void) { CHECK(x == 1, "x was %d", x); }
 *   int main(void) { test_run("parse: one line", t_parse); return test_done(); }
 */
#ifndef FERRY_TEST_H
#define FERRY_TEST_H
#include <stdio.h>

typedef void (*test_fn)(void);

/* Runs fn as a case named name and prints its verdict. */
void test_run(const char *name, test_fn fn);
/* Marks the running case skipped with reason (call, then return). */
void test_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Records a failed check (used by CHECK). */
void test__fail(const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Returns the process exit code: 0 when no case failed. */
int test_done(void);
/* Returns non-zero when the process runs as root. */
int test_is_root(void);
/* Removes dir and everything below it (rm -rf); says so on stderr when
 * it cannot. */
void test_rm_rf(const char *dir);

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond))                                                          \
            test__fail(__FILE__, __LINE__, #cond, __VA_ARGS__);               \
    } while (0)

/* Like CHECK but leaves the case at once when it fails. */
#define REQUIRE(cond, ...)                                                    \
    do {                                                                      \
        if (!(cond)) {                                                        \
            test__fail(__FILE__, __LINE__, #cond, __VA_ARGS__);               \
            return;                                                           \
        }                                                                     \
    } while (0)

#endif
