/* GET /metrics: a snapshot of the daemon, rendered in the Prometheus text format 0.0.4. */
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../announce/announcer.h"
#include "../model.h"
#include "../util.h"
#include "../vipsrc.h"
#include "api.h"

/* ---- collecting ---- */

static void backend_addr(const struct backend *b, char *out, size_t len)
{
	char ip[IP_ADDR_STRLEN];

	ip_addr_str(&b->ip, ip);
	snprintf(out, len, b->ip.family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, b->port);
}

static int collect_lb(const struct api_ctx *ctx, const struct lb *lb, struct metrics_lb *out)
{
	struct dataplane *dp = ctx->dataplane;

	out->name = lb->name;
	out->uuid = lb->uuid;
	if (ip_addr_is_set(&lb->vip))
		ip_addr_str(&lb->vip, out->vip);
	out->port = lb->port;
	out->protocol = lb_protocol_name(lb->protocol);
	out->healthy_backends = lb_usable_backends(lb);
	out->traffic.valid = dp && dp->ops->lb_stats && dp->ops->lb_stats(dp, lb, &out->traffic.st) == 0;
	if (!lb->n_backends)
		return 0;
	out->backends = calloc(lb->n_backends, sizeof(*out->backends));
	if (!out->backends)
		return -ENOMEM;
	out->n_backends = lb->n_backends;
	for (size_t i = 0; i < lb->n_backends; i++) {
		const struct backend *b = &lb->backends[i];
		struct metrics_backend *mb = &out->backends[i];

		backend_addr(b, mb->addr, sizeof(mb->addr));
		mb->health = b->health;
		mb->traffic.valid = dp && dp->ops->backend_stats &&
				    dp->ops->backend_stats(dp, lb, b, &mb->traffic.st) == 0;
		mb->probed = ctx->health && lb->hc.type != HC_NONE &&
			     health_status(ctx->health, lb->uuid, b->uuid, &mb->probe) == 0;
	}
	return 0;
}

/* Every VIP once; announced when it is in the set the reconciler hands the announcer. */
static int collect_vips(const struct model *m, struct metrics_snapshot *out)
{
	size_t total = model_count(m), n = 0, n_ann;
	struct ip_addr *all, *ann;

	if (!total)
		return 0;
	all = calloc(total, sizeof(*all));
	if (!all)
		return -ENOMEM;
	for (size_t i = 0; i < total; i++)
		all[i] = model_at(m, i)->vip;
	n = ip_addr_sort_unique(all, total);
	out->vips = n ? calloc(n, sizeof(*out->vips)) : NULL;
	if (n && !out->vips) {
		free(all);
		return -ENOMEM;
	}
	n_ann = reconcile_vips_to_announce(m, &ann);
	for (size_t i = 0; i < n; i++) {
		struct metrics_vip *v = &out->vips[out->n_vips++];

		ip_addr_str(&all[i], v->addr);
		v->announced = ip_addr_in_sorted(ann, n_ann, &all[i]);
	}
	free(ann);
	free(all);
	return 0;
}

int metrics_collect(const struct api_ctx *ctx, struct metrics_snapshot *out)
{
	const struct model *m = ctx->store->model;
	const struct vip_source *src = ctx->store->vips;
	struct announcer *an = ctx->announcer;

	memset(out, 0, sizeof(*out));
	out->version = ctx->version ? ctx->version : "";
	out->dataplane = ctx->dataplane ? ctx->dataplane->ops->name : "none";
	out->start_time = ctx->start_time;
	out->announce_method = "none";
	if (an && strcmp(an->ops->name, "bird") == 0) {
		out->announce_method = "bgp";
		out->have_bird = true;
		bird_announcer_stats(an, &out->bird);
	} else if (an && strcmp(an->ops->name, "arp") == 0) {
		out->announce_method = "arp";
	}
	if (ctx->reconciler) {
		out->have_reconcile = true;
		reconciler_stats(ctx->reconciler, &out->reconcile);
	}
	if (src && strcmp(src->ops->name, "metal") == 0) {
		out->have_cloud = true;
		metal_stats(src, &out->cloud);
	}
	if (model_count(m)) {
		out->lbs = calloc(model_count(m), sizeof(*out->lbs));
		if (!out->lbs)
			return -ENOMEM;
	}
	for (size_t i = 0; i < model_count(m); i++) {
		out->n_lbs++;
		if (collect_lb(ctx, model_at(m, i), &out->lbs[i]))
			return -ENOMEM;
	}
	return collect_vips(m, out);
}

