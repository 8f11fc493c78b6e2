/*
 * Equinix Metal API v1 messages, pure: request bodies built and responses parsed with cJSON,
 * the retry schedule, and BIRD's peer file rendered from the host's BGP neighbours. Nothing
 * here does I/O; the provider sends what these build and feeds them what comes back.
 *
 * Shapes follow Metal's OpenAPI spec (metal_openapi.yaml, as kept in equinix-sdk-go
 * spec/services/metalv1: IPReservationRequestInput, IPReservation, IPReservationList, Meta,
 * BgpSessionNeighbors, BgpNeighborData, DeviceList, Metadata, Error) and the documents real
 * clients read (packngo, packethost/network-helpers, the metadata service as captured in
 * siderolabs/talos). tests/data/metal/ holds samples of each, with their sources.
 *
 * Parsers take the response body as received (text, len; need not be NUL-terminated) and
 * return 0, or -EINVAL with err naming the field ("bgp_neighbors[1].peer_ips[0]: ..."),
 * -E2BIG past the bounds below (err says which), -ENOMEM. Text from the API that is quoted
 * in err is escaped, so err never holds a control character. Secrets (the MD5 password) are
 * never quoted.
 *
 * Tags: vipd marks every reservation it makes so that it finds its own again (the list
 * endpoint has no tag filter; vipd lists and matches itself) and knows which load balancer
 * each one is for:
 *
 *	"vipd"                 made by vipd
 *	"vipd:lb=<uuid>"       for the load balancer with this uuid (lowercase)
 *	"vipd:host=<hostname>" asked for by this node (information only)
 *
 * Ownership goes by the load balancer's uuid, never by host: nodes that run the same load
 * balancer (the same uuid, e.g. derived from the same name in their config files) share its
 * address instead of each reserving one. A reservation with any tag "vipd" or "vipd:..." is
 * vipd's. "details" carries "vipd load balancer <uuid> (<name>)" for people reading the
 * console.
 */
#ifndef VIPD_METAL_MSG_H
#define VIPD_METAL_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../src/addr.h"
#include "../src/model.h"

#define METAL_TAG "vipd"
#define METAL_TAG_LB "vipd:lb="
#define METAL_TAG_HOST "vipd:host="

#define METAL_ID_MAX 64	   /* ids: 1..63 of [0-9A-Za-z-] (they go into URL paths) */
#define METAL_CODE_MAX 32  /* metro and facility codes, kept lowercase */
#define METAL_HOSTNAME_MAX 254
#define METAL_TIME_MAX 40
#define METAL_HREF_MAX 512
#define METAL_LIST_MAX 10000	    /* entries one list keeps over all its pages */
#define METAL_BGP_MAX_NEIGHBORS 16
#define METAL_BGP_MAX_PEERS 8	    /* peer_ips of one neighbour */
#define METAL_BGP_MAX_ROUTES 4096   /* routes_in, routes_out of one neighbour */
#define METAL_MD5_MAX 80	    /* TCP_MD5SIG_MAXKEYLEN */
#define METAL_MAX_ADDRESSES 32	    /* the metadata's network.addresses */
/* TTL of multihop sessions: Metal's peers sit behind the top-of-rack pair; the BIRD 2 config
 * Equinix's operator guide points to uses 4. */
#define METAL_BGP_MULTIHOP_TTL 4

/* Whether s is an id the API may hand out: 1..METAL_ID_MAX-1 of [0-9A-Za-z-], safe in a URL
 * path. */
bool metal_id_ok(const char *s);

/* --- reserving an elastic IP ------------------------------------------------------------ */

struct metal_reserve {
	const char *metro;    /* metro code ("ny"): exactly one of metro and facility */
	const char *facility; /* facility code ("ny5") */
	const char *lb_uuid;  /* the load balancer the address is for; required */
	const char *lb_name;  /* for "details"; NULL: none */
	const char *hostname; /* tagged vipd:host=; NULL: no such tag */
	const char *comments; /* NULL: none */
};

