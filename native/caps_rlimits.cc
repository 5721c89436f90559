// Resource limits, no_new_privs and the capability drop for the command.
#include <cerrno>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"

namespace lg {

void apply_rlimits(const ChildPlan& p) {
  for (size_t i = 0; i < p.n_rlimits; i++) {
    struct rlimit rl;
    rl.rlim_cur = p.rlimits[i].soft;
    rl.rlim_max = p.rlimits[i].hard;
    if (setrlimit(static_cast<__rlimit_resource>(p.rlimits[i].resource), &rl) != 0)
      fail(p, STEP_RLIMIT, errno, static_cast<int>(i));
  }
}

void set_no_new_privs(const ChildPlan& p) {
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail(p, STEP_NO_NEW_PRIVS, errno);
}

// Every set emptied: bounding, ambient, then effective/permitted/inheritable.
void drop_capabilities(const ChildPlan& p) {
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0)
    fail(p, STEP_CAPS, errno, 0);
  for (int cap = 0; cap <= p.cap_last; cap++) {
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) fail(p, STEP_CAPS, errno, 1);
  }
  struct __user_cap_header_struct hdr;
  hdr.version = _LINUX_CAPABILITY_VERSION_3;
  hdr.pid = 0;
  struct __user_cap_data_struct data[2] = {{0, 0, 0}, {0, 0, 0}};
  if (syscall(SYS_capset, &hdr, data) != 0) fail(p, STEP_CAPS, errno, 2);
  if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) fail(p, STEP_CAPS, errno, 3);
}

}  // namespace lg
