// User namespace identity and the box's network namespace loopback.
// The parent writes uid_map/gid_map (spawn.cc); here the child takes the
// mapped ids so files it creates belong to the agent's user on the host.
#include <cerrno>
#include <cstring>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"

namespace lg {

int child_set_ids(const ChildPlan& p) {
  // Keep the namespace's capabilities across the uid change: the box is
  // still being assembled. They are dropped before execve (caps_rlimits.cc).
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) return -errno;
  // Raw syscalls: after a raw clone() glibc's wrappers would apply the
  // change to every thread glibc thinks this process has (setxid), the
  // parent's, which do not exist here, and wait forever on one that was
  // being created at the clone. The kernel changes only this, the one thread.
  if (p.drop_groups && syscall(SYS_setgroups, 0, nullptr) != 0) return -errno;
  if (syscall(SYS_setresgid, p.gid, p.gid, p.gid) != 0) return -errno;
  if (syscall(SYS_setresuid, p.uid, p.uid, p.uid) != 0) return -errno;
  return 0;
}

int bring_up_loopback() {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -errno;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  memcpy(ifr.ifr_name, "lo", 3);
  int r = 0;
  if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0) {
    r = -errno;
  } else {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
    if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0) r = -errno;
  }
  close(s);
  return r;
}

}  // namespace lg
