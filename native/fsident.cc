// A filesystem identity for one thread: while a root launcher works inside
// directories another uid controls (the workspace, the agent's home), the
// calling thread's fsuid, fsgid and supplementary groups become that user's.
// Every path the kernel resolves is then checked as that user (a symlink
// swapped in by them leads nowhere they could not write anyway), new files
// are theirs without a chown by path, and the fs capabilities are dropped
// while fsuid is not 0 (setfsuid(2), capabilities(7)). The raw syscalls
// change only the calling thread (glibc would broadcast setgroups to all).
//
// With a view (a root-owned workspace given to the box's user through an
// idmapped mount, idmap.cc), the thread also sees those trees as the box
// does: it enters a mount namespace of its own with each tree's idmapped copy
// mounted over it, so the other user's rights are exactly the agent's there,
// and goes back to the launcher's namespace afterwards. A directory above a
// tree that the user may not search (/root) is covered there by an empty
// tmpfs holding only the way to the tree, as the box's root does: what the
// user could not reach stays out of reach, the tree is reached.
// unshare(CLONE_NEWNS) gives the thread a filesystem context (cwd, root,
// umask) of its own from then on; cwd and root are restored, and latchgate
// changes none of them later on another thread's behalf (no process.chdir;
// box-dir.ts sets the umask around a call made on this same thread).
#include <napi.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <sched.h>
#include <string>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <vector>

#include "common.h"
#include "idmap.h"
#include "kernel-abi.h"

namespace lg {
namespace {

// setfsuid/setfsgid never fail visibly: called with an invalid id (-1) they
// change nothing and return the current one.
long CurrentFsuid() { return syscall(SYS_setfsuid, -1); }
long CurrentFsgid() { return syscall(SYS_setfsgid, -1); }

// Back to the thread's own identity; if that fails the process must not go
// on, root's work would continue as the other user (or the reverse).
void Restore(uid_t uid, gid_t gid, const std::vector<gid_t>& groups) {
  syscall(SYS_setfsuid, uid);  // first: fsuid 0 gives the fs capabilities back
  syscall(SYS_setfsgid, gid);
  const char* step = nullptr;
  int err = 0;
  if (syscall(SYS_setgroups, groups.size(), groups.data()) != 0) step = "setgroups", err = errno;
  else if (CurrentFsuid() != static_cast<long>(uid)) step = "setfsuid", err = EPERM;
  else if (CurrentFsgid() != static_cast<long>(gid)) step = "setfsgid", err = EPERM;
  if (step != nullptr) {
    fprintf(stderr, "latchgate: cannot restore the launcher's filesystem identity (%s: errno %d); aborting\n", step, err);
    abort();
  }
}

// A uid or gid argument: an integer in [0, 2^32 - 2] (-1 means "unchanged" to the kernel).
bool IdArg(const Napi::Value& v, uint32_t* out) {
  if (!v.IsNumber()) return false;
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 4294967294.0) || std::floor(d) != d) return false;
  *out = static_cast<uint32_t>(d);
  return true;
}

// The launcher's mount namespace, root and cwd while a view is entered.
struct Saved { int mnt = -1, root = -1, cwd = -1; };

void CloseSaved(Saved& s) {
  for (int fd : {s.mnt, s.root, s.cwd}) if (fd >= 0) close(fd);
  s = Saved{};
}

// Back to the launcher's mount namespace, root and cwd; if that fails the
// process must not go on seeing the agent's view as the host.
void Leave(Saved& s) {
  const char* step = nullptr;
  if (syscall(SYS_setns, s.mnt, CLONE_NEWNS) != 0) step = "setns";
  else if (fchdir(s.root) != 0 || chroot(".") != 0) step = "chroot";
  else if (fchdir(s.cwd) != 0) step = "fchdir";
  if (step != nullptr) {
    fprintf(stderr, "latchgate: cannot leave the workspace's idmapped view (%s: errno %d); aborting\n", step, errno);
    abort();
  }
  CloseSaved(s);
}

// Whether uid/gid may search the directory, by its mode (as the kernel picks the class).
bool Searchable(const struct stat& st, uid_t uid, gid_t gid) {
  unsigned shift = st.st_uid == uid ? 6 : st.st_gid == gid ? 3 : 0;
  return ((st.st_mode >> shift) & 1) != 0;
}

