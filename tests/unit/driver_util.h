/*
 * What the data plane drivers (ipvs_driver, fullnat_driver) share: a clock for their timings
 * and a model read from a config file.
 */
#ifndef VIPD_TEST_DRIVER_UTIL_H
#define VIPD_TEST_DRIVER_UTIL_H

#include "model.h"

/* CLOCK_MONOTONIC in milliseconds. */
double driver_now_ms(void);

/*
 * A new model holding the "loadbalancers" of the config file at path, or NULL (the file's
 * errors printed on stderr after "prog: ").
 */
struct model *driver_load(const char *prog, const char *path);

#endif
