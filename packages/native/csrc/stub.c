/* Non-Linux builds: an empty module. The TypeScript side throws UnsupportedPlatformError before
   it would load this, so nothing here is ever called. */
#include <node_api.h>

static napi_value init(napi_env env, napi_value exports) {
  (void)env;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
