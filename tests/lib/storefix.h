/* storefix (test helper) — a fresh ferryd store (coord/store.h) in a
 * test's temporary directory, for the unit tests of the store. */
#ifndef FERRY_TESTS_STOREFIX_H
#define FERRY_TESTS_STOREFIX_H
#include "coord/store.h"

/* Opens (creating) the store dir/leaf. Returns it (caller closes with
 * store_close), or NULL after recording a failed check. */
struct store *storefix_open(const char *dir, const char *leaf);

#endif
