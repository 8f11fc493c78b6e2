/*
 * health: real probes on loopback against servers this test starts (a TCP listener,
 * HTTP servers answering 200 / 503, an HTTPS server with a self-signed certificate made
 * here, a UDP echo, a full-backlog listener and a silent UDP socket for timeouts, closed
 * ports for refusals), then a backend stopped and restarted: the state flips after
 * exactly fall failures and rise successes.
 *
 * The servers run in threads with blocking calls (test code); the checker runs on its
 * own libev loop in the main thread, as in the daemon.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>
#include <ev.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "health/health.h"
#include "log.h"
#include "model.h"

/* Generous for a test run under valgrind on a busy machine (a TLS handshake there can take
 * a few hundred milliseconds): a slow answer must not read as a flap. */
#define INTERVAL_MS 200
#define TIMEOUT_MS 1000
#define RISE 2
#define FALL 3

struct server {
	int fd;
	int type;               /* SOCK_STREAM or SOCK_DGRAM */
	const char *resp;       /* HTTP response; NULL for a bare listener or the UDP echo */
	SSL_CTX *tls;
	volatile int stop;
	pthread_t th;
	bool running;
};

static int bind_lo(int family, int type, uint16_t port, int backlog)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len;
	int fd = socket(family, type | SOCK_CLOEXEC, 0), one = 1;

	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_loopback;
		s6->sin6_port = htons(port);
		len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		s4->sin_port = htons(port);
		len = sizeof(*s4);
	}
	if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
		close(fd);
		return -errno;
	}
	if (type == SOCK_STREAM)
		assert_int_equal(listen(fd, backlog), 0);
	return fd;
}

static uint16_t port_of(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
	return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
					      : ((struct sockaddr_in *)&ss)->sin_port);
}

/* A port nobody listens on (bound, read, closed). */
static uint16_t closed_port(int type)
{
	int fd = bind_lo(AF_INET, type, 0, 1);
	uint16_t p = port_of(fd);

	close(fd);
	return p;
}

static void serve_one(struct server *s, int c)
{
	struct timeval tv = { .tv_sec = 2 };
	char buf[4096];
	size_t got = 0;
	SSL *ssl = NULL;

	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (s->tls) {
		ssl = SSL_new(s->tls);
		SSL_set_fd(ssl, c);
		if (SSL_accept(ssl) != 1)
			goto out;
	}
	while (got < sizeof(buf) - 1) {
		int n = ssl ? SSL_read(ssl, buf + got, (int)(sizeof(buf) - 1 - got))
			    : (int)recv(c, buf + got, sizeof(buf) - 1 - got, 0);

		if (n <= 0)
			goto out;
		got += (size_t)n;
		buf[got] = 0;
		if (strstr(buf, "\r\n\r\n"))
			break;
	}
	if (ssl) {
		SSL_write(ssl, s->resp, (int)strlen(s->resp));
		SSL_shutdown(ssl);
	} else {
		send(c, s->resp, strlen(s->resp), MSG_NOSIGNAL);
	}
out:
	SSL_free(ssl);
	close(c);
}

static void *server_main(void *arg)
{
	struct server *s = arg;

	while (!s->stop) {
		struct pollfd p = { .fd = s->fd, .events = POLLIN };

		if (poll(&p, 1, 50) <= 0)
			continue;
		if (s->type == SOCK_DGRAM) {
			char buf[2048];
			struct sockaddr_storage from;
			socklen_t flen = sizeof(from);
			ssize_t n = recvfrom(s->fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen);

			if (n >= 0)
				sendto(s->fd, buf, (size_t)n, 0, (struct sockaddr *)&from, flen);
			continue;
		}
		int c = accept(s->fd, NULL, NULL);

		if (c >= 0)
			serve_one(s, c);
	}
	return NULL;
}

static void server_start(struct server *s, int type, const char *resp, SSL_CTX *tls, uint16_t port)
{
	memset(s, 0, sizeof(*s));
	s->type = type;
	s->resp = resp;
	s->tls = tls;
	s->fd = bind_lo(AF_INET, type, port, 128);
	assert_true(s->fd >= 0);
	assert_int_equal(pthread_create(&s->th, NULL, server_main, s), 0);
	s->running = true;
}

static void server_stop(struct server *s)
{
	if (!s->running)
		return;
	s->stop = 1;
	pthread_join(s->th, NULL);
	close(s->fd);
	s->running = false;
}

