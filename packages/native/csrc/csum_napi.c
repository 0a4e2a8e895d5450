/*
 * N-API glue for csum.c: a batched checksum over (offset, length, seed) triples and TSO
 * segmentation of one super-frame into pool slots, each one call, in place on the caller's typed
 * arrays (no allocation). Bad arguments throw a RangeError/TypeError with code ERR_OUT_OF_RANGE or
 * ERR_INVALID_ARG_TYPE: the TypeScript callers compute every offset, so these are bugs, not input.
 */
#include <node_api.h>
#include <stdint.h>

#include "napi_args.h"

#include "csum.h"
#include "csum_napi.h"

static napi_value type_error(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return NULL;
}

static napi_value range_error(napi_env env, const char *msg) {
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
  return NULL;
}


static int u32(napi_env env, napi_value v, uint32_t *out) {
  int32_t i;
  if (napi_get_value_int32(env, v, &i) != napi_ok || i < 0) return 0;
  *out = (uint32_t)i;
  return 1;
}

/*
 * checksumBatch(data: Uint8Array, tri: Int32Array, count): for i < count, with
 * [off, len, seed] = tri[3i .. 3i+3), tri[3i+2] becomes the folded ones' complement sum of
 * data[off .. off+len) plus seed (0 .. 0xffff) — the dataplane's onesComplementSum.
 */
static napi_value js_checksum_batch(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3) return type_error(env, "checksumBatch(data, tri, count)");
  uint8_t *data;
  int32_t *tri;
  size_t dlen, tlen;
  uint32_t count;
  if (!ovl_napi_typed(env, argv[0], napi_uint8_array, (void **)&data, &dlen) || !ovl_napi_typed(env, argv[1], napi_int32_array, (void **)&tri, &tlen) ||
      !u32(env, argv[2], &count))
    return type_error(env, "checksumBatch(data: Uint8Array, tri: Int32Array, count: number)");
  if ((size_t)count * 3 > tlen) return range_error(env, "checksumBatch: count exceeds the triples");
  for (uint32_t i = 0; i < count; i++) {
    int32_t o = tri[3 * i], l = tri[3 * i + 1], seed = tri[3 * i + 2];
    if (o < 0 || l < 0 || (size_t)o + (size_t)l > dlen || seed < 0 || seed > 0xffff)
      return range_error(env, "checksumBatch: a triple is outside the buffer or its seed outside 0..0xffff");
  }
  for (uint32_t i = 0; i < count; i++) tri[3 * i + 2] = (int32_t)ovl_csum_sum(data + tri[3 * i], (size_t)tri[3 * i + 1], (uint32_t)tri[3 * i + 2]);
  return NULL;
}

/*
 * tsoSegment(src: Uint8Array, srcOff, srcLen, mss, dst: Uint8Array, off: Int32Array, len: Int32Array,
 *            frameCapacity, slots: Int32Array, first, count) -> frames written (segment first + i
 *            into slot slots[i], skipped when negative), or -1 when the frame is
 * not an IPv4 TCP segment this can cut (nothing written). See ovl_tso_segment in csum.h.
 */
static napi_value js_tso_segment(napi_env env, napi_callback_info info) {
  size_t argc = 11;
  napi_value argv[11];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 11) return type_error(env, "tsoSegment: 11 arguments");
  uint8_t *src, *dst;
  int32_t *off, *len, *slots;
  size_t slen, dlen, offn, lenn, slotn;
  uint32_t so, sl, mss, cap, first, count;
  if (!ovl_napi_typed(env, argv[0], napi_uint8_array, (void **)&src, &slen) || !u32(env, argv[1], &so) || !u32(env, argv[2], &sl) ||
      !u32(env, argv[3], &mss) || !ovl_napi_typed(env, argv[4], napi_uint8_array, (void **)&dst, &dlen) ||
      !ovl_napi_typed(env, argv[5], napi_int32_array, (void **)&off, &offn) || !ovl_napi_typed(env, argv[6], napi_int32_array, (void **)&len, &lenn) ||
      !u32(env, argv[7], &cap) || !ovl_napi_typed(env, argv[8], napi_int32_array, (void **)&slots, &slotn) || !u32(env, argv[9], &first) ||
      !u32(env, argv[10], &count))
    return type_error(env, "tsoSegment(src, srcOff, srcLen, mss, dst, off, len, frameCapacity, slots, first, count)");
  if ((size_t)so + sl > slen || count > slotn) return range_error(env, "tsoSegment: source or slot list out of range");
  struct ovl_tso_args a = {
      .src = src + so,
      .src_len = sl,
      .mss = mss,
      .dst = dst,
      .dst_len = dlen,
      .off = off,
      .len = len,
      .nslots_pool = offn < lenn ? offn : lenn,
      .frame_capacity = cap,
      .slots = slots,
      .first = first,
      .count = count,
  };
  int rc = ovl_tso_segment(&a);
  if (rc == OVL_TSO_ERANGE) return range_error(env, "tsoSegment: segment count, slot or offset out of range");
  napi_value v;
  if (napi_create_int32(env, rc, &v) != napi_ok) return NULL;
  return v;
}

int ovl_csum_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"checksumBatch", NULL, js_checksum_batch, NULL, NULL, NULL, napi_default, NULL},
      {"tsoSegment", NULL, js_tso_segment, NULL, NULL, NULL, napi_default, NULL},
  };
  return napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) == napi_ok;
}
