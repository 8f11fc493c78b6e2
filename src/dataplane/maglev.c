/*
 * Maglev table construction. Each backend walks its own permutation of the slots
 * (offset + j * skip mod M, M prime so every skip reaches every slot) and, on its turn,
 * claims the next slot of that walk no one holds yet. Turns go in rounds, and within a round
 * in key order; how often a backend plays depends on its weight (struct maglev_walk).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dataplane/maglev.h"

/*
 * SipHash-2-4 under two fixed keys (the ASCII of "vipd-maglev-offs" and "vipd-maglev-skip")
 * gives the two independent hashes of a backend. The keys are part of the table format:
 * nodes with different keys pick different backends for the same flow, so never change them.
 */
static const uint64_t maglev_offset_key[2] = { 0x67616d2d64706976ULL, 0x7366666f2d76656cULL };
static const uint64_t maglev_skip_key[2] = { 0x67616d2d64706976ULL, 0x70696b732d76656cULL };

/*
 * A backend's k-th turn falls in round ceil((k - 1/2) * top / weight), top being the largest
 * weight: the heaviest backend plays every round, one of half its weight every other round,
 * and light backends play their first turn half a period in rather than all together at the
 * end. base and acc hold that fraction (numerator (2k - 1) * top over 2 * weight) as
 * quotient and remainder, so a turn needs no division.
 */
struct maglev_walk {
	uint64_t base;
	uint64_t acc;
	uint64_t step;   /* top / weight */
	uint64_t rem;    /* 2 * (top % weight) */
	uint64_t den;    /* 2 * weight */
	uint32_t next;   /* next slot of this backend's permutation to try */
	uint32_t skip;
	uint32_t index;  /* the caller's index, written into the table */
};

static inline uint64_t rotl64(uint64_t x, unsigned int r)
{
	return (x << r) | (x >> (64 - r));
}

static inline void sipround(uint64_t v[4])
{
	v[0] += v[1];
	v[1] = rotl64(v[1], 13) ^ v[0];
	v[0] = rotl64(v[0], 32);
	v[2] += v[3];
	v[3] = rotl64(v[3], 16) ^ v[2];
	v[0] += v[3];
	v[3] = rotl64(v[3], 21) ^ v[0];
	v[2] += v[1];
	v[1] = rotl64(v[1], 17) ^ v[2];
	v[2] = rotl64(v[2], 32);
}

static uint64_t siphash24(const uint64_t k[2], const uint8_t *in, size_t len)
{
	uint64_t v[4] = {
		0x736f6d6570736575ULL ^ k[0], 0x646f72616e646f6dULL ^ k[1],
		0x6c7967656e657261ULL ^ k[0], 0x7465646279746573ULL ^ k[1],
	};
	size_t full = len & ~(size_t)7;
	uint64_t m;

	for (size_t i = 0; i <= full; i += 8) {
		m = 0;
		if (i < full) {
			for (int j = 7; j >= 0; j--)
				m = (m << 8) | in[i + j];
		} else {
			m = (uint64_t)len << 56;
			for (size_t j = 0; j < len - full; j++)
				m |= (uint64_t)in[full + j] << (8 * j);
		}
		v[3] ^= m;
		sipround(v);
		sipround(v);
		v[0] ^= m;
	}
	v[2] ^= 0xff;
	for (int i = 0; i < 4; i++)
		sipround(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

int maglev_backend_set_key(struct maglev_backend *mb, const struct ip_addr *ip, uint16_t port,
			   uint8_t protocol)
{
	size_t alen;
	uint8_t *p = mb->key;

	if (ip->family == AF_INET)
		alen = 4;
	else if (ip->family == AF_INET6)
		alen = 16;
	else
		return -EINVAL;
	memset(mb->key, 0, sizeof(mb->key));
	*p++ = ip->family == AF_INET ? 4 : 6;
	memcpy(p, ip->bytes, alen);
	p += alen;
	*p++ = port >> 8;
	*p++ = port & 0xff;
	*p++ = protocol;
	mb->key_len = (size_t)(p - mb->key);
	return 0;
}

bool maglev_is_prime(uint32_t n)
{
	if (n < 2)
		return false;
	if (n % 2 == 0)
		return n == 2;
	for (uint32_t d = 3; (uint64_t)d * d <= n; d += 2)
		if (n % d == 0)
			return false;
	return true;
}

static int maglev_key_cmp(const struct maglev_backend *a, const struct maglev_backend *b)
{
	size_t len = a->key_len < b->key_len ? a->key_len : b->key_len;
	int c = memcmp(a->key, b->key, len);

	if (c)
		return c;
	return (a->key_len > b->key_len) - (a->key_len < b->key_len);
}

static int maglev_ptr_cmp(const void *a, const void *b)
{
	return maglev_key_cmp(*(const struct maglev_backend *const *)a,
			      *(const struct maglev_backend *const *)b);
}

static inline uint64_t maglev_turn_round(const struct maglev_walk *bw)
{
	return bw->base + (bw->acc != 0);
}

static void maglev_walk_init(struct maglev_walk *bw, uint64_t top, uint32_t weight)
{
	bw->den = 2 * (uint64_t)weight;
	bw->base = top / bw->den;
	bw->acc = top % bw->den;
	bw->step = top / weight;
	bw->rem = 2 * (top % weight);
}

static inline void maglev_walk_advance(struct maglev_walk *bw)
{
	bw->base += bw->step;
	bw->acc += bw->rem;
	if (bw->acc >= bw->den) {
		bw->acc -= bw->den;
		bw->base++;
	}
}

/* Claims the next free slot of bw's permutation for it. */
static inline void maglev_take(struct maglev_walk *bw, uint32_t m, uint64_t *taken,
			       uint32_t *table)
{
	/* 64 bits: pos + skip can pass 2^32 when m does not. */
	uint64_t pos = bw->next;

	while (taken[pos >> 6] & (1ULL << (pos & 63))) {
		pos += bw->skip;
		if (pos >= m)
			pos -= m;
	}
	taken[pos >> 6] |= 1ULL << (pos & 63);
	table[pos] = bw->index;
	pos += bw->skip;
	if (pos >= m)
		pos -= m;
	bw->next = (uint32_t)pos;
}

static void maglev_heap_down(uint64_t *heap, size_t len, size_t i)
{
	uint64_t key = heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= len)
			break;
		if (c + 1 < len && heap[c + 1] < heap[c])
			c++;
		if (key <= heap[c])
			break;
		heap[i] = heap[c];
		i = c;
	}
	heap[i] = key;
}

