/*
 * cloud/http: the asynchronous client against an HTTP server this test runs on loopback
 * (an accepting thread and a thread per connection, keep-alive, blocking calls: test
 * code), plain and over TLS with a certificate made here, with the client on its own
 * libev loop in the main thread as in the daemon. Also Retry-After parsing.
 *
 * Every wait is bounded: the loop runs until a condition holds or a deadline passes.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <ev.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cloud/http.h"
#include "log.h"

#define MAX_CONNS 64
#define GATE_N 10
/* Bounds every wait; only a failing test waits that long, and valgrind on a busy machine
 * can take seconds for what takes milliseconds. */
#define WAIT_S 30

struct server;

struct conn {
	struct server *s;
	int fd;
	SSL *ssl;               /* when the server speaks TLS */
	pthread_t th;
};

struct server {
	int fd;
	uint16_t port;
	int wake[2];
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct conn conns[MAX_CONNS];
	int n_conns;            /* accepted */
	int n_requests;
	int n_closed;           /* connections the client closed */
	int in_gate, gate_hwm;
	bool gate_open, stop;
	char last_head[4096];
	SSL_CTX *tls;
};

struct fixture {
	struct server srv;
	struct ev_loop *loop;
	struct http_client *client;
	char url[128];
	char ca_file[64];       /* the server's certificate, when it speaks TLS */
};

/* What a callback saw; the response itself lives only during the callback. */
struct result {
	int calls;
	int err;
	long status;
	long retry_after;
	uint32_t elapsed_ms;
	char *body;
	size_t body_len;
	char errmsg[HTTP_ERRMSG_MAX];
};

static int pending;

static ssize_t conn_recv(struct conn *k, char *p, size_t len)
{
	return k->ssl ? SSL_read(k->ssl, p, (int)len) : recv(k->fd, p, len, 0);
}

