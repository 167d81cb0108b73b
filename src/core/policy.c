/* policy — rule parser and evaluator. See policy.h for the language.
 *
 * Each rule is compiled once, at load, into a small tree of nodes kept in
 * one array per rule (n-ary and/or, children linked through `next`); check
 * operands stay as (offset, length) slices of the rule's own copy of its
 * text. rule:NAME references are resolved to rule indexes after every rule
 * is parsed, then a depth-first walk rejects cycles and chains deeper than
 * POLICY_MAX_REF_DEPTH. policy_check memoises each rule's verdict for the
 * call, so a rule reachable many times is evaluated once. */
#include "core/policy.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/jsonin.h"
#include "util/xalloc.h"

#define NONE UINT32_MAX

enum node_kind {
    N_TRUE = 0, /* '@' */
    N_FALSE,    /* '!' */
    N_AND,      /* children: first .. next */
    N_OR,
    N_NOT,     /* one child */
    N_ROLE,    /* role:MATCH */
    N_RULE,    /* rule:NAME; ref = rule index once resolved */
    N_SUBJECT, /* KEY:MATCH; key = subject key */
    N_LITERAL, /* 'LIT':MATCH; a_off/a_len = LIT */
};

enum subj_key { SK_USER_ID = 0, SK_PROJECT_ID };

struct node {
    uint8_t kind;          /* enum node_kind */
    uint8_t key;           /* enum subj_key for N_SUBJECT */
    uint32_t first;        /* first child (and/or/not), NONE otherwise */
    uint32_t next;         /* next sibling, NONE for the last */
    uint32_t ref;          /* N_RULE: referenced rule index */
    uint32_t a_off, a_len; /* N_RULE: name; N_LITERAL: literal (bytes of text) */
    uint32_t m_off, m_len; /* match template (bytes of text) */
    uint32_t col;          /* 1-based column of the check, for errors */
};

struct policy__rule {
    char *name;
    char *text;
    struct node *nodes;
    uint32_t nnodes;
    uint32_t root;
    bool is_default;
};

/* ---- built-in defaults ---------------------------------------------------- */

static const struct {
    const char *name, *text, *desc;
} defaults[] = {
    {"admin", "role:admin", "Alias: a cloud administrator, whatever the project."},
    {"owner", "project_id:%(target.project_id)s",
     "Alias: the subject is a member of the project that owns the target."},
    {"admin_or_owner", "rule:admin or rule:owner", "Alias: an administrator or an owner."},
    {"migration_canceller", "role:migration_canceller",
     "Alias: the role a project member needs to cancel a migration."},
    {"migration:create", "rule:admin", "Start a migration (POST /v1/migrations)."},
    {"migration:list", "rule:admin_or_owner",
     "List migrations; checked per record, records that fail are left out."},
    {"migration:show", "rule:admin_or_owner",
     "Show one migration with progress and ETA; 404 when denied."},
    {"migration:show_hosts", "rule:admin",
     "See source and destination host names in migrations and their events."},
    {"migration:cancel", "rule:admin or (rule:migration_canceller and rule:owner)",
     "Cancel a migration (for a maintenance plan: defer it)."},
    {"migration:force_complete", "rule:admin", "Force a running migration to complete."},
    {"migration:update_limits", "rule:admin",
     "Change bandwidth and downtime limits of a running migration."},
    {"consent:list", "rule:admin_or_owner", "List consent requests; checked per request."},
    {"consent:show", "rule:admin_or_owner", "Show one consent request."},
    {"consent:grant", "rule:owner",
     "Answer (grant or refuse) a consent request as a member of the owning project."},
    {"consent:grant_on_behalf", "rule:admin",
     "Answer a consent request for the owner; recorded as on behalf."},
    {"plan:create", "rule:admin", "Create a maintenance plan."},
    {"plan:list", "rule:admin", "List maintenance plans."},
    {"plan:show", "rule:admin", "Show a maintenance plan."},
    {"plan:update", "rule:admin", "Change a maintenance plan."},
    {"plan:delete", "rule:admin", "Delete a maintenance plan."},
    {"plan:start", "rule:admin", "Start a maintenance plan."},
    {"plan:pause", "rule:admin", "Pause a maintenance plan."},
    {"plan:resume", "rule:admin", "Resume a paused maintenance plan."},
    {"plan:abort", "rule:admin", "Abort a maintenance plan."},
    {"host:list", "rule:admin", "List hosts."},
    {"host:cordon", "rule:admin", "Cordon a host: no migration chooses it as destination."},
    {"host:uncordon", "rule:admin", "Lift an operator's cordon of a host."},
    {"host:show", "rule:admin", "Show one host."},
    {"instance:list", "rule:admin_or_owner", "List instances; checked per instance."},
    {"instance:show", "rule:admin_or_owner", "Show one instance."},
    {"events:read", "rule:admin_or_owner",
     "Receive an event (SSE, webhook); checked per event against its object."},
    {"policy:show", "rule:admin", "Read the effective policy."},
};

