// A fresh pseudo-terminal from the box's own devpts instance. The master
// goes to the Node parent (which relays the host terminal); the slave becomes
// the command's controlling terminal. TIOCSTI on it reaches only this PTY.
#include <cerrno>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "common.h"

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

namespace lg {

int open_box_pty(const ChildPlan& p, int* slave_out) {
  int m = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (m < 0) return -errno;
  int unlock = 0;
  if (ioctl(m, TIOCSPTLCK, &unlock) != 0) { int e = errno; close(m); return -e; }
  struct winsize ws;
  ws.ws_row = p.rows;
  ws.ws_col = p.cols;
  ws.ws_xpixel = 0;
  ws.ws_ypixel = 0;
  if (ioctl(m, TIOCSWINSZ, &ws) != 0) { int e = errno; close(m); return -e; }
  int s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (s < 0) { int e = errno; close(m); return -e; }
  *slave_out = s;
  return m;
}

}  // namespace lg
