/*
 * The reconciler: the only code that turns the model into kernel and BIRD
 * state. Requests are debounced (many changes, one pass) and a periodic pass
 * repairs drift.
 */
#ifndef VIPD_RECONCILE_H
#define VIPD_RECONCILE_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"

struct ev_loop;
struct model;
struct dataplane;
struct announcer;
struct reconciler;

struct reconciler *reconciler_new(struct ev_loop *loop, struct model *m, struct dataplane *dp,
				  struct announcer *an, double periodic_s);
void reconciler_free(struct reconciler *r);
/*
 * Work that follows the model but is not kernel or BIRD state (the health checker's
 * probe set), run at the start of every pass so a burst of changes costs it one run.
 */
typedef void (*reconcile_prepare_fn)(void *arg, const struct model *m);
void reconciler_set_prepare(struct reconciler *r, reconcile_prepare_fn fn, void *arg);
/* Ask for a pass soon (coalesced). Safe to call from any callback on the loop. */
void reconciler_request(struct reconciler *r);
/* Run one pass now. 0 or the first error. */
int reconciler_run(struct reconciler *r);
/* Upper bounds of the pass duration buckets, seconds; a last bucket holds the rest. */
#define RECONCILE_DURATION_BUCKETS 10
extern const double reconcile_duration_bounds_s[RECONCILE_DURATION_BUCKETS];

/* Counters for metrics. */
struct reconcile_stats {
	uint64_t runs;
	uint64_t failed;                /* passes that ended with an error */
	int last_err;                   /* of the last pass: 0 or -errno */
	double last_error_time;         /* wall clock (s since the epoch) of the last failed pass; 0: none */
	uint64_t duration_hist[RECONCILE_DURATION_BUCKETS + 1]; /* per bucket, not cumulative */
	double duration_sum_s;
};

void reconciler_stats(const struct reconciler *r, struct reconcile_stats *out);
/* Pure: the VIPs that should be announced (each once, sorted): those of serving load
 * balancers (lb_serving: enough usable backends). */
size_t reconcile_vips_to_announce(const struct model *m, struct ip_addr **out);

#endif
