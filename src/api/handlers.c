/* The REST API's logic: routing, bodies, status codes. No sockets here. */
#include "api.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "../dataplane/dataplane.h"
#include "../health/health.h"
#include "../lb_json.h"
#include "../log.h"
#include "../model.h"
#include "../reconcile.h"
#include "../util.h"
#include "metrics.h"

#define API_MAX_SEGMENTS 6
#define API_ERR_LEN 1024

static void respond_json(struct api_response *resp, unsigned status, cJSON *body)
{
	resp->status = status;
	resp->body = body ? cJSON_PrintUnformatted(body) : NULL;
	cJSON_Delete(body);
	if (!resp->body) {
		resp->status = 500;
		resp->body = strdup("{\"error\":\"out of memory\"}");
	}
}

static void respond_error(struct api_response *resp, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void respond_error(struct api_response *resp, unsigned status, const char *fmt, ...)
{
	char msg[API_ERR_LEN];
	cJSON *o = cJSON_CreateObject();
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cJSON_AddStringToObject(o, "error", msg);
	respond_json(resp, status, o);
}

/* Store errors to HTTP: a full range is a conflict with what exists, not a server fault. */
static unsigned status_of(int err)
{
	switch (err) {
	case -EINVAL:
		return 400;
	case -ENOENT:
		return 404;
	case -EEXIST:
	case -ENOSPC:
		return 409;
	default:
		return 500;
	}
}

static void respond_store_error(struct api_response *resp, int err, const char *msg)
{
	if (err == -ENOSPC && !msg[0])
		msg = "vip: no free address in the configured ranges";
	respond_error(resp, status_of(err), "%s", msg[0] ? msg : strerror(-err));
}

/* lb_json reports every problem, one per line; the first is enough for an API caller. */
static void respond_invalid(struct api_response *resp, char *err)
{
	err[strcspn(err, "\n")] = '\0';
	respond_error(resp, 400, "%s", err);
}

/* Parses a JSON object body; on failure responds and returns NULL. */
static cJSON *parse_body(const struct api_request *req, struct api_response *resp)
{
	const char *end = NULL;
	cJSON *doc;

	if (req->body_len > API_MAX_BODY) {
		respond_error(resp, 413, "body: larger than %d bytes", API_MAX_BODY);
		return NULL;
	}
	if (!req->body || req->body_len == 0) {
		respond_error(resp, 400, "body: required (a JSON object)");
		return NULL;
	}
	doc = cJSON_ParseWithLengthOpts(req->body, req->body_len, &end, false);
	if (!doc) {
		size_t off = end && end >= req->body ? (size_t)(end - req->body) : 0;

		respond_error(resp, 400, "body: invalid JSON at offset %zu", off);
		return NULL;
	}
	if (!cJSON_IsObject(doc)) {
		cJSON_Delete(doc);
		respond_error(resp, 400, "body: must be a JSON object");
		return NULL;
	}
	return doc;
}

static void add_stats(cJSON *obj, const struct dataplane_stats *st)
{
	cJSON *s = cJSON_AddObjectToObject(obj, "stats");

	cJSON_AddNumberToObject(s, "packets", (double)st->packets);
	cJSON_AddNumberToObject(s, "bytes", (double)st->bytes);
	cJSON_AddNumberToObject(s, "connections", (double)st->connections);
	cJSON_AddNumberToObject(s, "active_connections", (double)st->active_connections);
}

/* The last probe of a backend, as the checker saw it. */
static void add_check(cJSON *obj, const struct health_status *hs)
{
	cJSON *c = cJSON_AddObjectToObject(obj, "check");

	cJSON_AddStringToObject(c, "result", hs->reason[0] ? hs->reason : "pending");
	cJSON_AddNumberToObject(c, "latency_ms", hs->latency_us / 1000.0);
	cJSON_AddNumberToObject(c, "ok", (double)hs->n_ok);
	cJSON_AddNumberToObject(c, "failed", (double)hs->n_fail);
	cJSON_AddNumberToObject(c, "transitions", (double)hs->n_transitions);
}

/*
 * A drained backend takes no new connections; it is "draining" while the data plane
 * still sees some of its old ones, "drained" when none are left or the drain timeout
 * has passed (a plane that cannot count connections reports drained at once).
 */
static const char *drain_state(const struct api_ctx *ctx, const struct backend *b,
			       const struct dataplane_stats *st, double now)
{
	double since = b->drain_since > 0 ? b->drain_since : ctx->started;

	if (st && st->active_connections > 0 && now - since < ctx->drain_timeout_s)
		return "draining";
	return "drained";
}

static void fill_backend(struct api_ctx *ctx, const struct lb *lb, const struct backend *b,
			 cJSON *bj, double now)
{
	struct dataplane *dp = ctx->dataplane;
	struct dataplane_stats st;
	struct health_status hs;
	bool have_st = dp && dp->ops->backend_stats &&
		       dp->ops->backend_stats(dp, lb, b, &st) == 0;

	if (have_st)
		add_stats(bj, &st);
	if (ctx->health && lb->hc.type != HC_NONE &&
	    health_status(ctx->health, lb->uuid, b->uuid, &hs) == 0)
		add_check(bj, &hs);
	if (b->drained)
		cJSON_ReplaceItemInObjectCaseSensitive(
			bj, "state", cJSON_CreateString(drain_state(ctx, b, have_st ? &st : NULL, now)));
}

/* The API view: the object plus what only the running daemon knows (traffic,
 * probe results, drain progress, whether the VIP is announced). */
/* The VIPs to announce, worked out once for a whole listing: asking the model per load
 * balancer walks every load balancer for each one. */
struct announced_set {
	struct ip_addr *vips;
	size_t n;
};

static bool lb_announced(struct api_ctx *ctx, const struct lb *lb, const struct announced_set *set)
{
	if (set)
		return ip_addr_in_sorted(set->vips, set->n, &lb->vip);
	/* Another load balancer on the same VIP may keep it announced. */
	return lb_serving(lb) || model_vip_serving(ctx->store->model, &lb->vip);
}

/* set: from a listing, or NULL for a single load balancer. */
static cJSON *lb_view(struct api_ctx *ctx, const struct lb *lb, const struct announced_set *set)
{
	cJSON *j = lb_to_json(lb, LB_VIEW_API), *arr;
	struct dataplane *dp = ctx->dataplane;
	struct dataplane_stats st;
	double now = monotonic_s();

	if (!j)
		return NULL;
	cJSON_AddNumberToObject(j, "healthy_backends", (double)lb_usable_backends(lb));
	cJSON_AddBoolToObject(j, "announced", lb_announced(ctx, lb, set));
	if (lb->status == LB_STATUS_PENDING) {
		const struct vip_source *src = ctx->store->vips;
		const char *why = src && src->ops->pending_reason
					  ? src->ops->pending_reason(src, lb->uuid) : NULL;

		if (why)
			cJSON_AddStringToObject(j, "pending_reason", why);
	}
	if (dp && dp->ops->lb_stats && dp->ops->lb_stats(dp, lb, &st) == 0)
		add_stats(j, &st);
	arr = cJSON_GetObjectItemCaseSensitive(j, "backends");
	for (size_t i = 0; cJSON_IsArray(arr) && i < lb->n_backends; i++) {
		cJSON *b = cJSON_GetArrayItem(arr, (int)i);

		if (b)
			fill_backend(ctx, lb, &lb->backends[i], b, now);
	}
	return j;
}

static cJSON *backend_view(struct api_ctx *ctx, const struct lb *lb, const struct backend *b)
{
	cJSON *j = backend_to_json(lb, b, LB_VIEW_API);

	if (j)
		fill_backend(ctx, lb, b, j, monotonic_s());
	return j;
}

/* Appends text to a growing buffer; false on ENOMEM. */
static bool buf_add(char **buf, size_t *len, size_t *cap, const char *text)
{
	size_t n = strlen(text);

	if (buf_reserve(buf, cap, *len + n + 1, 4096))
		return false;
	memcpy(*buf + *len, text, n + 1);
	*len += n;
	return true;
}

/*
 * Appends every load balancer's view, comma-separated, serialising one at a time instead of
 * building one tree for all of them: with 10,000 load balancers the tree alone would be
 * tens of MiB. false on ENOMEM.
 */
static bool add_lb_views(struct api_ctx *ctx, char **buf, size_t *len, size_t *cap)
{
	struct model *m = ctx->store->model;
	struct announced_set set;
	bool ok = true;

	set.n = reconcile_vips_to_announce(m, &set.vips);
	for (size_t i = 0; ok && i < model_count(m); i++) {
		cJSON *j = lb_view(ctx, model_at(m, i), &set);
		char *text = j ? cJSON_PrintUnformatted(j) : NULL;

		cJSON_Delete(j);
		ok = text && (i == 0 || buf_add(buf, len, cap, ",")) && buf_add(buf, len, cap, text);
		free(text);
	}
	free(set.vips);
	return ok;
}

static void list_lbs(struct api_ctx *ctx, struct api_response *resp)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	bool ok = buf_add(&buf, &len, &cap, "[") && add_lb_views(ctx, &buf, &len, &cap);

	if (!ok || !buf_add(&buf, &len, &cap, "]")) {
		free(buf);
		respond_json(resp, 500, NULL);
		return;
	}
	resp->status = 200;
	resp->body = buf;
}

