/*
 * The config file: one JSON document with the global settings (one key per
 * command-line flag) and "loadbalancers", a list in the API's schema.
 */
#ifndef VIPD_CONFIG_H
#define VIPD_CONFIG_H

#include <stddef.h>

#include "model.h"
#include "settings.h"

struct config {
	struct settings settings; /* settings.set marks the keys the file gave */
	struct lb **lbs;          /* origin LB_ORIGIN_CONFIG, uuid from "uuid" or the name */
	size_t n_lbs;
};

struct config_error {
	char **msgs; /* "path: reason" each */
	size_t n;
};

/*
 * Pure: parses and validates text. Collects every error it can find (not just
 * the first). 0 with *cfg filled, or -EINVAL with errs filled and cfg cleared.
 */
int config_parse(const char *text, size_t len, struct config *cfg, struct config_error *errs);
/* Reads path and parses it; an unreadable file is one error naming the path. */
int config_load_file(const char *path, struct config *cfg, struct config_error *errs);
void config_clear(struct config *cfg);
void config_error_clear(struct config_error *errs);

#endif