// Makes path reachable for uid/gid (see above): the first directory above it
// they may not search is covered by a tmpfs (listed in covered), in which the
// way down to path is made (path itself: a directory, or a file when is_dir
// is false). 0, or the errno with *step.
int OpenWayTo(const std::string& path, bool is_dir, uid_t uid, gid_t gid, std::vector<std::string>& covered, const char** step) {
  bool making = false;
  for (size_t at = path.find('/', 1); at != std::string::npos; at = path.find('/', at + 1)) {
    std::string dir = path.substr(0, at);
    if (making) {
      if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) { *step = "mkdir (the way to the view's tree)"; return errno; }
      continue;
    }
    for (const std::string& c : covered) making = making || c == dir;
    if (making) continue;
    struct stat st;
    if (stat(dir.c_str(), &st) != 0) { *step = "stat (above the view's tree)"; return errno; }
    if (Searchable(st, uid, gid)) continue;
    if (mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=4k") != 0) { *step = "mount tmpfs (above the view's tree)"; return errno; }
    covered.push_back(dir);
    making = true;
  }
  if (!making) return 0;
  int fd = is_dir ? mkdir(path.c_str(), 0755) : open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0 && errno != EEXIST) { *step = "making the view's mountpoint"; return errno; }
  if (!is_dir) close(fd);
  return 0;
}

// Each path's idmapped copy (made in the launcher's namespace) mounted over
// it in a new mount namespace of this thread's. 0, or the errno with *step.
int Enter(uid_t uid, gid_t gid, const std::string& uid_map, const std::string& gid_map, const std::vector<std::string>& paths, Saved& s, const char** step) {
  int ns = idmap_userns(uid_map, gid_map, step);
  if (ns < 0) return -ns;
  std::vector<int> trees;
  std::vector<bool> dirs;
  auto undo = [&](int err) {
    for (int fd : trees) close(fd);
    CloseSaved(s);
    return err;
  };
  for (const std::string& p : paths) {
    struct stat st;
    int at = open_no_symlinks(p.c_str(), 0);
    if (at < 0) { *step = "openat2 RESOLVE_NO_SYMLINKS (the view's tree; a symlink on its path is refused)"; return undo(-at); }
    int r = fstat(at, &st);
    close(at);
    if (r != 0) { *step = "fstat (the view's tree)"; return undo(errno); }
    dirs.push_back(S_ISDIR(st.st_mode));
    int fd = idmapped_tree(p.c_str(), ns, step);
    if (fd < 0) return undo(-fd);
    trees.push_back(fd);
  }
  s.mnt = open("/proc/thread-self/ns/mnt", O_RDONLY | O_CLOEXEC);
  s.root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  s.cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (s.mnt < 0 || s.root < 0 || s.cwd < 0) { *step = "open the launcher's namespace, root and cwd"; return undo(errno); }
  if (unshare(CLONE_NEWNS) != 0) { *step = "unshare (the view's mount namespace)"; return undo(errno); }
  int err = 0;
  // Private first: nothing mounted here may propagate to the host.
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) err = errno, *step = "making the view's mounts private";
  std::vector<std::string> covered;
  for (size_t i = 0; err == 0 && i < trees.size(); i++) {
    err = OpenWayTo(paths[i], dirs[i], uid, gid, covered, step);
    // Onto the path reached through no symlink either: one swapped in above
    // a tree would put the copy over the directory it names.
    int to = err == 0 ? open_no_symlinks(paths[i].c_str(), 0) : -1;
    if (err == 0 && to < 0) err = -to, *step = "openat2 RESOLVE_NO_SYMLINKS (the view's mountpoint; a symlink on its path is refused)";
    if (err == 0 && syscall(SYS_move_mount, trees[i], "", to, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0) err = errno, *step = "move_mount (the idmapped tree over its path)";
    if (to >= 0) close(to);
  }
  for (int fd : trees) close(fd);
  trees.clear();
  if (err != 0) {
    Leave(s);
    return err;
  }
  return 0;
}

