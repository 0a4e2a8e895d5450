/*
 * ChaCha20-Poly1305 (RFC 8439) for WireGuard transport data, batched over pool slots. The cipher
 * is the OpenSSL that Node.js carries: its libcrypto symbols are exported to addons (the headers
 * come with node's, e.g. /usr/include/node/openssl), so nothing is vendored or linked. The nonce
 * is WireGuard's: 32 zero bits, then the 64-bit little-endian counter; no associated data.
 */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "aead.h"

struct ovl_aead {
  EVP_CIPHER *cipher;
  EVP_CIPHER_CTX *ctx;
};

struct ovl_aead *ovl_aead_new(void) {
  struct ovl_aead *a = calloc(1, sizeof(*a));
  if (!a) return NULL;
  a->cipher = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
  a->ctx = EVP_CIPHER_CTX_new();
  if (!a->cipher || !a->ctx) {
    ovl_aead_free(a);
    return NULL;
  }
  return a;
}

void ovl_aead_free(struct ovl_aead *a) {
  if (!a) return;
  if (a->ctx) EVP_CIPHER_CTX_free(a->ctx);
  if (a->cipher) EVP_CIPHER_free(a->cipher);
  free(a);
}

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

static void nonce_of(uint8_t n[12], uint64_t counter) {
  put32(n, 0);
  put32(n + 4, (uint32_t)counter);
  put32(n + 8, (uint32_t)(counter >> 32));
}

/* The keystream pass alone, over `len` bytes at p: applied to a wrongly decrypted body it gives the ciphertext back. */
static int rekeystream(EVP_CIPHER_CTX *ctx, const uint8_t nonce[12], uint8_t *p, int len) {
  int outl;
  if (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, nonce, 1) != 1) return 0;
  return len == 0 || EVP_CipherUpdate(ctx, p, &outl, p, len) == 1;
}

int ovl_aead_seal(struct ovl_aead *a, const uint8_t *key, uint32_t remote_index, uint64_t counter, const struct ovl_aead_slots *s) {
  for (int i = 0; i < s->count; i++) {
    int32_t slot = s->slots[i];
    if (slot < 0 || (size_t)slot >= s->nslots_pool) return OVL_AEAD_ERANGE;
    int64_t o = s->off[slot], l = s->len[slot];
    if (o < OVL_AEAD_HEADER_LEN || l < 0 || (uint64_t)(o + l + OVL_AEAD_TAG_LEN) > s->data_len) return OVL_AEAD_ERANGE;
  }
  EVP_CIPHER_CTX *ctx = a->ctx;
  if (EVP_CipherInit_ex(ctx, a->cipher, NULL, key, NULL, 1) != 1) return OVL_AEAD_ECRYPTO;
  uint8_t nonce[12];
  for (int i = 0; i < s->count; i++) {
    int32_t slot = s->slots[i];
    int32_t o = s->off[slot], l = s->len[slot];
    uint8_t *body = s->data + o;
    uint64_t c = counter + (uint64_t)i;
    int outl = 0, fin = 0;
    nonce_of(nonce, c);
    if (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, nonce, 1) != 1) return OVL_AEAD_ECRYPTO;
    if (l > 0 && EVP_CipherUpdate(ctx, body, &outl, body, l) != 1) return OVL_AEAD_ECRYPTO;
    if (EVP_CipherFinal_ex(ctx, body + outl, &fin) != 1) return OVL_AEAD_ECRYPTO;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, OVL_AEAD_TAG_LEN, body + l) != 1) return OVL_AEAD_ECRYPTO;
    uint8_t *h = body - OVL_AEAD_HEADER_LEN;
    put32(h, OVL_AEAD_MSG_DATA);
    put32(h + 4, remote_index);
    put32(h + 8, (uint32_t)c);
    put32(h + 12, (uint32_t)(c >> 32));
    s->off[slot] = o - OVL_AEAD_HEADER_LEN;
    s->len[slot] = l + OVL_AEAD_HEADER_LEN + OVL_AEAD_TAG_LEN;
  }
  return s->count;
}

int ovl_aead_open(struct ovl_aead *a, const uint8_t *key, const struct ovl_aead_slots *s, uint8_t *ok) {
  for (int i = 0; i < s->count; i++) {
    int32_t slot = s->slots[i];
    if (slot < 0 || (size_t)slot >= s->nslots_pool) return OVL_AEAD_ERANGE;
    int64_t o = s->off[slot], l = s->len[slot];
    if (o < 0 || l < OVL_AEAD_HEADER_LEN + OVL_AEAD_TAG_LEN || (uint64_t)(o + l) > s->data_len) return OVL_AEAD_ERANGE;
  }
  EVP_CIPHER_CTX *ctx = a->ctx;
  if (EVP_CipherInit_ex(ctx, a->cipher, NULL, key, NULL, 0) != 1) return OVL_AEAD_ECRYPTO;
  uint8_t nonce[12];
  int opened = 0;
  for (int i = 0; i < s->count; i++) {
    int32_t slot = s->slots[i];
    int32_t o = s->off[slot];
    int n = s->len[slot] - OVL_AEAD_HEADER_LEN - OVL_AEAD_TAG_LEN;
    uint8_t *h = s->data + o, *body = h + OVL_AEAD_HEADER_LEN;
    uint64_t c = (uint64_t)get32(h + 8) | (uint64_t)get32(h + 12) << 32;
    int outl = 0, fin = 0, good;
    nonce_of(nonce, c);
    good = EVP_CipherInit_ex(ctx, NULL, NULL, NULL, nonce, 0) == 1 && (n == 0 || EVP_CipherUpdate(ctx, body, &outl, body, n) == 1);
    int touched = good;
    good = good && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, OVL_AEAD_TAG_LEN, body + n) == 1 && EVP_CipherFinal_ex(ctx, body + outl, &fin) == 1;
    if (good) {
      ok[i] = 1;
      s->off[slot] = o + OVL_AEAD_HEADER_LEN;
      s->len[slot] = n;
      opened++;
      continue;
    }
    ok[i] = 0;
    /* Forged or corrupted: the body was decrypted before the tag was checked; XOR the same
     * keystream back so the slot holds what arrived. Then decrypting again for the next slot. */
    if (touched && n > 0 && !rekeystream(ctx, nonce, body, n)) return OVL_AEAD_ECRYPTO;
    if (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, NULL, 0) != 1) return OVL_AEAD_ECRYPTO;
  }
  return opened;
}
