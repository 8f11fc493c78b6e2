/*
 * Global settings: every command-line flag has a key in the config file. The
 * command line wins over the file; `set` records which fields a source gave so
 * the two can be merged.
 */
#ifndef VIPD_SETTINGS_H
#define VIPD_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

enum dataplane_kind { DATAPLANE_AUTO, DATAPLANE_XDP, DATAPLANE_IPVS, DATAPLANE_NONE };

#define VIPD_DEFAULT_API_LISTEN "127.0.0.1:10001"
#define VIPD_DEFAULT_STATE_DIR "/var/lib/vipd"
#define VIPD_DEFAULT_BIRD_SOCKET "/run/bird/bird.ctl"
#define VIPD_DEFAULT_BPF_PIN_DIR "/sys/fs/bpf/vipd"
#define VIPD_DEFAULT_BIRD_ROUTES "/run/vipd"
#define VIPD_DEFAULT_ARP_REFRESH_MS 3000
#define VIPD_DEFAULT_DRAIN_TIMEOUT_MS 300000
#define VIPD_DEFAULT_METAL_API_URL "https://api.equinix.com/metal/v1"
#define VIPD_DEFAULT_METAL_METADATA_URL "https://metadata.platformequinix.com/metadata"

enum settings_field {
	SET_ARP = 1u << 0,
	SET_BGP = 1u << 1,
	SET_ADAPTER = 1u << 2,
	SET_IPAM_RANGES = 1u << 3,
	SET_PROJECT = 1u << 4,
	SET_FACILITY = 1u << 5,
	SET_METRO = 1u << 6,
	SET_API_LISTEN = 1u << 7,
	SET_API_TOKEN_FILE = 1u << 8,
	SET_BIRD_SOCKET = 1u << 9,
	SET_DATAPLANE = 1u << 10,
	SET_STATE_DIR = 1u << 11,
	SET_LOG_LEVEL = 1u << 12,
	SET_FOREGROUND = 1u << 13,
	SET_BPF_PIN_DIR = 1u << 14,
	SET_BIRD_ROUTES = 1u << 15,
	SET_ARP_REFRESH = 1u << 16,
	SET_GRACEFUL = 1u << 17,
	SET_DRAIN_TIMEOUT = 1u << 18,
	SET_CLEANUP = 1u << 19,
	SET_DEVICE = 1u << 20,
	SET_METAL_TOKEN_FILE = 1u << 21,
	SET_METAL_API_URL = 1u << 22,
	SET_METAL_METADATA_URL = 1u << 23,
	SET_KEEP_IPS = 1u << 24,
};

struct settings {
	uint32_t set; /* enum settings_field bits given by this source */
	bool arp;
	bool bgp;
	char *adapter;
	char **ipam_ranges; /* "A-B" or CIDR strings, validated by ipam_range_parse */
	size_t n_ipam_ranges;
	char *project;
	char *facility;
	char *metro;
	char *device;             /* Equinix Metal device id; NULL: metadata, then hostname */
	char *metal_token_file;   /* the Metal token; NULL: METAL_AUTH_TOKEN */
	char *metal_api_url;
	char *metal_metadata_url;
	bool keep_ips;            /* Metal: a deleted load balancer's address stays reserved */
	char *api_listen;     /* "host:port", "[v6]:port" */
	char *api_token_file; /* bearer token for the API; NULL: no auth */
	char *bird_socket;
	char *bird_routes;           /* directory of the route files BIRD includes */
	uint32_t arp_refresh_ms;     /* gratuitous ARP / NA refresh period; 0: none */
	uint32_t graceful_shutdown_ms; /* BGP: GRACEFUL_SHUTDOWN period before withdrawing */
	uint32_t drain_timeout_ms;   /* a draining backend reports drained after this at most */
	enum dataplane_kind dataplane;
	char *bpf_pin_dir; /* where the XDP plane pins its program and maps */
	char *state_dir;
	enum log_level log_level;
	bool foreground;
	bool cleanup_on_exit;        /* IPVS: remove vipd's services on exit */
};

/* Zeroed settings with the defaults filled in and `set` empty. */
void settings_init(struct settings *s);
void settings_clear(struct settings *s);
/* Copies into dst every field that src has in src->set (deep copy). 0 or -ENOMEM. */
int settings_overlay(struct settings *dst, const struct settings *src);
int settings_add_ipam_range(struct settings *s, const char *range);
const char *dataplane_kind_name(enum dataplane_kind k);
int dataplane_kind_parse(const char *s, enum dataplane_kind *out);

/* Splits "host:port" / "[v6]:port" / ":port"; 0 or -EINVAL. host gets "" for ":port". */
int listen_addr_parse(const char *s, char *host, size_t hostlen, uint16_t *port);

#endif