static void create_lb(struct api_ctx *ctx, const struct api_request *req,
		      struct api_response *resp)
{
	char err[API_ERR_LEN] = "";
	cJSON *doc = parse_body(req, resp);
	struct lb *lb = NULL;
	char uuid[UUID_STR_LEN];
	int r;

	if (!doc)
		return;
	r = lb_from_json(doc, LB_JSON_API, "", &lb, err, sizeof(err));
	cJSON_Delete(doc);
	if (r) {
		respond_invalid(resp, err);
		return;
	}
	memcpy(uuid, lb->uuid, sizeof(uuid));
	r = store_create_lb(ctx->store, lb, err, sizeof(err));
	if (r) {
		lb_free(lb);
		respond_store_error(resp, r, err);
		return;
	}
	respond_json(resp, 201, lb_view(ctx, model_find(ctx->store->model, uuid), NULL));
}

static void delete_lb(struct api_ctx *ctx, const char *uuid, struct api_response *resp)
{
	char err[API_ERR_LEN] = "";
	cJSON *o;
	int r = store_delete_lb(ctx->store, uuid, err, sizeof(err));

	if (r) {
		respond_store_error(resp, r, err);
		return;
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "deleted", uuid);
	respond_json(resp, 200, o);
}

static void add_backend(struct api_ctx *ctx, struct lb *lb, const struct api_request *req,
			struct api_response *resp)
{
	char err[API_ERR_LEN] = "";
	cJSON *doc = parse_body(req, resp);
	struct backend b;
	int r;

