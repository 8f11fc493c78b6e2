/*
 * cloud/metal: the record file's parser and formatter (pure), and the VIP source on a libev
 * loop against a small Metal API this test serves on loopback (one thread, one request per
 * connection, blocking calls: test code). The API keeps reservations and can be told to
 * fail, so the source's bookkeeping is checked without the network or Python: start-up with
 * --device, the BIRD peer file, reserve, adopt after a restart, release, the record, a
 * cancelled load balancer whose address arrives later, a POST that reserved but answered
 * 500, a 422, 429 with Retry-After, a refused token, and the BGP neighbours read again
 * (unchanged, changed, malformed, after a 503, refused).
 *
 * Every wait is bounded: the loop runs until a condition holds or a deadline passes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <ev.h>

#include "cloud/metal.h"
#include "cloud/metal_state.h"
#include "log.h"
#include "model.h"

#define WAIT_S 30
#define MAX_RES 16

/* --- the record file --------------------------------------------------------------------- */

#define LB1 "0b7c3f1e-5a2d-4c8e-9f10-3d2e1c0b9a87"
#define LB2 "1c8d4a2f-6b3e-4d9f-8a21-4e3f2d1c0b98"

static void test_state_roundtrip(void **st)
{
	static const char text[] = "# comment\n\n"
				   LB1 " ip-1 198.51.100.7\n"
				   "  - ip-2\t198.51.100.8  \r\n"
				   "0B7C3F1E-5A2D-4C8E-9F10-3D2E1C0B9A88 ip-3 198.51.100.9";
	struct metal_state_entry *e = NULL, *e2 = NULL;
	size_t n = 0, n2 = 0, len;
	char err[160], *out;
	char a[IP_ADDR_STRLEN];

	(void)st;
	assert_int_equal(metal_state_parse(text, sizeof(text) - 1, &e, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 3);
	assert_string_equal(e[0].lb, LB1);
	assert_string_equal(e[0].id, "ip-1");
	assert_string_equal(ip_addr_str(&e[0].addr, a), "198.51.100.7");
	assert_string_equal(e[1].lb, "");
	assert_string_equal(e[1].id, "ip-2");
	assert_string_equal(e[2].lb, "0b7c3f1e-5a2d-4c8e-9f10-3d2e1c0b9a88");
	assert_false(e[0].in_use);
	assert_int_equal(metal_state_format(e, n, &out, &len), 0);
	assert_int_equal(strlen(out), len);
	assert_non_null(strstr(out, "\n- ip-2 198.51.100.8\n"));
	assert_int_equal(metal_state_parse(out, len, &e2, &n2, err, sizeof(err)), 0);
	assert_int_equal(n2, 3);
	assert_memory_equal(e, e2, n * sizeof(*e));
	free(out);
	free(e);
	free(e2);
	/* empty and comment-only files hold nothing */
	assert_int_equal(metal_state_parse("", 0, &e, &n, err, sizeof(err)), 0);
	assert_null(e);
	assert_int_equal(n, 0);
	assert_int_equal(metal_state_format(NULL, 0, &out, &len), 0);
	assert_int_equal(metal_state_parse(out, len, &e, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 0);
	free(out);
}

static void fails(const char *text, size_t len, int want, const char *msg)
{
	struct metal_state_entry *e = (void *)1;
	size_t n = 7;
	char err[160] = "";

	assert_int_equal(metal_state_parse(text, len, &e, &n, err, sizeof(err)), want);
	assert_null(e);
	assert_int_equal(n, 0);
	if (!strstr(err, msg))
		fail_msg("error \"%s\" lacks \"%s\"", err, msg);
	for (const char *p = err; *p; p++)
		assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);
}

#define FAILS(t, want, msg) fails(t, sizeof(t) - 1, want, msg)

static void test_state_errors(void **st)
{
	(void)st;
	FAILS(LB1 " ip-1\n", -EINVAL, "line 1: expected 3 fields");
	FAILS("\n" LB1 " ip-1 198.51.100.7 x\n", -EINVAL, "line 2: expected 3 fields");
	FAILS("nope ip-1 198.51.100.7\n", -EINVAL, "line 1: \"nope\" is not a load balancer");
	FAILS("0b7c3f1e-5a2d-4c8e-9f10-3d2e1c0b9a8g ip-1 198.51.100.7\n", -EINVAL,
	      "not a load balancer uuid");
	FAILS(LB1 " ip_1 198.51.100.7\n", -EINVAL, "\"ip_1\" is not a reservation id");
	FAILS(LB1 " ip-1 2001:db8::1\n", -EINVAL, "\"2001:db8::1\" is not an IPv4 address");
	FAILS(LB1 " ip-1 198.51.100.300\n", -EINVAL, "not an IPv4 address");
	FAILS(LB1 " ip-1 198.51.100.7\n" LB2 " ip-1 198.51.100.8\n", -EINVAL,
	      "line 2: reservation ip-1 is listed twice");
	FAILS(LB1 " ip-1 198.51.100.7\n" LB1 " ip-2 198.51.100.8\n", -EINVAL,
	      "line 2: load balancer " LB1 " has two reservations");
	FAILS(LB1 " ip-1 198.51.100.7\n- ip-2 198.51.100.7\n", -EINVAL,
	      "line 2: address 198.51.100.7 is listed twice");
	FAILS("# x\n\n" LB1 " ip-1 198.51.\0" "100.7\n", -EINVAL, "line 3: a NUL byte");
	FAILS(LB1 " ip-\x01 198.51.100.7\n", -EINVAL, "\"ip-?\" is not a reservation id");
	/* two released reservations are fine: "-" is not a load balancer */
	{
		static const char ok2[] = "- a 198.51.100.1\n- b 198.51.100.2\n";
		struct metal_state_entry *e;
		size_t n;
		char err[64];

		assert_int_equal(metal_state_parse(ok2, sizeof(ok2) - 1, &e, &n, err, sizeof(err)),
				 0);
		assert_int_equal(n, 2);
		free(e);
	}
}

static void test_token_ok(void **st)
{
	char big[4098];

	(void)st;
	assert_true(metal_token_ok("abc-DEF_123.~"));
	assert_false(metal_token_ok(""));
	assert_false(metal_token_ok(NULL));
	assert_false(metal_token_ok("a b"));
	assert_false(metal_token_ok("a\r\nX-Evil: 1"));
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_false(metal_token_ok(big));
	big[4096] = '\0';
	assert_true(metal_token_ok(big));
}

/* --- a small Metal API ---------------------------------------------------------------------- */

#define PROJECT "p-1"
#define DEVICE "d-1"
#define TOKEN "t0ken"

struct res {
	char id[16];
	char lb[UUID_STR_LEN];
	int n; /* 198.51.100.n */
	bool live;
};

struct api {
	int fd;
	uint16_t port;
	pthread_t th;
	pthread_mutex_t mu;
	struct res res[MAX_RES];
	int n_res, next_id;
	int posts, deletes, lists, neighbors, bad_token;
	int posts_seen;              /* counted on arrival, before post_delay_ms */
	int post_delay_ms;           /* a slow answer to POST */
	/* faults, each for the next `n` matching requests */
	int post_status, post_n;     /* answer POST with this instead */
	bool post_after;             /* ... after reserving (the "did it happen?" case) */
	int all_status, all_n;       /* answer anything with this */
	int retry_after;             /* Retry-After on an injected answer; 0: none */
	const char *neighbors_body;  /* the neighbours' answer; NULL: NEIGHBORS */
	bool stop;
};

static int read_request(int fd, char *buf, size_t cap, char **body)
{
	size_t n = 0;
	char *end = NULL;
	long clen = 0;

	while (!end) {
		ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);

		if (r <= 0)
			return -1;
		n += (size_t)r;
		buf[n] = '\0';
		end = strstr(buf, "\r\n\r\n");
		if (!end && n >= cap - 1)
			return -1;
	}
	{
		const char *cl = strcasestr(buf, "\r\nContent-Length:");

		if (cl && cl < end)
			clen = strtol(cl + 17, NULL, 10);
	}
	*body = end + 4;
	while ((size_t)(*body - buf) + (size_t)clen > n) {
		ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);

		if (r <= 0)
			return -1;
		n += (size_t)r;
		buf[n] = '\0';
	}
	return 0;
}

