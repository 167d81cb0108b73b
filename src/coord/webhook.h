/* webhook — delivery of the event outbox to the HTTP endpoints of the
 * configuration (`webhook = URL SECRET [TYPES]`, docs/EVENTS.md).
 *
 * Per endpoint, events go out one at a time in seq order (a type filter
 * skips others) as a POST whose body is the event JSON, signed with
 * `X-Ferry-Signature: sha256=HEX(HMAC-SHA256(secret, body))` and named by
 * `X-Ferry-Event-Id: SEQ`. A 2xx answer delivers it; anything else (status,
 * refused connection, WEBHOOK_TIMEOUT_S without an answer) is retried after
 * webhook_backoff_ms; after webhook_max_tries attempts the event becomes a
 * dead letter (store table + event webhook.dead_letter) and delivery moves
 * on. The endpoint's cursor (last seq delivered or given up) is kept in the
 * store, so a restart resumes where it stopped: at-least-once, in order.
 * Non-blocking: libevent's HTTP client on the daemon's event base. */
#ifndef FERRY_COORD_WEBHOOK_H
#define FERRY_COORD_WEBHOOK_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/ferr.h"

#define WEBHOOK_TIMEOUT_S 10    /* seconds one delivery attempt may take */
#define WEBHOOK_POLL_MS 200     /* outbox poll period of an idle endpoint, ms */
#define WEBHOOK_BATCH 64        /* events read from the store at a time */
#define WEBHOOK_REPLY_MAX 65536 /* bytes of a receiver's headers, and of its body */
#define WEBHOOK_SIG_HEX 64      /* hex chars of an HMAC-SHA256 */

struct coord;
struct webhooks;

/* Delivery figures of one endpoint since ferryd started. */
struct webhook_stats {
    uint64_t delivered;    /* events answered 2xx */
    uint64_t failures;     /* attempts that failed (each retry counts) */
    uint64_t dead_letters; /* events given up */
    int64_t cursor;        /* last seq delivered or given up */
};

/* Writes the lower-case hex HMAC-SHA256 of msg[0..mlen) under key[0..klen)
 * into out (65 bytes with the NUL). Returns 0, or -EIO when libcrypto
 * fails. */
int webhook_hmac_hex(const void *key, size_t klen, const void *msg, size_t mlen,
                     char out[WEBHOOK_SIG_HEX + 1]) __attribute__((warn_unused_result));

/* Returns the delay before retry number `failures` (1 after the first
 * failed attempt): d = min(cap_ms, base_ms × 2^(failures-1)), then "equal
 * jitter": d/2 + rnd mod (d/2 + 1). So the result lies in [d/2, d], never
 * exceeds cap_ms, and rnd (any random 32-bit value) spreads endpoints that
 * failed together. failures 0 is treated as 1. */
uint32_t webhook_backoff_ms(unsigned failures, uint32_t base_ms, uint32_t cap_ms, uint32_t rnd);

/* True when type passes filter: "" passes everything; otherwise a
 * comma-separated list of exact types and prefixes ending in '*'. */
bool webhook_type_match(const char *filter, const char *type);

/* Starts delivery to every endpoint of c->cfg (c borrowed; must outlive w).
 * An endpoint without a cursor in the store starts after the current last
 * event (history is not replayed to a new endpoint). Fails with FERR_INVAL
 * naming "webhook" when a URL cannot be parsed, or with a store error. On
 * success *out is the handle (free with webhooks_free). */
int webhooks_new(struct coord *c, struct webhooks **out, struct ferr *e)
    __attribute__((warn_unused_result));

/* Stops delivery (an attempt in flight is abandoned and will be repeated
 * after a restart) and frees w; NULL is fine. */
void webhooks_free(struct webhooks *w);

/* Number of endpoints. */
size_t webhooks_count(const struct webhooks *w);

/* The URL (borrowed, valid while w lives) and figures of endpoint i. */
const char *webhooks_stats(const struct webhooks *w, size_t i, struct webhook_stats *out);

#endif
