/* Inside the health checker: one probed (load balancer, backend) and the probe types. */
#ifndef VIPD_HEALTH_PROBE_H
#define VIPD_HEALTH_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <time.h>
#include <ev.h>
#include <openssl/ssl.h>

#include "health/health.h"
#include "health/http_parse.h"
#include "model.h"

#define probe_container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

struct hc_target {
	struct health_checker *owner;
	struct hc_target *next;         /* hash chain */
	char lb_uuid[UUID_STR_LEN];
	char be_uuid[UUID_STR_LEN];
	struct health_check cfg;        /* own copy */
	struct ip_addr ip;
	uint16_t port;                  /* probed port: the override or the backend's */
	struct sockaddr_storage sa;
	socklen_t salen;
	char *tls_name;                 /* name or address the certificate must match */
	char *http_req;                 /* the request, built once */
	size_t http_req_len;
	bool seen;                      /* marked by the current sync */
	struct health_machine m;
	struct health_status st;
	ev_timer tick;                  /* the period */
	ev_timer deadline;              /* the running probe's timeout */
	ev_io io;
	/* the running probe */
	bool busy;
	int fd;
	struct timespec t0;
	int phase;
	size_t sent;
	SSL *ssl;
	struct http_resp *resp;
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

int probe_tcp_start(struct hc_target *t);
int probe_http_start(struct hc_target *t);
int probe_udp_start(struct hc_target *t);
/* Builds t->http_req from t->cfg; 0 or -ENOMEM. */
int probe_http_prepare(struct hc_target *t);

#endif
