#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/metrics.h"
#include "cloud/ipam.h"
#include "health/health.h"
#include "model.h"
#include "store.h"

static char *render(const struct metrics_snapshot *s)
{
	char *text = NULL;

	assert_int_equal(metrics_render(s, &text), 0);
	assert_non_null(text);
	return text;
}

/* The one line of text that starts with prefix (asserts there is exactly one). */
static const char *line_of(const char *text, const char *prefix)
{
	const char *found = NULL;

	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (strncmp(l, prefix, strlen(prefix)) == 0) {
			if (found)
				fail_msg("two lines start with %s", prefix);
			found = l;
		}
	if (!found)
		fail_msg("no line starts with %s in:\n%s", prefix, text);
	return found;
}

static void assert_line(const char *text, const char *line)
{
	const char *l = line_of(text, line);

	assert_true(l[strlen(line)] == '\n');
}

static size_t count_of(const char *text, const char *needle)
{
	size_t n = 0, len = strlen(needle);

	for (size_t i = 0; text[i]; i++)
		n += strncmp(text + i, needle, len) == 0;
	return n;
}

static void base(struct metrics_snapshot *s)
{
	memset(s, 0, sizeof(*s));
	s->version = "1.2.3";
	s->dataplane = "xdp";
	s->announce_method = "arp";
	s->start_time = 1700000000;
}

static void test_process(void **st)
{
	struct metrics_snapshot s;
	char *t;

	(void)st;
	base(&s);
	t = render(&s);
	assert_line(t, "vipd_up 1");
	assert_line(t, "# TYPE vipd_up gauge");
	assert_line(t, "vipd_build_info{version=\"1.2.3\",dataplane=\"xdp\",announce=\"arp\"} 1");
	assert_line(t, "vipd_process_start_time_seconds 1700000000");
	assert_line(t, "vipd_loadbalancers 0");
	/* What the daemon does not run is absent, not zero. */
	assert_null(strstr(t, "vipd_reconcile_"));
	assert_null(strstr(t, "vipd_bird_"));
	assert_null(strstr(t, "vipd_cloud_"));
	assert_int_equal(t[strlen(t) - 1], '\n');
	free(t);
}

static void test_label_escaping(void **st)
{
	struct metrics_lb lb = { .name = "a\\b\"c\nd", .uuid = "u-1", .vip = "10.0.0.1",
				 .port = 80, .protocol = "tcp" };
	struct metrics_snapshot s;
	char *t;

	(void)st;
	base(&s);
	s.lbs = &lb;
	s.n_lbs = 1;
	t = render(&s);
	assert_line(t, "vipd_lb_backends{lb=\"a\\\\b\\\"c\\nd\",lb_uuid=\"u-1\",vip=\"10.0.0.1\","
		       "port=\"80\",protocol=\"tcp\"} 0");
	/* The raw newline never reaches the output: every line is a comment or a sample. */
	for (const char *l = t; *l; l = strchr(l, '\n') + 1)
		assert_true(l[0] == '#' || strncmp(l, "vipd_", 5) == 0);
	free(t);
}

static void test_traffic_and_health(void **st)
{
	struct metrics_backend be[2] = {
		{ .addr = "10.1.0.1:8080", .health = BACKEND_HEALTH_UP,
		  .traffic = { true, { 10, 1000, 2, 1 } } },
		{ .addr = "[2001:db8::1]:8080", .health = BACKEND_HEALTH_DOWN },
	};
	struct metrics_lb lb = { .name = "web", .uuid = "u-1", .vip = "10.0.0.1", .port = 80,
				 .protocol = "tcp", .healthy_backends = 1,
				 .traffic = { true, { 10, 1000, 2, 1 } }, .backends = be,
				 .n_backends = 2 };
	struct metrics_vip vip = { "10.0.0.1", true };
	struct metrics_snapshot s;
	char *t;
	const char *l0 = "lb=\"web\",lb_uuid=\"u-1\",vip=\"10.0.0.1\",port=\"80\",protocol=\"tcp\"";
	char want[512];

	(void)st;
	base(&s);
	s.lbs = &lb;
	s.n_lbs = 1;
	s.vips = &vip;
	s.n_vips = 1;
	t = render(&s);
	snprintf(want, sizeof(want), "vipd_backend_packets_total{%s,backend=\"10.1.0.1:8080\"} 10", l0);
	assert_line(t, want);
	snprintf(want, sizeof(want), "vipd_backend_bytes_total{%s,backend=\"10.1.0.1:8080\"} 1000", l0);
	assert_line(t, want);
	snprintf(want, sizeof(want), "vipd_lb_connections_total{%s} 2", l0);
	assert_line(t, want);
	snprintf(want, sizeof(want), "vipd_lb_active_connections{%s} 1", l0);
	assert_line(t, want);
	assert_line(t, "# TYPE vipd_lb_active_connections gauge");
	assert_line(t, "# TYPE vipd_backend_packets_total counter");
	/* A backend the plane does not count has no traffic series. */
	assert_int_equal(count_of(t, "packets_total{"), 2);
	snprintf(want, sizeof(want), "vipd_backend_up{%s,backend=\"[2001:db8::1]:8080\"} 0", l0);
	assert_line(t, want);
	snprintf(want, sizeof(want), "vipd_backend_up{%s,backend=\"10.1.0.1:8080\"} 1", l0);
	assert_line(t, want);
	snprintf(want, sizeof(want),
		 "vipd_backend_health_state{%s,backend=\"[2001:db8::1]:8080\",state=\"down\"} 1", l0);
	assert_line(t, want);
	snprintf(want, sizeof(want),
		 "vipd_backend_health_state{%s,backend=\"[2001:db8::1]:8080\",state=\"up\"} 0", l0);
	assert_line(t, want);
	assert_line(t, "vipd_vip_announced{vip=\"10.0.0.1\",method=\"arp\"} 1");
	snprintf(want, sizeof(want), "vipd_lb_healthy_backends{%s} 1", l0);
	assert_line(t, want);
	/* Not probed: no probe series. */
	assert_null(strstr(t, "vipd_backend_probes_total{"));
	free(t);
}

