/* pcgen — see pcgen.h. */
#include "pcgen.h"

#include <string.h>

void pcgen_init(struct pcgen *g, double m, double w, double r, double d, uint64_t limit)
{
    memset(g, 0, sizeof(*g));
    g->m = m;
    g->w = w;
    g->r = r;
    g->d = d;
    g->v = m;
    g->sync = 1;
    g->limit_ms = limit;
}

void pcgen_step(struct pcgen *g, struct mig_sample *s)
{
    for (int i = 0; i < 25 && !g->done; i++) {
        double dt = 0.010, send = g->r * dt;
        if (send > g->v)
            send = g->v;
        g->v -= send;
        g->tx += send;
        g->dirtied += g->d * dt;
        if (g->dirtied > g->w)
            g->dirtied = g->w;
        g->t_ms += 10;
        double thr = g->r * (double)g->limit_ms / 1000.0;
        if (g->v < thr) {
            g->v += g->dirtied;
            g->last_rate_pages = g->d / 4096.0;
            g->dirtied = 0;
            g->sync++;
            if (g->v <= thr) {
                g->end_ms = g->t_ms + (uint64_t)(g->v / g->r * 1000.0);
                g->tx += g->v;
                g->v = 0;
                g->done = 1;
            }
        }
    }
    memset(s, 0, sizeof(*s));
    s->t_ms = g->done ? g->end_ms : g->t_ms;
    s->phase = g->done ? MIG_PHASE_COMPLETED : MIG_PHASE_ACTIVE;
    s->ram_total = (uint64_t)g->m;
    s->ram_transferred = (uint64_t)g->tx;
    s->ram_remaining = (uint64_t)g->v;
    s->dirty_pages_rate = (uint64_t)g->last_rate_pages;
    s->page_size = 4096;
    s->bw_bps = (uint64_t)g->r;
    s->dirty_sync_count = g->sync;
    s->setting_downtime_ms = g->limit_ms;
}
