#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api/api.h"
#include "cloud/ipam.h"
#include "dataplane/dataplane.h"
#include "model.h"
#include "store.h"

struct fixture {
	struct model *m;
	struct vip_source *src;
	struct store store;
	struct api_ctx ctx;
	int changes;
};

static void on_changed(void *arg)
{
	((struct fixture *)arg)->changes++;
}

static int setup(void **st)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct ipam_range r;
	char err[128];

	assert_int_equal(ipam_range_parse("192.168.1.200-192.168.1.202", &r, err, sizeof(err)), 0);
	f->m = model_new();
	f->src = ipam_new(&r, 1);
	f->store.model = f->m;
	f->store.vips = f->src;
	f->store.changed = on_changed;
	f->store.changed_arg = f;
	f->ctx.store = &f->store;
	f->ctx.version = "test";
	*st = f;
	return 0;
}

static int teardown(void **st)
{
	struct fixture *f = *st;

	model_free(f->m);
	f->src->ops->free(f->src);
	free(f);
	return 0;
}

/* Runs one request; returns the status and the parsed body (caller frees). */
static unsigned call(struct fixture *f, const char *method, const char *path, const char *body,
		     cJSON **out)
{
	struct api_request req = { method, path, body, body ? strlen(body) : 0 };
	struct api_response resp;

	api_handle(&f->ctx, &req, &resp);
	assert_non_null(resp.body);
	*out = cJSON_Parse(resp.body);
	assert_non_null(*out);
	free(resp.body);
	return resp.status;
}

static char *snapshot(struct fixture *f)
{
	cJSON *j;
	char *s;

	assert_int_equal(call(f, "GET", "/loadbalancers", NULL, &j), 200);
	s = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	return s;
}

static const char *str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : "";
}

static void test_slb_session(void **st)
{
	struct fixture *f = *st;
	char path[256], uuid[UUID_STR_LEN], buuid[UUID_STR_LEN];
	cJSON *j;

	assert_int_equal(call(f, "GET", "/loadbalancers", NULL, &j), 200);
	assert_true(cJSON_IsArray(j));
	assert_int_equal(cJSON_GetArraySize(j), 0);
	cJSON_Delete(j);

	assert_int_equal(call(f, "POST", "/loadbalancer",
			      "{\"name\":\"test loadbalancer\", \"port\": 6443}", &j), 201);
	assert_string_equal(str(j, "eip"), "192.168.1.200");
	assert_string_equal(str(j, "vip"), "192.168.1.200");
	assert_true(cJSON_IsArray(cJSON_GetObjectItem(j, "backends")));
	strcpy(uuid, str(j, "uuid"));
	cJSON_Delete(j);
	assert_int_equal(f->changes, 1);

	snprintf(path, sizeof(path), "/loadbalancer/%s/backend", uuid);
	assert_int_equal(call(f, "POST", path, "{\"ip\":\"10.80.96.25\", \"port\": 6443}", &j), 201);
	assert_string_equal(str(j, "ip"), "10.80.96.25");
	assert_string_equal(str(j, "type"), "MASQ");
	strcpy(buuid, str(j, "uuid"));
	cJSON_Delete(j);

	snprintf(path, sizeof(path), "/loadbalancer/%s/", uuid);
	assert_int_equal(call(f, "GET", path, NULL, &j), 200);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "backends")), 1);
	cJSON_Delete(j);

	snprintf(path, sizeof(path), "/loadbalancer/%s/backend/%s/drain", uuid, buuid);
	assert_int_equal(call(f, "POST", path, NULL, &j), 200);
	assert_string_equal(str(j, "state"), "drained");
	cJSON_Delete(j);
	snprintf(path, sizeof(path), "/loadbalancer/%s/backend/%s/undrain", uuid, buuid);
	assert_int_equal(call(f, "POST", path, NULL, &j), 200);
	assert_string_equal(str(j, "state"), "enabled");
	cJSON_Delete(j);

	snprintf(path, sizeof(path), "/loadbalancer/%s/backend/%s", uuid, buuid);
	assert_int_equal(call(f, "DELETE", path, NULL, &j), 200);
	cJSON_Delete(j);
	snprintf(path, sizeof(path), "/loadbalancer/%s", uuid);
	assert_int_equal(call(f, "DELETE", path, NULL, &j), 200);
	cJSON_Delete(j);
	assert_int_equal(model_count(f->m), 0);

	/* released on delete: the same address comes back, and a string port is a number */
	assert_int_equal(call(f, "POST", "/loadbalancer", "{\"name\":\"b\",\"port\":\"6443\"}", &j),
			 201);
	assert_string_equal(str(j, "eip"), "192.168.1.200");
	assert_int_equal(cJSON_GetObjectItem(j, "port")->valueint, 6443);
	cJSON_Delete(j);

	assert_int_equal(call(f, "GET", "/healthz", NULL, &j), 200);
	assert_string_equal(str(j, "status"), "ok");
	assert_string_equal(str(j, "dataplane"), "none"); /* the fixture has no data plane */
	cJSON_Delete(j);
}