static void test_histogram(void **st)
{
	struct metrics_backend be = { .addr = "10.1.0.1:80", .health = BACKEND_HEALTH_UP,
				      .probed = true };
	struct metrics_lb lb = { .name = "h", .uuid = "u", .vip = "10.0.0.1", .port = 80,
				 .protocol = "tcp", .backends = &be, .n_backends = 1 };
	struct metrics_snapshot s;
	char *t, want[512];
	const char *bl = "lb=\"h\",lb_uuid=\"u\",vip=\"10.0.0.1\",port=\"80\",protocol=\"tcp\","
			 "backend=\"10.1.0.1:80\"";
	uint64_t acc = 0;

	(void)st;
	base(&s);
	s.lbs = &lb;
	s.n_lbs = 1;
	be.probe.latency_hist[0] = 3;                      /* <= 0.5 ms */
	be.probe.latency_hist[4] = 2;                      /* <= 10 ms */
	be.probe.latency_hist[HEALTH_LATENCY_BUCKETS] = 1; /* above every bound */
	be.probe.latency_sum_us = 3000000 + 2 * 8000 + 3 * 100;
	be.probe.n_result[HEALTH_RESULT_OK] = 5;
	be.probe.n_result[HEALTH_RESULT_TIMEOUT] = 1;
	t = render(&s);
	assert_line(t, "# TYPE vipd_backend_probe_duration_seconds histogram");
	for (size_t i = 0; i < HEALTH_LATENCY_BUCKETS; i++) {
		acc += be.probe.latency_hist[i];
		snprintf(want, sizeof(want),
			 "vipd_backend_probe_duration_seconds_bucket{%s,le=\"%g\"} %llu", bl,
			 health_latency_bounds_s[i], (unsigned long long)acc);
		assert_line(t, want);
	}
	snprintf(want, sizeof(want), "vipd_backend_probe_duration_seconds_bucket{%s,le=\"+Inf\"} 6",
		 bl);
	assert_line(t, want);
	snprintf(want, sizeof(want), "vipd_backend_probe_duration_seconds_count{%s} 6", bl);
	assert_line(t, want);
	snprintf(want, sizeof(want), "vipd_backend_probe_duration_seconds_sum{%s} 3.0163", bl);
	assert_line(t, want);
	snprintf(want, sizeof(want), "vipd_backend_probes_total{%s,result=\"ok\"} 5", bl);
	assert_line(t, want);
	snprintf(want, sizeof(want), "vipd_backend_probes_total{%s,result=\"timeout\"} 1", bl);
	assert_line(t, want);
	snprintf(want, sizeof(want), "vipd_backend_probes_total{%s,result=\"refused\"} 0", bl);
	assert_line(t, want);
	free(t);
}

