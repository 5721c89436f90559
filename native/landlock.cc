// Landlock: the second wall. Rules mirror the mount plan (computed in
// src/sandbox/landlock-rules.ts for the kernel's ABI); Debian 12's headers
// stop at ABI 2, so the structures are declared here.
#include <cerrno>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif

namespace lg {
namespace {

constexpr uint32_t kCreateRulesetVersion = 1U << 0;
constexpr int kRulePathBeneath = 1;
constexpr int kRuleNetPort = 2;

struct RulesetAttr { uint64_t handled_access_fs, handled_access_net, scoped; };
struct __attribute__((packed)) PathBeneathAttr { uint64_t allowed_access; int32_t parent_fd; };
struct NetPortAttr { uint64_t allowed_access; uint64_t port; };

}  // namespace

int landlock_abi() {
  long r = syscall(SYS_landlock_create_ruleset, nullptr, 0, kCreateRulesetVersion);
  return r < 0 ? -errno : static_cast<int>(r);
}

void apply_landlock(const ChildPlan& p) {
  if (p.landlock_abi <= 0) return;
  RulesetAttr attr{p.ll_handled_fs, p.ll_handled_net, p.ll_scoped};
  // The attribute grew with the ABI: net in 4, scoped in 6.
  size_t size = p.landlock_abi >= 6 ? 24 : p.landlock_abi >= 4 ? 16 : 8;
  int rs = static_cast<int>(syscall(SYS_landlock_create_ruleset, &attr, size, 0));
  if (rs < 0) fail(p, STEP_LANDLOCK_CREATE, errno);
  for (size_t i = 0; i < p.n_ll_paths; i++) {
    int fd = open(p.ll_paths[i].path, O_PATH | O_CLOEXEC);
    if (fd < 0) fail(p, STEP_LANDLOCK_RULE, errno, static_cast<int>(i));
    PathBeneathAttr pb{p.ll_paths[i].access, fd};
    if (syscall(SYS_landlock_add_rule, rs, kRulePathBeneath, &pb, 0) != 0)
      fail(p, STEP_LANDLOCK_RULE, errno, static_cast<int>(i));
    close(fd);
  }
  for (size_t i = 0; i < p.n_ll_ports; i++) {
    NetPortAttr np{p.ll_ports[i].access, p.ll_ports[i].port};
    if (syscall(SYS_landlock_add_rule, rs, kRuleNetPort, &np, 0) != 0)
      fail(p, STEP_LANDLOCK_NET_RULE, errno, static_cast<int>(i));
  }
  if (syscall(SYS_landlock_restrict_self, rs, 0) != 0) fail(p, STEP_LANDLOCK_RESTRICT, errno);
  close(rs);
}

}  // namespace lg
