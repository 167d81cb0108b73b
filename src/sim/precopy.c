/* precopy — deterministic model of QEMU 7.2 RAM migration. See precopy.h
 * for the contract and docs/SIM.md for what each rule approximates and
 * where in QEMU (migration/ram.c, migration/migration.c) it comes from. */
#include "sim/precopy.h"

#include <math.h>
#include <string.h>

#define WIRE_PAGE ((double)(PRECOPY_PAGE_SIZE + PRECOPY_PAGE_HDR))
#define MAX_SYNCS_PER_TICK 8
#define EPS_PAGES 0.5 /* below this many pages (in expectation) a set is empty */

void precopy_params_default(struct precopy_params *par, double link_bps)
{
    memset(par, 0, sizeof(*par));
    par->link_bps = link_bps;
    par->max_bw_bps = 0;
    par->downtime_limit_ms = 300;
    par->auto_converge = 0;
    par->throttle_initial = 20;
    par->throttle_increment = 10;
    par->throttle_max = 99;
    par->throttle_trigger = 50;
    par->postcopy_ram = 0;
    par->device_ms = 20;
    par->scan_pps = 2e6;
    par->seed = 1;
}

void precopy_workload_default(struct precopy_workload *wl, uint64_t ram_bytes)
{
    memset(wl, 0, sizeof(*wl));
    wl->ram_bytes = ram_bytes;
    wl->profile = PRECOPY_STEADY;
    wl->burst_period_ms = 10000;
    wl->burst_duty = 0.5;
    wl->burst_low_frac = 0.1;
    wl->phase_at_ms = -1;
}

double precopy_dirty_bps_at(const struct precopy_workload *wl, double t_ms)
{
    double base = wl->dirty_bps;
    if (wl->phase_at_ms >= 0 && t_ms >= (double)wl->phase_at_ms)
        base = wl->phase_dirty_bps;
    if (wl->profile == PRECOPY_BURSTY && wl->burst_period_ms > 0) {
        double pos = fmod(t_ms, (double)wl->burst_period_ms);
        if (pos >= wl->burst_duty * (double)wl->burst_period_ms)
            base *= wl->burst_low_frac;
    }
    return base;
}

/* xorshift64* and Box-Muller: a reproducible standard normal draw. */
static double rng_unit(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return (double)((x * 0x2545F4914F6CDD1DULL) >> 11) * (1.0 / 9007199254740992.0);
}

