/* impact — per-guest disk throughput and latency from query-blockstats;
 * see impact.h. */
#include "agent/impact.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "util/log.h"
#include "util/xalloc.h"

#define BOUND0_NS 16000.0 /* first histogram boundary, ns */
#define BOUND_STEP 1.25   /* ratio of successive boundaries */

uint64_t impact_bound_ns(unsigned i)
{
    if (i >= IMPACT_BOUNDS)
        return UINT64_MAX;
    return (uint64_t)(BOUND0_NS * pow(BOUND_STEP, (double)i));
}

static uint64_t ju(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    if (json_is_integer(v) && json_integer_value(v) >= 0)
        return (uint64_t)json_integer_value(v);
    return 0;
}

/* Adds the bins of one histogram object to hist when its boundaries are
 * ours. Returns true when they were. */
static bool add_hist(const json_t *h, uint64_t hist[IMPACT_BOUNDS + 1])
{
    const json_t *b = json_object_get(h, "boundaries"), *bins = json_object_get(h, "bins");
    if (!json_is_array(b) || !json_is_array(bins) || json_array_size(b) != IMPACT_BOUNDS ||
        json_array_size(bins) != IMPACT_BOUNDS + 1)
        return false;
    for (unsigned i = 0; i < IMPACT_BOUNDS; i++) {
        const json_t *x = json_array_get(b, i);
        if (!json_is_integer(x) || (uint64_t)json_integer_value(x) != impact_bound_ns(i))
            return false;
    }
    for (unsigned i = 0; i <= IMPACT_BOUNDS; i++) {
        const json_t *x = json_array_get(bins, i);
        if (json_is_integer(x) && json_integer_value(x) > 0)
            hist[i] += (uint64_t)json_integer_value(x);
    }
    return true;
}

unsigned impact_parse_blockstats(const json_t *ret, uint64_t sums[5],
                                 uint64_t hist[IMPACT_BOUNDS + 1], bool *hist_ok,
                                 char devs[IMPACT_DEVS][IMPACT_QDEV_MAX],
                                 bool has_hist[IMPACT_DEVS])
{
    memset(sums, 0, 5 * sizeof(sums[0]));
    memset(hist, 0, (IMPACT_BOUNDS + 1) * sizeof(hist[0]));
    *hist_ok = true;
    unsigned n = 0;
    if (!json_is_array(ret))
        return 0;
    for (size_t i = 0; i < json_array_size(ret) && n < IMPACT_DEVS; i++) {
        const json_t *e = json_array_get(ret, i);
        const char *qdev = json_string_value(json_object_get(e, "qdev"));
        const json_t *st = json_object_get(e, "stats");
        if (!qdev || !qdev[0] || strlen(qdev) >= IMPACT_QDEV_MAX || !json_is_object(st))
            continue; /* not a guest device */
        snprintf(devs[n], IMPACT_QDEV_MAX, "%s", qdev);
        sums[0] += ju(st, "rd_bytes");
        sums[1] += ju(st, "wr_bytes");
        sums[2] += ju(st, "rd_operations");
        sums[3] += ju(st, "wr_operations");
        sums[4] += ju(st, "rd_total_time_ns") + ju(st, "wr_total_time_ns");
        uint64_t h[IMPACT_BOUNDS + 1] = {0};
        bool ok = add_hist(json_object_get(st, "rd_latency_histogram"), h) &&
                  add_hist(json_object_get(st, "wr_latency_histogram"), h);
        has_hist[n] = ok;
        if (ok)
            for (unsigned k = 0; k <= IMPACT_BOUNDS; k++)
                hist[k] += h[k];
        else
            *hist_ok = false;
        n++;
    }
    if (n == 0)
        *hist_ok = false;
    return n;
}

const struct impact_iv *impact_get(const struct inst_impact *im, uint64_t seq)
{
    if (!im || seq == 0 || seq > im->seq || im->seq - seq >= IMPACT_RING)
        return NULL;
    const struct impact_iv *iv = &im->ring[seq % IMPACT_RING];
    return iv->seq == seq ? iv : NULL;
}