/* A self-signed P-256 certificate for CN=127.0.0.1, valid for a day. */
static SSL_CTX *self_signed_ctx(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;

	assert_non_null(ctx);
	assert_non_null(key);
	assert_non_null(x);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"127.0.0.1",
				   -1, -1, 0);
	X509_set_issuer_name(x, name);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
	X509_free(x);
	EVP_PKEY_free(key);
	return ctx;
}

/* ---- the checker side ---- */

struct change {
	char be[UUID_STR_LEN];
	enum backend_health h;
	char reason[HEALTH_REASON_MAX];
	struct health_status st; /* as seen inside the callback */
};

static struct change changes[256];
static size_t n_changes;
static struct health_checker *checker;

static void on_change(void *arg, const char *lb_uuid, const char *be_uuid, enum backend_health h,
		      const char *reason)
{
	struct change *c = &changes[n_changes];

	(void)arg;
	assert_true(n_changes < sizeof(changes) / sizeof(changes[0]));
	snprintf(c->be, sizeof(c->be), "%s", be_uuid);
	c->h = h;
	snprintf(c->reason, sizeof(c->reason), "%s", reason);
	assert_int_equal(health_status(checker, lb_uuid, be_uuid, &c->st), 0);
	n_changes++;
}

static struct lb *add_lb(struct model *m, enum hc_type type, const char *ip, uint16_t port)
{
	struct lb *lb = lb_new();
	struct backend b;

	assert_non_null(lb);
	lb->hc.type = type;
	lb->hc.interval_ms = INTERVAL_MS;
	lb->hc.timeout_ms = TIMEOUT_MS;
	lb->hc.rise_count = RISE;
	lb->hc.fail_count = FALL;
	backend_init(&b);
	assert_int_equal(ip_addr_parse(ip, &b.ip), 0);
	b.port = port;
	assert_int_equal(lb_add_backend(lb, &b), 0);
	assert_int_equal(model_add(m, lb), 0);
	return lb;
}

static void break_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(loop, EVBREAK_ALL);
}

static size_t want_changes;

static void poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	if (n_changes >= want_changes)
		ev_break(loop, EVBREAK_ALL);
}

/* Runs the loop until `want` transitions in all were reported, or at most secs (slow
 * machines and valgrind take longer; a missing transition fails the checks after). */
static void run_until(struct ev_loop *loop, size_t want, double secs)
{
	ev_timer cap, poll;

	want_changes = want;
	ev_timer_init(&cap, break_cb, secs, 0.);
	ev_timer_init(&poll, poll_cb, 0.02, 0.02);
	ev_timer_start(loop, &cap);
	ev_timer_start(loop, &poll);
	ev_run(loop, 0);
	ev_timer_stop(loop, &cap);
	ev_timer_stop(loop, &poll);
}

static struct health_status status_of(const struct lb *lb)
{
	struct health_status st;

	assert_int_equal(health_status(checker, lb->uuid, lb->backends[0].uuid, &st), 0);
	return st;
}

static void expect_state(const struct lb *lb, enum backend_health h, const char *reason,
			 const char *what)
{
	struct health_status st = status_of(lb);

	if (st.state != h || strncmp(st.reason, reason, strlen(reason))) {
		fail_msg("%s: state %s reason \"%s\", want %s \"%s...\"", what,
			 backend_health_name(st.state), st.reason, backend_health_name(h), reason);
	}
	/* settled in one transition, never flapping on the way */
	if (st.n_transitions != 1)
		fail_msg("%s: %llu transitions, last reason \"%s\"", what,
			 (unsigned long long)st.n_transitions, st.reason);
}

