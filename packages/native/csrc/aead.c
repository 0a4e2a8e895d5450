/*
 * ChaCha20-Poly1305 (RFC 8439) for WireGuard transport data, batched over pool slots. The cipher
 * is the OpenSSL that Node.js carries: its libcrypto symbols are exported to addons (the headers
 * come with node's, e.g. /usr/include/node/openssl), so nothing is vendored or linked. The nonce
 * is WireGuard's: 32 zero bits, then the 64-bit little-endian counter; no associated data.
 */
#include <dlfcn.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "aead.h"
#include "io.h"

/*
 * The direct path: OpenSSL's ChaCha20 and Poly1305 primitives under the EVP layer, which a
 * Node.js build with its own OpenSSL exports (the binary's symbol table) but a shared libcrypto
 * does not; looked up at run time, so an addon loaded elsewhere keeps the EVP path. Per packet
 * EVP costs a parameter parse (OSSL_PARAM lookups by name), a separate keystream call for the
 * last partial block and the tag get/set controls; the direct path is two keystream calls (the
 * Poly1305 key block, then the body in one) and the MAC, and open checks the tag before it
 * decrypts anything.
 */
/* Room for the key block and a 1500-byte-MTU datagram's body with margin (open's one-call path). */
#define OVL_AEAD_STREAM 2112

typedef void (*chacha_fn)(unsigned char *out, const unsigned char *in, size_t len, const unsigned int key[8], const unsigned int counter[4]);
typedef size_t (*poly_size_fn)(void);
typedef void (*poly_init_fn)(void *ctx, const unsigned char key[32]);
typedef void (*poly_update_fn)(void *ctx, const unsigned char *in, size_t len);
typedef void (*poly_final_fn)(void *ctx, unsigned char mac[16]);

struct ovl_aead {
  EVP_CIPHER *cipher;
  EVP_CIPHER_CTX *ctx;
  /* Direct path (all set, or chacha == NULL). */
  chacha_fn chacha;
  poly_init_fn poly_init;
  poly_update_fn poly_update;
  poly_final_fn poly_final;
  void *poly;
  /* Keystream of one message on open: its key block and body (see direct_open). */
  uint8_t stream[OVL_AEAD_STREAM];
};

static const uint8_t zero_stream[OVL_AEAD_STREAM];

/* dst = src ^ ks over n bytes, 16 at a time (SSE2 on x86-64); src may be dst. */
static void xor_to(uint8_t *dst, const uint8_t *src, const uint8_t *ks, size_t n) {
  typedef uint8_t v16 __attribute__((vector_size(16)));
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    v16 x, y;
    memcpy(&x, src + i, 16);
    memcpy(&y, ks + i, 16);
    x ^= y;
    memcpy(dst + i, &x, 16);
  }
  for (; i < n; i++) dst[i] = src[i] ^ ks[i];
}

/*
 * Where the message of `slot` (its header at h in the slot, len bytes) is: in the slot, or still
 * in the UDP receive staging area (a deferred copy, io.h). NULL: its bytes are gone.
 */
static const uint8_t *message_of(const struct ovl_aead_slots *s, int32_t slot, const uint8_t *h, int32_t len) {
  const uint8_t *src = NULL;
  int d = ovl_defer_take(s->data, slot, h, len, &src);
  return d == 0 ? h : d > 0 ? src : NULL;
}

/* One slot of an open batch: where its message is and what a successful open leaves in it. */
struct opening {
  int32_t slot, o;
  int n;              /* ciphertext bytes (without header and tag) */
  uint8_t *h, *body;  /* the header and the body in the slot */
  const uint8_t *m;   /* the whole message: h, or in the staging area (message_of) */
};

/* Slot i of `s` into *x; 0 when its bytes are gone (the open of it fails). */
static int opening_at(const struct ovl_aead_slots *s, int i, struct opening *x) {
  x->slot = s->slots[i];
  x->o = s->off[x->slot];
  x->n = s->len[x->slot] - OVL_AEAD_HEADER_LEN - OVL_AEAD_TAG_LEN;
  x->h = s->data + x->o;
  x->body = x->h + OVL_AEAD_HEADER_LEN;
  x->m = message_of(s, x->slot, x->h, s->len[x->slot]);
  return x->m != NULL;
}

/* The slot now holds the plaintext: off/len on the body. */
static void opened_slot(const struct ovl_aead_slots *s, const struct opening *x) {
  s->off[x->slot] = x->o + OVL_AEAD_HEADER_LEN;
  s->len[x->slot] = x->n;
}