static int res_json(const struct res *r, char *out, size_t cap)
{
	return snprintf(out, cap,
			"{\"id\":\"%s\",\"type\":\"public_ipv4\",\"state\":\"created\","
			"\"address_family\":4,\"cidr\":32,\"public\":true,"
			"\"address\":\"198.51.100.%d\",\"metro\":{\"code\":\"ny\"},"
			"\"facility\":null,\"created_at\":\"2024-05-01T12:00:%02dZ\","
			"\"tags\":[\"vipd\",\"vipd:lb=%s\"]}",
			r->id, r->n, r->n % 60, r->lb);
}

#define NEIGHBOR4(peers, pw)                                                                 \
	"{\"address_family\":4,\"customer_as\":65000,\"customer_ip\":\"10.67.50.1\","            \
	"\"md5_enabled\":true,\"md5_password\":\"" pw "\",\"multihop\":false,"                  \
	"\"peer_as\":65530,\"peer_ips\":[" peers "],\"routes_in\":[],\"routes_out\":[]}"
#define NEIGHBORS                                                                            \
	"{\"bgp_neighbors\":[" NEIGHBOR4("\"169.254.255.1\",\"169.254.255.2\"", "s3cret") "]}"

/* The answer to one request: status, body, and an extra header line (or ""). */
static void api_answer(struct api *a, const char *method, const char *path, const char *hdrs,
		       const char *body, int *status, char *out, size_t cap, char *extra)
{
	const char *tok = strcasestr(hdrs, "\r\nX-Auth-Token: ");
	char want[64];
	bool inject_after = false;
	int inject = 0;

	*status = 200;
	out[0] = extra[0] = '\0';
	snprintf(want, sizeof(want), "\r\nX-Auth-Token: %s\r\n", TOKEN);
	if (a->all_n) {
		a->all_n--;
		inject = a->all_status;
	} else if (strcmp(method, "POST") == 0 && a->post_n) {
		a->post_n--;
		inject = a->post_status;
		inject_after = a->post_after;
	}
	if (inject && !inject_after) {
		*status = inject;
		snprintf(out, cap, "{\"errors\":[\"injected %d\"]}", inject);
		if (a->retry_after)
			snprintf(extra, 64, "Retry-After: %d\r\n", a->retry_after);
		return;
	}
	if (!tok || strncmp(tok, want, strlen(want)) != 0) {
		a->bad_token++;
		*status = 401;
		snprintf(out, cap, "{\"error\":\"Invalid authentication token\"}");
		return;
	}
	if (strcmp(method, "GET") == 0 &&
	    strcmp(path, "/metal/v1/devices/" DEVICE "/bgp/neighbors") == 0) {
		a->neighbors++;
		snprintf(out, cap, "%s", a->neighbors_body ? a->neighbors_body : NEIGHBORS);
	} else if (strcmp(method, "GET") == 0 &&
		   strncmp(path, "/metal/v1/projects/" PROJECT "/ips?", 27) == 0) {
		size_t o;

		a->lists++;
		o = (size_t)snprintf(out, cap, "{\"ip_addresses\":[");
		for (int i = 0, first = 1; i < a->n_res; i++) {
			if (!a->res[i].live)
				continue;
			if (!first)
				out[o++] = ',';
			first = 0;
			o += (size_t)res_json(&a->res[i], out + o, cap - o);
		}
		snprintf(out + o, cap - o, "],\"meta\":{\"total\":%d}}", a->n_res);
	} else if (strcmp(method, "POST") == 0 &&
		   strcmp(path, "/metal/v1/projects/" PROJECT "/ips") == 0) {
		const char *lb = strstr(body, "vipd:lb=");
		struct res *r;

		a->posts++;
		if (!lb || a->n_res == MAX_RES || !strstr(hdrs, "Content-Type: application/json") ||
		    !strstr(body, "\"fail_on_approval_required\":true")) {
			*status = 422;
			snprintf(out, cap, "{\"errors\":[\"bad request\"]}");
			return;
		}
		r = &a->res[a->n_res++];
		snprintf(r->id, sizeof(r->id), "ip-%d", ++a->next_id);
		snprintf(r->lb, sizeof(r->lb), "%.36s", lb + 8);
		r->n = a->next_id;
		r->live = true;
		*status = 201;
		res_json(r, out, cap);
	} else if (strcmp(method, "DELETE") == 0 && strncmp(path, "/metal/v1/ips/", 14) == 0) {
		a->deletes++;
		*status = 404;
		snprintf(out, cap, "{\"errors\":[\"Not found\"]}");
		for (int i = 0; i < a->n_res; i++) {
			if (a->res[i].live && strcmp(a->res[i].id, path + 14) == 0) {
				a->res[i].live = false;
				*status = 204;
				out[0] = '\0';
			}
		}
	} else {
		*status = 404;
		snprintf(out, cap, "{\"errors\":[\"Not found\"]}");
	}
	if (inject) {
		*status = inject;
		snprintf(out, cap, "{\"errors\":[\"injected %d after\"]}", inject);
	}
}

