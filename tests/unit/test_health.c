/* health: the rise/fall machine, first-probe jitter, and the HTTP response parser. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "health/health.h"
#include "health/http_parse.h"

static void test_machine_fall_rise_exact(void **state)
{
	struct health_machine m;

	(void)state;
	health_machine_init(&m);
	assert_int_equal(m.state, BACKEND_HEALTH_UNKNOWN);
	/* rise 2: UP on the second success, not the first */
	assert_false(health_machine_step(&m, true, 2, 3));
	assert_int_equal(m.state, BACKEND_HEALTH_UNKNOWN);
	assert_true(health_machine_step(&m, true, 2, 3));
	assert_int_equal(m.state, BACKEND_HEALTH_UP);
	assert_false(health_machine_step(&m, true, 2, 3));
	/* fall 3: two failures keep it UP, the third flips it, once */
	assert_false(health_machine_step(&m, false, 2, 3));
	assert_false(health_machine_step(&m, false, 2, 3));
	assert_int_equal(m.state, BACKEND_HEALTH_UP);
	assert_true(health_machine_step(&m, false, 2, 3));
	assert_int_equal(m.state, BACKEND_HEALTH_DOWN);
	assert_int_equal(m.fail_run, 3);
	assert_false(health_machine_step(&m, false, 2, 3));
	/* back up after exactly rise successes */
	assert_false(health_machine_step(&m, true, 2, 3));
	assert_true(health_machine_step(&m, true, 2, 3));
	assert_int_equal(m.state, BACKEND_HEALTH_UP);
}

static void test_machine_flap_damped(void **state)
{
	struct health_machine m;
	int flips = 0;

	(void)state;
	health_machine_init(&m);
	flips += health_machine_step(&m, true, 2, 2);
	flips += health_machine_step(&m, true, 2, 2);
	assert_int_equal(flips, 1);
	/* alternating results never reach fall 2 or rise 2 in a row */
	for (int i = 0; i < 100; i++)
		flips += health_machine_step(&m, i % 2, 2, 2);
	assert_int_equal(flips, 1);
	assert_int_equal(m.state, BACKEND_HEALTH_UP);
}

static void test_machine_unknown_to_down(void **state)
{
	struct health_machine m;

	(void)state;
	health_machine_init(&m);
	assert_false(health_machine_step(&m, false, 1, 2));
	assert_true(health_machine_step(&m, false, 1, 2));
	assert_int_equal(m.state, BACKEND_HEALTH_DOWN);
	/* rise 1 (and 0, treated as 1): one success is enough */
	assert_true(health_machine_step(&m, true, 1, 2));
	assert_true(health_machine_step(&m, false, 0, 0));
	assert_true(health_machine_step(&m, true, 0, 0));
}

static void test_jitter_spread(void **state)
{
	enum { N = 10000, BUCKETS = 10, INTERVAL = 1000 };
	unsigned hist[BUCKETS] = { 0 };
	char lb[UUID_STR_LEN], be[UUID_STR_LEN];

	(void)state;
	uuid_generate_v4(lb);
	for (int i = 0; i < N; i++) {
		uint32_t d;

		uuid_generate_v4(be);
		d = health_first_delay_ms(lb, be, INTERVAL);
		assert_true(d < INTERVAL);
		assert_int_equal(d, health_first_delay_ms(lb, be, INTERVAL)); /* stable */
		hist[d * BUCKETS / INTERVAL]++;
	}
	/* every tenth of the interval gets its share (1000 expected, > 6 sigma slack) */
	for (int i = 0; i < BUCKETS; i++)
		assert_true(hist[i] > 800 && hist[i] < 1200);
	/* sequential, similar names spread too */
	memset(hist, 0, sizeof(hist));
	for (int i = 0; i < N; i++) {
		snprintf(be, sizeof(be), "00000000-0000-4000-8000-%012d", i);
		hist[health_first_delay_ms("lb", be, INTERVAL) * BUCKETS / INTERVAL]++;
	}
	for (int i = 0; i < BUCKETS; i++)
		assert_true(hist[i] > 800 && hist[i] < 1200);
	assert_int_equal(health_first_delay_ms(lb, be, 0), 0);
}

/* Feeds s in pieces of `step` bytes; returns the last result. */
static int feed(struct http_resp *r, const char *s, size_t step)
{
	size_t n = strlen(s);
	int rc = HTTP_MORE;

	for (size_t off = 0; off < n && rc == HTTP_MORE; off += step)
		rc = http_resp_feed(r, s + off, n - off < step ? n - off : step);
	return rc;
}