static void direct_setup(struct ovl_aead *a) {
  chacha_fn chacha = (chacha_fn)dlsym(RTLD_DEFAULT, "ChaCha20_ctr32");
  poly_size_fn size = (poly_size_fn)dlsym(RTLD_DEFAULT, "Poly1305_ctx_size");
  poly_init_fn init = (poly_init_fn)dlsym(RTLD_DEFAULT, "Poly1305_Init");
  poly_update_fn update = (poly_update_fn)dlsym(RTLD_DEFAULT, "Poly1305_Update");
  poly_final_fn final = (poly_final_fn)dlsym(RTLD_DEFAULT, "Poly1305_Final");
  if (!chacha || !size || !init || !update || !final) return;
  size_t n = size();
  if (n == 0 || n > 4096) return;
  a->poly = aligned_alloc(64, (n + 63) & ~(size_t)63);
  if (!a->poly) return;
  a->chacha = chacha;
  a->poly_init = init;
  a->poly_update = update;
  a->poly_final = final;
}

struct ovl_aead *ovl_aead_new(int direct) {
  struct ovl_aead *a = calloc(1, sizeof(*a));
  if (!a) return NULL;
  a->cipher = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
  a->ctx = EVP_CIPHER_CTX_new();
  if (!a->cipher || !a->ctx) {
    ovl_aead_free(a);
    return NULL;
  }
  if (direct) direct_setup(a);
  return a;
}

int ovl_aead_direct(const struct ovl_aead *a) { return a->chacha != NULL; }

