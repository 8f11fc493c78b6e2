/*
 * The forwarding plane interface. The reconciler hands it the whole desired
 * model; the implementation diffs against what the kernel holds and applies
 * only the difference, so calling sync twice in a row changes nothing.
 */
#ifndef VIPD_DATAPLANE_H
#define VIPD_DATAPLANE_H

#include <stdint.h>

struct model;
struct lb;
struct backend;

/* Traffic through the plane, for one backend or a whole load balancer. */
struct dataplane_stats {
	uint64_t packets;            /* both directions through the node */
	uint64_t bytes;
	uint64_t connections;        /* new connections seen */
	uint64_t active_connections; /* still open, where the plane can tell */
};

struct dataplane;

struct dataplane_ops {
	const char *name;
	/* Bring the kernel in line with the model. 0 or -errno (logged by the plane). */
	int (*sync)(struct dataplane *dp, const struct model *m);
	/* Counters for one backend; -ENOENT if the plane does not know it. NULL: no counters. */
	int (*backend_stats)(struct dataplane *dp, const struct lb *lb, const struct backend *b,
			     struct dataplane_stats *out);
	/* Counters for the whole load balancer; -ENOENT if unknown. NULL: no counters. */
	int (*lb_stats)(struct dataplane *dp, const struct lb *lb, struct dataplane_stats *out);
	/* On exit: remove what this plane keeps only while vipd runs, as its options say.
	 * NULL: nothing (the XDP program keeps forwarding across restarts). */
	void (*cleanup)(struct dataplane *dp);
	void (*free)(struct dataplane *dp);
};

struct dataplane {
	const struct dataplane_ops *ops;
};

/* The plane that programs nothing (--dataplane none). */
struct dataplane *dataplane_none_new(void);

#endif
