/*
 * The desired state: load balancers and their backends.
 *
 * The model is plain data owned by the daemon's one thread. The API, the config
 * loader and the health checker change it; only the reconciler turns it into
 * kernel or BIRD state. Several load balancers may share one VIP on different
 * ports (or protocols).
 */
#ifndef VIPD_MODEL_H
#define VIPD_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"

#define UUID_STR_LEN 37 /* 36 characters and the NUL */
#define LB_NAME_MAX 253
#define HC_MAX_STATUS 16

enum lb_protocol { LB_PROTO_TCP, LB_PROTO_UDP };

/* How packets reach a backend. IPVS maps nat to masq and dsr to droute. */
enum lb_forwarding { LB_FWD_FULLNAT, LB_FWD_NAT, LB_FWD_DSR, LB_FWD_TUNNEL };

/* Backend choice. The XDP plane always hashes with Maglev; IPVS takes any. */
enum lb_scheduler {
	LB_SCHED_MH, LB_SCHED_RR, LB_SCHED_WRR, LB_SCHED_LC,
	LB_SCHED_WLC, LB_SCHED_SH, LB_SCHED_DH,
};

/* Where a load balancer was declared: its owner decides its lifetime. */
enum lb_origin { LB_ORIGIN_API, LB_ORIGIN_CONFIG };

/* A load balancer is pending while its VIP source has not handed out an address. */
enum lb_status { LB_STATUS_ACTIVE, LB_STATUS_PENDING };

enum hc_type { HC_NONE, HC_TCP, HC_HTTP, HC_HTTPS, HC_UDP };

/* slb's backend "type": MASQ (forwarded) or LOCAL (served on this node). */
enum backend_type { BACKEND_MASQ, BACKEND_LOCAL };

enum backend_health { BACKEND_HEALTH_UNKNOWN, BACKEND_HEALTH_UP, BACKEND_HEALTH_DOWN };

struct health_check {
	enum hc_type type;
	uint32_t interval_ms;
	uint32_t timeout_ms;
	uint32_t fail_count;
	uint32_t rise_count;
	uint16_t port;          /* 0: the backend's own port */
	char *http_path;        /* NULL: "/" */
	char *host;             /* Host header; NULL: the backend address */
	char *expect_body;      /* substring the body must hold; NULL: any */
	uint16_t expected_status[HC_MAX_STATUS];
	size_t n_expected_status; /* 0: 200 only */
	bool tls_verify;
	char *udp_payload;      /* NULL: empty datagram */
	char *udp_expect;       /* NULL: any reply */
	uint32_t min_healthy;   /* announce the VIP only with this many usable backends */
};

struct backend {
	char uuid[UUID_STR_LEN];
	struct ip_addr ip;
	uint16_t port;
	uint32_t weight;        /* 1..65535; drain sets the effective weight to 0 */
	enum backend_type type;
	bool drained;
	/* runtime, not persisted */
	enum backend_health health;
	double drain_since;     /* monotonic_s() when drained; 0: since before this process */
};

struct lb {
	char uuid[UUID_STR_LEN];
	char *name;
	struct ip_addr vip;     /* unset while pending */
	bool vip_from_source;   /* handed out by the VIP source: released on delete */
	uint16_t port;
	enum lb_protocol protocol;
	enum lb_scheduler scheduler;
	enum lb_forwarding forwarding;
	uint32_t persistence_ms; /* IPVS: a client sticks to its backend this long; 0: off */
	struct health_check hc;
	enum lb_origin origin;
	enum lb_status status;
	struct backend *backends;
	size_t n_backends;
	size_t cap_backends;
};

struct model;

/* Defaults that a new object starts from (filled by lb_init / backend_init). */
void health_check_init(struct health_check *hc);
void health_check_clear(struct health_check *hc);
/* Whether two checks probe the same way (min_healthy, which only the announcer reads,
 * is not compared). */