/* Turns in order of (round, key order), one round at a time. */
static void maglev_fill_rounds(struct maglev_walk *w, size_t k, uint32_t m, uint64_t *taken,
			       uint32_t *table)
{
	uint32_t filled = 0;

	for (uint64_t round = 1;; round++) {
		for (size_t i = 0; i < k; i++) {
			if (maglev_turn_round(&w[i]) != round)
				continue;
			maglev_take(&w[i], m, taken, table);
			if (++filled == m)
				return;
			maglev_walk_advance(&w[i]);
		}
	}
}

/*
 * The same order, picked from a heap keyed by round << 32 | position: dearer per turn, but
 * it skips the backends that do not play in a round, which is most of them when one weight
 * dwarfs the rest.
 */
static void maglev_fill_heap(struct maglev_walk *w, size_t k, uint32_t m, uint64_t *taken,
			     uint32_t *table, uint64_t *heap)
{
	size_t len = 0;

	for (size_t i = 0; i < k; i++)
		heap[len++] = maglev_turn_round(&w[i]) << 32 | i;
	for (size_t i = len / 2; i-- > 0;)
		maglev_heap_down(heap, len, i);
	/* The heaviest backend plays every round, so the table is full by round m. */
	for (uint32_t filled = 0; filled < m; filled++) {
		struct maglev_walk *bw = &w[heap[0] & 0xffffffff];
		uint64_t round;

		maglev_take(bw, m, taken, table);
		maglev_walk_advance(bw);
		round = maglev_turn_round(bw);
		if (round > m)
			heap[0] = heap[--len];
		else
			heap[0] = round << 32 | (heap[0] & 0xffffffff);
		maglev_heap_down(heap, len, 0);
	}
}

int maglev_build(const struct maglev_backend *b, size_t n, uint32_t table_size,
		 uint32_t *table)
{
	const struct maglev_backend **sorted;
	struct maglev_walk *w;
	uint64_t *taken, *heap;
	uint64_t top = 0, sum = 0;
	size_t k = 0, words = ((size_t)table_size + 63) / 64;
	void *scratch;

	if (!maglev_is_prime(table_size) || n >= MAGLEV_NO_BACKEND)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (b[i].key_len == 0 || b[i].key_len > MAGLEV_KEY_MAX)
			return -EINVAL;
		if (b[i].weight == 0)
			continue;
		if (b[i].weight > top)
			top = b[i].weight;
		sum += b[i].weight;
		k++;
	}
	if (k == 0) {
		for (uint32_t i = 0; i < table_size; i++)
			table[i] = MAGLEV_NO_BACKEND;
		return 0;
	}
	/* One block: the walks, the taken-slot bitmap (zeroed), the heap, the sort array. */
	scratch = calloc(1, k * sizeof(*w) + (words + k) * sizeof(uint64_t) + k * sizeof(*sorted));
	if (!scratch)
		return -ENOMEM;
	w = scratch;
	taken = (uint64_t *)(w + k);
	heap = taken + words;
	sorted = (const struct maglev_backend **)(heap + k);

	k = 0;
	for (size_t i = 0; i < n; i++)
		if (b[i].weight > 0)
			sorted[k++] = &b[i];
	/* Key order, not the caller's order, decides who plays first in a round. */
	qsort(sorted, k, sizeof(*sorted), maglev_ptr_cmp);
	for (size_t i = 0; i < k; i++) {
		const struct maglev_backend *mb = sorted[i];

		if (i > 0 && maglev_key_cmp(sorted[i - 1], mb) == 0) {
			free(scratch);
			return -EINVAL;
		}
		maglev_walk_init(&w[i], top, mb->weight);
		w[i].next = (uint32_t)(siphash24(maglev_offset_key, mb->key, mb->key_len) %
				       table_size);
		w[i].skip = (uint32_t)(siphash24(maglev_skip_key, mb->key, mb->key_len) %
				       (table_size - 1)) + 1;
		w[i].index = (uint32_t)(mb - b);
	}
	/*
	 * Rounds cost k steps each and number about table_size * top / sum; a heap turn costs
	 * some 50 steps (measured). Both give the same table.
	 */
	if (table_size * top / sum * k <= (uint64_t)table_size * 50)
		maglev_fill_rounds(w, k, table_size, taken, table);
	else
		maglev_fill_heap(w, k, table_size, taken, table, heap);
	free(scratch);
	return 0;
}
