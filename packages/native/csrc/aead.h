/*
 * WireGuard transport-data messages sealed and opened in place over pool slots, a run of slots
 * under one key per call (aead.c). No N-API, no syscalls, no allocation per packet.
 */
#ifndef OVL_AEAD_H
#define OVL_AEAD_H

#include <stddef.h>
#include <stdint.h>

#define OVL_AEAD_KEY_LEN 32
#define OVL_AEAD_TAG_LEN 16
/* type (4), receiver index (4), counter (8), little-endian. */
#define OVL_AEAD_HEADER_LEN 16
#define OVL_AEAD_MSG_DATA 4

/* One cipher context per N-API environment (thread): contexts are not shared across threads. */
struct ovl_aead;

/* direct: use OpenSSL's ChaCha20/Poly1305 primitives when this process exports them (aead.c), else EVP. */
struct ovl_aead *ovl_aead_new(int direct);
void ovl_aead_free(struct ovl_aead *a);
/* 1 when `a` seals and opens through the primitives, 0 through EVP. */
int ovl_aead_direct(const struct ovl_aead *a);

/* The pool arrays a batch is described in. */
struct ovl_aead_slots {
  uint8_t *data;
  size_t data_len;
  int32_t *off;
  int32_t *len;
  size_t nslots_pool;
  const int32_t *slots;
  int count;
};

#define OVL_AEAD_ERANGE (-1)
#define OVL_AEAD_ECRYPTO (-2)

/*
 * Seals each slot: the header goes into the 16 bytes before off, the payload is encrypted in
 * place, the tag follows it; counters are counter, counter + 1, ... in slot order; off/len then
 * describe the whole message. Every slot is checked first (inside the pool, header and tag within
 * data): OVL_AEAD_ERANGE and nothing changed otherwise. Returns count, or OVL_AEAD_ECRYPTO.
 */
int ovl_aead_seal(struct ovl_aead *a, const uint8_t *key, uint32_t remote_index, uint64_t counter, const struct ovl_aead_slots *s);

/*
 * Opens each slot holding a transport-data message (len ≥ 32; the counter is read from its
 * header): authenticated → decrypted in place, off/len describe the plaintext, ok[i] = 1;
 * otherwise ok[i] = 0 and the slot is as it was (bytes, off, len). Returns how many opened, or
 * OVL_AEAD_ERANGE (nothing changed) for a slot outside the pool or shorter than 32 bytes.
 */
int ovl_aead_open(struct ovl_aead *a, const uint8_t *key, const struct ovl_aead_slots *s, uint8_t *ok);

#endif
