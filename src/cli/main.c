/* ferry — the command-line client: a dispatcher over two families of
 * commands.
 *
 *   through ferryd (cli_coord.c): ferry migrate INSTANCE [--to HOST] ...,
 *     ferry migration list|show|watch|cancel|force-complete,
 *     ferry consent list|grant|refuse, ferry host list
 *   agent-direct (cli_agent.c): ferry migrate --from URL --to URL INSTANCE,
 *     ferry console, ferry instances
 *
 * `ferry migrate` goes agent-direct exactly when --from is given. Exit
 * codes: 0 done, 1 failed (API error, transport, migration did not
 * succeed), 2 usage. docs/CLI.md has every command with an example. */
#include <stdio.h>
#include <string.h>

#include "cli/cli_agent.h"
#include "cli/cli_api.h"
#include "cli/cli_coord.h"
#include "cli/cli_plan.h"

static void usage(FILE *to)
{
    fputs("usage:\n", to);
    cli_coord_usage(to);
    cli_plan_usage(to);
    cli_agent_usage(to);
}

/* True when argv holds --from or --from=URL (agent-direct migrate). */
static int has_from(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return 0;
        if (strcmp(argv[i], "--from") == 0 || strncmp(argv[i], "--from=", 7) == 0)
            return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    int sub_argc = argc - 1;
    char **sub_argv = argv + 1;
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(cmd, "migrate") == 0)
        return has_from(sub_argc, sub_argv) ? cli_agent_migrate(sub_argc, sub_argv)
                                            : cli_coord_migrate(sub_argc, sub_argv);
    if (strcmp(cmd, "migration") == 0)
        return cli_coord_migration(sub_argc, sub_argv);
    if (strcmp(cmd, "consent") == 0)
        return cli_coord_consent(sub_argc, sub_argv);
    if (strcmp(cmd, "plan") == 0)
        return cli_plan(sub_argc, sub_argv);
    if (strcmp(cmd, "host") == 0)
        return cli_coord_host(sub_argc, sub_argv);
    if (strcmp(cmd, "console") == 0)
        return cli_agent_console(sub_argc, sub_argv);
    if (strcmp(cmd, "instances") == 0)
        return cli_agent_instances(sub_argc, sub_argv);
    fprintf(stderr, "ferry: unknown command '%s'\n", cmd);
    usage(stderr);
    return CLI_EXIT_USAGE;
}