	if (!doc)
		return;
	r = backend_from_json(doc, LB_JSON_API, "", &b, err, sizeof(err));
	cJSON_Delete(doc);
	if (r) {
		respond_invalid(resp, err);
		return;
	}
	r = store_add_backend(ctx->store, lb, &b, err, sizeof(err));
	if (r) {
		respond_store_error(resp, r, err);
		return;
	}
	respond_json(resp, 201, backend_to_json(lb, lb_find_backend(lb, b.uuid), LB_VIEW_API));
}

/* Splits "/a/b/c/" into segments in buf; returns the count, or -1 if too many. */
static int split_path(const char *path, char *buf, size_t buflen, char **seg)
{
	int n = 0;
	char *save = NULL, *tok;

	snprintf(buf, buflen, "%s", path);
	for (tok = strtok_r(buf, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
		if (n == API_MAX_SEGMENTS)
			return -1;
		seg[n++] = tok;
	}
	return n;
}

static bool is(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

static void method_not_allowed(const struct api_request *req, struct api_response *resp,
			       const char *allowed)
{
	respond_error(resp, 405, "method: %s not allowed on %s (allowed: %s)", req->method,
		      req->path, allowed);
}

static void not_found(const struct api_request *req, struct api_response *resp)
{
	respond_error(resp, 404, "no such endpoint: %s %s", req->method, req->path);
}

static struct lb *find_lb(struct api_ctx *ctx, const char *uuid, struct api_response *resp)
{
	struct lb *lb = uuid_is_valid(uuid) ? model_find(ctx->store->model, uuid) : NULL;

	if (!lb)
		respond_error(resp, 404, "uuid: no load balancer %s", uuid);
	return lb;
}

static struct backend *find_backend(struct lb *lb, const char *uuid, struct api_response *resp)
{
	struct backend *b = uuid_is_valid(uuid) ? lb_find_backend(lb, uuid) : NULL;

	if (!b)
		respond_error(resp, 404, "uuid: no backend %s in load balancer %s", uuid, lb->uuid);
	return b;
}

static void backend_routes(struct api_ctx *ctx, const struct api_request *req,
			   struct api_response *resp, char **seg, int n)
{
	char err[API_ERR_LEN] = "";
	struct lb *lb = find_lb(ctx, seg[1], resp);
	struct backend *b;
	int r;

	if (!lb)
		return;
	if (n == 3) {
		if (is(req->method, "POST"))
			add_backend(ctx, lb, req, resp);
		else
			method_not_allowed(req, resp, "POST");
		return;
	}
	b = find_backend(lb, seg[3], resp);
	if (!b)
		return;
	if (n == 4) {
		if (is(req->method, "DELETE")) {
			cJSON *o;

			r = store_remove_backend(ctx->store, lb, b->uuid, err, sizeof(err));
			if (r) {
				respond_store_error(resp, r, err);
				return;
			}
			o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "deleted", seg[3]);
			respond_json(resp, 200, o);
		} else if (is(req->method, "GET")) {
			respond_json(resp, 200, backend_view(ctx, lb, b));
		} else {
			method_not_allowed(req, resp, "GET, DELETE");
		}
		return;
	}
	if (n == 5 && (is(seg[4], "drain") || is(seg[4], "undrain"))) {
		if (!is(req->method, "POST")) {
			method_not_allowed(req, resp, "POST");
			return;
		}
		r = store_set_drained(ctx->store, lb, b, is(seg[4], "drain"), err, sizeof(err));
		if (r) {
			respond_store_error(resp, r, err);
			return;
		}
		respond_json(resp, 200, backend_view(ctx, lb, b));
		return;
	}
	not_found(req, resp);
}

static void healthz(struct api_ctx *ctx, struct api_response *resp)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "status", "ok");
	cJSON_AddStringToObject(o, "version", ctx->version ? ctx->version : "");
	cJSON_AddNumberToObject(o, "loadbalancers", (double)model_count(ctx->store->model));
	/* The plane in use: what --dataplane auto chose. */
	cJSON_AddStringToObject(o, "dataplane", ctx->dataplane ? ctx->dataplane->ops->name : "none");
	/* Lets scripts and init systems that started vipd in the background find it. */
	cJSON_AddNumberToObject(o, "pid", (double)getpid());
	respond_json(resp, 200, o);
}

