#include "settings.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *const dataplane_names[] = {
	[DATAPLANE_AUTO] = "auto",
	[DATAPLANE_XDP] = "xdp",
	[DATAPLANE_IPVS] = "ipvs",
	[DATAPLANE_NONE] = "none",
};

/*
 * settings_init cannot report ENOMEM; a default left NULL then reads as "not
 * set", which every consumer must cope with for optional fields anyway.
 */
void settings_init(struct settings *s)
{
	memset(s, 0, sizeof(*s));
	s->api_listen = strdup(VIPD_DEFAULT_API_LISTEN);
	s->state_dir = strdup(VIPD_DEFAULT_STATE_DIR);
	s->bird_socket = strdup(VIPD_DEFAULT_BIRD_SOCKET);
	s->bpf_pin_dir = strdup(VIPD_DEFAULT_BPF_PIN_DIR);
	s->bird_routes = strdup(VIPD_DEFAULT_BIRD_ROUTES);
	s->metal_api_url = strdup(VIPD_DEFAULT_METAL_API_URL);
	s->metal_metadata_url = strdup(VIPD_DEFAULT_METAL_METADATA_URL);
	s->arp_refresh_ms = VIPD_DEFAULT_ARP_REFRESH_MS;
	s->drain_timeout_ms = VIPD_DEFAULT_DRAIN_TIMEOUT_MS;
	s->cleanup_on_exit = true;
	s->dataplane = DATAPLANE_AUTO;
	s->log_level = LOG_LVL_INFO;
}

static void free_ranges(char **r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(r[i]);
	free(r);
}

void settings_clear(struct settings *s)
{
	free(s->adapter);
	free_ranges(s->ipam_ranges, s->n_ipam_ranges);
	free(s->project);
	free(s->facility);
	free(s->metro);
	free(s->device);
	free(s->metal_token_file);
	free(s->metal_api_url);
	free(s->metal_metadata_url);
	free(s->api_listen);
	free(s->api_token_file);
	free(s->bird_socket);
	free(s->bpf_pin_dir);
	free(s->bird_routes);
	free(s->state_dir);
	memset(s, 0, sizeof(*s));
}

/* Replaces *dst by a copy of src (which may be NULL). */
static int copy_str(char **dst, const char *src)
{
	char *c = NULL;

	if (src) {
		c = strdup(src);
		if (!c)
			return -ENOMEM;
	}
	free(*dst);
	*dst = c;
	return 0;
}

static int copy_ranges(struct settings *dst, const struct settings *src)
{
	char **r = NULL;

	if (src->n_ipam_ranges) {
		r = calloc(src->n_ipam_ranges, sizeof(*r));
		if (!r)
			return -ENOMEM;
		for (size_t i = 0; i < src->n_ipam_ranges; i++) {
			r[i] = strdup(src->ipam_ranges[i]);
			if (!r[i]) {
				free_ranges(r, i);
				return -ENOMEM;
			}
		}
	}
	free_ranges(dst->ipam_ranges, dst->n_ipam_ranges);
	dst->ipam_ranges = r;
	dst->n_ipam_ranges = src->n_ipam_ranges;
	return 0;
}

int settings_overlay(struct settings *dst, const struct settings *src)
{
	static const struct {
		uint32_t bit;
		size_t off;
	} strs[] = {
		{ SET_ADAPTER, offsetof(struct settings, adapter) },
		{ SET_PROJECT, offsetof(struct settings, project) },
		{ SET_FACILITY, offsetof(struct settings, facility) },
		{ SET_METRO, offsetof(struct settings, metro) },
		{ SET_DEVICE, offsetof(struct settings, device) },
		{ SET_METAL_TOKEN_FILE, offsetof(struct settings, metal_token_file) },
		{ SET_METAL_API_URL, offsetof(struct settings, metal_api_url) },
		{ SET_METAL_METADATA_URL, offsetof(struct settings, metal_metadata_url) },
		{ SET_API_LISTEN, offsetof(struct settings, api_listen) },
		{ SET_API_TOKEN_FILE, offsetof(struct settings, api_token_file) },
		{ SET_BIRD_SOCKET, offsetof(struct settings, bird_socket) },
		{ SET_STATE_DIR, offsetof(struct settings, state_dir) },
		{ SET_BPF_PIN_DIR, offsetof(struct settings, bpf_pin_dir) },
		{ SET_BIRD_ROUTES, offsetof(struct settings, bird_routes) },
	};
	uint32_t set = src->set;

	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		if (!(set & strs[i].bit))
			continue;
		if (copy_str((char **)((char *)dst + strs[i].off),
			     *(char *const *)((const char *)src + strs[i].off)))
			return -ENOMEM;
		dst->set |= strs[i].bit;
	}
	if (set & SET_IPAM_RANGES) {
		if (copy_ranges(dst, src))
			return -ENOMEM;
		dst->set |= SET_IPAM_RANGES;
	}
	if (set & SET_ARP)
		dst->arp = src->arp;
	if (set & SET_BGP)
		dst->bgp = src->bgp;
	if (set & SET_DATAPLANE)
		dst->dataplane = src->dataplane;
	if (set & SET_LOG_LEVEL)
		dst->log_level = src->log_level;
	if (set & SET_FOREGROUND)
		dst->foreground = src->foreground;
	if (set & SET_ARP_REFRESH)
		dst->arp_refresh_ms = src->arp_refresh_ms;
	if (set & SET_GRACEFUL)
		dst->graceful_shutdown_ms = src->graceful_shutdown_ms;
	if (set & SET_DRAIN_TIMEOUT)
		dst->drain_timeout_ms = src->drain_timeout_ms;
	if (set & SET_CLEANUP)
		dst->cleanup_on_exit = src->cleanup_on_exit;
	if (set & SET_KEEP_IPS)
		dst->keep_ips = src->keep_ips;
	dst->set |= set & (SET_ARP | SET_BGP | SET_DATAPLANE | SET_LOG_LEVEL | SET_FOREGROUND |
			   SET_ARP_REFRESH | SET_GRACEFUL | SET_DRAIN_TIMEOUT | SET_CLEANUP |
			   SET_KEEP_IPS);
	return 0;
}

