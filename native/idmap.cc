// Idmapped mounts (mount_setattr(2) MOUNT_ATTR_IDMAP, Linux 5.12+): how a
// root launcher gives a root-owned workspace to the box's unprivileged user.
// The idmap is a user namespace whose uid_map reads "<owner> <box uid> 1":
// through the mount, the owner's files are the box user's, and what the box
// user creates is the owner's on disk; every other id stays unmapped (the
// kernel then treats it as no one's: "other" permissions, no chown to it).
// Only root in the initial namespaces may idmap a host filesystem, so this
// runs in the launcher (the parent, before clone(), and fsident.cc's view),
// never in the box. Kernel: Documentation/filesystems/idmappings.rst.
#include <napi.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <string>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/mount.h>

#include "common.h"
#include "kernel-abi.h"
#include "idmap.h"


namespace lg {
namespace {


// A new user namespace with these maps, held by an fd: a helper process is
// cloned into it (a multi-threaded process cannot unshare one), its maps
// written, its namespace opened, and the helper ended.
int new_userns(const std::string& uid_map, const std::string& gid_map, const char** step) {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) { *step = "pipe2 (idmap helper)"; return -errno; }
  int pidfd = -1;
  long pid = syscall(SYS_clone, CLONE_NEWUSER | CLONE_PIDFD | SIGCHLD, 0, &pidfd, 0, 0);
  if (pid == 0) {
    // A copy of a multi-threaded process: raw calls only, until _exit.
    char c;
    close(pipefd[1]);
    while (read(pipefd[0], &c, 1) < 0 && errno == EINTR) {
    }
    _exit(0);
  }
  int err = errno;
  close(pipefd[0]);
  if (pid < 0) {
    close(pipefd[1]);
    *step = "clone (the idmap's user namespace)";
    return -err;
  }
  std::string ns = "/proc/" + std::to_string(pid) + "/ns/user";
  int fd = -1;
  if ((err = write_proc(static_cast<pid_t>(pid), "uid_map", uid_map)) != 0) *step = "write uid_map (the idmap's user namespace)";
  else if ((err = write_proc(static_cast<pid_t>(pid), "gid_map", gid_map)) != 0) *step = "write gid_map (the idmap's user namespace)";
  else if ((fd = open(ns.c_str(), O_RDONLY | O_CLOEXEC)) < 0) err = errno, *step = "open the idmap's user namespace";
  close(pipefd[1]);  // the helper reads end of file and exits
  siginfo_t si;
  while (waitid(static_cast<idtype_t>(P_PIDFD), pidfd, &si, WEXITED) != 0 && errno == EINTR) {
  }
  close(pidfd);
  return fd >= 0 ? fd : -err;
}

}  // namespace

int idmap_userns(const std::string& uid_map, const std::string& gid_map, const char** step) {
  // One namespace per mapping for the launcher's life: a view is taken for
  // every placeholder, and a helper process each time would cost a fork.
  static std::map<std::string, int> cache;
  std::string key = uid_map + "|" + gid_map;
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  int fd = new_userns(uid_map, gid_map, step);
  if (fd >= 0) cache[key] = fd;
  return fd;
}

int idmapped_tree(const char* path, int userns_fd, const char** step) {
  int at = open_no_symlinks(path, 0);
  if (at < 0) { *step = "openat2 RESOLVE_NO_SYMLINKS (the tree to idmap; a symlink on its path is refused)"; return at; }
  int fd = static_cast<int>(syscall(SYS_open_tree, at, "", OPEN_TREE_CLONE | AT_RECURSIVE | AT_EMPTY_PATH | O_CLOEXEC));
  int err = errno;
  close(at);
  if (fd < 0) { *step = "open_tree (a copy of the tree to idmap)"; return -err; }
  // nosuid and nodev with the idmap: a set-ID file or a device node on disk
  // is none in the box, whoever made it.
  MountAttr a{MOUNT_ATTR_IDMAP | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0, 0, static_cast<uint64_t>(userns_fd)};
  if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof(a)) != 0) {
    int e = errno;
    close(fd);
    *step = "mount_setattr MOUNT_ATTR_IDMAP";
    return -e;
  }
  return fd;
}

namespace {

// idmapCheck(paths, uidMap, gidMap) -> null, or {step, errno, path} of the
// first tree the kernel would not idmap. Makes the mounts and drops them:
// whether this kernel and these filesystems can, asked before a plan relies on it.
Napi::Value IdmapCheck(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsArray() || !info[1].IsString() || !info[2].IsString()) {
    Napi::TypeError::New(env, "idmapCheck(paths, uidMap, gidMap)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array paths = info[0].As<Napi::Array>();
  const char* step = nullptr;
  auto failure = [&](int err, const std::string& path) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("step", Napi::String::New(env, step));
    o.Set("errno", Napi::Number::New(env, err));
    o.Set("path", Napi::String::New(env, path));
    return o;
  };
  int ns = idmap_userns(info[1].As<Napi::String>().Utf8Value(), info[2].As<Napi::String>().Utf8Value(), &step);
  if (ns < 0) return failure(-ns, "");
  for (uint32_t i = 0; i < paths.Length(); i++) {
    Napi::Value v = paths.Get(i);
    if (!v.IsString()) {
      Napi::TypeError::New(env, "idmapCheck: paths must hold strings").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    std::string path = v.As<Napi::String>().Utf8Value();
    int fd = idmapped_tree(path.c_str(), ns, &step);
    if (fd < 0) return failure(-fd, path);
    close(fd);
  }
  return env.Null();
}

}  // namespace

void InitIdmap(Napi::Env env, Napi::Object exports) {
  exports.Set("idmapCheck", Napi::Function::New(env, IdmapCheck));
}

}  // namespace lg