static void status_bird(cJSON *o, const struct bird_stats *b)
{
	cJSON *j = cJSON_AddObjectToObject(o, "bird");

	cJSON_AddBoolToObject(j, "connected", b->connected);
	cJSON_AddBoolToObject(j, "in_sync", b->in_sync);
	cJSON_AddStringToObject(j, "last_configure", b->last_configure < 0 ? "none"
						     : b->last_configure ? "ok" : "failed");
	cJSON_AddNumberToObject(j, "last_configure_s", b->last_configure_s);
	cJSON_AddNumberToObject(j, "configures", (double)b->configures);
	cJSON_AddNumberToObject(j, "configure_failed", (double)b->configure_failed);
	cJSON_AddNumberToObject(j, "connects", (double)b->connects);
}

static void status_cloud(cJSON *o, const struct metal_stats *c)
{
	cJSON *j = cJSON_AddObjectToObject(o, "cloud"), *req;

	cJSON_AddStringToObject(j, "provider", "equinix-metal");
	req = cJSON_AddObjectToObject(j, "requests");
	for (int i = 0; i < METAL_REQ_CLASSES; i++)
		cJSON_AddNumberToObject(req, metal_req_class_name((enum metal_req_class)i),
					(double)c->requests[i]);
	cJSON_AddNumberToObject(j, "retries", (double)c->retries);
}

static void status_reconcile(cJSON *o, const struct reconcile_stats *r)
{
	cJSON *j = cJSON_AddObjectToObject(o, "reconcile");

	cJSON_AddNumberToObject(j, "runs", (double)r->runs);
	cJSON_AddNumberToObject(j, "failed", (double)r->failed);
	if (r->last_err)
		cJSON_AddStringToObject(j, "last_error", strerror(-r->last_err));
	else
		cJSON_AddNullToObject(j, "last_error");
	cJSON_AddNumberToObject(j, "last_error_time", r->last_error_time);
}

static void status_errors(cJSON *o)
{
	struct log_recent rec[LOG_RECENT_MAX];
	size_t n = log_recent(rec);
	cJSON *arr = cJSON_AddArrayToObject(o, "last_errors");

	for (size_t i = 0; i < n; i++) {
		cJSON *e = cJSON_CreateObject();

		cJSON_AddNumberToObject(e, "time", rec[i].time);
		cJSON_AddStringToObject(e, "level", log_level_name(rec[i].level));
		cJSON_AddStringToObject(e, "msg", rec[i].msg);
		cJSON_AddItemToArray(arr, e);
	}
}

/* The daemon at a glance for vipctl status: what GET /healthz says, how VIPs are announced
 * and how that goes, every VIP, every load balancer as GET /loadbalancers shows it, and
 * the last problems logged. */
