/*
 * Internet checksum (RFC 1071) and TCP segmentation over caller-owned buffers: no allocation, no
 * N-API, no syscalls, so the same code serves the addon and a plain C test. Offsets and lengths are
 * checked by the callers (csum_napi.c) against the buffers' sizes before they reach here.
 */
#ifndef OVL_CSUM_H
#define OVL_CSUM_H

#include <stddef.h>
#include <stdint.h>

/* Ones' complement sum of p[0 .. n) as big-endian 16-bit words (an odd last byte is the high
   half of a word), plus `seed`, folded to 16 bits: the same value as the dataplane's
   onesComplementSum(buf, off, n, seed) for seed in 0 .. 0xffff. */
uint32_t ovl_csum_sum(const uint8_t *p, size_t n, uint32_t seed);

/* The checksum field value: ~ovl_csum_sum(...) & 0xffff. */
static inline uint32_t ovl_csum_fold_not(uint32_t sum) { return ~sum & 0xffff; }

/* One segment destination: a slot's absolute offset in the destination buffer, where its
   length is stored, or skip (slot < 0). */
struct ovl_tso_args {
  const uint8_t *src; /* the super-frame: Ethernet + IPv4 + TCP header, then the payload */
  size_t src_len;
  uint32_t mss;
  uint8_t *dst;       /* the pool's slab */
  size_t dst_len;
  const int32_t *off; /* the pool's per-slot offsets */
  int32_t *len;       /* the pool's per-slot lengths (written) */
  size_t nslots_pool; /* elements of off/len */
  uint32_t frame_capacity; /* bytes a slot may hold */
  const int32_t *slots; /* segment first + i goes to slots[i]; -1 skips it */
  size_t first;         /* the first segment to write */
  size_t count;         /* segments to write: first + count <= ceil(payload / mss) */
};

/* Error results of ovl_tso_segment (negative). */
#define OVL_TSO_EMALFORMED -1 /* not Ethernet/IPv4/TCP, or lengths inconsistent */
#define OVL_TSO_ERANGE -2     /* a slot index, offset or segment count out of range */

/*
 * Cut an IPv4 TCP super-segment into ceil(payload/mss) frames, writing segments
 * first .. first+count-1 (so a caller can go in chunks as slots free up): each gets the header with
 * IP total length, IP id (id0 + k), IP checksum, sequence number, flags (FIN/PSH only on the last,
 * CWR only on the first) and a complete TCP checksum, then its payload. Returns the number of
 * frames written (skipped slots not counted) or a negative OVL_TSO_E* without writing anything.
 */
int ovl_tso_segment(const struct ovl_tso_args *a);

#endif
