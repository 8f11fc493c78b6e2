/*
 * The IPVS plane on its own, for tests/uml/ipvs.sh (inside a kernel that has IPVS). Runs the
 * commands given after the options, in order, on one plane:
 *
 *   load FILE         the model becomes FILE's "loadbalancers" (config file schema)
 *   gen N M           the model becomes N TCP services 10.100.x.y:80, wrr, nat, each with M
 *                     destinations 10.200.x.y:8080 (IPv4), for the benchmark
 *   sync              -> "sync rc=N messages=N dumps=N ms=N.N services=N"
 *   weight I J W      backend J of load balancer I (0-based, model order) gets weight W
 *   drain I J | undrain I J | down I J (health check failed) | up I J
 *   stats             -> "stats lb=NAME rc=N packets=.. bytes=.. conns=.. active=.." and
 *                        "stats lb=NAME backend=ADDR:PORT rc=N ..." per backend
 *   cleanup           -> "cleanup messages=N ms=N.N"
 *
 *   ipvs_driver --state-dir DIR [--keep] [--debug] COMMAND...
 * --keep turns cleanup_on_exit off (cleanup then removes nothing). Exit status: 0 when every
 * command worked, 1 otherwise, 2 for bad usage, 3 when the plane cannot start (no IPVS).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/ipvs.h"
#include "driver_util.h"
#include "log.h"
#include "model.h"

static struct model *gen(unsigned n, unsigned per)
{
	struct model *m = model_new();

	for (unsigned i = 0; m && i < n; i++) {
		struct lb *lb = lb_new();
		char name[32];

		snprintf(name, sizeof(name), "gen-%u", i);
		if (!lb || lb_set_name(lb, name)) {
			lb_free(lb);
			model_free(m);
			return NULL;
		}
		lb->vip.family = AF_INET;
		lb->vip.v4.s_addr = htonl(0x0a640000u + i + 1); /* 10.100.0.1 ... */
		lb->port = 80;
		lb->scheduler = LB_SCHED_WRR;
		lb->forwarding = LB_FWD_NAT;
		lb->hc.type = HC_NONE;
		for (unsigned j = 0; j < per; j++) {
			struct backend b;

			backend_init(&b);
			uuid_generate_v4(b.uuid);
			b.ip.family = AF_INET;
			b.ip.v4.s_addr = htonl(0x0ac80000u + i * per + j + 1); /* 10.200.0.1 ... */
			b.port = 8080;
			b.weight = 1 + j % 5;
			if (lb_add_backend(lb, &b)) {
				lb_free(lb);
				model_free(m);
				return NULL;
			}
		}
		if (model_add(m, lb)) {
			lb_free(lb);
			model_free(m);
			return NULL;
		}
	}
	return m;
}

static struct backend *pick(struct model *m, const char *si, const char *sj, struct lb **lbp)
{
	unsigned long i = strtoul(si, NULL, 10), j = strtoul(sj, NULL, 10);
	struct lb *lb;

	if (!m || i >= model_count(m))
		return NULL;
	lb = model_at(m, i);
	if (j >= lb->n_backends)
		return NULL;
	*lbp = lb;
	return &lb->backends[j];
}

static void print_stats(const char *what, const char *name, const char *backend, int rc,
			const struct dataplane_stats *st)
{
	printf("%s lb=%s%s%s rc=%d packets=%llu bytes=%llu conns=%llu active=%llu\n", what, name,
	       backend ? " backend=" : "", backend ? backend : "", rc,
	       (unsigned long long)st->packets, (unsigned long long)st->bytes,
	       (unsigned long long)st->connections, (unsigned long long)st->active_connections);
}

