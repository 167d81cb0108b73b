/* policy — who may do what: the coordinator's rule engine, in the spirit of
 * oslo.policy. Pure: no I/O, no clock, no globals.
 *
 * A policy is a set of named rules. The policy file is one JSON object
 * {"name": "rule text", ...}; names that the API checks are actions
 * ("migration:cancel"), the others are aliases other rules reference
 * ("admin"). Built-in defaults (policy_default_at) fill every name the file
 * does not define, so a file only lists what it changes.
 *
 * Rule text grammar (`not` binds tighter than `and`, `and` tighter than
 * `or`; keywords are case-insensitive):
 *
 *   expr    := and ('or' and)*
 *   and     := unary ('and' unary)*
 *   unary   := 'not' unary | '(' expr ')' | check
 *   check   := '@'                      always
 *            | '!'                      never
 *            | 'rule:' NAME             the named rule
 *            | 'role:' MATCH            the subject holds the role
 *                                       (case-insensitive)
 *            | KEY ':' MATCH            subject KEY (user_id, project_id)
 *                                       equals MATCH
 *            | "'" LITERAL "'" ':' MATCH  LITERAL equals MATCH
 *   MATCH   := literal text with %(target.X)s / %(X)s placeholders (the
 *              target's value for key X) and %% for '%'.
 *
 * A placeholder whose key the target lacks, or whose value is empty, makes
 * the check false; so does an empty subject value. Every mistake (syntax,
 * unknown check kind or subject key, undefined rule reference, reference
 * cycle, a cap) fails the whole load with an error naming the rule and the
 * column. docs/POLICY.md lists the actions, the defaults and the
 * differences from oslo.policy.
 */
#ifndef FERRY_CORE_POLICY_H
#define FERRY_CORE_POLICY_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/ferr.h"

#define POLICY_MAX_FILE_BYTES (1u << 20) /* policy file, bytes */
#define POLICY_MAX_RULE_BYTES 4096       /* one rule's text, bytes */
#define POLICY_MAX_NAME_BYTES 63         /* one rule name, bytes */
#define POLICY_MAX_DEPTH 32              /* nesting of '(' and 'not' in a rule */
#define POLICY_MAX_RULES 256             /* rules in the file */
#define POLICY_MAX_REF_DEPTH 16          /* chain of rule:NAME references */
#define POLICY_MAX_DEFAULTS 64           /* built-in rules (compile-time bound) */

/* Who asks. Every pointer is borrowed for the duration of one call; NULL or
 * "" means absent (never equal to anything). */
struct policy_subject {
    const char *user_id;
    const char *project_id;
    const char *const *roles; /* nroles role names */
    size_t nroles;
};

/* One attribute of the object acted on ("project_id" → "p1"). */
struct policy_kv {
    const char *key;
    const char *value; /* NULL or "" means absent */
};

/* The object acted on: nkv attributes, borrowed for one call. Keys the
 * coordinator fills: project_id, user_id (owner of the instance), instance,
 * migration, plan, host. A later duplicate key is ignored. */
struct policy_target {
    const struct policy_kv *kv;
    size_t nkv;
};

struct policy__rule; /* private */

/* A loaded policy. The caller allocates the struct; policy_load fills it and
 * policy_free releases what it holds. Fields are private. */
struct policy {
    struct policy__rule *rules; /* sorted by name */
    size_t nrules;
};

/* Loads the policy file json_text[0..len) over the built-in defaults into
 * p (whose previous content is ignored, not freed). json_text NULL loads
 * the defaults alone. Fails with FERR_TOOBIG (file over
 * POLICY_MAX_FILE_BYTES, a rule over POLICY_MAX_RULE_BYTES, more than
 * POLICY_MAX_RULES rules, nesting over POLICY_MAX_DEPTH, a reference chain
 * over POLICY_MAX_REF_DEPTH) or FERR_INVAL (malformed JSON, a non-string
 * value, a bad name, a syntax error, an undefined reference, a cycle); e
 * names the rule in field and says where in msg ("column N", 1-based).
 * On failure p holds no rules and policy_free(p) is a no-op; on success
 * the caller releases p with policy_free. */
int policy_load(struct policy *p, const char *json_text, size_t len, struct ferr *e)
    __attribute__((warn_unused_result));

/* Releases what p holds and leaves it empty. p may be empty. */
void policy_free(struct policy *p);

/* Decides whether subj may do action on tgt: *allowed is set on success.
 * Fails with FERR_NOTFOUND (and *allowed = false) when the policy has no
 * rule named action; callers must deny then. subj and tgt are borrowed;
 * subj NULL is a subject with nothing; tgt NULL has no attributes. Cost
 * is linear in the size of the rules reachable from action (each rule is
 * evaluated at most once per call). p is only read, so threads may check
 * against one policy at the same time. */
int policy_check(const struct policy *p, const char *action, const struct policy_subject *subj,
                 const struct policy_target *tgt, bool *allowed)
    __attribute__((warn_unused_result));

/* Returns whether the decision on action may depend on the target's value
 * for key: true when a rule reachable from action has a %(key)s or
 * %(target.key)s placeholder, and also when p has no rule named action
 * (the safe answer). A caller may reuse a decision for targets that differ
 * only in keys for which this is false (same subject): e.g. decide once per
 * project when neither "instance" nor "migration" nor "host" is used. */
bool policy_uses_target_key(const struct policy *p, const char *action, const char *key);

/* Returns the number of rules of p (file and defaults merged). */
size_t policy_count(const struct policy *p);

/* Reads rule i (0 ≤ i < policy_count, sorted by name): its name, its text
 * and whether it is the built-in default (not set by the file). Strings are
 * borrowed from p, valid until policy_free. Fails with FERR_NOTFOUND when i
 * is out of range. */
int policy_rule_at(const struct policy *p, size_t i, const char **name, const char **text,
                   bool *is_default) __attribute__((warn_unused_result));

/* Reads built-in default i (0 ≤ i < policy_default_count): name, rule text
 * and a one-line description for people. Strings are static. Fails with
 * FERR_NOTFOUND when i is out of range. */
int policy_default_at(size_t i, const char **name, const char **text, const char **description)
    __attribute__((warn_unused_result));

/* Returns the number of built-in defaults. */
size_t policy_default_count(void);

#endif
