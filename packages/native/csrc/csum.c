/*
 * Internet checksum and TSO segmentation in C (see csum.h). The sum runs over little-endian
 * machine words and swaps bytes once at the end (RFC 1071 §2(B): the sum is byte-order
 * independent): SSE2 on x86-64 (32 bytes a step into 32-bit lanes, widened before they can
 * overflow), else 32 bytes a step into four 64-bit accumulators; unaligned loads go through
 * memcpy or loadu, so any offset and alignment works.
 */
#include "csum.h"

#include <string.h>

static inline uint32_t fold64(uint64_t s) {
  s = (s & 0xffffffffu) + (s >> 32);
  s = (s & 0xffffffffu) + (s >> 32);
  uint32_t t = (uint32_t)s;
  t = (t & 0xffff) + (t >> 16);
  t = (t & 0xffff) + (t >> 16);
  return t;
}

/* Sum of p[0 .. n) as little-endian 16-bit words (odd last byte as the low half), unfolded:
   the portable part, for short tails and machines without SSE2. */
static uint64_t sum_le_scalar(const uint8_t *p, size_t n) {
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  while (n >= 32) {
    uint32_t w[8];
    memcpy(w, p, 32);
    a0 += (uint64_t)w[0] + w[1];
    a1 += (uint64_t)w[2] + w[3];
    a2 += (uint64_t)w[4] + w[5];
    a3 += (uint64_t)w[6] + w[7];
    p += 32;
    n -= 32;
  }
  while (n >= 4) {
    uint32_t w;
    memcpy(&w, p, 4);
    a0 += w;
    p += 4;
    n -= 4;
  }
  if (n >= 2) {
    uint16_t h;
    memcpy(&h, p, 2);
    a1 += h;
    p += 2;
    n -= 2;
  }
  if (n) a2 += p[0];
  return a0 + a1 + a2 + a3;
}

#if defined(__SSE2__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#include <emmintrin.h>

/* 32 bytes a step: each 32-bit lane of two accumulators takes its low and high 16-bit word, at
   most 2 * 0xffff per step, so 32 768 steps stay below 2^32; then the lanes widen to 64 bits. */
static uint64_t sum_le(const uint8_t *p, size_t n) {
  const __m128i lo16 = _mm_set1_epi32(0xffff);
  uint64_t total = 0;
  while (n >= 32) {
    size_t steps = n / 32;
    if (steps > 32768) steps = 32768;
    __m128i a = _mm_setzero_si128(), b = _mm_setzero_si128();
    for (size_t i = 0; i < steps; i++) {
      __m128i x = _mm_loadu_si128((const __m128i *)p);
      __m128i y = _mm_loadu_si128((const __m128i *)(p + 16));
      a = _mm_add_epi32(a, _mm_add_epi32(_mm_and_si128(x, lo16), _mm_srli_epi32(x, 16)));
      b = _mm_add_epi32(b, _mm_add_epi32(_mm_and_si128(y, lo16), _mm_srli_epi32(y, 16)));
      p += 32;
    }
    n -= steps * 32;
    uint32_t la[4], lb[4];
    _mm_storeu_si128((__m128i *)la, a);
    _mm_storeu_si128((__m128i *)lb, b);
    for (int k = 0; k < 4; k++) total += (uint64_t)la[k] + lb[k];
  }
  return total + sum_le_scalar(p, n);
}
#else
#define sum_le sum_le_scalar
#endif

uint32_t ovl_csum_sum(const uint8_t *p, size_t n, uint32_t seed) {
  uint32_t s = fold64(sum_le(p, n));
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  s = ((s & 0xff) << 8) | (s >> 8);
#endif
  return fold64((uint64_t)s + seed);
}

