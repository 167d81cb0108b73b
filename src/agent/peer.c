/* peer — non-blocking HTTP requests from this agent to another agent
 * (destination confirmation and cleanup), on the agent's event loop. */
#include "agent/agent.h"
#include "util/httpa.h"

void peer_request(struct agent *ag, const char *url, const char *method, const char *path,
                  const json_t *body, int timeout_s, peer_cb cb, void *arg)
{
    httpa_request(ag->base, url, "dest_agent", ag->token, method, path, body, timeout_s, cb, arg);
}
