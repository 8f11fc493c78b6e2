/*
 * What gets announced and when: the serving rule (usable backends against
 * min_healthy, shared VIPs), and the reconciler driving a recording data plane
 * and announcer on a real libev loop as backends go DOWN and UP.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ev.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "announce/announcer.h"
#include "dataplane/dataplane.h"
#include "model.h"
#include "reconcile.h"

static struct lb *make_lb(const char *vip, uint16_t port, int n_backends)
{
	struct lb *lb = lb_new();
	struct backend b;

	assert_non_null(lb);
	assert_int_equal(lb_set_name(lb, "x"), 0);
	assert_int_equal(ip_addr_parse(vip, &lb->vip), 0);
	lb->port = port;
	for (int i = 0; i < n_backends; i++) {
		backend_init(&b);
		assert_int_equal(ip_addr_parse("10.0.0.1", &b.ip), 0);
		b.port = (uint16_t)(8000 + i);
		assert_int_equal(lb_add_backend(lb, &b), 0);
	}
	return lb;
}

static void test_serving_rule(void **st)
{
	struct lb *lb = make_lb("192.0.2.1", 80, 3);

	(void)st;
	/* Not yet probed counts: a restart must not withdraw a working VIP. */
	assert_int_equal(lb_usable_backends(lb), 3);
	assert_true(lb_serving(lb));
	lb->backends[0].health = BACKEND_HEALTH_DOWN;
	lb->backends[1].drained = true;
	assert_int_equal(lb_usable_backends(lb), 1);
	assert_true(lb_serving(lb));
	lb->hc.min_healthy = 2;
	assert_false(lb_serving(lb));
	lb->backends[1].drained = false;
	assert_true(lb_serving(lb));
	lb->backends[2].health = BACKEND_HEALTH_DOWN;
	lb->backends[1].health = BACKEND_HEALTH_UP;
	assert_false(lb_serving(lb));
	/* Without a check, health is not looked at. */
	lb->hc.type = HC_NONE;
	assert_int_equal(lb_usable_backends(lb), 3);
	assert_true(lb_serving(lb));
	/* No backends, or no address yet: nothing to announce. */
	lb->hc.min_healthy = 1;
	lb->status = LB_STATUS_PENDING;
	assert_false(lb_serving(lb));
	lb_free(lb);
	lb = make_lb("192.0.2.1", 80, 0);
	assert_false(lb_serving(lb));
	lb_free(lb);
}

static void test_vips_to_announce(void **st)
{
	struct model *m = model_new();
	struct lb *a = make_lb("192.0.2.1", 80, 1), *b = make_lb("192.0.2.1", 443, 1),
		  *c = make_lb("2001:db8::1", 80, 2), *d = make_lb("192.0.2.9", 80, 1);
	struct ip_addr *v;
	size_t n;

	(void)st;
	assert_int_equal(model_add(m, a), 0);
	assert_int_equal(model_add(m, b), 0);
	assert_int_equal(model_add(m, c), 0);
	assert_int_equal(model_add(m, d), 0);
	n = reconcile_vips_to_announce(m, &v);
	assert_int_equal(n, 3); /* the shared VIP once */
	free(v);

	/* A shared VIP stays while one of its load balancers serves. */
	a->backends[0].health = BACKEND_HEALTH_DOWN;
	assert_true(model_vip_serving(m, &a->vip));
	b->backends[0].health = BACKEND_HEALTH_DOWN;
	assert_false(model_vip_serving(m, &a->vip));
	c->hc.min_healthy = 2;
	c->backends[1].drained = true;
	n = reconcile_vips_to_announce(m, &v);
	assert_int_equal(n, 1);
	assert_true(ip_addr_equal(&v[0], &d->vip));
	free(v);
	d->backends[0].health = BACKEND_HEALTH_DOWN;
	assert_int_equal(reconcile_vips_to_announce(m, &v), 0);
	assert_null(v);
	model_free(m);
}

/* Records what the reconciler asks of the planes. */
struct rec_plane {
	struct dataplane dp;
	int syncs;
	uint32_t weight0; /* effective weight of the first backend at the last sync */
	useconds_t busy_us;  /* CPU time each sync uses */
	useconds_t sleep_us; /* how long each sync waits without using CPU */
};

static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int rec_dp_sync(struct dataplane *dp, const struct model *m)
{
	struct rec_plane *p = (struct rec_plane *)dp;
	struct lb *lb = model_at(m, 0);

	p->syncs++;
	if (p->busy_us) {
		double end = cpu_s() + p->busy_us / 1e6;

		/* CPU time, not wall time or sleep: the rest follows the CPU time a pass used,
		 * and on a loaded machine 80 ms of wall time may be much less of it. */
		while (cpu_s() < end)
			;
	}
	if (p->sleep_us)
		usleep(p->sleep_us);
	p->weight0 = lb && lb->n_backends ? backend_effective_weight(lb, &lb->backends[0]) : 0;
	return 0;
}