bool StringsArg(const Napi::Value& v, std::vector<std::string>* out) {
  if (!v.IsArray()) return false;
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value e = a.Get(i);
    if (!e.IsString()) return false;
    std::string s = e.As<Napi::String>().Utf8Value();
    if (s.empty() || s[0] != '/') return false;
    out->push_back(s);
  }
  return true;
}

void ThrowStep(Napi::Env env, const char* step, int err) {
  Napi::Error e = Napi::Error::New(env, std::string("taking the filesystem identity failed at ") + step + " (errno " + std::to_string(err) + ")");
  e.Set("step", Napi::String::New(env, step));
  e.Set("errno", Napi::Number::New(env, err));
  e.ThrowAsJavaScriptException();
}

}  // namespace

// withFsIds(uid, gid, fn[, view]): calls fn() with this thread's fsuid/fsgid
// set to uid/gid and its groups to [gid]; restores them afterwards, also when
// fn throws (the exception then propagates). view {uidMap, gidMap, paths}:
// meanwhile the thread sees each path through its idmapped copy. Throws
// {step, errno} when the identity or the view cannot be taken, a TypeError
// on bad arguments; fn is not called then.
Napi::Value WithFsIds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::string uid_map, gid_map;
  std::vector<std::string> paths;
  bool view = info.Length() >= 4 && !info[3].IsUndefined();
  if (view) {
    Napi::Object v = info[3].IsObject() ? info[3].As<Napi::Object>() : Napi::Object();
    if (v.IsEmpty() || !v.Get("uidMap").IsString() || !v.Get("gidMap").IsString() || !StringsArg(v.Get("paths"), &paths) || paths.empty()) {
      Napi::TypeError::New(env, "withFsIds: view must be {uidMap, gidMap, paths: absolute paths}").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    uid_map = v.Get("uidMap").As<Napi::String>().Utf8Value();
    gid_map = v.Get("gidMap").As<Napi::String>().Utf8Value();
  }
  if (info.Length() < 3 || !IdArg(info[0], &uid) || !IdArg(info[1], &gid) || !info[2].IsFunction()) {
    Napi::TypeError::New(env, "withFsIds(uid, gid, fn): uid and gid must be integers in [0, 4294967294], fn a function").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Function fn = info[2].As<Napi::Function>();
  Saved saved;
  if (view) {
    const char* vstep = nullptr;
    int err = Enter(uid, gid, uid_map, gid_map, paths, saved, &vstep);
    if (err != 0) {
      ThrowStep(env, vstep, err);
      return env.Undefined();
    }
  }
  uid_t own_uid = static_cast<uid_t>(CurrentFsuid());
  gid_t own_gid = static_cast<gid_t>(CurrentFsgid());
  long n = syscall(SYS_getgroups, 0, nullptr);
  std::vector<gid_t> groups(n > 0 ? static_cast<size_t>(n) : 0);
  if (n < 0 || syscall(SYS_getgroups, groups.size(), groups.data()) != n) {
    int e = n < 0 ? errno : EAGAIN;
    if (view) Leave(saved);
    ThrowStep(env, "getgroups", e);
    return env.Undefined();
  }
  if (syscall(SYS_setgroups, 1, &gid) != 0) {
    int e = errno;
    if (view) Leave(saved);
    ThrowStep(env, "setgroups", e);  // nothing changed (no CAP_SETGID: not root)
    return env.Undefined();
  }
  const char* step = nullptr;
  syscall(SYS_setfsgid, gid);
  syscall(SYS_setfsuid, uid);
  if (CurrentFsgid() != static_cast<long>(gid)) step = "setfsgid";
  else if (CurrentFsuid() != static_cast<long>(uid)) step = "setfsuid";
  if (step != nullptr) {
    Restore(own_uid, own_gid, groups);
    if (view) Leave(saved);
    ThrowStep(env, step, EPERM);
    return env.Undefined();
  }
  // C++ exceptions are off (binding.gyp): a JS throw leaves result empty and
  // the exception pending, so Restore always runs before it propagates.
  Napi::Value result = fn.Call({});
  Restore(own_uid, own_gid, groups);
  if (view) Leave(saved);
  return result.IsEmpty() ? env.Undefined() : result;
}

}  // namespace lg
