/* Argument helpers shared by the N-API glue files (addon.c, csum_napi.c, aead_napi.c). */
#ifndef OVL_NAPI_ARGS_H
#define OVL_NAPI_ARGS_H
#include <node_api.h>
#include <stddef.h>

/* A typed array of the expected element type: 1 and its data and element count, else 0. */
int ovl_napi_typed(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *len);

#endif
