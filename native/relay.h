#pragma once
#include <napi.h>

#include <memory>

namespace lg {

struct RelayState;

// One kernel splice() relay between two connected sockets, run on a thread of
// its own (relay.cc). The JS object only offers stop(); the result arrives
// once, through the onDone callback given to relay().
class Relay : public Napi::ObjectWrap<Relay> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  // relay(fdA, fdB, initialAtoB, initialBtoA, idleMs, onDone) -> Relay
  static Napi::Value Start(const Napi::CallbackInfo& info);
  explicit Relay(const Napi::CallbackInfo& info);

 private:
  static Napi::FunctionReference* constructor;
  Napi::Value Stop(const Napi::CallbackInfo& info);

  std::shared_ptr<RelayState> state_;
};

}  // namespace lg
