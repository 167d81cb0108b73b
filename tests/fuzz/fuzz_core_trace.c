/* libFuzzer target for the trace CSV parser: any input must parse or fail
 * cleanly; whatever parses must survive format → parse unchanged. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/trace.h"

#define ROWS 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct mig_sample rows[ROWS], again[ROWS];
    static char buf[ROWS * 400 + 1024];
    size_t n = 0;
    struct ferr e;
    if (trace_parse((const char *)data, size, rows, ROWS, &n, &e) != 0)
        return 0;
    size_t len = 0, w = 0;
    if (trace_format_header(buf, sizeof(buf), &w) != 0)
        abort();
    len = w;
    for (size_t i = 0; i < n; i++) {
        if (trace_format_row(&rows[i], buf + len, sizeof(buf) - len, &w) != 0)
            abort();
        len += w;
    }
    size_t m = 0;
    if (trace_parse(buf, len, again, ROWS, &m, &e) != 0 || m != n)
        abort();
    for (size_t i = 0; i < n; i++)
        if (memcmp(&rows[i], &again[i], sizeof(rows[i])) != 0)
            abort();
    return 0;
}
