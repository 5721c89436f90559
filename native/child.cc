// The first process of the box, from clone() until it becomes PID 1's loop.
// Runs in a copy of a multi-threaded process: only async-signal-safe calls,
// no allocation, no exceptions; every failure is reported with its step.
#include <cerrno>
#include <csignal>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <netinet/in.h>
#include <unistd.h>
#include <cstring>

#include "common.h"

namespace lg {
namespace {

// An fd of the launcher left open in the box would be a way out of it: all
// but the kept ones (ascending) are closed; a failure's index is the gap's.
void close_inherited(const ChildPlan& p) {
  unsigned from = 3;
  for (size_t i = 0; i <= p.n_keep_fds; i++) {
    unsigned to = i < p.n_keep_fds ? static_cast<unsigned>(p.keep_fds[i]) : ~0U;
    if (i < p.n_keep_fds && to < from) continue;
    unsigned last = i < p.n_keep_fds ? to - 1 : ~0U;
    if (to > from && syscall(SYS_close_range, from, last, 0U) != 0) fail(p, STEP_CLOSE_FDS, errno, static_cast<int>(i));
    if (i < p.n_keep_fds) from = to + 1;
  }
}

void hide_host_cmdline(const ChildPlan& p) {
  static const char kName[] = "latchgate-init";
  if (p.env_start != nullptr && p.env_end > p.env_start) memset(p.env_start, 0, p.env_end - p.env_start);
  if (p.arg_start == nullptr || p.arg_end <= p.arg_start) return;
  memset(p.arg_start, 0, p.arg_end - p.arg_start);
  size_t n = sizeof(kName) <= static_cast<size_t>(p.arg_end - p.arg_start) ? sizeof(kName) : 0;
  memcpy(p.arg_start, kName, n);
}

void reset_signals(const ChildPlan& p) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; s++) {
    if (s == SIGKILL || s == SIGSTOP) continue;
    sigaction(s, &sa, nullptr);  // fails harmlessly for glibc-reserved numbers
  }
  sigset_t all;
  sigfillset(&all);
  if (sigprocmask(SIG_SETMASK, &all, nullptr) != 0) fail(p, STEP_SIGNALS, errno);
}

// A socket of the given type bound to 127.0.0.1:port inside the box's network
// namespace (the namespace's capabilities are still held, so port 53 binds).
int bound_socket(const ChildPlan& p, int type, uint16_t port, int index) {
  int s = socket(AF_INET, type | SOCK_CLOEXEC, 0);
  if (s < 0) fail(p, STEP_LISTEN, errno, index);
  int one = 1;
  if (setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) fail(p, STEP_LISTEN, errno, index);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(s, reinterpret_cast<struct sockaddr*>(&sa), sizeof(sa)) != 0) fail(p, STEP_LISTEN, errno, index);
  return s;
}

// The exits' sockets, made here and served by the parent: the TCP ones
// listening, in plan order, then the UDP ones (index n_ports + i in a failure).
void send_listeners(const ChildPlan& p) {
  size_t n = p.n_ports + p.n_udp_ports;
  if (n == 0) return;
  int fds[16];
  for (size_t i = 0; i < p.n_ports; i++) {
    int s = bound_socket(p, SOCK_STREAM, p.ports[i], static_cast<int>(i));
    if (listen(s, 511) != 0) fail(p, STEP_LISTEN, errno, static_cast<int>(i));
    fds[i] = s;
  }
  for (size_t i = 0; i < p.n_udp_ports; i++) {
    fds[p.n_ports + i] = bound_socket(p, SOCK_DGRAM, p.udp_ports[i], static_cast<int>(p.n_ports + i));
  }
  Msg m{MSG_LISTEN_FDS, 0, 0, static_cast<int32_t>(n), 0};
  int r = send_msg(p.ctl_fd, m, fds, n);
  if (r != 0) fail(p, STEP_SEND_FDS, -r, 0);
  for (size_t i = 0; i < n; i++) close(fds[i]);
}

}  // namespace

void child_main(const ChildPlan& p) {
  close_inherited(p);
  char go = 0;
  for (;;) {
    ssize_t r = read(p.sync_fd, &go, 1);
    if (r == 1) break;
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail(p, STEP_SYNC, errno);
    _exit(125);  // end of file: the parent went away or refused to map our ids
  }
  int r = child_set_ids(p);
  if (r != 0) fail(p, STEP_SET_IDS, -r);
  // After the id change, which clears it. The parent keeps the sync pipe's
  // write end open for the box's life: a hang-up here means it already died.
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) fail(p, STEP_PDEATHSIG, errno);
  struct pollfd pf{p.sync_fd, POLLIN, 0};
  int ready = poll(&pf, 1, 0);
  if (ready < 0) fail(p, STEP_PDEATHSIG, errno, 1);
  if (ready > 0 && (pf.revents & (POLLHUP | POLLERR))) _exit(125);
  close(p.sync_fd);
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) fail(p, STEP_DUMPABLE, errno);
  hide_host_cmdline(p);
  reset_signals(p);
  if (setsid() < 0) fail(p, STEP_SETSID, errno);
  if (sethostname(p.hostname, strlen(p.hostname)) != 0) fail(p, STEP_HOSTNAME, errno);
  build_root(p);
  r = bring_up_loopback();
  if (r != 0) fail(p, STEP_LOOPBACK, -r);
  send_listeners(p);
  run_init(p);
}

}  // namespace lg