static void *api_main(void *arg)
{
	struct api *a = arg;
	static char req[65536], out[65536];

	for (;;) {
		char method[16] = "", path[512] = "", extra[64], head[160], *body = NULL;
		int status, fd = accept(a->fd, NULL, NULL);

		if (fd < 0)
			return NULL;
		pthread_mutex_lock(&a->mu);
		if (a->stop) {
			pthread_mutex_unlock(&a->mu);
			close(fd);
			return NULL;
		}
		pthread_mutex_unlock(&a->mu);
		if (read_request(fd, req, sizeof(req), &body) ||
		    sscanf(req, "%15s %511s", method, path) != 2) {
			close(fd);
			continue;
		}
		if (strcmp(method, "POST") == 0) {
			int delay;

			pthread_mutex_lock(&a->mu);
			a->posts_seen++;
			delay = a->post_delay_ms;
			pthread_mutex_unlock(&a->mu);
			if (delay)
				usleep((useconds_t)delay * 1000);
		}
		pthread_mutex_lock(&a->mu);
		api_answer(a, method, path, req, body, &status, out, sizeof(out), extra);
		pthread_mutex_unlock(&a->mu);
		snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
			 "%sContent-Length: %zu\r\nConnection: close\r\n\r\n", status, extra,
			 strlen(out));
		if (send(fd, head, strlen(head), MSG_NOSIGNAL) < 0 ||
		    send(fd, out, strlen(out), MSG_NOSIGNAL) < 0) {
			/* the client gave up: nothing to do */
		}
		shutdown(fd, SHUT_WR);
		close(fd);
	}
}

