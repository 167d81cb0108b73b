/* fleet — many simulated ferry-agents in one process, for benchmarking
 * ferryd's rolling-maintenance executor at fleet scale (bench/plan_fleet.c,
 * docs/BENCH.md).
 *
 * Each simulated host serves the agent API on its own loopback address
 * (127.77.I/200.I%200+1, one port for all) and speaks the coordlink
 * protocol to ferryd: it registers (name, agent_url, capacity, labels, its
 * guests) at start, after a reboot or failure and when its guests changed,
 * and heartbeats every interval ferryd asks for. What ferryd asks
 * of an agent is answered the way ferry-agent answers it, without QEMU:
 *
 *   GET  /v1/health                       200
 *   GET  /v1/instances/NAME               spec; on a destination its incoming_uri
 *   POST /v1/incoming                     202: the destination waits for the guest
 *   DELETE /v1/instances/NAME             202: an incoming guest is dropped
 *   POST /v1/migrations                   202: the guest migrates; its duration,
 *                                         downtime and bytes come from the QEMU 7.2
 *                                         pre-copy model (sim/precopy.h) for its
 *                                         RAM and dirty rate, run in simulated time
 *                                         and played back scaled by time_scale
 *   GET  /v1/migrations[/ID]              the agent's record (state, estimate, result)
 *   POST /v1/migrations/ID/cancel         202
 *   POST|GET /v1/maintenance              the action: "runs" action_ms (simulated),
 *                                         then with restart the host reboots: its
 *                                         API and heartbeats go silent for
 *                                         reboot_ms, then it registers again with
 *                                         a new agent_started_ms. A command
 *                                         without restart (the health check)
 *                                         succeeds after check_ms.
 *
 * Simulated durations are multiplied by time_scale to give real time
 * (0.02: a 50 s migration takes 1 s). The loop runs until SIGTERM/SIGINT;
 * then a summary (migrations, their simulated durations, reboots) is
 * written as JSON to summary_path. */
#ifndef FERRY_SIM_FLEET_H
#define FERRY_SIM_FLEET_H
#include <stdint.h>

#include "util/ferr.h"

#define FLEET_HOSTS_MAX 4000      /* simulated hosts in one process */
#define FLEET_INST_PER_HOST_MAX 64 /* guests per simulated host */

struct fleet_opts {
    const char *coordinator;   /* ferryd, "http://HOST:PORT" (borrowed) */
    const char *token;         /* agent-role bearer token (borrowed) */
    const char *label;         /* "KEY=VALUE" every host carries, may be NULL */
    const char *summary_path;  /* where the summary JSON goes at exit, may be NULL */
    uint32_t hosts;            /* simulated hosts, 1..FLEET_HOSTS_MAX */
    int port;                  /* API port of every host */
    uint64_t host_ram_mib;     /* per host, MiB */
    uint32_t host_vcpus;       /* per host */
    uint32_t inst_min, inst_max; /* guests per host, drawn uniformly */
    double fill;               /* stop adding guests at this fraction of RAM, 0..1 */
    double link_bps;           /* migration bandwidth of one migration, bytes/s */
    double time_scale;         /* real seconds per simulated second, (0, 1] */
    uint32_t action_ms;        /* maintenance action, simulated ms */
    uint32_t reboot_ms;        /* reboot (silent), simulated ms */
    uint32_t check_ms;         /* a health-check command, simulated ms */
    uint64_t seed;             /* fleet shape and workloads */
};

/* Fills o with the defaults the benchmark documents (64 GiB / 32 vCPU
 * hosts, 10..20 guests of 1..8 GiB up to 60 % of RAM, 1 Gbit/s per
 * migration, scale 0.02, action 10 s, reboot 20 s, check 2 s). */
void fleet_opts_default(struct fleet_opts *o);

/* Builds the fleet, binds every host's API and runs the loop until SIGTERM
 * or SIGINT. Returns 0 after a clean stop, or an error (FERR_INVAL for bad
 * options, -errno when a listener cannot bind) with e filled before
 * anything runs. */
int fleet_run(const struct fleet_opts *o, struct ferr *e) __attribute__((warn_unused_result));

#endif
