#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lb_json.h"

enum {
	OPT_ARP = 256, OPT_BGP, OPT_ADAPTER, OPT_IPAM_RANGE, OPT_PROJECT, OPT_FACILITY, OPT_METRO,
	OPT_API_LISTEN, OPT_API_TOKEN_FILE, OPT_BIRD_SOCKET, OPT_DATAPLANE, OPT_STATE_DIR,
	OPT_BPF_PIN_DIR, OPT_UNLOAD, OPT_CHECK, OPT_LOG_LEVEL, OPT_BIRD_ROUTES, OPT_ARP_REFRESH,
	OPT_GRACEFUL,
	OPT_DRAIN_TIMEOUT,
	OPT_KEEP_ON_EXIT,
	OPT_DEVICE, OPT_TOKEN_FILE, OPT_METAL_API_URL, OPT_METAL_METADATA_URL, OPT_KEEP_IPS,
	OPT_TOKEN,
};

static const struct option long_opts[] = {
	{ "arp", no_argument, NULL, OPT_ARP },
	{ "bgp", no_argument, NULL, OPT_BGP },
	{ "adapter", required_argument, NULL, OPT_ADAPTER },
	{ "ipam-range", required_argument, NULL, OPT_IPAM_RANGE },
	{ "ipamRange", required_argument, NULL, OPT_IPAM_RANGE }, /* slb's spelling */
	{ "project", required_argument, NULL, OPT_PROJECT },
	{ "facility", required_argument, NULL, OPT_FACILITY },
	{ "metro", required_argument, NULL, OPT_METRO },
	{ "device", required_argument, NULL, OPT_DEVICE },
	{ "token-file", required_argument, NULL, OPT_TOKEN_FILE },
	/* Spelt out so that it is refused, not taken as an abbreviation of --token-file. */
	{ "token", required_argument, NULL, OPT_TOKEN },
	{ "metal-api-url", required_argument, NULL, OPT_METAL_API_URL },
	{ "metal-metadata-url", required_argument, NULL, OPT_METAL_METADATA_URL },
	{ "keep-ips", no_argument, NULL, OPT_KEEP_IPS },
	{ "api-listen", required_argument, NULL, OPT_API_LISTEN },
	{ "api-token-file", required_argument, NULL, OPT_API_TOKEN_FILE },
	{ "bird-socket", required_argument, NULL, OPT_BIRD_SOCKET },
	{ "bird-routes", required_argument, NULL, OPT_BIRD_ROUTES },
	{ "arp-refresh", required_argument, NULL, OPT_ARP_REFRESH },
	{ "graceful-shutdown", required_argument, NULL, OPT_GRACEFUL },
	{ "drain-timeout", required_argument, NULL, OPT_DRAIN_TIMEOUT },
	{ "keep-on-exit", no_argument, NULL, OPT_KEEP_ON_EXIT },
	{ "dataplane", required_argument, NULL, OPT_DATAPLANE },
	{ "bpf-pin-dir", required_argument, NULL, OPT_BPF_PIN_DIR },
	{ "xdp-unload", no_argument, NULL, OPT_UNLOAD },
	{ "config", required_argument, NULL, 'c' },
	{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
	{ "check-config", no_argument, NULL, 't' },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "foreground", no_argument, NULL, 'f' },
	{ "version", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static const char usage[] =
	"Usage: vipd [OPTION]...\n"
	"Give services virtual IPs: allocate, announce, forward and health-check them.\n"
	"\n"
	"Announcing (neither: the operator routes VIPs to this node):\n"
	"      --arp                   announce VIPs by gratuitous ARP / NDP on --adapter\n"
	"      --bgp                   announce VIPs as routes through BIRD\n"
	"      --adapter IFACE         interface VIP traffic arrives on\n"
	"      --arp-refresh DURATION  re-announce every VIP this often in L2 mode (default 3s;\n"
	"                              0: only when announced)\n"
	"      --bird-socket PATH      BIRD control socket (default " VIPD_DEFAULT_BIRD_SOCKET ")\n"
	"      --bird-routes DIR       where the route files BIRD includes are written\n"
	"                              (default " VIPD_DEFAULT_BIRD_ROUTES ")\n"
	"      --graceful-shutdown DURATION\n"
	"                              BGP: on exit, announce with GRACEFUL_SHUTDOWN this long\n"
	"                              before withdrawing (default 0)\n"
	"\n"
	"Addresses:\n"
	"      --ipam-range RANGE      local VIP range: A-B, CIDR or one address; IPv4 or IPv6;\n"
	"                              repeatable (slb's --ipamRange is accepted too)\n"
	"      --project ID            Equinix Metal project for elastic IPs (needs --bgp and one\n"
	"                              of --metro, --facility; excludes --ipam-range)\n"
	"      --metro CODE            Equinix Metal metro for elastic IPs\n"
	"      --facility CODE         Equinix Metal facility (deprecated by Metal; use --metro)\n"
	"      --device ID             this host's Metal device (default: the metadata service,\n"
	"                              then the project's device named like this host)\n"
	"      --token-file FILE       read the Metal API token from FILE (default: the\n"
	"                              environment variable METAL_AUTH_TOKEN)\n"
	"      --metal-api-url URL     Metal API base (default " VIPD_DEFAULT_METAL_API_URL ")\n"
	"      --metal-metadata-url URL\n"
	"                              Metal metadata document\n"
	"                              (default " VIPD_DEFAULT_METAL_METADATA_URL ")\n"
	"      --keep-ips              keep a deleted load balancer's elastic IP reserved\n"
	"\n"
	"Forwarding:\n"
	"      --dataplane KIND        auto, xdp, ipvs or none (default auto)\n"
	"      --bpf-pin-dir DIR       where the XDP program and maps are pinned\n"
	"                              (default " VIPD_DEFAULT_BPF_PIN_DIR ")\n"
	"      --xdp-unload            detach vipd's XDP program from every interface, remove\n"
	"                              its pins (flows are forgotten) and exit\n"
	"      --keep-on-exit          IPVS: leave vipd's services and nftables table in place\n"
	"                              on exit (default: remove exactly what vipd made)\n"
	"      --drain-timeout DURATION\n"
	"                              a drained backend reports \"drained\" once its connections\n"
	"                              end, or after this long at most (default 5m)\n"
	"\n"
	"Operation:\n"
	"  -c, --config FILE           JSON config file (see vipd.json(5))\n"
	"  -t, --check-config          validate the configuration and exit 0 (valid) or 1\n"
	"      --state-dir DIR         where API-made objects persist (default " VIPD_DEFAULT_STATE_DIR ")\n"
	"      --api-listen ADDR:PORT  REST API address (default " VIPD_DEFAULT_API_LISTEN ")\n"
	"      --api-token-file FILE   require this bearer token on API calls\n"
	"      --log-level LEVEL       error, warn, info or debug (default info)\n"
	"  -f, --foreground            stay in the foreground, log to stderr\n"
	"  -v, --version               print the version and exit\n"
	"  -h, --help                  print this help and exit\n"
	"\n"
	"Command-line flags override the config file. The Equinix Metal token comes from\n"
	"the environment (METAL_AUTH_TOKEN) or --token-file, never from the command line.\n"
	"See vipd(8), vipctl(8) and vipd.json(5).\n";

const char *options_usage(void)
{
	return usage;
}

static int set_str(char **dst, const char *v)
{
	char *s = strdup(v);

	if (!s)
		return -ENOMEM;
	free(*dst);
	*dst = s;
	return 0;
}

void options_clear(struct options *o)
{
	settings_clear(&o->cli);
	free(o->config_path);
	memset(o, 0, sizeof(*o));
}

/* The flags that take a duration. */
static int duration_option(struct settings *s, int c, const char *arg, char *err, size_t errlen)
{
	const char *name = "drain-timeout";
	uint32_t *dst = &s->drain_timeout_ms, bit = SET_DRAIN_TIMEOUT;

	if (c == OPT_ARP_REFRESH) {
		name = "arp-refresh";
		dst = &s->arp_refresh_ms;
		bit = SET_ARP_REFRESH;
	} else if (c == OPT_GRACEFUL) {
		name = "graceful-shutdown";
		dst = &s->graceful_shutdown_ms;
		bit = SET_GRACEFUL;
	}
	if (duration_parse_ms(arg, dst)) {
		snprintf(err, errlen, "--%s: expected a duration such as 3s or 500ms, got \"%s\"",
			 name, arg);
		return -EINVAL;
	}
	s->set |= bit;
	return 0;
}

static int parse_one(struct options *o, int c, const char *arg, char *err, size_t errlen)
{
	struct settings *s = &o->cli;

	switch (c) {
	case OPT_ARP:
		s->arp = true;
		s->set |= SET_ARP;
		return 0;
	case OPT_BGP:
		s->bgp = true;
		s->set |= SET_BGP;
		return 0;
	case OPT_ADAPTER:
		s->set |= SET_ADAPTER;
		return set_str(&s->adapter, arg);
	case OPT_IPAM_RANGE:
		s->set |= SET_IPAM_RANGES;
		return settings_add_ipam_range(s, arg);
	case OPT_PROJECT:
		s->set |= SET_PROJECT;
		return set_str(&s->project, arg);
	case OPT_FACILITY:
		s->set |= SET_FACILITY;
		return set_str(&s->facility, arg);
	case OPT_METRO:
		s->set |= SET_METRO;
		return set_str(&s->metro, arg);
	case OPT_DEVICE:
		s->set |= SET_DEVICE;
		return set_str(&s->device, arg);
	case OPT_TOKEN_FILE:
		s->set |= SET_METAL_TOKEN_FILE;
		return set_str(&s->metal_token_file, arg);
	case OPT_TOKEN:
		snprintf(err, errlen, "--token: secrets are never taken from the command line; put "
			 "the Equinix Metal token in METAL_AUTH_TOKEN or a file named by --token-file");
		return -EINVAL;
	case OPT_METAL_API_URL:
	case OPT_METAL_METADATA_URL:
		if (strncmp(arg, "http://", 7) != 0 && strncmp(arg, "https://", 8) != 0) {
			snprintf(err, errlen, "--%s: expected an http:// or https:// URL, got \"%s\"",
				 c == OPT_METAL_API_URL ? "metal-api-url" : "metal-metadata-url", arg);
			return -EINVAL;
		}
		if (c == OPT_METAL_API_URL) {
			s->set |= SET_METAL_API_URL;
			return set_str(&s->metal_api_url, arg);
		}
		s->set |= SET_METAL_METADATA_URL;
		return set_str(&s->metal_metadata_url, arg);
	case OPT_KEEP_IPS:
		s->keep_ips = true;
		s->set |= SET_KEEP_IPS;
		return 0;
	case OPT_API_LISTEN: {
		char host[256];
		uint16_t port;

		if (listen_addr_parse(arg, host, sizeof(host), &port)) {
			snprintf(err, errlen, "--api-listen: expected HOST:PORT or [V6]:PORT, got \"%s\"",
				 arg);
			return -EINVAL;
		}
		s->set |= SET_API_LISTEN;
		return set_str(&s->api_listen, arg);
	}
	case OPT_API_TOKEN_FILE:
		s->set |= SET_API_TOKEN_FILE;
		return set_str(&s->api_token_file, arg);
	case OPT_BPF_PIN_DIR:
		s->set |= SET_BPF_PIN_DIR;
		return set_str(&s->bpf_pin_dir, arg);
	case OPT_BIRD_ROUTES:
		s->set |= SET_BIRD_ROUTES;
		return set_str(&s->bird_routes, arg);
	case OPT_KEEP_ON_EXIT:
		s->cleanup_on_exit = false;
		s->set |= SET_CLEANUP;
		return 0;
	case OPT_ARP_REFRESH:
	case OPT_GRACEFUL:
	case OPT_DRAIN_TIMEOUT:
		return duration_option(s, c, arg, err, errlen);
	case OPT_BIRD_SOCKET:
		s->set |= SET_BIRD_SOCKET;
		return set_str(&s->bird_socket, arg);
	case OPT_DATAPLANE:
		if (dataplane_kind_parse(arg, &s->dataplane)) {
			snprintf(err, errlen, "--dataplane: expected auto, xdp, ipvs or none, got \"%s\"",
				 arg);
			return -EINVAL;
		}
		s->set |= SET_DATAPLANE;
		return 0;
	case OPT_STATE_DIR:
		s->set |= SET_STATE_DIR;
		return set_str(&s->state_dir, arg);
	case OPT_LOG_LEVEL:
		if (log_level_parse(arg, &s->log_level)) {
			snprintf(err, errlen,
				 "--log-level: expected error, warn, info or debug, got \"%s\"", arg);
			return -EINVAL;
		}
		s->set |= SET_LOG_LEVEL;
		return 0;
	case 'c':
		return set_str(&o->config_path, arg);
	case 't':
		o->action = OPT_CHECK_CONFIG;
		return 0;
	case OPT_UNLOAD:
		o->action = OPT_XDP_UNLOAD;
		return 0;
	case 'f':
		s->foreground = true;
		s->set |= SET_FOREGROUND;
		return 0;
	case 'v':
		if (o->action == OPT_RUN)
			o->action = OPT_VERSION;
		return 0;
	case 'h':
		o->action = OPT_HELP;
		return 0;
	default:
		return -EINVAL;
	}
}

int options_parse(int argc, char **argv, struct options *o, char *err, size_t errlen)
{
	int c, r;

	memset(o, 0, sizeof(*o));
	settings_init(&o->cli);
	o->action = OPT_RUN;
	err[0] = '\0';
	optind = 0; /* full reset, so tests may call this repeatedly */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:tfvh", long_opts, NULL)) != -1) {
		if (c == '?') {
			if (optopt)
				snprintf(err, errlen, "unknown option -%c", optopt);
			else
				snprintf(err, errlen, "unknown option %s", argv[optind - 1]);
			goto fail;
		}
		if (c == ':') {
			snprintf(err, errlen, "option %s needs a value", argv[optind - 1]);
			goto fail;
		}
		r = parse_one(o, c, optarg, err, errlen);
		if (r) {
			if (!err[0])
				snprintf(err, errlen, "out of memory");
			goto fail;
		}
	}
	if (optind < argc) {
		snprintf(err, errlen, "unexpected argument \"%s\"", argv[optind]);
		goto fail;
	}
	return 0;
fail:
	options_clear(o);
	return -EINVAL;
}
