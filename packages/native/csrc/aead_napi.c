/*
 * N-API glue for aead.c: sealBatch/openBatch, one call for a run of slots under one key, in place
 * on the pool's arrays (no allocation). Each environment (main thread, each worker) gets its own
 * cipher context, freed with the environment. Bad arguments throw TypeError/RangeError with code
 * ERR_INVALID_ARG_TYPE/ERR_OUT_OF_RANGE: the TypeScript caller computes every offset, so these
 * are bugs, not input.
 */
#include <node_api.h>
#include <stdint.h>

#include "napi_args.h"

#include "aead.h"
#include "aead_napi.h"

static napi_value fail(napi_env env, int range, const char *msg) {
  if (range) napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
  else napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return NULL;
}


static int i32(napi_env env, napi_value v, int32_t *out) { return napi_get_value_int32(env, v, out) == napi_ok; }

/* Arguments 0..6 shared by both: data, off, len, slots, first, count, key. */
static int slots_args(napi_env env, napi_value *argv, struct ovl_aead_slots *s, const uint8_t **key, int32_t *firstp) {
  size_t offn, lenn, slotn, keyn;
  int32_t first, count;
  void *k;
  if (!ovl_napi_typed(env, argv[0], napi_uint8_array, (void **)&s->data, &s->data_len) || !ovl_napi_typed(env, argv[1], napi_int32_array, (void **)&s->off, &offn) ||
      !ovl_napi_typed(env, argv[2], napi_int32_array, (void **)&s->len, &lenn) || !ovl_napi_typed(env, argv[3], napi_int32_array, (void **)&s->slots, &slotn) ||
      !i32(env, argv[4], &first) || !i32(env, argv[5], &count) || !ovl_napi_typed(env, argv[6], napi_uint8_array, &k, &keyn))
    return 0;
  if (first < 0 || count < 0 || (size_t)first + (size_t)count > slotn || keyn != OVL_AEAD_KEY_LEN) return -1;
  s->nslots_pool = offn < lenn ? offn : lenn;
  s->slots += first;
  s->count = count;
  *key = k;
  *firstp = first;
  return 1;
}

/* sealBatch(data, off, len, slots, first, count, key, remoteIndex, counterLo, counterHi): see ovl_aead_seal. */
static napi_value js_seal(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10];
  struct ovl_aead *a;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, (void **)&a) != napi_ok || argc < 10) return fail(env, 0, "sealBatch: 10 arguments");
  struct ovl_aead_slots s;
  const uint8_t *key;
  int32_t idx, lo, hi, first;
  int r = slots_args(env, argv, &s, &key, &first);
  if (r == 0 || !i32(env, argv[7], &idx) || !i32(env, argv[8], &lo) || !i32(env, argv[9], &hi))
    return fail(env, 0, "sealBatch(data: Uint8Array, off: Int32Array, len: Int32Array, slots: Int32Array, first, count, key: Uint8Array, remoteIndex, counterLo, counterHi)");
  if (r < 0) return fail(env, 1, "sealBatch: slot range or key length");
  uint64_t counter = (uint64_t)(uint32_t)lo | (uint64_t)(uint32_t)hi << 32;
  int rc = ovl_aead_seal(a, key, (uint32_t)idx, counter, &s);
  if (rc == OVL_AEAD_ERANGE) return fail(env, 1, "sealBatch: a slot is outside the pool or has no room for header and tag");
  if (rc < 0) return fail(env, 0, "sealBatch: the cipher failed");
  return NULL;
}

/* openBatch(data, off, len, slots, first, count, key, ok: Uint8Array) -> opened: see ovl_aead_open; slot first + i's verdict in ok[first + i]. */
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  struct ovl_aead *a;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, (void **)&a) != napi_ok || argc < 8) return fail(env, 0, "openBatch: 8 arguments");
  struct ovl_aead_slots s;
  const uint8_t *key;
  uint8_t *ok;
  size_t okn;
  int32_t first;
  int r = slots_args(env, argv, &s, &key, &first);
  if (r == 0 || !ovl_napi_typed(env, argv[7], napi_uint8_array, (void **)&ok, &okn))
    return fail(env, 0, "openBatch(data: Uint8Array, off: Int32Array, len: Int32Array, slots: Int32Array, first, count, key: Uint8Array, ok: Uint8Array)");
  if (r < 0 || okn < (size_t)first + (size_t)s.count) return fail(env, 1, "openBatch: slot range, key length or ok too short");
  int rc = ovl_aead_open(a, key, &s, ok + first);
  if (rc == OVL_AEAD_ERANGE) return fail(env, 1, "openBatch: a slot is outside the pool or shorter than 32 bytes");
  if (rc < 0) return fail(env, 0, "openBatch: the cipher failed");
  napi_value v;
  if (napi_create_int32(env, rc, &v) != napi_ok) return NULL;
  return v;
}

static void free_aead(void *a) { ovl_aead_free(a); }

int ovl_aead_register(napi_env env, napi_value exports) {
  /* Two contexts: the default (direct where this process exports the primitives, see aead.c)
     and one forced onto EVP, for comparing the two (tests, benchmarks). */
  struct ovl_aead *a = ovl_aead_new(1), *evp = ovl_aead_new(0);
  if (!a || !evp) {
    ovl_aead_free(a);
    ovl_aead_free(evp);
    return 1; /* no ChaCha20-Poly1305 in this OpenSSL: the entry points are absent, callers fall back */
  }
  /* Freed when this environment (the main thread or a worker) is torn down. */
  if (napi_add_env_cleanup_hook(env, free_aead, a) != napi_ok) {
    ovl_aead_free(a);
    ovl_aead_free(evp);
    return 0;
  }
  if (napi_add_env_cleanup_hook(env, free_aead, evp) != napi_ok) {
    ovl_aead_free(evp);
    return 0;
  }
  napi_value direct;
  if (napi_get_boolean(env, ovl_aead_direct(a), &direct) != napi_ok) return 0;
  napi_property_descriptor props[] = {
      {"sealBatch", NULL, js_seal, NULL, NULL, NULL, napi_default, a},
      {"openBatch", NULL, js_open, NULL, NULL, NULL, napi_default, a},
      {"sealBatchEvp", NULL, js_seal, NULL, NULL, NULL, napi_default, evp},
      {"openBatchEvp", NULL, js_open, NULL, NULL, NULL, napi_default, evp},
      {"aeadDirect", NULL, NULL, NULL, NULL, direct, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) == napi_ok;
}
