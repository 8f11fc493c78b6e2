/*
 * The fullnat SNAT table on its own, driven one command a line on stdin, for
 * tests/integration/fullnat.py (which runs it in a network namespace of its own):
 *
 *   load FILE      the model becomes FILE's "loadbalancers" (config file schema)
 *                  -> "load rc=N lbs=N"
 *   gen N4 N6      the model becomes N4 fullnat TCP services 10.100.x.y:80 and N6
 *                  fd00:100::x:443                           -> "gen lbs=N"
 *   sync           the table takes the model's active fullnat load balancers, as the IPVS
 *                  plane hands them over                     -> "sync rc=N calls=N services=N
 *                                                                ms=N.N"
 *   quit (or end of input)
 *
 *   fullnat_driver [--debug]
 * "calls" counts libnftables calls made by that sync. Exit status: 0 when every command
 * worked, 1 otherwise, 2 for bad usage, 3 when libnftables cannot start.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/fullnat.h"
#include "driver_util.h"
#include "log.h"
#include "model.h"

static int gen_one(struct model *m, unsigned i, bool v6)
{
	struct lb *lb = lb_new();
	char name[32];

	snprintf(name, sizeof(name), "gen%s-%u", v6 ? "6" : "4", i);
	if (!lb || lb_set_name(lb, name)) {
		lb_free(lb);
		return -ENOMEM;
	}
	if (v6) {
		lb->vip.family = AF_INET6;
		inet_pton(AF_INET6, "fd00:100::", &lb->vip.v6);
		lb->vip.v6.s6_addr[14] = (uint8_t)(i >> 8);
		lb->vip.v6.s6_addr[15] = (uint8_t)i;
		lb->port = 443;
	} else {
		lb->vip.family = AF_INET;
		lb->vip.v4.s_addr = htonl(0x0a640000u + i + 1); /* 10.100.0.1 ... */
		lb->port = 80;
	}
	lb->forwarding = LB_FWD_FULLNAT;
	lb->hc.type = HC_NONE;
	if (model_add(m, lb)) {
		lb_free(lb);
		return -ENOMEM;
	}
	return 0;
}

static struct model *gen(unsigned n4, unsigned n6)
{
	struct model *m = model_new();

	for (unsigned i = 0; m && i < n4 + n6; i++) {
		if (gen_one(m, i < n4 ? i : i - n4, i >= n4)) {
			model_free(m);
			return NULL;
		}
	}
	return m;
}

/* The model's fullnat services, as ipvs.c picks them (it also leaves out foreign ones). */
static int sync_model(struct fullnat *f, const struct model *m)
{
	size_t n = 0, cap = model_count(m);
	struct ipvs_service_key *s = calloc(cap ? cap : 1, sizeof(*s));
	int err;

	if (!s)
		return -ENOMEM;
	for (size_t i = 0; i < cap; i++) {
		const struct lb *lb = model_at(m, i);

		if (lb->status != LB_STATUS_ACTIVE || !ip_addr_is_set(&lb->vip) ||
		    lb->forwarding != LB_FWD_FULLNAT)
			continue;
		s[n].addr = lb->vip;
		s[n].protocol = lb->protocol == LB_PROTO_UDP ? IPPROTO_UDP : IPPROTO_TCP;
		s[n].port = lb->port;
		n++;
	}
	err = fullnat_sync(f, s, n);
	free(s);
	return err;
}

static void usage(void)
{
	fprintf(stderr, "usage: fullnat_driver [--debug] <COMMANDS\n"
		"commands: load FILE | gen N4 N6 | sync | quit\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "debug", no_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	struct model *m = model_new();
	struct fullnat *f = NULL;
	char line[4096], arg[4096];
	int c, rc = 0, err;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'd')
			log_set_level(LOG_LVL_DEBUG);
		else
			usage();
	}
	if (optind != argc || !m)
		usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	err = fullnat_new(&f);
	if (err) {
		printf("fullnat rc=%d\n", err);
		model_free(m);
		return 3;
	}
	while (fgets(line, sizeof(line), stdin)) {
		unsigned n4, n6;

		line[strcspn(line, "\n")] = 0;
		if (sscanf(line, "load %4095s", arg) == 1) {
			model_free(m);
			m = driver_load("fullnat_driver", arg);
			printf("load rc=%d lbs=%zu\n", m ? 0 : -EINVAL, m ? model_count(m) : 0);
			if (!m) {
				m = model_new();
				rc = 1;
			}
		} else if (sscanf(line, "gen %u %u", &n4, &n6) == 2) {
			model_free(m);
			m = gen(n4, n6);
			printf("gen lbs=%zu\n", m ? model_count(m) : 0);
			if (!m) {
				m = model_new();
				rc = 1;
			}
		} else if (!strcmp(line, "sync")) {
			size_t calls = fullnat_calls(f);
			double t0 = driver_now_ms();

			err = sync_model(f, m);
			printf("sync rc=%d calls=%zu services=%zu ms=%.1f\n", err,
			       fullnat_calls(f) - calls, fullnat_services(f), driver_now_ms() - t0);
			if (err)
				rc = 1;
		} else if (!strcmp(line, "quit")) {
			break;
		} else {
			printf("bad command: %s\n", line);
			rc = 1;
		}
		if (!m)
			break;
	}
	fullnat_free(f);
	model_free(m);
	return rc;
}
