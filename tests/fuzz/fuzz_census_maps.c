/* libFuzzer target for the census's /proc/PID/maps parser
 * (census_maps_pick): any input must be picked from or rejected cleanly;
 * a pick must be a mapping of an allowed length. The RAM size comes from
 * the first byte so both outcomes are reached.
 * fuzz-srcs: src/agent/census.c */
#include <stdint.h>
#include <stdlib.h>

#include "agent/census.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t ram = size ? (uint64_t)data[0] << 12 : 4096, start = 7, len = 9;
    int rc = census_maps_pick((const char *)data, size, ram, &start, &len);
    if (rc == 0 && (len < ram || len - ram > CENSUS_SLACK_BYTES))
        abort(); /* a pick is always within the allowed lengths */
    if (rc != 0 && (rc != FERR_NOTFOUND || start != 7 || len != 9))
        abort(); /* a rejection leaves the outputs alone */
    return 0;
}