#define NDEFAULTS (sizeof(defaults) / sizeof(defaults[0]))
_Static_assert(NDEFAULTS <= POLICY_MAX_DEFAULTS, "raise POLICY_MAX_DEFAULTS");

#define MAX_TOTAL (POLICY_MAX_RULES + POLICY_MAX_DEFAULTS)

size_t policy_default_count(void)
{
    return NDEFAULTS;
}

int policy_default_at(size_t i, const char **name, const char **text, const char **description)
{
    if (i >= NDEFAULTS)
        return FERR_NOTFOUND;
    *name = defaults[i].name;
    *text = defaults[i].text;
    *description = defaults[i].desc;
    return 0;
}

/* ---- tokeniser ------------------------------------------------------------ */

enum tok_kind { T_LPAREN, T_RPAREN, T_AND, T_OR, T_NOT, T_CHECK, T_END };

struct tok {
    uint8_t kind;
    uint32_t off, len; /* bytes of the rule text */
};

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool word_is(const char *s, size_t len, const char *kw)
{
    size_t n = strlen(kw);
    if (len != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != kw[i])
            return false;
    }
    return true;
}

/* Splits text[0..len) into tokens, like oslo.policy: words separated by
 * whitespace, each word's leading '(' and trailing ')' split off as
 * parentheses. toks has room for len + 1 entries (a token is at least one
 * byte, plus T_END). Returns the token count including T_END. */
static size_t tokenise(const char *text, size_t len, struct tok *toks)
{
    size_t n = 0, i = 0;
    while (i < len) {
        if (is_ws(text[i])) {
            i++;
            continue;
        }
        size_t start = i;
        while (i < len && !is_ws(text[i]))
            i++;
        size_t end = i;
        while (start < end && text[start] == '(') {
            toks[n++] = (struct tok){T_LPAREN, (uint32_t)start, 1};
            start++;
        }
        size_t close = end;
        while (close > start && text[close - 1] == ')')
            close--;
        if (close > start) {
            const char *w = text + start;
            size_t wl = close - start;
            uint8_t k = T_CHECK;
            if (word_is(w, wl, "and"))
                k = T_AND;
            else if (word_is(w, wl, "or"))
                k = T_OR;
            else if (word_is(w, wl, "not"))
                k = T_NOT;
            toks[n++] = (struct tok){k, (uint32_t)start, (uint32_t)wl};
        }
        for (size_t j = close; j < end; j++)
            toks[n++] = (struct tok){T_RPAREN, (uint32_t)j, 1};
    }
    toks[n++] = (struct tok){T_END, (uint32_t)len, 0};
    return n;
}

/* ---- parser --------------------------------------------------------------- */

struct parser {
    const char *name; /* rule name, for errors */
    const char *text;
    const struct tok *toks;
    size_t ntoks, pos;
    struct node *nodes;
    uint32_t nnodes, cap;
    int depth;
    struct ferr *e;
};

static uint32_t new_node(struct parser *ps, uint8_t kind, uint32_t col)
{
    if (ps->nnodes == ps->cap) {
        ps->cap = ps->cap ? ps->cap * 2 : 8;
        ps->nodes = xrealloc(ps->nodes, ps->cap * sizeof(*ps->nodes));
    }
    struct node *n = &ps->nodes[ps->nnodes];
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    n->first = NONE;
    n->next = NONE;
    n->ref = NONE;
    n->col = col;
    return ps->nnodes++;
}