/* A data plane that only counts: every backend has `active` open connections. */
static uint64_t active;

static int counting_sync(struct dataplane *dp, const struct model *m)
{
	(void)dp;
	(void)m;
	return 0;
}

static int counting_backend_stats(struct dataplane *dp, const struct lb *lb,
				  const struct backend *b, struct dataplane_stats *out)
{
	(void)dp;
	(void)lb;
	(void)b;
	memset(out, 0, sizeof(*out));
	out->active_connections = active;
	return 0;
}

static const struct dataplane_ops counting_ops = {
	.name = "counting", .sync = counting_sync, .backend_stats = counting_backend_stats,
};

static const cJSON *backend_at(const cJSON *lb, int i)
{
	return cJSON_GetArrayItem(cJSON_GetObjectItem(lb, "backends"), i);
}

/* What only the running daemon knows: backends taking traffic, whether the VIP is
 * announced, and a drain's progress from the data plane's open connections. */
static void test_runtime_view(void **st)
{
	struct fixture *f = *st;
	struct dataplane dp = { &counting_ops };
	char path[256], uuid[UUID_STR_LEN], buuid[UUID_STR_LEN];
	struct lb *lb;
	cJSON *j;

	f->ctx.dataplane = &dp;
	f->ctx.drain_timeout_s = 3600;
	assert_int_equal(call(f, "POST", "/loadbalancer",
			      "{\"name\":\"w\",\"port\":80,\"health_check\":{\"min_healthy\":2}}",
			      &j), 201);
	strcpy(uuid, str(j, "uuid"));
	cJSON_Delete(j);
	snprintf(path, sizeof(path), "/loadbalancer/%s/backend", uuid);
	assert_int_equal(call(f, "POST", path, "{\"ip\":\"10.0.0.1\",\"port\":80}", &j), 201);
	strcpy(buuid, str(j, "uuid"));
	cJSON_Delete(j);
	assert_int_equal(call(f, "POST", path, "{\"ip\":\"10.0.0.2\",\"port\":80}", &j), 201);
	cJSON_Delete(j);

	snprintf(path, sizeof(path), "/loadbalancer/%s", uuid);
	assert_int_equal(call(f, "GET", path, NULL, &j), 200);
	assert_int_equal(cJSON_GetObjectItem(j, "healthy_backends")->valueint, 2);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "announced")));
	assert_string_equal(str(backend_at(j, 0), "health"), "unknown");
	cJSON_Delete(j);

	/* One DOWN with two needed: withdrawn. */
	lb = model_find(f->m, uuid);
	lb->backends[1].health = BACKEND_HEALTH_DOWN;
	assert_int_equal(call(f, "GET", path, NULL, &j), 200);
	assert_int_equal(cJSON_GetObjectItem(j, "healthy_backends")->valueint, 1);
	assert_false(cJSON_IsTrue(cJSON_GetObjectItem(j, "announced")));
	assert_string_equal(str(backend_at(j, 1), "health"), "down");
	cJSON_Delete(j);
	lb->backends[1].health = BACKEND_HEALTH_UP;

	/* Drain with connections left: draining; none left: drained. */
	active = 3;
	snprintf(path, sizeof(path), "/loadbalancer/%s/backend/%s/drain", uuid, buuid);
	assert_int_equal(call(f, "POST", path, NULL, &j), 200);
	assert_string_equal(str(j, "state"), "draining");
	assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "stats"),
					     "active_connections")->valueint, 3);
	cJSON_Delete(j);
	snprintf(path, sizeof(path), "/loadbalancer/%s", uuid);
	assert_int_equal(call(f, "GET", path, NULL, &j), 200);
	assert_string_equal(str(backend_at(j, 0), "state"), "draining");
	assert_string_equal(str(backend_at(j, 1), "state"), "enabled");
	assert_int_equal(cJSON_GetObjectItem(j, "healthy_backends")->valueint, 1);
	cJSON_Delete(j);
	active = 0;
	assert_int_equal(call(f, "GET", path, NULL, &j), 200);
	assert_string_equal(str(backend_at(j, 0), "state"), "drained");
	cJSON_Delete(j);
	/* Connections that outlive the drain timeout no longer hold it up. */
	active = 3;
	f->ctx.drain_timeout_s = 0;
	assert_int_equal(call(f, "GET", path, NULL, &j), 200);
	assert_string_equal(str(backend_at(j, 0), "state"), "drained");
	cJSON_Delete(j);
	/* The state file keeps "drained" (progress is not state). */
	assert_true(lb->backends[0].drained);
}

struct bad_case {
	const char *method, *path, *body;
	unsigned status;
	const char *names; /* substring the error must contain */
};

