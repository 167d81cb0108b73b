/* auth — see auth.h. */
#include "coord/auth.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "util/jsonin.h"

static void hex(const unsigned char *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

void auth_hash(const char *token, char out[STORE_HASH_HEX + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(token, strlen(token), md, &len, EVP_sha256(), NULL);
    hex(md, 32, out);
}

int auth_token_new(char out[AUTH_TOKEN_LEN + 1], struct ferr *e)
{
    unsigned char b[AUTH_TOKEN_LEN / 2];
    if (RAND_bytes(b, (int)sizeof(b)) != 1)
        return ferr_set(e, -EIO, "", "no random bytes for a token");
    hex(b, sizeof(b), out);
    return 0;
}

int auth_token_create(struct store *st, const char *user, const char *project, const char *roles,
                      int64_t now_ms, char out[AUTH_TOKEN_LEN + 1], struct ferr *e)
{
    struct store_token t = {0};
    if (!jsonin_name_ok(user))
        return ferr_set(e, FERR_INVAL, "user", "user must be a name of [A-Za-z0-9_.-]");
    if (!jsonin_name_ok(project))
        return ferr_set(e, FERR_INVAL, "project", "project must be a name of [A-Za-z0-9_.-]");
    if (strlen(roles) > STORE_ROLES_MAX)
        return ferr_set(e, FERR_TOOBIG, "roles", "roles exceed %d bytes", STORE_ROLES_MAX);
    char buf[STORE_ROLES_MAX + 1];
    const char *list[AUTH_ROLES_MAX + 1];
    snprintf(buf, sizeof(buf), "%s", roles);
    size_t n = auth_split_roles(buf, list, AUTH_ROLES_MAX + 1);
    if (n > AUTH_ROLES_MAX)
        return ferr_set(e, FERR_TOOBIG, "roles", "more than %d roles", AUTH_ROLES_MAX);
    for (size_t i = 0; i < n; i++)
        if (!jsonin_name_ok(list[i]))
            return ferr_set(e, FERR_INVAL, "roles", "role %zu is not a name", i + 1);
    int rc = auth_token_new(out, e);
    if (rc)
        return rc;
    auth_hash(out, t.hash);
    snprintf(t.user, sizeof(t.user), "%s", user);
    snprintf(t.project, sizeof(t.project), "%s", project);
    snprintf(t.roles, sizeof(t.roles), "%s", roles);
    t.created_ms = now_ms;
    return store_token_add(st, &t, e);
}

int auth_lookup(struct store *st, const char *authorization, struct store_token *out,
                struct ferr *e)
{
    if (!authorization || strncmp(authorization, "Bearer ", 7) != 0)
        return ferr_set(e, FERR_NOTFOUND, "Authorization", "a bearer token is required");
    const char *t = authorization + 7;
    size_t len = strnlen(t, AUTH_TOKEN_MAX + 1);
    if (len == 0 || len > AUTH_TOKEN_MAX)
        return ferr_set(e, FERR_NOTFOUND, "Authorization", "malformed bearer token");
    char h[STORE_HASH_HEX + 1];
    auth_hash(t, h);
    return store_token_lookup(st, h, out, e);
}

size_t auth_split_roles(char *buf, const char **roles, size_t max)
{
    size_t n = 0;
    char *p = buf;
    while (*p && n < max) {
        char *c = strchr(p, ',');
        if (c)
            *c = '\0';
        if (*p)
            roles[n++] = p;
        if (!c)
            break;
        p = c + 1;
    }
    return n;
}
