/* benchenv — see benchenv.h. */
#include "benchenv.h"

#include <errno.h> /* program_invocation_short_name */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

/* The first "model name" of /proc/cpuinfo, or "unknown cpu". */
static void cpu_model(char *model, size_t n)
{
    snprintf(model, n, "unknown cpu");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof(line), f)) {
        char *p = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && p) {
            p++;
            while (*p == ' ')
                p++;
            p[strcspn(p, "\n")] = '\0';
            snprintf(model, n, "%s", p);
            break;
        }
    }
    if (f)
        fclose(f);
}

void bench_machine_tcg(char *buf, size_t len)
{
    struct utsname u;
    if (uname(&u) != 0)
        memset(&u, 0, sizeof(u));
    char model[160];
    cpu_model(model, sizeof(model));
    snprintf(buf, len, "%s, %ld cpus, %s, Linux %s, QEMU TCG (no KVM)", u.machine,
             sysconf(_SC_NPROCESSORS_ONLN), model, u.release);
}

void bench_machine(char *buf, size_t len)
{
    struct utsname u;
    if (uname(&u) != 0)
        memset(&u, 0, sizeof(u));
    char model[160];
    cpu_model(model, sizeof(model));
    snprintf(buf, len, "%s %s %s, %ld cpus, %s", u.sysname, u.release, u.machine,
             sysconf(_SC_NPROCESSORS_ONLN), model);
}

long bench_env_long(const char *name, long def, long min, long max)
{
    const char *v = getenv(name);
    if (!v || !v[0])
        return def;
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || x < min || x > max) {
        fprintf(stderr, "%s: %s must be %ld … %ld\n", program_invocation_short_name, name, min,
                max);
        exit(2);
    }
    return x;
}

double bench_loadavg1(void)
{
    double l[1];
    return getloadavg(l, 1) == 1 ? l[0] : -1;
}

const char *bench_incoming_nice(void)
{
    const char *nice = getenv("FERRY_LAB_INCOMING_NICE");
    if ((!nice || !*nice) && geteuid() == 0)
        setenv("FERRY_LAB_INCOMING_NICE", "19", 1);
    nice = getenv("FERRY_LAB_INCOMING_NICE");
    return nice && *nice ? nice : "0";
}