bool health_check_probes_equal(const struct health_check *a, const struct health_check *b);
int health_check_copy(struct health_check *dst, const struct health_check *src);

/* A new empty load balancer with defaults and a fresh random uuid; NULL on ENOMEM. */
struct lb *lb_new(void);
/* Deep copy; NULL on ENOMEM. */
struct lb *lb_dup(const struct lb *lb);
void lb_free(struct lb *lb);
int lb_set_name(struct lb *lb, const char *name);

void backend_init(struct backend *b);
/* Appends a copy of b; 0 or -ENOMEM. */
int lb_add_backend(struct lb *lb, const struct backend *b);
struct backend *lb_find_backend(struct lb *lb, const char *uuid);
struct backend *lb_find_backend_addr(struct lb *lb, const struct ip_addr *ip, uint16_t port);
/* Removes the backend with that uuid; 0 or -ENOENT. */
int lb_remove_backend(struct lb *lb, const char *uuid);
/* Weight the data plane should use: 0 while drained or unhealthy. */
uint32_t backend_effective_weight(const struct lb *lb, const struct backend *b);
/* Backends that may take new flows: weight above 0, not drained, not DOWN. A backend
 * not yet probed (UNKNOWN) counts, so a restart does not withdraw a working VIP. */
size_t lb_usable_backends(const struct lb *lb);
/* Whether this load balancer wants its VIP announced: active, with at least
 * health_check.min_healthy usable backends. */
bool lb_serving(const struct lb *lb);

/* Names as they appear in JSON; *_parse return 0 or -EINVAL. */
const char *lb_protocol_name(enum lb_protocol p);
int lb_protocol_parse(const char *s, enum lb_protocol *out);
const char *lb_forwarding_name(enum lb_forwarding f);
int lb_forwarding_parse(const char *s, enum lb_forwarding *out);
const char *lb_scheduler_name(enum lb_scheduler s);
int lb_scheduler_parse(const char *s, enum lb_scheduler *out);
const char *lb_status_name(enum lb_status s);
const char *hc_type_name(enum hc_type t);
int hc_type_parse(const char *s, enum hc_type *out);
const char *backend_type_name(enum backend_type t);
int backend_type_parse(const char *s, enum backend_type *out);
const char *backend_health_name(enum backend_health h);

/* Random RFC 4122 version 4 uuid. */
void uuid_generate_v4(char out[UUID_STR_LEN]);
/* Name-based uuid (stable for the same name), for config-declared objects. */
void uuid_from_name(const char *name, char out[UUID_STR_LEN]);
bool uuid_is_valid(const char *s);

/* The set of load balancers, indexed by uuid. */
struct model *model_new(void);
void model_free(struct model *m);
size_t model_count(const struct model *m);
/* i-th load balancer in insertion order (stable until the next removal). */
struct lb *model_at(const struct model *m, size_t i);
struct lb *model_find(const struct model *m, const char *uuid);
/* The load balancer already serving vip:port/protocol, or NULL. */
struct lb *model_find_listener(const struct model *m, const struct ip_addr *vip, uint16_t port,
			       enum lb_protocol proto);
/* Number of load balancers using this VIP. */
size_t model_vip_users(const struct model *m, const struct ip_addr *vip);
/* Whether the VIP should be announced: some load balancer on it is serving. */
bool model_vip_serving(const struct model *m, const struct ip_addr *vip);
/* Takes ownership of lb. -EEXIST if the uuid is taken, -ENOMEM. */
int model_add(struct model *m, struct lb *lb);
/* Unlinks and returns the load balancer (caller frees), or NULL. */
struct lb *model_take(struct model *m, const char *uuid);
/*
 * A number that changes with every add, take and model_touch, and differs between
 * models: whoever follows the
 * configuration (the health checker's probe set) can skip a pass in which it did not
 * move. Health flips do not touch it; they change no configuration.
 */
uint64_t model_generation(const struct model *m);
/* Records an in-place change of a load balancer's configuration. */
void model_touch(struct model *m);

#endif
