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
#include <cstdio>
#include <cstdlib>
#include <sys/syscall.h>
#include <unistd.h>
#include <vector>

namespace lg {
namespace {

long CurrentFsuid() { return syscall(SYS_setfsuid, -1); }
long CurrentFsgid() { return syscall(SYS_setfsgid, -1); }

// Back to the thread's own identity; if that fails the process must not go on.
void Restore(uid_t uid, gid_t gid, const std::vector<gid_t>& groups) {
  syscall(SYS_setfsuid, uid);
  syscall(SYS_setfsgid, gid);
  long r = syscall(SYS_setgroups, groups.size(), groups.data());
  if (CurrentFsuid() != static_cast<long>(uid) || CurrentFsgid() != static_cast<long>(gid) || r != 0) {
    fprintf(stderr, "latchgate: cannot restore the launcher's filesystem identity (errno %d); aborting\n", errno);
    abort();
  }
}

}  // namespace

// withFsIds(uid, gid, fn): calls fn() with this thread's fsuid/fsgid set to
// uid/gid and its groups to [gid]; restores them afterwards, also when fn
// throws (the exception then propagates). Throws {step, errno} when the
// identity cannot be taken; fn is not called then.
Napi::Value WithFsIds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uid_t uid = info[0].As<Napi::Number>().Uint32Value();
  gid_t gid = info[1].As<Napi::Number>().Uint32Value();
  Napi::Function fn = info[2].As<Napi::Function>();
  uid_t own_uid = static_cast<uid_t>(CurrentFsuid());
  gid_t own_gid = static_cast<gid_t>(CurrentFsgid());
  long n = syscall(SYS_getgroups, 0, nullptr);
  std::vector<gid_t> groups(n > 0 ? static_cast<size_t>(n) : 0);
  if (n < 0 || syscall(SYS_getgroups, groups.size(), groups.data()) != n) {
    Napi::Error e = Napi::Error::New(env, "getgroups failed");
    e.Set("errno", Napi::Number::New(env, errno));
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const char* step = nullptr;
  int err = 0;
  if (syscall(SYS_setgroups, 1, &gid) != 0) {
    step = "setgroups";
    err = errno;
  } else {
    syscall(SYS_setfsgid, gid);
    syscall(SYS_setfsuid, uid);
    if (CurrentFsgid() != static_cast<long>(gid)) step = "setfsgid", err = EPERM;
    else if (CurrentFsuid() != static_cast<long>(uid)) step = "setfsuid", err = EPERM;
  }
  if (step != nullptr) {
    Restore(own_uid, own_gid, groups);
    Napi::Error e = Napi::Error::New(env, std::string(step) + " failed");
    e.Set("step", Napi::String::New(env, step));
    e.Set("errno", Napi::Number::New(env, err));
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Value result = fn.Call({});
  Restore(own_uid, own_gid, groups);
  return result.IsEmpty() ? env.Undefined() : result;
}

}  // namespace lg