static inline uint32_t rd16(const uint8_t *p) { return ((uint32_t)p[0] << 8) | p[1]; }
static inline void wr16(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

#define ETH 14

int ovl_tso_segment(const struct ovl_tso_args *a) {
  const uint8_t *src = a->src;
  if (a->src_len < ETH + 40 || src[12] != 0x08 || src[13] != 0x00 || (src[ETH] >> 4) != 4 || src[ETH + 9] != 6 || a->mss < 1)
    return OVL_TSO_EMALFORMED;
  const size_t ihl = (size_t)(src[ETH] & 0x0f) * 4;
  if (ihl < 20 || ETH + ihl + 20 > a->src_len) return OVL_TSO_EMALFORMED;
  const size_t thl = (size_t)(src[ETH + ihl + 12] >> 4) * 4;
  const size_t hdr = ETH + ihl + thl;
  if (thl < 20 || hdr >= a->src_len) return OVL_TSO_EMALFORMED;
  const size_t total = a->src_len - hdr;
  const size_t mss = a->mss;
  const size_t nseg = (total + mss - 1) / mss;
  if (a->first > nseg || a->count > nseg - a->first) return OVL_TSO_ERANGE;
  /* Check every destination before writing any, so an error leaves the pool untouched. */
  for (size_t i = 0; i < a->count; i++) {
    const size_t k = a->first + i;
    int32_t s = a->slots[i];
    if (s < 0) continue;
    if ((size_t)s >= a->nslots_pool) return OVL_TSO_ERANGE;
    size_t plen = total - k * mss < mss ? total - k * mss : mss;
    int32_t o = a->off[s];
    if (o < 0 || hdr + plen > a->frame_capacity || (size_t)o + hdr + plen > a->dst_len) return OVL_TSO_ERANGE;
  }
  const uint8_t *sip0 = src + ETH;
  const uint8_t *stcp0 = sip0 + ihl;
  const uint32_t seq0 = ((uint32_t)stcp0[4] << 24) | ((uint32_t)stcp0[5] << 16) | ((uint32_t)stcp0[6] << 8) | stcp0[7];
  const uint32_t id0 = rd16(sip0 + 4);
  const uint8_t flags0 = stcp0[13];
  /* Pseudo-header without the length: addresses and protocol; the length is added per segment. */
  const uint32_t pseudo_addr = ovl_csum_sum(sip0 + 12, 8, 6);
  int written = 0;
  for (size_t i = 0; i < a->count; i++) {
    const size_t k = a->first + i;
    int32_t s = a->slots[i];
    if (s < 0) continue;
    const size_t at = k * mss;
    const size_t plen = total - at < mss ? total - at : mss;
    uint8_t *d = a->dst + a->off[s];
    memcpy(d, src, hdr);
    memcpy(d + hdr, src + hdr + at, plen);
    a->len[s] = (int32_t)(hdr + plen);
    uint8_t *ip = d + ETH;
    uint8_t *tcp = ip + ihl;
    const uint32_t l4 = (uint32_t)(thl + plen);
    wr16(ip + 2, (uint32_t)ihl + l4);
    wr16(ip + 4, (id0 + (uint32_t)k) & 0xffff);
    wr16(ip + 10, 0);
    wr16(ip + 10, ovl_csum_fold_not(ovl_csum_sum(ip, ihl, 0)));
    const uint32_t seq = seq0 + (uint32_t)at;
    tcp[4] = (uint8_t)(seq >> 24);
    tcp[5] = (uint8_t)(seq >> 16);
    tcp[6] = (uint8_t)(seq >> 8);
    tcp[7] = (uint8_t)seq;
    uint8_t f = flags0;
    if (at + plen < total) f &= (uint8_t)~0x09; /* FIN and PSH only on the last segment */
    if (k > 0) f &= (uint8_t)~0x80;             /* CWR only on the first */
    tcp[13] = f;
    wr16(tcp + 16, 0);
    wr16(tcp + 16, ovl_csum_fold_not(ovl_csum_sum(tcp, l4, fold64((uint64_t)pseudo_addr + l4))));
    written++;
  }
  return written;
}