static void api_start(struct api *a)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sin);

	memset(a, 0, sizeof(*a));
	pthread_mutex_init(&a->mu, NULL);
	a->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(a->fd >= 0);
	assert_int_equal(bind(a->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(a->fd, 64), 0);
	assert_int_equal(getsockname(a->fd, (struct sockaddr *)&sin, &sl), 0);
	a->port = ntohs(sin.sin_port);
	assert_int_equal(pthread_create(&a->th, NULL, api_main, a), 0);
}

static void api_stop(struct api *a)
{
	pthread_mutex_lock(&a->mu);
	a->stop = true;
	pthread_mutex_unlock(&a->mu);
	shutdown(a->fd, SHUT_RDWR);
	pthread_join(a->th, NULL);
	close(a->fd);
	pthread_mutex_destroy(&a->mu);
}

/* Reads a counter under the lock. */
static int api_get(struct api *a, const int *field)
{
	int v;

	pthread_mutex_lock(&a->mu);
	v = *field;
	pthread_mutex_unlock(&a->mu);
	return v;
}

static int api_live(struct api *a)
{
	int n = 0;

	pthread_mutex_lock(&a->mu);
	for (int i = 0; i < a->n_res; i++)
		n += a->res[i].live;
	pthread_mutex_unlock(&a->mu);
	return n;
}

/* --- the source on a loop --------------------------------------------------------------- */

struct result {
	char owner[UUID_STR_LEN];
	int err;
	struct ip_addr addr;
};

struct fx {
	struct api api;
	struct ev_loop *loop;
	struct model *model;
	struct vip_source *src;
	char dir[64], url[128], peers[128];
	struct result results[8];
	int n_results, peers_changed, fatal;
	int fatal_err;
	const char *token;
	bool keep_ips;
};

static void on_result(void *arg, const char *owner, int err, const struct ip_addr *addr)
{
	struct fx *f = arg;
	struct result *r = &f->results[f->n_results++ % 8];

	snprintf(r->owner, sizeof(r->owner), "%s", owner);
	r->err = err;
	if (addr)
		r->addr = *addr;
}

static void on_peers(void *arg)
{
	((struct fx *)arg)->peers_changed++;
}

static void on_fatal(void *arg, int err)
{
	struct fx *f = arg;

	f->fatal++;
	f->fatal_err = err;
}

static void add_lb(struct fx *f, const char *uuid)
{
	struct lb *lb = lb_new();

	assert_non_null(lb);
	memcpy(lb->uuid, uuid, UUID_STR_LEN);
	lb_set_name(lb, "web");
	lb->status = LB_STATUS_PENDING;
	assert_int_equal(model_add(f->model, lb), 0);
}

static int source_new(struct fx *f)
{
	struct metal_options o = {
		.loop = f->loop,
		.api_url = f->url,
		.metadata_url = "http://127.0.0.1:1/metadata",
		.token = f->token ? f->token : TOKEN,
		.project = PROJECT,
		.metro = "NY",
		.device = DEVICE,
		.hostname = "node-1",
		.state_dir = f->dir,
		.peers_path = f->peers,
		.keep_ips = f->keep_ips,
		.timeout_ms = 5000,
		.model = f->model,
		.peers_changed = on_peers,
		.fatal = on_fatal,
		.cb_arg = f,
	};
	int r = metal_new(&o, &f->src);

	if (!r) {
		f->src->on_result = on_result;
		f->src->on_result_arg = f;
	}
	return r;
}

