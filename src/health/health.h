/*
 * The health checker: probes every backend of every load balancer whose health_check
 * type is not none, on the daemon's libev loop, and turns probe results into
 * UP / DOWN through a rise/fall machine.
 *
 * Everything runs on the one loop: non-blocking sockets watched by ev_io (TCP probes share
 * one epoll set), and periods and deadlines kept in one queue per distinct interval and
 * per distinct timeout, each behind one ev_timer, so starting or ending a probe does not
 * touch libev's timer heap. Addresses are literal, so there is no name lookup. The first probe of each backend is delayed
 * by a per-backend offset inside the interval, so many backends do not fire in one tick.
 *
 * The checker only reports: on_change is called once per transition, and the caller
 * (the daemon) writes the new health into the model and asks for a reconcile.
 */
#ifndef VIPD_HEALTH_H
#define VIPD_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

#include "model.h"

struct ev_loop;
struct health_checker;

#define HEALTH_REASON_MAX 96

/* Upper bounds of the probe latency buckets, seconds; a last bucket holds the rest. */
#define HEALTH_LATENCY_BUCKETS 12
extern const double health_latency_bounds_s[HEALTH_LATENCY_BUCKETS];

/* Probe outcomes in few enough kinds to count (reasons carry status codes and errno text). */
enum health_result {
	HEALTH_RESULT_OK,
	HEALTH_RESULT_REFUSED,
	HEALTH_RESULT_TIMEOUT,
	HEALTH_RESULT_UNREACHABLE,
	HEALTH_RESULT_RESET,
	HEALTH_RESULT_BAD_RESPONSE, /* wrong status, body or reply, or closed early */
	HEALTH_RESULT_TLS,
	HEALTH_RESULT_ERROR,        /* anything else */
	HEALTH_RESULT_MAX
};

const char *health_result_name(enum health_result r);
/* Pure: the kind of a probe result given its reason text. */
enum health_result health_result_of(bool ok, const char *reason);

struct health_status {
	enum backend_health state;
	char reason[HEALTH_REASON_MAX]; /* last result: "ok", "refused", "timeout", "status 503", ... */
	uint32_t latency_us;            /* of the last probe */
	uint64_t n_ok, n_fail;          /* probes since the backend was first seen */
	uint32_t ok_run, fail_run;      /* consecutive results of the same kind */
	uint64_t n_transitions;
	/* Every finished probe since the backend was first seen: latencies per bucket (not
	 * cumulative; the last is above every bound), their sum, and outcomes by kind. */
	uint64_t latency_hist[HEALTH_LATENCY_BUCKETS + 1];
	uint64_t latency_sum_us;
	uint64_t n_result[HEALTH_RESULT_MAX];
};

/*
 * Called on each transition with the reason of the probe that caused it. It must not
 * call health_sync or health_free (it runs inside the checker's bookkeeping).
 */
typedef void (*health_change_fn)(void *arg, const char *lb_uuid, const char *backend_uuid,
				 enum backend_health h, const char *reason);

/* NULL on ENOMEM. */
struct health_checker *health_new(struct ev_loop *loop, health_change_fn on_change, void *arg);
/*
 * Makes the probed set match the model: starts probes for new backends or those whose
 * check parameters (or address) changed, stops those gone; unchanged ones keep their
 * state and schedule. 0 or -ENOMEM (the set is then partial; a later sync completes it).
 */
int health_sync(struct health_checker *hc, const struct model *m);
/* 0, or -ENOENT if that backend is not probed. */
int health_status(const struct health_checker *hc, const char *lb_uuid, const char *backend_uuid,
		  struct health_status *out);
/* Number of backends being probed. */
size_t health_count(const struct health_checker *hc);
void health_free(struct health_checker *hc);

/*
 * The rise/fall machine, pure. From any state, `fall` consecutive failures make it DOWN
 * and `rise` consecutive successes make it UP (UNKNOWN until either happens). Returns
 * true when the state changed.
 */
struct health_machine {
	enum backend_health state;
	uint32_t ok_run, fail_run;
};

void health_machine_init(struct health_machine *m);
bool health_machine_step(struct health_machine *m, bool ok, uint32_t rise, uint32_t fall);

/* Delay of the first probe, in [0, interval_ms): a hash of the two uuids, so it is
 * spread evenly and stable across syncs. */
uint32_t health_first_delay_ms(const char *lb_uuid, const char *backend_uuid, uint32_t interval_ms);

#endif
