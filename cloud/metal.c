/*
 * Equinix Metal elastic IPs on the loop; see metal.h.
 *
 * Every piece of work that talks to the API is a job: the start-up (one), one per load
 * balancer waiting for an address, one per reservation being released, and at most one
 * reading the BGP neighbours again. A job has at most one request in flight and one retry
 * timer; its step says what it does next. Jobs never block and never call back into the store
 * while they are half-way through their bookkeeping: a job leaves the list before on_result
 * runs, since the store may release or cancel from inside it.
 */
#include "metal.h"

#include <ctype.h>
#include <errno.h>
#include <ev.h>
#include <stdarg.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../src/announce/bird.h"
#include "../src/log.h"
#include "../src/nlattr.h"
#include "../src/util.h"
#include "http.h"
#include "metal_msg.h"
#include "metal_state.h"

#define URL_MAX 2048
#define REASON_MAX 320
#define MSG_MAX 256
#define TOKEN_MAX 4096
#define MAX_PEER_ROUTES 32
#define MAX_PAGES 1000		/* of one listing: a next link that never ends is a bug */
#define PER_PAGE "250"
#define STATE_FILE_MAX (4u << 20)
/* Equinix changes a device's neighbours when BGP is enabled for it after vipd started, or a
 * session's settings (password, peers): they are read again this often, and on SIGHUP. */
#define NEIGHBORS_REFRESH_S 300

enum job_kind { JOB_START, JOB_RESERVE, JOB_RELEASE, JOB_REFRESH };

enum job_step {
	S_METADATA,	  /* start: the metadata document, for the device id */
	S_DEVICES,	  /* start: the project's devices, for the one named like this host */
	S_NEIGHBORS,	  /* start, refresh: the device's BGP neighbours */
	S_ROUTE_METADATA, /* start, refresh: the metadata again, for the gateways multihop
			   * peers need */
	S_LIST,		  /* start, reserve: every page of the project's reservations */
	S_WAIT,		  /* reserve: until the start-up has listed */
	S_POST,		  /* reserve: ask for an address */
	S_DELETE,	  /* release */
};

struct metal;

struct job {
	struct metal *m;
	struct job *prev, *next;
	enum job_kind kind;
	enum job_step step;
	char lb[UUID_STR_LEN];	/* reserve: the load balancer */
	char id[METAL_ID_MAX];	/* release: the reservation */
	struct ip_addr addr;	/* release: its address, when it has one (for the log) */
	struct http_call *call;
	ev_timer timer;
	unsigned attempt;
	unsigned pages;
	bool cancelled;		/* reserve: its load balancer is gone; what turns up goes back */
	bool unsure;		/* reserve: a POST may have reserved without our hearing of it */
	double started;		/* reserve: for the log */
	char reason[REASON_MAX]; /* reserve: why the load balancer still waits */
	char url[URL_MAX];	/* the request under way (the page, for listings) */
	struct metal_ip_list ips;
	struct metal_device_list devs;
};

struct metal {
	struct vip_source src; /* first: the source pointer is the metal pointer */
	struct ev_loop *loop;
	struct http_client *http;
	char *api_url, *metadata_url, *token_hdr, *project, *metro, *facility;
	char *hostname, *state_path, *peers_path;
	char device[METAL_ID_MAX];
	bool device_given;
	bool keep_ips;
	bool listed; /* the start-up has matched the record against the API */
	bool dead;   /* fatal: nothing more is sent */
	/* The start-up has read the neighbours once: from then on a refresh may read them. */
	bool neighbors_read;
	uint32_t timeout_ms;
	const struct model *model;
	void (*peers_changed)(void *arg);
	void (*fatal)(void *arg, int err);
	void *cb_arg;

	struct metal_state_entry *recs; /* the record (METAL_STATE_FILE) */
	size_t n_recs, cap_recs;
	struct job *jobs;
	struct metal_metadata meta;
	bool have_meta;
	struct metal_bgp bgp;
	char *peers_text; /* what BIRD's peer file last got from vipd; NULL: nothing yet */
	size_t peers_len;
	ev_timer refresh_timer;
	struct metal_peer_route routes[MAX_PEER_ROUTES]; /* installed by us */
	size_t n_routes;
	struct metal_stats stats;
};

static void job_run(struct job *j);
static void job_free(struct job *j);
static bool ident_ok(const char *s, size_t max, const char *extra);

static struct metal *metal_of(struct vip_source *src)
{
	return (struct metal *)src;
}

static const struct metal *metal_of_const(const struct vip_source *src)
{
	return (const struct metal *)src;
}

static const char *loc_key(const struct metal *m)
{
	return m->metro ? "metro" : "facility";
}

static const char *loc(const struct metal *m)
{
	return m->metro ? m->metro : m->facility;
}

/*
 * The metro to match reservations against. With --facility, a reservation made for the
 * facility's whole metro (it names no facility) is usable here too: the facility's metro
 * comes from the metadata, else from a reservation in that facility.
 */
static const char *match_metro(const struct metal *m, const struct metal_ip_list *l)
{
	if (m->metro)
		return m->metro;
	if (m->have_meta && m->meta.metro[0] && strcasecmp(m->meta.facility, m->facility) == 0)
		return m->meta.metro;
	for (size_t i = 0; i < l->n; i++)
		if (l->ips[i].metro[0] && strcasecmp(l->ips[i].facility, m->facility) == 0)
			return l->ips[i].metro;
	return NULL;
}

/* --- the record ----------------------------------------------------------------------- */

static struct metal_state_entry *rec_by_lb(struct metal *m, const char *lb)
{
	for (size_t i = 0; i < m->n_recs; i++)
		if (m->recs[i].lb[0] && strcasecmp(m->recs[i].lb, lb) == 0)
			return &m->recs[i];
	return NULL;
}

static struct metal_state_entry *rec_by_id(struct metal *m, const char *id)
{
	for (size_t i = 0; i < m->n_recs; i++)
		if (strcmp(m->recs[i].id, id) == 0)
			return &m->recs[i];
	return NULL;
}

static struct metal_state_entry *rec_by_addr(const struct metal *m, const struct ip_addr *a)
{
	for (size_t i = 0; i < m->n_recs; i++)
		if (ip_addr_equal(&m->recs[i].addr, a))
			return &m->recs[i];
	return NULL;
}