static int setup(void **st)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	api_start(&f->api);
	f->loop = ev_loop_new(EVFLAG_AUTO);
	f->model = model_new();
	snprintf(f->dir, sizeof(f->dir), "/tmp/vipd-test-metal-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%u/metal/v1", f->api.port);
	snprintf(f->peers, sizeof(f->peers), "%s/bird-peers.conf", f->dir);
	*st = f;
	return 0;
}

static int teardown(void **st)
{
	struct fx *f = *st;
	char path[160];

	if (f->src)
		f->src->ops->free(f->src);
	api_stop(&f->api);
	model_free(f->model);
	ev_loop_destroy(f->loop);
	snprintf(path, sizeof(path), "%s/" METAL_STATE_FILE, f->dir);
	unlink(path);
	unlink(f->peers);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
}

/* Runs the loop until cond(f) or the deadline; whether cond held. A tick bounds each pass. */
static bool run_until(struct fx *f, bool (*cond)(struct fx *), double max_s)
{
	double end = ev_time() + max_s;
	ev_timer tick;
	bool held;

	ev_timer_init(&tick, on_tick, 0.05, 0.05);
	ev_timer_start(f->loop, &tick);
	while (!(held = cond(f)) && ev_time() < end)
		ev_run(f->loop, EVRUN_ONCE);
	ev_timer_stop(f->loop, &tick);
	return held;
}

static bool have_result(struct fx *f)
{
	return f->n_results > 0;
}

static bool is_fatal(struct fx *f)
{
	return f->fatal > 0;
}

static bool ready(struct fx *f)
{
	/* the start-up lists once */
	return api_get(&f->api, &f->api.lists) >= 1 && f->peers_changed > 0;
}

static bool none_live(struct fx *f)
{
	return api_live(&f->api) == 0;
}

static bool one_live(struct fx *f)
{
	return api_live(&f->api) == 1;
}

static char *slurp(const char *path)
{
	static char buf[8192];
	FILE *fp = fopen(path, "r");
	size_t n;

	if (!fp)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	return buf;
}

static char *record(struct fx *f)
{
	char path[160];

	snprintf(path, sizeof(path), "%s/" METAL_STATE_FILE, f->dir);
	return slurp(path);
}

static void restart(struct fx *f)
{
	f->src->ops->free(f->src);
	f->src = NULL;
	f->n_results = 0;
	f->peers_changed = 0;
	pthread_mutex_lock(&f->api.mu);
	f->api.lists = 0;
	pthread_mutex_unlock(&f->api.mu);
	assert_int_equal(source_new(f), 0);
}

static void test_reserve_release(void **st)
{
	struct fx *f = *st;
	struct ip_addr a;
	char ip[IP_ADDR_STRLEN], *peers, *rec;

	add_lb(f, LB1);
	assert_int_equal(source_new(f), 0);
	/* before the start-up has listed, allocations wait */
	assert_int_equal(f->src->ops->allocate(f->src, LB1, 0, &a), -EINPROGRESS);
	assert_int_equal(f->src->ops->allocate(f->src, LB1, AF_INET6, &a), -EAFNOSUPPORT);
	assert_non_null(strstr(f->src->ops->pending_reason(f->src, LB1), "waiting for the "
			       "start-up"));
	assert_true(run_until(f, have_result, WAIT_S));
	assert_int_equal(f->results[0].err, 0);
	assert_string_equal(f->results[0].owner, LB1);
	assert_string_equal(ip_addr_str(&f->results[0].addr, ip), "198.51.100.1");
	assert_int_equal(api_get(&f->api, &f->api.posts), 1);
	assert_int_equal(f->peers_changed, 1);
	peers = slurp(f->peers);
	assert_non_null(peers);
	assert_non_null(strstr(peers, "neighbor 169.254.255.1 as 65530;"));
	assert_non_null(strstr(peers, "neighbor 169.254.255.2 as 65530;"));
	assert_non_null(strstr(peers, "password \"s3cret\";"));
	assert_null(strstr(peers, "multihop"));
	rec = record(f);
	assert_non_null(rec);
	assert_non_null(strstr(rec, LB1 " ip-1 198.51.100.1\n"));
	assert_true(f->src->ops->contains(f->src, &f->results[0].addr));
	assert_null(f->src->ops->pending_reason(f->src, LB1));

	/* a restart: the record answers at once, nothing is reserved twice */
	restart(f);
	assert_int_equal(f->src->ops->reserve(f->src, LB1, &f->results[0].addr), 0);
	assert_int_equal(f->src->ops->reserve(f->src, LB2, &f->results[0].addr), -EEXIST);
	assert_true(run_until(f, ready, WAIT_S));
	assert_int_equal(api_get(&f->api, &f->api.posts), 1);
	assert_int_equal(f->src->ops->allocate(f->src, LB1, 0, &a), 0);
	assert_true(ip_addr_equal(&a, &f->results[0].addr));

	/* release: on record as going, then gone from the API and the record */
	assert_int_equal(f->src->ops->release(f->src, &a), 0);
	assert_false(f->src->ops->contains(f->src, &a));
	assert_int_equal(f->src->ops->release(f->src, &a), -ENOENT);
	assert_true(run_until(f, none_live, WAIT_S));
	ev_run(f->loop, EVRUN_NOWAIT);
	rec = record(f);
	assert_null(strstr(rec, "ip-1"));
	assert_int_equal(api_get(&f->api, &f->api.deletes), 1);
	assert_int_equal(api_get(&f->api, &f->api.bad_token), 0);
}