static const char RESP_200[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
			       "Content-Length: 13\r\nConnection: close\r\n\r\nI am alive :)";
static const char RESP_503[] = "HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n"
			       "\r\n8\r\ndraining\r\n0\r\n\r\n";

static void test_probes(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct model *m = model_new();
	struct server h200, h503, tls, echo;
	SSL_CTX *tls_ctx = self_signed_ctx();
	int bare, full, fill[2], silent, v6;
	struct lb *l_tcp, *l_refused, *l_black, *l_200, *l_503, *l_503ok, *l_body, *l_tls_off,
		*l_tls_on, *l_udp, *l_udp_bad, *l_udp_refused, *l_udp_silent, *l_v6 = NULL;

	(void)state;
	server_start(&h200, SOCK_STREAM, RESP_200, NULL, 0);
	server_start(&h503, SOCK_STREAM, RESP_503, NULL, 0);
	server_start(&tls, SOCK_STREAM, RESP_200, tls_ctx, 0);
	server_start(&echo, SOCK_DGRAM, NULL, NULL, 0);
	/* Never accepts: the kernel completes the handshakes into its backlog. */
	bare = bind_lo(AF_INET, SOCK_STREAM, 0, 128);

	/* Blackhole: a listener with backlog 0 whose one queue slot is taken, so further
	 * SYNs are dropped and probes time out instead of being refused. */
	full = bind_lo(AF_INET, SOCK_STREAM, 0, 0);
	for (int i = 0; i < 2; i++) {
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port_of(full)),
					  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		connect(fill[i], (struct sockaddr *)&sa, sizeof(sa));
	}
	usleep(50 * 1000);
	silent = bind_lo(AF_INET, SOCK_DGRAM, 0, 0);
	v6 = bind_lo(AF_INET6, SOCK_STREAM, 0, 16);

	l_tcp = add_lb(m, HC_TCP, "127.0.0.1", port_of(bare));
	l_refused = add_lb(m, HC_TCP, "127.0.0.1", closed_port(SOCK_STREAM));
	l_black = add_lb(m, HC_TCP, "127.0.0.1", port_of(full));
	l_200 = add_lb(m, HC_HTTP, "127.0.0.1", port_of(h200.fd));
	l_200->hc.expect_body = strdup("alive");
	l_503 = add_lb(m, HC_HTTP, "127.0.0.1", port_of(h503.fd));
	l_503ok = add_lb(m, HC_HTTP, "127.0.0.1", port_of(h503.fd));
	l_503ok->hc.expected_status[0] = 200;
	l_503ok->hc.expected_status[1] = 503;
	l_503ok->hc.n_expected_status = 2;
	l_503ok->hc.expect_body = strdup("drain");
	l_body = add_lb(m, HC_HTTP, "127.0.0.1", port_of(h200.fd));
	l_body->hc.expect_body = strdup("dead");
	l_tls_off = add_lb(m, HC_HTTPS, "127.0.0.1", port_of(tls.fd));
	l_tls_off->hc.tls_verify = false;
	l_tls_off->hc.expect_body = strdup("alive");
	l_tls_on = add_lb(m, HC_HTTPS, "127.0.0.1", port_of(tls.fd));
	l_udp = add_lb(m, HC_UDP, "127.0.0.1", port_of(echo.fd));
	l_udp->hc.udp_payload = strdup("ping");
	l_udp->hc.udp_expect = strdup("ping");
	l_udp_bad = add_lb(m, HC_UDP, "127.0.0.1", port_of(echo.fd));
	l_udp_bad->hc.udp_payload = strdup("ping");
	l_udp_bad->hc.udp_expect = strdup("pong");
	l_udp_refused = add_lb(m, HC_UDP, "127.0.0.1", closed_port(SOCK_DGRAM));
	l_udp_silent = add_lb(m, HC_UDP, "127.0.0.1", port_of(silent));
	if (v6 >= 0)
		l_v6 = add_lb(m, HC_TCP, "::1", port_of(v6));
	/* An lb without checks is not probed. */
	add_lb(m, HC_NONE, "127.0.0.1", 1);

	log_set_level(LOG_LVL_WARN);
	checker = health_new(loop, on_change, NULL);
	assert_non_null(checker);
	assert_int_equal(health_sync(checker, m), 0);
	assert_int_equal(health_count(checker), v6 >= 0 ? 14 : 13);

	/* every backend settles in exactly one transition: rise successes or fall failures */
	run_until(loop, health_count(checker), 20);
	/* a little longer: nothing flaps after settling */
	run_until(loop, SIZE_MAX, 2 * INTERVAL_MS / 1000.0);

	expect_state(l_tcp, BACKEND_HEALTH_UP, "ok", "tcp listener");
	expect_state(l_refused, BACKEND_HEALTH_DOWN, "refused", "tcp closed port");
	expect_state(l_black, BACKEND_HEALTH_DOWN, "timeout", "tcp blackhole");
	expect_state(l_200, BACKEND_HEALTH_UP, "ok", "http 200 with body");
	expect_state(l_503, BACKEND_HEALTH_DOWN, "status 503", "http 503");
	expect_state(l_503ok, BACKEND_HEALTH_UP, "ok", "http 503 expected, chunked body");
	expect_state(l_body, BACKEND_HEALTH_DOWN, "body mismatch", "http body mismatch");
	expect_state(l_tls_off, BACKEND_HEALTH_UP, "ok", "https without verification");
	expect_state(l_tls_on, BACKEND_HEALTH_DOWN, "TLS error: self-signed certificate",
		     "https with verification, self-signed");
	expect_state(l_udp, BACKEND_HEALTH_UP, "ok", "udp echo");
	expect_state(l_udp_bad, BACKEND_HEALTH_DOWN, "reply mismatch", "udp wrong reply");
	expect_state(l_udp_refused, BACKEND_HEALTH_DOWN, "refused", "udp closed port");
	expect_state(l_udp_silent, BACKEND_HEALTH_DOWN, "timeout", "udp silence");
	if (l_v6)
		expect_state(l_v6, BACKEND_HEALTH_UP, "ok", "tcp over IPv6");
	{
		struct health_status st = status_of(l_black);

		assert_true(st.latency_us >= TIMEOUT_MS * 1000);
		st = status_of(l_tcp);
		assert_true(st.latency_us < TIMEOUT_MS * 1000);
	}
	/* each transition reported once, at exactly rise or fall */
	for (size_t i = 0; i < n_changes; i++) {
		if (changes[i].h == BACKEND_HEALTH_UP)
			assert_int_equal(changes[i].st.ok_run, RISE);
		else
			assert_int_equal(changes[i].st.fail_run, FALL);
	}
	assert_int_equal(n_changes, health_count(checker));

	/* Stop the HTTP 200 server: DOWN after exactly FALL refusals; back: UP after RISE. */
	{
		uint16_t port = port_of(h200.fd);
		size_t before = n_changes;
		struct health_status st0 = status_of(l_200), st;
		struct server again;

		server_stop(&h200);
		run_until(loop, before + 1, 20);
		assert_int_equal(n_changes, before + 1);
		assert_string_equal(changes[before].be, l_200->backends[0].uuid);
		assert_int_equal(changes[before].h, BACKEND_HEALTH_DOWN);
		assert_string_equal(changes[before].reason, "refused");
		assert_int_equal(changes[before].st.n_fail - st0.n_fail, FALL);
		assert_int_equal(changes[before].st.fail_run, FALL);

		server_start(&again, SOCK_STREAM, RESP_200, NULL, port);
		st0 = status_of(l_200);
		run_until(loop, before + 2, 20);
		assert_int_equal(n_changes, before + 2);
		assert_int_equal(changes[before + 1].h, BACKEND_HEALTH_UP);
		assert_int_equal(changes[before + 1].st.n_ok - st0.n_ok, RISE);
		st = status_of(l_200);
		assert_int_equal(st.n_transitions, 3);
		server_stop(&again);
	}

	/* Sync: unchanged backends keep their state; changed parameters start over; gone
	 * ones stop. */
	{
		struct lb *gone = model_take(m, l_refused->uuid);
		char gone_lb[UUID_STR_LEN], gone_be[UUID_STR_LEN];
		struct health_status st;

		memcpy(gone_lb, gone->uuid, UUID_STR_LEN);
		memcpy(gone_be, gone->backends[0].uuid, UUID_STR_LEN);
		lb_free(gone);
		l_udp_bad->hc.udp_expect[1] = 'i'; /* "piig": still wrong, but a new check */
		assert_int_equal(health_sync(checker, m), 0);
		assert_int_equal(health_count(checker), v6 >= 0 ? 13 : 12);
		assert_int_equal(status_of(l_tcp).state, BACKEND_HEALTH_UP);
		assert_int_equal(status_of(l_tcp).n_transitions, 1);
		assert_int_equal(status_of(l_udp_bad).state, BACKEND_HEALTH_UNKNOWN);
		assert_int_equal(health_status(checker, gone_lb, gone_be, &st), -ENOENT);
	}

	/* A sync in which the model's generation did not move leaves the probe set alone
	 * (health flips ask for passes too); model_touch makes an in-place edit seen. */
	{
		size_t n0 = health_count(checker);

		l_udp->hc.udp_expect[0] = 'x';
		assert_int_equal(health_sync(checker, m), 0);
		assert_int_equal(status_of(l_udp).state, BACKEND_HEALTH_UP);
		model_touch(m);
		assert_int_equal(health_sync(checker, m), 0);
		assert_int_equal(status_of(l_udp).state, BACKEND_HEALTH_UNKNOWN);
		assert_int_equal(health_count(checker), n0);
	}

	health_free(checker);
	checker = NULL;
	model_free(m);
	server_stop(&h503);
	server_stop(&tls);
	server_stop(&echo);
	close(bare);
	close(full);
	close(fill[0]);
	close(fill[1]);
	close(silent);
	if (v6 >= 0)
		close(v6);
	SSL_CTX_free(tls_ctx);
	ev_loop_destroy(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_probes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
