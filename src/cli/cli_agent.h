/* cli_agent — ferry's agent-direct commands (no coordinator): one
 * migration between two agents with a live progress line, a guest's serial
 * console, an agent's instance list. */
#ifndef FERRY_CLI_AGENT_H
#define FERRY_CLI_AGENT_H
#include <stdio.h>

/* Each takes the subcommand's argv (argv[0] is the subcommand name) and
 * returns the process exit code: 0 done, 1 the API or the migration failed,
 * 2 bad usage (the usage is printed). The bearer token is FERRY_TOKEN. */

/* ferry migrate --from URL --to URL INSTANCE [--bandwidth B] [--downtime MS]
 * [--auto-converge] [--timeout S] [--json] [--quiet] [--policy JSON]:
 * prepares the destination, starts the migration at the source, draws its
 * progress until it ends; 0 only when it succeeded. */
int cli_agent_migrate(int argc, char **argv);

/* ferry console --agent URL INSTANCE [--send LINE] [--wait PREFIX]
 * [--wait-ms MS]: prints the console, sends a line, or waits for a line
 * starting with PREFIX (1 when it does not appear in time). */
int cli_agent_console(int argc, char **argv);

/* ferry instances --agent URL [--json]: the agent's instances. */
int cli_agent_instances(int argc, char **argv);

/* Writes the agent-direct commands' usage lines to `to`. */
void cli_agent_usage(FILE *to);

#endif
