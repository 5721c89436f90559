// Shared types between the parent (spawn.cc) and the box's child side.
// Everything the child reads is prepared by the parent before clone(): plain
// structs and C strings, so the child never allocates.
#pragma once
#include <cstddef>
#include <cstdint>
#include <linux/filter.h>
#include <string>
#include <sys/types.h>

#include "protocol.gen.h"  // Step, MsgType, OpKind

namespace lg {

// One record on the control socket; type is a MsgType.
struct Msg {
  uint32_t type;
  int32_t step;
  int32_t err;
  int32_t index;
  int64_t value;
};

// An O_PATH fd of path with no symlink on the way, or -errno (openat.cc).
int open_no_symlinks(const char* path, int flags);

struct MountOp {
  int32_t kind;
  const char* src;   // host path, already prefixed with the old root
                     // (OP_BUDGET_DIR: the directory to make in the tmp budget)
  const char* dst;   // box path, already prefixed with the new root
  const char* data;  // tmpfs options, symlink target or file content
  size_t data_len;
  uint32_t mode;
  bool readonly;
  bool recursive;
  // Inside a writable tree: resolved with no symlink on the way (dst may be
  // one in the last place: a mask covers it).
  bool no_follow_src;
  bool no_follow_dst;
  int fd;            // OP_IDMAP_TREE: the parent's idmapped copy of src
};

struct LandlockPathRule { const char* path; uint64_t access; };
struct LandlockPortRule { uint64_t port; uint64_t access; };
struct RlimitSpec { int32_t resource; uint64_t soft; uint64_t hard; };

struct ChildPlan {
  int ctl_fd;
  int sync_fd;
  // Every fd the child keeps from the parent (ctl, sync, idmapped trees), ascending.
  const int* keep_fds; size_t n_keep_fds;
  uint32_t uid, gid;
  bool drop_groups;
  const char* hostname;
  const char* stage_dir;   // host dir the staging tmpfs is mounted on
  MountOp* ops; size_t n_ops;
  int landlock_abi;        // 0: skip (degraded mode asked for by name)
  uint64_t ll_handled_fs, ll_handled_net, ll_scoped;
  LandlockPathRule* ll_paths; size_t n_ll_paths;
  LandlockPortRule* ll_ports; size_t n_ll_ports;
  sock_fprog seccomp;
  RlimitSpec* rlimits; size_t n_rlimits;
  int cap_last;
  char* const* argv;
  char* const* envp;
  const char* const* exec_paths; size_t n_exec_paths;
  const char* cwd;
  const uint16_t* ports; size_t n_ports;          // TCP, listening
  const uint16_t* udp_ports; size_t n_udp_ports;  // UDP, bound (the box's DNS)
  bool pty; uint16_t rows, cols;
  int64_t t0_ns;
  // The parent's argv/environ area, blanked in the box's init so that
  // /proc/1/cmdline does not show the launcher's host command line.
  char* arg_start; char* arg_end;
  char* env_start; char* env_end;
};

// fdpass.cc
int send_msg(int fd, const Msg& m, const int* fds, size_t n_fds);
inline int send_simple(int fd, uint32_t type, int32_t step, int32_t err,
                       int32_t index, int64_t value) {
  Msg m{type, step, err, index, value};
  return send_msg(fd, m, nullptr, 0);
}
// Reports a failed step and ends the calling process with 125.
[[noreturn]] void fail(const ChildPlan& p, Step step, int err, int index = -1);
int64_t monotonic_ns();

// namespaces.cc
int child_set_ids(const ChildPlan& p);
int bring_up_loopback();
// mounts.cc
void build_root(const ChildPlan& p);
// landlock.cc
int landlock_abi();
void apply_landlock(const ChildPlan& p);
// seccomp.cc
void install_seccomp(const ChildPlan& p);
// caps_rlimits.cc
void apply_rlimits(const ChildPlan& p);
void set_no_new_privs(const ChildPlan& p);
void drop_capabilities(const ChildPlan& p);
// pty.cc
int open_box_pty(const ChildPlan& p, int* slave_out);
// init.cc
[[noreturn]] void run_init(const ChildPlan& p);
// child.cc
[[noreturn]] void child_main(const ChildPlan& p);
// raw fork without atfork handlers (the parent may be multi-threaded)
long raw_fork();
// spawn.cc: a user namespace's maps, written by its parent (idmap.cc too)
int write_proc(pid_t pid, const char* file, const std::string& content);

}  // namespace lg