/*
 * The body of POST /projects/{id}/ips: one public IPv4 address, failing (422) rather than
 * waiting for approval when over quota, tagged as above. *out is NUL-terminated JSON, free()
 * it. -EINVAL: neither or both of metro and facility, a code or hostname with characters
 * other than letters, digits, '-', '_' ('.' too in a hostname), or lb_uuid not a uuid;
 * -ENOMEM.
 */
int metal_reserve_body(const struct metal_reserve *r, char **out);

/* --- reservations ------------------------------------------------------------------------- */

enum metal_ip_state {
	METAL_IP_CREATED, /* granted: the address is there */
	METAL_IP_PENDING, /* waiting for approval; no address yet */
	METAL_IP_DENIED,
	METAL_IP_OTHER,	  /* a state this code does not know: not usable */
};

struct metal_ip {
	char id[METAL_ID_MAX];
	enum metal_ip_state state;
	/* When CREATED: a public IPv4 /32 (anything else is refused: vipd reserves single
	 * addresses). Unset otherwise. */
	struct ip_addr address;
	bool global;			 /* type global_ipv4 (no metro) rather than public_ipv4 */
	char metro[METAL_CODE_MAX];	 /* "" when the API gave none */
	char facility[METAL_CODE_MAX];	 /* "" when the API gave none (a metro reservation) */
	char created_at[METAL_TIME_MAX]; /* as the API wrote it (ISO 8601, UTC); "" if absent */
	/* From the tags. */
	bool vipd;
	char lb_uuid[UUID_STR_LEN];	 /* "" without a vipd:lb= tag */
	char host[METAL_HOSTNAME_MAX];	 /* "" without a vipd:host= tag */
};

/*
 * One reservation (the 201 of POST /projects/{id}/ips, the 200 of GET /ips/{id}). Any state
 * parses; a CREATED one must be a public_ipv4 or global_ipv4 /32. Tags are read as above: two
 * different vipd:lb= tags, or one that is not a uuid, are an error.
 */
int metal_ip_parse(const char *text, size_t len, struct metal_ip *out, char *err, size_t errlen);

/* meta of a list response: which page this was and where the next one is. */
struct metal_page {
	unsigned long current, last, total; /* current_page, last_page, total; 0 if absent */
	char next[METAL_HREF_MAX]; /* meta.next.href, an absolute path; "" on the last page */
};

/* The URL of the page after p: base_url ("https://api.equinix.com/metal/v1") joined with
 * p->next, which may or may not repeat base_url's path. -ENOENT on the last page,
 * -ENAMETOOLONG when it does not fit out, -EINVAL for a base_url without scheme and host. */
int metal_page_next_url(const char *base_url, const struct metal_page *p, char *out,
			size_t outlen);

/* vipd's reservations collected from the pages of GET /projects/{id}/ips. Zero it first. */
struct metal_ip_list {
	struct metal_ip *ips; /* only those tagged for vipd, in the API's order */
	size_t n, cap;
	size_t n_other;	      /* entries not tagged for vipd: skipped */
	size_t n_bad;	      /* vipd's entries that are not usable (say a /29): skipped */
	char bad[256];	      /* why the first of those was skipped; "" if none */
};

/*
 * Appends the vipd reservations of one page ({"ip_addresses": [...], "meta": {...}}) to l
 * and fills page (may be NULL). The other entries are only counted: private and IPv6 blocks,
 * other tools' reservations. On error l keeps what earlier pages added.
 */
int metal_ip_list_parse(const char *text, size_t len, struct metal_ip_list *l,
			struct metal_page *page, char *err, size_t errlen);
void metal_ip_list_free(struct metal_ip_list *l);

struct metal_own {
	char lb_uuid[UUID_STR_LEN];
	size_t ip; /* index into the list's ips */
};

struct metal_owned {
	struct metal_own *own; /* sorted by lb_uuid; see metal_own_find */
	size_t n_own;
	size_t *extra;	       /* indexes into the list's ips, ascending */
	size_t n_extra;
};

