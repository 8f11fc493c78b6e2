/*
 * CPU cost of the health checker: N backends probed over TCP at an interval, against a
 * local listener (a child process that accepts and closes), for a fixed time.
 *   bench_health [backends=10000] [interval_ms=1000] [seconds=10]
 * Prints the checker's CPU use in % of one core (getrusage), probes per second and, as a
 * baseline from the same run, the cost of the bare syscalls (socket, connect, close)
 * a probe cannot avoid.
 */
#include <arpa/inet.h>
#include <errno.h>
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

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
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

	ev_timer_init(&t, break_cb, secs, 0.);
	ev_timer_start(loop, &t);
	ev_run(loop, 0);
	ev_timer_stop(loop, &t);
}

static void sums(struct health_checker *hc, struct model *m, uint64_t *ok, uint64_t *fail,
		 size_t *up)
{
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
		}
	}
}

/* Bare cost of what a TCP probe must do, in a blocking loop. */
static double baseline_us(const struct sockaddr_in *sa, int n)
{
	double c0 = cpu_s();

	for (int i = 0; i < n; i++) {
		struct linger lg = { 1, 0 };
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

		if (fd < 0)
			break;
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
		close(fd);
	}
	return (cpu_s() - c0) * 1e6 / n;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 10000;
	int interval = argc > 2 ? atoi(argv[2]) : 1000;
	double secs = argc > 3 ? atof(argv[3]) : 10;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t salen = sizeof(sa);
	int lfd, one = 1, status;
	pid_t child;
	struct ev_loop *loop;
	struct model *m;
	struct health_checker *hc;
	uint64_t ok0, fail0, ok1, fail1;
	size_t up;
	double c0, t0, cpu, wall, base;
	struct rusage cru;

	if (n <= 0 || n > 100000 || interval <= 0 || secs <= 0 || secs > 120) {
		fprintf(stderr, "usage: bench_health [backends<=100000] [interval_ms] [seconds<=120]\n");
		return 2;
	}
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 4096) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &salen) < 0) {
		perror("listener");
		return 1;
	}
	child = fork();
	if (child < 0) {
		perror("fork");
		return 1;
	}
	if (child == 0) {
		/* The backend side: accept and close, until the parent goes away. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;) {
			int c = accept(lfd, NULL, NULL);

			if (c >= 0)
				close(c);
			else if (errno != EINTR && errno != ECONNABORTED)
				_exit(1);
		}
	}
	close(lfd);

	base = baseline_us(&sa, 20000);

	log_set_level(LOG_LVL_WARN);
	loop = ev_loop_new(EVFLAG_AUTO);
	m = model_new();
	for (int i = 0; i < n;) {
		struct lb *lb = lb_new();

		lb->hc.type = HC_TCP;
		lb->hc.interval_ms = (uint32_t)interval;
		lb->hc.timeout_ms = (uint32_t)(interval / 2 ? interval / 2 : 1);
		for (int j = 0; j < 1000 && i < n; j++, i++) {
			struct backend b;

			backend_init(&b);
			ip_addr_parse("127.0.0.1", &b.ip);
			b.port = ntohs(sa.sin_port);
			lb_add_backend(lb, &b);
		}
		model_add(m, lb);
	}
	hc = health_new(loop, NULL, NULL);
	t0 = now_s();
	c0 = cpu_s();
	if (!hc || health_sync(hc, m) < 0) {
		fprintf(stderr, "health_sync failed\n");
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		return 1;
	}
	printf("# sync of %d backends: %.1f ms wall, %.1f ms cpu\n", n, (now_s() - t0) * 1e3,
	       (cpu_s() - c0) * 1e3);
	/* One interval of warm-up: the first probes are spread over it. */
	run_for(loop, interval / 1000.0);
	sums(hc, m, &ok0, &fail0, &up);
	t0 = now_s();
	c0 = cpu_s();
	run_for(loop, secs);
	cpu = cpu_s() - c0;
	wall = now_s() - t0;
	sums(hc, m, &ok1, &fail1, &up);

	kill(child, SIGKILL);
	waitpid(child, &status, 0);
	getrusage(RUSAGE_CHILDREN, &cru);

	printf("backends %d interval_ms %d measured_s %.2f\n", n, interval, wall);
	printf("probes %llu (%.0f/s) ok %llu fail %llu up %zu\n",
	       (unsigned long long)(ok1 + fail1 - ok0 - fail0), (ok1 + fail1 - ok0 - fail0) / wall,
	       (unsigned long long)(ok1 - ok0), (unsigned long long)(fail1 - fail0), up);
	printf("checker_cpu_pct %.1f\n", 100.0 * cpu / wall);
	printf("checker_us_per_probe %.2f\n", cpu * 1e6 / (double)(ok1 + fail1 - ok0 - fail0 + 1));
	printf("baseline_us_per_probe %.2f (socket+connect+close in a tight loop)\n", base);
	printf("listener_cpu_s %.2f (accept+close, whole run incl. baseline)\n",
	       cru.ru_utime.tv_sec + cru.ru_utime.tv_usec / 1e6 + cru.ru_stime.tv_sec +
		       cru.ru_stime.tv_usec / 1e6);
	health_free(hc);
	model_free(m);
	ev_loop_destroy(loop);
	return 0;
}
