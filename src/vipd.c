/* vipd: the daemon's entry point: flags and config, the loop, signals, reload. */
#ifdef HAVE_CONFIG_H
#include "vipd_config.h"
#endif

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "announce/announcer.h"
#include "announce/arp.h"
#include "announce/bird.h"
#include "api/api.h"
#include "cloud/ipam.h"
#include "cloud/metal.h"
#include "config.h"
#include "dataplane/dataplane.h"
#include "dataplane/ipvs.h"
#include "dataplane/xdp.h"
#include "health/health.h"
#include "lb_json.h"
#include "log.h"
#include "options.h"
#include "reconcile.h"
#include "settings.h"
#include "state.h"
#include "store.h"
#include "util.h"

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#else
/* Built without libsystemd: there is no service manager to tell. */
#define sd_notify(unset, state) ((void)0)
#define sd_notifyf(unset, ...) ((void)0)
#endif

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.1.0"
#endif

#define RECONCILE_PERIOD_S 30.0
#define API_TOKEN_MAX 4096

struct daemon {
	struct ev_loop *loop;
	struct options opts;
	struct settings settings;
	struct model *model;
	struct state *state;
	struct vip_source *vips;
	struct store store;
	struct dataplane *dp;
	struct announcer *an;
	struct reconciler *rec;
	struct health_checker *health;
	struct api_ctx api;
	struct api_server *api_srv;
	ev_signal sigterm, sigint, sighup;
	int exit_code; /* what main returns once the loop stops */
};

static void print_config_errors(const char *path, const struct config_error *errs)
{
	for (size_t i = 0; i < errs->n; i++)
		fprintf(stderr, "vipd: %s: %s\n", path, errs->msgs[i]);
}

/* Checks that need the whole picture (flags and file together). Prints each problem; returns how many. */
static int validate_settings(const struct settings *s, struct ipam_range **ranges_out)
{
	struct ipam_range *ranges = NULL;
	int bad = 0;

	if (s->n_ipam_ranges)
		ranges = calloc(s->n_ipam_ranges, sizeof(*ranges));
	for (size_t i = 0; i < s->n_ipam_ranges; i++) {
		char err[256];

		if (ipam_range_parse(s->ipam_ranges[i], &ranges[i], err, sizeof(err))) {
			fprintf(stderr, "vipd: --ipam-range %s: %s\n", s->ipam_ranges[i], err);
			bad++;
			continue;
		}
		for (size_t j = 0; j < i; j++) {
			if (ipam_ranges_overlap(&ranges[i], &ranges[j])) {
				fprintf(stderr, "vipd: --ipam-range %s: overlaps %s\n",
					s->ipam_ranges[i], s->ipam_ranges[j]);
				bad++;
			}
		}
	}
	if (s->arp && s->bgp) {
		fprintf(stderr, "vipd: --arp and --bgp: choose one announcing mode\n");
		bad++;
	}
	if (s->arp && !s->adapter) {
		fprintf(stderr, "vipd: --arp needs --adapter IFACE\n");
		bad++;
	}
	if (s->project && !s->bgp) {
		fprintf(stderr, "vipd: --project needs --bgp: Equinix Metal elastic IPs are announced "
				"through BIRD\n");
		bad++;
	}
	if (s->project && !!s->metro == !!s->facility) {
		fprintf(stderr, "vipd: --project needs exactly one of --metro (preferred) and "
				"--facility\n");
		bad++;
	}
	if (s->project && s->n_ipam_ranges) {
		fprintf(stderr, "vipd: --ipam-range and --project exclude each other: VIPs come from "
				"local ranges or from Equinix Metal elastic IPs\n");
		bad++;
	}
	if (!s->project && (s->metro || s->facility || s->device)) {
		fprintf(stderr, "vipd: --metro, --facility and --device need --project\n");
		bad++;
	}
	if (s->dataplane == DATAPLANE_XDP && !s->adapter) {
		fprintf(stderr, "vipd: --dataplane xdp needs --adapter IFACE (where VIP traffic "
				"arrives)\n");
		bad++;
	}
	if (bad || !ranges_out)
		free(ranges);
	else
		*ranges_out = ranges;
	return bad;
}