static double rng_normal(uint64_t *s)
{
    double u1 = rng_unit(s), u2 = rng_unit(s);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static double noise_factor(struct precopy *m, double lo)
{
    double f;
    if (m->wl.noise <= 0)
        return 1.0;
    f = 1.0 + m->wl.noise * rng_normal(&m->rng);
    return f < lo ? lo : f;
}

/* The working set in force at t, as a run of groups [first, first+count)
 * modulo ngroups. Rounded to whole groups (at least one when ws > 0). */
static void hot_range(const struct precopy *m, double t_ms, int *first, int *count)
{
    const struct precopy_workload *wl = &m->wl;
    uint64_t ws = wl->ws_bytes, off = wl->ws_off_bytes;
    double gbytes = (double)wl->ram_bytes / m->ngroups;
    int n;
    if (wl->phase_at_ms >= 0 && t_ms >= (double)wl->phase_at_ms) {
        ws = wl->phase_ws_bytes;
        off = wl->phase_ws_off_bytes;
    }
    if (ws == 0) {
        *first = 0;
        *count = 0;
        return;
    }
    n = (int)floor((double)ws / gbytes + 0.5);
    if (n < 1)
        n = 1;
    if (n > m->ngroups)
        n = m->ngroups;
    *first = (int)((double)off / gbytes) % m->ngroups;
    *count = n;
}

static double pending_pages(const struct precopy *m)
{
    double p = 0;
    for (int i = 0; i < m->ngroups; i++)
        p += m->g[i].bmap + m->g[i].bmap_z;
    return p;
}

static double pending_wire_bytes(const struct precopy *m)
{
    double b = 0;
    for (int i = 0; i < m->ngroups; i++)
        b += m->g[i].bmap * WIRE_PAGE + m->g[i].bmap_z * PRECOPY_ZERO_COST;
    return b;
}

/* The time one bitmap sync costs (KVM_GET_DIRTY_LOG over all slots plus the
 * bitmap walk): 1 ms + 0.25 ms per GiB of RAM, an assumption (docs/SIM.md). */
static double sync_cost_s(const struct precopy *m)
{
    return (1.0 + 0.25 * (double)m->wl.ram_bytes / (1024.0 * 1024 * 1024)) / 1000.0;
}

/* auto-converge: migration_trigger_throttle + mig_throttle_guest_down. As in
 * QEMU 7.2 the high counter is not reset when a period is below the
 * threshold, so "twice" means two periods, not necessarily consecutive. */
static void trigger_throttle(struct precopy *m)
{
    double xfer = m->transferred - m->xfer_prev;
    double dirty = m->dirty_period * PRECOPY_PAGE_SIZE;
    double thr = xfer * m->par.throttle_trigger / 100.0;
    if (!m->par.auto_converge)
        return;
    if (dirty > thr && ++m->high_cnt >= 2) {
        m->high_cnt = 0;
        if (m->throttle == 0) {
            m->throttle = m->par.throttle_initial;
        } else {
            uint32_t t = m->throttle + m->par.throttle_increment;
            m->throttle = t > m->par.throttle_max ? m->par.throttle_max : t;
        }
    }
}

/* migration_bitmap_sync: fold the dirty log into the migration bitmap. Pages
 * of the log fall on the non-zero part of a group uniformly, so the share
 * already in the bitmap is bmap / (pages - bmap_z). */
static void bitmap_sync(struct precopy *m, double now_ms)
{
    for (int i = 0; i < m->ngroups; i++) {
        struct precopy_group *g = &m->g[i];
        double room = g->pages - g->bmap_z, overlap, fresh;
        if (g->log <= 0)
            continue;
        overlap = room > 0 ? g->log * g->bmap / room : 0;
        fresh = g->log - overlap;
        if (fresh < 0)
            fresh = 0;
        g->bmap += fresh;
        if (g->bmap + g->bmap_z > g->pages)
            g->bmap = g->pages - g->bmap_z;
        m->dirty_period += fresh;
        g->log = 0;
    }
    m->sync_count++;
    if (now_ms > m->period_start_ms + 1000.0) {
        trigger_throttle(m);
        m->dirty_rate_pps =
            (uint64_t)(m->dirty_period * 1000.0 / (now_ms - m->period_start_ms) + 0.5);
        m->period_start_ms = now_ms;
        m->dirty_period = 0;
        m->xfer_prev = m->transferred;
    }
}

int precopy_init(struct precopy *m, const struct precopy_workload *wl,
                 const struct precopy_params *par, struct ferr *e)
{
    double ram_pages, gpages, cold_pages, zero_pages;
    int first, count;
    if (wl->ram_bytes < (64ull << 20))
        return ferr_set(e, FERR_INVAL, "ram_bytes", "must be at least 64 MiB");
    if (wl->ws_bytes > wl->ram_bytes || wl->phase_ws_bytes > wl->ram_bytes)
        return ferr_set(e, FERR_INVAL, "ws_bytes", "working set larger than RAM");
    if (!(wl->dirty_bps >= 0) || !(wl->phase_dirty_bps >= 0))
        return ferr_set(e, FERR_INVAL, "dirty_bps", "must be >= 0");
    if (!(wl->zero_frac >= 0 && wl->zero_frac <= 1))
        return ferr_set(e, FERR_INVAL, "zero_frac", "must be in 0..1");
    if (!(wl->noise >= 0 && wl->noise <= 0.5))
        return ferr_set(e, FERR_INVAL, "noise", "must be in 0..0.5");
    if (wl->profile == PRECOPY_BURSTY &&
        (wl->burst_period_ms < PRECOPY_TICK_MS || !(wl->burst_duty >= 0 && wl->burst_duty <= 1) ||
         !(wl->burst_low_frac >= 0 && wl->burst_low_frac <= 1)))
        return ferr_set(e, FERR_INVAL, "burst", "period >= 50 ms, duty and low in 0..1");
    if (!(par->link_bps > 0))
        return ferr_set(e, FERR_INVAL, "link_bps", "must be > 0");
    if (!(par->max_bw_bps >= 0))
        return ferr_set(e, FERR_INVAL, "max_bw_bps", "must be >= 0");
    if (par->throttle_max > 99 || par->throttle_initial > 99 || par->throttle_increment > 99 ||
        par->throttle_trigger < 1 || par->throttle_trigger > 100)
        return ferr_set(e, FERR_INVAL, "throttle", "percentages out of range");
    if (!(par->scan_pps > 0))
        return ferr_set(e, FERR_INVAL, "scan_pps", "must be > 0");

    memset(m, 0, sizeof(*m));
    m->wl = *wl;
    m->par = *par;
    m->rng = par->seed ? par->seed : 0x9E3779B97F4A7C15ULL;
    m->hint_rng = m->rng ^ 0xD1B54A32D192ED03ULL;
    ram_pages = (double)wl->ram_bytes / PRECOPY_PAGE_SIZE;
    m->ngroups = PRECOPY_MAX_GROUPS;
    gpages = ram_pages / m->ngroups;

    /* Zero pages live outside the initial working set (the guest keeps the
     * pages it writes non-zero); spread evenly over the cold groups. */
    hot_range(m, 0, &first, &count);
    cold_pages = gpages * (m->ngroups - count);
    zero_pages = wl->zero_frac * ram_pages;
    if (zero_pages > cold_pages)
        zero_pages = cold_pages;
    for (int i = 0; i < m->ngroups; i++) {
        int hot = count > 0 && ((i - first + m->ngroups) % m->ngroups) < count;
        m->g[i].pages = gpages;
        m->g[i].bmap_z = (!hot && cold_pages > 0) ? zero_pages / (m->ngroups - count) : 0;
        m->g[i].bmap = gpages - m->g[i].bmap_z;
    }
    m->state = PRECOPY_ACTIVE;
    m->sync_count = 1; /* ram_init_bitmaps */
    return 0;
}

int precopy_done(const struct precopy *m)
{
    return m->state == PRECOPY_COMPLETED || m->state == PRECOPY_CANCELLED;
}

/* Stop the guest, fold the last writes in and send the rest at link rate
 * (migration_completion lifts the rate limit). */
static void complete_at(struct precopy *m, double t_sw_ms)
{
    double rest;
    bitmap_sync(m, t_sw_ms);
    rest = pending_wire_bytes(m);
    m->transferred += rest;
    for (int i = 0; i < m->ngroups; i++) {
        m->dup_pages += m->g[i].bmap_z;
        m->norm_pages += m->g[i].bmap;
        m->g[i].bmap = m->g[i].bmap_z = 0;
    }
    m->downtime_ms = rest / m->par.link_bps * 1000.0 + m->par.device_ms;
    m->end_ms = t_sw_ms + m->downtime_ms;
    if (m->paused)
        m->paused_ms = t_sw_ms - m->pause_at_ms;
    m->state = PRECOPY_COMPLETED;
}

/* Sends from the cursor within byte budget *budget and scan budget *scan.
 * Returns the bytes sent. */
static double send_pages(struct precopy *m, double *budget, double *scan)
{
    double sent = 0;
    int idle = 0;
    while (*budget > 0 && *scan > 0 && idle < m->ngroups) {
        struct precopy_group *g = &m->g[m->cursor];
        double avail = g->bmap + g->bmap_z, fz, cost, k;
        if (avail < 1e-9) {
            g->bmap = g->bmap_z = 0;
            m->cursor = (m->cursor + 1) % m->ngroups;
            idle++;
            continue;
        }
        idle = 0;
        fz = g->bmap_z / avail;
        cost = fz * PRECOPY_ZERO_COST + (1 - fz) * WIRE_PAGE;
        k = *budget / cost;
        if (k > *scan)
            k = *scan;
        if (k >= avail) {
            k = avail;
            g->bmap = g->bmap_z = 0;
            m->cursor = (m->cursor + 1) % m->ngroups;
        } else {
            g->bmap -= k * (1 - fz);
            g->bmap_z -= k * fz;
        }
        m->dup_pages += k * fz;
        m->norm_pages += k * (1 - fz);
        *budget -= k * cost;
        *scan -= k;
        sent += k * cost;
        if (k < avail && (*budget <= 1e-6 || *scan <= 1e-9))
            break;
    }
    return sent;
}

/* calc-dirty-rate in page-sampling mode, run back to back over windows of
 * PRECOPY_HINT_MS (the agent polls it): QEMU hashes PRECOPY_HINT_SAMPLES
 * random pages per GiB, hashes them again calc-time later and scales the
 * share that changed to the RAM size (migration/dirtyrate.c). So the result
 * is the distinct-page dirty rate over the window plus binomial sampling
 * noise, reported in whole MiB/s. A window with no writes reads 1 page/s
 * (the sample's 0 means "unknown"). */
static void calc_dirty_rate(struct precopy *m)
{
    double ram_pages = (double)m->wl.ram_bytes / PRECOPY_PAGE_SIZE, distinct = 0, n, p, mibps;
    for (int i = 0; i < m->ngroups; i++) {
        distinct += m->g[i].clog;
        m->g[i].clog = 0;
    }
    n = PRECOPY_HINT_SAMPLES * (double)m->wl.ram_bytes / (1024.0 * 1024.0 * 1024.0);
    if (n < 1)
        n = 1;
    p = distinct / ram_pages;
    p += sqrt(p * (1 - p) / n) * rng_normal(&m->hint_rng);
    p = p < 0 ? 0 : p > 1 ? 1 : p;
    mibps = floor(p * (double)m->wl.ram_bytes / (1024.0 * 1024.0) * 1000.0 / PRECOPY_HINT_MS);
    m->hint_pps = mibps >= 1 ? (uint64_t)mibps * (1024 * 1024 / PRECOPY_PAGE_SIZE) : 1;
}

void precopy_step(struct precopy *m)
{
    const double dt = PRECOPY_TICK_MS / 1000.0;
    double t = m->t_ms, link, used = 0, scan, dirty_f, link_f;
    int syncs = 0;

    if (precopy_done(m))
        return;
    if (fmod(t, PRECOPY_WINDOW_MS) < 1e-9) {
        double cap = m->par.max_bw_bps;
        m->window_left = cap > 0 ? cap * PRECOPY_WINDOW_MS / 1000.0 : INFINITY;
        m->window_sent = 0;
    }
    dirty_f = noise_factor(m, 0.0);
    link_f = noise_factor(m, 0.2);
    link = m->par.link_bps * link_f;

    /* Guest writes: uniform over the working set, in expectation. */
    if (m->state == PRECOPY_ACTIVE && !m->paused) {
        int first, count;
        double wpps = precopy_dirty_bps_at(&m->wl, t) * (1.0 - m->throttle / 100.0) * dirty_f /
                      PRECOPY_PAGE_SIZE;
        hot_range(m, t, &first, &count);
        if (count > 0 && wpps > 0) {
            double hot_pages = m->g[0].pages * count;
            double keep = exp(-wpps * dt / hot_pages);
            for (int j = 0; j < count; j++) {
                struct precopy_group *g = &m->g[(first + j) % m->ngroups];
                double moved = g->bmap_z * (1 - keep);
                g->log += (g->pages - g->log) * (1 - keep);
                g->clog += (g->pages - g->clog) * (1 - keep);
                g->cdist += (g->pages - g->cdist) * (1 - keep);
                g->bmap_z -= moved;
                g->bmap += moved;
            }
        }
    }
    if (m->state == PRECOPY_ACTIVE)
        m->throttle_pct_s += m->throttle * dt;

    scan = m->par.scan_pps * dt;
    if (m->state == PRECOPY_POSTCOPY && m->post_resume_ms > t) /* device state moving */
        used = fmin(dt, (m->post_resume_ms - t) / 1000.0);

    while (used < dt && !precopy_done(m)) {
        double budget = (dt - used) * link, sent;
        double now = t + used * 1000.0;
        if (m->state == PRECOPY_ACTIVE) {
            double pend = pending_pages(m);
            if (pend * PRECOPY_PAGE_SIZE < m->threshold || pend < EPS_PAGES) {
                if (syncs >= MAX_SYNCS_PER_TICK)
                    break;
                bitmap_sync(m, now);
                syncs++;
                used += sync_cost_s(m);
                now = t + fmin(used, dt) * 1000.0;
                pend = pending_pages(m);
                if (pend * PRECOPY_PAGE_SIZE < m->threshold || pend < EPS_PAGES) {
                    complete_at(m, now);
                    break;
                }
                continue;
            }
            if (budget > m->window_left)
                budget = m->window_left;
        }
        if (budget <= 0 || scan <= 0)
            break;
        sent = send_pages(m, &budget, &scan);
        m->transferred += sent;
        m->window_sent += sent;
        if (m->state == PRECOPY_ACTIVE)
            m->window_left -= sent;
        used += sent / link;
        if (m->state == PRECOPY_POSTCOPY && pending_pages(m) < EPS_PAGES) {
            double t_end = t + fmin(used, dt) * 1000.0;
            for (int i = 0; i < m->ngroups; i++)
                m->g[i].bmap = m->g[i].bmap_z = 0;
            m->postcopy_ms = t_end - m->post_start_ms;
            m->end_ms = t_end;
            m->state = PRECOPY_COMPLETED;
            break;
        }
        if (sent <= 0 || (m->state == PRECOPY_ACTIVE && m->window_left <= 1e-6))
            break;
    }
    m->t_ms = t + PRECOPY_TICK_MS;
    if (!precopy_done(m) && fmod(m->t_ms, PRECOPY_HINT_MS) < 1e-9)
        calc_dirty_rate(m);
    if (!precopy_done(m) && fmod(m->t_ms, PRECOPY_WINDOW_MS) < 1e-9) {
        /* migration_update_counters: bandwidth and threshold per window. */
        m->bw_meas = m->window_sent * 1000.0 / PRECOPY_WINDOW_MS;
        m->threshold = m->bw_meas * m->par.downtime_limit_ms / 1000.0;
    }
}

void precopy_observe(const struct precopy *m, struct precopy_obs *o)
{
    double pend = pending_pages(m);
    memset(o, 0, sizeof(*o));
    o->t_ms = m->t_ms;
    o->state = m->state;
    o->paused = m->paused;
    o->ram_total = m->wl.ram_bytes;
    o->ram_transferred = (uint64_t)m->transferred;
    o->ram_remaining = (uint64_t)(pend * PRECOPY_PAGE_SIZE + 0.5);
    o->duplicate_pages = (uint64_t)m->dup_pages;
    o->normal_pages = (uint64_t)m->norm_pages;
    o->dirty_pages_rate = m->dirty_rate_pps;
    o->dirty_sync_count = m->sync_count;
    o->throttle_pct = m->throttle;
    o->bw_bps = m->bw_meas;
    o->expected_downtime_ms =
        m->bw_meas > 0 ? (uint64_t)(pend * PRECOPY_PAGE_SIZE / m->bw_meas * 1000.0) : 0;
    o->downtime_limit_ms = m->par.downtime_limit_ms;
    o->max_bw_bps = m->par.max_bw_bps;
    o->page_size = PRECOPY_PAGE_SIZE;
    o->dirty_rate_hint_pps = m->hint_pps;
    o->throttle_pct_s = m->throttle_pct_s;
    if (precopy_done(m)) {
        o->total_ms = m->end_ms;
        o->downtime_ms = m->downtime_ms;
        o->paused_ms = m->paused_ms;
        o->postcopy_ms = m->state == PRECOPY_COMPLETED ? m->postcopy_ms : 0;
    }
}

int precopy_set_downtime(struct precopy *m, uint32_t limit_ms)
{
    if (precopy_done(m))
        return FERR_STATE;
    if (limit_ms == 0 || limit_ms > 2000000)
        return FERR_INVAL;
    m->par.downtime_limit_ms = limit_ms;
    return 0;
}

int precopy_set_bandwidth(struct precopy *m, double bps)
{
    if (precopy_done(m))
        return FERR_STATE;
    if (!(bps >= 0))
        return FERR_INVAL;
    m->par.max_bw_bps = bps;
    return 0;
}

int precopy_set_throttle(struct precopy *m, uint32_t pct)
{
    if (m->state != PRECOPY_ACTIVE)
        return FERR_STATE;
    if (pct > 99)
        return FERR_INVAL;
    m->throttle = pct;
    return 0;
}

int precopy_set_auto_converge(struct precopy *m, int on, uint32_t initial, uint32_t increment,
                              uint32_t max)
{
    if (m->state != PRECOPY_ACTIVE)
        return FERR_STATE;
    if (initial > 99 || increment > 99 || max > 99)
        return FERR_INVAL;
    m->par.auto_converge = on ? 1 : 0;
    m->par.throttle_initial = initial;
    m->par.throttle_increment = increment;
    m->par.throttle_max = max;
    return 0;
}

int precopy_start_postcopy(struct precopy *m)
{
    double bitmap_bytes, down;
    if (m->state != PRECOPY_ACTIVE || !m->par.postcopy_ram)
        return FERR_STATE;
    bitmap_sync(m, m->t_ms);
    /* Stop, send device state and the discard bitmap, resume on the
     * destination; the link is busy with that for the downtime. */
    bitmap_bytes = (double)m->wl.ram_bytes / PRECOPY_PAGE_SIZE / 8.0;
    down = m->par.device_ms + bitmap_bytes / m->par.link_bps * 1000.0;
    m->downtime_ms = down;
    if (m->paused)
        m->paused_ms = m->t_ms - m->pause_at_ms;
    m->post_resume_ms = m->t_ms + down;
    m->post_start_ms = m->t_ms;
    m->throttle = 0;
    m->state = PRECOPY_POSTCOPY;
    return 0;
}

int precopy_pause(struct precopy *m)
{
    if (m->state != PRECOPY_ACTIVE)
        return FERR_STATE;
    if (!m->paused) {
        m->paused = 1;
        m->pause_at_ms = m->t_ms;
    }
    return 0;
}

int precopy_abort(struct precopy *m)
{
    if (m->state != PRECOPY_ACTIVE)
        return FERR_STATE;
    m->state = PRECOPY_CANCELLED;
    m->end_ms = m->t_ms;
    return 0;
}