/*
 * Which of l's reservations vipd uses here, one per load balancer. Only reservations usable
 * in this location count: global ones; with a facility, those of that facility (Metal
 * names their metro too); those of metro that name no facility (metro reservations serve
 * the whole metro, so a caller with a facility passes its metro as well when it knows it);
 * a NULL metro and facility match everything. Of the CREATED reservations of one load
 * balancer, one whose id is in recorded (the ids vipd has on record) wins, else the earliest
 * created_at, then the lowest id. extra lists vipd's other reservations in this location: a
 * second one for a load balancer, one without a valid lb tag, a pending or denied one; the
 * caller may release those once it is sure no load balancer needs them. 0 or -ENOMEM.
 */
int metal_ip_list_own(const struct metal_ip_list *l, const char *metro, const char *facility,
		      const char *const *recorded, size_t n_recorded, struct metal_owned *out);
void metal_owned_free(struct metal_owned *o);
/* The entry for lb_uuid (any case), or NULL. */
const struct metal_own *metal_own_find(const struct metal_owned *o, const char *lb_uuid);

/* --- devices ---------------------------------------------------------------------------- */

struct metal_device {
	char id[METAL_ID_MAX];
	char hostname[METAL_HOSTNAME_MAX];
};

/* The devices of the pages of GET /projects/{id}/devices. Zero it first. */
struct metal_device_list {
	struct metal_device *devices;
	size_t n, cap;
};

/* Appends one page ({"devices": [...], "meta": {...}}); page may be NULL. */
int metal_device_list_parse(const char *text, size_t len, struct metal_device_list *l,
			    struct metal_page *page, char *err, size_t errlen);
void metal_device_list_free(struct metal_device_list *l);
/*
 * The device whose hostname is exactly hostname, ignoring case (the API's hostname filter
 * matches parts: "node-1" finds "node-10"). 0 and *index set; -ENOENT; -EEXIST when two
 * devices have that hostname.
 */
int metal_device_find(const struct metal_device_list *l, const char *hostname, size_t *index);

/* --- BGP neighbours ----------------------------------------------------------------------- */

struct metal_route {
	struct ip_addr net;
	uint8_t len;
	bool exact;
};

struct metal_bgp_neighbor {
	int family;		     /* AF_INET or AF_INET6 (address_family 4 or 6) */
	uint32_t customer_as;	     /* this host's AS, 1..4294967295 */
	uint32_t peer_as;
	struct ip_addr customer_ip;  /* this host's end of the sessions (their source) */
	struct ip_addr peer_ips[METAL_BGP_MAX_PEERS];
	size_t n_peer_ips;	     /* at least 1 */
	bool multihop;		     /* the peers are not on a connected network */
	bool md5_enabled;
	/* "" unless md5_enabled; then 1..METAL_MD5_MAX printable ASCII characters other than
	 * '"' and '\\' (BIRD 2's strings have no escapes: a password that would need one is
	 * refused, never mangled). */
	char md5_password[METAL_MD5_MAX + 1];
	struct metal_route *routes_in;	/* the prefixes the peers accept from this host */
	struct metal_route *routes_out; /* a default route when the project asked for one */
	size_t n_routes_in, n_routes_out;
};

struct metal_bgp {
	struct metal_bgp_neighbor *nb; /* every neighbour, in the API's order */
	size_t n;
};

/*
 * {"bgp_neighbors": [...]} from GET /devices/{id}/bgp/neighbors. Every neighbour is checked
 * (family 4 or 6; addresses of that family, neither unspecified, loopback, multicast nor an
 * IPv6 link-local peer; AS numbers 1..4294967295; at least one peer; the password as above)
 * and kept. An empty list is valid: BGP is not enabled for the device.
 */
int metal_bgp_parse(const char *text, size_t len, struct metal_bgp *out, char *err,
		    size_t errlen);
void metal_bgp_free(struct metal_bgp *b);

/* --- the metadata service (https://metadata.platformequinix.com/metadata) ---------------- */

struct metal_address {
	struct ip_addr address;
	struct ip_addr gateway; /* unset when the API gave none */
	uint8_t cidr;
	bool public;
	bool management;
};