static const char *tok_desc(const struct tok *t)
{
    switch (t->kind) {
    case T_LPAREN:
        return "'('";
    case T_RPAREN:
        return "')'";
    case T_AND:
        return "'and'";
    case T_OR:
        return "'or'";
    case T_NOT:
        return "'not'";
    case T_CHECK:
        return "a check";
    default:
        return "the end of the rule";
    }
}

static int perr(struct parser *ps, int code, uint32_t off, const char *what)
{
    return ferr_set(ps->e, code, ps->name, "rule '%s': column %u: %s", ps->name, off + 1, what);
}

/* Validates a match template text[off..off+len): literal bytes, %% and
 * %(NAME)s with NAME of [A-Za-z0-9_.-]+. */
static int check_template(struct parser *ps, uint32_t off, uint32_t len)
{
    const char *s = ps->text + off;
    if (len == 0)
        return perr(ps, FERR_INVAL, off, "empty match after ':'");
    for (uint32_t i = 0; i < len; i++) {
        if (s[i] != '%')
            continue;
        if (i + 1 < len && s[i + 1] == '%') {
            i++;
            continue;
        }
        if (i + 1 >= len || s[i + 1] != '(')
            return perr(ps, FERR_INVAL, off + i, "'%' must start '%(target.KEY)s' or be '%%'");
        uint32_t j = i + 2, k = j;
        while (k < len && s[k] != ')') {
            char c = s[k];
            bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '.' || c == '-';
            if (!ok)
                return perr(ps, FERR_INVAL, off + k, "bad character in a '%(KEY)s' placeholder");
            k++;
        }
        if (k >= len || k == j || k + 1 >= len || s[k + 1] != 's')
            return perr(ps, FERR_INVAL, off + i,
                        "unterminated placeholder: write '%(target.KEY)s'");
        if (k - j == 7 && memcmp(s + j, "target.", 7) == 0)
            return perr(ps, FERR_INVAL, off + i, "empty key in '%(target.)s'");
        i = k + 1;
    }
    return 0;
}

static bool name_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-' || c == ':' || c == '*';
}

static bool name_ok(const char *s, size_t len)
{
    if (len == 0 || len > POLICY_MAX_NAME_BYTES)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!name_char_ok(s[i]))
            return false;
    return true;
}

static int parse_check(struct parser *ps, const struct tok *t, uint32_t *out)
{
    const char *w = ps->text + t->off;
    uint32_t len = t->len;
    if (len == 1 && w[0] == '@') {
        *out = new_node(ps, N_TRUE, t->off + 1);
        return 0;
    }
    if (len == 1 && w[0] == '!') {
        *out = new_node(ps, N_FALSE, t->off + 1);
        return 0;
    }
    /* A quoted literal kind may itself contain ':'; find the colon after it. */
    uint32_t colon;
    if (w[0] == '\'' || w[0] == '"') {
        uint32_t q = 1;
        while (q < len && w[q] != w[0])
            q++;
        if (q >= len)
            return perr(ps, FERR_INVAL, t->off, "unterminated quoted literal");
        if (q + 1 >= len || w[q + 1] != ':')
            return perr(ps, FERR_INVAL, t->off + q + 1, "expected ':' after the quoted literal");
        colon = q + 1;
    } else {
        colon = 0;
        while (colon < len && w[colon] != ':')
            colon++;
        if (colon >= len)
            return perr(ps, FERR_INVAL, t->off, "not a check: expected KIND:MATCH, '@' or '!'");
    }
    uint32_t m_off = t->off + colon + 1, m_len = len - colon - 1;
    uint32_t n;
    if (w[0] == '\'' || w[0] == '"') {
        n = new_node(ps, N_LITERAL, t->off + 1);
        ps->nodes[n].a_off = t->off + 1;
        ps->nodes[n].a_len = colon - 2;
    } else if (colon == 4 && memcmp(w, "rule", 4) == 0) {
        if (!name_ok(w + 5, m_len))
            return perr(ps, FERR_INVAL, m_off, "bad rule name after 'rule:'");
        n = new_node(ps, N_RULE, t->off + 1);
        ps->nodes[n].a_off = m_off;
        ps->nodes[n].a_len = m_len;
        *out = n;
        return 0;
    } else if (colon == 4 && memcmp(w, "role", 4) == 0) {
        n = new_node(ps, N_ROLE, t->off + 1);
    } else if (colon == 7 && memcmp(w, "user_id", 7) == 0) {
        n = new_node(ps, N_SUBJECT, t->off + 1);
        ps->nodes[n].key = SK_USER_ID;
    } else if (colon == 10 && memcmp(w, "project_id", 10) == 0) {
        n = new_node(ps, N_SUBJECT, t->off + 1);
        ps->nodes[n].key = SK_PROJECT_ID;
    } else {
        return perr(ps, FERR_INVAL, t->off,
                    "unknown check kind: use rule:, role:, user_id:, project_id:, "
                    "'literal': or @ / !");
    }
    int rc = check_template(ps, m_off, m_len);
    if (rc)
        return rc;
    ps->nodes[n].m_off = m_off;
    ps->nodes[n].m_len = m_len;
    *out = n;
    return 0;
}

