#pragma once
#include <napi.h>
#include <uv.h>
#include <memory>

namespace lg {

// One running box, as seen from Node: its pid, a pidfd for signals and exit,
// and the control socket its init reports on.
class Box : public Napi::ObjectWrap<Box> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  static Napi::Value Spawn(const Napi::CallbackInfo& info);
  explicit Box(const Napi::CallbackInfo& info);
  ~Box() override;

 private:
  static Napi::FunctionReference* constructor;
  Napi::Value Kill(const Napi::CallbackInfo& info);
  void Start();
  void DrainControl();
  void OnExit();
  void Call(Napi::FunctionReference& fn, Napi::Value arg);

  Napi::Env env_{nullptr};
  int pid_ = -1;
  int ctl_fd_ = -1;
  int pid_fd_ = -1;
  int sync_fd_ = -1;
  bool exited_ = false;
  bool ctl_closed_ = false;
  int open_handles_ = 0;
  uv_poll_t ctl_poll_{};
  uv_poll_t pid_poll_{};
  Napi::FunctionReference on_message_;
  Napi::FunctionReference on_exit_;
  std::unique_ptr<Napi::AsyncContext> context_;
};

}  // namespace lg