static void test_adopt_and_leftovers(void **st)
{
	struct fx *f = *st;
	struct ip_addr a;
	char path[160];
	FILE *fp;

	/* The API holds a reservation for LB1 that the record lacks (vipd was killed after
	 * the POST went out), and the record holds one for a load balancer that is gone. */
	pthread_mutex_lock(&f->api.mu);
	f->api.res[0] = (struct res){ "ip-7", LB1, 7, true };
	f->api.res[1] = (struct res){ "ip-8", LB2, 8, true };
	f->api.n_res = 2;
	f->api.next_id = 8;
	pthread_mutex_unlock(&f->api.mu);
	snprintf(path, sizeof(path), "%s/" METAL_STATE_FILE, f->dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp, LB2 " ip-8 198.51.100.8\n");
	fclose(fp);
	add_lb(f, LB1);
	assert_int_equal(source_new(f), 0);
	assert_int_equal(f->src->ops->allocate(f->src, LB1, 0, &a), -EINPROGRESS);
	assert_true(run_until(f, have_result, WAIT_S));
	assert_int_equal(f->results[0].err, 0);
	assert_int_equal(f->results[0].addr.v4.s_addr, htonl(0xc6336407)); /* 198.51.100.7 */
	assert_int_equal(api_get(&f->api, &f->api.posts), 0);
	/* LB2's address goes back; LB1's is on record */
	assert_true(run_until(f, one_live, WAIT_S));
	assert_non_null(strstr(record(f), LB1 " ip-7 198.51.100.7\n"));
}

static bool post_arrived(struct fx *f)
{
	return api_get(&f->api, &f->api.posts_seen) > 0;
}

static bool deleted(struct fx *f)
{
	return api_get(&f->api, &f->api.deletes) > 0;
}

static void test_cancel_in_flight(void **st)
{
	struct fx *f = *st;
	struct ip_addr a;

	add_lb(f, LB1);
	pthread_mutex_lock(&f->api.mu);
	f->api.post_delay_ms = 300;
	pthread_mutex_unlock(&f->api.mu);
	assert_int_equal(source_new(f), 0);
	assert_int_equal(f->src->ops->allocate(f->src, LB1, 0, &a), -EINPROGRESS);
	/* cancelled while the (slow) POST is under way */
	assert_true(run_until(f, post_arrived, WAIT_S));
	f->src->ops->cancel(f->src, LB1);
	/* what arrives goes back, and nobody is told */
	assert_true(run_until(f, deleted, WAIT_S));
	assert_int_equal(api_live(&f->api), 0);
	assert_int_equal(f->n_results, 0);
	assert_int_equal(api_get(&f->api, &f->api.posts), 1);
	/* a load balancer cancelled while it waits is simply forgotten */
	assert_int_equal(f->src->ops->allocate(f->src, LB2, 0, &a), -EINPROGRESS);
	f->src->ops->cancel(f->src, LB2);
	assert_null(f->src->ops->pending_reason(f->src, LB2));
}

