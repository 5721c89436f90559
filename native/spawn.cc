// Parent side of a box: turns the JS launch plan into the child's plain
// structures, clone()s into the new namespaces, maps the ids, and watches the
// control socket and the pidfd from the libuv loop.
#include <napi.h>
#include <uv.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <memory>
#include <sched.h>
#include <string>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "common.h"
#include "kernel-abi.h"
#include "idmap.h"
#include "spawn.h"


namespace lg {
namespace {

// Owns every byte the child will read; lives on the parent's stack across clone().
struct PlanStorage {
  std::deque<std::string> strings;
  std::vector<MountOp> ops;
  std::vector<LandlockPathRule> ll_paths;
  std::vector<LandlockPortRule> ll_ports;
  std::vector<RlimitSpec> rlimits;
  std::vector<sock_filter> filter;
  std::vector<char*> argv, envp;
  std::vector<const char*> exec_paths;
  std::vector<uint16_t> ports;
  std::vector<uint16_t> udp_ports;
  std::vector<int> keep_fds;
  const char* keep(const std::string& s) { strings.push_back(s); return strings.back().c_str(); }
};

// What the parent itself does with the plan (the child never reads it).
struct ParentPlan {
  std::string uid_map, gid_map;
  bool setgroups_deny;
  // The idmap of OP_IDMAP_TREE operations (idmap.cc), when the plan has any.
  bool idmap = false;
  std::string idmap_uid_map, idmap_gid_map;
};

// Every key of the launch plan is read through one of these (get_*: required,
// opt_*: may be absent or undefined), so a wrong type is a TypeError naming
// the key, and test/unit/native-contract.test.mjs can list the keys read here
// with their types and compare them with NativePlan (src/native/addon.ts).
bool throw_type(Napi::Env env, const std::string& what) {
  Napi::TypeError::New(env, "launch plan: " + what).ThrowAsJavaScriptException();
  return false;
}

bool get_string(Napi::Env env, Napi::Object o, const char* key, std::string* out) {
  Napi::Value v = o.Get(key);
  if (!v.IsString()) return throw_type(env, std::string(key) + " must be a string");
  *out = v.As<Napi::String>().Utf8Value();
  return true;
}

bool opt_string(Napi::Env env, Napi::Object o, const char* key, std::string* out, bool* present) {
  *present = !o.Get(key).IsUndefined();
  return !*present || get_string(env, o, key, out);
}

bool get_number(Napi::Env env, Napi::Object o, const char* key, double* out) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) return throw_type(env, std::string(key) + " must be a number");
  *out = v.As<Napi::Number>().DoubleValue();
  return true;
}

// Absent or undefined: fallback.
bool opt_number(Napi::Env env, Napi::Object o, const char* key, double* out, double fallback) {
  *out = fallback;
  return o.Get(key).IsUndefined() || get_number(env, o, key, out);
}

bool get_bool(Napi::Env env, Napi::Object o, const char* key, bool* out) {
  Napi::Value v = o.Get(key);
  if (!v.IsBoolean()) return throw_type(env, std::string(key) + " must be a boolean");
  *out = v.As<Napi::Boolean>().Value();
  return true;
}

// Absent or undefined: false.
bool opt_bool(Napi::Env env, Napi::Object o, const char* key, bool* out) {
  *out = false;
  return o.Get(key).IsUndefined() || get_bool(env, o, key, out);
}

bool get_buffer(Napi::Env env, Napi::Object o, const char* key, Napi::Buffer<uint8_t>* out) {
  Napi::Value v = o.Get(key);
  if (!v.IsBuffer()) return throw_type(env, std::string(key) + " must be a Buffer");
  *out = v.As<Napi::Buffer<uint8_t>>();
  return true;
}

bool get_object(Napi::Env env, Napi::Object o, const char* key, Napi::Object* out) {
  Napi::Value v = o.Get(key);
  if (!v.IsObject() || v.IsArray()) return throw_type(env, std::string(key) + " must be an object");
  *out = v.As<Napi::Object>();
  return true;
}

// null (or undefined): *present is false.
bool get_object_or_null(Napi::Env env, Napi::Object o, const char* key, Napi::Object* out, bool* present) {
  Napi::Value v = o.Get(key);
  *present = !v.IsNull() && !v.IsUndefined();
  return !*present || get_object(env, o, key, out);
}