static int parse_or(struct parser *ps, uint32_t *out);

static int parse_unary(struct parser *ps, uint32_t *out)
{
    const struct tok *t = &ps->toks[ps->pos];
    if (t->kind == T_NOT || t->kind == T_LPAREN) {
        if (++ps->depth > POLICY_MAX_DEPTH)
            return perr(ps, FERR_TOOBIG, t->off, "nesting deeper than 32 levels");
        ps->pos++;
        int rc;
        if (t->kind == T_NOT) {
            uint32_t child;
            rc = parse_unary(ps, &child);
            if (rc)
                return rc;
            uint32_t n = new_node(ps, N_NOT, t->off + 1);
            ps->nodes[n].first = child;
            *out = n;
        } else {
            rc = parse_or(ps, out);
            if (rc)
                return rc;
            const struct tok *c = &ps->toks[ps->pos];
            if (c->kind != T_RPAREN) {
                char msg[96];
                snprintf(msg, sizeof(msg), "expected ')' for the '(' at column %u, found %s",
                         t->off + 1, tok_desc(c));
                return perr(ps, FERR_INVAL, c->off, msg);
            }
            ps->pos++;
        }
        ps->depth--;
        return 0;
    }
    if (t->kind == T_CHECK) {
        ps->pos++;
        return parse_check(ps, t, out);
    }
    char msg[64];
    snprintf(msg, sizeof(msg), "expected a check, found %s", tok_desc(t));
    return perr(ps, FERR_INVAL, t->off, msg);
}

/* Parses `sub (op sub)*` into one n-ary node of kind (or the lone sub). */
static int parse_list(struct parser *ps, uint8_t op_tok, uint8_t kind,
                      int (*sub)(struct parser *, uint32_t *), uint32_t *out)
{
    uint32_t first;
    int rc = sub(ps, &first);
    if (rc)
        return rc;
    if (ps->toks[ps->pos].kind != op_tok) {
        *out = first;
        return 0;
    }
    uint32_t n = new_node(ps, kind, ps->toks[ps->pos].off + 1);
    ps->nodes[n].first = first;
    uint32_t last = first;
    while (ps->toks[ps->pos].kind == op_tok) {
        ps->pos++;
        uint32_t next;
        rc = sub(ps, &next);
        if (rc)
            return rc;
        ps->nodes[last].next = next;
        last = next;
    }
    *out = n;
    return 0;
}

static int parse_and(struct parser *ps, uint32_t *out)
{
    return parse_list(ps, T_AND, N_AND, parse_unary, out);
}

static int parse_or(struct parser *ps, uint32_t *out)
{
    return parse_list(ps, T_OR, N_OR, parse_and, out);
}

