/* maint — the host maintenance action a rolling-maintenance plan asks of
 * the agent (POST/GET /v1/maintenance, docs/PLANS.md).
 *
 * One action at a time: `sh -c COMMAND` in its own process group, with a
 * timeout, never blocking the agent's loop. The result (exit status,
 * times) is kept in STATE_DIR/maintenance.json so that it survives the
 * agent's own restart. With "restart": true a successful action is
 * followed by the agent re-executing itself (same binary, same arguments):
 * its guests keep running and are re-adopted by the new process, and
 * agent_started_ms tells ferryd that the restart happened. */
#ifndef FERRY_AGENT_MAINT_H
#define FERRY_AGENT_MAINT_H
#include <event2/http.h>

#include "agent/agent.h"

#define MAINT_COMMAND_MAX 4096 /* bytes of a command */
#define MAINT_OUTPUT_MAX 4096  /* bytes of a command's output kept in its record */

/* Remembers argv (borrowed for the process's life) for the restart, the
 * wall-clock start of this process, and loads the last result from
 * ag->state_dir. Call once from main before serving. */
void maint_init(struct agent *ag, char **argv);

/* Serves POST /v1/maintenance {id, command, restart?, timeout_s?} → 202
 * (409 while another action runs) and GET /v1/maintenance → 200
 * {id, state: none|running|succeeded|failed|timeout, exit_status,
 * started_ms, finished_ms, output (the first MAINT_OUTPUT_MAX bytes of its
 * stdout and stderr), agent_started_ms}. Always replies. */
void maint_handle(struct agent *ag, struct evhttp_request *req);

#endif
