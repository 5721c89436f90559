// Module entry: the box (spawn.cc), the egress tunnels' splice relay
// (relay.cc), files beneath a directory fd for the provider fs host
// (openat.cc), the files with more than one hard link under a few trees
// (linkwalk.cc), idmapped mounts (idmap.cc) and small kernel probes used by
// the planner and `latchgate doctor`.
#include <napi.h>

#include <cerrno>
#include <string>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/xattr.h>
#include <termios.h>

#include "common.h"
#include "relay.h"
#include "spawn.h"
#include "idmap.h"

namespace lg {
Napi::Value WithFsIds(const Napi::CallbackInfo& info);
void InitOpenat(Napi::Env env, Napi::Object exports);
void InitLinkwalk(Napi::Env env, Napi::Object exports);
}

namespace {

Napi::Value LandlockAbi(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), lg::landlock_abi());
}

// setWinsize(fd, rows, cols) -> 0 or -errno; the kernel then sends SIGWINCH
// to the PTY's foreground process group inside the box.
Napi::Value SetWinsize(const Napi::CallbackInfo& info) {
  struct winsize ws{};
  int fd = info[0].As<Napi::Number>().Int32Value();
  ws.ws_row = static_cast<unsigned short>(info[1].As<Napi::Number>().Uint32Value());
  ws.ws_col = static_cast<unsigned short>(info[2].As<Napi::Number>().Uint32Value());
  int r = ioctl(fd, TIOCSWINSZ, &ws);
  return Napi::Number::New(info.Env(), r == 0 ? 0 : -errno);
}

// flock(fd, op) -> 0 or -errno. Launchers sharing a workspace hold it shared
// for their life; the last one out (exclusive) removes the placeholders.
Napi::Value Flock(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  int op = info[1].As<Napi::Number>().Int32Value();
  return Napi::Number::New(info.Env(), flock(fd, op) == 0 ? 0 : -errno);
}

// setXattr(path, name, value) -> 0 or -errno. lsetxattr: a symlink at path
// is never followed (user xattrs cannot be set on one: EPERM).
Napi::Value SetXattr(const Napi::CallbackInfo& info) {
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsString() || !info[2].IsString()) {
    Napi::TypeError::New(info.Env(), "setXattr(path, name, value): three strings").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  std::string name = info[1].As<Napi::String>().Utf8Value();
  std::string value = info[2].As<Napi::String>().Utf8Value();
  int r = lsetxattr(path.c_str(), name.c_str(), value.data(), value.size(), 0);
  return Napi::Number::New(info.Env(), r == 0 ? 0 : -errno);
}

// getXattr(path, name) -> string, or null when absent, unsupported, not
// readable or longer than 255 bytes. lgetxattr: the xattr of a symlink at
// path itself, never of what it points to.
Napi::Value GetXattr(const Napi::CallbackInfo& info) {
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) {
    Napi::TypeError::New(info.Env(), "getXattr(path, name): two strings").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  std::string name = info[1].As<Napi::String>().Utf8Value();
  char buf[256];
  ssize_t n = lgetxattr(path.c_str(), name.c_str(), buf, sizeof(buf));
  if (n < 0) return info.Env().Null();
  return Napi::String::New(info.Env(), buf, static_cast<size_t>(n));
}

// peerCred(fd) -> {pid, uid, gid} of a connected Unix socket's peer, or
// -errno. The gate maps principals and operators from it: never from the client.
Napi::Value PeerCred(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  struct ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return Napi::Number::New(info.Env(), -errno);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("pid", Napi::Number::New(info.Env(), cred.pid));
  o.Set("uid", Napi::Number::New(info.Env(), cred.uid));
  o.Set("gid", Napi::Number::New(info.Env(), cred.gid));
  return o;
}

// setTcpCongestion(fd, name) -> 0 or -errno: the congestion control of one
// TCP socket (TCP_CONGESTION). The splice relay uses it on loopback legs.
Napi::Value SetTcpCongestion(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  std::string name = info[1].As<Napi::String>().Utf8Value();
  int r = setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name.data(), static_cast<socklen_t>(name.size()));
  return Napi::Number::New(info.Env(), r == 0 ? 0 : -errno);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  lg::Box::Init(env, exports);
  lg::Relay::Init(env, exports);
  exports.Set("landlockAbi", Napi::Function::New(env, LandlockAbi));
  exports.Set("setWinsize", Napi::Function::New(env, SetWinsize));
  exports.Set("flock", Napi::Function::New(env, Flock));
  exports.Set("setXattr", Napi::Function::New(env, SetXattr));
  exports.Set("getXattr", Napi::Function::New(env, GetXattr));
  exports.Set("peerCred", Napi::Function::New(env, PeerCred));
  exports.Set("setTcpCongestion", Napi::Function::New(env, SetTcpCongestion));
  exports.Set("withFsIds", Napi::Function::New(env, lg::WithFsIds));
  lg::InitIdmap(env, exports);
  lg::InitOpenat(env, exports);
  lg::InitLinkwalk(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(latchgate, Init)
