/* cli_coord — ferry's commands over ferryd's public API (docs/FERRYD.md):
 * migrations (create, list, show, watch, cancel, force-complete), consent
 * requests (list, grant, refuse) and hosts (list). The URL and token come
 * from creds (flags --url/--token-file, FERRY_URL/FERRY_TOKEN, the config
 * file). */
#ifndef FERRY_CLI_COORD_H
#define FERRY_CLI_COORD_H
#include <stdio.h>

/* Each takes the subcommand's argv (argv[0] is "migrate", "migration",
 * "consent" or "host") and returns the exit code: 0 done (for migrate
 * --watch and migration watch: the migration succeeded), 1 the API said no
 * (printed as "ferry: HTTP 403: message (field x)"), the transport failed,
 * the credentials were refused or the watched migration did not succeed,
 * 2 bad usage (usage printed). */

/* ferry migrate INSTANCE [--to HOST] [--policy FILE|JSON] [--bandwidth B]
 * [--downtime MS] [--auto-converge] [--timeout S] [--watch] [--json]. */
int cli_coord_migrate(int argc, char **argv);

/* ferry migration list|show|watch|cancel|force-complete ... */
int cli_coord_migration(int argc, char **argv);

/* ferry consent list|grant ID|refuse ID. */
int cli_coord_consent(int argc, char **argv);

/* ferry host list [--json]. */
int cli_coord_host(int argc, char **argv);

/* Writes the coordinator commands' usage lines to `to`. */
void cli_coord_usage(FILE *to);

#endif