static bool send_all(struct conn *k, const char *p, size_t len)
{
	while (len) {
		ssize_t n = k->ssl ? SSL_write(k->ssl, p, (int)len) : send(k->fd, p, len, MSG_NOSIGNAL);

		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

static bool respond(struct conn *k, const char *status, const char *headers, const char *body,
		    size_t len)
{
	char head[512];
	int n = snprintf(head, sizeof(head), "HTTP/1.1 %s\r\nContent-Length: %zu\r\n%s\r\n", status,
			 len, headers);

	return send_all(k, head, (size_t)n) && send_all(k, body, len);
}

/* Server threads do not use cmocka's asserts: those longjmp into the main thread's stack. */
static char *filled(size_t len)
{
	char *b = malloc(len);

	if (!b)
		abort();
	memset(b, 'x', len);
	return b;
}

/* Waits until GATE_N requests are in the gate (or WAIT_S pass), then lets them all out. */
static void gate(struct server *s)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += WAIT_S;
	pthread_mutex_lock(&s->mu);
	if (++s->in_gate > s->gate_hwm)
		s->gate_hwm = s->in_gate;
	if (s->in_gate >= GATE_N)
		s->gate_open = true;
	pthread_cond_broadcast(&s->cv);
	while (!s->gate_open && !s->stop)
		if (pthread_cond_timedwait(&s->cv, &s->mu, &until) == ETIMEDOUT)
			break;
	s->in_gate--;
	pthread_mutex_unlock(&s->mu);
}

/* Answers one request; false to close the connection. */
static bool serve(struct conn *k, const char *method, const char *path, const char *body,
		  size_t body_len)
{
	if (strcmp(path, "/hello") == 0)
		return respond(k, "200 OK", "Content-Type: text/plain\r\n", "hello, world", 12);
	if (strcmp(path, "/echo") == 0)
		return respond(k, "200 OK", "", body, body_len);
	if (strcmp(path, "/thing") == 0 && strcmp(method, "DELETE") == 0)
		return respond(k, "204 No Content", "", "", 0);
	if (strcmp(path, "/busy") == 0)
		return respond(k, "429 Too Many Requests", "Retry-After: 3\r\n", "slow down", 9);
	if (strcmp(path, "/busy-date") == 0) {
		time_t t = time(NULL) + 30;
		struct tm tm;
		char hdr[80];

		gmtime_r(&t, &tm);
		strftime(hdr, sizeof(hdr), "Retry-After: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
		return respond(k, "503 Service Unavailable", hdr, "", 0);
	}
	if (strcmp(path, "/hold") == 0)
		return true; /* never answered: the next read sees the client close */
	if (strncmp(path, "/bytes/", 7) == 0) {
		size_t len = strtoul(path + 7, NULL, 10);
		char *b = filled(len);
		bool ok = respond(k, "200 OK", "", b, len);

		free(b);
		return ok;
	}
	if (strncmp(path, "/stream/", 8) == 0) {
		/* No length: the body ends when the connection does. */
		static const char head[] = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
		size_t len = strtoul(path + 8, NULL, 10);
		char *b = filled(len);

		if (send_all(k, head, sizeof(head) - 1))
			send_all(k, b, len);
		free(b);
		return false;
	}
	if (strcmp(path, "/gate") == 0) {
		gate(k->s);
		return respond(k, "200 OK", "", "out", 3);
	}
	return respond(k, "404 Not Found", "", "", 0);
}

static void *conn_main(void *arg)
{
	struct conn *k = arg;
	struct server *s = k->s;
	char buf[65536];

	if (s->tls) {
		k->ssl = SSL_new(s->tls);
		if (!k->ssl)
			return NULL;
		SSL_set_fd(k->ssl, k->fd);
		if (SSL_accept(k->ssl) != 1)
			goto closed;
	}
	for (;;) {
		size_t got = 0, head_len, clen = 0;
		char method[16], path[256], *end, *cl;
		ssize_t n;

		while (!(end = memmem(buf, got, "\r\n\r\n", 4))) {
			if (got == sizeof(buf) - 1)
				goto out;
			n = conn_recv(k, buf + got, sizeof(buf) - 1 - got);
			if (n <= 0)
				goto closed;
			got += (size_t)n;
		}
		buf[got] = '\0';
		head_len = (size_t)(end + 4 - buf);
		*end = '\0';
		cl = strcasestr(buf, "\r\nContent-Length:");
		if (cl)
			clen = strtoul(cl + 17, NULL, 10);
		if (head_len + clen > sizeof(buf) - 1)
			goto out;
		while (got < head_len + clen) {
			n = conn_recv(k, buf + got, head_len + clen - got);
			if (n <= 0)
				goto closed;
			got += (size_t)n;
		}
		if (sscanf(buf, "%15s %255s", method, path) != 2)
			goto out;
		pthread_mutex_lock(&s->mu);
		s->n_requests++;
		snprintf(s->last_head, sizeof(s->last_head), "%.*s", (int)sizeof(s->last_head) - 1, buf);
		pthread_mutex_unlock(&s->mu);
		if (!serve(k, method, path, buf + head_len, clen)) {
			if (k->ssl)
				SSL_shutdown(k->ssl);
			/* The fd is closed by server_stop, after this thread is joined. */
			shutdown(k->fd, SHUT_RDWR);
			goto out;
		}
	}
closed:
	pthread_mutex_lock(&s->mu);
	s->n_closed++;
	pthread_mutex_unlock(&s->mu);
out:
	SSL_free(k->ssl);
	return NULL;
}

static void *acceptor(void *arg)
{
	struct server *s = arg;

	for (;;) {
		struct pollfd p[2] = { { s->fd, POLLIN, 0 }, { s->wake[0], POLLIN, 0 } };
		struct conn *k;
		int fd, one = 1;

		if (poll(p, 2, -1) < 0)
			continue;
		if (p[1].revents)
			return NULL;
		fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		/* A response is two writes: the second must not wait for the client's
		 * delayed ACK of the first. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		pthread_mutex_lock(&s->mu);
		if (s->n_conns == MAX_CONNS) {
			pthread_mutex_unlock(&s->mu);
			close(fd);
			continue;
		}
		k = &s->conns[s->n_conns];
		k->s = s;
		k->fd = fd;
		if (pthread_create(&k->th, NULL, conn_main, k) == 0)
			s->n_conns++;
		else
			close(fd);
		pthread_mutex_unlock(&s->mu);
	}
}

/* A loopback port nothing listens on (just closed). */
static uint16_t bind_lo(int *fdp)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*fdp = fd;
	return ntohs(sin.sin_port);
}

static void server_start(struct server *s, SSL_CTX *tls)
{
	memset(s, 0, sizeof(*s));
	s->tls = tls;
	s->port = bind_lo(&s->fd);
	assert_int_equal(listen(s->fd, 64), 0);
	assert_int_equal(pipe2(s->wake, O_CLOEXEC), 0);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	assert_int_equal(pthread_create(&s->th, NULL, acceptor, s), 0);
}

static void server_stop(struct server *s)
{
	assert_int_equal(write(s->wake[1], "x", 1), 1);
	pthread_join(s->th, NULL);
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	for (int i = 0; i < s->n_conns; i++)
		shutdown(s->conns[i].fd, SHUT_RDWR);
	for (int i = 0; i < s->n_conns; i++) {
		pthread_join(s->conns[i].th, NULL);
		close(s->conns[i].fd);
	}
	close(s->fd);
	close(s->wake[0]);
	close(s->wake[1]);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	SSL_CTX_free(s->tls);
}

static int server_get(struct server *s, const int *field)
{
	int v;

	pthread_mutex_lock(&s->mu);
	v = *field;
	pthread_mutex_unlock(&s->mu);
	return v;
}

struct until {
	ev_timer tick;
	double deadline;
	bool (*pred)(void *);
	void *arg;
	bool met;
};

static void until_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct until *u = w->data;

	(void)revents;
	if (u->pred(u->arg)) {
		u->met = true;
		ev_break(loop, EVBREAK_ALL);
	} else if (ev_now(loop) >= u->deadline) {
		ev_break(loop, EVBREAK_ALL);
	}
}

/* Runs the loop until pred holds (checked every 5 ms) or max_s pass; whether it held. */
static bool run_until(struct ev_loop *loop, bool (*pred)(void *), void *arg, double max_s)
{
	struct until u = { .pred = pred, .arg = arg };

	ev_now_update(loop);
	u.deadline = ev_now(loop) + max_s;
	ev_timer_init(&u.tick, until_tick, 0.005, 0.005);
	u.tick.data = &u;
	ev_timer_start(loop, &u.tick);
	ev_run(loop, 0);
	ev_timer_stop(loop, &u.tick);
	return u.met;
}

static bool none_pending(void *arg)
{
	(void)arg;
	return pending == 0;
}

static void run_all(struct ev_loop *loop)
{
	assert_true(run_until(loop, none_pending, NULL, WAIT_S));
}

struct count_at_least {
	struct server *s;
	const int *field;
	int want;
};

static bool count_reached(void *arg)
{
	struct count_at_least *c = arg;

	return server_get(c->s, c->field) >= c->want;
}

static void run_until_count(struct fixture *f, const int *field, int want)
{
	struct count_at_least c = { &f->srv, field, want };

	assert_true(run_until(f->loop, count_reached, &c, WAIT_S));
}

static void on_done(void *arg, const struct http_response *r)
{
	struct result *x = arg;

	x->calls++;
	x->err = r->err;
	x->status = r->status;
	x->retry_after = r->retry_after;
	x->elapsed_ms = r->elapsed_ms;
	x->body_len = r->body_len;
	assert_non_null(r->body);
	assert_int_equal(r->body[r->body_len], '\0');
	free(x->body);
	x->body = malloc(r->body_len + 1);
	assert_non_null(x->body);
	memcpy(x->body, r->body, r->body_len + 1);
	snprintf(x->errmsg, sizeof(x->errmsg), "%s", r->errmsg);
	pending--;
}

static void send_req(struct fixture *f, const struct http_request *req, struct result *x,
		     struct http_call **out)
{
	assert_int_equal(http_send(f->client, req, on_done, x, out), 0);
	pending++;
}

static void get(struct fixture *f, const char *path, struct result *x)
{
	char url[256];
	struct http_request req = { .method = HTTP_GET, .url = url };

	snprintf(url, sizeof(url), "%s%s", f->url, path);
	send_req(f, &req, x, NULL);
}

/*
 * A server context with a self-signed certificate for 127.0.0.1 (as an IP address
 * subjectAltName, which is what clients check), written as PEM to ca_file for the client
 * to trust.
 */
static SSL_CTX *self_signed_ctx(char *ca_file, size_t len)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_EXTENSION *san;
	X509_NAME *name;
	FILE *pem;
	int fd;

	assert_non_null(ctx);
	assert_non_null(key);
	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"127.0.0.1",
				   -1, -1, 0);
	X509_set_issuer_name(x, name);
	san = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, "IP:127.0.0.1");
	assert_non_null(san);
	X509_add_ext(x, san, -1);
	X509_EXTENSION_free(san);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
	snprintf(ca_file, len, "/tmp/test_cloud_http.XXXXXX");
	fd = mkstemp(ca_file);
	assert_true(fd >= 0);
	pem = fdopen(fd, "w");
	assert_non_null(pem);
	assert_int_equal(PEM_write_X509(pem, x), 1);
	fclose(pem);
	X509_free(x);
	EVP_PKEY_free(key);
	return ctx;
}