static void test_post_500_after_reserving(void **st)
{
	struct fx *f = *st;

	add_lb(f, LB1);
	pthread_mutex_lock(&f->api.mu);
	f->api.post_status = 500;
	f->api.post_n = 1;
	f->api.post_after = true;
	pthread_mutex_unlock(&f->api.mu);
	assert_int_equal(source_new(f), 0);
	assert_int_equal(f->src->ops->allocate(f->src, LB1, 0, NULL), -EINPROGRESS);
	assert_true(run_until(f, have_result, WAIT_S));
	/* the list found what the unanswered POST reserved: no second POST */
	assert_int_equal(f->results[0].err, 0);
	assert_int_equal(api_get(&f->api, &f->api.posts), 1);
	assert_int_equal(api_live(&f->api), 1);
	assert_true(api_get(&f->api, &f->api.lists) >= 2);
}

static bool refused_422(struct fx *f)
{
	const char *why = f->src->ops->pending_reason(f->src, LB1);

	return why && strstr(why, "refused the reservation: injected 422");
}

static void test_422_then_429_then_ok(void **st)
{
	struct fx *f = *st;
	struct ip_addr a;
	double t0;

	add_lb(f, LB1);
	pthread_mutex_lock(&f->api.mu);
	f->api.post_status = 422;
	f->api.post_n = 1;
	pthread_mutex_unlock(&f->api.mu);
	assert_int_equal(source_new(f), 0);
	t0 = ev_time();
	assert_int_equal(f->src->ops->allocate(f->src, LB1, 0, &a), -EINPROGRESS);
	/* after the 422 the reason quotes the API; then a 429 asks for a second */
	assert_true(run_until(f, refused_422, WAIT_S));
	pthread_mutex_lock(&f->api.mu);
	f->api.post_status = 429;
	f->api.post_n = 1;
	f->api.retry_after = 1;
	pthread_mutex_unlock(&f->api.mu);
	assert_true(run_until(f, have_result, WAIT_S));
	assert_int_equal(f->results[0].err, 0);
	/* 422: at least METAL_BACKOFF_MIN_MS; 429: at least the second it asked for */
	assert_true(ev_time() - t0 >= 1.25);
	assert_int_equal(api_live(&f->api), 1);
}

static void test_token_refused(void **st)
{
	struct fx *f = *st;

	f->token = "wrong";
	assert_int_equal(source_new(f), 0);
	assert_true(run_until(f, is_fatal, WAIT_S));
	assert_int_equal(f->fatal_err, -EACCES);
	assert_int_equal(f->src->ops->allocate(f->src, LB1, 0, &f->results[0].addr), -EIO);
	/* nothing more is sent */
	ev_run(f->loop, EVRUN_NOWAIT);
	assert_int_equal(api_get(&f->api, &f->api.bad_token), 1);
	assert_int_equal(f->fatal, 1);
}

static void test_corrupt_record(void **st)
{
	struct fx *f = *st;
	char path[160];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/" METAL_STATE_FILE, f->dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp, "garbage\n");
	fclose(fp);
	assert_int_equal(source_new(f), -EINVAL);
	assert_null(f->src);
}

static uint64_t answered(struct fx *f)
{
	struct metal_stats ms;
	uint64_t n = 0;

	metal_stats(f->src, &ms);
	for (int c = 0; c < METAL_REQ_CLASSES; c++)
		n += ms.requests[c];
	return n;
}

static uint64_t want_answered;

/* The source has handled want_answered answers (it handles each as it arrives). */
static bool answers_in(struct fx *f)
{
	return answered(f) >= want_answered;
}

/* The start-up has handled the neighbours and the list (the only requests without load
 * balancers). */
static bool started(struct fx *f)
{
	return answered(f) >= 2;
}

static bool peers_twice(struct fx *f)
{
	return f->peers_changed >= 2;
}

static bool peers_thrice(struct fx *f)
{
	return f->peers_changed >= 3;
}

static void set_neighbors(struct fx *f, const char *body)
{
	pthread_mutex_lock(&f->api.mu);
	f->api.neighbors_body = body;
	pthread_mutex_unlock(&f->api.mu);
}

static ino_t peers_inode(struct fx *f)
{
	struct stat sb;

	assert_int_equal(stat(f->peers, &sb), 0);
	return sb.st_ino;
}

