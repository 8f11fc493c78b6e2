/*
 * Maglev table build time: 65537 slots for 10, 100 and 1,000 backends, each built REPEAT
 * times (argv[1], default 50), median and p99 in ms. The floor, measured in the same run,
 * is filling the same table round-robin. Weighted sets are timed too: their turns cost more.
 *   gcc -O2 -Isrc src/dataplane/maglev.c tests/bench/maglev.c -o maglev
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dataplane/maglev.h"

#define SLOTS MAGLEV_DEFAULT_SIZE
#define MAX_BACKENDS 1000
#define TARGET_MS 5.0

static uint32_t table[SLOTS];
static struct maglev_backend backends[MAX_BACKENDS];

struct figures {
	double median;
	double p99;
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static struct figures summarize(double *ms, int repeat)
{
	struct figures f;

	qsort(ms, (size_t)repeat, sizeof(*ms), cmp_double);
	f.median = ms[repeat / 2];
	/* Nearest rank: with 50 samples p99 is the slowest one. */
	f.p99 = ms[(99 * repeat + 99) / 100 - 1];
	return f;
}

/* The cheapest table there is: no hashing, no probing. Kept honest by checking it. */
static int fill_round_robin(size_t n)
{
	uint32_t i = 0;

	for (uint32_t s = 0; s < SLOTS; s++) {
		table[s] = i;
		if (++i == n)
			i = 0;
	}
	return table[SLOTS - 1] < n ? 0 : -1;
}

static int build(size_t n)
{
	int err = maglev_build(backends, n, SLOTS, table);

	if (err)
		return err;
	for (uint32_t s = 0; s < SLOTS; s++)
		if (table[s] >= n)
			return -1;
	return 0;
}

static int time_it(int (*fn)(size_t), size_t n, int repeat, double *ms, struct figures *out)
{
	if (fn(n))
		return -1;
	for (int r = 0; r < repeat; r++) {
		double t0 = now_ms();

		if (fn(n))
			return -1;
		ms[r] = now_ms() - t0;
	}
	*out = summarize(ms, repeat);
	return 0;
}

/* Distinct IPv4 backends 10.1.x.y:8080/tcp; weight(i) gives each one's weight. */
static void make_backends(size_t n, uint32_t (*weight)(size_t))
{
	for (size_t i = 0; i < n; i++) {
		struct ip_addr a = { .family = AF_INET };

		a.v4.s_addr = htonl(0x0a010000u + (uint32_t)i);
		maglev_backend_set_key(&backends[i], &a, 8080, IPPROTO_TCP);
		backends[i].weight = weight(i);
	}
}

static uint32_t weight_equal(size_t i)
{
	(void)i;
	return 1;
}

static uint32_t weight_1_to_10(size_t i)
{
	return (uint32_t)(i % 10) + 1;
}

static uint32_t weight_one_heavy(size_t i)
{
	return i == 0 ? 65535 : 1;
}

int main(int argc, char **argv)
{
	static const size_t sizes[] = { 10, 100, 1000 };
	static const struct {
		const char *name;
		uint32_t (*weight)(size_t);
	} skews[] = {
		{ "weights 1..10", weight_1_to_10 },
		{ "one at 65535, the rest at 1", weight_one_heavy },
	};
	int repeat = argc > 1 ? atoi(argv[1]) : 50;
	struct figures f, base;
	double *ms;

	if (repeat < 1) {
		fprintf(stderr, "usage: %s [REPEAT]\n", argv[0]);
		return 2;
	}
	ms = malloc((size_t)repeat * sizeof(*ms));
	if (!ms)
		return 1;
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t n = sizes[k];

		make_backends(n, weight_equal);
		if (time_it(build, n, repeat, ms, &f) ||
		    time_it(fill_round_robin, n, repeat, ms, &base)) {
			fprintf(stderr, "maglev build of %zu backends failed\n", n);
			free(ms);
			return 1;
		}
		printf("maglev build %u slots x %zu backends: median %.3f ms, p99 %.3f ms",
		       SLOTS, n, f.median, f.p99);
		if (n == MAX_BACKENDS)
			printf(" (target <= %.0f ms)", TARGET_MS);
		printf("\n");
		printf("  round-robin fill (floor): median %.3f ms, p99 %.3f ms; "
		       "maglev/floor %.1fx\n", base.median, base.p99, f.median / base.median);
	}
	for (size_t k = 0; k < sizeof(skews) / sizeof(skews[0]); k++) {
		make_backends(MAX_BACKENDS, skews[k].weight);
		if (time_it(build, MAX_BACKENDS, repeat, ms, &f)) {
			fprintf(stderr, "maglev build (%s) failed\n", skews[k].name);
			free(ms);
			return 1;
		}
		printf("maglev build %u slots x %d backends, %s: median %.3f ms, p99 %.3f ms\n",
		       SLOTS, MAX_BACKENDS, skews[k].name, f.median, f.p99);
	}
	free(ms);
	return 0;
}
