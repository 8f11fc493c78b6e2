/*
 * The command line. Pure: argv in, settings and actions out; nothing printed
 * except through the err buffer, so it can be tested.
 */
#ifndef VIPD_OPTIONS_H
#define VIPD_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>

#include "settings.h"

enum options_action { OPT_RUN, OPT_HELP, OPT_VERSION, OPT_CHECK_CONFIG, OPT_XDP_UNLOAD };

struct options {
	enum options_action action;
	struct settings cli; /* cli.set marks the flags given */
	char *config_path;   /* NULL: none */
};

/* 0, or -EINVAL with err filled ("--dataplane: expected auto, xdp, ipvs or none"). */
int options_parse(int argc, char **argv, struct options *o, char *err, size_t errlen);
void options_clear(struct options *o);
/* The --help text. */
const char *options_usage(void);

#endif
