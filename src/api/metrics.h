/*
 * GET /metrics: the Prometheus text exposition format 0.0.4, every name prefixed vipd_.
 *
 * metrics_collect copies what the running daemon knows (model, data plane counters,
 * probe results, reconciler, announcer, VIP source) into a snapshot of plain structs;
 * metrics_render, pure, turns a snapshot into text, so the format is tested without a
 * daemon. Labels are bounded: they name load balancers, backends, VIPs and fixed sets of
 * states, never connections or clients.
 */
#ifndef VIPD_METRICS_H
#define VIPD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../cloud/metal.h"
#include "../addr.h"
#include "../announce/bird.h"
#include "../dataplane/dataplane.h"
#include "../health/health.h"
#include "../reconcile.h"

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct api_ctx;

struct metrics_traffic {
	bool valid; /* the plane counts this object */
	struct dataplane_stats st;
};

struct metrics_backend {
	char addr[IP_ADDR_STRLEN + 8]; /* "192.0.2.1:80", "[2001:db8::1]:80" */
	enum backend_health health;
	struct metrics_traffic traffic;
	bool probed; /* the health checker probes it: probe is filled */
	struct health_status probe;
};

struct metrics_lb {
	const char *name; /* may be NULL */
	const char *uuid;
	char vip[IP_ADDR_STRLEN]; /* "" while pending */
	uint16_t port;
	const char *protocol;
	size_t healthy_backends;
	struct metrics_traffic traffic;
	struct metrics_backend *backends;
	size_t n_backends;
};

struct metrics_vip {
	char addr[IP_ADDR_STRLEN];
	bool announced;
};

struct metrics_snapshot {
	const char *version;
	const char *dataplane;       /* the plane's name: xdp, ipvs, none */
	const char *announce_method; /* arp, bgp, none */
	double start_time;           /* wall clock, seconds since the epoch */
	bool have_reconcile;
	struct reconcile_stats reconcile;
	bool have_bird; /* BGP mode */
	struct bird_stats bird;
	bool have_cloud; /* the Equinix Metal VIP source */
	struct metal_stats cloud;
	struct metrics_lb *lbs;
	size_t n_lbs;
	struct metrics_vip *vips; /* each VIP once */
	size_t n_vips;
};

/* Fills *out from the daemon; the strings point into ctx's model, valid until it changes.
 * 0 or -ENOMEM. metrics_snapshot_free releases it either way. */
int metrics_collect(const struct api_ctx *ctx, struct metrics_snapshot *out);
void metrics_snapshot_free(struct metrics_snapshot *s);

/* The text of a snapshot, malloc'd and NUL-terminated. Pure. 0 or -ENOMEM. */
int metrics_render(const struct metrics_snapshot *s, char **out);

#endif
