/*
 * CPU cost of the health checker: N backends probed over TCP at an interval, for a fixed
 * time, against a listener that accepts and closes.
 *
 *   bench_health [-c ADDR:PORT] [-w LABEL=PID[,PID...]]... [backends=10000]
 *                [interval_ms=1000] [seconds=8]
 *   bench_health -l ADDR          (listener only: prints "listening PORT", then serves)
 *
 * Without -c the listener is a child on 127.0.0.1. There the kernel runs both ends of
 * every handshake (the listener's SYN, ACK and RST handling included) inside the
 * prober's own syscalls, so the prober is charged for the backend's work too. With -c
 * the listener is wherever ADDR is (tests/bench/health_cpu.py puts it in another network
 * namespace behind a veth pair with threaded NAPI), and -w names the threads (NAPI
 * kthreads, the listener) whose CPU is reported beside the prober's own, so none of the
 * work is hidden.
 *
 * Prints, for the same run: the checker's own CPU (getrusage), two baselines of bare
 * syscalls at the same rate with the same packets on the wire (fresh sockets as a naive
 * prober would use, and pooled sockets as the checker does), and the watched threads'
 * CPU (from /proc/PID/schedstat) in each window. Never asserts.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <ev.h>

#include "health/health.h"
#include "log.h"
#include "model.h"

#define MAX_WATCH 8
#define MAX_WATCH_PIDS 16
#define LISTENER_MAX_S 300 /* a listener outlives no run, even if its parent is killed */
#define PACE_S 1.0         /* length of each paced baseline */
#define BATCH_MAX 1024     /* sockets opened in one millisecond of the paced baseline */
#define BASELINE_LAG_MS 3  /* and how long they stay connected */

struct watch {
	const char *label;
	pid_t pids[MAX_WATCH_PIDS];
	int n;
};

static struct watch watches[MAX_WATCH];
static int n_watches;

/* What a measured window starts or ends with. */
struct snap {
	double wall;
	double cpu;                       /* this process, getrusage */
	long csw;                         /* and its context switches */
	double watch_s[MAX_WATCH];        /* on-CPU time of each watch's threads */
	unsigned long long watch_runs[MAX_WATCH]; /* and how often they were scheduled in */
};

struct window {
	double wall, cpu;
	long csw;
	double watch_s[MAX_WATCH];
	unsigned long long watch_runs[MAX_WATCH];
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A thread's on-CPU time in seconds and times it was scheduled in (schedstat). */
static int thread_cpu(pid_t pid, double *secs, unsigned long long *runs)
{
	char path[64];
	unsigned long long ns, wait;
	FILE *f;
	int n;

	snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	n = fscanf(f, "%llu %llu %llu", &ns, &wait, runs);
	fclose(f);
	if (n != 3)
		return -EINVAL;
	*secs = ns / 1e9;
	return 0;
}

static void snap_take(struct snap *s)
{
	struct rusage ru;

	for (int i = 0; i < n_watches; i++) {
		s->watch_s[i] = 0;
		s->watch_runs[i] = 0;
		for (int j = 0; j < watches[i].n; j++) {
			unsigned long long runs = 0;
			double c = 0;

			if (thread_cpu(watches[i].pids[j], &c, &runs) == 0) {
				s->watch_s[i] += c;
				s->watch_runs[i] += runs;
			}
		}
	}
	getrusage(RUSAGE_SELF, &ru);
	s->cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
		 ru.ru_stime.tv_usec / 1e6;
	s->csw = ru.ru_nvcsw + ru.ru_nivcsw;
	s->wall = now_s();
}

static void window_of(const struct snap *a, const struct snap *b, struct window *w)
{
	w->wall = b->wall - a->wall;
	w->cpu = b->cpu - a->cpu;
	w->csw = b->csw - a->csw;
	for (int i = 0; i < n_watches; i++) {
		w->watch_s[i] = b->watch_s[i] - a->watch_s[i];
		w->watch_runs[i] = b->watch_runs[i] - a->watch_runs[i];
	}
}

/*
 * A window's figures, in % of one core: this process's own (getrusage's total, exact;
 * its user/sys split is sampled at ticks, which paced work can miss, so it is not
 * shown), then the watched threads' with how often they were scheduled in per probe
 * (each wake-up costs the waker too).
 */
static void print_window(const char *prefix, const struct window *w, double probes)
{
	printf("%scpu_pct %.1f (own process, getrusage)\n", prefix, 100.0 * w->cpu / w->wall);
	printf("%sus_per_probe %.2f (%.2f context switches per probe)\n", prefix,
	       w->cpu * 1e6 / probes, w->csw / probes);
	for (int i = 0; i < n_watches; i++)
		printf("%s%s_cpu_pct %.1f (%.2f runs per probe)\n", prefix, watches[i].label,
		       100.0 * w->watch_s[i] / w->wall, w->watch_runs[i] / probes);
}

static int parse_watch(char *arg)
{
	struct watch *w;
	char *eq = strchr(arg, '='), *p, *end;

	if (!eq || eq == arg || n_watches == MAX_WATCH)
		return -EINVAL;
	w = &watches[n_watches];
	*eq = '\0';
	w->label = arg;
	for (p = eq + 1; *p && w->n < MAX_WATCH_PIDS; p = *end ? end + 1 : end) {
		long pid = strtol(p, &end, 10);

		if (end == p || pid <= 0 || (*end && *end != ','))
			return -EINVAL;
		w->pids[w->n++] = (pid_t)pid;
	}
	if (!w->n)
		return -EINVAL;
	n_watches++;
	return 0;
}

static int parse_addr_port(const char *s, struct sockaddr_in *sa)
{
	char host[INET_ADDRSTRLEN];
	const char *colon = strrchr(s, ':');
	long port;

	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	port = strtol(colon + 1, NULL, 10);
	if (inet_pton(AF_INET, host, &sa->sin_addr) != 1 || port <= 0 || port > 65535)
		return -EINVAL;
	sa->sin_port = htons((uint16_t)port);
	return 0;
}

/* Binds a listener on sa (port 0: any), filling in the port. */
static int listener_open(struct sockaddr_in *sa)
{
	socklen_t salen = sizeof(*sa);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)sa, sizeof(*sa)) < 0 || listen(fd, 4096) < 0 ||
	    getsockname(fd, (struct sockaddr *)sa, &salen) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The backend side: accept and close, until killed. */
