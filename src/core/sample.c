/* sample — phase names and small helpers for struct mig_sample. */
#include "core/sample.h"

#include <string.h>

#include "util/ferr.h"

static const char *const phase_names[MIG_PHASE__COUNT] = {
    [MIG_PHASE_SETUP] = "setup",
    [MIG_PHASE_ACTIVE] = "active",
    [MIG_PHASE_PRE_SWITCHOVER] = "pre_switchover",
    [MIG_PHASE_DEVICE] = "device",
    [MIG_PHASE_POSTCOPY] = "postcopy",
    [MIG_PHASE_COMPLETED] = "completed",
    [MIG_PHASE_FAILED] = "failed",
    [MIG_PHASE_CANCELLED] = "cancelled",
};

/* QEMU MigrationStatus spellings that fold onto a phase. */
static const struct {
    const char *name;
    enum mig_phase phase;
} qemu_aliases[] = {
    {"none", MIG_PHASE_SETUP},
    {"pre-switchover", MIG_PHASE_PRE_SWITCHOVER},
    {"postcopy-active", MIG_PHASE_POSTCOPY},
    {"postcopy-paused", MIG_PHASE_POSTCOPY},
    {"postcopy-recover", MIG_PHASE_POSTCOPY},
    {"cancelling", MIG_PHASE_CANCELLED},
    {"wait-unplug", MIG_PHASE_ACTIVE},
    {"colo", MIG_PHASE_ACTIVE},
};

const char *mig_phase_name(enum mig_phase phase)
{
    if ((unsigned)phase >= MIG_PHASE__COUNT)
        return "unknown";
    return phase_names[phase];
}

static int name_eq(const char *name, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    return n == len && memcmp(name, lit, n) == 0;
}

int mig_phase_parse(const char *name, size_t len, enum mig_phase *out)
{
    if (!name || !out)
        return FERR_INVAL;
    for (unsigned i = 0; i < MIG_PHASE__COUNT; i++) {
        if (name_eq(name, len, phase_names[i])) {
            *out = (enum mig_phase)i;
            return 0;
        }
    }
    for (size_t i = 0; i < sizeof(qemu_aliases) / sizeof(qemu_aliases[0]); i++) {
        if (name_eq(name, len, qemu_aliases[i].name)) {
            *out = qemu_aliases[i].phase;
            return 0;
        }
    }
    return FERR_INVAL;
}

int mig_phase_is_terminal(enum mig_phase phase)
{
    return phase == MIG_PHASE_COMPLETED || phase == MIG_PHASE_FAILED ||
           phase == MIG_PHASE_CANCELLED;
}

uint64_t mig_sample_page_bytes(const struct mig_sample *s)
{
    return s->page_size ? s->page_size : 4096;
}