static void test_refresh(void **st)
{
	struct fx *f = *st;
	const char *peers;
	ino_t ino;

	assert_int_equal(source_new(f), 0);
	/* before the start-up has read the neighbours a refresh does nothing */
	f->src->ops->refresh(f->src);
	assert_true(run_until(f, started, WAIT_S));
	assert_int_equal(api_get(&f->api, &f->api.neighbors), 1);
	assert_int_equal(f->peers_changed, 1);
	ino = peers_inode(f);

	/* unchanged: the file is left alone (a rename would give it a new inode), BIRD is not
	 * told */
	want_answered = answered(f) + 1;
	f->src->ops->refresh(f->src);
	assert_true(run_until(f, answers_in, WAIT_S));
	assert_int_equal(api_get(&f->api, &f->api.neighbors), 2);
	assert_int_equal(f->peers_changed, 1);
	assert_true(peers_inode(f) == ino);

	/* a peer more and a new password; a second trigger while the first runs does nothing */
	set_neighbors(f, "{\"bgp_neighbors\":[" NEIGHBOR4("\"169.254.255.1\",\"169.254.255.2\","
						      "\"169.254.255.3\"", "n3w") "]}");
	f->src->ops->refresh(f->src);
	f->src->ops->refresh(f->src);
	assert_true(run_until(f, peers_twice, WAIT_S));
	assert_int_equal(api_get(&f->api, &f->api.neighbors), 3);
	peers = slurp(f->peers);
	assert_non_null(strstr(peers, "protocol bgp vipd_metal4_3 {"));
	assert_non_null(strstr(peers, "neighbor 169.254.255.3 as 65530;"));
	assert_non_null(strstr(peers, "password \"n3w\";"));
	assert_null(strstr(peers, "s3cret"));
	ino = peers_inode(f);

	/* malformed, then a 404: BIRD keeps its peers */
	set_neighbors(f, "{\"bgp_neighbors\":[{\"address_family\":4");
	want_answered = answered(f) + 1;
	f->src->ops->refresh(f->src);
	assert_true(run_until(f, answers_in, WAIT_S));
	pthread_mutex_lock(&f->api.mu);
	f->api.all_status = 404;
	f->api.all_n = 1;
	pthread_mutex_unlock(&f->api.mu);
	want_answered = answered(f) + 1;
	f->src->ops->refresh(f->src);
	assert_true(run_until(f, answers_in, WAIT_S));
	assert_int_equal(f->peers_changed, 2);
	assert_true(peers_inode(f) == ino);
	assert_int_equal(f->fatal, 0);

	/* a 503 is retried (backoff), then the change arrives: back to the start's peers */
	set_neighbors(f, NULL);
	pthread_mutex_lock(&f->api.mu);
	f->api.all_status = 503;
	f->api.all_n = 1;
	pthread_mutex_unlock(&f->api.mu);
	f->src->ops->refresh(f->src);
	assert_true(run_until(f, peers_thrice, WAIT_S));
	peers = slurp(f->peers);
	assert_null(strstr(peers, "169.254.255.3"));
	assert_non_null(strstr(peers, "password \"s3cret\";"));
	assert_int_equal(api_get(&f->api, &f->api.neighbors), 5);

	/* a refused token is fatal here as anywhere */
	pthread_mutex_lock(&f->api.mu);
	f->api.all_status = 403;
	f->api.all_n = 1;
	pthread_mutex_unlock(&f->api.mu);
	f->src->ops->refresh(f->src);
	assert_true(run_until(f, is_fatal, WAIT_S));
	assert_int_equal(f->fatal_err, -EACCES);
	/* a dead source reads nothing more */
	want_answered = answered(f);
	f->src->ops->refresh(f->src);
	ev_run(f->loop, EVRUN_NOWAIT);
	assert_int_equal(answered(f), want_answered);
	assert_int_equal(f->peers_changed, 3);
}

static void test_bad_options(void **st)
{
	struct fx *f = *st;
	struct metal_options o = {
		.loop = f->loop, .api_url = f->url, .metadata_url = "http://x/metadata",
		.token = TOKEN, .project = PROJECT, .metro = "ny", .state_dir = f->dir,
	};
	struct vip_source *s = NULL;

	o.api_url = "ftp://x";
	assert_int_equal(metal_new(&o, &s), -EINVAL);
	o.api_url = f->url;
	o.facility = "ny5"; /* both */
	assert_int_equal(metal_new(&o, &s), -EINVAL);
	o.facility = NULL;
	o.project = "p/../x";
	assert_int_equal(metal_new(&o, &s), -EINVAL);
	o.project = PROJECT;
	o.token = "a\nb";
	assert_int_equal(metal_new(&o, &s), -EINVAL);
	assert_null(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_state_roundtrip),
		cmocka_unit_test(test_state_errors),
		cmocka_unit_test(test_token_ok),
		cmocka_unit_test_setup_teardown(test_reserve_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adopt_and_leftovers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_post_500_after_reserving, setup, teardown),
		cmocka_unit_test_setup_teardown(test_422_then_429_then_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refresh, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
	};

	log_set_level(getenv("VIPD_TEST_LOG") ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
