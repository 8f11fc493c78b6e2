/*
 * Equinix Metal elastic IPs as a VIP source, and the host's BGP neighbours for BIRD.
 *
 * Everything runs on the daemon's libev loop through cloud/http.h; no call here waits for
 * the network. metal_new reads the record of vipd's reservations (STATE_DIR/metal-ips, see
 * metal_state.h) and returns; the start-up then runs on the loop, one logged step after the
 * other:
 *
 *   1. the device: --device, else the metadata service's "id", else the project's device
 *      whose hostname is exactly this host's;
 *   2. GET /devices/{id}/bgp/neighbors: BIRD's peer file (every neighbour, both families,
 *      MD5, multihop) written atomically, the kernel routes multihop peers need installed
 *      (rtm_protocol METAL_ROUTE_PROTO), and BIRD asked to read its configuration again;
 *   3. every page of GET /projects/{id}/ips: the reservations on record are checked against
 *      the API's tagged list, load balancers waiting for an address get the one the project
 *      already holds for them, and reservations on record whose load balancer is gone are
 *      released.
 *
 * In BGP mode (peers_path set) the neighbours are read again every 5 minutes and whenever
 * the source's refresh op is called (vipd: SIGHUP), once the start-up has read them: BGP
 * enabled for the device after vipd started, or a session Equinix changed (peers, password),
 * reaches BIRD without a restart. The peer file is rewritten, BIRD asked to configure and
 * the multihop host routes brought in line only when the file's text changes; an answer that
 * cannot be used is logged and BIRD keeps its peers.
 *
 * Allocations made before step 3 wait for it, so a restart never reserves twice for one load
 * balancer. A reservation goes on record before its address is handed out, and a release
 * goes on record before the DELETE is sent. A POST whose outcome is unknown (a timeout, a
 * 5xx, a cut connection) is followed by a look at the list before any new POST.
 *
 * 429, 5xx, timeouts and connection errors are retried with metal_backoff_ms (honouring
 * Retry-After); a 422 (or an approval the project needs) is logged with the API's words and
 * retried with the same backoff while the load balancer stays pending. 401 or 403 anywhere,
 * or a project or device the API does not know, is fatal: the `fatal` callback runs once and
 * the source stops.
 */
#ifndef VIPD_METAL_H
#define VIPD_METAL_H

#include <stdbool.h>
#include <stdint.h>

#include "../src/model.h"
#include "../src/vipsrc.h"

struct ev_loop;

#define METAL_DEFAULT_API_URL "https://api.equinix.com/metal/v1"
#define METAL_DEFAULT_METADATA_URL "https://metadata.platformequinix.com/metadata"
#define METAL_TOKEN_ENV "METAL_AUTH_TOKEN"
#define METAL_PEERS_FILE "bird-peers.conf"
/* Marks the host routes to multihop peers, like the VIP addresses (ADDRS_PROTO): vipd's. */
#define METAL_ROUTE_PROTO 118
#define METAL_REQUEST_TIMEOUT_MS 30000
#define METAL_METADATA_TIMEOUT_MS 10000

struct metal_options {
	struct ev_loop *loop;
	const char *api_url;	  /* base: METAL_DEFAULT_API_URL */
	const char *metadata_url; /* the document: METAL_DEFAULT_METADATA_URL */
	const char *token;	  /* X-Auth-Token: printable ASCII; copied, never logged */
	const char *project;
	const char *metro;	  /* exactly one of metro and facility */
	const char *facility;
	const char *device;	  /* NULL: the metadata service, then the hostname */
	const char *hostname;	  /* NULL: gethostname() */
	const char *state_dir;	  /* where METAL_STATE_FILE is kept */
	const char *peers_path;	  /* BIRD's peer include file; NULL: no BGP neighbours */
	bool keep_ips;		  /* a released address stays reserved (and on record) */
	uint32_t timeout_ms;	  /* per API request; 0: METAL_REQUEST_TIMEOUT_MS */
	/* Which load balancers exist: reservations on record for others are released. */
	const struct model *model;
	/* The peer file changed: BIRD should read its configuration again. May be NULL. */
	void (*peers_changed)(void *arg);
	/* Nothing will work (token refused, no such project or device; logged): stop. */
	void (*fatal)(void *arg, int err);
	void *cb_arg;
};

/*
 * 0 and *out set, or -errno (logged): -EINVAL for a bad option, an unreadable or corrupt
 * METAL_STATE_FILE (the message names it; vipd will not guess which addresses it holds),
 * -ENOMEM. The start-up begins when the loop runs. The caller sets out's on_result.
 */
int metal_new(const struct metal_options *o, struct vip_source **out);

/* Requests by outcome, for metrics: HTTP status class, or no response at all. */
enum metal_req_class {
	METAL_REQ_2XX,
	METAL_REQ_3XX,
	METAL_REQ_4XX,
	METAL_REQ_5XX,
	METAL_REQ_ERROR, /* timeout, refused, TLS, ...: no HTTP status */
	METAL_REQ_CLASSES
};

struct metal_stats {
	uint64_t requests[METAL_REQ_CLASSES]; /* answered or failed, metadata service included */
	uint64_t retries;                     /* steps scheduled again after a failure */
};

const char *metal_req_class_name(enum metal_req_class c);
/* src must come from metal_new. */
void metal_stats(const struct vip_source *src, struct metal_stats *out);

/* Whether the token is fit for an HTTP header: 1..4096 printable ASCII characters. */
bool metal_token_ok(const char *token);

#endif
