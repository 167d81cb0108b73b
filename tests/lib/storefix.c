/* storefix (test helper) — see storefix.h. */
#include "storefix.h"

#include <stdlib.h>

#include "test.h"
#include "util/xalloc.h"

struct store *storefix_open(const char *dir, const char *leaf)
{
    char *p = xasprintf("%s/%s", dir, leaf);
    struct store *st = NULL;
    struct ferr e = {0};
    if (store_open(p, &st, &e) != 0)
        test__fail(__FILE__, __LINE__, "store_open", "%s", e.msg);
    free(p);
    return st;
}
