/*
 * BGP mode: VIPs announced as routes through an external BIRD 2.
 *
 * vipd owns two include files of static routes, one per address family, named in
 * bird/vipd.conf (the snippet the operator includes from bird.conf). sync() rewrites them
 * atomically when the VIP set changes and asks BIRD to re-read its configuration with
 * `configure` over the control socket; BIRD diffs the static protocols and sends only the
 * changed routes to its peers.
 *
 * The socket client runs on the libev loop and never blocks: greeting, then one command at a
 * time with a deadline. Syncs that arrive while a configure is in flight fold into one more
 * configure once it completes. Success is judged by BIRD's reply code only. When the socket
 * goes away (BIRD restarted or stopped) the announcer reconnects with backoff and pushes a
 * configure again; nothing BIRD does can stop vipd. A configure BIRD rejects (the operator's
 * configuration has an error) is logged with BIRD's message; BIRD keeps running its previous
 * configuration and the next sync tries again.
 *
 * The files always hold the wanted set, also while BIRD is down or rejects its
 * configuration, so whatever BIRD reads next (a restart, the operator's own configure) is
 * current. They are created empty at start if missing.
 */
#ifndef VIPD_BIRD_H
#define VIPD_BIRD_H

#include <stdbool.h>
#include <stddef.h>

#include "announce/announcer.h"

struct ev_loop;

#define BIRD_DEFAULT_ROUTES_DIR "/run/vipd"
#define BIRD_ROUTES4_FILE "bird-routes4.conf"
#define BIRD_ROUTES6_FILE "bird-routes6.conf"
#define BIRD_DEFAULT_TIMEOUT_S 10.0

struct bird_options {
	const char *socket_path; /* BIRD's control socket */
	const char *routes_dir;	 /* holds BIRD_ROUTES4_FILE and BIRD_ROUTES6_FILE; created */
	double timeout_s;	 /* deadline of a connect or command; 0: BIRD_DEFAULT_TIMEOUT_S */
	/* withdraw_all first re-announces the routes with the GRACEFUL_SHUTDOWN community
	 * (RFC 8326) and waits this long, so peers move traffic away before the routes go.
	 * 0: withdraw at once. */
	double graceful_s;
	/* The interface the VIPs go on as addresses, so the node accepts their traffic ("lo"),
	 * through the address manager (announce/addrs.h); NULL: something else does that. */
	const char *addr_iface;
};

/* 0 and *out set, or -errno (logged): -ENODEV for no such addr_iface, -ENAMETOOLONG for a
 * socket path that does not fit a unix address, or what creating the files failed with.
 * BIRD need not be running: the announcer keeps trying to reach it. */
int bird_announcer_new(struct ev_loop *loop, const struct bird_options *o,
		       struct announcer **out);

/*
 * Has BIRD read its configuration again although the route files did not change (a file it
 * includes beside them, like the Equinix Metal peer file, did): one more configure, folded
 * with any sync of the same loop pass. an must come from bird_announcer_new.
 */
void bird_announcer_reconfigure(struct announcer *an);

/* Counters for tests and metrics. */
struct bird_stats {
	unsigned long connects;		/* sessions that got BIRD's greeting */
	unsigned long configures;	/* configure commands sent */
	unsigned long configure_ok;
	unsigned long configure_failed; /* rejected by BIRD, timed out or cut off */
	unsigned long file_writes;	/* route file sets written */
	bool connected;
	bool in_sync; /* BIRD confirmed a configure that read the current files */
	int last_configure;	     /* the last finished configure: 1 taken, 0 not, -1 none yet */
	double last_configure_s;     /* how long it took, sent to answered (or given up) */
};

/* an must come from bird_announcer_new. */
void bird_announcer_stats(const struct announcer *an, struct bird_stats *out);

/*
 * The route file text for the VIPs of one family (AF_INET or AF_INET6) among vips: one
 * blackhole route per VIP, /32 or /128, each tagged with the GRACEFUL_SHUTDOWN community
 * when graceful is set. Pure. 0 or -ENOMEM; *out is NUL-terminated, free() it.
 */
int bird_routes_format(const struct ip_addr *vips, size_t n, int family, bool graceful,
		       char **out, size_t *len);

/* Replaces path with text atomically: temp file, fsync, rename, fsync of the directory.
 * Mode 0644 (BIRD usually runs as its own user). 0 or -errno. */
int bird_file_replace(const char *path, const char *text, size_t len);

#endif