static void listener_serve(int lfd)
{
	for (;;) {
		int c = accept(lfd, NULL, NULL);

		if (c >= 0)
			close(c);
		else if (errno != EINTR && errno != ECONNABORTED)
			_exit(1);
	}
}

static int listen_main(const char *addr)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int lfd;

	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
		fprintf(stderr, "bad listen address %s\n", addr);
		return 2;
	}
	lfd = listener_open(&sa);
	if (lfd < 0) {
		perror("listener");
		return 1;
	}
	alarm(LISTENER_MAX_S);
	printf("listening %u\n", ntohs(sa.sin_port));
	fflush(stdout);
	listener_serve(lfd);
	return 0;
}

static void break_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(loop, EVBREAK_ALL);
}

static void run_for(struct ev_loop *loop, double secs)
{
	ev_timer t;

	/* The loop's clock is stale after a long sync or baseline. */
	ev_now_update(loop);
	ev_timer_init(&t, break_cb, secs, 0.);
	ev_timer_start(loop, &t);
	ev_run(loop, 0);
	ev_timer_stop(loop, &t);
}

/* Totals over all backends; with `why`, prints the reasons of the last failed probes. */
static void sums(struct health_checker *hc, struct model *m, uint64_t *ok, uint64_t *fail,
		 size_t *up, bool why)
{
	char reasons[8][HEALTH_REASON_MAX];
	size_t counts[8] = { 0 }, n_reasons = 0;

	*ok = *fail = 0;
	*up = 0;
	for (size_t i = 0; i < model_count(m); i++) {
		struct lb *lb = model_at(m, i);

		for (size_t j = 0; j < lb->n_backends; j++) {
			struct health_status st;

			if (health_status(hc, lb->uuid, lb->backends[j].uuid, &st))
				continue;
			*ok += st.n_ok;
			*fail += st.n_fail;
			*up += st.state == BACKEND_HEALTH_UP;
			if (!why || st.fail_run == 0)
				continue;
			for (size_t k = 0; k <= n_reasons && k < 8; k++) {
				if (k == n_reasons) {
					snprintf(reasons[k], sizeof(reasons[k]), "%s", st.reason);
					n_reasons++;
				}
				if (!strcmp(reasons[k], st.reason)) {
					counts[k]++;
					break;
				}
			}
		}
	}
	for (size_t k = 0; k < n_reasons; k++)
		printf("# %zu backends failing, last reason \"%s\"\n", counts[k], reasons[k]);
}

