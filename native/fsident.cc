// A filesystem identity for one thread: while a root launcher works inside
// directories another uid controls (the workspace, the agent's home), the
// calling thread's fsuid, fsgid and supplementary groups become that user's.
// Every path the kernel resolves is then checked as that user (a symlink
// swapped in by them leads nowhere they could not write anyway), new files
// are theirs without a chown by path, and the fs capabilities are dropped
// while fsuid is not 0 (setfsuid(2), capabilities(7)). The raw syscalls
// change only the calling thread (glibc would broadcast setgroups to all).
#include <napi.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sys/syscall.h>
#include <unistd.h>
#include <vector>

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

void ThrowStep(Napi::Env env, const char* step, int err) {
  Napi::Error e = Napi::Error::New(env, std::string("taking the filesystem identity failed at ") + step + " (errno " + std::to_string(err) + ")");
  e.Set("step", Napi::String::New(env, step));
  e.Set("errno", Napi::Number::New(env, err));
  e.ThrowAsJavaScriptException();
}

}  // namespace

// withFsIds(uid, gid, fn): calls fn() with this thread's fsuid/fsgid set to
// uid/gid and its groups to [gid]; restores them afterwards, also when fn
// throws (the exception then propagates). Throws {step, errno} when the
// identity cannot be taken, a TypeError on bad arguments; fn is not called then.
Napi::Value WithFsIds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t uid = 0;
  uint32_t gid = 0;
  if (info.Length() < 3 || !IdArg(info[0], &uid) || !IdArg(info[1], &gid) || !info[2].IsFunction()) {
    Napi::TypeError::New(env, "withFsIds(uid, gid, fn): uid and gid must be integers in [0, 4294967294], fn a function").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Function fn = info[2].As<Napi::Function>();
  uid_t own_uid = static_cast<uid_t>(CurrentFsuid());
  gid_t own_gid = static_cast<gid_t>(CurrentFsgid());
  long n = syscall(SYS_getgroups, 0, nullptr);
  std::vector<gid_t> groups(n > 0 ? static_cast<size_t>(n) : 0);
  if (n < 0 || syscall(SYS_getgroups, groups.size(), groups.data()) != n) {
    ThrowStep(env, "getgroups", n < 0 ? errno : EAGAIN);
    return env.Undefined();
  }
  if (syscall(SYS_setgroups, 1, &gid) != 0) {
    ThrowStep(env, "setgroups", errno);  // nothing changed (no CAP_SETGID: not root)
    return env.Undefined();
  }
  const char* step = nullptr;
  syscall(SYS_setfsgid, gid);
  syscall(SYS_setfsuid, uid);
  if (CurrentFsgid() != static_cast<long>(gid)) step = "setfsgid";
  else if (CurrentFsuid() != static_cast<long>(uid)) step = "setfsuid";
  if (step != nullptr) {
    Restore(own_uid, own_gid, groups);
    ThrowStep(env, step, EPERM);
    return env.Undefined();
  }
  // C++ exceptions are off (binding.gyp): a JS throw leaves result empty and
  // the exception pending, so Restore always runs before it propagates.
  Napi::Value result = fn.Call({});
  Restore(own_uid, own_gid, groups);
  return result.IsEmpty() ? env.Undefined() : result;
}

}  // namespace lg