static int setup_with(void **state, bool tls)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	server_start(&f->srv, tls ? self_signed_ctx(f->ca_file, sizeof(f->ca_file)) : NULL);
	snprintf(f->url, sizeof(f->url), "%s://127.0.0.1:%u", tls ? "https" : "http", f->srv.port);
	f->loop = ev_loop_new(EVFLAG_AUTO);
	assert_non_null(f->loop);
	f->client = http_client_new(f->loop);
	assert_non_null(f->client);
	pending = 0;
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_with(state, false);
}

static int setup_tls(void **state)
{
	return setup_with(state, true);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	http_client_free(f->client);
	server_stop(&f->srv);
	ev_loop_destroy(f->loop);
	if (f->ca_file[0])
		unlink(f->ca_file);
	free(f);
	return 0;
}

static void test_retry_after_parse(void **state)
{
	/* Sun, 06 Nov 1994 08:49:37 GMT */
	const time_t t = 784111777;

	(void)state;
	assert_int_equal(http_retry_after_parse("3", t), 3);
	assert_int_equal(http_retry_after_parse("0", t), 0);
	assert_int_equal(http_retry_after_parse(" 120 ", t), 120);
	assert_int_equal(http_retry_after_parse("99999999999999999999", t), INT32_MAX);
	assert_int_equal(http_retry_after_parse("Sun, 06 Nov 1994 08:49:37 GMT", t - 120), 120);
	assert_int_equal(http_retry_after_parse("Sunday, 06-Nov-94 08:49:37 GMT", t - 60), 60);
	assert_int_equal(http_retry_after_parse("Sun Nov  6 08:49:37 1994", t - 5), 5);
	assert_int_equal(http_retry_after_parse("Sun, 06 Nov 1994 08:49:37 GMT", t + 100), 0);
	assert_int_equal(http_retry_after_parse("Sun, 06 Nov 1994 08:49:37 GMT", t), 0);
	assert_int_equal(http_retry_after_parse("Thu, 01 Jan 2099 00:00:00 GMT", t), INT32_MAX);
	assert_int_equal(http_retry_after_parse("", t), -1);
	assert_int_equal(http_retry_after_parse("  ", t), -1);
	assert_int_equal(http_retry_after_parse("-1", t), -1);
	assert_int_equal(http_retry_after_parse("+5", t), -1);
	assert_int_equal(http_retry_after_parse("1.5", t), -1);
	assert_int_equal(http_retry_after_parse("3 s", t), -1);
	assert_int_equal(http_retry_after_parse("soon", t), -1);
	assert_int_equal(http_retry_after_parse("Sun, 06 Nov 1994 08:49:37", t), -1);
	assert_int_equal(http_retry_after_parse("Sun, 06 Nov 1994 08:49:37 GMT x", t), -1);
	assert_int_equal(http_retry_after_parse("Sun, 32 Nov 1994 08:49:37 GMT", t), -1);
}