int settings_add_ipam_range(struct settings *s, const char *range)
{
	char **r, *c;

	if (!range)
		return -EINVAL;
	c = strdup(range);
	if (!c)
		return -ENOMEM;
	r = realloc(s->ipam_ranges, (s->n_ipam_ranges + 1) * sizeof(*r));
	if (!r) {
		free(c);
		return -ENOMEM;
	}
	r[s->n_ipam_ranges++] = c;
	s->ipam_ranges = r;
	s->set |= SET_IPAM_RANGES;
	return 0;
}

const char *dataplane_kind_name(enum dataplane_kind k)
{
	if ((unsigned)k >= sizeof(dataplane_names) / sizeof(dataplane_names[0]))
		return "?";
	return dataplane_names[k];
}

int dataplane_kind_parse(const char *s, enum dataplane_kind *out)
{
	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(dataplane_names) / sizeof(dataplane_names[0]); i++) {
		if (strcmp(s, dataplane_names[i]) == 0) {
			*out = (enum dataplane_kind)i;
			return 0;
		}
	}
	return -EINVAL;
}

/* A DNS name as getaddrinfo would take it: letters, digits, '-', '.'; labels 1..63. */
static int hostname_ok(const char *s, size_t n)
{
	size_t label = 0;

	if (n == 0 || n > 253 || s[0] == '.' || s[0] == '-')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			return 0;
		if (++label > 63)
			return 0;
	}
	/* All digits and dots is an IPv4 literal or nothing (no all-numeric TLDs). */
	if (strspn(s, "0123456789.") == n) {
		struct in_addr a4;

		return inet_pton(AF_INET, s, &a4) == 1;
	}
	return 1;
}

static int port_parse(const char *s, uint16_t *port)
{
	unsigned long v = 0;
	size_t n = strlen(s);

	if (n == 0 || n > 5)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v < 1 || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

int listen_addr_parse(const char *s, char *host, size_t hostlen, uint16_t *port)
{
	char buf[256];
	const char *h, *colon;
	size_t hl;
	uint16_t p;

	if (!s)
		return -EINVAL;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		struct in6_addr a6;

		if (!close || close[1] != ':')
			return -EINVAL;
		h = s + 1;
		hl = (size_t)(close - h);
		colon = close + 1;
		if (hl == 0 || hl >= sizeof(buf))
			return -EINVAL;
		memcpy(buf, h, hl);
		buf[hl] = '\0';
		if (inet_pton(AF_INET6, buf, &a6) != 1)
			return -EINVAL;
	} else {
		colon = strchr(s, ':');
		/* An unbracketed IPv6 address has more than one ':' and is ambiguous. */
		if (!colon || strchr(colon + 1, ':'))
			return -EINVAL;
		h = s;
		hl = (size_t)(colon - s);
		if (hl >= sizeof(buf))
			return -EINVAL;
		memcpy(buf, h, hl);
		buf[hl] = '\0';
		if (hl && !hostname_ok(buf, hl))
			return -EINVAL;
	}
	if (port_parse(colon + 1, &p))
		return -EINVAL;
	if (hl >= hostlen)
		return -EINVAL;
	memcpy(host, buf, hl + 1);
	*port = p;
	return 0;
}