/* Compiles r->text (r->name set) into r->nodes / r->root. */
static int compile_rule(struct policy__rule *r, struct ferr *e)
{
    size_t len = strlen(r->text);
    if (len > POLICY_MAX_RULE_BYTES)
        return ferr_set(e, FERR_TOOBIG, r->name, "rule '%s': %zu bytes exceeds the cap of %d",
                        r->name, len, POLICY_MAX_RULE_BYTES);
    struct tok *toks = xcalloc(len + 1, sizeof(*toks));
    struct parser ps = {.name = r->name, .text = r->text, .toks = toks, .e = e};
    ps.ntoks = tokenise(r->text, len, toks);
    int rc;
    if (ps.ntoks == 1) {
        rc = ferr_set(e, FERR_INVAL, r->name,
                      "rule '%s': column 1: empty rule (write '@' to allow all, '!' to deny all)",
                      r->name);
    } else {
        rc = parse_or(&ps, &r->root);
        if (rc == 0 && toks[ps.pos].kind != T_END) {
            const struct tok *t = &toks[ps.pos];
            char msg[80];
            snprintf(msg, sizeof(msg), "unexpected %s: expected 'and', 'or' or the end",
                     tok_desc(t));
            rc = perr(&ps, FERR_INVAL, t->off, msg);
        }
    }
    free(toks);
    if (rc) {
        free(ps.nodes);
        return rc;
    }
    r->nodes = ps.nodes;
    r->nnodes = ps.nnodes;
    return 0;
}

/* ---- load ----------------------------------------------------------------- */

static int rule_cmp(const void *a, const void *b)
{
    return strcmp(((const struct policy__rule *)a)->name, ((const struct policy__rule *)b)->name);
}

static long find_rule(const struct policy__rule *rules, size_t n, const char *name, size_t len)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *m = rules[mid].name;
        int c = strncmp(m, name, len);
        if (c == 0 && m[len] != '\0')
            c = 1;
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* Walks references from rule i: colour 0 unvisited, 1 on the path, 2 done.
 * height[i] is the longest reference chain below i. path holds the names
 * on the current path for the cycle message. */
static int walk_refs(struct policy *p, size_t i, uint8_t *colour, uint8_t *height, uint32_t *path,
                     size_t plen, struct ferr *e)
{
    struct policy__rule *r = &p->rules[i];
    colour[i] = 1;
    path[plen++] = (uint32_t)i;
    uint8_t h = 0;
    for (uint32_t k = 0; k < r->nnodes; k++) {
        const struct node *n = &r->nodes[k];
        if (n->kind != N_RULE)
            continue;
        size_t j = n->ref;
        if (colour[j] == 1) {
            char chain[FERR_MSG_MAX];
            size_t at = 0, from = 0;
            while (path[from] != j)
                from++;
            for (size_t q = from; q < plen && at < sizeof(chain); q++) {
                int w = snprintf(chain + at, sizeof(chain) - at, "%s -> ", p->rules[path[q]].name);
                if (w < 0)
                    break;
                at += (size_t)w;
            }
            return ferr_set(e, FERR_INVAL, r->name, "rule '%s': column %u: reference cycle %s%s",
                            r->name, n->col, chain, p->rules[j].name);
        }
        if (colour[j] == 0) {
            if (plen > POLICY_MAX_REF_DEPTH)
                return ferr_set(e, FERR_TOOBIG, r->name,
                                "rule '%s': column %u: rule references nested deeper than %d",
                                r->name, n->col, POLICY_MAX_REF_DEPTH);
            int rc = walk_refs(p, j, colour, height, path, plen, e);
            if (rc)
                return rc;
        }
        if (height[j] + 1 > h)
            h = (uint8_t)(height[j] + 1);
        if (h > POLICY_MAX_REF_DEPTH)
            return ferr_set(e, FERR_TOOBIG, r->name,
                            "rule '%s': column %u: rule references nested deeper than %d", r->name,
                            n->col, POLICY_MAX_REF_DEPTH);
    }
    height[i] = h;
    colour[i] = 2;
    return 0;
}