bool get_array(Napi::Env env, Napi::Object o, const char* key, Napi::Array* out) {
  Napi::Value v = o.Get(key);
  if (!v.IsArray()) return throw_type(env, std::string(key) + " must be an array");
  *out = v.As<Napi::Array>();
  return true;
}

// Element i of the array read from key, which must be an object.
bool get_item(Napi::Env env, Napi::Array a, uint32_t i, const char* key, Napi::Object* out) {
  Napi::Value v = a.Get(i);
  if (!v.IsObject() || v.IsArray()) return throw_type(env, std::string(key) + " must hold objects");
  *out = v.As<Napi::Object>();
  return true;
}

bool get_strings(Napi::Env env, Napi::Object o, const char* key, PlanStorage& st,
                 std::vector<const char*>* out) {
  Napi::Array a;
  if (!get_array(env, o, key, &a)) return false;
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value v = a.Get(i);
    if (!v.IsString()) return throw_type(env, std::string(key) + " must hold strings");
    out->push_back(st.keep(v.As<Napi::String>().Utf8Value()));
  }
  return true;
}

bool get_numbers(Napi::Env env, Napi::Object o, const char* key, std::vector<double>* out) {
  Napi::Array a;
  if (!get_array(env, o, key, &a)) return false;
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value v = a.Get(i);
    if (!v.IsNumber()) return throw_type(env, std::string(key) + " must hold numbers");
    out->push_back(v.As<Napi::Number>().DoubleValue());
  }
  return true;
}

uint64_t to_u64(double d) { return d < 0 ? ~0ULL : static_cast<uint64_t>(d); }

