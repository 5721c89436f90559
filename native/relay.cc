// The CONNECT tunnels' byte relay, done by the kernel: splice() from one
// socket into a pipe and from the pipe into the other socket, both directions,
// on a small thread per tunnel. Node hands over two connected sockets it no
// longer reads or writes (src/egress/splice-relay.ts), plus the bytes it had
// already read from them, and gets exactly one result back on its own thread.
//
// The fds stay Node's: the relay never closes them (only shutdown(SHUT_WR) on
// a half-close), and Node closes them after the result arrived.
#include "relay.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

namespace lg {

namespace {

constexpr int kPipeSize = 1 << 20;          // asked for with F_SETPIPE_SZ; a refusal keeps the default
constexpr size_t kSpliceLen = 1 << 20;      // most bytes asked of one splice() call
constexpr size_t kStackSize = 64 * 1024;    // the loop needs a few hundred bytes

enum Reason : int { kAClosed, kBClosed, kIdle, kStopped, kError };
const char* const kReasonNames[] = {"a_closed", "b_closed", "idle_timeout", "stopped", "error"};
const char* const kSideNames[] = {"a", "b"};

struct Result {
  uint64_t bytes[2] = {0, 0};  // delivered: [0] a->b, [1] b->a
  Reason reason = kError;
  int closed_first = -1;       // side (0 a, 1 b) whose end of stream was read first
  int err_side = -1;           // side whose fd the failing call was on (-1: neither)
  const char* step = nullptr;
  int err = 0;
};

void CallJs(Napi::Env env, Napi::Function cb, std::nullptr_t* ctx, Result* r);
using Tsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, Result, CallJs>;

// One direction: src -> pipe -> dst.
struct Dir {
  int src = -1, dst = -1;
  int src_side = 0, dst_side = 1;
  int pr = -1, pw = -1;        // pipe read and write ends
  std::vector<char> initial;   // bytes Node had read from src before the hand-off: go first
  size_t initial_off = 0;
  size_t in_pipe = 0;          // spliced into the pipe, not yet out of it
  bool eof = false;            // src gave end of stream
  bool shut = false;           // dst's write side shut down: this direction is done
  bool blocked_in = false;     // the last splice from src found nothing (or no room): wait for poll
  bool blocked_out = false;    // the last write to dst found no room: wait for poll
  const char* step_initial = "";
  const char* step_in = "";
  const char* step_out = "";
  const char* step_shutdown = "";
  bool pending_out() const { return initial_off < initial.size() || in_pipe > 0; }
};

int64_t now_ms() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

bool fail(Result& r, const char* step, int err, int side) {
  r.reason = kError;
  r.step = step;
  r.err = err;
  r.err_side = side;
  return false;
}

bool again(int e) { return e == EAGAIN || e == EWOULDBLOCK; }

// Moves what can move without blocking; false on a failed call (r says which).
// Sets *moved when a byte moved or an end of stream was read.
bool pump(Dir& d, Result& r, bool* moved) {
  for (;;) {
    bool progress = false;
    if (!d.blocked_out && d.initial_off < d.initial.size()) {
      const char* p = d.initial.data() + d.initial_off;
      size_t len = d.initial.size() - d.initial_off;
      ssize_t n = send(d.dst, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n < 0 && errno == ENOTSOCK) n = write(d.dst, p, len);
      if (n > 0) {
        d.initial_off += static_cast<size_t>(n);
        r.bytes[d.src_side] += static_cast<uint64_t>(n);
        progress = true;
      } else if (n < 0 && again(errno)) {
        d.blocked_out = true;
      } else if (!(n < 0 && errno == EINTR)) {
        return fail(r, d.step_initial, n < 0 ? errno : EIO, d.dst_side);
      }
    } else if (!d.blocked_out && d.in_pipe > 0) {
      ssize_t n = splice(d.pr, nullptr, d.dst, nullptr, d.in_pipe, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
      if (n > 0) {
        d.in_pipe -= static_cast<size_t>(n);
        r.bytes[d.src_side] += static_cast<uint64_t>(n);
        d.blocked_in = false;  // room in the pipe again
        progress = true;
      } else if (n < 0 && again(errno)) {
        d.blocked_out = true;
      } else if (!(n < 0 && errno == EINTR)) {
        // 0 would mean an empty pipe without writers: we hold both ends, so never.
        return fail(r, d.step_out, n < 0 ? errno : EIO, d.dst_side);
      }
    }
    if (!d.blocked_in && !d.eof) {
      ssize_t n = splice(d.src, nullptr, d.pw, nullptr, kSpliceLen, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
      if (n > 0) {
        d.in_pipe += static_cast<size_t>(n);
        progress = true;
      } else if (n == 0) {
        d.eof = true;
        if (r.closed_first < 0) r.closed_first = d.src_side;
        progress = true;
      } else if (again(errno)) {
        // Nothing to read, or (with bytes in the pipe) no room in it: either
        // way the next move is the drain to dst, which clears this flag.
        d.blocked_in = true;
      } else if (errno != EINTR) {
        return fail(r, d.step_in, errno, d.src_side);
      }
    }
    if (!progress) break;
    *moved = true;
  }
  if (d.eof && !d.pending_out() && !d.shut) {
    // Half-close: src ended and everything it sent is delivered.
    if (shutdown(d.dst, SHUT_WR) != 0) return fail(r, d.step_shutdown, errno, d.dst_side);
    d.shut = true;
  }
  return true;
}

}  // namespace

struct RelayState {
  std::mutex mu;
  int efd = -1;            // stop() writes here; closed by the thread when it ends (under mu)
  bool finished = false;   // under mu
  int fds[2] = {-1, -1};
  int64_t idle_ms = 0;     // 0: no idle limit
  Dir dir[2];
  Tsfn tsfn;

  void close_pipes() {
    for (Dir& d : dir) {
      if (d.pr >= 0) close(d.pr);
      if (d.pw >= 0) close(d.pw);
      d.pr = d.pw = -1;
    }
  }
  ~RelayState() {
    close_pipes();
    if (efd >= 0) close(efd);
  }
};

namespace {

void run(RelayState& s, Result& r) {
  int64_t last = now_ms();
  for (;;) {
    bool moved = false;
    for (Dir& d : s.dir) {
      if (!d.shut && !pump(d, r, &moved)) return;
    }
    if (s.dir[0].shut && s.dir[1].shut) {
      r.reason = r.closed_first == 1 ? kBClosed : kAClosed;
      return;
    }
    int64_t now = now_ms();
    if (moved) last = now;

    // Each direction waits on one thing: room in dst while it holds bytes for
    // it, else data (or the end) from src. An fd nobody waits on is left out,
    // so a hang-up on it cannot wake the loop for nothing.
    short ev[2] = {0, 0};
    for (const Dir& d : s.dir) {
      if (d.shut) continue;
      if (d.pending_out()) ev[d.dst_side] |= POLLOUT;
      if (!d.eof && d.in_pipe == 0) ev[d.src_side] |= POLLIN;
    }
    struct pollfd p[3];
    for (int i = 0; i < 2; i++) {
      p[i].fd = ev[i] != 0 ? s.fds[i] : -1;
      p[i].events = ev[i];
      p[i].revents = 0;
    }
    p[2].fd = s.efd;
    p[2].events = POLLIN;
    p[2].revents = 0;
    int timeout = -1;
    if (s.idle_ms > 0) {
      int64_t left = last + s.idle_ms - now;
      if (left <= 0) {
        r.reason = kIdle;
        return;
      }
      timeout = static_cast<int>(std::min<int64_t>(left, INT_MAX));
    }
    int n = poll(p, 3, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(r, "poll", errno, -1);
      return;
    }
    if (p[2].revents != 0) {
      r.reason = kStopped;
      return;
    }
    for (int i = 0; i < 2; i++) {
      short re = p[i].revents;
      if (re == 0) continue;
      if (re & POLLNVAL) {
        fail(r, "poll", EBADF, i);  // the fd was closed under the relay
        return;
      }
      // Direction i reads side i; direction 1-i writes it. Errors and
      // hang-ups wake both: the next call reports them.
      if (re & (POLLIN | POLLERR | POLLHUP)) s.dir[i].blocked_in = false;
      if (re & (POLLOUT | POLLERR | POLLHUP)) s.dir[1 - i].blocked_out = false;
    }
  }
}

void* thread_main(void* arg) {
  auto* holder = static_cast<std::shared_ptr<RelayState>*>(arg);
  std::shared_ptr<RelayState> s = std::move(*holder);
  delete holder;
  auto* r = new Result();
  run(*s, *r);
  s->close_pipes();
  {
    std::lock_guard<std::mutex> g(s->mu);
    s->finished = true;
    close(s->efd);
    s->efd = -1;
  }
  // Exactly one call; after napi_closing (the environment is going away) the
  // function may be gone, so it is neither called again nor released.
  if (s->tsfn.BlockingCall(r) == napi_ok) {
    s->tsfn.Release();
  } else {
    delete r;
  }
  return nullptr;
}

void CallJs(Napi::Env env, Napi::Function cb, std::nullptr_t*, Result* raw) {
  std::unique_ptr<Result> r(raw);
  if (static_cast<napi_env>(env) == nullptr || cb.IsEmpty()) return;
  Napi::Object o = Napi::Object::New(env);
  o.Set("bytesAtoB", Napi::Number::New(env, static_cast<double>(r->bytes[0])));
  o.Set("bytesBtoA", Napi::Number::New(env, static_cast<double>(r->bytes[1])));
  o.Set("reason", Napi::String::New(env, kReasonNames[r->reason]));
  o.Set("closedFirst", r->closed_first >= 0 ? Napi::String::New(env, kSideNames[r->closed_first]) : env.Null());
  if (r->reason == kError) {
    o.Set("step", Napi::String::New(env, r->step != nullptr ? r->step : "?"));
    o.Set("errno", Napi::Number::New(env, r->err));
    o.Set("message", Napi::String::New(env, std::string(r->step != nullptr ? r->step : "?") + ": " + strerror(r->err)));
    if (r->err_side >= 0) o.Set("side", Napi::String::New(env, kSideNames[r->err_side]));
  }
  cb.Call({o});
  if (env.IsExceptionPending()) {
    Napi::Error e = env.GetAndClearPendingException();
    napi_fatal_exception(env, e.Value());
  }
}

void throw_errno(Napi::Env env, const char* step, int err) {
  Napi::Error e = Napi::Error::New(env, std::string("relay: ") + step + ": " + strerror(err));
  e.Set("step", Napi::String::New(env, step));
  e.Set("errno", Napi::Number::New(env, err));
  e.ThrowAsJavaScriptException();
}

bool fd_arg(const Napi::Value& v, int* out) {
  if (!v.IsNumber()) return false;
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= INT_MAX) || d != static_cast<int>(d)) return false;
  *out = static_cast<int>(d);
  return true;
}

bool buffer_arg(const Napi::Value& v, std::vector<char>* out) {
  if (v.IsNull() || v.IsUndefined()) return true;
  if (!v.IsBuffer()) return false;
  Napi::Buffer<char> b = v.As<Napi::Buffer<char>>();
  out->assign(b.Data(), b.Data() + b.Length());
  return true;
}

}  // namespace

Napi::FunctionReference* Relay::constructor = nullptr;

void Relay::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function f = DefineClass(env, "Relay", {InstanceMethod("stop", &Relay::Stop)});
  constructor = new Napi::FunctionReference(Napi::Persistent(f));
  exports.Set("relay", Napi::Function::New(env, Relay::Start, "relay"));
}

