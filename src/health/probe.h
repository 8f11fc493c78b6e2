/* Inside the health checker: one probed (load balancer, backend) and the probe types. */
#ifndef VIPD_HEALTH_PROBE_H
#define VIPD_HEALTH_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <ev.h>
#include <openssl/ssl.h>

#include "health/health.h"
#include "health/http_parse.h"
#include "model.h"

#define probe_container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/*
 * TCP probes keep their sockets across probes: a finished probe disconnects its socket
 * (connect to AF_UNSPEC: the same reset as a close with zero linger) and leaves it idle
 * for the next one. Idle sockets stay registered in one private edge-triggered epoll
 * set, itself watched by one ev_io, so a probe costs a connect and a disconnect instead
 * of socket, setsockopt, connect, epoll_ctl, getsockopt and close.
 */
struct tcp_sock {
	int fd;
	struct hc_target *user;         /* the probe on it, NULL while idle */
	struct tcp_sock *next;          /* idle list */
};

struct tcp_pool {
	int epfd;                       /* -1 until the first TCP probe */
	ev_io io;                       /* epfd readable on the checker's loop */
	ev_timer trim;                  /* closes the sockets no probe needed for a while */
	struct tcp_sock *idle[2];       /* AF_INET, AF_INET6 */
	unsigned int n_idle[2];
	unsigned int low[2];            /* fewest idle since the last trim */
};

/* Circular and doubly linked, around a head of the same type. */
struct hc_link {
	struct hc_link *prev, *next;
};

/* The targets of one period, or the running probes of one timeout: see health.c. */
struct hc_queue;

union hc_sockaddr {
	struct sockaddr sa;
	struct sockaddr_in v4;
	struct sockaddr_in6 v6;
};

/*
 * Ordered for the cache: with 10,000 targets they are out of it by their next probe, and
 * a probe then touches only the first lines (the health_status and the head of cfg
 * included); TCP probes leave io, ssl and resp alone.
 */
struct hc_target {
	struct hc_link tk_link;         /* in the tick queue once the first probe has started */
	double tk_at;                   /* when the next probe is due, CLOCK_MONOTONIC s */
	struct hc_link dl_link;         /* in the deadline queue while busy */
	double dl_at;                   /* the running probe's deadline, CLOCK_MONOTONIC s */
	struct hc_queue *dl;            /* the deadline queue of t->cfg.timeout_ms */
	struct health_checker *owner;
	/* the running probe */
	bool busy;
	int phase;
	int fd;
	socklen_t salen;
	struct tcp_sock *tsock;         /* TCP probes: the pooled socket behind fd */
	struct timespec t0;
	size_t sent;
	struct health_machine m;
	union hc_sockaddr sa;
	struct health_status st;
	struct health_check cfg;        /* own copy */

	struct hc_queue *tk;            /* the tick queue of the period */
	ev_timer first;                 /* the first probe; the tick queue has the others */
	ev_io io;                       /* HTTP and UDP probes */
	SSL *ssl;
	struct http_resp *resp;
	struct hc_target *next;         /* hash chain */
	char lb_uuid[UUID_STR_LEN];
	char be_uuid[UUID_STR_LEN];
	struct ip_addr ip;
	uint16_t port;                  /* probed port: the override or the backend's */
	char *tls_name;                 /* name or address the certificate must match */
	char *http_req;                 /* the request, built once */
	size_t http_req_len;
	bool seen;                      /* marked by the current sync */
};

struct ev_loop *probe_loop(const struct hc_target *t);
/* The shared client context, made on first use; NULL if OpenSSL fails. */
SSL_CTX *probe_ssl_ctx(struct hc_target *t);
/* Ends the running probe (stops watchers, closes the socket) and records the result. */
void probe_finish(struct hc_target *t, bool ok, const char *reason);
/* Short reason for a socket error: "refused", "timeout", "unreachable" or strerror. */
const char *probe_errno_reason(int err);
/* Opens a non-blocking socket of type towards t->sa and connects it; the io watcher is
 * set up on it waiting for `events` and started. 0, or -errno (nothing left open). */
int probe_connect(struct hc_target *t, int type, void (*cb)(struct ev_loop *, ev_io *, int),
		  int events);
/* 0 once the socket's connect has completed, or its -errno. */
int probe_connected(struct hc_target *t);
/* Switches the io watcher to `events`. */
void probe_want(struct hc_target *t, int events);

/* The checker's pool of TCP sockets. */
struct tcp_pool *probe_tcp_pool(struct hc_target *t);
void probe_tcp_pool_init(struct tcp_pool *p);
void probe_tcp_pool_free(struct ev_loop *loop, struct tcp_pool *p);
/* Disconnects t's pooled socket and puts it back (closes it if that fails). */
void probe_tcp_release(struct hc_target *t);

int probe_tcp_start(struct hc_target *t);
int probe_http_start(struct hc_target *t);
int probe_udp_start(struct hc_target *t);
/* Builds t->http_req from t->cfg; 0 or -ENOMEM. */
int probe_http_prepare(struct hc_target *t);

#endif
