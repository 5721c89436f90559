// seccomp-BPF: the third wall, installed last before execve. The program is
// compiled in TypeScript (src/sandbox/seccomp-filter.ts) and passed as bytes.
#include <cerrno>
#include <linux/seccomp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"

namespace lg {

void install_seccomp(const ChildPlan& p) {
  if (p.seccomp.len == 0) fail(p, STEP_SECCOMP, EINVAL);
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &p.seccomp) != 0)
    fail(p, STEP_SECCOMP, errno);
}

}  // namespace lg
