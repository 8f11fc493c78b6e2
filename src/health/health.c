/* The health checker: targets, schedule, rise/fall; see health.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "health/probe.h"
#include "log.h"

/*
 * The schedule keeps libev's heap small: a timer per target for its period and another
 * for each running probe's deadline would put some 2 x 10,000 watchers in it, and every
 * probe would sift it three times (the period's repeat, the deadline's start and stop).
 *
 * Targets of the same period fall due in a fixed rotation, and deadlines of the same
 * timeout in the order their probes started, so each period and each timeout has a
 * queue of targets ordered by due time, behind one timer: a probe costs O(1). The timer
 * is armed at or before the head's time while the queue is not empty (a head that
 * leaves does not rearm it; it fires early and rearms itself for the head it finds).
 * Only a target's first probe, spread inside the period, has a timer of its own.
 *
 * Times are libev's, that of the start of the loop iteration, on CLOCK_MONOTONIC.
 */
struct hc_queue {
	struct hc_queue *next;          /* the checker's queues of that kind */
	uint32_t ms;                    /* the period or timeout */
	unsigned int users;             /* targets with that period or timeout */
	ev_timer timer;
	double armed_at;                /* what the timer is armed for */
	struct hc_link list;            /* by due time */
};

struct health_checker {
	struct ev_loop *loop;
	health_change_fn on_change;
	void *arg;
	struct hc_target **buckets;
	size_t n_buckets;
	size_t n_targets;
	struct hc_queue *ticks, *deadlines;
	double sync_now;                /* the loop's time at the current sync */
	uint64_t synced_generation;     /* of the model at the last complete sync; 0: none */
	SSL_CTX *ssl_ctx;
	struct tcp_pool tcp;
};

void health_machine_init(struct health_machine *m)
{
	memset(m, 0, sizeof(*m));
	m->state = BACKEND_HEALTH_UNKNOWN;
}

bool health_machine_step(struct health_machine *m, bool ok, uint32_t rise, uint32_t fall)
{
	enum backend_health old = m->state;

	if (ok) {
		m->fail_run = 0;
		if (m->ok_run < UINT32_MAX)
			m->ok_run++;
		if (m->ok_run >= (rise ? rise : 1))
			m->state = BACKEND_HEALTH_UP;
	} else {
		m->ok_run = 0;
		if (m->fail_run < UINT32_MAX)
			m->fail_run++;
		if (m->fail_run >= (fall ? fall : 1))
			m->state = BACKEND_HEALTH_DOWN;
	}
	return m->state != old;
}

static uint64_t fnv1a(uint64_t h, const char *s)
{
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t target_hash(const char *lb_uuid, const char *be_uuid)
{
	return fnv1a(fnv1a(0xcbf29ce484222325ULL, lb_uuid), be_uuid);
}

uint32_t health_first_delay_ms(const char *lb_uuid, const char *backend_uuid, uint32_t interval_ms)
{
	uint64_t h = target_hash(lb_uuid, backend_uuid);

	/* FNV's low bits mix poorly on similar keys; fold the high half in. */
	h ^= h >> 32;
	return interval_ms ? (uint32_t)(h % interval_ms) : 0;
}

struct ev_loop *probe_loop(const struct hc_target *t)
{
	return t->owner->loop;
}

struct tcp_pool *probe_tcp_pool(struct hc_target *t)
{
	return &t->owner->tcp;
}

SSL_CTX *probe_ssl_ctx(struct hc_target *t)
{
	struct health_checker *hc = t->owner;

	if (!hc->ssl_ctx) {
		SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

		if (!ctx)
			return NULL;
		/* Servers that close without close_notify still end a close-delimited body. */
		SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
		SSL_CTX_set_default_verify_paths(ctx);
		hc->ssl_ctx = ctx;
	}
	return hc->ssl_ctx;
}

const char *probe_errno_reason(int err)
{
	switch (err) {
	case ECONNREFUSED:
		return "refused";
	case ETIMEDOUT:
		return "timeout";
	case EHOSTUNREACH:
	case ENETUNREACH:
		return "unreachable";
	case ECONNRESET:
		return "reset";
	default:
		return strerror(err);
	}
}

void probe_want(struct hc_target *t, int events)
{
	if ((t->io.events & (EV_READ | EV_WRITE)) == events)
		return;
	ev_io_stop(probe_loop(t), &t->io);
	ev_io_set(&t->io, t->fd, events);
	ev_io_start(probe_loop(t), &t->io);
}

static double ts_s(const struct timespec *ts)
{
	return ts->tv_sec + ts->tv_nsec / 1e9;
}

/* The loop's clock is that of the start of this iteration: how far real time is ahead. */
static double loop_lag(struct ev_loop *loop)
{
	double lag = ev_time() - ev_now(loop);

	return lag > 0 ? lag : 0;
}

static double loop_now(struct ev_loop *loop)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts_s(&ts) - loop_lag(loop);
}