static void test_http_content_length(void **state)
{
	static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
				   "Content-Length: 11\r\n\r\nhello world";

	(void)state;
	for (size_t step = 1; step <= sizeof(resp); step++) {
		struct http_resp r;

		assert_int_equal(http_resp_init(&r, "lo wo"), 0);
		assert_int_equal(feed(&r, resp, step), HTTP_DONE);
		assert_int_equal(r.status, 200);
		assert_true(r.head_done);
		assert_true(r.found);
		assert_int_equal(r.body_len, 11);
	}
}

static void test_http_chunked(void **state)
{
	/* the expected word straddles two chunks; chunk extensions and trailers are skipped */
	static const char resp[] = "HTTP/1.1 503 Service Unavailable\r\n"
				   "Transfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n"
				   "4;ext=1\r\nnot \r\nA\r\nready yet.\r\n0\r\nX-Trailer: 1\r\n\r\n";

	(void)state;
	for (size_t step = 1; step <= sizeof(resp); step++) {
		struct http_resp r;

		assert_int_equal(http_resp_init(&r, "not ready"), 0);
		assert_int_equal(feed(&r, resp, step), HTTP_DONE);
		assert_int_equal(r.status, 503);
		assert_true(r.found);
		assert_int_equal(r.body_len, 14);
	}
}

static void test_http_close_delimited(void **state)
{
	struct http_resp r;

	(void)state;
	assert_int_equal(http_resp_init(&r, "abcabd"), 0);
	assert_int_equal(feed(&r, "HTTP/1.0 200 OK\nServer: x\n\nabcab", 3), HTTP_MORE);
	assert_false(r.found);
	assert_int_equal(feed(&r, "cabd", 1), HTTP_MORE); /* KMP backtracks over "abcab|cabd" */
	assert_true(r.found);
	assert_int_equal(http_resp_eof(&r), HTTP_DONE);

	assert_int_equal(http_resp_init(&r, "missing"), 0);
	assert_int_equal(feed(&r, "HTTP/1.1 200 OK\r\n\r\nsomething else", 5), HTTP_MORE);
	assert_int_equal(http_resp_eof(&r), HTTP_DONE);
	assert_false(r.found);
}

static void test_http_interim_and_no_body(void **state)
{
	struct http_resp r;

	(void)state;
	assert_int_equal(http_resp_init(&r, NULL), 0);
	assert_true(r.found);
	assert_int_equal(feed(&r, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", 7),
			 HTTP_DONE);
	assert_int_equal(r.status, 204);
	assert_int_equal(http_resp_init(&r, NULL), 0);
	assert_int_equal(feed(&r, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\ntrailing junk", 64),
			 HTTP_DONE);
}

static void test_http_errors(void **state)
{
	static const char *bad[] = {
		"HTTP/2 200 OK\r\n\r\n",
		"HTTP/1.1 20 OK\r\n\r\n",
		"HTTP/1.1 2000 OK\r\n\r\n",
		"HTTP/1.1 099 x\r\n\r\n",
		"ICY 200 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
	};
	struct http_resp r;
	char big[HTTP_LINE_MAX + 32];
	char expect[HTTP_EXPECT_MAX + 2];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(http_resp_init(&r, NULL), 0);
		assert_int_equal(feed(&r, bad[i], 4), -EBADMSG);
		assert_int_equal(http_resp_feed(&r, "x", 1), -EBADMSG); /* stays failed */
	}
	/* an endless header line is refused, not buffered */
	assert_int_equal(http_resp_init(&r, NULL), 0);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
	assert_int_equal(feed(&r, big, 1000), -EBADMSG);
	/* cut short */
	assert_int_equal(http_resp_init(&r, NULL), 0);
	assert_int_equal(feed(&r, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", 9), HTTP_MORE);
	assert_int_equal(http_resp_eof(&r), -EBADMSG);
	assert_int_equal(http_resp_init(&r, NULL), 0);
	assert_int_equal(http_resp_eof(&r), -EBADMSG);
	/* an expected substring too long to hold */
	memset(expect, 'e', sizeof(expect) - 1);
	expect[sizeof(expect) - 1] = 0;
	assert_int_equal(http_resp_init(&r, expect), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_machine_fall_rise_exact),
		cmocka_unit_test(test_machine_flap_damped),
		cmocka_unit_test(test_machine_unknown_to_down),
		cmocka_unit_test(test_jitter_spread),
		cmocka_unit_test(test_http_content_length),
		cmocka_unit_test(test_http_chunked),
		cmocka_unit_test(test_http_close_delimited),
		cmocka_unit_test(test_http_interim_and_no_body),
		cmocka_unit_test(test_http_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