/* Loads the file and merges it under the command line. 0, or -EINVAL after printing why. */
static int load_settings(const struct options *o, struct settings *out, struct config *cfg)
{
	struct config_error errs = { 0 };

	settings_init(out);
	memset(cfg, 0, sizeof(*cfg));
	if (o->config_path) {
		if (config_load_file(o->config_path, cfg, &errs)) {
			print_config_errors(o->config_path, &errs);
			config_error_clear(&errs);
			return -EINVAL;
		}
		if (settings_overlay(out, &cfg->settings))
			return -ENOMEM;
	}
	if (settings_overlay(out, &o->cli))
		return -ENOMEM;
	return 0;
}

static int read_token(const char *path, char **out)
{
	char buf[API_TOKEN_MAX + 1];
	FILE *f = fopen(path, "r");
	size_t n;

	*out = NULL;
	if (!f) {
		log_error("msg=\"cannot read API token file\" path=%s err=\"%s\"", path, strerror(errno));
		return -errno;
	}
	n = fread(buf, 1, API_TOKEN_MAX, f);
	fclose(f);
	buf[n] = '\0';
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	if (!n) {
		log_error("msg=\"API token file is empty\" path=%s", path);
		return -EINVAL;
	}
	*out = strdup(buf);
	return *out ? 0 : -ENOMEM;
}

/* The Equinix Metal token: --token-file, else METAL_AUTH_TOKEN; never argv. */
static int metal_token(const struct settings *s, char **out)
{
	const char *env = getenv(METAL_TOKEN_ENV);

	*out = NULL;
	if (s->metal_token_file)
		return read_token(s->metal_token_file, out);
	if (env && env[0]) {
		*out = strdup(env);
		return *out ? 0 : -ENOMEM;
	}
	log_error("msg=\"--project needs the Equinix Metal API token: set the environment variable "
		  METAL_TOKEN_ENV " or give --token-file FILE\"");
	return -ENOKEY;
}

static void on_metal_result(void *arg, const char *owner, int err, const struct ip_addr *addr)
{
	struct daemon *d = arg;

	store_vip_result(&d->store, owner, err, addr);
}

/* Metal's BGP neighbours are in the peer file: BIRD reads its configuration again. */
static void on_metal_peers(void *arg)
{
	struct daemon *d = arg;

	if (d->an && d->settings.bgp)
		bird_announcer_reconfigure(d->an);
}

static void on_metal_fatal(void *arg, int err)
{
	struct daemon *d = arg;

	log_error("msg=\"stopping: Equinix Metal cannot be used as configured (see above)\" "
		  "err=\"%s\"", strerror(-err));
	d->exit_code = 1;
	ev_break(d->loop, EVBREAK_ALL);
}

static int setup_metal(struct daemon *d)
{
	const struct settings *s = &d->settings;
	char *token, *peers;
	struct metal_options mo = {
		.loop = d->loop,
		.api_url = s->metal_api_url,
		.metadata_url = s->metal_metadata_url,
		.project = s->project,
		.metro = s->metro,
		.facility = s->metro ? NULL : s->facility,
		.device = s->device,
		.state_dir = s->state_dir,
		.keep_ips = s->keep_ips,
		.model = d->model,
		.peers_changed = on_metal_peers,
		.fatal = on_metal_fatal,
		.cb_arg = d,
	};
	int r = metal_token(s, &token);

	if (r)
		return r;
	if (asprintf(&peers, "%s/" METAL_PEERS_FILE, s->bird_routes) < 0) {
		free(token);
		return -ENOMEM;
	}
	if (s->facility)
		log_warn("msg=\"--facility: Equinix Metal deprecated facilities in favour of metros; "
			 "prefer --metro\" facility=%s", s->facility);
	mo.token = token;
	mo.peers_path = peers;
	r = metal_new(&mo, &d->vips);
	explicit_bzero(token, strlen(token));
	free(token);
	free(peers);
	if (r)
		return r;
	d->vips->on_result = on_metal_result;
	d->vips->on_result_arg = d;
	return 0;
}

static void request_reconcile(void *arg)
{
	struct daemon *d = arg;

	if (d->rec)
		reconciler_request(d->rec);
}

