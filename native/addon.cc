// Module entry: the box (spawn.cc) and small kernel probes used by the
// planner and `latchgate doctor`.
#include <napi.h>

#include <cerrno>
#include <sys/ioctl.h>
#include <termios.h>

#include "common.h"
#include "spawn.h"

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

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  lg::Box::Init(env, exports);
  exports.Set("spawn", Napi::Function::New(env, lg::Box::Spawn));
  exports.Set("landlockAbi", Napi::Function::New(env, LandlockAbi));
  exports.Set("setWinsize", Napi::Function::New(env, SetWinsize));
  return exports;
}

}  // namespace

NODE_API_MODULE(latchgate, Init)
