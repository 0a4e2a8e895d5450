/* Registers checksumBatch and tsoSegment (csum_napi.c) on the addon's exports; 1 on success. */
#ifndef OVL_CSUM_NAPI_H
#define OVL_CSUM_NAPI_H
#include <node_api.h>
int ovl_csum_register(napi_env env, napi_value exports);
#endif