/* A backend went UP or DOWN (the checker logged why): the data plane and the
 * announcer follow through the reconciler. */
static void on_health_change(void *arg, const char *lb_uuid, const char *backend_uuid,
			     enum backend_health h, const char *reason)
{
	struct daemon *d = arg;
	struct lb *lb = model_find(d->model, lb_uuid);
	struct backend *b = lb ? lb_find_backend(lb, backend_uuid) : NULL;

	(void)reason;
	if (!b || b->health == h)
		return;
	b->health = h;
	reconciler_request(d->rec);
}

static void health_prepare(void *arg, const struct model *m)
{
	struct daemon *d = arg;

	if (health_sync(d->health, m))
		log_warn("msg=\"health checks incomplete: out of memory\"; retrying on the next pass");
}

/* Same JSON in the state view means nothing a user can see changed. */
static bool lb_same(const struct lb *a, const struct lb *b)
{
	cJSON *ja = lb_to_json(a, LB_VIEW_STATE), *jb = lb_to_json(b, LB_VIEW_STATE);
	bool same = ja && jb && cJSON_Compare(ja, jb, true);

	cJSON_Delete(ja);
	cJSON_Delete(jb);
	return same;
}

/*
 * Makes the config-declared load balancers in the model match cfg: new ones
 * created, changed ones updated, ones gone from the file deleted. API-made load
 * balancers are never touched. Takes the lbs out of cfg. Returns the number of
 * failures (each logged).
 */
static bool in_config(const struct config *cfg, const char (*uuids)[UUID_STR_LEN], const char *uuid)
{
	for (size_t i = 0; i < cfg->n_lbs; i++)
		if (strcmp(uuids[i], uuid) == 0)
			return true;
	return false;
}

static int apply_config_lbs(struct daemon *d, struct config *cfg)
{
	char (*uuids)[UUID_STR_LEN] = calloc(cfg->n_lbs + 1, sizeof(*uuids));
	char err[512];
	int failed = 0;

	if (!uuids)
		return 1;
	for (size_t i = 0; i < cfg->n_lbs; i++)
		memcpy(uuids[i], cfg->lbs[i]->uuid, UUID_STR_LEN);
	for (size_t i = 0; i < cfg->n_lbs; i++) {
		struct lb *lb = cfg->lbs[i], *cur = model_find(d->model, lb->uuid);
		int r;

		cfg->lbs[i] = NULL;
		if (cur && cur->origin != LB_ORIGIN_CONFIG) {
			log_error("msg=\"config load balancer clashes with an API-made one\" name=\"%s\" "
				  "uuid=%s", lb->name, lb->uuid);
			lb_free(lb);
			failed++;
			continue;
		}
		if (cur && !ip_addr_is_set(&lb->vip) && cur->vip_from_source) {
			/* The file leaves the address to IPAM: keep the one already handed out. */
			lb->vip = cur->vip;
			lb->vip_from_source = true;
		}
		if (cur && lb_same(cur, lb)) {
			lb_free(lb);
			continue;
		}
		r = cur ? store_update_lb(&d->store, lb, err, sizeof(err))
			: store_create_lb(&d->store, lb, err, sizeof(err));
		if (r) {
			log_error("msg=\"cannot apply config load balancer\" uuid=%s err=\"%s\"",
				  uuids[i], err);
			lb_free(lb);
			failed++;
			continue;
		}
		log_info("msg=\"%s load balancer from config\" uuid=%s", cur ? "updated" : "created",
			 uuids[i]);
	}
	for (size_t i = model_count(d->model); i-- > 0;) {
		struct lb *lb = model_at(d->model, i);
		char uuid[UUID_STR_LEN];

		if (lb->origin != LB_ORIGIN_CONFIG || in_config(cfg, (const char(*)[UUID_STR_LEN])uuids,
								  lb->uuid))
			continue;
		memcpy(uuid, lb->uuid, sizeof(uuid));
		if (store_delete_lb(&d->store, uuid, err, sizeof(err))) {
			log_error("msg=\"cannot delete load balancer gone from config\" uuid=%s err=\"%s\"",
				  uuid, err);
			failed++;
		} else {
			log_info("msg=\"deleted load balancer gone from config\" uuid=%s", uuid);
		}
	}
	free(uuids);
	return failed;
}

