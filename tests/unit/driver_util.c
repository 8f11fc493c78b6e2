#include <stdio.h>
#include <time.h>

#include "config.h"
#include "driver_util.h"

double driver_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

struct model *driver_load(const char *prog, const char *path)
{
	struct config cfg = { 0 };
	struct config_error errs = { 0 };
	struct model *m;

	if (config_load_file(path, &cfg, &errs)) {
		for (size_t i = 0; i < errs.n; i++)
			fprintf(stderr, "%s: %s\n", prog, errs.msgs[i]);
		config_error_clear(&errs);
		return NULL;
	}
	m = model_new();
	for (size_t i = 0; m && i < cfg.n_lbs; i++) {
		/* the model takes the load balancer: the config must not free it */
		if (model_add(m, cfg.lbs[i])) {
			model_free(m);
			m = NULL;
			break;
		}
		cfg.lbs[i] = NULL;
	}
	config_clear(&cfg);
	return m;
}