static void link_init(struct hc_link *l)
{
	l->prev = l->next = l;
}

static void link_add_after(struct hc_link *pos, struct hc_link *l)
{
	l->prev = pos;
	l->next = pos->next;
	pos->next->prev = l;
	pos->next = l;
}

static void link_del(struct hc_link *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
}

static bool link_empty(const struct hc_link *head)
{
	return head->next == head;
}

/* For `at`; `now` is the loop's time. */
static void queue_arm(struct ev_loop *loop, struct hc_queue *q, double at, double now)
{
	ev_timer_stop(loop, &q->timer);
	ev_timer_set(&q->timer, at > now ? at - now : 0., 0.);
	ev_timer_start(loop, &q->timer);
	q->armed_at = at;
}

/* After `at` joined q: arms the timer unless it will be due in time anyway (pending, it
 * has fired in this iteration and its callback will arm it). */
static void queue_joined(struct ev_loop *loop, struct hc_queue *q, double at, double now)
{
	if (ev_is_pending(&q->timer) || (ev_is_active(&q->timer) && q->armed_at <= at))
		return;
	queue_arm(loop, q, at, now);
}

static void deadline_start(struct ev_loop *loop, struct hc_target *t)
{
	struct hc_queue *q = t->dl;
	double start = ts_s(&t->t0);

	/* From the probe's real start, which a busy iteration puts after the loop's clock;
	 * later than every deadline queued before. */
	t->dl_at = start + t->cfg.timeout_ms / 1000.0;
	link_add_after(q->list.prev, &t->dl_link);
	if (!ev_is_active(&q->timer) && !ev_is_pending(&q->timer))
		queue_arm(loop, q, t->dl_at, start - loop_lag(loop));
}

static void probe_release(struct hc_target *t)
{
	struct ev_loop *loop = probe_loop(t);

	link_del(&t->dl_link);
	t->busy = false;
	if (t->tsock) {
		/* A pooled TCP socket: no watcher, TLS or response of the probe's own. */
		probe_tcp_release(t);
		return;
	}
	ev_io_stop(loop, &t->io);
	if (t->ssl) {
		SSL_free(t->ssl);
		t->ssl = NULL;
	}
	if (t->fd >= 0) {
		close(t->fd);
		t->fd = -1;
	}
	free(t->resp);
	t->resp = NULL;
}

const double health_latency_bounds_s[HEALTH_LATENCY_BUCKETS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
};

static const char *const result_names[HEALTH_RESULT_MAX] = {
	[HEALTH_RESULT_OK] = "ok",
	[HEALTH_RESULT_REFUSED] = "refused",
	[HEALTH_RESULT_TIMEOUT] = "timeout",
	[HEALTH_RESULT_UNREACHABLE] = "unreachable",
	[HEALTH_RESULT_RESET] = "reset",
	[HEALTH_RESULT_BAD_RESPONSE] = "bad_response",
	[HEALTH_RESULT_TLS] = "tls_error",
	[HEALTH_RESULT_ERROR] = "error",
};