static void on_stop(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)revents;
	log_info("msg=\"shutting down\" signal=%d", w->signum);
	sd_notify(0, "STOPPING=1\nSTATUS=withdrawing VIPs and stopping");
	ev_break(loop, EVBREAK_ALL);
}

static void on_reload(struct ev_loop *loop, ev_signal *w, int revents);

/*
 * --dataplane auto: XDP where the adapter runs it natively, else IPVS where the kernel has it,
 * else XDP in generic mode (it runs after the kernel has built an skb: much slower), with a
 * warning. Without an adapter XDP has nowhere to go: IPVS, else no forwarding. A vipd program
 * already on the adapter (a restart) is kept in whichever mode it runs (see xdp.h), as
 * leaving it there under IPVS would put two planes on the same VIPs.
 */
static int setup_auto(struct daemon *d, struct xdp_options *xo, struct ipvs_options *io)
{
	const char *adapter = d->settings.adapter;
	char why[160];
	int xerr = -ENODEV, err;

	if (adapter) {
		xo->mode = XDP_PLANE_NATIVE;
		xerr = xdp_plane_new(xo, &d->dp);
	}
	if (!xerr && xdp_plane_native(d->dp)) {
		log_info("msg=\"data plane chosen\" dataplane=xdp mode=native reason=\"native XDP "
			 "on %s\"",
			 adapter);
		return 0;
	}
	if (!xerr) {
		log_warn("msg=\"data plane chosen\" dataplane=xdp mode=generic reason=\"vipd's XDP "
			 "program is on %s in generic mode already (vipd --xdp-unload lets auto choose "
			 "again); generic XDP is much slower\"",
			 adapter);
		return 0;
	}
	if (!adapter)
		snprintf(why, sizeof(why), "no --adapter for XDP");
	else if (xerr == -EOPNOTSUPP)
		snprintf(why, sizeof(why), "no native XDP on %s", adapter);
	else
		snprintf(why, sizeof(why), "XDP not usable on %s: %s, logged above", adapter,
			 strerror(-xerr));
	io->probing = true;
	err = ipvs_plane_new(io, &d->dp);
	if (!err) {
		log_info("msg=\"data plane chosen\" dataplane=ipvs reason=\"%s\"", why);
		return 0;
	}
	if (err != -EPROTONOSUPPORT)
		return err;
	if (!adapter) {
		log_warn("msg=\"data plane chosen\" dataplane=none reason=\"%s, no IPVS in this "
			 "kernel: forwarding nothing\"",
			 why);
		d->dp = dataplane_none_new();
		return d->dp ? 0 : -ENOMEM;
	}
	/* Generic mode would fail as native did for any reason but the driver's. */
	if (xerr != -EOPNOTSUPP)
		return xerr;
	xo->mode = XDP_PLANE_GENERIC;
	err = xdp_plane_new(xo, &d->dp);
	if (err)
		return err;
	log_warn("msg=\"data plane chosen\" dataplane=xdp mode=generic reason=\"%s, no IPVS in "
		 "this kernel; generic XDP is much slower\"",
		 why);
	return 0;
}

static int setup_planes(struct daemon *d)
{
	enum dataplane_kind k = d->settings.dataplane;
	struct xdp_options xo = { .adapter = d->settings.adapter,
				  .pin_dir = d->settings.bpf_pin_dir };
	struct ipvs_options io = { .state_dir = d->settings.state_dir,
				   .cleanup_on_exit = d->settings.cleanup_on_exit };
	int err;

	if (k == DATAPLANE_AUTO) {
		err = setup_auto(d, &xo, &io);
	} else if (k == DATAPLANE_XDP) {
		err = xdp_plane_new(&xo, &d->dp);
	} else if (k == DATAPLANE_IPVS) {
		err = ipvs_plane_new(&io, &d->dp);
	} else {
		d->dp = dataplane_none_new();
		err = d->dp ? 0 : -ENOMEM;
	}
	if (err)
		return err;
	if (d->settings.arp)
		return arp_announcer_new(d->loop, d->settings.adapter,
					 d->settings.arp_refresh_ms / 1000.0, &d->an);
	if (d->settings.bgp) {
		struct bird_options bo = {
			.socket_path = d->settings.bird_socket,
			.routes_dir = d->settings.bird_routes,
			.graceful_s = d->settings.graceful_shutdown_ms / 1000.0,
			.addr_iface = "lo",
		};

		return bird_announcer_new(d->loop, &bo, &d->an);
	}
	d->an = announcer_none_new();
	return d->an ? 0 : -ENOMEM;
}