static cJSON *status_head(struct api_ctx *ctx, const struct metrics_snapshot *snap)
{
	cJSON *o = cJSON_CreateObject(), *vips;

	cJSON_AddStringToObject(o, "status", "ok");
	cJSON_AddStringToObject(o, "version", snap->version);
	cJSON_AddNumberToObject(o, "pid", (double)getpid());
	cJSON_AddNumberToObject(o, "uptime_s", monotonic_s() - ctx->started);
	cJSON_AddStringToObject(o, "dataplane", snap->dataplane);
	cJSON_AddStringToObject(o, "announcer", snap->announce_method);
	cJSON_AddStringToObject(o, "log_level", log_level_name(log_get_level()));
	if (snap->have_bird)
		status_bird(o, &snap->bird);
	if (snap->have_cloud)
		status_cloud(o, &snap->cloud);
	if (snap->have_reconcile)
		status_reconcile(o, &snap->reconcile);
	vips = cJSON_AddArrayToObject(o, "vips");
	for (size_t i = 0; i < snap->n_vips; i++) {
		cJSON *v = cJSON_CreateObject();

		cJSON_AddStringToObject(v, "vip", snap->vips[i].addr);
		cJSON_AddBoolToObject(v, "announced", snap->vips[i].announced);
		cJSON_AddItemToArray(vips, v);
	}
	status_errors(o);
	return o;
}

/* The load balancers are spliced in as text, one at a time, as list_lbs does. */
static void status(struct api_ctx *ctx, struct api_response *resp)
{
	struct metrics_snapshot snap;
	char *buf = NULL, *head = NULL;
	size_t len = 0, cap = 0;
	bool ok = metrics_collect(ctx, &snap) == 0;
	cJSON *o = ok ? status_head(ctx, &snap) : NULL;

	metrics_snapshot_free(&snap);
	head = o ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	ok = head && head[strlen(head) - 1] == '}';
	if (ok) {
		head[strlen(head) - 1] = '\0';
		ok = buf_add(&buf, &len, &cap, head) && buf_add(&buf, &len, &cap, ",\"loadbalancers\":[");
	}
	free(head);
	ok = ok && add_lb_views(ctx, &buf, &len, &cap);
	if (!ok || !buf_add(&buf, &len, &cap, "]}")) {
		free(buf);
		respond_json(resp, 500, NULL);
		return;
	}
	resp->status = 200;
	resp->body = buf;
}

static void metrics(struct api_ctx *ctx, struct api_response *resp)
{
	struct metrics_snapshot snap;
	int r = metrics_collect(ctx, &snap);

	if (!r)
		r = metrics_render(&snap, &resp->body);
	metrics_snapshot_free(&snap);
	if (r) {
		respond_json(resp, 500, NULL);
		return;
	}
	resp->status = 200;
	resp->content_type = METRICS_CONTENT_TYPE;
}

void api_handle(struct api_ctx *ctx, const struct api_request *req, struct api_response *resp)
{
	char buf[512];
	char *seg[API_MAX_SEGMENTS];
	int n;

	resp->status = 500;
	resp->body = NULL;
	resp->content_type = NULL;
	if (strlen(req->path) >= sizeof(buf) ||
	    (n = split_path(req->path, buf, sizeof(buf), seg)) < 0) {
		not_found(req, resp);
		return;
	}
	if (n == 1 && is(seg[0], "healthz")) {
		if (is(req->method, "GET"))
			healthz(ctx, resp);
		else
			method_not_allowed(req, resp, "GET");
		return;
	}
	if (n == 1 && is(seg[0], "status")) {
		if (is(req->method, "GET"))
			status(ctx, resp);
		else
			method_not_allowed(req, resp, "GET");
		return;
	}
	if (n == 1 && is(seg[0], "metrics")) {
		if (is(req->method, "GET"))
			metrics(ctx, resp);
		else
			method_not_allowed(req, resp, "GET");
		return;
	}
	if (n == 1 && is(seg[0], "loadbalancers")) {
		if (is(req->method, "GET"))
			list_lbs(ctx, resp);
		else
			method_not_allowed(req, resp, "GET");
		return;
	}
	if (n < 1 || !is(seg[0], "loadbalancer")) {
		not_found(req, resp);
		return;
	}
	if (n == 1) {
		if (is(req->method, "POST"))
			create_lb(ctx, req, resp);
		else
			method_not_allowed(req, resp, "POST");
		return;
	}
	if (n == 2) {
		struct lb *lb;

		if (is(req->method, "GET")) {
			lb = find_lb(ctx, seg[1], resp);
			if (lb)
				respond_json(resp, 200, lb_view(ctx, lb, NULL));
		} else if (is(req->method, "DELETE")) {
			if (find_lb(ctx, seg[1], resp))
				delete_lb(ctx, seg[1], resp);
		} else {
			method_not_allowed(req, resp, "GET, DELETE");
		}
		return;
	}
	if (is(seg[2], "backend") && n >= 3 && n <= 5) {
		backend_routes(ctx, req, resp, seg, n);
		return;
	}
	not_found(req, resp);
}
