/* cli_plan — ferry plan create|list|show|watch|pause|resume|abort over
 * ferryd's /v1/plans (docs/PLANS.md). */
#ifndef FERRY_CLI_PLAN_H
#define FERRY_CLI_PLAN_H
#include <stdio.h>

/* Takes the subcommand's argv (argv[0] is "plan") and returns the exit
 * code: 0 done (watch: the plan completed), 1 the API said no, the
 * transport failed or the watched plan did not complete, 2 bad usage. */
int cli_plan(int argc, char **argv);

/* Writes the plan commands' usage lines to `to`. */
void cli_plan_usage(FILE *to);

#endif