const char *health_result_name(enum health_result r)
{
	return r < HEALTH_RESULT_MAX ? result_names[r] : "error";
}

/* Follows the reasons probe_finish's callers give. */
enum health_result health_result_of(bool ok, const char *reason)
{
	static const char *const bad[] = { "status ", "bad response", "closed", "body mismatch",
					   "reply mismatch" };

	if (ok)
		return HEALTH_RESULT_OK;
	for (enum health_result r = HEALTH_RESULT_REFUSED; r <= HEALTH_RESULT_RESET; r++)
		if (strcmp(reason, result_names[r]) == 0)
			return r;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (strncmp(reason, bad[i], strlen(bad[i])) == 0)
			return HEALTH_RESULT_BAD_RESPONSE;
	if (strncmp(reason, "TLS error", 9) == 0)
		return HEALTH_RESULT_TLS;
	return HEALTH_RESULT_ERROR;
}

static void record_latency(struct health_status *st, uint32_t us)
{
	size_t i = 0;

	while (i < HEALTH_LATENCY_BUCKETS && us / 1e6 > health_latency_bounds_s[i])
		i++;
	st->latency_hist[i]++;
	st->latency_sum_us += us;
}

void probe_finish(struct hc_target *t, bool ok, const char *reason)
{
	struct health_checker *hc = t->owner;
	enum backend_health old = t->m.state;
	struct timespec now;
	size_t len;
	int64_t us;

	if (!t->busy)
		return;
	/* Before the release: its reset is not part of the backend's latency. */
	clock_gettime(CLOCK_MONOTONIC, &now);
	probe_release(t);
	us = (int64_t)(now.tv_sec - t->t0.tv_sec) * 1000000 + (now.tv_nsec - t->t0.tv_nsec) / 1000;
	t->st.latency_us = us < 0 ? 0 : us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
	len = strnlen(reason, sizeof(t->st.reason) - 1);
	memcpy(t->st.reason, reason, len);
	t->st.reason[len] = '\0';
	record_latency(&t->st, t->st.latency_us);
	t->st.n_result[health_result_of(ok, reason)]++;
	if (ok)
		t->st.n_ok++;
	else
		t->st.n_fail++;
	if (!health_machine_step(&t->m, ok, t->cfg.rise_count, t->cfg.fail_count)) {
		t->st.ok_run = t->m.ok_run;
		t->st.fail_run = t->m.fail_run;
		return;
	}
	t->st.state = t->m.state;
	t->st.ok_run = t->m.ok_run;
	t->st.fail_run = t->m.fail_run;
	t->st.n_transitions++;
	{
		char ip[IP_ADDR_STRLEN];

		log_info("msg=\"backend %s\" lb=%s backend=%s addr=%s port=%u from=%s reason=\"%s\" "
			 "after=%u",
			 backend_health_name(t->m.state), t->lb_uuid, t->be_uuid,
			 ip_addr_str(&t->ip, ip), t->port, backend_health_name(old), t->st.reason,
			 ok ? t->m.ok_run : t->m.fail_run);
	}
	if (hc->on_change)
		hc->on_change(hc->arg, t->lb_uuid, t->be_uuid, t->m.state, t->st.reason);
}

static void deadlines_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hc_queue *q = probe_container_of(w, struct hc_queue, timer);
	double now = loop_now(loop);

	(void)revents;
	while (!link_empty(&q->list)) {
		struct hc_target *t = probe_container_of(q->list.next, struct hc_target, dl_link);

		if (t->dl_at > now) {
			queue_arm(loop, q, t->dl_at, now);
			break;
		}
		probe_finish(t, false, "timeout");
	}
}

static void probe_start(struct ev_loop *loop, struct hc_target *t)
{
	int rc;

	/* A probe slower than the interval (timeout > interval) finishes before the next. */
	if (t->busy)
		return;
	t->busy = true;
	t->phase = 0;
	t->sent = 0;
	clock_gettime(CLOCK_MONOTONIC, &t->t0);
	deadline_start(loop, t);
	switch (t->cfg.type) {
	case HC_TCP:
		rc = probe_tcp_start(t);
		break;
	case HC_HTTP:
	case HC_HTTPS:
		rc = probe_http_start(t);
		break;
	case HC_UDP:
		rc = probe_udp_start(t);
		break;
	default:
		rc = -EINVAL;
		break;
	}
	if (rc < 0)
		probe_finish(t, false, probe_errno_reason(-rc));
}

