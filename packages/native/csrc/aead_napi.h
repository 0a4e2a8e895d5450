#ifndef OVL_AEAD_NAPI_H
#define OVL_AEAD_NAPI_H
#include <node_api.h>
/* Adds sealBatch/openBatch to exports, with a cipher context for this environment. 1 on success. */
int ovl_aead_register(napi_env env, napi_value exports);
#endif
