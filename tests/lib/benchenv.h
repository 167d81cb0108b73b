/* benchenv — one line describing this machine, printed by the benchmarks
 * beside their figures (timings here are only comparable within a run and
 * on a named machine). */
#ifndef FERRY_TESTS_BENCHENV_H
#define FERRY_TESTS_BENCHENV_H
#include <stddef.h>

/* "x86_64, 2 cpus, <cpu model>, Linux <release>, QEMU TCG (no KVM)": the
 * lab benchmarks, whose guests run under TCG. */
void bench_machine_tcg(char *buf, size_t len);

/* "Linux <release> x86_64, 2 cpus, <cpu model>": the ferryd benchmarks. */
void bench_machine(char *buf, size_t len);

/* The environment variable name as a whole decimal number in min … max,
 * or def when it is unset or empty. Anything else prints "BENCH: NAME
 * must be MIN … MAX" on stderr (BENCH: the program's name) and exits with
 * status 2. */
long bench_env_long(const char *name, long def, long min, long max);

/* FERRY_LAB_INCOMING_NICE for the lab's agents (docs/LAB.md): when unset
 * or empty and this process is root, set to 19 — the lab's hosts share
 * this machine's CPUs, and the receiving QEMU stands for another host;
 * restoring its priority at takeover needs root. Returns the value in
 * force, "0" when none. */
const char *bench_incoming_nice(void);

/* The machine's 1-minute load average (runnable tasks), -1 when unknown. */
double bench_loadavg1(void);

#endif
