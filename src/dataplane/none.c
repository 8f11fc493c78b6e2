#include "dataplane.h"

#include <stdlib.h>

static int none_sync(struct dataplane *dp, const struct model *m)
{
	(void)dp;
	(void)m;
	return 0;
}

static void none_free(struct dataplane *dp)
{
	free(dp);
}

static const struct dataplane_ops none_ops = {
	.name = "none",
	.sync = none_sync,
	.backend_stats = NULL,
	.lb_stats = NULL,
	.cleanup = NULL,
	.free = none_free,
};

struct dataplane *dataplane_none_new(void)
{
	struct dataplane *dp = calloc(1, sizeof(*dp));

	if (dp)
		dp->ops = &none_ops;
	return dp;
}