/*
 * The next probe is a period after the last was due, as a repeating ev_timer's: or, if
 * that has passed too (the loop was held up), at once, that is, in the next iteration.
 * Those go to `late`, which the caller puts before everything still to come.
 */
static void tick_next(struct hc_queue *q, struct hc_target *t, double now, struct hc_link *late)
{
	t->tk_at += q->ms / 1000.0;
	if (t->tk_at < now) {
		t->tk_at = now;
		link_add_after(late->prev, &t->tk_link);
	} else {
		link_add_after(q->list.prev, &t->tk_link);
	}
}

static void ticks_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hc_queue *q = probe_container_of(w, struct hc_queue, timer);
	double now = loop_now(loop);
	struct hc_link late;

	(void)revents;
	link_init(&late);
	while (!link_empty(&q->list)) {
		struct hc_target *t = probe_container_of(q->list.next, struct hc_target, tk_link);

		if (t->tk_at >= now)
			break;
		link_del(&t->tk_link);
		tick_next(q, t, now, &late);
		probe_start(loop, t);
	}
	if (!link_empty(&late)) {
		late.prev->next = q->list.next;
		q->list.next->prev = late.prev;
		q->list.next = late.next;
		late.next->prev = &q->list;
	}
	if (!link_empty(&q->list))
		queue_arm(loop, q, probe_container_of(q->list.next, struct hc_target, tk_link)->tk_at,
			  now);
}

/* The first probe, then into the rotation where its time puts it. */
static void first_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct hc_target *t = probe_container_of(w, struct hc_target, first);
	struct hc_queue *q = t->tk;
	double now = loop_now(loop);
	struct hc_link *pos, late;

	(void)revents;
	link_init(&late);
	tick_next(q, t, now, &late);
	if (link_empty(&late)) {
		/* Usually the tail; unless a probe due after this one was rotated before it. */
		pos = t->tk_link.prev;
		while (pos != &q->list &&
		       probe_container_of(pos, struct hc_target, tk_link)->tk_at > t->tk_at)
			pos = pos->prev;
	} else {
		/* After those now due, before those to come. */
		pos = &q->list;
		while (pos->next != &q->list &&
		       probe_container_of(pos->next, struct hc_target, tk_link)->tk_at <= now)
			pos = pos->next;
	}
	link_del(&t->tk_link);
	link_add_after(pos, &t->tk_link);
	queue_joined(loop, q, t->tk_at, now);
	probe_start(loop, t);
}

/* The queue of that period or timeout, made on first use; NULL on ENOMEM. */
static struct hc_queue *queue_get(struct hc_queue **list, uint32_t ms,
				  void (*cb)(struct ev_loop *, ev_timer *, int))
{
	struct hc_queue **p = list, *q;

	for (; *p; p = &(*p)->next)
		if ((*p)->ms == ms)
			break;
	q = *p;
	if (q) {
		/* To the front: a sync adds the backends of one load balancer in a row. */
		*p = q->next;
	} else {
		q = calloc(1, sizeof(*q));
		if (!q)
			return NULL;
		q->ms = ms;
		ev_init(&q->timer, cb);
		link_init(&q->list);
	}
	q->next = *list;
	*list = q;
	q->users++;
	return q;
}

static void queue_put(struct ev_loop *loop, struct hc_queue **list, struct hc_queue *q)
{
	if (--q->users)
		return;
	while (*list != q)
		list = &(*list)->next;
	*list = q->next;
	ev_timer_stop(loop, &q->timer);
	free(q);
}