static struct metal_state_entry *rec_add(struct metal *m, const char *lb, const char *id,
					 const struct ip_addr *addr)
{
	struct metal_state_entry *e, *recs;

	recs = array_grow(m->recs, &m->cap_recs, m->n_recs, sizeof(*m->recs), 16);
	if (!recs)
		return NULL;
	m->recs = recs;
	e = &m->recs[m->n_recs++];
	memset(e, 0, sizeof(*e));
	snprintf(e->lb, sizeof(e->lb), "%s", lb);
	for (char *p = e->lb; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	snprintf(e->id, sizeof(e->id), "%s", id);
	e->addr = *addr;
	return e;
}

static void rec_del(struct metal *m, struct metal_state_entry *e)
{
	size_t at = (size_t)(e - m->recs);

	memmove(&m->recs[at], &m->recs[at + 1], (m->n_recs - at - 1) * sizeof(*m->recs));
	m->n_recs--;
}

static int recs_save(struct metal *m)
{
	char *text;
	size_t len;
	int r = metal_state_format(m->recs, m->n_recs, &text, &len);

	if (!r) {
		r = bird_file_replace(m->state_path, text, len);
		free(text);
	}
	if (r)
		log_error("msg=\"cannot write the record of Equinix Metal reservations\" path=%s "
			  "err=\"%s\"", m->state_path, strerror(-r));
	return r;
}

static int recs_load(struct metal *m)
{
	char err[256], *text;
	struct stat st;
	ssize_t got;
	size_t n = 0;
	int fd, r;

	fd = open(m->state_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 0;
	r = fd < 0 || fstat(fd, &st) ? -errno : !S_ISREG(st.st_mode) ? -EINVAL :
		st.st_size > STATE_FILE_MAX ? -EFBIG : 0;
	if (r) {
		log_error("msg=\"cannot read vipd's record of its Equinix Metal reservations\" "
			  "path=%s err=\"%s\"", m->state_path, strerror(-r));
		if (fd >= 0)
			close(fd);
		return r;
	}
	text = malloc((size_t)st.st_size + 1);
	if (!text) {
		close(fd);
		return -ENOMEM;
	}
	while (n < (size_t)st.st_size) {
		got = read(fd, text + n, (size_t)st.st_size - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		n += (size_t)got;
	}
	close(fd);
	r = metal_state_parse(text, n, &m->recs, &m->n_recs, err, sizeof(err));
	free(text);
	if (r) {
		log_error("msg=\"vipd's record of its Equinix Metal reservations is damaged; fix the "
			  "line or remove the file (vipd then goes by the API's tagged list and "
			  "releases nothing it finds there)\" path=%s err=\"%s\"",
			  m->state_path, err[0] ? err : strerror(-r));
		return r == -ENOMEM ? r : -EINVAL;
	}
	m->cap_recs = m->n_recs;
	log_info("msg=\"Equinix Metal reservations on record\" path=%s count=%zu", m->state_path,
		 m->n_recs);
	return 0;
}

/* --- host routes to multihop peers -------------------------------------------------------- */

/* One RTM_NEWROUTE / RTM_DELROUTE for a peer's host route, marked METAL_ROUTE_PROTO;
 * the kernel's answer, 0 or -errno. */
static int route_change(int type, unsigned flags, const struct metal_peer_route *rt)
{
	struct {
		struct nlmsghdr nh;
		struct rtmsg rt;
		char attrs[64];
	} req;
	char buf[512] __attribute__((aligned(NLMSG_ALIGNTO)));
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	struct timeval tv = { .tv_sec = 2 };
	const struct nlmsghdr *nh = (const struct nlmsghdr *)buf;
	ssize_t n;
	int fd, err;

	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg));
	req.nh.nlmsg_type = (unsigned short)type;
	req.nh.nlmsg_flags = (unsigned short)(NLM_F_REQUEST | NLM_F_ACK | flags);
	req.nh.nlmsg_seq = 1;
	req.rt.rtm_family = (unsigned char)rt->dst.family;
	req.rt.rtm_dst_len = rt->dst.family == AF_INET ? 32 : 128;
	req.rt.rtm_table = RT_TABLE_MAIN;
	req.rt.rtm_protocol = METAL_ROUTE_PROTO;
	req.rt.rtm_scope = RT_SCOPE_UNIVERSE;
	req.rt.rtm_type = RTN_UNICAST;
	if (nlattr_put(&req.nh, sizeof(req), RTA_DST, rt->dst.bytes, ip_addr_len(&rt->dst)) ||
	    (type == RTM_NEWROUTE &&
	     nlattr_put(&req.nh, sizeof(req), RTA_GATEWAY, rt->via.bytes, ip_addr_len(&rt->via))))
		return -EMSGSIZE;
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (sendto(fd, &req, req.nh.nlmsg_len, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		n = -errno;
	else
		n = recv(fd, buf, sizeof(buf), 0);
	err = n < 0 ? -errno : 0;
	close(fd);
	if (err)
		return err;
	if ((size_t)n < NLMSG_LENGTH(sizeof(struct nlmsgerr)) || nh->nlmsg_type != NLMSG_ERROR)
		return -EPROTO;
	return ((const struct nlmsgerr *)NLMSG_DATA(nh))->error;
}

static bool route_in(const struct metal_peer_route *rt, size_t n,
		     const struct metal_peer_route *r)
{
	for (size_t i = 0; i < n; i++)
		if (ip_addr_equal(&rt[i].dst, &r->dst) && ip_addr_equal(&rt[i].via, &r->via))
			return true;
	return false;
}

/*
 * Brings vipd's host routes in line with rt: those of ours rt no longer has (or has through
 * another gateway) go, the new ones come. The routes a previous run left (same protocol) are
 * replaced; a route to the peer that someone else made stays, and is not ours to remove.
 */
static void routes_sync(struct metal *m, const struct metal_peer_route *rt, size_t n)
{
	for (size_t i = m->n_routes; i-- > 0;) {
		char dst[IP_ADDR_STRLEN];
		int err;

		if (route_in(rt, n, &m->routes[i]))
			continue;
		ip_addr_str(&m->routes[i].dst, dst);
		err = route_change(RTM_DELROUTE, 0, &m->routes[i]);
		if (err && err != -ESRCH)
			log_warn("msg=\"cannot remove the host route to a BGP peer\" peer=%s "
				 "err=\"%s\"", dst, strerror(-err));
		else
			log_info("msg=\"host route to a BGP peer removed\" peer=%s", dst);
		memmove(&m->routes[i], &m->routes[i + 1],
			(m->n_routes - i - 1) * sizeof(*m->routes));
		m->n_routes--;
	}
	for (size_t i = 0; i < n; i++) {
		char dst[IP_ADDR_STRLEN], via[IP_ADDR_STRLEN];
		int err;

		if (route_in(m->routes, m->n_routes, &rt[i]))
			continue;
		ip_addr_str(&rt[i].dst, dst);
		ip_addr_str(&rt[i].via, via);
		/* The kernel matches the protocol on delete: only our own old route goes. */
		route_change(RTM_DELROUTE, 0, &rt[i]);
		err = route_change(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &rt[i]);
		if (err == -EEXIST) {
			log_info("msg=\"a route to the BGP peer exists already; keeping it\" peer=%s",
				 dst);
			continue;
		}
		if (err) {
			log_error("msg=\"cannot install the host route to a multihop BGP peer; its "
				  "session will not come up\" peer=%s via=%s err=\"%s\"", dst, via,
				  strerror(-err));
			continue;
		}
		m->routes[m->n_routes++] = rt[i];
		log_info("msg=\"host route to a multihop BGP peer installed\" peer=%s via=%s "
			 "proto=%d", dst, via, METAL_ROUTE_PROTO);
	}
}

static void routes_remove(struct metal *m)
{
	for (size_t i = 0; i < m->n_routes; i++) {
		char dst[IP_ADDR_STRLEN];
		int err = route_change(RTM_DELROUTE, 0, &m->routes[i]);

		if (err && err != -ESRCH)
			log_warn("msg=\"cannot remove the host route to a BGP peer\" peer=%s err=\"%s\"",
				 ip_addr_str(&m->routes[i].dst, dst), strerror(-err));
	}
	m->n_routes = 0;
}

/* --- jobs --------------------------------------------------------------------------------- */

static void on_job_timer(struct ev_loop *loop, ev_timer *w, int revents);

static struct job *job_new(struct metal *m, enum job_kind kind, enum job_step step)
{
	struct job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->m = m;
	j->kind = kind;
	j->step = step;
	j->started = monotonic_s();
	ev_timer_init(&j->timer, on_job_timer, 0., 0.);
	j->timer.data = j;
	j->next = m->jobs;
	if (m->jobs)
		m->jobs->prev = j;
	m->jobs = j;
	return j;
}

static void job_free(struct job *j)
{
	struct metal *m = j->m;

	if (j->call)
		http_cancel(j->call);
	ev_timer_stop(m->loop, &j->timer);
	if (j->prev)
		j->prev->next = j->next;
	else
		m->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	metal_ip_list_free(&j->ips);
	metal_device_list_free(&j->devs);
	free(j);
}

static struct job *job_for_lb(struct metal *m, const char *lb)
{
	for (struct job *j = m->jobs; j; j = j->next)
		if (j->kind == JOB_RESERVE && strcasecmp(j->lb, lb) == 0)
			return j;
	return NULL;
}

static void job_soon(struct job *j, double after)
{
	ev_timer_stop(j->m->loop, &j->timer);
	ev_timer_set(&j->timer, after, 0.);
	ev_timer_start(j->m->loop, &j->timer);
}

static uint32_t rnd32(void)
{
	uint32_t r;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
		r = (uint32_t)random() ^ (uint32_t)time(NULL);
	return r;
}

/* Tries the job again after the backoff; retry_after: seconds the API asked for, or -1. */
static uint32_t job_retry(struct job *j, long retry_after)
{
	uint32_t ms = metal_backoff_ms(j->attempt, rnd32(), retry_after);

	if (j->attempt < 64)
		j->attempt++;
	j->m->stats.retries++;
	job_soon(j, ms / 1000.0);
	return ms;
}

static void metal_die(struct metal *m, int err)
{
	if (m->dead)
		return;
	m->dead = true;
	ev_timer_stop(m->loop, &m->refresh_timer);
	for (struct job *j = m->jobs; j; j = j->next) {
		if (j->call)
			http_cancel(j->call);
		j->call = NULL;
		ev_timer_stop(m->loop, &j->timer);
	}
	if (m->fatal)
		m->fatal(m->cb_arg, err);
}

static const char *job_what(const struct job *j)
{
	switch (j->step) {
	case S_METADATA:
	case S_ROUTE_METADATA:
		return "GET metadata";
	case S_DEVICES:
		return "GET /projects/{id}/devices";
	case S_NEIGHBORS:
		return "GET /devices/{id}/bgp/neighbors";
	case S_LIST:
		return "GET /projects/{id}/ips";
	case S_POST:
		return "POST /projects/{id}/ips";
	case S_DELETE:
		return "DELETE /ips/{id}";
	default:
		return "?";
	}
}

/* The API's words for a quoted log value: one line, no double quote. */
static void api_message(const struct http_response *r, char *out, size_t outlen)
{
	metal_error_message(r->body, r->body_len, out, outlen);
	for (char *p = out; *p; p++)
		if (*p == '"')
			*p = '\'';
}

/*
 * What every API answer may need whatever the step: a failure to get one, a refused token,
 * a rate limit or a server error. 1 when dealt with (retry scheduled, or fatal), 0 when the
 * step should read the response.
 */
static int job_trouble(struct job *j, const struct http_response *r)
{
	struct metal *m = j->m;
	char msg[MSG_MAX];
	uint32_t ms;

	if (r->err) {
		if (j->step == S_POST)
			j->unsure = true;
		ms = job_retry(j, -1);
		snprintf(j->reason, sizeof(j->reason), "Equinix Metal API unreachable (%s); "
			 "retrying", r->errmsg);
		log_warn("msg=\"Equinix Metal API request failed; retrying\" request=\"%s\" "
			 "err=\"%s\" retry_in_ms=%u", job_what(j), r->errmsg, ms);
		return 1;
	}
	if (r->status == 401 || r->status == 403) {
		api_message(r, msg, sizeof(msg));
		log_error("msg=\"the Equinix Metal API refused the token (" METAL_TOKEN_ENV " or "
			  "--token-file): %s\" status=%ld request=\"%s\"", msg, r->status,
			  job_what(j));
		metal_die(m, -EACCES);
		return 1;
	}
	if (r->status == 429 || r->status >= 500) {
		if (j->step == S_POST && r->status >= 500)
			j->unsure = true;
		api_message(r, msg, sizeof(msg));
		ms = job_retry(j, r->retry_after);
		snprintf(j->reason, sizeof(j->reason), "Equinix Metal API: HTTP %ld (%s); retrying",
			 r->status, msg);
		log_warn("msg=\"Equinix Metal API busy or failing; retrying\" request=\"%s\" "
			 "status=%ld retry_after=%ld retry_in_ms=%u api=\"%s\"", job_what(j),
			 r->status, r->retry_after, ms, msg);
		return 1;
	}
	return 0;
}

/* A 4xx the step does not expect: logged, tried again later. */
static void job_unexpected(struct job *j, const struct http_response *r)
{
	char msg[MSG_MAX];
	uint32_t ms;

	api_message(r, msg, sizeof(msg));
	ms = job_retry(j, -1);
	snprintf(j->reason, sizeof(j->reason), "Equinix Metal API: HTTP %ld (%s); retrying",
		 r->status, msg);
	log_error("msg=\"unexpected answer from the Equinix Metal API; retrying\" request=\"%s\" "
		  "status=%ld retry_in_ms=%u api=\"%s\"", job_what(j), r->status, ms, msg);
}

static void not_found_fatal(struct job *j, const char *what, const char *id, const char *hint)
{
	log_error("msg=\"Equinix Metal does not know %s %s (HTTP 404)%s\" request=\"%s\"", what, id,
		  hint, job_what(j));
	metal_die(j->m, -ENOENT);
}

static void on_job_done(void *arg, const struct http_response *r);

static void job_send(struct job *j, enum http_method method, const char *body, bool api,
		     uint32_t timeout_ms)
{
	struct metal *m = j->m;
	const char *hdrs[4];
	size_t n = 0;
	struct http_request req;
	int err;

	if (api)
		hdrs[n++] = m->token_hdr;
	hdrs[n++] = "Accept: application/json";
	if (body)
		hdrs[n++] = "Content-Type: application/json";
	hdrs[n] = NULL;
	memset(&req, 0, sizeof(req));
	req.method = method;
	req.url = j->url;
	req.headers = hdrs;
	req.body = body;
	req.body_len = body ? strlen(body) : 0;
	req.timeout_ms = timeout_ms ? timeout_ms : m->timeout_ms;
	/* A POST that dies unanswered is for the list to judge, never sent twice. */
	req.fresh_connection = method == HTTP_POST;
	err = http_send(m->http, &req, on_job_done, j, &j->call);
	if (err) {
		j->call = NULL;
		log_error("msg=\"cannot send an Equinix Metal API request; retrying\" request=\"%s\" "
			  "err=\"%s\"", job_what(j), strerror(-err));
		job_retry(j, -1);
	}
}

static bool url_set(struct job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool url_set(struct job *j, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(j->url, sizeof(j->url), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(j->url)) {
		log_error("msg=\"Equinix Metal API URL too long\" request=\"%s\"", job_what(j));
		metal_die(j->m, -ENAMETOOLONG);
		return false;
	}
	return true;
}

/* --- start-up ------------------------------------------------------------------------------ */

static void start_neighbors(struct job *j)
{
	j->step = S_NEIGHBORS;
	j->attempt = 0;
	log_info("msg=\"Equinix Metal: fetching the device's BGP neighbours\" device=%s",
		 j->m->device);
	job_soon(j, 0);
}

static void start_list(struct job *j)
{
	j->step = S_LIST;
	/* A reservation's look at the list is part of its retries: the backoff keeps growing. */
	if (j->kind == JOB_START)
		j->attempt = 0;
	j->pages = 0;
	metal_ip_list_free(&j->ips);
	memset(&j->ips, 0, sizeof(j->ips));
	j->url[0] = '\0';
	if (j->kind == JOB_START)
		log_info("msg=\"Equinix Metal: listing the project's reservations\" project=%s",
			 j->m->project);
	job_soon(j, 0);
}

/* vipd's host routes brought in line with what the multihop neighbours need, from the
 * metadata's gateways. */
static void peer_routes_apply(struct metal *m)
{
	struct metal_peer_route rt[MAX_PEER_ROUTES];
	char why[256];
	size_t n = 0;

	if (metal_peer_routes(&m->bgp, m->meta.addresses, m->meta.n_addresses, rt,
			      MAX_PEER_ROUTES, &n, why, sizeof(why)))
		log_warn("msg=\"cannot tell the host routes to the multihop BGP peers; add them "
			 "yourself\" err=\"%s\"", why);
	else
		routes_sync(m, rt, n);
}

static void on_metadata(struct job *j, const struct http_response *r)
{
	struct metal *m = j->m;
	struct metal_metadata meta;
	char err[256] = "";
	int rc = -EIO;

	if (r->err)
		snprintf(err, sizeof(err), "%s", r->errmsg);
	else if (r->status != 200)
		snprintf(err, sizeof(err), "HTTP %ld", r->status);
	else
		rc = metal_metadata_parse(r->body, r->body_len, &meta, err, sizeof(err));
	if (!rc) {
		/* A refresh may have read it too while the start-up was asking. */
		metal_metadata_free(&m->meta);
		m->meta = meta;
		m->have_meta = true;
		if (!m->device[0])
			snprintf(m->device, sizeof(m->device), "%s", m->meta.id);
	}
	if (j->step == S_ROUTE_METADATA) {
		if (rc)
			log_warn("msg=\"no metadata service: the host routes to the multihop BGP peers "
				 "are not installed; add routes to them yourself\" url=%s err=\"%s\"",
				 m->metadata_url, err);
		else
			peer_routes_apply(m);
		if (j->kind == JOB_START)
			start_list(j);
		else
			job_free(j);
		return;
	}
	if (!rc) {
		log_info("msg=\"Equinix Metal: device from the metadata service\" device=%s "
			 "hostname=%s", m->device, m->meta.hostname);
		start_neighbors(j);
		return;
	}
	log_info("msg=\"Equinix Metal: no answer from the metadata service; looking for this "
		 "host's device by hostname\" url=%s err=\"%s\" hostname=%s", m->metadata_url, err,
		 m->hostname);
	j->step = S_DEVICES;
	j->pages = 0;
	j->url[0] = '\0';
	job_soon(j, 0);
}

/* A page of a listing could not be read (what it lists, and why; the caller freed what the
 * pages gave so far): the listing starts again from its first page after a backoff. */
static void listing_retry(struct job *j, const char *what, const char *err)
{
	log_error("msg=\"cannot read the project's %s; retrying\" err=\"%s\"", what, err);
	j->url[0] = '\0';
	j->pages = 0;
	job_retry(j, -1);
}

/* The next page of a listing into j->url: 1 when there is one, 0 at the end. */
static int next_page(struct job *j, const struct metal_page *page)
{
	int r;

	if (++j->pages >= MAX_PAGES) {
		log_warn("msg=\"Equinix Metal listing has too many pages; reading no further\" "
			 "request=\"%s\" pages=%u", job_what(j), j->pages);
		return 0;
	}
	r = metal_page_next_url(j->m->api_url, page, j->url, sizeof(j->url));
	if (r == -ENOENT)
		return 0;
	if (r) {
		log_warn("msg=\"Equinix Metal listing: cannot follow the next page; reading no "
			 "further\" request=\"%s\" err=\"%s\"", job_what(j), strerror(-r));
		return 0;
	}
	return 1;
}

static void on_devices(struct job *j, const struct http_response *r)
{
	struct metal *m = j->m;
	struct metal_page page;
	char err[256];
	size_t at;
	int rc;

	if (job_trouble(j, r))
		return;
	if (r->status == 404) {
		not_found_fatal(j, "project", m->project, "; check --project");
		return;
	}
	if (r->status != 200) {
		job_unexpected(j, r);
		return;
	}
	rc = metal_device_list_parse(r->body, r->body_len, &j->devs, &page, err, sizeof(err));
	if (rc) {
		metal_device_list_free(&j->devs);
		listing_retry(j, "devices", err);
		return;
	}
	if (next_page(j, &page)) {
		job_soon(j, 0);
		return;
	}
	rc = metal_device_find(&j->devs, m->hostname, &at);
	if (rc) {
		log_error("msg=\"%s in Equinix Metal project %s; give the device with --device ID\" "
			  "hostname=%s devices=%zu",
			  rc == -EEXIST ? "two devices have this host's name" :
					  "no device has this host's name",
			  m->project, m->hostname, j->devs.n);
		metal_die(m, -ENOENT);
		return;
	}
	snprintf(m->device, sizeof(m->device), "%s", j->devs.devices[at].id);
	log_info("msg=\"Equinix Metal: device found by hostname\" device=%s hostname=%s",
		 m->device, m->hostname);
	metal_device_list_free(&j->devs);
	memset(&j->devs, 0, sizeof(j->devs));
	start_neighbors(j);
}

/* Sessions (one per peer address) of b, and whether any neighbour is multihop. */
static size_t bgp_sessions(const struct metal_bgp *b, bool *multihop)
{
	size_t n = 0;

	*multihop = false;
	for (size_t i = 0; i < b->n; i++) {
		*multihop |= b->nb[i].multihop;
		n += b->nb[i].n_peer_ips;
	}
	return n;
}

/* BIRD's peer file replaced by text, which is kept as what BIRD has (freed on failure).
 * 0 or -errno (logged). */
static int peers_write(struct metal *m, char *text, size_t len)
{
	int r = bird_file_replace(m->peers_path, text, len);

	if (r) {
		log_error("msg=\"cannot write BIRD's peer file; BIRD keeps the peers it has\" path=%s "
			  "err=\"%s\"", m->peers_path, strerror(-r));
		free(text);
		return r;
	}
	free(m->peers_text);
	m->peers_text = text;
	m->peers_len = len;
	return 0;
}

/*
 * The host routes for the neighbours now in m->bgp (multihop says whether any needs one):
 * 1 when the metadata, which has the gateways, is asked for first (the job goes on in
 * on_metadata), 0 when done.
 */
static int peers_routes(struct job *j, bool multihop)
{
	struct metal *m = j->m;

	if (!multihop && !m->n_routes)
		return 0;
	if (multihop && !m->have_meta) {
		j->step = S_ROUTE_METADATA;
		snprintf(j->url, sizeof(j->url), "%s", m->metadata_url);
		job_send(j, HTTP_GET, NULL, false, METAL_METADATA_TIMEOUT_MS);
		return 1;
	}
	peer_routes_apply(m);
	return 0;
}

static void peers_apply(struct job *j)
{
	struct metal *m = j->m;
	char err[256] = "", *text;
	bool multihop;
	size_t len, sessions = bgp_sessions(&m->bgp, &multihop);
	int r = metal_bird_peers(&m->bgp, &text, &len, err, sizeof(err));

	if (r) {
		log_error("msg=\"cannot write BIRD's peer file; BIRD keeps the peers it has\" path=%s "
			  "err=\"%s\"", m->peers_path, err[0] ? err : strerror(-r));
	} else if (!peers_write(m, text, len)) {
		log_info("msg=\"Equinix Metal: BIRD peer file written\" path=%s neighbours=%zu "
			 "sessions=%zu multihop=%s", m->peers_path, m->bgp.n, sessions,
			 multihop ? "yes" : "no");
		if (m->peers_changed)
			m->peers_changed(m->cb_arg);
	}
	if (!peers_routes(j, multihop))
		start_list(j);
}

static void on_neighbors(struct job *j, const struct http_response *r)
{
	struct metal *m = j->m;
	char err[256];

	if (job_trouble(j, r))
		return;
	if (r->status == 404) {
		not_found_fatal(j, "device", m->device,
				m->device_given ? "; check --device" : "");
		return;
	}
	if (r->status != 200) {
		job_unexpected(j, r);
		return;
	}
	m->neighbors_read = true;
	metal_bgp_free(&m->bgp);
	if (metal_bgp_parse(r->body, r->body_len, &m->bgp, err, sizeof(err))) {
		log_error("msg=\"cannot read the device's BGP neighbours; BIRD gets no peers from "
			  "vipd\" device=%s err=\"%s\"", m->device, err);
		start_list(j);
		return;
	}
	if (!m->peers_path) {
		start_list(j);
		return;
	}
	if (!m->bgp.n)
		log_warn("msg=\"Equinix Metal lists no BGP neighbours for this device: enable BGP "
			 "for the project and the device; vipd reads them again every %d s and on "
			 "SIGHUP\" device=%s", NEIGHBORS_REFRESH_S, m->device);
	peers_apply(j);
}

/* --- reading the neighbours again ----------------------------------------------------------- */

/* The neighbour whose session to peer the peer file has (the first to name it), or NULL. */
static const struct metal_bgp_neighbor *peer_neighbor(const struct metal_bgp *b,
						      const struct ip_addr *peer)
{
	for (size_t i = 0; i < b->n; i++)
		for (size_t k = 0; k < b->nb[i].n_peer_ips; k++)
			if (ip_addr_equal(&b->nb[i].peer_ips[k], peer))
				return &b->nb[i];
	return NULL;
}

/* Whether a session to a peer of a and one of b would be configured alike. */
static bool same_session(const struct metal_bgp_neighbor *a, const struct metal_bgp_neighbor *b)
{
	return a->customer_as == b->customer_as && a->peer_as == b->peer_as &&
	       ip_addr_equal(&a->customer_ip, &b->customer_ip) && a->multihop == b->multihop &&
	       a->md5_enabled == b->md5_enabled &&
	       strcmp(a->md5_password, b->md5_password) == 0;
}

/* Appends peer to the comma-separated list in buf; a list that no longer fits ends in
 * "...". */
static void list_add(char *buf, size_t cap, const struct ip_addr *peer)
{
	char a[IP_ADDR_STRLEN];
	size_t n = strlen(buf);

	if (n >= 3 && strcmp(buf + n - 3, "...") == 0)
		return;
	ip_addr_str(peer, a);
	/* room for ",a", then for ",..." */
	if (n + 1 + strlen(a) + 5 > cap) {
		snprintf(buf + n, cap - n, "%s...", n ? "," : "");
		return;
	}
	snprintf(buf + n, cap - n, "%s%s", n ? "," : "", a);
}

/* For the log: the peers with a session in now but not in was (added), in was but not in
 * now (removed), and in both but set up otherwise (changed: AS, source address, multihop or
 * password). */
static void peers_diff(const struct metal_bgp *was, const struct metal_bgp *now, char *added,
		       char *removed, char *changed, size_t cap)
{
	added[0] = removed[0] = changed[0] = '\0';
	for (size_t i = 0; i < now->n; i++) {
		for (size_t k = 0; k < now->nb[i].n_peer_ips; k++) {
			const struct ip_addr *peer = &now->nb[i].peer_ips[k];
			const struct metal_bgp_neighbor *old = peer_neighbor(was, peer);

			if (peer_neighbor(now, peer) != &now->nb[i])
				continue; /* a second mention: the file has one session */
			if (!old)
				list_add(added, cap, peer);
			else if (!same_session(old, &now->nb[i]))
				list_add(changed, cap, peer);
		}
	}
	for (size_t i = 0; i < was->n; i++)
		for (size_t k = 0; k < was->nb[i].n_peer_ips; k++)
			if (peer_neighbor(was, &was->nb[i].peer_ips[k]) == &was->nb[i] &&
			    !peer_neighbor(now, &was->nb[i].peer_ips[k]))
				list_add(removed, cap, &was->nb[i].peer_ips[k]);
}

/*
 * The neighbours as read again: the peer file is written, and BIRD told, only when its text
 * changes. Anything that cannot be read leaves BIRD's peers as they are; the next refresh
 * tries again.
 */
static void on_refresh(struct job *j, const struct http_response *r)
{
	struct metal *m = j->m;
	struct metal_bgp bgp;
	char err[256] = "", msg[MSG_MAX], *text = NULL;
	char added[128], removed[128], changed[128];
	size_t len, n_was = m->bgp.n, s_was, sessions;
	bool multihop, mh_was;
	int rc;

	if (job_trouble(j, r))
		return;
	if (r->status != 200) {
		api_message(r, msg, sizeof(msg));
		log_warn("msg=\"cannot read the device's BGP neighbours again; BIRD keeps its "
			 "peers\" device=%s status=%ld api=\"%s\"", m->device, r->status, msg);
		job_free(j);
		return;
	}
	rc = metal_bgp_parse(r->body, r->body_len, &bgp, err, sizeof(err));
	if (!rc)
		rc = metal_bird_peers(&bgp, &text, &len, err, sizeof(err));
	if (rc) {
		log_warn("msg=\"cannot read the device's BGP neighbours again; BIRD keeps its "
			 "peers\" device=%s err=\"%s\"", m->device, err[0] ? err : strerror(-rc));
		metal_bgp_free(&bgp);
		job_free(j);
		return;
	}
	if (m->peers_text && len == m->peers_len && memcmp(text, m->peers_text, len) == 0) {
		log_debug("msg=\"Equinix Metal: the device's BGP neighbours are unchanged\" "
			  "device=%s", m->device);
		free(text);
		metal_bgp_free(&bgp);
		job_free(j);
		return;
	}
	if (peers_write(m, text, len)) {
		metal_bgp_free(&bgp);
		job_free(j);
		return;
	}
	peers_diff(&m->bgp, &bgp, added, removed, changed, sizeof(added));
	s_was = bgp_sessions(&m->bgp, &mh_was);
	metal_bgp_free(&m->bgp);
	m->bgp = bgp;
	sessions = bgp_sessions(&m->bgp, &multihop);
	log_info("msg=\"Equinix Metal: the device's BGP neighbours changed; BIRD peer file "
		 "written\" path=%s neighbours=%zu->%zu sessions=%zu->%zu added=%s removed=%s "
		 "changed=%s multihop=%s", m->peers_path, n_was, m->bgp.n, s_was, sessions,
		 added[0] ? added : "-", removed[0] ? removed : "-", changed[0] ? changed : "-",
		 multihop ? "yes" : "no");
	if (m->peers_changed)
		m->peers_changed(m->cb_arg);
	if (!peers_routes(j, multihop))
		job_free(j);
}

/* Reads the neighbours again, in BGP mode once the start-up has read them. */
static void neighbors_refresh(struct metal *m, const char *why)
{
	struct job *j;

	if (m->dead || !m->peers_path || !m->neighbors_read)
		return;
	for (j = m->jobs; j; j = j->next) {
		if (j->kind == JOB_REFRESH) {
			log_debug("msg=\"Equinix Metal: the BGP neighbours are being read "
				  "already\" why=%s", why);
			return;
		}
	}
	j = job_new(m, JOB_REFRESH, S_NEIGHBORS);
	if (!j) {
		log_warn("msg=\"out of memory: the BGP neighbours are not read again now\"");
		return;
	}
	log_debug("msg=\"Equinix Metal: reading the device's BGP neighbours again\" device=%s "
		  "why=%s", m->device, why);
	job_soon(j, 0);
}

static void on_refresh_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	neighbors_refresh(w->data, "timer");
}

/* Hands a reservation to the job's load balancer, on record first. */
static void reserve_done(struct job *j, const struct metal_ip *ip, const char *how);

static bool lb_exists(const struct metal *m, const char *lb)
{
	return m->model && model_find(m->model, lb);
}

static void release_start(struct metal *m, const char *id, const struct ip_addr *addr);

/*
 * The start-up's listing against the record: reservations that left the project are
 * forgotten, those whose load balancer is gone are released, load balancers waiting for an
 * address get the one the project holds for them.
 */
static void start_listed(struct job *start)
{
	struct metal *m = start->m;
	const struct metal_ip_list *l = &start->ips;
	struct metal_owned owned = { 0 };
	const char **ids = calloc(m->n_recs + 1, sizeof(*ids));
	bool dirty = false;
	size_t adopted = 0, released = 0;

	for (size_t i = 0; ids && i < m->n_recs; i++)
		ids[i] = m->recs[i].id;
	if (!ids || metal_ip_list_own(l, match_metro(m, l), m->facility, ids, m->n_recs,
				      &owned)) {
		free(ids);
		log_error("msg=\"out of memory matching Equinix Metal reservations; retrying\"");
		job_retry(start, -1);
		return;
	}
	free(ids);
	log_info("msg=\"Equinix Metal: reservations listed\" vipd=%zu other=%zu unusable=%zu "
		 "on_record=%zu%s%s", l->n, l->n_other, l->n_bad, m->n_recs,
		 l->bad[0] ? " first_unusable=" : "", l->bad);

	for (size_t i = m->n_recs; i-- > 0;) {
		struct metal_state_entry *e = &m->recs[i];
		const struct metal_ip *ip = NULL;
		char a[IP_ADDR_STRLEN];

		for (size_t k = 0; k < l->n && !ip; k++)
			if (strcmp(l->ips[k].id, e->id) == 0)
				ip = &l->ips[k];
		if (ip && ip->state == METAL_IP_CREATED && ip_addr_equal(&ip->address, &e->addr))
			continue;
		log_warn("msg=\"a reservation on record is no longer in the project; forgetting "
			 "it%s\" lb=%s id=%s vip=%s", e->in_use ? " (its load balancer keeps the "
			 "address, which vipd can no longer release)" : "",
			 e->lb[0] ? e->lb : "-", e->id, ip_addr_str(&e->addr, a));
		rec_del(m, e);
		dirty = true;
	}
	for (size_t i = 0; i < m->n_recs; i++) {
		struct metal_state_entry *e = &m->recs[i];

		if (e->in_use || (e->lb[0] && lb_exists(m, e->lb)))
			continue;
		if (e->lb[0] && m->keep_ips)
			continue;
		e->lb[0] = '\0';
		dirty = true;
	}
	if (dirty)
		recs_save(m);
	for (size_t i = 0; i < m->n_recs; i++) {
		if (!m->recs[i].lb[0]) {
			release_start(m, m->recs[i].id, &m->recs[i].addr);
			released++;
		}
	}
	m->listed = true;
	for (struct job *j = m->jobs, *next; j; j = next) {
		const struct metal_own *own;

		next = j->next;
		if (j->kind != JOB_RESERVE || j->step != S_WAIT)
			continue;
		own = metal_own_find(&owned, j->lb);
		j->step = S_POST;
		if (own && !rec_by_id(m, l->ips[own->ip].id) &&
		    !rec_by_addr(m, &l->ips[own->ip].address)) {
			/* what on_result does may free next: start over from the head */
			reserve_done(j, &l->ips[own->ip], "adopted");
			adopted++;
			next = m->jobs;
			continue;
		}
		job_soon(j, 0);
	}
	if (owned.n_extra)
		log_info("msg=\"Equinix Metal: vipd reservations in this %s not used here; not "
			 "released (vipd releases only what it has on record)\" count=%zu",
			 loc_key(m), owned.n_extra);
	metal_owned_free(&owned);
	log_info("msg=\"Equinix Metal ready\" device=%s adopted=%zu releasing=%zu on_record=%zu",
		 m->device[0] ? m->device : "-", adopted, released, m->n_recs);
	job_free(start);
}

/* --- reserving ---------------------------------------------------------------------------- */

static void reserve_done(struct job *j, const struct metal_ip *ip, const char *how)
{
	struct metal *m = j->m;
	struct metal_state_entry *e;
	char lb[UUID_STR_LEN], a[IP_ADDR_STRLEN];
	struct ip_addr addr = ip->address;
	double took = monotonic_s() - j->started;
	bool cancelled = j->cancelled;

	ip_addr_str(&addr, a);
	e = rec_add(m, cancelled ? "" : j->lb, ip->id, &addr);
	if (!e || recs_save(m)) {
		if (e)
			rec_del(m, e);
		/* Not on record, so not used: the listing finds it again next time. */
		j->unsure = true;
		job_retry(j, -1);
		snprintf(j->reason, sizeof(j->reason), "reserved %s (%s) but cannot record it; "
			 "retrying", a, ip->id);
		return;
	}
	if (cancelled) {
		log_info("msg=\"elastic IP arrived for a deleted load balancer; releasing it\" lb=%s "
			 "id=%s vip=%s", j->lb, ip->id, a);
		job_free(j);
		release_start(m, e->id, &e->addr);
		return;
	}
	e->in_use = true;
	memcpy(lb, j->lb, sizeof(lb));
	log_info("msg=\"elastic IP %s\" lb=%s id=%s vip=%s %s=%s ms=%.0f", how, lb, ip->id, a,
		 loc_key(m), loc(m), took * 1000);
	job_free(j);
	if (m->src.on_result)
		m->src.on_result(m->src.on_result_arg, lb, 0, &addr);
}

static void reserve_post(struct job *j)
{
	struct metal *m = j->m;
	const struct lb *lb = m->model ? model_find(m->model, j->lb) : NULL;
	struct metal_reserve req = {
		.metro = m->metro,
		.facility = m->facility,
		.lb_uuid = j->lb,
		.lb_name = lb && lb->name && lb->name[0] ? lb->name : NULL,
		.hostname = m->hostname,
	};
	char *body;
	int r;

	if (j->cancelled) {
		job_free(j);
		return;
	}
	r = metal_reserve_body(&req, &body);
	if (r == -EINVAL) {
		/* a hostname with characters a tag cannot hold: no host tag */
		req.hostname = NULL;
		r = metal_reserve_body(&req, &body);
	}
	if (r) {
		log_error("msg=\"cannot build the reservation request; retrying\" lb=%s err=\"%s\"",
			  j->lb, strerror(-r));
		job_retry(j, -1);
		return;
	}
	if (!url_set(j, "%s/projects/%s/ips", m->api_url, m->project)) {
		free(body);
		return;
	}
	snprintf(j->reason, sizeof(j->reason), "reserving an elastic IP in %s %s", loc_key(m),
		 loc(m));
	log_info("msg=\"reserving an elastic IP\" lb=%s %s=%s attempt=%u", j->lb, loc_key(m),
		 loc(m), j->attempt + 1);
	job_send(j, HTTP_POST, body, true, 0);
	free(body);
}

static void on_post(struct job *j, const struct http_response *r)
{
	struct metal *m = j->m;
	struct metal_ip ip;
	char msg[MSG_MAX], err[256];
	uint32_t ms;

	if (job_trouble(j, r))
		return;
	if (r->status == 404) {
		not_found_fatal(j, "project", m->project, "; check --project");
		return;
	}
	if (r->status == 422) {
		api_message(r, msg, sizeof(msg));
		ms = job_retry(j, -1);
		snprintf(j->reason, sizeof(j->reason), "Equinix Metal refused the reservation: %s; "
			 "retrying", msg);
		log_error("msg=\"Equinix Metal refused the reservation; the load balancer stays "
			  "pending\" lb=%s status=422 api=\"%s\" retry_in_ms=%u", j->lb, msg, ms);
		return;
	}
	if (r->status != 201 && r->status != 200) {
		job_unexpected(j, r);
		return;
	}
	if (metal_ip_parse(r->body, r->body_len, &ip, err, sizeof(err))) {
		j->unsure = true;
		ms = job_retry(j, -1);
		snprintf(j->reason, sizeof(j->reason), "cannot read the reservation (%s); "
			 "checking the list, then retrying", err);
		log_error("msg=\"cannot read Equinix Metal's reservation; checking the list before "
			  "any new request\" lb=%s err=\"%s\" retry_in_ms=%u", j->lb, err, ms);
		return;
	}
	if (ip.state == METAL_IP_CREATED) {
		reserve_done(j, &ip, "reserved");
		return;
	}
	/* fail_on_approval_required should make this a 422; a waiting block holds no address
	 * and goes back. */
	ms = job_retry(j, -1);
	snprintf(j->reason, sizeof(j->reason), "Equinix Metal's reservation %s is not granted "
		 "(%s); retrying", ip.id, ip.state == METAL_IP_PENDING ? "waiting for approval" :
		 ip.state == METAL_IP_DENIED ? "denied" : "unknown state");
	log_error("msg=\"Equinix Metal did not grant the reservation; giving it back, the load "
		  "balancer stays pending\" lb=%s id=%s state=%s retry_in_ms=%u", j->lb, ip.id,
		  ip.state == METAL_IP_PENDING ? "pending" :
		  ip.state == METAL_IP_DENIED ? "denied" : "other", ms);
	release_start(m, ip.id, NULL);
}

/* A reservation job's own look at the list (after a POST whose outcome is unknown). */
static void check_listed(struct job *j)
{
	struct metal *m = j->m;
	struct metal_owned owned = { 0 };
	const struct metal_own *own;

	if (metal_ip_list_own(&j->ips, match_metro(m, &j->ips), m->facility, NULL, 0, &owned)) {
		job_retry(j, -1);
		return;
	}
	own = metal_own_find(&owned, j->lb);
	j->unsure = false;
	if (own && !rec_by_id(m, j->ips.ips[own->ip].id)) {
		struct metal_ip ip = j->ips.ips[own->ip];

		metal_owned_free(&owned);
		reserve_done(j, &ip, "found after an unanswered request");
		return;
	}
	metal_owned_free(&owned);
	metal_ip_list_free(&j->ips);
	memset(&j->ips, 0, sizeof(j->ips));
	if (j->cancelled) {
		job_free(j);
		return;
	}
	log_info("msg=\"no reservation for the load balancer in the list; asking again\" lb=%s",
		 j->lb);
	j->step = S_POST;
	reserve_post(j);
}

static void on_list(struct job *j, const struct http_response *r)
{
	struct metal *m = j->m;
	struct metal_page page;
	char err[256];

	if (job_trouble(j, r))
		return;
	if (r->status == 404) {
		not_found_fatal(j, "project", m->project, "; check --project");
		return;
	}
	if (r->status != 200) {
		job_unexpected(j, r);
		return;
	}
	if (metal_ip_list_parse(r->body, r->body_len, &j->ips, &page, err, sizeof(err))) {
		metal_ip_list_free(&j->ips);
		listing_retry(j, "reservations", err);
		return;
	}
	if (next_page(j, &page)) {
		job_soon(j, 0);
		return;
	}
	if (j->kind == JOB_START)
		start_listed(j);
	else
		check_listed(j);
}

/* --- releasing ---------------------------------------------------------------------------- */

static void release_start(struct metal *m, const char *id, const struct ip_addr *addr)
{
	struct job *j;

	for (j = m->jobs; j; j = j->next)
		if (j->kind == JOB_RELEASE && strcmp(j->id, id) == 0)
			return;
	j = job_new(m, JOB_RELEASE, S_DELETE);
	if (!j) {
		log_error("msg=\"out of memory: reservation not released now; the next start "
			  "releases it\" id=%s", id);
		return;
	}
	snprintf(j->id, sizeof(j->id), "%s", id);
	if (addr)
		j->addr = *addr;
	job_soon(j, 0);
}

static void on_delete(struct job *j, const struct http_response *r)
{
	struct metal *m = j->m;
	struct metal_state_entry *e;
	char a[IP_ADDR_STRLEN] = "-";

	if (job_trouble(j, r))
		return;
	if (r->status != 204 && r->status != 200 && r->status != 404) {
		job_unexpected(j, r);
		return;
	}
	if (ip_addr_is_set(&j->addr))
		ip_addr_str(&j->addr, a);
	log_info("msg=\"elastic IP released\" id=%s vip=%s%s", j->id, a,
		 r->status == 404 ? " note=\"the API no longer had it\"" : "");
	e = rec_by_id(m, j->id);
	if (e && !e->lb[0]) {
		rec_del(m, e);
		recs_save(m);
	}
	job_free(j);
}

/* --- dispatch ------------------------------------------------------------------------------ */

const char *metal_req_class_name(enum metal_req_class c)
{
	static const char *const names[METAL_REQ_CLASSES] = { "2xx", "3xx", "4xx", "5xx",
							       "error" };

	return c < METAL_REQ_CLASSES ? names[c] : "error";
}

void metal_stats(const struct vip_source *src, struct metal_stats *out)
{
	*out = metal_of_const(src)->stats;
}

static void on_job_done(void *arg, const struct http_response *r)
{
	struct job *j = arg;

	j->call = NULL;
	j->m->stats.requests[r->err || r->status < 200 || r->status > 599
				     ? METAL_REQ_ERROR
				     : (enum metal_req_class)(r->status / 100 - 2)]++;
	if (j->m->dead)
		return;
	switch (j->step) {
	case S_METADATA:
	case S_ROUTE_METADATA:
		on_metadata(j, r);
		break;
	case S_DEVICES:
		on_devices(j, r);
		break;
	case S_NEIGHBORS:
		if (j->kind == JOB_REFRESH)
			on_refresh(j, r);
		else
			on_neighbors(j, r);
		break;
	case S_LIST:
		on_list(j, r);
		break;
	case S_POST:
		on_post(j, r);
		break;
	case S_DELETE:
		on_delete(j, r);
		break;
	default:
		break;
	}
}

static void job_run(struct job *j)
{
	struct metal *m = j->m;

	if (m->dead)
		return;
	switch (j->step) {
	case S_METADATA:
		log_info("msg=\"Equinix Metal: asking the metadata service for the device\" url=%s",
			 m->metadata_url);
		snprintf(j->url, sizeof(j->url), "%s", m->metadata_url);
		job_send(j, HTTP_GET, NULL, false, METAL_METADATA_TIMEOUT_MS);
		break;
	case S_DEVICES:
		/* The API's filter narrows the pages; a name it could not take in a URL as it
		 * stands is matched among all of them. */
		if (!j->url[0]) {
			bool filter = ident_ok(m->hostname, METAL_HOSTNAME_MAX, "-._");

			if (!url_set(j, "%s/projects/%s/devices?per_page=" PER_PAGE "%s%s",
				     m->api_url, m->project, filter ? "&hostname=" : "",
				     filter ? m->hostname : ""))
				return;
		}
		job_send(j, HTTP_GET, NULL, true, 0);
		break;
	case S_NEIGHBORS:
		if (url_set(j, "%s/devices/%s/bgp/neighbors", m->api_url, m->device))
			job_send(j, HTTP_GET, NULL, true, 0);
		break;
	case S_LIST:
		if (!j->url[0] &&
		    !url_set(j, "%s/projects/%s/ips?types=public_ipv4&per_page=" PER_PAGE,
			     m->api_url, m->project))
			return;
		job_send(j, HTTP_GET, NULL, true, 0);
		break;
	case S_POST:
		reserve_post(j);
		break;
	case S_DELETE:
		if (url_set(j, "%s/ips/%s", m->api_url, j->id)) {
			char a[IP_ADDR_STRLEN] = "-";

			if (ip_addr_is_set(&j->addr))
				ip_addr_str(&j->addr, a);
			log_info("msg=\"releasing an elastic IP\" id=%s vip=%s attempt=%u", j->id, a,
				 j->attempt + 1);
			job_send(j, HTTP_DELETE, NULL, true, 0);
		}
		break;
	default:
		break;
	}
}

static void on_job_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct job *j = w->data;

	(void)loop;
	(void)revents;
	/* After a POST whose outcome is unknown, the list says whether it happened. */
	if (j->kind == JOB_RESERVE && j->unsure && j->step != S_LIST) {
		start_list(j);
		return;
	}
	if (j->kind == JOB_RESERVE && j->step == S_LIST && !j->url[0])
		snprintf(j->reason, sizeof(j->reason), "checking the project's reservations");
	job_run(j);
}

/* --- the VIP source ----------------------------------------------------------------------- */

static int metal_allocate(struct vip_source *src, const char *owner, int family,
			  struct ip_addr *out)
{
	struct metal *m = metal_of(src);
	struct metal_state_entry *e;
	struct job *j;

	if (family != 0 && family != AF_INET)
		return -EAFNOSUPPORT;
	if (m->dead)
		return -EIO;
	e = rec_by_lb(m, owner);
	if (e) {
		e->in_use = true;
		*out = e->addr;
		return 0;
	}
	j = job_for_lb(m, owner);
	if (j) {
		j->cancelled = false;
		return -EINPROGRESS;
	}
	j = job_new(m, JOB_RESERVE, m->listed ? S_POST : S_WAIT);
	if (!j)
		return -ENOMEM;
	snprintf(j->lb, sizeof(j->lb), "%s", owner);
	for (char *p = j->lb; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	if (m->listed)
		job_soon(j, 0);
	else
		snprintf(j->reason, sizeof(j->reason), "waiting for the start-up to list the "
			 "project's reservations");
	return -EINPROGRESS;
}

static int metal_reserve(struct vip_source *src, const char *owner, const struct ip_addr *addr)
{
	struct metal_state_entry *e = rec_by_addr(metal_of(src), addr);

	(void)owner;
	if (!e || !e->lb[0])
		return -ERANGE;
	if (e->in_use)
		return -EEXIST;
	e->in_use = true;
	return 0;
}

static int metal_release(struct vip_source *src, const struct ip_addr *addr)
{
	struct metal *m = metal_of(src);
	struct metal_state_entry *e = rec_by_addr(m, addr);
	char a[IP_ADDR_STRLEN];

	if (!e || !e->lb[0])
		return -ENOENT;
	e->in_use = false;
	ip_addr_str(addr, a);
	if (m->keep_ips) {
		log_info("msg=\"elastic IP kept reserved (keep_ips)\" lb=%s id=%s vip=%s", e->lb,
			 e->id, a);
		return 0;
	}
	/* On record as going before it goes: a restart finishes what this one could not. */
	e->lb[0] = '\0';
	recs_save(m);
	if (!m->dead)
		release_start(m, e->id, &e->addr);
	return 0;
}

static int metal_contains(const struct vip_source *src, const struct ip_addr *addr)
{
	const struct metal_state_entry *e = rec_by_addr(metal_of_const(src), addr);

	return e && e->lb[0];
}

static void metal_cancel(struct vip_source *src, const char *owner)
{
	struct job *j = job_for_lb(metal_of(src), owner);

	if (!j)
		return;
	j->cancelled = true;
	/* A request in flight, or one that may have reserved, is seen through: what it got
	 * goes back. */
	if (j->call || j->unsure)
		return;
	job_free(j);
}

static void metal_usage(const struct vip_source *src, uint64_t *used, uint64_t *total)
{
	const struct metal *m = metal_of_const(src);
	uint64_t n = 0;

	for (size_t i = 0; i < m->n_recs; i++)
		n += m->recs[i].in_use;
	*used = n;
	*total = UINT64_MAX;
}

static const char *metal_pending_reason(const struct vip_source *src, const char *owner)
{
	struct job *j = job_for_lb((struct metal *)metal_of_const(src), owner);

	return j && j->reason[0] ? j->reason : NULL;
}

static void metal_refresh(struct vip_source *src)
{
	neighbors_refresh(metal_of(src), "request");
}

static void metal_free(struct vip_source *src)
{
	struct metal *m = metal_of(src);

	if (!m)
		return;
	ev_timer_stop(m->loop, &m->refresh_timer);
	while (m->jobs)
		job_free(m->jobs);
	routes_remove(m);
	if (m->http)
		http_client_free(m->http);
	metal_metadata_free(&m->meta);
	metal_bgp_free(&m->bgp);
	free(m->peers_text);
	free(m->recs);
	free(m->api_url);
	free(m->metadata_url);
	if (m->token_hdr)
		explicit_bzero(m->token_hdr, strlen(m->token_hdr));
	free(m->token_hdr);
	free(m->project);
	free(m->metro);
	free(m->facility);
	free(m->hostname);
	free(m->state_path);
	free(m->peers_path);
	free(m);
}

static const struct vip_source_ops metal_ops = {
	.name = "metal",
	.allocate = metal_allocate,
	.reserve = metal_reserve,
	.release = metal_release,
	.contains = metal_contains,
	.cancel = metal_cancel,
	.usage = metal_usage,
	.pending_reason = metal_pending_reason,
	.refresh = metal_refresh,
	.free = metal_free,
};

/* --- construction ------------------------------------------------------------------------- */

bool metal_token_ok(const char *token)
{
	size_t n = token ? strlen(token) : 0;

	if (n == 0 || n > TOKEN_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (token[i] < 0x21 || token[i] > 0x7e)
			return false;
	return true;
}

static bool url_ok(const char *u)
{
	return u && (strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0) &&
	       strlen(u) < URL_MAX / 2 && !strpbrk(u, " \t\r\n");
}

static bool ident_ok(const char *s, size_t max, const char *extra)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n >= max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr(extra, s[i]))
			return false;
	return true;
}

static char *dup_lower(const char *s)
{
	char *d = s ? strdup(s) : NULL;

	for (char *p = d; p && *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return d;
}

static int check_options(const struct metal_options *o)
{
	if (!url_ok(o->api_url) || !url_ok(o->metadata_url)) {
		log_error("msg=\"Equinix Metal API and metadata URLs must be http:// or https:// "
			  "URLs\"");
		return -EINVAL;
	}
	if (!metal_token_ok(o->token)) {
		log_error("msg=\"the Equinix Metal token (" METAL_TOKEN_ENV " or --token-file) must "
			  "be 1..%d printable characters without spaces\"", TOKEN_MAX);
		return -EINVAL;
	}
	if (!ident_ok(o->project, METAL_ID_MAX, "-")) {
		log_error("msg=\"--project must be a Metal project id (letters, digits, '-')\"");
		return -EINVAL;
	}
	if (o->device && !ident_ok(o->device, METAL_ID_MAX, "-")) {
		log_error("msg=\"--device must be a Metal device id (letters, digits, '-')\"");
		return -EINVAL;
	}
	if (!!o->metro == !!o->facility ||
	    !ident_ok(o->metro ? o->metro : o->facility, METAL_CODE_MAX, "-_")) {
		log_error("msg=\"give exactly one of --metro and --facility, a Metal code such as "
			  "ny or ny5\"");
		return -EINVAL;
	}
	if (!o->state_dir || !o->loop) {
		log_error("msg=\"Equinix Metal source needs a loop and a state directory\"");
		return -EINVAL;
	}
	return 0;
}

static void on_start(struct ev_loop *loop, ev_timer *w, int revents);

int metal_new(const struct metal_options *o, struct vip_source **out)
{
	char host[METAL_HOSTNAME_MAX] = "";
	struct metal *m;
	struct job *start;
	int err;

	*out = NULL;
	err = check_options(o);
	if (err)
		return err;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->src.ops = &metal_ops;
	m->loop = o->loop;
	m->keep_ips = o->keep_ips;
	m->timeout_ms = o->timeout_ms ? o->timeout_ms : METAL_REQUEST_TIMEOUT_MS;
	m->model = o->model;
	m->peers_changed = o->peers_changed;
	m->fatal = o->fatal;
	m->cb_arg = o->cb_arg;
	if (o->hostname)
		snprintf(host, sizeof(host), "%s", o->hostname);
	else if (gethostname(host, sizeof(host) - 1))
		host[0] = '\0';
	host[sizeof(host) - 1] = '\0';
	m->api_url = strdup(o->api_url);
	/* "…/v1/" and "…/v1" are the same base */
	if (m->api_url && m->api_url[0] && m->api_url[strlen(m->api_url) - 1] == '/')
		m->api_url[strlen(m->api_url) - 1] = '\0';
	m->metadata_url = strdup(o->metadata_url);
	m->project = strdup(o->project);
	m->metro = o->metro ? dup_lower(o->metro) : NULL;
	m->facility = o->facility ? dup_lower(o->facility) : NULL;
	m->hostname = strdup(host);
	m->peers_path = o->peers_path ? strdup(o->peers_path) : NULL;
	if (asprintf(&m->token_hdr, "X-Auth-Token: %s", o->token) < 0)
		m->token_hdr = NULL;
	if (asprintf(&m->state_path, "%s/" METAL_STATE_FILE, o->state_dir) < 0)
		m->state_path = NULL;
	m->http = http_client_new(o->loop);
	if (!m->api_url || !m->metadata_url || !m->project || (o->metro && !m->metro) ||
	    (o->facility && !m->facility) || !m->hostname || (o->peers_path && !m->peers_path) ||
	    !m->token_hdr || !m->state_path || !m->http) {
		metal_free(&m->src);
		return -ENOMEM;
	}
	if (o->device) {
		snprintf(m->device, sizeof(m->device), "%s", o->device);
		m->device_given = true;
	}
	err = recs_load(m);
	if (err) {
		metal_free(&m->src);
		return err;
	}
	start = job_new(m, JOB_START, m->device_given ? S_NEIGHBORS : S_METADATA);
	if (!start) {
		metal_free(&m->src);
		return -ENOMEM;
	}
	/* The first request goes out once the loop runs (the model is complete by then). */
	ev_set_cb(&start->timer, on_start);
	job_soon(start, 0);
	if (m->peers_path) {
		ev_timer_init(&m->refresh_timer, on_refresh_timer, (double)NEIGHBORS_REFRESH_S,
			      (double)NEIGHBORS_REFRESH_S);
		m->refresh_timer.data = m;
		ev_timer_start(m->loop, &m->refresh_timer);
	}
	log_info("msg=\"Equinix Metal elastic IPs\" project=%s %s=%s api=%s device=%s "
		 "keep_ips=%s", m->project, loc_key(m), loc(m), m->api_url,
		 m->device_given ? m->device : "(metadata, then hostname)",
		 m->keep_ips ? "yes" : "no");
	*out = &m->src;
	return 0;
}

static void on_start(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct job *j = w->data;

	ev_set_cb(w, on_job_timer);
	if (j->step == S_NEIGHBORS)
		log_info("msg=\"Equinix Metal: device from --device\" device=%s", j->m->device);
	on_job_timer(loop, w, revents);
}