bool parse_plan(Napi::Env env, Napi::Object o, PlanStorage& st, ChildPlan& p, ParentPlan& pp) {
  double n;
  std::string s;
  bool present;
  memset(&p, 0, sizeof(p));
  if (!get_number(env, o, "uid", &n)) return false;
  p.uid = static_cast<uint32_t>(n);
  if (!get_number(env, o, "gid", &n)) return false;
  p.gid = static_cast<uint32_t>(n);
  if (!get_string(env, o, "uidMap", &pp.uid_map) || !get_string(env, o, "gidMap", &pp.gid_map) ||
      !get_bool(env, o, "setgroupsDeny", &pp.setgroups_deny) || !get_bool(env, o, "dropGroups", &p.drop_groups))
    return false;
  if (!get_string(env, o, "hostname", &s)) return false;
  p.hostname = st.keep(s);
  if (!get_string(env, o, "stageDir", &s)) return false;
  p.stage_dir = st.keep(s);

  Napi::Array ops;
  if (!get_array(env, o, "ops", &ops)) return false;
  for (uint32_t i = 0; i < ops.Length(); i++) {
    Napi::Object op;
    if (!get_item(env, ops, i, "ops", &op)) return false;
    MountOp m;
    memset(&m, 0, sizeof(m));
    if (!get_number(env, op, "kind", &n)) return false;
    m.kind = static_cast<int32_t>(n);
    if (!get_string(env, op, "dst", &s)) return false;
    m.dst = st.keep(s);
    if (!opt_string(env, op, "src", &s, &present)) return false;
    if (present) m.src = st.keep(s);
    if (!opt_string(env, op, "data", &s, &present)) return false;
    if (present) {
      m.data = st.keep(s);
      m.data_len = s.size();
    }
    if (!opt_number(env, op, "mode", &n, 0755)) return false;
    m.mode = static_cast<uint32_t>(n);
    if (!opt_bool(env, op, "readonly", &m.readonly) || !opt_bool(env, op, "recursive", &m.recursive)) return false;
    if (!opt_bool(env, op, "noFollowSrc", &m.no_follow_src) || !opt_bool(env, op, "noFollowDst", &m.no_follow_dst)) return false;
    if ((m.kind == OP_BIND || m.kind == OP_MASK || m.kind == OP_BUDGET_DIR || m.kind == OP_IDMAP_TREE) && m.src == nullptr)
      return throw_type(env, "bind operation without src");
    m.fd = -1;
    // A tmpfs without size= would be as large as the kernel's default (half the RAM).
    if (m.kind == OP_TMP_BUDGET && (m.data == nullptr || strstr(m.data, "size=") == nullptr))
      return throw_type(env, "tmp budget without a size");
    st.ops.push_back(m);
  }

  Napi::Object idmap;
  if (!get_object_or_null(env, o, "idmap", &idmap, &pp.idmap)) return false;
  if (pp.idmap && (!get_string(env, idmap, "uidMap", &pp.idmap_uid_map) || !get_string(env, idmap, "gidMap", &pp.idmap_gid_map)))
    return false;
  for (const MountOp& m : st.ops)
    if (m.kind == OP_IDMAP_TREE && !pp.idmap) return throw_type(env, "an idmapped tree without idmap");

  Napi::Object ll;
  if (!get_object(env, o, "landlock", &ll)) return false;
  if (!get_number(env, ll, "abi", &n)) return false;
  p.landlock_abi = static_cast<int>(n);
  if (!get_number(env, ll, "handledFs", &n)) return false;
  p.ll_handled_fs = to_u64(n);
  if (!get_number(env, ll, "handledNet", &n)) return false;
  p.ll_handled_net = to_u64(n);
  if (!get_number(env, ll, "scoped", &n)) return false;
  p.ll_scoped = to_u64(n);
  Napi::Array a;
  if (!get_array(env, ll, "paths", &a)) return false;
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Object rule;
    if (!get_item(env, a, i, "paths", &rule)) return false;
    if (!get_string(env, rule, "path", &s) || !get_number(env, rule, "access", &n)) return false;
    st.ll_paths.push_back({st.keep(s), to_u64(n)});
  }
  if (!get_array(env, ll, "ports", &a)) return false;
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Object rule;
    if (!get_item(env, a, i, "ports", &rule)) return false;
    double port, acc;
    if (!get_number(env, rule, "port", &port) || !get_number(env, rule, "access", &acc)) return false;
    st.ll_ports.push_back({to_u64(port), to_u64(acc)});
  }

  Napi::Buffer<uint8_t> buf;
  if (!get_buffer(env, o, "seccomp", &buf)) return false;
  if (buf.Length() == 0 || buf.Length() % sizeof(sock_filter) != 0 ||
      buf.Length() / sizeof(sock_filter) > BPF_MAXINSNS)
    return throw_type(env, "seccomp program has a bad length");
  st.filter.resize(buf.Length() / sizeof(sock_filter));
  memcpy(st.filter.data(), buf.Data(), buf.Length());

  if (!get_array(env, o, "rlimits", &a)) return false;
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Object limit;
    if (!get_item(env, a, i, "rlimits", &limit)) return false;
    double res, soft, hard;
    if (!get_number(env, limit, "resource", &res) || !get_number(env, limit, "soft", &soft) ||
        !get_number(env, limit, "hard", &hard))
      return false;
    st.rlimits.push_back({static_cast<int32_t>(res), to_u64(soft), to_u64(hard)});
  }
  if (!get_number(env, o, "capLast", &n)) return false;
  p.cap_last = static_cast<int>(n);

  std::vector<const char*> tmp;
  if (!get_strings(env, o, "argv", st, &tmp)) return false;
  if (tmp.empty()) return throw_type(env, "argv is empty");
  for (const char* c : tmp) st.argv.push_back(const_cast<char*>(c));
  st.argv.push_back(nullptr);
  tmp.clear();
  if (!get_strings(env, o, "envp", st, &tmp)) return false;
  for (const char* c : tmp) st.envp.push_back(const_cast<char*>(c));
  st.envp.push_back(nullptr);
  if (!get_strings(env, o, "execPaths", st, &st.exec_paths)) return false;
  if (!get_string(env, o, "cwd", &s)) return false;
  p.cwd = st.keep(s);

  std::vector<double> ports;
  if (!get_numbers(env, o, "ports", &ports)) return false;
  std::vector<double> udp_ports;
  if (!get_numbers(env, o, "udpPorts", &udp_ports)) return false;
  // One control message carries them all (fdpass.cc: at most 16 fds).
  if (ports.size() + udp_ports.size() > 16) return throw_type(env, "at most 16 listening ports");
  for (double port : ports) st.ports.push_back(static_cast<uint16_t>(port));
  for (double port : udp_ports) st.udp_ports.push_back(static_cast<uint16_t>(port));

  Napi::Object pty;
  if (!get_object_or_null(env, o, "pty", &pty, &p.pty)) return false;
  if (p.pty) {
    if (!get_number(env, pty, "rows", &n)) return false;
    p.rows = static_cast<uint16_t>(n);
    if (!get_number(env, pty, "cols", &n)) return false;
    p.cols = static_cast<uint16_t>(n);
  }

  p.ops = st.ops.data();
  p.n_ops = st.ops.size();
  p.ll_paths = st.ll_paths.data();
  p.n_ll_paths = st.ll_paths.size();
  p.ll_ports = st.ll_ports.data();
  p.n_ll_ports = st.ll_ports.size();
  p.seccomp.len = static_cast<unsigned short>(st.filter.size());
  p.seccomp.filter = st.filter.data();
  p.rlimits = st.rlimits.data();
  p.n_rlimits = st.rlimits.size();
  p.argv = st.argv.data();
  p.envp = st.envp.data();
  p.exec_paths = st.exec_paths.data();
  p.n_exec_paths = st.exec_paths.size();
  p.ports = st.ports.data();
  p.n_ports = st.ports.size();
  p.udp_ports = st.udp_ports.data();
  p.n_udp_ports = st.udp_ports.size();
  return true;
}

