{
  "targets": [
    {
      "target_name": "latchgate",
      "sources": [
        "native/addon.cc",
        "native/spawn.cc",
        "native/child.cc",
        "native/namespaces.cc",
        "native/mounts.cc",
        "native/landlock.cc",
        "native/seccomp.cc",
        "native/caps_rlimits.cc",
        "native/init.cc",
        "native/pty.cc",
        "native/fdpass.cc",
        "native/relay.cc",
        "native/fsident.cc",
        "native/idmap.cc",
        "native/openat.cc",
        "native/linkwalk.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-fno-exceptions", "-fno-rtti", "-O2"]
    }
  ]
}
