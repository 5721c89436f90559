// Files beneath a directory fd, for the provider file-system host
// (src/providers/host-fs.ts). Every path is resolved by the kernel relative to
// the root's fd and never through a symbolic link: openat2(2) with
// RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, or, where
// openat2 is missing (ENOSYS, kernels before 5.6) or the caller asks for it,
// a walk that opens one component at a time with O_NOFOLLOW (O_DIRECTORY for
// the directories on the way); a seccomp filter answering EPERM for openat2
// gets the walk too. Both refuse "..", ".", empty components and
// absolute paths before the kernel sees them, and neither crosses a mount
// point below the root (RESOLVE_NO_XDEV; the walk compares mount ids): a
// mount there could show files the host must never serve (latchgate's state,
// /proc). Renames and unlinks take a directory fd and a single name, so they
// resolve nothing either. openParent opens a directory's "..", so that where
// an open file lies is read up from the file itself, never from a path.
#include <napi.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <vector>

#include "common.h"

namespace lg {
namespace {

constexpr uint64_t kResolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;

// The mount an fd is on: statx's mount id (5.8), else name_to_handle_at's,
// else (a file system without file handles) its device.
struct MountOf {
  bool has_id = false;
  uint64_t id = 0;
  dev_t dev = 0;
};

bool GetMount(int fd, MountOf* m) {
  struct stat st {};
  if (fstat(fd, &st) != 0) return false;
  m->dev = st.st_dev;
#ifdef STATX_MNT_ID
  struct statx sx {};
  if (statx(fd, "", AT_EMPTY_PATH, STATX_MNT_ID, &sx) == 0 && (sx.stx_mask & STATX_MNT_ID)) {
    m->has_id = true;
    m->id = sx.stx_mnt_id;
    return true;
  }
#endif
  alignas(struct file_handle) unsigned char buf[sizeof(struct file_handle) + MAX_HANDLE_SZ];
  auto* fh = reinterpret_cast<struct file_handle*>(buf);
  fh->handle_bytes = MAX_HANDLE_SZ;
  int mount_id = 0;
  if (name_to_handle_at(fd, "", fh, &mount_id, AT_EMPTY_PATH) == 0) {
    m->has_id = true;
    m->id = static_cast<uint64_t>(mount_id);
  }
  return true;
}

bool SameMount(const MountOf& a, const MountOf& b) {
  return a.has_id && b.has_id ? a.id == b.id : a.dev == b.dev;
}

void ThrowErrno(Napi::Env env, const char* step, const std::string& what, int err) {
  Napi::Error e = Napi::Error::New(env, std::string(step) + " \"" + what + "\": " + strerror(err) + " (errno " + std::to_string(err) + ")");
  e.Set("step", Napi::String::New(env, step));
  e.Set("errno", Napi::Number::New(env, err));
  e.ThrowAsJavaScriptException();
}

// A name inside one directory: not empty, not "." or "..", no "/" or NUL.
bool IsName(const std::string& s) {
  return !s.empty() && s != "." && s != ".." && s.find('/') == std::string::npos && s.find('\0') == std::string::npos;
}

// path split on "/": each part a name (so no absolute path, "..", "." or "//").
bool SplitRelative(const std::string& path, std::vector<std::string>* out) {
  size_t start = 0;
  while (true) {
    size_t slash = path.find('/', start);
    std::string part = path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (!IsName(part)) return false;
    out->push_back(part);
    if (slash == std::string::npos) return true;
    start = slash + 1;
  }
}

bool IntArg(const Napi::Value& v, int* out) {
  if (!v.IsNumber()) return false;
  *out = v.As<Napi::Number>().Int32Value();
  return true;
}

int Openat2(int dirfd, const char* path, int flags, unsigned mode) {
  struct open_how how{};
  how.flags = static_cast<uint64_t>(flags);
  how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
  how.resolve = kResolve;
  int fd;
  do fd = static_cast<int>(syscall(SYS_openat2, dirfd, path, &how, sizeof(how)));
  while (fd < 0 && errno == EINTR);
  return fd;
}

// One component at a time, never following a symlink or crossing a mount
// point. A symlink on the way reports ELOOP, as openat2 with
// RESOLVE_NO_SYMLINKS does; a mount EXDEV, as RESOLVE_NO_XDEV does. Sets *step.
int Walk(int dirfd, const std::vector<std::string>& parts, int flags, unsigned mode, const char** step) {
  MountOf root;
  *step = "fstat (the root's mount)";
  if (!GetMount(dirfd, &root)) return -1;
  // fd is on the root's mount, or closed with errno EXDEV (or the error of looking).
  auto onRootMount = [&](int fd) {
    MountOf m;
    if (GetMount(fd, &m) && SameMount(root, m)) return true;
    int saved = m.dev == 0 && !m.has_id ? errno : EXDEV;
    close(fd);
    errno = saved;
    *step = "mount (a mount point below the root)";
    return false;
  };
  int cur = dirfd;
  for (size_t i = 0; i + 1 < parts.size(); i++) {
    *step = "openat (directory on the way)";
    int next = openat(cur, parts[i].c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0 && errno == ENOTDIR) {
      struct stat st{};
      if (fstatat(cur, parts[i].c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) errno = ELOOP;
      else errno = ENOTDIR;
    }
    int saved = errno;
    if (cur != dirfd) close(cur);
    if (next < 0) {
      errno = saved;
      return -1;
    }
    if (!onRootMount(next)) return -1;
    cur = next;
  }
  *step = "openat";
  int fd;
  do fd = openat(cur, parts.back().c_str(), flags | O_NOFOLLOW | O_CLOEXEC, mode);
  while (fd < 0 && errno == EINTR);
  int saved = errno;
  if (cur != dirfd) close(cur);
  errno = saved;
  if (fd >= 0 && !onRootMount(fd)) return -1;
  return fd;
}

// openParent(fd) -> the fd of the directory ".." of the directory fd (O_PATH):
// at a mount's root, the directory it is mounted on, as the kernel walks "..".
Napi::Value OpenParent(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  if (info.Length() < 1 || !IntArg(info[0], &fd)) {
    Napi::TypeError::New(env, "openParent(fd): a number").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int parent;
  do parent = openat(fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
  while (parent < 0 && errno == EINTR);
  if (parent < 0) {
    ThrowErrno(env, "openat \"..\"", "..", errno);
    return env.Undefined();
  }
  return Napi::Number::New(env, parent);
}

// openBeneath(dirfd, path, flags, mode, walk) -> fd. O_NOFOLLOW and O_CLOEXEC
// are always added. walk: true skips openat2 (the fallback, for tests).
// Throws an Error with step and errno.
Napi::Value OpenBeneath(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int dirfd = -1;
  int flags = 0;
  int mode = 0;
  if (info.Length() < 5 || !IntArg(info[0], &dirfd) || !info[1].IsString() || !IntArg(info[2], &flags) || !IntArg(info[3], &mode) || !info[4].IsBoolean()) {
    Napi::TypeError::New(env, "openBeneath(dirfd, path, flags, mode, walk): numbers, a string and a boolean").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string path = info[1].As<Napi::String>().Utf8Value();
  std::vector<std::string> parts;
  if (path.size() >= PATH_MAX || !SplitRelative(path, &parts)) {
    ThrowErrno(env, "path", path, EINVAL);
    return env.Undefined();
  }
  flags |= O_NOFOLLOW | O_CLOEXEC;
  const char* step = "openat2";
  int fd = -1;
  if (!info[4].As<Napi::Boolean>().Value()) fd = Openat2(dirfd, path.c_str(), flags, static_cast<unsigned>(mode));
  // ENOSYS: a kernel before 5.6; EPERM: a seccomp filter (some container
  // runtimes) refusing a syscall it does not know. The walk is as strict, and
  // reports the real error if there is one.
  if (info[4].As<Napi::Boolean>().Value() || (fd < 0 && (errno == ENOSYS || errno == EPERM))) fd = Walk(dirfd, parts, flags, static_cast<unsigned>(mode), &step);
  if (fd < 0) {
    ThrowErrno(env, step, path, errno);
    return env.Undefined();
  }
  return Napi::Number::New(env, fd);
}

// renameAt(dirfd, from, to, noreplace): both names in the directory dirfd.
// noreplace: RENAME_NOREPLACE, or (where renameat2 cannot) link then unlink,
// which fails the same way (EEXIST) when `to` exists.
Napi::Value RenameAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int dirfd = -1;
  if (info.Length() < 4 || !IntArg(info[0], &dirfd) || !info[1].IsString() || !info[2].IsString() || !info[3].IsBoolean()) {
    Napi::TypeError::New(env, "renameAt(dirfd, from, to, noreplace): a number, two names and a boolean").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string from = info[1].As<Napi::String>().Utf8Value();
  std::string to = info[2].As<Napi::String>().Utf8Value();
  if (!IsName(from) || !IsName(to)) {
    ThrowErrno(env, "name", IsName(from) ? to : from, EINVAL);
    return env.Undefined();
  }
  if (!info[3].As<Napi::Boolean>().Value()) {
    if (renameat(dirfd, from.c_str(), dirfd, to.c_str()) != 0) ThrowErrno(env, "renameat", to, errno);
    return env.Undefined();
  }
  if (syscall(SYS_renameat2, dirfd, from.c_str(), dirfd, to.c_str(), RENAME_NOREPLACE) == 0) return env.Undefined();
  if (errno != EINVAL && errno != ENOSYS) {
    ThrowErrno(env, "renameat2", to, errno);
    return env.Undefined();
  }
  if (linkat(dirfd, from.c_str(), dirfd, to.c_str(), 0) != 0) {
    ThrowErrno(env, "linkat", to, errno);
    return env.Undefined();
  }
  if (unlinkat(dirfd, from.c_str(), 0) != 0) ThrowErrno(env, "unlinkat", from, errno);
  return env.Undefined();
}

// unlinkAt(dirfd, name): removes a non-directory entry of dirfd.
Napi::Value UnlinkAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int dirfd = -1;
  if (info.Length() < 2 || !IntArg(info[0], &dirfd) || !info[1].IsString()) {
    Napi::TypeError::New(env, "unlinkAt(dirfd, name): a number and a name").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string name = info[1].As<Napi::String>().Utf8Value();
  if (!IsName(name)) ThrowErrno(env, "name", name, EINVAL);
  else if (unlinkat(dirfd, name.c_str(), 0) != 0) ThrowErrno(env, "unlinkat", name, errno);
  return env.Undefined();
}

const char* KindOf(mode_t m) {
  if (S_ISREG(m)) return "file";
  if (S_ISDIR(m)) return "dir";
  if (S_ISLNK(m)) return "symlink";
  return "other";
}

// listDir(fd, max) -> [{name, kind, size}], at most max entries ("." and ".."
// left out), each lstat'ed through fd (fstatat AT_SYMLINK_NOFOLLOW). fd is
// not consumed: the listing reads a duplicate of it.
Napi::Value ListDir(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  int max = 0;
  if (info.Length() < 2 || !IntArg(info[0], &fd) || !IntArg(info[1], &max) || max < 0) {
    Napi::TypeError::New(env, "listDir(fd, max): a directory fd and a count").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // Its own open file description (a dup would share the offset with fd).
  int own = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (own < 0) {
    ThrowErrno(env, "openat", ".", errno);
    return env.Undefined();
  }
  DIR* d = fdopendir(own);
  if (d == nullptr) {
    int err = errno;
    close(own);
    ThrowErrno(env, "fdopendir", ".", err);
    return env.Undefined();
  }
  Napi::Array out = Napi::Array::New(env);
  uint32_t n = 0;
  while (n < static_cast<uint32_t>(max)) {
    errno = 0;
    struct dirent* e = readdir(d);
    if (e == nullptr) {
      if (errno != 0) {
        int err = errno;
        closedir(d);
        ThrowErrno(env, "readdir", ".", err);
        return env.Undefined();
      }
      break;
    }
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    struct stat st{};
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", Napi::String::New(env, e->d_name));
    if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
      o.Set("kind", Napi::String::New(env, KindOf(st.st_mode)));
      o.Set("size", Napi::Number::New(env, static_cast<double>(st.st_size)));
    } else {
      o.Set("kind", Napi::String::New(env, "other"));  // gone since readdir
      o.Set("size", Napi::Number::New(env, 0));
    }
    out.Set(n++, o);
  }
  closedir(d);
  return out;
}

// openFlags() -> the open(2) flags the calls above take, by name.
Napi::Value OpenFlags(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  const std::pair<const char*, int> flags[] = {
      {"O_RDONLY", O_RDONLY}, {"O_WRONLY", O_WRONLY},     {"O_CREAT", O_CREAT},       {"O_EXCL", O_EXCL},
      {"O_PATH", O_PATH},     {"O_DIRECTORY", O_DIRECTORY}, {"O_NOFOLLOW", O_NOFOLLOW}, {"O_NONBLOCK", O_NONBLOCK},
      {"O_NOCTTY", O_NOCTTY}, {"O_CLOEXEC", O_CLOEXEC},
  };
  for (const auto& f : flags) o.Set(f.first, Napi::Number::New(env, f.second));
  return o;
}

}  // namespace

// An O_PATH fd of path (plus flags: O_NOFOLLOW keeps a symlink in the last
// place, O_DIRECTORY asks for a directory) reached through no symlink, or
// -errno (ELOOP for a symlink on the way). Paths the plan made real: a
// symlink on one now was swapped in since, by a box writing the tree.
// Async-signal-safe: the box's child calls it between clone() and execve().
int open_no_symlinks(const char* path, int flags) {
  struct open_how how{};
  how.flags = static_cast<uint64_t>(flags | O_PATH | O_CLOEXEC);
  how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  int fd;
  do fd = static_cast<int>(syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof(how)));
  while (fd < 0 && errno == EINTR);
  return fd < 0 ? -errno : fd;
}

namespace {
// openNoSymlinks(path, flags) -> an O_PATH fd (flags added: O_DIRECTORY,
// O_NOFOLLOW), or -errno: for the launcher's own work in a writable tree.
// path: a string, or the bytes of a name that is not UTF-8 (a Buffer).
Napi::Value OpenNoSymlinks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int flags = 0;
  if (info.Length() < 2 || !(info[0].IsString() || info[0].IsBuffer()) || !IntArg(info[1], &flags)) {
    Napi::TypeError::New(env, "openNoSymlinks(path, flags): a string or Buffer and a number").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string path;
  if (info[0].IsString()) {
    path = info[0].As<Napi::String>().Utf8Value();
  } else {
    Napi::Buffer<char> b = info[0].As<Napi::Buffer<char>>();
    path.assign(b.Data(), b.Length());
  }
  if (path.find('\0') != std::string::npos) return Napi::Number::New(env, -EINVAL);
  return Napi::Number::New(env, open_no_symlinks(path.c_str(), flags));
}
}  // namespace

void InitOpenat(Napi::Env env, Napi::Object exports) {
  exports.Set("openNoSymlinks", Napi::Function::New(env, OpenNoSymlinks));
  exports.Set("openBeneath", Napi::Function::New(env, OpenBeneath));
  exports.Set("openParent", Napi::Function::New(env, OpenParent));
  exports.Set("renameAt", Napi::Function::New(env, RenameAt));
  exports.Set("unlinkAt", Napi::Function::New(env, UnlinkAt));
  exports.Set("listDir", Napi::Function::New(env, ListDir));
  exports.Set("openFlags", Napi::Function::New(env, OpenFlags));
}

}  // namespace lg