static void test_reconcile_bird_cloud(void **st)
{
	struct metrics_snapshot s;
	char *t;

	(void)st;
	base(&s);
	s.announce_method = "bgp";
	s.have_reconcile = true;
	s.reconcile.runs = 3;
	s.reconcile.failed = 1;
	s.reconcile.last_err = -5;
	s.reconcile.last_error_time = 1700000100.5;
	s.reconcile.duration_hist[0] = 2;
	s.reconcile.duration_hist[RECONCILE_DURATION_BUCKETS] = 1;
	s.reconcile.duration_sum_s = 4;
	s.have_bird = true;
	s.bird.connected = true;
	s.bird.connects = 2;
	s.bird.configure_ok = 4;
	s.bird.configure_failed = 1;
	s.bird.last_configure = -1;
	s.have_cloud = true;
	s.cloud.requests[METAL_REQ_2XX] = 7;
	s.cloud.requests[METAL_REQ_ERROR] = 2;
	s.cloud.retries = 3;
	t = render(&s);
	assert_line(t, "vipd_reconcile_duration_seconds_bucket{le=\"0.0005\"} 2");
	assert_line(t, "vipd_reconcile_duration_seconds_bucket{le=\"2.5\"} 2");
	assert_line(t, "vipd_reconcile_duration_seconds_bucket{le=\"+Inf\"} 3");
	assert_line(t, "vipd_reconcile_duration_seconds_count 3");
	assert_line(t, "vipd_reconcile_duration_seconds_sum 4");
	assert_line(t, "vipd_reconcile_errors_total 1");
	assert_line(t, "vipd_reconcile_failing 1");
	assert_line(t, "vipd_reconcile_last_error_timestamp_seconds 1700000100.5");
	assert_line(t, "vipd_bird_connected 1");
	assert_line(t, "vipd_bird_configures_total{result=\"ok\"} 4");
	assert_line(t, "vipd_bird_configures_total{result=\"failed\"} 1");
	/* No configure finished yet: no last result to tell. */
	assert_null(strstr(t, "vipd_bird_last_configure"));
	assert_line(t, "vipd_cloud_api_requests_total{status=\"2xx\"} 7");
	assert_line(t, "vipd_cloud_api_requests_total{status=\"5xx\"} 0");
	assert_line(t, "vipd_cloud_api_requests_total{status=\"error\"} 2");
	assert_line(t, "vipd_cloud_api_retries_total 3");
	free(t);
	s.bird.last_configure = 0;
	s.bird.last_configure_s = 0.25;
	t = render(&s);
	assert_line(t, "vipd_bird_last_configure_success 0");
	assert_line(t, "vipd_bird_last_configure_duration_seconds 0.25");
	free(t);
}

static void test_result_of(void **st)
{
	(void)st;
	assert_int_equal(health_result_of(true, "ok"), HEALTH_RESULT_OK);
	assert_int_equal(health_result_of(false, "refused"), HEALTH_RESULT_REFUSED);
	assert_int_equal(health_result_of(false, "timeout"), HEALTH_RESULT_TIMEOUT);
	assert_int_equal(health_result_of(false, "unreachable"), HEALTH_RESULT_UNREACHABLE);
	assert_int_equal(health_result_of(false, "reset"), HEALTH_RESULT_RESET);
	assert_int_equal(health_result_of(false, "status 503"), HEALTH_RESULT_BAD_RESPONSE);
	assert_int_equal(health_result_of(false, "body mismatch"), HEALTH_RESULT_BAD_RESPONSE);
	assert_int_equal(health_result_of(false, "reply mismatch"), HEALTH_RESULT_BAD_RESPONSE);
	assert_int_equal(health_result_of(false, "closed"), HEALTH_RESULT_BAD_RESPONSE);
	assert_int_equal(health_result_of(false, "TLS error: certificate has expired"),
			 HEALTH_RESULT_TLS);
	assert_int_equal(health_result_of(false, "Permission denied"), HEALTH_RESULT_ERROR);
	assert_string_equal(health_result_name(HEALTH_RESULT_BAD_RESPONSE), "bad_response");
}

/* Through the API: collected from a real model, served as text with its content type. */
static void test_api_route(void **st)
{
	struct model *m = model_new();
	struct ipam_range r;
	struct vip_source *src;
	struct store store = { 0 };
	struct api_ctx ctx = { 0 };
	struct api_request get = { "GET", "/metrics", NULL, 0 };
	struct api_request post = { "POST", "/metrics", NULL, 0 };
	struct api_request mk = { "POST", "/loadbalancer", NULL, 0 };
	struct api_response resp;
	const char *body = "{\"name\":\"web\",\"vip\":\"192.168.1.200\",\"port\":80,"
			   "\"backends\":[{\"ip\":\"10.0.0.1\",\"port\":8080}]}";
	char err[128];

	(void)st;
	assert_int_equal(ipam_range_parse("192.168.1.200-192.168.1.202", &r, err, sizeof(err)), 0);
	src = ipam_new(&r, 1);
	store.model = m;
	store.vips = src;
	ctx.store = &store;
	ctx.version = "t";
	mk.body = body;
	mk.body_len = strlen(body);
	api_handle(&ctx, &mk, &resp);
	assert_int_equal(resp.status, 201);
	free(resp.body);
	api_handle(&ctx, &get, &resp);
	assert_int_equal(resp.status, 200);
	assert_string_equal(resp.content_type, METRICS_CONTENT_TYPE);
	assert_non_null(strstr(resp.body, "vipd_loadbalancers 1\n"));
	assert_non_null(strstr(resp.body, "vipd_lb_backends{lb=\"web\","));
	assert_non_null(strstr(resp.body, "backend=\"10.0.0.1:8080\""));
	assert_non_null(strstr(resp.body, "vipd_vip_announced{vip=\"192.168.1.200\",method=\"none\"}"));
	free(resp.body);
	api_handle(&ctx, &post, &resp);
	assert_int_equal(resp.status, 405);
	assert_null(resp.content_type);
	free(resp.body);
	model_free(m);
	src->ops->free(src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_process),
		cmocka_unit_test(test_label_escaping),
		cmocka_unit_test(test_traffic_and_health),
		cmocka_unit_test(test_histogram),
		cmocka_unit_test(test_reconcile_bird_cloud),
		cmocka_unit_test(test_result_of),
		cmocka_unit_test(test_api_route),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
