/* auth — ferryd's API tokens: generation, hashing (SHA-256, libcrypto) and
 * lookup of a request's bearer token. Tokens are stored only as hashes. */
#ifndef FERRY_COORD_AUTH_H
#define FERRY_COORD_AUTH_H
#include <stddef.h>

#include "coord/store.h"
#include "util/ferr.h"

#define AUTH_TOKEN_MAX 256 /* bytes of a presented token */
#define AUTH_TOKEN_LEN 64  /* chars of a generated token (32 random bytes, hex) */
#define AUTH_ROLES_MAX 16  /* roles one token may carry */

/* Writes the lower-case hex SHA-256 of token into out (65 bytes). */
void auth_hash(const char *token, char out[STORE_HASH_HEX + 1]);

/* Writes a new random token (AUTH_TOKEN_LEN hex chars) into out. Fails
 * with -EIO when the random source fails. */
int auth_token_new(char out[AUTH_TOKEN_LEN + 1], struct ferr *e)
    __attribute__((warn_unused_result));

/* Creates a token for user/project/roles (roles: comma-separated names of
 * [A-Za-z0-9_.-]) in st and writes it into out; only its hash is stored.
 * FERR_INVAL names the bad argument. */
int auth_token_create(struct store *st, const char *user, const char *project, const char *roles,
                      int64_t now_ms, char out[AUTH_TOKEN_LEN + 1], struct ferr *e)
    __attribute__((warn_unused_result));

/* Looks up the credentials of an Authorization header value (borrowed, may
 * be NULL). Returns 0 with *out filled, FERR_NOTFOUND when the header is
 * absent, malformed or the token unknown, other negatives on store errors. */
int auth_lookup(struct store *st, const char *authorization, struct store_token *out,
                struct ferr *e) __attribute__((warn_unused_result));

/* Splits a comma-separated role list into at most max pointers into buf
 * (a copy the caller provides, modified in place). Returns the count. */
size_t auth_split_roles(char *buf, const char **roles, size_t max);

#endif