static bool same_ranges(const struct settings *a, const struct settings *b)
{
	if (a->n_ipam_ranges != b->n_ipam_ranges)
		return false;
	for (size_t i = 0; i < a->n_ipam_ranges; i++)
		if (strcmp(a->ipam_ranges[i], b->ipam_ranges[i]) != 0)
			return false;
	return true;
}

static bool str_differs(const char *a, const char *b)
{
	return a != b && (!a || !b || strcmp(a, b) != 0);
}

/* The Equinix Metal source is set up once, at start. */
static bool same_metal(const struct settings *a, const struct settings *b)
{
	return !str_differs(a->project, b->project) && !str_differs(a->metro, b->metro) &&
	       !str_differs(a->facility, b->facility) && !str_differs(a->device, b->device) &&
	       !str_differs(a->metal_token_file, b->metal_token_file) &&
	       !str_differs(a->metal_api_url, b->metal_api_url) &&
	       !str_differs(a->metal_metadata_url, b->metal_metadata_url) &&
	       a->keep_ips == b->keep_ips;
}

static void on_reload(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct daemon *d = w->data;
	struct settings next;
	struct config cfg;
	int failed;

	(void)loop;
	(void)revents;
	/* What the source learnt from its cloud is read again whether or not a file is. */
	if (d->vips && d->vips->ops->refresh)
		d->vips->ops->refresh(d->vips);
	if (!d->opts.config_path) {
		log_info("msg=\"SIGHUP: no config file to reload\"");
		return;
	}
	log_info("msg=\"reloading\" config=%s", d->opts.config_path);
	sd_notifyf(0, "RELOADING=1\nSTATUS=reloading %s", d->opts.config_path);
	if (load_settings(&d->opts, &next, &cfg)) {
		log_error("msg=\"reload failed: config rejected; keeping the running configuration\"");
		sd_notify(0, "READY=1\nSTATUS=reload failed: config rejected; running the previous one");
		settings_clear(&next);
		config_clear(&cfg);
		return;
	}
	/* Settings that need a restart are reported, not half-applied. */
	if ((next.api_listen && d->settings.api_listen &&
	     strcmp(next.api_listen, d->settings.api_listen) != 0) ||
	    (next.state_dir && d->settings.state_dir &&
	     strcmp(next.state_dir, d->settings.state_dir) != 0) ||
	    next.dataplane != d->settings.dataplane || next.arp != d->settings.arp ||
	    next.bgp != d->settings.bgp || !same_ranges(&next, &d->settings) ||
	    !same_metal(&next, &d->settings))
		log_warn("msg=\"reload: api_listen, state_dir, dataplane, arp/bgp, ipam_ranges and "
			 "Equinix Metal changes take effect at the next restart\"");
	if (next.drain_timeout_ms != d->settings.drain_timeout_ms) {
		d->settings.drain_timeout_ms = next.drain_timeout_ms;
		d->api.drain_timeout_s = next.drain_timeout_ms / 1000.0;
		log_info("msg=\"drain timeout changed\" drain_timeout_ms=%u", next.drain_timeout_ms);
	}
	if ((d->opts.cli.set & SET_LOG_LEVEL) && (cfg.settings.set & SET_LOG_LEVEL) &&
	    cfg.settings.log_level != next.log_level)
		log_warn("msg=\"reload: log_level in the file is overridden by --log-level\" "
			 "log_level=%s", log_level_name(next.log_level));
	if (next.log_level != d->settings.log_level) {
		log_info("msg=\"log level changed\" from=%s to=%s",
			 log_level_name(d->settings.log_level), log_level_name(next.log_level));
		log_set_level(next.log_level);
		d->settings.log_level = next.log_level;
	}
	failed = apply_config_lbs(d, &cfg);
	log_info("msg=\"reload done\" failed=%d", failed);
	sd_notifyf(0, "READY=1\nSTATUS=reloaded; %d load balancers failed to apply", failed);
	settings_clear(&next);
	config_clear(&cfg);
}