static int bare_socket(const struct sockaddr_in *sa)
{
	struct linger lg = { 1, 0 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	return fd;
}

/*
 * The floor of a probe on loopback: socket, connect, close in a tight loop. Off
 * loopback the close would come before the SYN-ACK, so it is not measured there.
 */
static double baseline_tight_us(const struct sockaddr_in *sa, int n)
{
	struct snap a, b;
	struct window w;

	snap_take(&a);
	for (int i = 0; i < n; i++) {
		int fd = bare_socket(sa);

		if (fd < 0)
			break;
		close(fd);
	}
	snap_take(&b);
	window_of(&a, &b, &w);
	return w.cpu * 1e6 / n;
}

/* A floor measured in the same run: bare syscalls at the checker's rate. */
struct baseline {
	const char *name;
	const char *what;
	bool reuse;                     /* pooled sockets, as the checker's TCP probes */
	long made, sampled, connected;
	struct window w;
};

/*
 * The floor of a probe at the checker's rate, with the same packets on the wire: every
 * millisecond a batch of sockets is connected, and the batch of BASELINE_LAG_MS before,
 * whose handshakes have completed by then, is aborted with a reset (closed, or with
 * `reuse` disconnected and kept for a later batch). No event loop, no timers: what is
 * left over in the checker's figure is the checker's own. A sample of the sockets is
 * checked to be connected before the reset.
 */
static void baseline_run(struct baseline *bl, const struct sockaddr_in *sa, double per_s,
			 double secs)
{
	static const struct sockaddr unspec = { .sa_family = AF_UNSPEC };
	static int batch[BASELINE_LAG_MS + 1][BATCH_MAX], pool[(BASELINE_LAG_MS + 1) * BATCH_MAX];
	int nb[BASELINE_LAG_MS + 1] = { 0 }, n_pool = 0;
	long ticks = (long)(secs * 1000);
	double owed = 0;
	struct timespec next;
	struct snap a, b;

	bl->made = bl->sampled = bl->connected = 0;
	clock_gettime(CLOCK_MONOTONIC, &next);
	snap_take(&a);
	for (long k = 0; k < ticks + BASELINE_LAG_MS; k++) {
		int cur = (int)(k % (BASELINE_LAG_MS + 1));

		/* The slot about to be refilled holds the batch of BASELINE_LAG_MS ago. */
		for (int i = 0; i < nb[cur]; i++) {
			int fd = batch[cur][i];

			if ((bl->made + i) % 64 == 0) {
				struct tcp_info ti;
				socklen_t len = sizeof(ti);

				if (!getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len)) {
					bl->sampled++;
					/* The listener's FIN may be in already. */
					bl->connected += ti.tcpi_state == TCP_ESTABLISHED ||
							 ti.tcpi_state == TCP_CLOSE_WAIT;
				}
			}
			if (bl->reuse && !connect(fd, &unspec, sizeof(unspec)))
				pool[n_pool++] = fd;
			else
				close(fd);
		}
		nb[cur] = 0;
		for (owed += k < ticks ? per_s / 1000 : 0; owed >= 1 && nb[cur] < BATCH_MAX; owed--) {
			int fd;

			if (n_pool) {
				fd = pool[--n_pool];
				connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
			} else {
				fd = bare_socket(sa);
				if (fd < 0)
					break;
			}
			batch[cur][nb[cur]++] = fd;
			bl->made++;
		}
		next.tv_nsec += 1000000;
		if (next.tv_nsec >= 1000000000) {
			next.tv_sec++;
			next.tv_nsec -= 1000000000;
		}
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
			;
	}
	snap_take(&b);
	window_of(&a, &b, &bl->w);
	for (int i = 0; i <= BASELINE_LAG_MS; i++)
		while (nb[i])
			close(batch[i][--nb[i]]);
	while (n_pool)
		close(pool[--n_pool]);
}

static void baseline_print(const struct baseline *bl)
{
	char prefix[64];

	printf("%s_probes %ld (%.0f/s for %.1f s: %s; %ld of %ld sampled connected)\n", bl->name,
	       bl->made, bl->made / bl->w.wall, bl->w.wall, bl->what, bl->connected, bl->sampled);
	snprintf(prefix, sizeof(prefix), "%s_", bl->name);
	print_window(prefix, &bl->w, (double)bl->made + 1);
}

static struct model *bench_model(int n, int interval, const struct sockaddr_in *sa)
{
	struct model *m = model_new();
	char ip[INET_ADDRSTRLEN];

