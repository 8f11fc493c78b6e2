/*
 * Maglev lookup tables (Eisenbud et al., NSDI 2016, section 3.4), built in userspace and
 * handed to the XDP program as an array of backend indices.
 *
 * The table is a pure function of the set of (key, weight) pairs and the table size: the
 * order in which backends are given does not matter, so every node of an ECMP group that
 * knows the same backends builds the same table and sends a flow to the same backend. The
 * key must therefore be an identity every node shares (address, port, protocol), never a
 * uuid or a position; maglev_backend_set_key() lays it out so.
 *
 * Weights: each backend takes turns in proportion to its weight (the heaviest one turn per
 * round), so its share of slots is its share of the total weight, to within a slot or two.
 * Weight 0 (draining) gets no slots.
 *
 * Disruption: a backend that leaves (or drains) loses all its slots, which go to the others;
 * draining gives exactly the table of the set without it. Maglev does not promise that no
 * other slot moves, only that few do, and fewer the more slots each backend has. Measured at
 * 65537 slots, one of N equal backends leaving moves 1.03/N of the slots for N = 10, 1.56/N
 * (at worst 1.70/N) for N = 100 and 7/N for N = 1,000; a newcomer alike moves ~1.03/(N+1)
 * and 1.55/(N+1). tests/unit/test_maglev.c holds the bounds.
 */
#ifndef VIPD_MAGLEV_H
#define VIPD_MAGLEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"

/* A prime just above 65536: shares within 1% of the weight share with up to ~650 backends. */
#define MAGLEV_DEFAULT_SIZE 65537u
/* Slot value when there is no backend to send to (no backends, or all draining). */
#define MAGLEV_NO_BACKEND UINT32_MAX
/* Family byte, IPv6 address, port and protocol fit with room to spare. */
#define MAGLEV_KEY_MAX 32

struct maglev_backend {
	uint8_t key[MAGLEV_KEY_MAX]; /* identity hashed into the permutation */
	size_t key_len;              /* 1..MAGLEV_KEY_MAX */
	uint32_t weight;             /* 0: no slots */
};

/*
 * Sets mb->key to the backend's identity: a family byte (4 or 6), the address bytes, the port
 * (given in host order, stored big-endian) and the protocol (IPPROTO_TCP, IPPROTO_UDP); the
 * weight is left alone. 0, or -EINVAL if ip has no family.
 */
int maglev_backend_set_key(struct maglev_backend *mb, const struct ip_addr *ip, uint16_t port,
			   uint8_t protocol);

bool maglev_is_prime(uint32_t n);

/*
 * Fills table[0..table_size) with indices into b (0..n-1), or MAGLEV_NO_BACKEND everywhere
 * when no backend has a weight. table_size must be prime. Returns 0; -EINVAL for a table
 * size that is not prime, a key_len out of range, two weighted backends with the same key
 * (the table would depend on their order), or n >= MAGLEV_NO_BACKEND; -ENOMEM. On error the
 * table is left untouched.
 *
 * Cost: about 1 to 1.5 ms for 65537 slots and 10 to 1,000 backends, whatever the weights
 * (tests/bench/maglev.c); scratch is one allocation of about table_size / 8 + 72 * n bytes.
 */
int maglev_build(const struct maglev_backend *b, size_t n, uint32_t table_size,
		 uint32_t *table);

#endif