void metrics_snapshot_free(struct metrics_snapshot *s)
{
	for (size_t i = 0; i < s->n_lbs; i++)
		free(s->lbs[i].backends);
	free(s->lbs);
	free(s->vips);
	memset(s, 0, sizeof(*s));
}

/* ---- rendering ---- */

struct wbuf {
	char *p;
	size_t len, cap;
	bool oom; /* sticky: later writes are dropped */
};

static void w_add(struct wbuf *w, const char *s, size_t n)
{
	if (w->oom)
		return;
	if (buf_reserve(&w->p, &w->cap, w->len + n + 1, 4096)) {
		w->oom = true;
		return;
	}
	memcpy(w->p + w->len, s, n);
	w->len += n;
	w->p[w->len] = '\0';
}

static void w_str(struct wbuf *w, const char *s)
{
	w_add(w, s, strlen(s));
}

static void w_fmt(struct wbuf *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void w_fmt(struct wbuf *w, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		w_add(w, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* name="value" with the value escaped as the format wants: backslash, quote, newline. */
static void w_label(struct wbuf *w, bool first, const char *name, const char *value)
{
	const char *c = value ? value : "";

	if (!first)
		w_add(w, ",", 1);
	w_str(w, name);
	w_add(w, "=\"", 2);
	/* Runs without a character to escape go in one copy: a scrape renders hundreds of
	 * thousands of labels. */
	while (*c) {
		size_t run = strcspn(c, "\\\"\n");

		w_add(w, c, run);
		c += run;
		if (*c == '\\')
			w_str(w, "\\\\");
		else if (*c == '"')
			w_str(w, "\\\"");
		else if (*c == '\n')
			w_str(w, "\\n");
		if (*c)
			c++;
	}
	w_str(w, "\"");
}

static void w_family(struct wbuf *w, const char *name, const char *type, const char *help)
{
	w_str(w, "# HELP ");
	w_str(w, name);
	w_str(w, " ");
	w_str(w, help);
	w_str(w, "\n# TYPE ");
	w_str(w, name);
	w_str(w, " ");
	w_str(w, type);
	w_str(w, "\n");
}

/* The shortest of %.15g and %.17g that reads back as v: 3.0163, not 3.0163000000000002. */
static void w_double(struct wbuf *w, double v)
{
	char tmp[40];

	snprintf(tmp, sizeof(tmp), "%.15g", v);
	if (strtod(tmp, NULL) != v)
		snprintf(tmp, sizeof(tmp), "%.17g", v);
	w_fmt(w, " %s\n", tmp);
}

/* " N\n" without printf: most samples of a scrape are counts. */
static void w_int(struct wbuf *w, int64_t v)
{
	char tmp[24], *p = tmp + sizeof(tmp);
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

	*--p = '\n';
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	*--p = ' ';
	w_add(w, p, (size_t)(tmp + sizeof(tmp) - p));
}

/*
 * One sample line. labels: rendered label pairs or ""; extra: one more pair, already in the
 * format (fixed values that need no escaping), or NULL.
 */
static void w_sample(struct wbuf *w, const char *name, const char *labels, const char *extra,
		     double v)
{
	bool any = labels[0] || extra;

	w_str(w, name);
	if (any) {
		w_str(w, "{");
		w_str(w, labels);
		if (extra) {
			if (labels[0])
				w_add(w, ",", 1);
			w_str(w, extra);
		}
		w_str(w, "}");
	}
	/* Counts print as integers; up to 2^53 a double holds them exactly. */
	if (v == (double)(int64_t)v && v < 9007199254740992.0 && v > -9007199254740992.0)
		w_int(w, (int64_t)v);
	else
		w_double(w, v);
}

/* A histogram from per-bucket counts (counts[n] is above every bound): cumulative
 * buckets, +Inf, _sum and _count. */
static void w_hist(struct wbuf *w, const char *name, const char *labels, const double *bounds,
		   size_t n, const uint64_t *counts, double sum)
{
	char bucket[128], le[48];
	uint64_t acc = 0;

	snprintf(bucket, sizeof(bucket), "%s_bucket", name);
	for (size_t i = 0; i <= n; i++) {
		acc += counts[i];
		if (i < n)
			snprintf(le, sizeof(le), "le=\"%.6g\"", bounds[i]);
		else
			snprintf(le, sizeof(le), "le=\"+Inf\"");
		w_sample(w, bucket, labels, le, (double)acc);
	}
	snprintf(bucket, sizeof(bucket), "%s_sum", name);
	w_sample(w, bucket, labels, NULL, sum);
	snprintf(bucket, sizeof(bucket), "%s_count", name);
	w_sample(w, bucket, labels, NULL, (double)acc);
}

static const char *lb_labels(struct wbuf *lab, const struct metrics_lb *lb)
{
	char port[8];

	lab->len = 0;
	snprintf(port, sizeof(port), "%u", lb->port);
	w_label(lab, true, "lb", lb->name);
	w_label(lab, false, "lb_uuid", lb->uuid);
	w_label(lab, false, "vip", lb->vip);
	w_label(lab, false, "port", port);
	w_label(lab, false, "protocol", lb->protocol);
	return lab->oom ? "" : lab->p;
}

static const char *backend_labels(struct wbuf *lab, const struct metrics_lb *lb,
				  const struct metrics_backend *b)
{
	lb_labels(lab, lb);
	w_label(lab, false, "backend", b->addr);
	return lab->oom ? "" : lab->p;
}

enum traffic_field { TR_PACKETS, TR_BYTES, TR_CONNECTIONS, TR_ACTIVE, TR_FIELDS };

static const struct {
	const char *suffix, *type, *help;
} traffic_families[TR_FIELDS] = {
	[TR_PACKETS] = { "packets_total", "counter", "Packets through the data plane, both directions." },
	[TR_BYTES] = { "bytes_total", "counter", "Bytes through the data plane, both directions." },
	[TR_CONNECTIONS] = { "connections_total", "counter", "New connections the data plane saw." },
	[TR_ACTIVE] = { "active_connections", "gauge", "Connections still open, where the plane can tell." },
};

static double traffic_value(const struct dataplane_stats *st, enum traffic_field f)
{
	switch (f) {
	case TR_PACKETS:
		return (double)st->packets;
	case TR_BYTES:
		return (double)st->bytes;
	case TR_CONNECTIONS:
		return (double)st->connections;
	default:
		return (double)st->active_connections;
	}
}

static void render_process(struct wbuf *w, const struct metrics_snapshot *s, struct wbuf *lab)
{
	const struct reconcile_stats *r = &s->reconcile;

	w_family(w, "vipd_up", "gauge", "1 while vipd runs and answers.");
	w_sample(w, "vipd_up", "", NULL, 1);
	lab->len = 0;
	w_label(lab, true, "version", s->version);
	w_label(lab, false, "dataplane", s->dataplane);
	w_label(lab, false, "announce", s->announce_method);
	w_family(w, "vipd_build_info", "gauge", "Version and chosen planes; always 1.");
	w_sample(w, "vipd_build_info", lab->oom ? "" : lab->p, NULL, 1);
	w_family(w, "vipd_process_start_time_seconds", "gauge",
		 "Start time of the process since the epoch, in seconds.");
	w_sample(w, "vipd_process_start_time_seconds", "", NULL, s->start_time);
	w_family(w, "vipd_loadbalancers", "gauge", "Load balancers configured.");
	w_sample(w, "vipd_loadbalancers", "", NULL, (double)s->n_lbs);
	if (!s->have_reconcile)
		return;
	w_family(w, "vipd_reconcile_duration_seconds", "histogram",
		 "Duration of reconcile passes (kernel and announcer brought in line with the model).");
	w_hist(w, "vipd_reconcile_duration_seconds", "", reconcile_duration_bounds_s,
	       RECONCILE_DURATION_BUCKETS, r->duration_hist, r->duration_sum_s);
	w_family(w, "vipd_reconcile_errors_total", "counter", "Reconcile passes that ended with an error.");
	w_sample(w, "vipd_reconcile_errors_total", "", NULL, (double)r->failed);
	w_family(w, "vipd_reconcile_failing", "gauge", "1 when the last reconcile pass failed.");
	w_sample(w, "vipd_reconcile_failing", "", NULL, r->last_err != 0);
	w_family(w, "vipd_reconcile_last_error_timestamp_seconds", "gauge",
		 "When a reconcile pass last failed, seconds since the epoch; 0: never.");
	w_sample(w, "vipd_reconcile_last_error_timestamp_seconds", "", NULL, r->last_error_time);
}

static void render_lbs(struct wbuf *w, const struct metrics_snapshot *s, struct wbuf *lab)
{
	char name[64];

	for (enum traffic_field f = 0; f < TR_FIELDS; f++) {
		snprintf(name, sizeof(name), "vipd_lb_%s", traffic_families[f].suffix);
		w_family(w, name, traffic_families[f].type, traffic_families[f].help);
		for (size_t i = 0; i < s->n_lbs; i++)
			if (s->lbs[i].traffic.valid)
				w_sample(w, name, lb_labels(lab, &s->lbs[i]), NULL,
					 traffic_value(&s->lbs[i].traffic.st, f));
	}
	w_family(w, "vipd_lb_backends", "gauge", "Backends of the load balancer.");
	for (size_t i = 0; i < s->n_lbs; i++)
		w_sample(w, "vipd_lb_backends", lb_labels(lab, &s->lbs[i]), NULL,
			 (double)s->lbs[i].n_backends);
	w_family(w, "vipd_lb_healthy_backends", "gauge",
		 "Backends that take new connections (up and not drained).");
	for (size_t i = 0; i < s->n_lbs; i++)
		w_sample(w, "vipd_lb_healthy_backends", lb_labels(lab, &s->lbs[i]), NULL,
			 (double)s->lbs[i].healthy_backends);
}

static void render_backends(struct wbuf *w, const struct metrics_snapshot *s, struct wbuf *lab)
{
	static const enum backend_health states[] = { BACKEND_HEALTH_UP, BACKEND_HEALTH_DOWN,
						      BACKEND_HEALTH_UNKNOWN };
	char name[64], extra[64];

/* By index: a load balancer without backends may hold a NULL array, and NULL + 0 is
 * undefined. */
#define EACH_BACKEND(lb, b)                                                             \
	for (size_t li_ = 0; li_ < s->n_lbs; li_++)                                      \
		for (const struct metrics_lb *lb = &s->lbs[li_]; lb; lb = NULL)          \
			for (size_t bi_ = 0; bi_ < lb->n_backends; bi_++)                 \
				for (const struct metrics_backend *b = &lb->backends[bi_]; b; \
				     b = NULL)

	for (enum traffic_field f = 0; f < TR_FIELDS; f++) {
		snprintf(name, sizeof(name), "vipd_backend_%s", traffic_families[f].suffix);
		w_family(w, name, traffic_families[f].type, traffic_families[f].help);
		EACH_BACKEND(lb, b)
			if (b->traffic.valid)
				w_sample(w, name, backend_labels(lab, lb, b), NULL,
					 traffic_value(&b->traffic.st, f));
	}
	w_family(w, "vipd_backend_up", "gauge", "1 when the backend is healthy (up), else 0.");
	EACH_BACKEND(lb, b)
		w_sample(w, "vipd_backend_up", backend_labels(lab, lb, b), NULL,
			 b->health == BACKEND_HEALTH_UP);
	w_family(w, "vipd_backend_health_state", "gauge",
		 "Health of the backend: 1 for its current state (up, down, unknown), 0 for the others.");
	EACH_BACKEND(lb, b) {
		const char *labels = backend_labels(lab, lb, b);

		for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
			snprintf(extra, sizeof(extra), "state=\"%s\"", backend_health_name(states[i]));
			w_sample(w, "vipd_backend_health_state", labels, extra, b->health == states[i]);
		}
	}
	w_family(w, "vipd_backend_probes_total", "counter", "Health probes finished, by result.");
	EACH_BACKEND(lb, b) {
		const char *labels = b->probed ? backend_labels(lab, lb, b) : "";

		for (enum health_result r = 0; b->probed && r < HEALTH_RESULT_MAX; r++) {
			snprintf(extra, sizeof(extra), "result=\"%s\"", health_result_name(r));
			w_sample(w, "vipd_backend_probes_total", labels, extra,
				 (double)b->probe.n_result[r]);
		}
	}
	w_family(w, "vipd_backend_probe_duration_seconds", "histogram",
		 "Duration of health probes, whatever their result.");
	EACH_BACKEND(lb, b)
		if (b->probed)
			w_hist(w, "vipd_backend_probe_duration_seconds", backend_labels(lab, lb, b),
			       health_latency_bounds_s, HEALTH_LATENCY_BUCKETS, b->probe.latency_hist,
			       b->probe.latency_sum_us / 1e6);
#undef EACH_BACKEND
}

static void render_vips(struct wbuf *w, const struct metrics_snapshot *s, struct wbuf *lab)
{
	w_family(w, "vipd_vip_announced", "gauge",
		 "1 when the VIP is announced (a load balancer on it is serving), else 0.");
	for (size_t i = 0; i < s->n_vips; i++) {
		lab->len = 0;
		w_label(lab, true, "vip", s->vips[i].addr);
		w_label(lab, false, "method", s->announce_method);
		w_sample(w, "vipd_vip_announced", lab->oom ? "" : lab->p, NULL, s->vips[i].announced);
	}
}

static void render_bird(struct wbuf *w, const struct bird_stats *b)
{
	w_family(w, "vipd_bird_connected", "gauge", "1 while vipd holds BIRD's control socket.");
	w_sample(w, "vipd_bird_connected", "", NULL, b->connected);
	w_family(w, "vipd_bird_connects_total", "counter", "Sessions with BIRD's control socket.");
	w_sample(w, "vipd_bird_connects_total", "", NULL, (double)b->connects);
	w_family(w, "vipd_bird_in_sync", "gauge",
		 "1 when BIRD confirmed a configure that read the current route files.");
	w_sample(w, "vipd_bird_in_sync", "", NULL, b->in_sync);
	w_family(w, "vipd_bird_configures_total", "counter",
		 "Configure commands finished, by result (failed: rejected, timed out or cut off).");
	w_sample(w, "vipd_bird_configures_total", "", "result=\"ok\"", (double)b->configure_ok);
	w_sample(w, "vipd_bird_configures_total", "", "result=\"failed\"",
		 (double)b->configure_failed);
	if (b->last_configure < 0)
		return;
	w_family(w, "vipd_bird_last_configure_success", "gauge",
		 "1 when BIRD took the last configure, 0 when not.");
	w_sample(w, "vipd_bird_last_configure_success", "", NULL, b->last_configure);
	w_family(w, "vipd_bird_last_configure_duration_seconds", "gauge",
		 "How long the last configure took, from sending it to BIRD's answer.");
	w_sample(w, "vipd_bird_last_configure_duration_seconds", "", NULL, b->last_configure_s);
}

static void render_cloud(struct wbuf *w, const struct metal_stats *c)
{
	char extra[32];

	w_family(w, "vipd_cloud_api_requests_total", "counter",
		 "Equinix Metal API requests, by HTTP status class (error: no response).");
	for (enum metal_req_class k = 0; k < METAL_REQ_CLASSES; k++) {
		snprintf(extra, sizeof(extra), "status=\"%s\"", metal_req_class_name(k));
		w_sample(w, "vipd_cloud_api_requests_total", "", extra, (double)c->requests[k]);
	}
	w_family(w, "vipd_cloud_api_retries_total", "counter",
		 "Equinix Metal API steps scheduled again after a failure.");
	w_sample(w, "vipd_cloud_api_retries_total", "", NULL, (double)c->retries);
}

int metrics_render(const struct metrics_snapshot *s, char **out)
{
	struct wbuf w = { 0 }, lab = { 0 };

	render_process(&w, s, &lab);
	render_lbs(&w, s, &lab);
	render_backends(&w, s, &lab);
	render_vips(&w, s, &lab);
	if (s->have_bird)
		render_bird(&w, &s->bird);
	if (s->have_cloud)
		render_cloud(&w, &s->cloud);
	if (lab.oom)
		w.oom = true;
	free(lab.p);
	if (w.oom) {
		free(w.p);
		*out = NULL;
		return -ENOMEM;
	}
	*out = w.p;
	return 0;
}