/* Resolves every rule:NAME, then rejects cycles and over-deep chains. */
static int link_rules(struct policy *p, struct ferr *e)
{
    for (size_t i = 0; i < p->nrules; i++) {
        struct policy__rule *r = &p->rules[i];
        for (uint32_t k = 0; k < r->nnodes; k++) {
            struct node *n = &r->nodes[k];
            if (n->kind != N_RULE)
                continue;
            long j = find_rule(p->rules, p->nrules, r->text + n->a_off, n->a_len);
            if (j < 0)
                return ferr_set(e, FERR_INVAL, r->name,
                                "rule '%s': column %u: undefined rule '%.*s'", r->name, n->col,
                                (int)n->a_len, r->text + n->a_off);
            n->ref = (uint32_t)j;
        }
    }
    uint8_t colour[MAX_TOTAL] = {0}, height[MAX_TOTAL] = {0};
    uint32_t path[POLICY_MAX_REF_DEPTH + 2];
    for (size_t i = 0; i < p->nrules; i++) {
        if (colour[i] != 0)
            continue;
        int rc = walk_refs(p, i, colour, height, path, 0, e);
        if (rc)
            return rc;
    }
    return 0;
}

static void add_rule(struct policy *p, const char *name, const char *text, bool is_default)
{
    struct policy__rule *r = &p->rules[p->nrules++];
    memset(r, 0, sizeof(*r));
    r->name = xstrdup(name);
    r->text = xstrdup(text);
    r->is_default = is_default;
}

int policy_load(struct policy *p, const char *json_text, size_t len, struct ferr *e)
{
    p->rules = xcalloc(MAX_TOTAL, sizeof(*p->rules));
    p->nrules = 0;
    json_t *obj = NULL;
    int rc = 0;
    if (json_text) {
        if (len > POLICY_MAX_FILE_BYTES) {
            rc = ferr_set(e, FERR_TOOBIG, "", "policy file of %zu bytes exceeds the cap of %u", len,
                          POLICY_MAX_FILE_BYTES);
            goto fail;
        }
        rc = jsonin_parse_object(json_text, len, POLICY_MAX_FILE_BYTES, 4, &obj, e);
        if (rc)
            goto fail;
        if (json_object_size(obj) > POLICY_MAX_RULES) {
            rc = ferr_set(e, FERR_TOOBIG, "", "policy file has %zu rules, the cap is %d",
                          json_object_size(obj), POLICY_MAX_RULES);
            goto fail;
        }
        const char *key;
        json_t *val;
        json_object_foreach(obj, key, val)
        {
            if (!name_ok(key, strlen(key))) {
                rc = ferr_set(e, FERR_INVAL, "",
                              "rule name '%.64s' must be 1..%d characters of "
                              "[A-Za-z0-9_.:*-]",
                              key, POLICY_MAX_NAME_BYTES);
                goto fail;
            }
            if (!json_is_string(val)) {
                rc = ferr_set(e, FERR_INVAL, key, "rule '%s': the rule must be a JSON string", key);
                goto fail;
            }
            if (json_string_length(val) > POLICY_MAX_RULE_BYTES) {
                rc = ferr_set(e, FERR_TOOBIG, key, "rule '%s': %zu bytes exceeds the cap of %d",
                              key, json_string_length(val), POLICY_MAX_RULE_BYTES);
                goto fail;
            }
            add_rule(p, key, json_string_value(val), false);
        }
    }
    size_t nfile = p->nrules;
    qsort(p->rules, nfile, sizeof(*p->rules), rule_cmp);
    for (size_t i = 0; i < NDEFAULTS; i++)
        if (find_rule(p->rules, nfile, defaults[i].name, strlen(defaults[i].name)) < 0)
            add_rule(p, defaults[i].name, defaults[i].text, true);
    qsort(p->rules, p->nrules, sizeof(*p->rules), rule_cmp);
    for (size_t i = 0; i < p->nrules; i++) {
        rc = compile_rule(&p->rules[i], e);
        if (rc)
            goto fail;
    }
    rc = link_rules(p, e);
    if (rc)
        goto fail;
    json_decref(obj);
    return 0;
fail:
    json_decref(obj);
    policy_free(p);
    return rc;
}