/*
 * Forks into the background. The parent waits on a pipe and exits 0 only once
 * the child reports it is serving, or 1 with the child's failure, so an init
 * script sees real start-up errors.
 */
static int daemonize(int *notify_fd)
{
	int p[2];
	pid_t pid;

	if (pipe(p))
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		char c = 1;

		close(p[1]);
		if (read(p[0], &c, 1) != 1)
			c = 1;
		_exit(c ? 1 : 0);
	}
	close(p[0]);
	setsid();
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0)
		_exit(0);
	if (chdir("/")) {
		/* Nothing relies on the working directory; carry on. */
	}
	umask(022);
	*notify_fd = p[1];
	return 0;
}

/* Where log lines go for the process as it is now (see log_destination). */
static enum log_dest log_dest_now(bool foreground)
{
	return log_destination(isatty(STDERR_FILENO), getenv("JOURNAL_STREAM"),
			       getenv("INVOCATION_ID"), foreground);
}

/* stderr stays where systemd pointed it (the journal); everything else goes to /dev/null. */
static void detach_stdio(void)
{
	int fd = open("/dev/null", O_RDWR);
	bool keep_err = log_destination(false, getenv("JOURNAL_STREAM"), getenv("INVOCATION_ID"),
					false) == LOG_DEST_STDERR;

	if (fd < 0)
		return;
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	if (!keep_err)
		dup2(fd, STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
}

static void daemon_free(struct daemon *d)
{
	if (d->api_srv)
		api_server_stop(d->api_srv);
	reconciler_free(d->rec);
	health_free(d->health);
	if (d->an)
		d->an->ops->free(d->an);
	if (d->dp)
		d->dp->ops->free(d->dp);
	if (d->state)
		state_close(d->state);
	if (d->vips)
		d->vips->ops->free(d->vips);
	model_free(d->model);
	settings_clear(&d->settings);
	options_clear(&d->opts);
}

static int run(struct daemon *d, struct config *cfg, struct ipam_range *ranges)
{
	double start_time = (double)time(NULL);
	char *token = NULL;
	int notify_fd = -1, r;

	log_set_level(d->settings.log_level);
	log_use_syslog(log_dest_now(d->settings.foreground) == LOG_DEST_SYSLOG);
	if (!d->settings.foreground) {
		r = daemonize(&notify_fd);
		if (r) {
			fprintf(stderr, "vipd: cannot daemonize: %s\n", strerror(-r));
			return 1;
		}
	}
	log_info("msg=\"starting\" version=%s api=%s state_dir=%s", PACKAGE_VERSION,
		 d->settings.api_listen, d->settings.state_dir);

	d->loop = ev_default_loop(EVFLAG_AUTO);
	d->model = model_new();
	if (!d->model)
		return 1;
	r = state_open(d->settings.state_dir, &d->state);
	if (r)
		return 1;
	r = state_load(d->state, d->model);
	if (r)
		return 1;
	if (d->settings.project) {
		if (setup_metal(d))
			return 1;
	} else if (d->settings.n_ipam_ranges) {
		d->vips = ipam_new(ranges, d->settings.n_ipam_ranges);
		if (!d->vips)
			return 1;
	}
	d->store.model = d->model;
	d->store.vips = d->vips;
	d->store.state = d->state;
	d->store.changed = request_reconcile;
	d->store.changed_arg = d;
	if (store_restore(&d->store))
		log_warn("msg=\"some restored load balancers could not get their addresses\"");
	if (apply_config_lbs(d, cfg))
		log_warn("msg=\"some config load balancers were not applied\"");
	log_info("msg=\"state loaded\" loadbalancers=%zu", model_count(d->model));

	if (setup_planes(d))
		return 1;
	d->rec = reconciler_new(d->loop, d->model, d->dp, d->an, RECONCILE_PERIOD_S);
	d->health = health_new(d->loop, on_health_change, d);
	if (!d->rec || !d->health)
		return 1;
	reconciler_set_prepare(d->rec, health_prepare, d);
	reconciler_run(d->rec);

	if (d->settings.api_token_file && read_token(d->settings.api_token_file, &token))
		return 1;
	d->api.store = &d->store;
	d->api.dataplane = d->dp;
	d->api.health = d->health;
	d->api.drain_timeout_s = d->settings.drain_timeout_ms / 1000.0;
	d->api.started = monotonic_s();
	d->api.version = PACKAGE_VERSION;
	d->api.reconciler = d->rec;
	d->api.announcer = d->an;
	d->api.start_time = start_time;
	r = api_server_start(d->loop, d->settings.api_listen, token, &d->api, &d->api_srv);
	free(token);
	if (r)
		return 1;

	ev_signal_init(&d->sigterm, on_stop, SIGTERM);
	ev_signal_init(&d->sigint, on_stop, SIGINT);
	ev_signal_init(&d->sighup, on_reload, SIGHUP);
	d->sighup.data = d;
	ev_signal_start(d->loop, &d->sigterm);
	ev_signal_start(d->loop, &d->sigint);
	ev_signal_start(d->loop, &d->sighup);
	signal(SIGPIPE, SIG_IGN);

	log_info("msg=\"ready\" api=%s dataplane=%s announcer=%s", d->settings.api_listen,
		 d->dp->ops->name, d->an->ops->name);
	/* The API listens and the first reconcile has run (above): systemd may start what
	 * is ordered after vipd. */
	sd_notifyf(0, "READY=1\nSTATUS=serving api=%s dataplane=%s announcer=%s",
		   d->settings.api_listen, d->dp->ops->name, d->an->ops->name);
	if (notify_fd >= 0) {
		char ok = 0;

		if (write(notify_fd, &ok, 1) != 1)
			log_warn("msg=\"could not tell the parent we are ready\"");
		close(notify_fd);
		detach_stdio();
		log_use_syslog(log_dest_now(false) == LOG_DEST_SYSLOG);
	}
	ev_run(d->loop, 0);

	d->an->ops->withdraw_all(d->an);
	if (d->dp->ops->cleanup)
		d->dp->ops->cleanup(d->dp);
	if (state_compact(d->state, d->model))
		log_warn("msg=\"could not compact the state on exit; the journal keeps everything\"");
	log_info("msg=\"stopped\"");
	return d->exit_code;
}

int main(int argc, char **argv)
{
	struct daemon d;
	struct config cfg;
	struct ipam_range *ranges = NULL;
	char err[512];
	int rc;

	memset(&d, 0, sizeof(d));
	if (options_parse(argc, argv, &d.opts, err, sizeof(err))) {
		fprintf(stderr, "vipd: %s\nTry 'vipd --help' for more information.\n", err);
		return 2;
	}
	switch (d.opts.action) {
	case OPT_HELP:
		fputs(options_usage(), stdout);
		options_clear(&d.opts);
		return 0;
	case OPT_VERSION:
		printf("vipd %s\n", PACKAGE_VERSION);
		options_clear(&d.opts);
		return 0;
	default:
		break;
	}
	if (load_settings(&d.opts, &d.settings, &cfg) ||
	    validate_settings(&d.settings, d.opts.action == OPT_RUN ? &ranges : NULL)) {
		config_clear(&cfg);
		daemon_free(&d);
		return 1;
	}
	if (d.opts.action == OPT_XDP_UNLOAD) {
		struct xdp_options xo = { .pin_dir = d.settings.bpf_pin_dir };

		log_set_level(d.settings.log_level);
		rc = xdp_plane_remove(&xo) ? 1 : 0;
		config_clear(&cfg);
		daemon_free(&d);
		return rc;
	}
	if (d.opts.action == OPT_CHECK_CONFIG) {
		printf("vipd: configuration OK (%zu load balancers)\n", cfg.n_lbs);
		config_clear(&cfg);
		daemon_free(&d);
		return 0;
	}
	rc = run(&d, &cfg, ranges);
	free(ranges);
	config_clear(&cfg);
	daemon_free(&d);
	return rc;
}