// Fields 48-51 of /proc/self/stat: where the kernel shows argv and environ from.
void find_args_area(ChildPlan& p) {
  int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char buf[4096];
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return;
  buf[n] = 0;
  char* s = strrchr(buf, ')');
  if (s == nullptr) return;
  unsigned long long v[52] = {0};
  int field = 2;
  for (char* tok = strtok(s + 1, " "); tok != nullptr && field < 51; tok = strtok(nullptr, " ")) {
    field++;
    v[field] = strtoull(tok, nullptr, 10);
  }
  if (field < 51) return;
  p.arg_start = reinterpret_cast<char*>(v[48]);
  p.arg_end = reinterpret_cast<char*>(v[49]);
  p.env_start = reinterpret_cast<char*>(v[50]);
  p.env_end = reinterpret_cast<char*>(v[51]);
}

void throw_errno(Napi::Env env, const std::string& step, int err) {
  Napi::Error e = Napi::Error::New(env, step + ": " + strerror(err));
  e.Set("step", Napi::String::New(env, step));
  e.Set("errno", Napi::Number::New(env, err));
  e.ThrowAsJavaScriptException();
}

void close_fds(const std::vector<int>& fds) {
  for (int fd : fds) close(fd);
}

// The idmapped copies the OP_IDMAP_TREE operations attach: made here, as
// root in the launcher's namespaces (the box could not), kept open across
// clone() for the child. false (and a thrown error naming the tree) on failure.
bool make_idmapped_trees(Napi::Env env, const ParentPlan& pp, PlanStorage& st, std::vector<int>* fds) {
  if (!pp.idmap) return true;
  const char* step = nullptr;
  int ns = idmap_userns(pp.idmap_uid_map, pp.idmap_gid_map, &step);
  if (ns < 0) {
    throw_errno(env, step, -ns);
    return false;
  }
  for (MountOp& m : st.ops) {
    if (m.kind != OP_IDMAP_TREE) continue;
    int fd = idmapped_tree(m.src, ns, &step);
    if (fd < 0) {
      close_fds(*fds);
      throw_errno(env, std::string(step) + " (" + m.src + ")", -fd);
      return false;
    }
    m.fd = fd;
    fds->push_back(fd);
  }
  return true;
}

}  // namespace

// One write of the whole content to /proc/<pid>/<file> (uid_map, gid_map, setgroups): 0, or the errno.
int write_proc(pid_t pid, const char* file, const std::string& content) {
  std::string path = "/proc/" + std::to_string(pid) + "/" + file;
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t w = write(fd, content.data(), content.size());
  int e = errno;
  close(fd);
  if (w < 0) return e;
  return w == static_cast<ssize_t>(content.size()) ? 0 : EIO;
}