static void test_get(void **state)
{
	struct fixture *f = *state;
	struct result x = { 0 };

	get(f, "/hello", &x);
	assert_int_equal(x.calls, 0); /* never from inside http_send */
	run_all(f->loop);
	assert_int_equal(x.calls, 1);
	assert_int_equal(x.err, 0);
	assert_string_equal(x.errmsg, "");
	assert_int_equal(x.status, 200);
	assert_string_equal(x.body, "hello, world");
	assert_int_equal(x.body_len, 12);
	assert_int_equal(x.retry_after, -1);
	assert_true(x.elapsed_ms < WAIT_S * 1000);
	free(x.body);
}

/* The body and headers reach the server; the token never reaches the log. */
static void test_post_echo(void **state)
{
	struct fixture *f = *state;
	static const char *const headers[] = { "X-Auth-Token: s3cr3t-t0ken",
					       "Content-Type: application/json", NULL };
	static const char body[] = "{\"quantity\":1}";
	struct http_request req = { .method = HTTP_POST, .headers = headers, .body = body,
				    .body_len = sizeof(body) - 1 };
	struct result x = { 0 };
	enum log_level lvl = log_get_level();
	FILE *logf = tmpfile();
	int saved = dup(STDERR_FILENO);
	char url[160], logged[8192], head[4096];
	size_t n;

	assert_non_null(logf);
	assert_true(saved >= 0);
	snprintf(url, sizeof(url), "%s/echo", f->url);
	req.url = url;
	log_set_level(LOG_LVL_DEBUG);
	assert_true(dup2(fileno(logf), STDERR_FILENO) >= 0);
	send_req(f, &req, &x, NULL);
	run_all(f->loop);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	log_set_level(lvl);
	rewind(logf);
	n = fread(logged, 1, sizeof(logged) - 1, logf);
	logged[n] = '\0';
	fclose(logf);

	assert_int_equal(x.err, 0);
	assert_int_equal(x.status, 200);
	assert_int_equal(x.body_len, sizeof(body) - 1);
	assert_string_equal(x.body, body);
	pthread_mutex_lock(&f->srv.mu);
	snprintf(head, sizeof(head), "%s", f->srv.last_head);
	pthread_mutex_unlock(&f->srv.mu);
	assert_non_null(strstr(head, "POST /echo HTTP/1.1\r\n"));
	assert_non_null(strstr(head, "\r\nX-Auth-Token: s3cr3t-t0ken"));
	assert_non_null(strstr(head, "\r\nContent-Type: application/json"));
	assert_non_null(strstr(head, "\r\nContent-Length: 14"));
	assert_null(strcasestr(head, "\r\nExpect:"));
	assert_non_null(strstr(logged, "method=POST"));
	assert_non_null(strstr(logged, "url=http://127.0.0.1:"));
	assert_non_null(strstr(logged, "status=200"));
	assert_non_null(strstr(logged, "elapsed_ms="));
	assert_null(strstr(logged, "s3cr3t"));
	free(x.body);
}