static void test_bad_input_changes_nothing(void **st)
{
	struct fixture *f = *st;
	char uuid[UUID_STR_LEN], p_backend[128], p_unknown_b[160];
	char *before, *after;
	cJSON *j;

	assert_int_equal(call(f, "POST", "/loadbalancer",
			      "{\"name\":\"a\",\"port\":80,\"backends\":[{\"ip\":\"10.0.0.1\","
			      "\"port\":80}]}", &j), 201);
	strcpy(uuid, str(j, "uuid"));
	cJSON_Delete(j);
	snprintf(p_backend, sizeof(p_backend), "/loadbalancer/%s/backend", uuid);
	snprintf(p_unknown_b, sizeof(p_unknown_b),
		 "/loadbalancer/%s/backend/00000000-0000-4000-8000-000000000000", uuid);

	const struct bad_case cases[] = {
		{ "POST", "/loadbalancer", "{\"name\":", 400, "body" },
		{ "POST", "/loadbalancer", "", 400, "body" },
		{ "POST", "/loadbalancer", "[1]", 400, "body" },
		{ "POST", "/loadbalancer", "{\"port\":80}", 400, "name" },
		{ "POST", "/loadbalancer", "{\"name\":\"x\"}", 400, "port" },
		{ "POST", "/loadbalancer", "{\"name\":\"x\",\"port\":0}", 400, "port" },
		{ "POST", "/loadbalancer", "{\"name\":\"x\",\"port\":65536}", 400, "port" },
		{ "POST", "/loadbalancer", "{\"name\":\"x\",\"port\":-1}", 400, "port" },
		{ "POST", "/loadbalancer", "{\"name\":\"x\",\"port\":\"abc\"}", 400, "port" },
		{ "POST", "/loadbalancer", "{\"name\":\"x\",\"port\":true}", 400, "port" },
		{ "POST", "/loadbalancer", "{\"name\":\"x\",\"port\":1,\"bogus\":1}", 400, "bogus" },
		{ "POST", "/loadbalancer", "{\"name\":\"x\",\"port\":1,\"protocol\":\"sctp\"}", 400,
		  "protocol" },
		{ "POST", "/loadbalancer", "{\"name\":\"x\",\"port\":80,\"vip\":\"192.168.1.200\"}",
		  409, "port" },
		{ "POST", p_backend, "{\"ip\":\"10.0.0.1\",\"port\":80}", 409, "10.0.0.1" },
		{ "POST", p_backend, "{\"ip\":\"10.0.0.2\"}", 400, "port" },
		{ "POST", p_backend, "{\"ip\":\"not-an-ip\",\"port\":80}", 400, "ip" },
		{ "POST", p_backend, "{\"ip\":\"10.0.0.2\",\"port\":80,\"weight\":-3}", 400,
		  "weight" },
		{ "GET", "/loadbalancer/00000000-0000-4000-8000-000000000000", NULL, 404, "uuid" },
		{ "GET", "/loadbalancer/zzz", NULL, 404, "uuid" },
		{ "DELETE", "/loadbalancer/00000000-0000-4000-8000-000000000000", NULL, 404, "uuid" },
		{ "DELETE", p_unknown_b, NULL, 404, "uuid" },
		{ "PUT", "/loadbalancers", NULL, 405, "method" },
		{ "GET", "/loadbalancer", NULL, 405, "method" },
		{ "GET", "/nope", NULL, 404, "endpoint" },
		{ "GET", "/loadbalancer/a/b/c/d/e/f/g", NULL, 404, "endpoint" },
	};

	before = snapshot(f);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct bad_case *c = &cases[i];
		unsigned status = call(f, c->method, c->path, c->body, &j);
		const char *e = str(j, "error");

		if (status != c->status || !strstr(e, c->names))
			fail_msg("%s %s %s: got %u \"%s\", want %u naming \"%s\"", c->method, c->path,
				 c->body ? c->body : "", status, e, c->status, c->names);
		cJSON_Delete(j);
		after = snapshot(f);
		assert_string_equal(before, after);
		free(after);
	}
	free(before);
}

static void test_oversized_body(void **st)
{
	struct fixture *f = *st;
	size_t n = API_MAX_BODY + 1;
	char *big = malloc(n + 1);
	struct api_request req = { "POST", "/loadbalancer", big, n };
	struct api_response resp;

	memset(big, ' ', n);
	big[n] = '\0';
	api_handle(&f->ctx, &req, &resp);
	assert_int_equal(resp.status, 413);
	assert_non_null(strstr(resp.body, "body"));
	free(resp.body);
	free(big);
	assert_int_equal(model_count(f->m), 0);
}

static void test_range_exhausted(void **st)
{
	struct fixture *f = *st;
	cJSON *j;

	for (int i = 0; i < 3; i++) {
		assert_int_equal(call(f, "POST", "/loadbalancer", "{\"name\":\"x\",\"port\":80}", &j),
				 201);
		cJSON_Delete(j);
	}
	assert_int_equal(call(f, "POST", "/loadbalancer", "{\"name\":\"x\",\"port\":80}", &j), 409);
	assert_non_null(strstr(str(j, "error"), "vip"));
	cJSON_Delete(j);
	assert_int_equal(model_count(f->m), 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_slb_session, setup, teardown),
		cmocka_unit_test_setup_teardown(test_runtime_view, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_input_changes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversized_body, setup, teardown),
		cmocka_unit_test_setup_teardown(test_range_exhausted, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
