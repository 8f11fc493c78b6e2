#include "reconcile.h"

#include <errno.h>
#include <ev.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "announce/announcer.h"
#include "dataplane/dataplane.h"
#include "log.h"
#include "model.h"
#include "util.h"

/* Long enough to fold a burst of API calls or health flips into one pass, short
 * enough that a route follows an API call well within a second. */
#define RECONCILE_DEBOUNCE_S 0.02
/* A pass is followed by at least this many times the CPU time it used, so a stream of
 * changes (an API client creating thousands of load balancers, thousands of backends
 * flipping) leaves the API and the probes at least two thirds of the loop. CPU time, not
 * wall time: a pass that waited on the disk did not hold the loop for anyone else, and
 * a health flip must not wait behind an fsync for its backend to leave the plane. */
#define RECONCILE_REST_FACTOR 2.0

struct reconciler {
	struct ev_loop *loop;
	struct model *model;
	struct dataplane *dp;
	struct announcer *an;
	ev_timer debounce;
	ev_timer periodic;
	int last_err;
	double last_end;                /* of the last pass, monotonic seconds */
	double last_cpu;                /* CPU seconds the last pass used */
	struct reconcile_stats stats;
	reconcile_prepare_fn prepare;
	void *prepare_arg;
};

size_t reconcile_vips_to_announce(const struct model *m, struct ip_addr **out)
{
	size_t n = 0, total = model_count(m), w = 0;
	struct ip_addr *v;

	*out = NULL;
	if (!total)
		return 0;
	v = calloc(total, sizeof(*v));
	if (!v)
		return 0;
	for (size_t i = 0; i < total; i++) {
		const struct lb *lb = model_at(m, i);

		if (lb_serving(lb))
			v[n++] = lb->vip;
	}
	w = ip_addr_sort_unique(v, n);
	if (!w) {
		free(v);
		return 0;
	}
	*out = v;
	return w;
}

const double reconcile_duration_bounds_s[RECONCILE_DURATION_BUCKETS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
};

static void record_pass(struct reconcile_stats *st, double d, int err)
{
	size_t i = 0;

	while (i < RECONCILE_DURATION_BUCKETS && d > reconcile_duration_bounds_s[i])
		i++;
	st->duration_hist[i]++;
	st->duration_sum_s += d;
	st->runs++;
	st->last_err = err;
	if (err) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		st->failed++;
		st->last_error_time = (double)ts.tv_sec + ts.tv_nsec / 1e9;
	}
}

static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int reconciler_run(struct reconciler *r)
{
	double t0 = monotonic_s(), cpu0 = cpu_s();
	struct ip_addr *vips;
	size_t n;
	int err, aerr;

	if (r->prepare)
		r->prepare(r->prepare_arg, r->model);
	err = r->dp->ops->sync(r->dp, r->model);
	n = reconcile_vips_to_announce(r->model, &vips);
	aerr = r->an->ops->sync(r->an, vips, n);
	free(vips);
	if (!err)
		err = aerr;
	if (err != r->last_err) {
		if (err)
			log_warn("msg=\"reconcile incomplete\" err=%d (%s); retrying on the next pass", err,
				 strerror(-err));
		else if (r->last_err)
			log_info("msg=\"reconcile recovered\"");
	}
	r->last_err = err;
	r->last_end = monotonic_s();
	r->last_cpu = cpu_s() - cpu0;
	record_pass(&r->stats, r->last_end - t0, err);
	log_debug("msg=\"reconciled\" loadbalancers=%zu announced=%zu", model_count(r->model), n);
	return err;
}

static void debounce_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	reconciler_run(w->data);
}

static void periodic_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	reconciler_run(w->data);
}

struct reconciler *reconciler_new(struct ev_loop *loop, struct model *m, struct dataplane *dp,
				  struct announcer *an, double periodic_s)
{
	struct reconciler *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->loop = loop;
	r->model = m;
	r->dp = dp;
	r->an = an;
	ev_timer_init(&r->debounce, debounce_cb, RECONCILE_DEBOUNCE_S, 0.);
	r->debounce.data = r;
	ev_timer_init(&r->periodic, periodic_cb, periodic_s, periodic_s);
	r->periodic.data = r;
	ev_timer_start(loop, &r->periodic);
	return r;
}

void reconciler_set_prepare(struct reconciler *r, reconcile_prepare_fn fn, void *arg)
{
	r->prepare = fn;
	r->prepare_arg = arg;
}

void reconciler_stats(const struct reconciler *r, struct reconcile_stats *out)
{
	*out = r->stats;
}

void reconciler_request(struct reconciler *r)
{
	double rest;

	if (ev_is_active(&r->debounce))
		return;
	rest = r->last_end + RECONCILE_REST_FACTOR * r->last_cpu - monotonic_s();
	/* The timer counts from the loop's clock, which a long pass earlier in this loop
	 * iteration left behind: without the update the rest would be shorter by that pass. */
	ev_now_update(r->loop);
	ev_timer_set(&r->debounce, rest > RECONCILE_DEBOUNCE_S ? rest : RECONCILE_DEBOUNCE_S, 0.);
	ev_timer_start(r->loop, &r->debounce);
}

void reconciler_free(struct reconciler *r)
{
	if (!r)
		return;
	ev_timer_stop(r->loop, &r->debounce);
	ev_timer_stop(r->loop, &r->periodic);
	free(r);
}
