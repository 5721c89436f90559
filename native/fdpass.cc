// Messages and file descriptors from the box to the Node parent over the
// control socket (SOCK_SEQPACKET, one message per record) with SCM_RIGHTS.
// Child side only: no allocation, raw calls.
#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"

namespace lg {

static constexpr size_t kMaxFds = 16;

int send_msg(int fd, const Msg& m, const int* fds, size_t n_fds) {
  if (n_fds > kMaxFds) return -EINVAL;
  struct iovec iov;
  iov.iov_base = const_cast<Msg*>(&m);
  iov.iov_len = sizeof(Msg);
  alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * kMaxFds)];
  struct msghdr mh;
  memset(&mh, 0, sizeof(mh));
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  if (n_fds > 0) {
    memset(cbuf, 0, sizeof(cbuf));
    mh.msg_control = cbuf;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
    struct cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
  }
  for (;;) {
    ssize_t r = sendmsg(fd, &mh, MSG_NOSIGNAL);
    if (r >= 0) return 0;
    if (errno != EINTR) return -errno;
  }
}

void fail(const ChildPlan& p, Step step, int err, int index) {
  send_simple(p.ctl_fd, MSG_FAIL, step, err, index, 0);
  _exit(125);
}

int64_t monotonic_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

long raw_fork() {
  return syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
}

}  // namespace lg
