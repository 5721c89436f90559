// PID 1 of the box: starts the command, reaps orphans, forwards signals, and
// when the command ends kills what is left and reports the status.
#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace lg {
namespace {

// Closes every fd from first up but the control socket; a failure reports
// index (below it) or index + 1 (above it).
void close_all_but_ctl(const ChildPlan& p, unsigned first, int index) {
  unsigned keep = static_cast<unsigned>(p.ctl_fd);
  if (keep > first && syscall(SYS_close_range, first, keep - 1, 0U) != 0) fail(p, STEP_CLOSE_FDS, errno, index);
  if (syscall(SYS_close_range, keep + 1, ~0U, 0U) != 0) fail(p, STEP_CLOSE_FDS, errno, index + 1);
}

[[noreturn]] void exec_command(const ChildPlan& p, int slave) {
  sigset_t none;
  sigemptyset(&none);
  if (sigprocmask(SIG_SETMASK, &none, nullptr) != 0) fail(p, STEP_SIGNALS, errno, 1);
  // Own session: no controlling terminal unless it is the box's PTY, so
  // nothing inside can reach the host terminal (TIOCSTI needs a ctty).
  if (setsid() < 0) fail(p, STEP_SETSID, errno, 1);
  if (p.pty) {
    if (ioctl(slave, TIOCSCTTY, 0) != 0) fail(p, STEP_STDIO, errno, 0);
    for (int fd = 0; fd <= 2; fd++) {
      if (dup2(slave, fd) < 0) fail(p, STEP_STDIO, errno, 1);
    }
    if (slave > 2) close(slave);
  } else {
    // Node marks its stdio close-on-exec and non-blocking; the command gets
    // them as any program expects them.
    for (int fd = 0; fd <= 2; fd++) {
      if (fcntl(fd, F_SETFD, 0) != 0) continue;
      int fl = fcntl(fd, F_GETFL);
      if (fl >= 0 && (fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) fail(p, STEP_STDIO, errno, 2);
    }
  }
  close_all_but_ctl(p, 3, 0);
  if (chdir(p.cwd) != 0) fail(p, STEP_CHDIR, errno);
  apply_rlimits(p);
  set_no_new_privs(p);
  apply_landlock(p);
  drop_capabilities(p);
  send_simple(p.ctl_fd, MSG_PRE_EXEC, 0, 0, 0, monotonic_ns() - p.t0_ns);
  install_seccomp(p);
  int err = ENOENT;
  int idx = -1;
  for (size_t i = 0; i < p.n_exec_paths; i++) {
    execve(p.exec_paths[i], p.argv, p.envp);
    int e = errno;
    if (e == ENOENT || e == ENOTDIR) continue;
    err = e;
    idx = static_cast<int>(i);
    if (e != EACCES) break;  // EACCES: keep looking, as execvp does
  }
  send_simple(p.ctl_fd, MSG_EXEC_FAIL, 0, err, idx, 0);
  _exit(err == ENOENT ? 127 : 126);
}

}  // namespace

void run_init(const ChildPlan& p) {
  int slave = -1;
  if (p.pty) {
    int master = open_box_pty(p, &slave);
    if (master < 0) fail(p, STEP_PTY, -master);
    Msg m{MSG_PTY_MASTER, 0, 0, 0, 0};
    int r = send_msg(p.ctl_fd, m, &master, 1);
    if (r != 0) fail(p, STEP_SEND_FDS, -r, 1);
    close(master);
  }

  long cmd = raw_fork();
  if (cmd < 0) fail(p, STEP_FORK, errno);
  if (cmd == 0) exec_command(p, slave);

  // init keeps nothing from the host but the control socket.
  close_all_but_ctl(p, 0, 2);

  sigset_t all;
  sigfillset(&all);
  for (;;) {
    siginfo_t si;
    int sig = sigwaitinfo(&all, &si);
    if (sig < 0) continue;
    if (sig != SIGCHLD) {
      // Like a terminal: the whole job gets it, not just its leader.
      if (kill(-static_cast<pid_t>(cmd), sig) != 0) kill(static_cast<pid_t>(cmd), sig);
      continue;
    }
    for (;;) {
      int status = 0;
      pid_t w = waitpid(-1, &status, WNOHANG);
      if (w <= 0) break;
      if (w == cmd) {
        kill(-1, SIGKILL);  // the box ends with its command: no daemon survives
        while (waitpid(-1, nullptr, 0) > 0 || errno == EINTR) {
        }
        send_simple(p.ctl_fd, MSG_EXIT, 0, 0, 0, status);
        _exit(0);
      }
    }
  }
}

}  // namespace lg
