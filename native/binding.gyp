{
  # Builds against Debian's libtorch (libtorch-dev) by default. Set LIBTORCH to
  # the root of an official libtorch distribution (CPU or CUDA, cxx11 ABI) to
  # build against it instead; its lib folder is recorded as the run path.
  "variables": {
    "libtorch%": "<!(echo ${LIBTORCH:-})",
    "with_cuda%": "<!(if [ -n \"${LIBTORCH:-}\" ] && ls ${LIBTORCH}/lib/libtorch_cuda.so >/dev/null 2>&1; then echo 1; else echo 0; fi)"
  },
  "targets": [
    {
      "target_name": "vaeguard",
      "sources": [
        "src/addon.cc",
        "src/allocator.cc",
        "src/tensor.cc",
        "src/ops_elementwise.cc",
        "src/ops_reduce.cc",
        "src/ops_shape.cc",
        "src/ops_nn.cc",
        "src/maxpool2x2.cc",
        "src/autograd.cc",
        "src/jit.cc",
        "src/threads.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      # NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS: when a worker is terminated
      # during a call, the JS error cannot be thrown any more; without it
      # node-addon-api rethrows from a callback and aborts the whole process.
      "defines": ["NAPI_CPP_EXCEPTIONS", "NAPI_VERSION=8", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++14"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-O2", "-Wno-unused-parameter", "-Wno-deprecated-declarations"],
      "conditions": [
        ["libtorch==''", {
          "include_dirs": ["/usr/include/torch/csrc/api/include"],
          "libraries": ["-ltorch", "-ltorch_cpu", "-lc10"]
        }, {
          "include_dirs": ["<(libtorch)/include", "<(libtorch)/include/torch/csrc/api/include"],
          "libraries": ["-L<(libtorch)/lib", "-Wl,-rpath,<(libtorch)/lib", "-Wl,--no-as-needed", "-ltorch", "-ltorch_cpu", "-lc10"],
          "conditions": [
            ["with_cuda==1", {"libraries": ["-ltorch_cuda", "-lc10_cuda"]}]
          ]
        }]
      ]
    }
  ]
}
