/* coordlink — the agent's link to ferryd: registers this host (address,
 * capacity, labels, its guests with their projects) at start, after a
 * failed request, whenever what it would register changed and at least
 * every COORDLINK_REREGISTER_EVERY + 1 intervals, and heartbeats every
 * interval (a registration is followed by a heartbeat). Non-blocking, on the agent's loop;
 * a ferryd that is down or slow never delays the agent. */
#ifndef FERRY_AGENT_COORDLINK_H
#define FERRY_AGENT_COORDLINK_H
#include "agent/agent.h"

#define COORDLINK_DEFAULT_INTERVAL_MS 10000 /* until ferryd says otherwise, ms */
#define COORDLINK_RETRY_MS 1000             /* after a failed attempt, ms */
#define COORDLINK_TIMEOUT_S 5               /* one request to ferryd, s */
#define COORDLINK_REREGISTER_EVERY 5        /* heartbeats alone between two registrations */

struct coordlink;

#define COORDLINK_LABELS_MAX 16 /* --label options, as ferryd accepts */
#define COORDLINK_LABEL_MAX 127 /* bytes of one KEY=VALUE */

/* Starts registering ag with the ferryd at url ("http://HOST:PORT") using
 * the bearer token read from token_file (first line; a token with role
 * agent), carrying labels[0..nlabels) ("KEY=VALUE", borrowed; copied) in
 * every registration. The first registration is sent from the loop at
 * once. Fails with FERR_INVAL for a bad URL, an unreadable/empty token file
 * or a label that is not KEY=VALUE with a key of [A-Za-z0-9_./-] (starting
 * with a letter or digit, 1..63 bytes) and a value of [A-Za-z0-9_.-]
 * (0..63 bytes), or a key given twice; FERR_TOOBIG over
 * COORDLINK_LABELS_MAX labels. On 0, *out lives until coordlink_free. */
int coordlink_start(struct agent *ag, const char *url, const char *token_file,
                    const char *const *labels, size_t nlabels, struct coordlink **out,
                    struct ferr *e) __attribute__((warn_unused_result));

/* Stops the timer and frees l (NULL is fine). A request in flight is
 * abandoned with the event base. */
void coordlink_free(struct coordlink *l);

#endif