	if (!m)
		return NULL;
	inet_ntop(AF_INET, &sa->sin_addr, ip, sizeof(ip));
	for (int i = 0; i < n;) {
		struct lb *lb = lb_new();

		if (!lb)
			break;
		lb->hc.type = HC_TCP;
		lb->hc.interval_ms = (uint32_t)interval;
		lb->hc.timeout_ms = (uint32_t)(interval / 2 ? interval / 2 : 1);
		for (int j = 0; j < 1000 && i < n; j++, i++) {
			struct backend b;

			backend_init(&b);
			ip_addr_parse(ip, &b.ip);
			b.port = ntohs(sa->sin_port);
			lb_add_backend(lb, &b);
		}
		model_add(m, lb);
	}
	return m;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_health [-c ADDR:PORT] [-w LABEL=PID[,PID...]]... "
			"[backends<=100000] [interval_ms] [seconds<=120]\n"
			"       bench_health -l ADDR\n");
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	const char *remote = NULL;
	int n, interval, opt, status;
	double secs, per_s, tight = 0;
	struct baseline floors[] = {
		{ .name = "baseline_fresh", .what = "socket+SO_LINGER+connect, close 3 ms later" },
		{ .name = "baseline_reuse", .reuse = true,
		  .what = "connect, connect(AF_UNSPEC) 3 ms later, sockets reused" },
	};
	pid_t child = -1;
	struct ev_loop *loop;
	struct model *m;
	struct health_checker *hc;
	uint64_t ok0, fail0, ok1, fail1, probes;
	size_t up;
	struct snap a, b;
	struct window wc;

	while ((opt = getopt(argc, argv, "c:l:w:")) != -1) {
		switch (opt) {
		case 'c':
			remote = optarg;
			break;
		case 'l':
			return listen_main(optarg);
		case 'w':
			if (parse_watch(optarg) < 0) {
				usage();
				return 2;
			}
			break;
		default:
			usage();
			return 2;
		}
	}
	n = optind < argc ? atoi(argv[optind]) : 10000;
	interval = optind + 1 < argc ? atoi(argv[optind + 1]) : 1000;
	secs = optind + 2 < argc ? atof(argv[optind + 2]) : 8;
	if (n <= 0 || n > 100000 || interval <= 0 || secs <= 0 || secs > 120 ||
	    (remote && parse_addr_port(remote, &sa) < 0)) {
		usage();
		return 2;
	}
	per_s = n * 1000.0 / interval;
	if (per_s / 1000 >= BATCH_MAX) {
		fprintf(stderr, "more than %d probes per millisecond\n", BATCH_MAX);
		return 2;
	}
	if (!remote) {
		int lfd = listener_open(&sa);

		if (lfd < 0) {
			perror("listener");
			return 1;
		}
		child = fork();
		if (child < 0) {
			perror("fork");
			return 1;
		}
		if (child == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			listener_serve(lfd);
		}
		close(lfd);
		if (n_watches < MAX_WATCH) {
			watches[n_watches].label = "listener";
			watches[n_watches].pids[0] = child;
			watches[n_watches++].n = 1;
		}
	}
	printf("# mode %s: listener %s:%u\n", remote ? "remote" : "loopback",
	       inet_ntoa(sa.sin_addr), ntohs(sa.sin_port));

	if (!remote)
		tight = baseline_tight_us(&sa, 20000);
	for (size_t i = 0; i < sizeof(floors) / sizeof(floors[0]); i++)
		baseline_run(&floors[i], &sa, per_s, PACE_S);

	log_set_level(LOG_LVL_WARN);
	loop = ev_loop_new(EVFLAG_AUTO);
	m = bench_model(n, interval, &sa);
	hc = health_new(loop, NULL, NULL);
	a.wall = now_s();
	if (!loop || !m || !hc || health_sync(hc, m) < 0) {
		fprintf(stderr, "health_sync failed\n");
		if (child > 0) {
			kill(child, SIGKILL);
			waitpid(child, NULL, 0);
		}
		return 1;
	}
	printf("# sync of %d backends: %.1f ms\n", n, (now_s() - a.wall) * 1e3);
	/* One interval of warm-up: the first probes are spread over it. */
	run_for(loop, interval / 1000.0);
	sums(hc, m, &ok0, &fail0, &up, false);
	snap_take(&a);
	run_for(loop, secs);
	snap_take(&b);
	sums(hc, m, &ok1, &fail1, &up, true);
	window_of(&a, &b, &wc);
	probes = ok1 + fail1 - ok0 - fail0;

	printf("backends %d interval_ms %d measured_s %.2f\n", n, interval, wc.wall);
	printf("probes %llu (%.0f/s) ok %llu fail %llu up %zu\n", (unsigned long long)probes,
	       probes / wc.wall, (unsigned long long)(ok1 - ok0), (unsigned long long)(fail1 - fail0),
	       up);
	print_window("checker_", &wc, (double)probes + 1);
	for (size_t i = 0; i < sizeof(floors) / sizeof(floors[0]); i++)
		baseline_print(&floors[i]);
	if (!remote)
		printf("baseline_tight_us_per_probe %.2f (socket+SO_LINGER+connect+close back to "
		       "back)\n", tight);

	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, &status, 0);
	}
	health_free(hc);
	model_free(m);
	ev_loop_destroy(loop);
	return 0;
}
