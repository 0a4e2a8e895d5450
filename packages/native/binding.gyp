{
  "targets": [
    {
      "target_name": "overlay_native",
      "conditions": [
        ["OS=='linux'", { "sources": ["csrc/addon.c", "csrc/io_linux.c", "csrc/csum.c", "csrc/csum_napi.c", "csrc/aead.c", "csrc/aead_napi.c", "csrc/napi_args.c"] }, { "sources": ["csrc/stub.c"] }]
      ],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden"]
    }
  ]
}