Relay::Relay(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Relay>(info) {}

// stop() -> true when it asked a running relay to stop (its onDone follows).
Napi::Value Relay::Stop(const Napi::CallbackInfo& info) {
  bool asked = false;
  if (state_) {
    std::lock_guard<std::mutex> g(state_->mu);
    if (!state_->finished && state_->efd >= 0) {
      uint64_t one = 1;
      if (write(state_->efd, &one, sizeof(one)) != static_cast<ssize_t>(sizeof(one))) {
        throw_errno(info.Env(), "write(eventfd)", errno);
        return info.Env().Undefined();
      }
      asked = true;
    }
  }
  return Napi::Boolean::New(info.Env(), asked);
}

// relay(fdA, fdB, initialAtoB, initialBtoA, idleMs, onDone) -> Relay
Napi::Value Relay::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto s = std::make_shared<RelayState>();
  int a = -1, b = -1;
  double idle = info[4].IsNumber() ? info[4].As<Napi::Number>().DoubleValue() : -1;
  if (info.Length() < 6 || !fd_arg(info[0], &a) || !fd_arg(info[1], &b) || a == b ||
      !buffer_arg(info[2], &s->dir[0].initial) || !buffer_arg(info[3], &s->dir[1].initial) ||
      !(idle >= 0 && idle <= 9007199254740991.0) || !info[5].IsFunction()) {
    Napi::TypeError::New(env, "relay(fdA, fdB, initialAtoB: Buffer|null, initialBtoA: Buffer|null, idleMs >= 0, onDone): two distinct fds")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  s->fds[0] = a;
  s->fds[1] = b;
  s->idle_ms = static_cast<int64_t>(idle);
  // Direction i reads side i and writes side 1-i; its steps name both.
  static const char* const kStepInitial[] = {"send(initial a->b)", "send(initial b->a)"};
  static const char* const kStepIn[] = {"splice(a->pipe)", "splice(b->pipe)"};
  static const char* const kStepOut[] = {"splice(pipe->b)", "splice(pipe->a)"};
  static const char* const kStepShutdown[] = {"shutdown(b, SHUT_WR)", "shutdown(a, SHUT_WR)"};
  for (int i = 0; i < 2; i++) {
    Dir& d = s->dir[i];
    d.src = s->fds[i];
    d.dst = s->fds[1 - i];
    d.src_side = i;
    d.dst_side = 1 - i;
    d.step_initial = kStepInitial[i];
    d.step_in = kStepIn[i];
    d.step_out = kStepOut[i];
    d.step_shutdown = kStepShutdown[i];
  }

  // The loop never blocks in a call: libuv's sockets are non-blocking already.
  for (int fd : {a, b}) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) {
      throw_errno(env, "fcntl(F_GETFL)", errno);
      return env.Undefined();
    }
    if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) {
      throw_errno(env, "fcntl(F_SETFL, O_NONBLOCK)", errno);
      return env.Undefined();
    }
  }
  for (Dir& d : s->dir) {
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) {
      throw_errno(env, "pipe2", errno);
      return env.Undefined();
    }
    d.pr = p[0];
    d.pw = p[1];
    (void)fcntl(d.pw, F_SETPIPE_SZ, kPipeSize);  // EPERM over the user's pipe quota: the default size works too
  }
  s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s->efd < 0) {
    throw_errno(env, "eventfd", errno);
    return env.Undefined();
  }

  // Referenced while the relay runs (a live tunnel keeps the process up, as a
  // reading socket would); released by the thread after its one call, so
  // nothing is left holding the loop once onDone ran.
  s->tsfn = Tsfn::New(env, info[5].As<Napi::Function>(), "latchgate:relay", 0, 1);
  if (env.IsExceptionPending()) return env.Undefined();

  Napi::Object obj = constructor->New({});
  Relay::Unwrap(obj)->state_ = s;

  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, std::max<size_t>(kStackSize, static_cast<size_t>(PTHREAD_STACK_MIN)));
  // Signals stay with Node's threads; the relay thread only takes faults.
  sigset_t all, old;
  sigfillset(&all);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL}) sigdelset(&all, sig);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  auto* holder = new std::shared_ptr<RelayState>(s);
  pthread_t th;
  int rc = pthread_create(&th, &attr, thread_main, holder);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  pthread_attr_destroy(&attr);
  if (rc == 0) (void)pthread_setname_np(th, "lg-relay");  // for top and perf only
  if (rc != 0) {
    delete holder;
    {
      std::lock_guard<std::mutex> g(s->mu);
      s->finished = true;
    }
    s->tsfn.Release();
    throw_errno(env, "pthread_create", rc);
    return env.Undefined();
  }
  return obj;
}

}  // namespace lg
