// Assembles the box's root: a staging tmpfs holds the host root at /oldroot
// and the box root (another tmpfs) at /newroot; the plan's operations fill
// /newroot (and may mount the tmp budget beside it); then pivot_root into it
// and detach everything else.
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/mount.h>

#include "common.h"
#include "kernel-abi.h"


namespace lg {
namespace {


int set_attr(int dfd, const char* path, unsigned flags, uint64_t set) {
  MountAttr a{set, 0, 0, 0};
  return static_cast<int>(syscall(SYS_mount_setattr, dfd, path, flags, &a, sizeof(a)));
}

// Moves the detached mount fd onto op.dst (fd is closed): never following a
// symlink in the last place (a protected path replaced by one is covered),
// and with no_follow_dst none on the way either.
int attach(int fd, const MountOp& op) {
  int r;
  int e = 0;
  if (op.no_follow_dst) {
    int dfd = open_no_symlinks(op.dst, O_NOFOLLOW);
    if (dfd < 0) {
      close(fd);
      return dfd;
    }
    r = static_cast<int>(syscall(SYS_move_mount, fd, "", dfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH));
    e = errno;
    close(dfd);
  } else {
    r = static_cast<int>(syscall(SYS_move_mount, fd, "", AT_FDCWD, op.dst, MOVE_MOUNT_F_EMPTY_PATH));
    e = errno;
  }
  close(fd);
  return r == 0 ? 0 : -e;
}

// A detached copy of src, made read-only (only adding flags: the source's
// locked nosuid/nodev/noexec stay), then attached. With no_follow_src (a
// protected path bound from itself) src is reached through no symlink at
// all: a name swapped for one since the plan would bind what it names.
int bind(const MountOp& op) {
  unsigned tflags = OPEN_TREE_CLONE | O_CLOEXEC | (op.recursive ? AT_RECURSIVE : 0);
  int fd;
  if (op.no_follow_src) {
    int sfd = open_no_symlinks(op.src, 0);
    if (sfd < 0) return sfd;
    fd = static_cast<int>(syscall(SYS_open_tree, sfd, "", tflags | AT_EMPTY_PATH));
    int e = errno;
    close(sfd);
    if (fd < 0) return -e;
  } else {
    fd = static_cast<int>(syscall(SYS_open_tree, AT_FDCWD, op.src, tflags));
    if (fd < 0) return -errno;
  }
  uint64_t set = MOUNT_ATTR_NOSUID | (op.readonly ? MOUNT_ATTR_RDONLY : 0);
  if (set_attr(fd, "", AT_EMPTY_PATH | (op.recursive ? AT_RECURSIVE : 0), set) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return attach(fd, op);
}

// A tmpfs on a directory reached through no symlink (no_follow_dst), by the
// mount API that takes an fd: fsopen, each option of op.data as mount(2)'s
// data string would give it (key=value, or a flag such as ro), fsmount.
int tmpfs_no_follow(const MountOp& op) {
  char opts[256];
  size_t n = op.data ? op.data_len : 0;
  if (n >= sizeof(opts)) return -E2BIG;
  if (n) memcpy(opts, op.data, n);
  opts[n] = '\0';
  int dfd = open_no_symlinks(op.dst, O_DIRECTORY);
  if (dfd < 0) return dfd;
  int fs = static_cast<int>(syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC));
  int e = fs < 0 ? errno : 0;
  for (char* key = opts; e == 0 && *key;) {
    char* end = strchr(key, ',');
    if (end) *end = '\0';
    char* value = strchr(key, '=');
    if (value) *value++ = '\0';
    long r = value ? syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, key, value, 0) : syscall(SYS_fsconfig, fs, FSCONFIG_SET_FLAG, key, nullptr, 0);
    if (r != 0) e = errno;
    key = end ? end + 1 : key + strlen(key);
  }
  if (e == 0 && syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) e = errno;
  int mfd = e == 0 ? static_cast<int>(syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)) : -1;
  if (e == 0 && mfd < 0) e = errno;
  if (e == 0 && syscall(SYS_move_mount, mfd, "", dfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0) e = errno;
  if (mfd >= 0) close(mfd);
  if (fs >= 0) close(fs);
  close(dfd);
  return -e;
}

int write_file(const MountOp& op) {
  int fd = open(op.dst, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, op.mode);
  if (fd < 0) return -errno;
  size_t off = 0;
  while (off < op.data_len) {
    ssize_t w = write(fd, op.data + off, op.data_len - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      return -e;
    }
    off += static_cast<size_t>(w);
  }
  if (fchmod(fd, op.mode) != 0) { int e = errno; close(fd); return -e; }
  close(fd);
  return 0;
}

// A new directory of the tmp budget, given its mode outright (mkdir's is
// masked by the umask), attached on dst like a bind. The attached mount's
// root is this directory: the budget's other directories stay out of reach.
int budget_dir(const MountOp& op) {
  if (mkdir(op.src, 0700) != 0) return -errno;
  if (chmod(op.src, op.mode) != 0) return -errno;
  return bind(op);
}

int run_op(const MountOp& op) {
  switch (op.kind) {
    case OP_MKDIR:
      if (mkdir(op.dst, op.mode) != 0 && errno != EEXIST) return -errno;
      return 0;
    case OP_MKFILE: {
      int fd = open(op.dst, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, op.mode);
      if (fd < 0) return errno == EEXIST ? 0 : -errno;
      close(fd);
      return 0;
    }
    case OP_BIND:
    case OP_MASK:
      return bind(op);
    case OP_TMPFS:
      if (op.no_follow_dst) return tmpfs_no_follow(op);
      if (mount("tmpfs", op.dst, "tmpfs", MS_NOSUID | MS_NODEV, op.data) != 0) return -errno;
      return 0;
    case OP_TMP_BUDGET:
      // Outside /newroot, so the box never sees the budget's root; it goes
      // with the staging root, its directories stay mounted in the box.
      if (mkdir(op.dst, 0700) != 0) return -errno;
      if (mount("tmpfs", op.dst, "tmpfs", MS_NOSUID | MS_NODEV, op.data) != 0) return -errno;
      return 0;
    case OP_BUDGET_DIR:
      return budget_dir(op);
    case OP_IDMAP_TREE: {
      // Outside /newroot like the tmp budget: the box's binds of the tree
      // and of protected paths in it are copies of this mount (copies keep
      // the idmap); it goes with the staging root.
      if (mkdir(op.dst, 0700) != 0) return -errno;
      int r = static_cast<int>(syscall(SYS_move_mount, op.fd, "", AT_FDCWD, op.dst, MOVE_MOUNT_F_EMPTY_PATH));
      int e = errno;
      close(op.fd);
      return r == 0 ? 0 : -e;
    }
    case OP_PROC:
      if (mount("proc", op.dst, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) return -errno;
      return 0;
    case OP_DEVPTS:
      if (mount("devpts", op.dst, "devpts", MS_NOSUID | MS_NOEXEC,
                "newinstance,ptmxmode=0666,mode=0620") != 0)
        return -errno;
      return 0;
    case OP_SYMLINK:
      if (symlink(op.data, op.dst) != 0) return -errno;
      return 0;
    case OP_WRITE_FILE:
      return write_file(op);
    default:
      return -EINVAL;
  }
}

}  // namespace

void build_root(const ChildPlan& p) {
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    fail(p, STEP_MOUNT_PRIVATE, errno);

  // Staging: a tmpfs on stage_dir becomes "/" with the host root at /oldroot.
  // pivot_root moves the staging mount away from the old root, so the host's
  // own stage_dir contents stay reachable as /oldroot/<stage_dir>.
  if (mount("tmpfs", p.stage_dir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700") != 0)
    fail(p, STEP_STAGE_ROOT, errno, 0);
  if (chdir(p.stage_dir) != 0) fail(p, STEP_STAGE_ROOT, errno, 1);
  if (mkdir("newroot", 0755) != 0 || mkdir("oldroot", 0700) != 0)
    fail(p, STEP_STAGE_ROOT, errno, 2);
  if (mount("tmpfs", "newroot", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0)
    fail(p, STEP_STAGE_ROOT, errno, 3);
  if (syscall(SYS_pivot_root, ".", "oldroot") != 0) fail(p, STEP_STAGE_ROOT, errno, 4);
  if (chdir("/") != 0) fail(p, STEP_STAGE_ROOT, errno, 5);

  for (size_t i = 0; i < p.n_ops; i++) {
    int r = run_op(p.ops[i]);
    if (r != 0) fail(p, STEP_MOUNT_OP, -r, static_cast<int>(i));
  }

  // The box root replaces the staging root; the old root goes with it.
  if (chdir("/newroot") != 0) fail(p, STEP_PIVOT_ROOT, errno, 0);
  if (syscall(SYS_pivot_root, ".", ".") != 0) fail(p, STEP_PIVOT_ROOT, errno, 1);
  if (umount2(".", MNT_DETACH) != 0) fail(p, STEP_DETACH_OLDROOT, errno);
  if (chdir("/") != 0) fail(p, STEP_PIVOT_ROOT, errno, 2);
  if (set_attr(AT_FDCWD, "/", 0, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV) != 0)
    fail(p, STEP_ROOT_READONLY, errno);
}

}  // namespace lg