static void target_free(struct hc_target *t)
{
	struct health_checker *hc = t->owner;

	if (t->busy)
		probe_release(t);
	ev_timer_stop(hc->loop, &t->first);
	if (t->tk_link.next)
		link_del(&t->tk_link);
	queue_put(hc->loop, &hc->ticks, t->tk);
	queue_put(hc->loop, &hc->deadlines, t->dl);
	health_check_clear(&t->cfg);
	free(t->tls_name);
	free(t->http_req);
	free(t);
}

static struct hc_target *target_new(struct health_checker *hc, const struct lb *lb,
				    const struct backend *b)
{
	struct hc_target *t = calloc(1, sizeof(*t));
	char ip[IP_ADDR_STRLEN];
	uint32_t period_ms, first_ms;

	if (!t)
		return NULL;
	t->owner = hc;
	t->fd = -1;
	memcpy(t->lb_uuid, lb->uuid, UUID_STR_LEN);
	memcpy(t->be_uuid, b->uuid, UUID_STR_LEN);
	t->ip = b->ip;
	t->port = lb->hc.port ? lb->hc.port : b->port;
	if (health_check_copy(&t->cfg, &lb->hc) < 0) {
		free(t);
		return NULL;
	}
	if (b->ip.family == AF_INET6) {
		t->sa.v6.sin6_family = AF_INET6;
		t->sa.v6.sin6_addr = b->ip.v6;
		t->sa.v6.sin6_port = htons(t->port);
		t->salen = sizeof(t->sa.v6);
	} else {
		t->sa.v4.sin_family = AF_INET;
		t->sa.v4.sin_addr = b->ip.v4;
		t->sa.v4.sin_port = htons(t->port);
		t->salen = sizeof(t->sa.v4);
	}
	t->tls_name = strdup(t->cfg.host ? t->cfg.host : ip_addr_str(&b->ip, ip));
	if (!t->tls_name || ((t->cfg.type == HC_HTTP || t->cfg.type == HC_HTTPS) &&
			     probe_http_prepare(t) < 0))
		goto fail;
	period_ms = t->cfg.interval_ms ? t->cfg.interval_ms : 1000;
	t->tk = queue_get(&hc->ticks, period_ms, ticks_cb);
	if (!t->tk)
		goto fail;
	t->dl = queue_get(&hc->deadlines, t->cfg.timeout_ms, deadlines_cb);
	if (!t->dl) {
		queue_put(hc->loop, &hc->ticks, t->tk);
		goto fail;
	}
	health_machine_init(&t->m);
	t->st.state = BACKEND_HEALTH_UNKNOWN;
	snprintf(t->st.reason, sizeof(t->st.reason), "not probed yet");
	first_ms = health_first_delay_ms(t->lb_uuid, t->be_uuid, t->cfg.interval_ms);
	t->tk_at = hc->sync_now + first_ms / 1000.0;
	ev_timer_init(&t->first, first_cb, first_ms / 1000.0, 0.);
	ev_timer_start(hc->loop, &t->first);
	return t;
fail:
	health_check_clear(&t->cfg);
	free(t->tls_name);
	free(t->http_req);
	free(t);
	return NULL;
}

static struct hc_target **target_slot(const struct health_checker *hc, const char *lb_uuid,
				      const char *be_uuid)
{
	struct hc_target **p = &hc->buckets[target_hash(lb_uuid, be_uuid) % hc->n_buckets];

	for (; *p; p = &(*p)->next)
		if (!strcmp((*p)->lb_uuid, lb_uuid) && !strcmp((*p)->be_uuid, be_uuid))
			break;
	return p;
}

static int grow(struct health_checker *hc)
{
	size_t n = hc->n_buckets * 2;
	struct hc_target **nb = calloc(n, sizeof(*nb));

	if (!nb)
		return -ENOMEM;
	for (size_t i = 0; i < hc->n_buckets; i++) {
		struct hc_target *t = hc->buckets[i], *next;

		for (; t; t = next) {
			size_t j = target_hash(t->lb_uuid, t->be_uuid) % n;

			next = t->next;
			t->next = nb[j];
			nb[j] = t;
		}
	}
	free(hc->buckets);
	hc->buckets = nb;
	hc->n_buckets = n;
	return 0;
}