static void rec_dp_free(struct dataplane *dp)
{
	(void)dp;
}

static const struct dataplane_ops rec_dp_ops = {
	.name = "recording", .sync = rec_dp_sync, .free = rec_dp_free,
};

struct rec_announcer {
	struct announcer an;
	int syncs;
	size_t n; /* VIPs in the last sync */
};

static int rec_an_sync(struct announcer *an, const struct ip_addr *vips, size_t n)
{
	struct rec_announcer *r = (struct rec_announcer *)an;

	(void)vips;
	r->syncs++;
	r->n = n;
	return 0;
}

static void rec_an_noop(struct announcer *an)
{
	(void)an;
}

static const struct announcer_ops rec_an_ops = {
	.name = "recording", .sync = rec_an_sync, .withdraw_all = rec_an_noop, .free = rec_an_noop,
};

static int prepared;

static void count_prepare(void *arg, const struct model *m)
{
	(void)m;
	*(int *)arg += 1;
}

static void stop_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(loop, EVBREAK_ALL);
}

/* Runs the loop for a little while so a requested pass happens. */
static void spin(struct ev_loop *loop)
{
	ev_timer t;

	/* From now: a pass run outside the loop left the loop's clock behind. */
	ev_now_update(loop);
	ev_timer_init(&t, stop_cb, 0.1, 0.);
	ev_timer_start(loop, &t);
	ev_run(loop, 0);
	ev_timer_stop(loop, &t);
}

static void test_reconciler_follows_health(void **st)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct rec_plane dp = { .dp = { &rec_dp_ops } };
	struct rec_announcer an = { .an = { &rec_an_ops } };
	struct model *m = model_new();
	struct lb *lb = make_lb("192.0.2.1", 80, 2);
	struct reconciler *r;

	(void)st;
	assert_int_equal(model_add(m, lb), 0);
	r = reconciler_new(loop, m, &dp.dp, &an.an, 3600.);
	assert_non_null(r);
	reconciler_set_prepare(r, count_prepare, &prepared);
	assert_int_equal(reconciler_run(r), 0);
	assert_int_equal(prepared, 1);
	assert_int_equal(an.n, 1);
	assert_int_equal(dp.weight0, 1);

	/* One backend DOWN: out of the plane, the VIP stays. A burst of requests is one pass. */
	lb->backends[0].health = BACKEND_HEALTH_DOWN;
	for (int i = 0; i < 50; i++)
		reconciler_request(r);
	spin(loop);
	assert_int_equal(dp.syncs, 2);
	assert_int_equal(prepared, 2);
	assert_int_equal(dp.weight0, 0);
	assert_int_equal(an.n, 1);

	/* Both DOWN: withdrawn. */
	lb->backends[1].health = BACKEND_HEALTH_DOWN;
	reconciler_request(r);
	spin(loop);
	assert_int_equal(an.n, 0);

	/* One back: announced again. */
	lb->backends[0].health = BACKEND_HEALTH_UP;
	reconciler_request(r);
	spin(loop);
	assert_int_equal(an.n, 1);
	assert_int_equal(dp.weight0, 1);
	assert_int_equal(an.syncs, 4);

	reconciler_free(r);
	model_free(m);
	ev_loop_destroy(loop);
}

/* After a pass that used much CPU the next one waits twice that: a stream of requests
 * cannot keep the loop in passes. A cheap pass keeps the short debounce. */
static void test_reconciler_rests(void **st)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct rec_plane dp = { .dp = { &rec_dp_ops }, .busy_us = 80000 };
	struct rec_announcer an = { .an = { &rec_an_ops } };
	struct model *m = model_new();
	struct reconciler *r;

	(void)st;
	assert_int_equal(model_add(m, make_lb("192.0.2.1", 80, 1)), 0);
	r = reconciler_new(loop, m, &dp.dp, &an.an, 3600.);
	assert_non_null(r);
	assert_int_equal(reconciler_run(r), 0);
	reconciler_request(r);
	spin(loop); /* 0.1 s: inside the 0.16 s rest */
	assert_int_equal(dp.syncs, 1);
	spin(loop);
	assert_int_equal(dp.syncs, 2);

	dp.busy_us = 0;
	assert_int_equal(reconciler_run(r), 0);
	reconciler_request(r);
	spin(loop);
	assert_int_equal(dp.syncs, 4);

	/* A pass that only waited (on the disk, say) leaves no rest behind it. */
	dp.sleep_us = 80000;
	assert_int_equal(reconciler_run(r), 0);
	reconciler_request(r);
	spin(loop);
	assert_int_equal(dp.syncs, 6);

	reconciler_free(r);
	model_free(m);
	ev_loop_destroy(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_serving_rule),
		cmocka_unit_test(test_vips_to_announce),
		cmocka_unit_test(test_reconciler_follows_health),
		cmocka_unit_test(test_reconciler_rests),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