static void test_methods(void **state)
{
	struct fixture *f = *state;
	static const struct {
		enum http_method m;
		const char *path, *body, *line;
		long status;
	} cases[] = {
		{ HTTP_DELETE, "/thing", NULL, "DELETE /thing HTTP/1.1", 204 },
		{ HTTP_PUT, "/echo", "put body", "PUT /echo HTTP/1.1", 200 },
		{ HTTP_PATCH, "/echo", "patch body", "PATCH /echo HTTP/1.1", 200 },
		{ HTTP_POST, "/echo", NULL, "POST /echo HTTP/1.1", 200 },
		{ HTTP_PUT, "/echo", NULL, "PUT /echo HTTP/1.1", 200 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char url[160], head[4096];
		struct http_request req = { .method = cases[i].m, .url = url, .body = cases[i].body,
					    .body_len = cases[i].body ? strlen(cases[i].body) : 0 };
		struct result x = { 0 };

		snprintf(url, sizeof(url), "%s%s", f->url, cases[i].path);
		send_req(f, &req, &x, NULL);
		run_all(f->loop);
		assert_int_equal(x.err, 0);
		assert_int_equal(x.status, cases[i].status);
		assert_string_equal(x.body, cases[i].body ? cases[i].body : "");
		assert_int_equal(x.body_len, req.body_len);
		pthread_mutex_lock(&f->srv.mu);
		snprintf(head, sizeof(head), "%s", f->srv.last_head);
		pthread_mutex_unlock(&f->srv.mu);
		assert_true(strncmp(head, cases[i].line, strlen(cases[i].line)) == 0);
		if (cases[i].m != HTTP_DELETE)
			assert_non_null(strstr(head, "\r\nContent-Length: "));
		free(x.body);
	}
}

static void test_retry_after(void **state)
{
	struct fixture *f = *state;
	struct result busy = { 0 }, dated = { 0 };

	get(f, "/busy", &busy);
	get(f, "/busy-date", &dated);
	run_all(f->loop);
	assert_int_equal(busy.err, 0);
	assert_int_equal(busy.status, 429);
	assert_int_equal(busy.retry_after, 3);
	assert_string_equal(busy.body, "slow down");
	assert_int_equal(dated.err, 0);
	assert_int_equal(dated.status, 503);
	/* The server's clock and ours tick apart by a second at most. */
	assert_in_range(dated.retry_after, 28, 31);
	free(busy.body);
	free(dated.body);
}

static void test_timeout(void **state)
{
	struct fixture *f = *state;
	char url[160];
	struct http_request req = { .method = HTTP_GET, .url = url, .timeout_ms = 300 };
	struct result x = { 0 };

	snprintf(url, sizeof(url), "%s/hold", f->url);
	send_req(f, &req, &x, NULL);
	run_all(f->loop);
	assert_int_equal(x.calls, 1);
	assert_int_equal(x.err, -ETIMEDOUT);
	assert_int_equal(x.status, 0);
	assert_true(x.errmsg[0] != '\0');
	assert_in_range(x.elapsed_ms, 290, WAIT_S * 1000);
	free(x.body);
}

static void test_refused(void **state)
{
	struct fixture *f = *state;
	struct http_request req = { .method = HTTP_GET };
	struct result x = { 0 };
	char url[160];
	int fd;

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", bind_lo(&fd));
	close(fd);
	req.url = url;
	send_req(f, &req, &x, NULL);
	run_all(f->loop);
	assert_int_equal(x.err, -ECONNREFUSED);
	assert_true(x.errmsg[0] != '\0');
	free(x.body);
}

/* Over the limit whether the server announces the length or not; at the limit is fine. */
static void test_too_big(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *path;
		int err;
	} cases[] = {
		{ "/bytes/100000", -EMSGSIZE },
		{ "/stream/100000", -EMSGSIZE },
		{ "/bytes/10001", -EMSGSIZE },
		{ "/bytes/10000", 0 },
		{ "/stream/10000", 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char url[160];
		struct http_request req = { .method = HTTP_GET, .url = url, .max_response = 10000 };
		struct result x = { 0 };

		snprintf(url, sizeof(url), "%s%s", f->url, cases[i].path);
		send_req(f, &req, &x, NULL);
		run_all(f->loop);
		assert_int_equal(x.err, cases[i].err);
		if (x.err) {
			assert_int_equal(x.body_len, 0);
			assert_non_null(strstr(x.errmsg, "larger than 10000"));
		} else {
			assert_int_equal(x.body_len, 10000);
		}
		free(x.body);
	}
}

/* The server holds every request until all ten are in: only a client that has them all
 * in flight at once gets answers. */
static void test_concurrent(void **state)
{
	struct fixture *f = *state;
	struct result x[GATE_N] = { 0 };

	for (int i = 0; i < GATE_N; i++)
		get(f, "/gate", &x[i]);
	run_all(f->loop);
	assert_int_equal(server_get(&f->srv, &f->srv.gate_hwm), GATE_N);
	for (int i = 0; i < GATE_N; i++) {
		assert_int_equal(x[i].calls, 1);
		assert_int_equal(x[i].err, 0);
		assert_int_equal(x[i].status, 200);
		assert_string_equal(x[i].body, "out");
		free(x[i].body);
	}
}

/* Sequential requests to one server share a connection. */
static void test_reuse(void **state)
{
	struct fixture *f = *state;
	struct result x = { 0 };

	for (int i = 0; i < 3; i++) {
		get(f, "/hello", &x);
		run_all(f->loop);
		assert_int_equal(x.status, 200);
	}
	assert_int_equal(x.calls, 3);
	assert_int_equal(server_get(&f->srv, &f->srv.n_conns), 1);
	free(x.body);
}

static void test_cancel(void **state)
{
	struct fixture *f = *state;
	char url[160];
	struct http_request req = { .method = HTTP_GET, .url = url };
	struct result held = { 0 }, after = { 0 };
	struct http_call *call;

	snprintf(url, sizeof(url), "%s/hold", f->url);
	assert_int_equal(http_send(f->client, &req, on_done, &held, &call), 0);
	run_until_count(f, &f->srv.n_requests, 1);
	http_cancel(call);
	/* The connection is dropped, and the client goes on serving others. */
	run_until_count(f, &f->srv.n_closed, 1);
	get(f, "/hello", &after);
	run_all(f->loop);
	assert_int_equal(held.calls, 0);
	assert_int_equal(after.calls, 1);
	assert_int_equal(after.status, 200);
	free(after.body);
}

static void test_free_in_flight(void **state)
{
	struct fixture *f = *state;
	struct result x[4] = { 0 };

	/* One connection left idle for reuse, three busy. */
	get(f, "/hello", &x[0]);
	run_all(f->loop);
	assert_int_equal(x[0].status, 200);
	for (int i = 1; i < 4; i++)
		get(f, "/hold", &x[i]);
	run_until_count(f, &f->srv.n_requests, 4);
	http_client_free(f->client);
	f->client = NULL;
	run_until_count(f, &f->srv.n_closed, server_get(&f->srv, &f->srv.n_conns));
	for (int i = 1; i < 4; i++)
		assert_int_equal(x[i].calls, 0);
	free(x[0].body);
}

struct chain {
	struct fixture *f;
	struct result first, second;
	bool free_client;
};

static void on_chain(void *arg, const struct http_response *r)
{
	struct chain *ch = arg;

	on_done(&ch->first, r);
	if (ch->free_client) {
		http_client_free(ch->f->client);
		ch->f->client = NULL;
	} else {
		get(ch->f, "/busy", &ch->second);
	}
}

/* A callback may send the next request. */
static void test_send_from_callback(void **state)
{
	struct fixture *f = *state;
	struct chain ch = { .f = f };
	char url[160];
	struct http_request req = { .method = HTTP_GET, .url = url };

	snprintf(url, sizeof(url), "%s/hello", f->url);
	assert_int_equal(http_send(f->client, &req, on_chain, &ch, NULL), 0);
	pending++;
	run_all(f->loop);
	assert_int_equal(ch.first.status, 200);
	assert_int_equal(ch.second.calls, 1);
	assert_int_equal(ch.second.status, 429);
	free(ch.first.body);
	free(ch.second.body);
}

/* A callback may free the client, others in flight then being cancelled. */
static void test_free_from_callback(void **state)
{
	struct fixture *f = *state;
	struct chain ch = { .f = f, .free_client = true };
	struct result held = { 0 };
	char url[160];
	struct http_request req = { .method = HTTP_GET, .url = url };

	get(f, "/hold", &held);
	run_until_count(f, &f->srv.n_requests, 1);
	snprintf(url, sizeof(url), "%s/hello", f->url);
	assert_int_equal(http_send(f->client, &req, on_chain, &ch, NULL), 0);
	pending++;
	run_until_count(f, &f->srv.n_closed, 2);
	assert_null(f->client);
	assert_int_equal(ch.first.calls, 1);
	assert_int_equal(ch.first.status, 200);
	assert_int_equal(held.calls, 0);
	free(ch.first.body);
}

static void test_invalid(void **state)
{
	struct fixture *f = *state;
	char url[160];
	struct http_request get_body = { .method = HTTP_GET, .url = url, .body = "x", .body_len = 1 };
	struct http_request no_url = { .method = HTTP_GET };
	struct http_request ftp = { .method = HTTP_GET, .url = "ftp://127.0.0.1/" };
	struct http_request bad_method = { .method = (enum http_method)42, .url = url };
	struct result x = { 0 };

	snprintf(url, sizeof(url), "%s/hello", f->url);
	assert_int_equal(http_send(f->client, &get_body, on_done, &x, NULL), -EINVAL);
	assert_int_equal(http_send(f->client, &no_url, on_done, &x, NULL), -EINVAL);
	assert_int_equal(http_send(f->client, &ftp, on_done, &x, NULL), -EINVAL);
	assert_int_equal(http_send(f->client, &bad_method, on_done, &x, NULL), -EINVAL);
	run_until(f->loop, none_pending, NULL, 0.05);
	assert_int_equal(x.calls, 0);
}

/*
 * Over TLS: trusted through ca_file, refused against another certificate, accepted when
 * told not to check. POST and keep-alive as in clear.
 */
static void test_https(void **state)
{
	struct fixture *f = *state;
	static const char body[] = "{\"a\":1}";
	char hello[160], echo[160];
	struct http_request trusted = { .method = HTTP_GET, .url = hello, .ca_file = f->ca_file };
	struct http_request post = { .method = HTTP_POST, .url = echo, .ca_file = f->ca_file,
				     .body = body, .body_len = sizeof(body) - 1 };
	char other[64];
	struct http_request unknown = { .method = HTTP_GET, .url = hello, .ca_file = other };
	struct http_request insecure = { .method = HTTP_GET, .url = hello, .insecure = true };
	struct result x = { 0 }, y = { 0 }, bad = { 0 }, any = { 0 };

	SSL_CTX_free(self_signed_ctx(other, sizeof(other)));

	snprintf(hello, sizeof(hello), "%s/hello", f->url);
	snprintf(echo, sizeof(echo), "%s/echo", f->url);
	send_req(f, &trusted, &x, NULL);
	run_all(f->loop);
	assert_int_equal(x.err, 0);
	assert_int_equal(x.status, 200);
	assert_string_equal(x.body, "hello, world");
	send_req(f, &post, &y, NULL);
	run_all(f->loop);
	assert_int_equal(y.err, 0);
	assert_string_equal(y.body, body);
	assert_int_equal(server_get(&f->srv, &f->srv.n_conns), 1);
	send_req(f, &unknown, &bad, NULL);
	run_all(f->loop);
	assert_int_equal(bad.err, -EIO);
	assert_int_equal(bad.status, 0);
	assert_non_null(strcasestr(bad.errmsg, "certificate"));
	send_req(f, &insecure, &any, NULL);
	run_all(f->loop);
	assert_int_equal(any.err, 0);
	assert_int_equal(any.status, 200);
	unlink(other);
	free(x.body);
	free(y.body);
	free(bad.body);
	free(any.body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_retry_after_parse),
		cmocka_unit_test_setup_teardown(test_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_post_echo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_methods, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_after, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_big, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reuse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_send_from_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_from_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_https, setup_tls, teardown),
	};

	/* A server thread writing to a connection the client dropped. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