void impact_agg_add(struct impact_agg *a, const struct impact_iv *iv)
{
    a->n++;
    a->dur_ms += iv->dur_ms;
    a->rd_bytes += iv->rd_bytes;
    a->wr_bytes += iv->wr_bytes;
    a->rd_ops += iv->rd_ops;
    a->wr_ops += iv->wr_ops;
    a->time_ns += iv->time_ns;
    if (!iv->hist_ok)
        return;
    a->hist_n++;
    for (unsigned i = 0; i <= IMPACT_BOUNDS; i++)
        a->hist[i] += iv->hist[i];
}

void impact_window(const struct inst_impact *im, uint64_t from_ms, uint64_t to_ms,
                   struct impact_agg *a)
{
    memset(a, 0, sizeof(*a));
    if (!im)
        return;
    for (uint64_t s = im->seq; s > 0 && im->seq - s < IMPACT_RING; s--) {
        const struct impact_iv *iv = impact_get(im, s);
        if (!iv || iv->t_ms <= from_ms)
            break;
        if (iv->t_ms <= to_ms)
            impact_agg_add(a, iv);
    }
}

/* q-quantile of the histogram, us; linear inside the bin. */
static double quantile_us(const uint64_t *hist, uint64_t total, double q)
{
    double rank = q * (double)total;
    uint64_t c = 0;
    for (unsigned i = 0; i <= IMPACT_BOUNDS; i++) {
        if (hist[i] == 0)
            continue;
        if ((double)(c + hist[i]) >= rank) {
            double lo = i == 0 ? 0 : (double)impact_bound_ns(i - 1);
            double hi = i == IMPACT_BOUNDS ? lo * BOUND_STEP : (double)impact_bound_ns(i);
            double frac = ((rank - (double)c) / (double)hist[i]);
            if (frac < 0)
                frac = 0;
            return (lo + frac * (hi - lo)) / 1000.0;
        }
        c += hist[i];
    }
    return (double)impact_bound_ns(IMPACT_BOUNDS - 1) / 1000.0;
}

void impact_figures(const struct impact_agg *a, struct impact_fig *f)
{
    memset(f, 0, sizeof(*f));
    f->p50_us = f->p99_us = -1;
    f->ops = a->rd_ops + a->wr_ops;
    f->secs = (double)a->dur_ms / 1000.0;
    if (a->dur_ms == 0)
        return;
    f->bps = (double)(a->rd_bytes + a->wr_bytes) / f->secs;
    f->wr_bps = (double)a->wr_bytes / f->secs;
    f->iops = (double)f->ops / f->secs;
    if (f->ops)
        f->mean_us = (double)a->time_ns / (double)f->ops / 1000.0;
    uint64_t total = 0;
    for (unsigned i = 0; i <= IMPACT_BOUNDS; i++)
        total += a->hist[i];
    if (a->hist_n > 0 && 2 * a->hist_n >= a->n && total > 0) {
        f->p50_us = quantile_us(a->hist, total, 0.50);
        f->p99_us = quantile_us(a->hist, total, 0.99);
    }
}

static json_t *num_or_null(double v)
{
    return v < 0 ? json_null() : json_real(round(v * 10.0) / 10.0);
}

json_t *impact_fig_json(const struct impact_fig *f)
{
    json_t *o = json_object();
    json_object_set_new(o, "bytes_per_s", json_integer((json_int_t)f->bps));
    json_object_set_new(o, "write_bytes_per_s", json_integer((json_int_t)f->wr_bps));
    json_object_set_new(o, "iops", json_real(round(f->iops * 10.0) / 10.0));
    json_object_set_new(o, "mean_latency_us", json_real(round(f->mean_us * 10.0) / 10.0));
    json_object_set_new(o, "p50_latency_us", num_or_null(f->p50_us));
    json_object_set_new(o, "p99_latency_us", num_or_null(f->p99_us));
    json_object_set_new(o, "requests", json_integer((json_int_t)f->ops));
    json_object_set_new(o, "seconds", json_real(round(f->secs * 10.0) / 10.0));
    return o;
}

/* --- the sampler ---------------------------------------------------------- */

static void on_hist_set(struct instance *in, const struct ferr *err, json_t *ret, void *ctx)
{
    (void)ret;
    (void)ctx;
    if (!in || !in->imp || !err)
        return;
    snprintf(in->imp->note, sizeof(in->imp->note), "block-latency-histogram-set: %.120s", err->msg);
    log_warn("agent", "msg=\"latency histogram not available\" instance=%s err=\"%s\"",
             in->spec.name, err->msg);
}