void ovl_aead_free(struct ovl_aead *a) {
  if (!a) return;
  if (a->ctx) EVP_CIPHER_CTX_free(a->ctx);
  if (a->cipher) EVP_CIPHER_free(a->cipher);
  if (a->poly) {
    OPENSSL_cleanse(a->poly, 64);
    free(a->poly);
  }
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

/* After sealing slot's body in place: the header before it, off/len on the whole message. */
static void sealed(const struct ovl_aead_slots *s, int32_t slot, uint32_t remote_index, uint64_t c) {
  uint8_t *h = s->data + s->off[slot] - OVL_AEAD_HEADER_LEN;
  put32(h, OVL_AEAD_MSG_DATA);
  put32(h + 4, remote_index);
  put32(h + 8, (uint32_t)c);
  put32(h + 12, (uint32_t)(c >> 32));
  s->off[slot] -= OVL_AEAD_HEADER_LEN;
  s->len[slot] += OVL_AEAD_HEADER_LEN + OVL_AEAD_TAG_LEN;
}

static void key_words(const uint8_t *key, unsigned int k[8]) {
  for (int i = 0; i < 8; i++) k[i] = get32(key + 4 * i);
}

/* RFC 8439 §2.8 without associated data: Poly1305 over ciphertext, zero padding to 16, le64(0), le64(n). */
static void direct_tag(struct ovl_aead *a, const uint8_t polykey[32], const uint8_t *ct, size_t n, uint8_t tag[16]) {
  static const uint8_t zero[16];
  uint8_t lens[16];
  a->poly_init(a->poly, polykey);
  if (n > 0) a->poly_update(a->poly, ct, n);
  if (n % 16) a->poly_update(a->poly, zero, 16 - n % 16);
  put32(lens, 0);
  put32(lens + 4, 0);
  put32(lens + 8, (uint32_t)n);
  put32(lens + 12, (uint32_t)((uint64_t)n >> 32));
  a->poly_update(a->poly, lens, 16);
  a->poly_final(a->poly, tag);
}

/* The Poly1305 key of a message: the first 32 bytes of keystream block 0 (ctr[0] = 0). */
static void direct_polykey(struct ovl_aead *a, const unsigned int k[8], unsigned int ctr[4], uint8_t block[64]) {
  static const uint8_t zero[64];
  ctr[0] = 0;
  a->chacha(block, zero, 64, k, ctr);
}

static void direct_seal(struct ovl_aead *a, const uint8_t *key, uint32_t remote_index, uint64_t counter, const struct ovl_aead_slots *s) {
  unsigned int k[8], ctr[4];
  uint8_t block[64];
  key_words(key, k);
  for (int i = 0; i < s->count; i++) {
    int32_t slot = s->slots[i];
    int32_t o = s->off[slot], l = s->len[slot];
    uint8_t *body = s->data + o;
    uint64_t c = counter + (uint64_t)i;
    ctr[1] = 0;
    ctr[2] = (uint32_t)c;
    ctr[3] = (uint32_t)(c >> 32);
    if (o >= 64) {
      /* One keystream call for the key block and the body: block 0 lands in the 64 bytes
         before the body (saved and put back; the header is written there after). */
      uint8_t *k0 = body - 64;
      memcpy(block, k0, 64);
      memset(k0, 0, 64);
      ctr[0] = 0;
      a->chacha(k0, k0, (size_t)l + 64, k, ctr);
      uint8_t polykey[32];
      memcpy(polykey, k0, 32);
      memcpy(k0, block, 64);
      direct_tag(a, polykey, body, (size_t)l, body + l);
      OPENSSL_cleanse(polykey, sizeof(polykey));
    } else {
      direct_polykey(a, k, ctr, block);
      if (l > 0) {
        ctr[0] = 1;
        a->chacha(body, body, (size_t)l, k, ctr);
      }
      direct_tag(a, block, body, (size_t)l, body + l);
    }
    sealed(s, slot, remote_index, c);
  }
  OPENSSL_cleanse(block, sizeof(block));
  OPENSSL_cleanse(k, sizeof(k));
}

static int direct_open(struct ovl_aead *a, const uint8_t *key, const struct ovl_aead_slots *s, uint8_t *ok) {
  unsigned int k[8], ctr[4];
  uint8_t block[64], tag[16];
  int opened = 0;
  key_words(key, k);
  struct opening x;
  for (int i = 0; i < s->count; i++) {
    if (!opening_at(s, i, &x)) {
      ok[i] = 0;
      continue;
    }
    /* The ciphertext and tag: in the slot, or read from the staging area (decrypted into the slot). */
    const uint8_t *ct = x.m + OVL_AEAD_HEADER_LEN;
    ctr[1] = 0;
    ctr[2] = get32(x.h + 8);
    ctr[3] = get32(x.h + 12);
    /* Checked before anything is decrypted: a forged message leaves the slot as it came. Up to
       OVL_AEAD_STREAM bytes, one keystream call covers the key block and the body (into the
       scratch area, XORed in after the check); longer, a call each. */
    ctr[0] = 0;
    int one = (size_t)x.n + 64 <= OVL_AEAD_STREAM;
    if (one) {
      a->chacha(a->stream, zero_stream, (size_t)x.n + 64, k, ctr);
      direct_tag(a, a->stream, ct, (size_t)x.n, tag);
    } else {
      direct_polykey(a, k, ctr, block);
      direct_tag(a, block, ct, (size_t)x.n, tag);
    }
    if (CRYPTO_memcmp(tag, ct + x.n, OVL_AEAD_TAG_LEN) != 0) {
      ok[i] = 0;
      if (ct != x.body) memcpy(x.body, ct, (size_t)x.n + OVL_AEAD_TAG_LEN); /* the slot as it arrived */
      continue;
    }
    if (one) {
      xor_to(x.body, ct, a->stream + 64, (size_t)x.n);
    } else if (x.n > 0) {
      ctr[0] = 1;
      a->chacha(x.body, ct, (size_t)x.n, k, ctr);
    }
    ok[i] = 1;
    opened_slot(s, &x);
    opened++;
  }
  OPENSSL_cleanse(block, sizeof(block));
  OPENSSL_cleanse(k, sizeof(k));
  OPENSSL_cleanse(a->stream, 64); /* the Poly1305 key block; the rest is keystream of what the slots now hold in clear */
  return opened;
}

int ovl_aead_seal(struct ovl_aead *a, const uint8_t *key, uint32_t remote_index, uint64_t counter, const struct ovl_aead_slots *s) {
  for (int i = 0; i < s->count; i++) {
    int32_t slot = s->slots[i];
    if (slot < 0 || (size_t)slot >= s->nslots_pool) return OVL_AEAD_ERANGE;
    int64_t o = s->off[slot], l = s->len[slot];
    if (o < OVL_AEAD_HEADER_LEN || l < 0 || (uint64_t)(o + l + OVL_AEAD_TAG_LEN) > s->data_len) return OVL_AEAD_ERANGE;
  }
  if (a->chacha) {
    direct_seal(a, key, remote_index, counter, s);
    return s->count;
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
    sealed(s, slot, remote_index, c);
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
  if (a->chacha) return direct_open(a, key, s, ok);
  EVP_CIPHER_CTX *ctx = a->ctx;
  if (EVP_CipherInit_ex(ctx, a->cipher, NULL, key, NULL, 0) != 1) return OVL_AEAD_ECRYPTO;
  uint8_t nonce[12];
  int opened = 0;
  struct opening x;
  for (int i = 0; i < s->count; i++) {
    if (!opening_at(s, i, &x)) {
      ok[i] = 0;
      continue;
    }
    if (x.m != x.h) memcpy(x.body, x.m + OVL_AEAD_HEADER_LEN, (size_t)x.n + OVL_AEAD_TAG_LEN);
    uint64_t c = (uint64_t)get32(x.h + 8) | (uint64_t)get32(x.h + 12) << 32;
    int outl = 0, fin = 0, good;
    nonce_of(nonce, c);
    good = EVP_CipherInit_ex(ctx, NULL, NULL, NULL, nonce, 0) == 1 && (x.n == 0 || EVP_CipherUpdate(ctx, x.body, &outl, x.body, x.n) == 1);
    int touched = good;
    good = good && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, OVL_AEAD_TAG_LEN, x.body + x.n) == 1 && EVP_CipherFinal_ex(ctx, x.body + outl, &fin) == 1;
    if (good) {
      ok[i] = 1;
      opened_slot(s, &x);
      opened++;
      continue;
    }
    ok[i] = 0;
    /* Forged or corrupted: the body was decrypted before the tag was checked; XOR the same
     * keystream back so the slot holds what arrived. Then decrypting again for the next slot. */
    if (touched && x.n > 0 && !rekeystream(ctx, nonce, x.body, x.n)) return OVL_AEAD_ECRYPTO;
    if (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, NULL, 0) != 1) return OVL_AEAD_ECRYPTO;
  }
  return opened;
}