void policy_free(struct policy *p)
{
    for (size_t i = 0; i < p->nrules; i++) {
        free(p->rules[i].name);
        free(p->rules[i].text);
        free(p->rules[i].nodes);
    }
    free(p->rules);
    p->rules = NULL;
    p->nrules = 0;
}

size_t policy_count(const struct policy *p)
{
    return p->nrules;
}

int policy_rule_at(const struct policy *p, size_t i, const char **name, const char **text,
                   bool *is_default)
{
    if (i >= p->nrules)
        return FERR_NOTFOUND;
    *name = p->rules[i].name;
    *text = p->rules[i].text;
    *is_default = p->rules[i].is_default;
    return 0;
}

/* ---- evaluation ----------------------------------------------------------- */

struct evalctx {
    const struct policy *p;
    const struct policy_subject *subj;
    const struct policy_target *tgt;
    uint8_t memo[MAX_TOTAL]; /* 0 unknown, 1 false, 2 true, 3 evaluating */
};

static const char *target_get(const struct policy_target *tgt, const char *key, size_t klen)
{
    if (!tgt)
        return NULL;
    for (size_t i = 0; i < tgt->nkv; i++) {
        const char *k = tgt->kv[i].key;
        if (k && strncmp(k, key, klen) == 0 && k[klen] == '\0') {
            const char *v = tgt->kv[i].value;
            return (v && v[0]) ? v : NULL;
        }
    }
    return NULL;
}

static bool bytes_eq(const char *a, const char *b, size_t n, bool icase)
{
    for (size_t i = 0; i < n; i++) {
        char x = a[i], y = b[i];
        if (icase) {
            if (x >= 'A' && x <= 'Z')
                x = (char)(x - 'A' + 'a');
            if (y >= 'A' && y <= 'Z')
                y = (char)(y - 'A' + 'a');
        }
        if (x != y)
            return false;
    }
    return true;
}

/* Returns true when value equals the template tpl[0..len) rendered against
 * the target. A placeholder the target lacks (or holds empty) is false. */
static bool match_tpl(const struct policy_target *tgt, const char *tpl, size_t len,
                      const char *value, size_t vlen, bool icase)
{
    if (!value || vlen == 0)
        return false;
    size_t at = 0;
    for (size_t i = 0; i < len;) {
        const char *seg;
        size_t seglen;
        if (tpl[i] == '%' && i + 1 < len && tpl[i + 1] == '%') {
            seg = "%";
            seglen = 1;
            i += 2;
        } else if (tpl[i] == '%' && i + 1 < len && tpl[i + 1] == '(') {
            size_t j = i + 2, k = j;
            while (k < len && tpl[k] != ')')
                k++;
            if (k + 1 >= len) /* validated at load; defensive */
                return false;
            const char *key = tpl + j;
            size_t klen = k - j;
            if (klen > 7 && memcmp(key, "target.", 7) == 0) {
                key += 7;
                klen -= 7;
            }
            seg = target_get(tgt, key, klen);
            if (!seg)
                return false;
            seglen = strlen(seg);
            i = k + 2;
        } else {
            size_t k = i + 1;
            while (k < len && tpl[k] != '%')
                k++;
            seg = tpl + i;
            seglen = k - i;
            i = k;
        }
        if (seglen > vlen - at || !bytes_eq(value + at, seg, seglen, icase))
            return false;
        at += seglen;
    }
    return at == vlen;
}

static bool eval_rule(struct evalctx *c, size_t ri, int depth);