struct metal_metadata {
	char id[METAL_ID_MAX]; /* the device's id */
	char hostname[METAL_HOSTNAME_MAX];
	char facility[METAL_CODE_MAX]; /* "" if absent */
	char metro[METAL_CODE_MAX];    /* "" if absent */
	struct metal_address addresses[METAL_MAX_ADDRESSES]; /* network.addresses */
	size_t n_addresses;
	bool has_bgp; /* the document had bgp_neighbors (BGP enabled for the device) */
	struct metal_bgp bgp;
};

int metal_metadata_parse(const char *text, size_t len, struct metal_metadata *out, char *err,
			 size_t errlen);
void metal_metadata_free(struct metal_metadata *m);

/* --- what BIRD and the kernel need for the sessions ---------------------------------------- */

/*
 * BIRD's peer include file: one `protocol bgp` per neighbour and peer address (both
 * families), named vipd_metal4_N / vipd_metal6_N, with `local as`, `source address` (the
 * customer_ip), `neighbor PEER as peer_as`, `multihop METAL_BGP_MULTIHOP_TTL` for multihop
 * neighbours and `password` when md5 is enabled. Each session's channel imports nothing and
 * exports `filter vipd_export` (bird/vipd.conf: exactly vipd's VIP routes), so the file must
 * be included after that filter. A peer address that appears twice is written once. Pure; the
 * neighbours are checked again as metal_bgp_parse does (-EINVAL, err). *out is
 * NUL-terminated, free() it.
 */
int metal_bird_peers(const struct metal_bgp *b, char **out, size_t *len, char *err,
		     size_t errlen);

struct metal_peer_route {
	struct ip_addr dst; /* a multihop peer, as a host route (/32, /128) */
	struct ip_addr via;
};

/*
 * The host routes the kernel needs for multihop sessions: Metal's multihop peers
 * (169.254.255.1 and .2, fc00::e and ::f) are on no connected network and the default route
 * leads out through the public gateway, so each is routed through the gateway of the network
 * the neighbour's customer_ip is on. That is the gateway of the metadata address equal to
 * customer_ip; when none is (the metadata lists the block's first address), the management
 * address of the family that carries BGP: the private IPv4 one, the public IPv6 one. One route
 * per multihop peer address, duplicates left out; up to cap into out, *n the count. -ENOENT
 * (err says which neighbour) when no address has a gateway, -E2BIG beyond cap.
 */
int metal_peer_routes(const struct metal_bgp *b, const struct metal_address *addrs,
		      size_t n_addrs, struct metal_peer_route *out, size_t cap, size_t *n,
		      char *err, size_t errlen);

/* --- errors and retries ------------------------------------------------------------------- */

/*
 * One line for the log or the user from an error body: the messages of {"errors": [...]}
 * joined with "; ", else {"error": "..."}. Control characters become spaces (runs of
 * whitespace one), invalid UTF-8 becomes '?', and the text is cut (ending "...") to fit
 * outlen. 0 when the body had a message; -ENOMSG otherwise, and then out holds the start of
 * the body cleaned the same way, or "(empty body)".
 */
int metal_error_message(const char *body, size_t len, char *out, size_t outlen);

#define METAL_BACKOFF_BASE_MS 1000u
#define METAL_BACKOFF_CAP_MS 60000u
#define METAL_BACKOFF_MIN_MS 250u
#define METAL_RETRY_AFTER_MAX_S 900 /* a longer Retry-After is taken as this */
#define METAL_RETRY_AFTER_JITTER_MS 1000u

/*
 * How long to wait before retry number attempt (0 for the first retry): full jitter, a
 * uniform draw (from rnd, any 32 random bits) in [METAL_BACKOFF_MIN_MS, window] where window
 * = METAL_BACKOFF_BASE_MS * 2^attempt capped at METAL_BACKOFF_CAP_MS. With a Retry-After
 * (retry_after_s >= 0; -1 when the response had none) never sooner than it: at least
 * min(retry_after_s, METAL_RETRY_AFTER_MAX_S) seconds plus up to METAL_RETRY_AFTER_JITTER_MS,
 * so clients told the same time do not all come back at once. Pure.
 */
uint32_t metal_backoff_ms(unsigned attempt, uint32_t rnd, long retry_after_s);

#endif