static void set_histogram(struct instance *in, const char *qdev)
{
    json_t *b = json_array();
    for (unsigned i = 0; i < IMPACT_BOUNDS; i++)
        json_array_append_new(b, json_integer((json_int_t)impact_bound_ns(i)));
    if (inst_qmp(in, "block-latency-histogram-set",
                 json_pack("{s:s, s:o}", "id", qdev, "boundaries", b), on_hist_set, NULL) != 0)
        log_debug("agent", "msg=\"histogram-set not sent\"");
}

static void on_blockstats(struct instance *in, const struct ferr *err, json_t *ret, void *ctx)
{
    (void)ctx;
    if (!in || !in->imp)
        return;
    struct inst_impact *im = in->imp;
    im->inflight = false;
    if (err)
        return;
    uint64_t now = agent_now_ms();
    uint64_t sums[5], hist[IMPACT_BOUNDS + 1];
    bool hist_ok, has_hist[IMPACT_DEVS];
    char devs[IMPACT_DEVS][IMPACT_QDEV_MAX];
    unsigned n = impact_parse_blockstats(ret, sums, hist, &hist_ok, devs, has_hist);
    for (unsigned i = 0; i < n; i++) {
        unsigned k = 0;
        while (k < im->n_dev && strcmp(im->devs[k], devs[i]) != 0)
            k++;
        if (k == im->n_dev && im->n_dev < IMPACT_DEVS) {
            memcpy(im->devs[k], devs[i], IMPACT_QDEV_MAX);
            im->hist_sent[k] = false;
            im->n_dev++;
        }
        if (k < im->n_dev && !has_hist[i] && !im->hist_sent[k]) {
            im->hist_sent[k] = true;
            set_histogram(in, devs[i]);
        }
    }
    bool same = im->have_prev && n == im->prev_n_dev && now > im->prev_t_ms &&
                sums[0] >= im->prev_rd_bytes && sums[1] >= im->prev_wr_bytes &&
                sums[2] >= im->prev_rd_ops && sums[3] >= im->prev_wr_ops &&
                sums[4] >= im->prev_time_ns;
    if (same && n > 0) {
        struct impact_iv *iv = &im->ring[(im->seq + 1) % IMPACT_RING];
        memset(iv, 0, sizeof(*iv));
        iv->seq = im->seq + 1;
        iv->t_ms = now;
        iv->dur_ms = now - im->prev_t_ms;
        iv->rd_bytes = sums[0] - im->prev_rd_bytes;
        iv->wr_bytes = sums[1] - im->prev_wr_bytes;
        iv->rd_ops = sums[2] - im->prev_rd_ops;
        iv->wr_ops = sums[3] - im->prev_wr_ops;
        iv->time_ns = sums[4] - im->prev_time_ns;
        iv->hist_ok = hist_ok && im->prev_hist_ok;
        for (unsigned i = 0; iv->hist_ok && i <= IMPACT_BOUNDS; i++) {
            if (hist[i] < im->prev_hist[i]) {
                iv->hist_ok = false; /* reset under us */
                break;
            }
            uint64_t d = hist[i] - im->prev_hist[i];
            iv->hist[i] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
        }
        if (!iv->hist_ok)
            memset(iv->hist, 0, sizeof(iv->hist));
        im->seq++;
    }
    im->have_prev = n > 0;
    im->prev_n_dev = n;
    im->prev_t_ms = now;
    im->prev_rd_bytes = sums[0];
    im->prev_wr_bytes = sums[1];
    im->prev_rd_ops = sums[2];
    im->prev_wr_ops = sums[3];
    im->prev_time_ns = sums[4];
    memcpy(im->prev_hist, hist, sizeof(hist));
    im->prev_hist_ok = hist_ok;
}

void impact_poll(struct instance *in)
{
    if (!in->qmp_ready || in->state == INST_INCOMING || in->state == INST_STARTING)
        return;
    if (!in->imp)
        in->imp = xcalloc(1, sizeof(*in->imp));
    if (in->imp->inflight)
        return;
    in->imp->inflight = true;
    if (inst_qmp(in, "query-blockstats", NULL, on_blockstats, NULL) != 0)
        in->imp->inflight = false;
}

void impact_free(struct instance *in)
{
    free(in->imp);
    in->imp = NULL;
}