Napi::FunctionReference* Box::constructor = nullptr;

// The class stays unexported: a Box comes only from spawn().
void Box::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function f = DefineClass(env, "Box", {InstanceMethod("kill", &Box::Kill)});
  constructor = new Napi::FunctionReference(Napi::Persistent(f));
  exports.Set("spawn", Napi::Function::New(env, Box::Spawn, "spawn"));
}

Box::Box(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Box>(info) {}

Box::~Box() {
  if (ctl_fd_ >= 0) close(ctl_fd_);
  if (pid_fd_ >= 0) close(pid_fd_);
  if (sync_fd_ >= 0) close(sync_fd_);
}

Napi::Value Box::Kill(const Napi::CallbackInfo& info) {
  int sig = info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : SIGTERM;
  if (pid_fd_ < 0 || exited_) return Napi::Boolean::New(info.Env(), false);
  long r = syscall(SYS_pidfd_send_signal, pid_fd_, sig, nullptr, 0);
  return Napi::Boolean::New(info.Env(), r == 0);
}

// spawn(plan, onMessage, onExit) -> Box
Napi::Value Box::Spawn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsObject() || !info[1].IsFunction() || !info[2].IsFunction()) {
    Napi::TypeError::New(env, "spawn(plan, onMessage, onExit)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object o = info[0].As<Napi::Object>();
  PlanStorage st;
  ChildPlan p;
  ParentPlan pp;
  if (!parse_plan(env, o, st, p, pp)) return env.Undefined();
  std::vector<int> trees;
  if (!make_idmapped_trees(env, pp, st, &trees)) return env.Undefined();

  int ctl[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) != 0) {
    int e = errno;
    close_fds(trees);
    throw_errno(env, "socketpair (control socket)", e);
    return env.Undefined();
  }
  int sync[2];
  if (pipe2(sync, O_CLOEXEC) != 0) {
    int e = errno;
    close(ctl[0]);
    close(ctl[1]);
    close_fds(trees);
    throw_errno(env, "pipe2 (sync pipe)", e);
    return env.Undefined();
  }
  p.ctl_fd = ctl[1];
  p.sync_fd = sync[0];
  st.keep_fds = trees;
  st.keep_fds.push_back(p.ctl_fd);
  st.keep_fds.push_back(p.sync_fd);
  std::sort(st.keep_fds.begin(), st.keep_fds.end());
  p.keep_fds = st.keep_fds.data();
  p.n_keep_fds = st.keep_fds.size();
  find_args_area(p);
  p.t0_ns = monotonic_ns();

  int pidfd = -1;
  unsigned long flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET |
                        CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP | CLONE_PIDFD | SIGCHLD;
  long pid = syscall(SYS_clone, flags, 0, &pidfd, 0, 0);
  if (pid == 0) child_main(p);  // never returns
  int clone_err = errno;
  close(ctl[1]);
  close(sync[0]);
  close_fds(trees);  // the child has its own copies
  if (pid < 0) {
    close(ctl[0]);
    close(sync[1]);
    throw_errno(env, "clone (creating the user, mount, pid, net, uts, ipc and cgroup namespaces)", clone_err);
    return env.Undefined();
  }

  int err = 0;
  const char* step = nullptr;
  if (pp.setgroups_deny && (err = write_proc(pid, "setgroups", "deny")) != 0) step = "write /proc/PID/setgroups";
  if (!step && (err = write_proc(pid, "uid_map", pp.uid_map)) != 0) step = "write /proc/PID/uid_map";
  if (!step && (err = write_proc(pid, "gid_map", pp.gid_map)) != 0) step = "write /proc/PID/gid_map";
  char go = 1;
  if (!step && write(sync[1], &go, 1) != 1) { err = errno; step = "write sync pipe"; }
  if (step) {
    syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
    siginfo_t si;
    waitid(static_cast<idtype_t>(P_PIDFD), pidfd, &si, WEXITED);
    close(pidfd);
    close(ctl[0]);
    close(sync[1]);
    throw_errno(env, step, err);
    return env.Undefined();
  }

  Napi::Object obj = constructor->New({});
  Box* box = Box::Unwrap(obj);
  box->env_ = env;
  box->pid_ = static_cast<int>(pid);
  box->ctl_fd_ = ctl[0];
  box->pid_fd_ = pidfd;
  box->sync_fd_ = sync[1];  // held open: the child's hang-up check
  box->on_message_ = Napi::Persistent(info[1].As<Napi::Function>());
  box->on_exit_ = Napi::Persistent(info[2].As<Napi::Function>());
  box->context_ = std::make_unique<Napi::AsyncContext>(env, "latchgate:box");
  obj.Set("pid", Napi::Number::New(env, static_cast<double>(pid)));
  fcntl(box->ctl_fd_, F_SETFL, fcntl(box->ctl_fd_, F_GETFL) | O_NONBLOCK);
  box->Start();
  return obj;
}