struct health_checker *health_new(struct ev_loop *loop, health_change_fn on_change, void *arg)
{
	struct health_checker *hc = calloc(1, sizeof(*hc));

	if (!hc)
		return NULL;
	hc->loop = loop;
	hc->on_change = on_change;
	hc->arg = arg;
	probe_tcp_pool_init(&hc->tcp);
	hc->n_buckets = 64;
	hc->buckets = calloc(hc->n_buckets, sizeof(*hc->buckets));
	if (!hc->buckets) {
		free(hc);
		return NULL;
	}
	return hc;
}

static int sync_one(struct health_checker *hc, const struct lb *lb, const struct backend *b)
{
	struct hc_target **slot = target_slot(hc, lb->uuid, b->uuid), *t = *slot;
	uint16_t port = lb->hc.port ? lb->hc.port : b->port;

	if (t && health_check_probes_equal(&t->cfg, &lb->hc) && ip_addr_equal(&t->ip, &b->ip) &&
	    t->port == port) {
		t->seen = true;
		return 0;
	}
	if (t) {
		/* New parameters start from unknown: old results say nothing about them. */
		*slot = t->next;
		target_free(t);
		hc->n_targets--;
	} else if (hc->n_targets >= hc->n_buckets && grow(hc) == 0) {
		slot = target_slot(hc, lb->uuid, b->uuid);
	}
	t = target_new(hc, lb, b);
	if (!t)
		return -ENOMEM;
	t->seen = true;
	t->next = *slot;
	*slot = t;
	hc->n_targets++;
	return 0;
}

int health_sync(struct health_checker *hc, const struct model *m)
{
	int rc = 0;

	/* Health flips ask for reconcile passes too; they leave the probe set as it is, and
	 * walking 20,000 targets on every one of them kept the loop busy for seconds. */
	if (hc->synced_generation && hc->synced_generation == model_generation(m))
		return 0;
	/* First probes are spread from now: a clock left stale by a long start-up would
	 * make them all due at once. */
	ev_now_update(hc->loop);
	hc->sync_now = loop_now(hc->loop);
	for (size_t i = 0; i < hc->n_buckets; i++)
		for (struct hc_target *t = hc->buckets[i]; t; t = t->next)
			t->seen = false;
	for (size_t i = 0; i < model_count(m); i++) {
		const struct lb *lb = model_at(m, i);

		if (lb->hc.type == HC_NONE)
			continue;
		for (size_t j = 0; j < lb->n_backends; j++)
			if (sync_one(hc, lb, &lb->backends[j]) < 0)
				rc = -ENOMEM;
	}
	for (size_t i = 0; i < hc->n_buckets; i++) {
		struct hc_target **p = &hc->buckets[i];

		while (*p) {
			struct hc_target *t = *p;

			if (t->seen) {
				p = &t->next;
				continue;
			}
			*p = t->next;
			target_free(t);
			hc->n_targets--;
		}
	}
	hc->synced_generation = rc ? 0 : model_generation(m);
	return rc;
}

int health_status(const struct health_checker *hc, const char *lb_uuid, const char *backend_uuid,
		  struct health_status *out)
{
	struct hc_target *t = *target_slot(hc, lb_uuid, backend_uuid);

	if (!t)
		return -ENOENT;
	*out = t->st;
	return 0;
}

size_t health_count(const struct health_checker *hc)
{
	return hc->n_targets;
}

void health_free(struct health_checker *hc)
{
	if (!hc)
		return;
	for (size_t i = 0; i < hc->n_buckets; i++) {
		struct hc_target *t = hc->buckets[i], *next;

		for (; t; t = next) {
			next = t->next;
			target_free(t);
		}
	}
	free(hc->buckets);
	probe_tcp_pool_free(hc->loop, &hc->tcp);
	SSL_CTX_free(hc->ssl_ctx);
	free(hc);
}
