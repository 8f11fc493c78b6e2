/*
 * The REST API. api_handle is the whole application logic and is pure with
 * respect to I/O: a request in, a status and JSON body out, the store changed.
 * http.c carries requests to it from libmicrohttpd on the libev loop.
 */
#ifndef VIPD_API_H
#define VIPD_API_H

#include <stddef.h>

#include "../store.h"

#define API_MAX_BODY (1024 * 1024)

struct dataplane;
struct health_checker;
struct reconciler;
struct announcer;

struct api_ctx {
	struct store *store;
	struct dataplane *dataplane;  /* for counters; may be NULL */
	struct health_checker *health; /* for probe results; may be NULL */
	double drain_timeout_s;       /* a drained backend with connections left is
				       * "draining" at most this long */
	double started;               /* monotonic_s() at start: drains older than the process
				       * count from here */
	const char *version;
	/* for GET /metrics; each may be NULL */
	struct reconciler *reconciler;
	struct announcer *announcer;
	double start_time; /* wall clock, seconds since the epoch */
};

struct api_request {
	const char *method;
	const char *path; /* without the query string */
	const char *body; /* may be NULL when body_len is 0 */
	size_t body_len;
};

struct api_response {
	unsigned status;
	char *body; /* malloc'd JSON text; the caller frees */
	const char *content_type; /* static; NULL: application/json */
};

void api_handle(struct api_ctx *ctx, const struct api_request *req, struct api_response *resp);

struct ev_loop;
struct api_server;

/*
 * Listens on "host:port" ("[v6]:port"). token: bearer token every request must
 * carry (NULL: none). 0 or -errno (logged).
 */
int api_server_start(struct ev_loop *loop, const char *listen, const char *token,
		     struct api_ctx *ctx, struct api_server **out);
void api_server_stop(struct api_server *srv);

#endif