static int stats(struct dataplane *dp, struct model *m)
{
	for (size_t i = 0; m && i < model_count(m); i++) {
		struct lb *lb = model_at(m, i);
		struct dataplane_stats st;
		char ip[IP_ADDR_STRLEN], ep[IP_ADDR_STRLEN + 8];
		int rc = dp->ops->lb_stats(dp, lb, &st);

		print_stats("stats", lb->name, NULL, rc, &st);
		for (size_t j = 0; j < lb->n_backends; j++) {
			const struct backend *b = &lb->backends[j];

			snprintf(ep, sizeof(ep), b->ip.family == AF_INET6 ? "[%s]:%u" : "%s:%u",
				 ip_addr_str(&b->ip, ip), b->port);
			rc = dp->ops->backend_stats(dp, lb, b, &st);
			print_stats("stats", lb->name, ep, rc, &st);
		}
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: ipvs_driver --state-dir DIR [--keep] [--debug] COMMAND...\n"
		"commands: load FILE | gen N M | sync | weight I J W | drain I J | undrain I J |\n"
		"          down I J | up I J | stats | cleanup\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, 's' },
		{ "keep", no_argument, NULL, 'k' },
		{ "debug", no_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	struct ipvs_options o = { .cleanup_on_exit = true };
	struct dataplane *dp = NULL;
	struct model *m = model_new();
	int c, rc = 0, err;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 's')
			o.state_dir = optarg;
		else if (c == 'k')
			o.cleanup_on_exit = false;
		else if (c == 'd')
			log_set_level(LOG_LVL_DEBUG);
		else
			usage();
	}
	if (!o.state_dir || optind == argc)
		usage();
	err = ipvs_plane_new(&o, &dp);
	if (err) {
		printf("plane rc=%d\n", err);
		model_free(m);
		return 3;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = optind; i < argc; i++) {
		const char *cmd = argv[i];
		struct backend *b;
		struct lb *lb;

		if (!strcmp(cmd, "load") && i + 1 < argc) {
			model_free(m);
			m = driver_load("ipvs_driver", argv[++i]);
			if (!m) {
				rc = 1;
				break;
			}
		} else if (!strcmp(cmd, "gen") && i + 2 < argc) {
			model_free(m);
			m = gen((unsigned)atoi(argv[i + 1]), (unsigned)atoi(argv[i + 2]));
			i += 2;
			if (!m) {
				rc = 1;
				break;
			}
		} else if (!strcmp(cmd, "sync")) {
			size_t msgs = ipvs_plane_messages(dp), dumps = ipvs_plane_dumps(dp);
			double t0 = driver_now_ms();

			err = dp->ops->sync(dp, m);
			printf("sync rc=%d messages=%zu dumps=%zu ms=%.1f services=%zu\n", err,
			       ipvs_plane_messages(dp) - msgs, ipvs_plane_dumps(dp) - dumps,
			       driver_now_ms() - t0, model_count(m));
			if (err)
				rc = 1;
		} else if (!strcmp(cmd, "weight") && i + 3 < argc) {
			b = pick(m, argv[i + 1], argv[i + 2], &lb);
			if (!b)
				usage();
			b->weight = (uint32_t)strtoul(argv[i + 3], NULL, 10);
			i += 3;
		} else if ((!strcmp(cmd, "drain") || !strcmp(cmd, "undrain") || !strcmp(cmd, "down") ||
			    !strcmp(cmd, "up")) && i + 2 < argc) {
			b = pick(m, argv[i + 1], argv[i + 2], &lb);
			if (!b)
				usage();
			if (!strcmp(cmd, "drain") || !strcmp(cmd, "undrain")) {
				b->drained = cmd[0] == 'd';
			} else {
				if (lb->hc.type == HC_NONE)
					lb->hc.type = HC_TCP;
				b->health = cmd[0] == 'd' ? BACKEND_HEALTH_DOWN : BACKEND_HEALTH_UP;
			}
			i += 2;
		} else if (!strcmp(cmd, "stats")) {
			stats(dp, m);
		} else if (!strcmp(cmd, "cleanup")) {
			size_t msgs = ipvs_plane_messages(dp);
			double t0 = driver_now_ms();

			dp->ops->cleanup(dp);
			printf("cleanup messages=%zu ms=%.1f\n", ipvs_plane_messages(dp) - msgs,
			       driver_now_ms() - t0);
		} else {
			usage();
		}
	}
	dp->ops->free(dp);
	model_free(m);
	return rc;
}