void Box::Start() {
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env_, &loop);
  Ref();  // alive while its handles are
  uv_poll_init(loop, &ctl_poll_, ctl_fd_);
  uv_poll_init(loop, &pid_poll_, pid_fd_);
  ctl_poll_.data = this;
  pid_poll_.data = this;
  uv_poll_start(&ctl_poll_, UV_READABLE, [](uv_poll_t* h, int, int) {
    static_cast<Box*>(h->data)->DrainControl();
  });
  uv_poll_start(&pid_poll_, UV_READABLE, [](uv_poll_t* h, int, int) {
    static_cast<Box*>(h->data)->OnExit();
  });
  open_handles_ = 2;
}

void Box::Call(Napi::FunctionReference& fn, Napi::Value arg) {
  fn.MakeCallback(Value(), {arg}, *context_);
  if (env_.IsExceptionPending()) {
    Napi::Error e = env_.GetAndClearPendingException();
    napi_fatal_exception(env_, e.Value());
  }
}

void Box::DrainControl() {
  if (ctl_closed_) return;
  Napi::HandleScope scope(env_);
  for (;;) {
    Msg m;
    struct iovec iov{&m, sizeof(m)};
    alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * 16)];
    struct msghdr mh;
    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf;
    mh.msg_controllen = sizeof(cbuf);
    ssize_t r = recvmsg(ctl_fd_, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (r <= 0) {  // EOF: every process holding the other end is gone
      ctl_closed_ = true;
      uv_poll_stop(&ctl_poll_);
      return;
    }
    Napi::Object msg = Napi::Object::New(env_);
    Napi::Array fds = Napi::Array::New(env_);
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      int* p = reinterpret_cast<int*>(CMSG_DATA(c));
      for (size_t i = 0; i < n; i++) fds.Set(fds.Length(), Napi::Number::New(env_, p[i]));
    }
    if (static_cast<size_t>(r) != sizeof(Msg)) continue;  // not ours: ignore
    msg.Set("type", Napi::Number::New(env_, m.type));
    msg.Set("step", Napi::Number::New(env_, m.step));
    msg.Set("errno", Napi::Number::New(env_, m.err));
    msg.Set("index", Napi::Number::New(env_, m.index));
    msg.Set("value", Napi::Number::New(env_, static_cast<double>(m.value)));
    msg.Set("fds", fds);
    Call(on_message_, msg);
  }
}

void Box::OnExit() {
  siginfo_t si;
  memset(&si, 0, sizeof(si));
  if (waitid(static_cast<idtype_t>(P_PIDFD), pid_fd_, &si, WEXITED | WNOHANG) != 0) return;
  if (si.si_pid == 0) return;
  exited_ = true;
  DrainControl();  // messages sent before the exit come first
  Napi::HandleScope scope(env_);
  Napi::Object st = Napi::Object::New(env_);
  st.Set("code", Napi::Number::New(env_, si.si_code == CLD_EXITED ? si.si_status : -1));
  st.Set("signal", Napi::Number::New(env_, si.si_code == CLD_EXITED ? 0 : si.si_status));
  auto closed = [](uv_handle_t* h) {
    Box* b = static_cast<Box*>(h->data);
    if (--b->open_handles_ == 0) b->Unref();
  };
  uv_close(reinterpret_cast<uv_handle_t*>(&ctl_poll_), closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&pid_poll_), closed);
  close(sync_fd_);
  sync_fd_ = -1;
  Call(on_exit_, st);
}

}  // namespace lg