static bool eval_node(struct evalctx *c, const struct policy__rule *r, uint32_t ni, int depth)
{
    const struct node *n = &r->nodes[ni];
    const char *m = r->text + n->m_off;
    switch (n->kind) {
    case N_TRUE:
        return true;
    case N_FALSE:
        return false;
    case N_NOT:
        return !eval_node(c, r, n->first, depth);
    case N_AND:
        for (uint32_t k = n->first; k != NONE; k = r->nodes[k].next)
            if (!eval_node(c, r, k, depth))
                return false;
        return true;
    case N_OR:
        for (uint32_t k = n->first; k != NONE; k = r->nodes[k].next)
            if (eval_node(c, r, k, depth))
                return true;
        return false;
    case N_RULE:
        return eval_rule(c, n->ref, depth + 1);
    case N_ROLE:
        if (!c->subj->roles)
            return false;
        for (size_t i = 0; i < c->subj->nroles; i++)
            if (c->subj->roles[i] &&
                match_tpl(c->tgt, m, n->m_len, c->subj->roles[i], strlen(c->subj->roles[i]), true))
                return true;
        return false;
    case N_SUBJECT: {
        const char *v = n->key == SK_USER_ID ? c->subj->user_id : c->subj->project_id;
        return v && match_tpl(c->tgt, m, n->m_len, v, strlen(v), false);
    }
    case N_LITERAL:
        return match_tpl(c->tgt, m, n->m_len, r->text + n->a_off, n->a_len, false);
    default:
        return false;
    }
}

static bool eval_rule(struct evalctx *c, size_t ri, int depth)
{
    if (ri >= c->p->nrules || depth > POLICY_MAX_REF_DEPTH + 1)
        return false; /* excluded at load; fail closed */
    if (c->memo[ri] == 1 || c->memo[ri] == 3)
        return false;
    if (c->memo[ri] == 2)
        return true;
    c->memo[ri] = 3;
    const struct policy__rule *r = &c->p->rules[ri];
    bool ok = eval_node(c, r, r->root, depth);
    c->memo[ri] = ok ? 2 : 1;
    return ok;
}

int policy_check(const struct policy *p, const char *action, const struct policy_subject *subj,
                 const struct policy_target *tgt, bool *allowed)
{
    *allowed = false;
    if (!action)
        return FERR_NOTFOUND;
    long ri = find_rule(p->rules, p->nrules, action, strlen(action));
    if (ri < 0)
        return FERR_NOTFOUND;
    static const struct policy_subject nobody = {0};
    struct evalctx c = {.p = p, .subj = subj ? subj : &nobody, .tgt = tgt};
    *allowed = eval_rule(&c, (size_t)ri, 0);
    return 0;
}

/* ---- which target keys a rule reads --------------------------------------- */

/* True when template tpl[0..len) has a placeholder for key (klen bytes),
 * written %(key)s or %(target.key)s. */
static bool tpl_uses(const char *tpl, size_t len, const char *key, size_t klen)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (tpl[i] != '%')
            continue;
        if (tpl[i + 1] == '%') {
            i++;
            continue;
        }
        if (tpl[i + 1] != '(')
            continue;
        size_t j = i + 2, k = j;
        while (k < len && tpl[k] != ')')
            k++;
        const char *name = tpl + j;
        size_t nlen = k - j;
        if (nlen > 7 && memcmp(name, "target.", 7) == 0) {
            name += 7;
            nlen -= 7;
        }
        if (nlen == klen && memcmp(name, key, klen) == 0)
            return true;
        i = k;
    }
    return false;
}

static bool rule_uses(const struct policy *p, size_t ri, const char *key, size_t klen,
                      uint8_t *seen)
{
    if (seen[ri])
        return false;
    seen[ri] = 1;
    const struct policy__rule *r = &p->rules[ri];
    for (uint32_t k = 0; k < r->nnodes; k++) {
        const struct node *n = &r->nodes[k];
        if (n->kind == N_RULE) {
            if (n->ref < p->nrules && rule_uses(p, n->ref, key, klen, seen))
                return true;
        } else if (n->kind == N_ROLE || n->kind == N_SUBJECT || n->kind == N_LITERAL) {
            if (tpl_uses(r->text + n->m_off, n->m_len, key, klen))
                return true;
        }
    }
    return false;
}

bool policy_uses_target_key(const struct policy *p, const char *action, const char *key)
{
    if (!action || !key)
        return true;
    long ri = find_rule(p->rules, p->nrules, action, strlen(action));
    if (ri < 0)
        return true;
    uint8_t seen[MAX_TOTAL] = {0};
    return rule_uses(p, (size_t)ri, key, strlen(key), seen);
}
