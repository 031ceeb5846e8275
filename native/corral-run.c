// corral-run: the small supervisor every exec runs under (ARCHITECTURE.md §4, exec issue §2-3).
//
// Node cannot make the syscalls an exec needs between fork and exec, so this helper does them:
//   - joins the exec's cgroups before anything else runs (no fork can escape the limits);
//   - optionally enters a new user + mount namespace and mounts the overlay (warm checkout as the
//     lower layer, a fresh upper per exec) so the command's writes land in the upper directory;
//   - becomes a child subreaper, so descendants that daemonise (double fork, setsid, nohup) stay
//     its descendants and die with the exec;
//   - sets rlimits in the child, then execs the command (bwrap for the namespace backend);
//   - on SIGTERM (a timeout or a cancel) sends SIGTERM to the whole tree, SIGKILL after the grace
//     (with --term-spare-child its direct child, bwrap, is spared the SIGTERM: bwrap dies on it and
//     takes the pid namespace down with SIGKILL at once, so the command would get no grace at all);
//   - when the command ends, kills what it left behind, reaps everything, and reports the exit
//     status, rusage and the overlay's opaque directories on the status fd.
// With --passive it only runs the command and reports how it ended: the namespace backend runs a
// passive copy inside bwrap as the command's parent, because bwrap's own init turns a command
// killed by signal N into exit 128+N (the outer supervisor handles termination for both).
//
// With --pty COLSxROWS the command gets a pseudo-terminal instead of fds 0-2: this copy (the one
// that is the command's parent: the outer one on the host backend, the passive one inside bwrap,
// so the terminal lives on the sandbox's own devpts) opens it, sets its size, and the child makes
// it its controlling terminal (setsid + TIOCSCTTY; bwrap's --new-session ran earlier, in another
// process, so it takes nothing away) with TERM=xterm-256color unless TERM is set. This copy relays
// its stdin to the terminal and the terminal to its stdout (stderr is merged, as in any terminal);
// --pty-control-fd N reads lines "resize COLS ROWS" (TIOCSWINSZ: the command gets SIGWINCH).
// EOF on stdin types the terminal's EOF character (^D) once, as a person pressing ^D would; the
// terminal itself stays open until the command ends. Flow control is the pipes' own: one bounded
// buffer each way, and the terminal is not read while output waits for the reader (the producer
// then blocks on the full terminal). When the command has ended and its leftovers are killed, the
// terminal is drained until it reports EIO (no writer left) before the exit status is reported.
//
// Usage: corral-run [--cgroup-procs FILE]... [--overlay LOWER UPPER WORK MERGED] [--chdir DIR]
//                   [--rlimit NAME=VALUE]... [--grace-ms N] [--term-spare-child] [--status-fd N]
//                   [--extra-fds N] [--passive] [--pty COLSxROWS [--pty-control-fd N]] -- ARGV...
//        corral-run --peer-cred FD   (prints the UID GID PID of the peer of Unix socket FD)
// The command keeps fds 0-2 and, with --extra-fds N, fds 4 .. 3+N; every other inherited fd is closed.
// Status lines (fd given by --status-fd): "started PID", "exit CODE" | "signal NUM",
// "rusage UTIME_US STIME_US MAXRSS_KB INBLOCK OUBLOCK", "opaque HEX(PATH)", "error TEXT", and
// "done" last: a report without it is incomplete (the supervisor died) and must not be trusted.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fts.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static int status_fd = -1;
static volatile sig_atomic_t term_requested = 0;

static void report(const char *fmt, ...) {
  if (status_fd < 0) return;
  char buf[8192];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (n > (int)sizeof buf - 2) n = sizeof buf - 2;
  buf[n++] = '\n';
  for (int off = 0; off < n;) {
    ssize_t w = write(status_fd, buf + off, n - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    off += w;
  }
}

static void fail(const char *what) {
  report("error %s: %s", what, strerror(errno));
  _exit(125);
}

static int write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t len = (ssize_t)strlen(text);
  ssize_t w = write(fd, text, len);
  int saved = errno;
  close(fd);
  errno = saved;
  return w == len ? 0 : -1;
}

// Every live descendant of `root`, breadth first through the kernel's per-thread children lists.
static int descendants(pid_t root, pid_t *out, int max) {
  int found = 0;
  pid_t queue_head = 0;
  out[found++] = root;
  for (int q = 0; q < found; q++) {
    queue_head = out[q];
    char dirpath[64];
    snprintf(dirpath, sizeof dirpath, "/proc/%d/task", queue_head);
    DIR *d = opendir(dirpath);
    if (!d) continue;
    struct dirent *e;
    while ((e = readdir(d))) {
      if (e->d_name[0] == '.') continue;
      char path[320], buf[4096];
      snprintf(path, sizeof path, "/proc/%d/task/%s/children", queue_head, e->d_name);
      int fd = open(path, O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      ssize_t r = read(fd, buf, sizeof buf - 1);
      close(fd);
      if (r <= 0) continue;
      buf[r] = 0;
      for (char *tok = strtok(buf, " \n"); tok && found < max; tok = strtok(NULL, " \n")) out[found++] = (pid_t)atoi(tok);
    }
    closedir(d);
  }
  for (int i = 1; i < found; i++) out[i - 1] = out[i];
  return found - 1;
}

// Signals every descendant but `spare` (0: none); returns how many there were, `spare` included.
static int signal_tree(int sig, pid_t spare) {
  static pid_t tree[65536];
  int n = descendants(getpid(), tree, 65536);
  for (int i = 0; i < n; i++)
    if (tree[i] != spare) kill(tree[i], sig);
  return n;
}

static void reap_all(pid_t child, int *child_status, int *child_done) {
  for (;;) {
    int st;
    pid_t p = waitpid(-1, &st, WNOHANG);
    if (p <= 0) return;
    if (p == child) {
      *child_status = st;
      *child_done = 1;
    }
  }
}

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void write_all(const char *buf, size_t n) {
  for (size_t off = 0; off < n;) {
    ssize_t w = write(status_fd, buf + off, n - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    off += (size_t)w;
  }
}

// The overlay marks a directory that replaced a deleted one as opaque: its lower contents are gone.
// The command controls the upper tree's depth and names, so the walk is fts(3): iterative, heap
// buffers of any length, physical (never follows a symlink), one device. Returns -1 when a part of
// the tree could not be read: the opaque list would be incomplete, so the caller reports an error.
static int report_opaque(const char *upper) {
  char *roots[] = {(char *)upper, NULL};
  // No FTS_NOSTAT: its shortcut trusts directory link counts, which not every filesystem keeps.
  FTS *fts = fts_open(roots, FTS_PHYSICAL | FTS_XDEV, NULL);
  if (!fts) return -1;
  size_t root_len = strlen(upper);
  if (root_len > 1 && upper[root_len - 1] == '/') root_len--; // as fts joins names to the root
  int rc = 0;
  for (;;) {
    errno = 0;
    FTSENT *e = fts_read(fts);
    if (!e) {
      if (errno != 0) rc = -1;
      break;
    }
    if (e->fts_info == FTS_DNR || e->fts_info == FTS_ERR || e->fts_info == FTS_NS) {
      errno = e->fts_errno;
      rc = -1;
      break;
    }
    if (e->fts_info != FTS_D || e->fts_level == 0) continue;
    char val[8];
    ssize_t n = lgetxattr(e->fts_accpath, "user.overlay.opaque", val, sizeof val);
    if (n != 1 || val[0] != 'y') continue;
    // fts_path is UPPER/REL: report REL, hex-encoded (names may hold any byte but '/' and NUL).
    const char *rel = e->fts_path + root_len + 1;
    size_t len = strlen(rel);
    char *line = malloc(2 * len + 9);
    if (!line) {
      rc = -1;
      break;
    }
    memcpy(line, "opaque ", 7);
    for (size_t i = 0; i < len; i++) {
      static const char digits[] = "0123456789abcdef";
      line[7 + 2 * i] = digits[(unsigned char)rel[i] >> 4];
      line[8 + 2 * i] = digits[(unsigned char)rel[i] & 15];
    }
    line[7 + 2 * len] = '\n';
    write_all(line, 8 + 2 * len);
    free(line);
  }
  int saved = errno;
  fts_close(fts);
  errno = saved;
  return rc;
}

// Closes every fd from 3 up except 4 .. 3+extra (the command's extra fds; 3 is the status fd).
static void close_inherited(int extra) {
  if (extra > 0) {
    syscall(SYS_close_range, 3, 3, 0);
    syscall(SYS_close_range, 4 + extra, ~0U, 0);
  } else {
    syscall(SYS_close_range, 3, ~0U, 0);
  }
}

static int rlimit_resource(const char *name) {
  if (!strcmp(name, "NOFILE")) return RLIMIT_NOFILE;
  if (!strcmp(name, "FSIZE")) return RLIMIT_FSIZE;
  if (!strcmp(name, "CORE")) return RLIMIT_CORE;
  if (!strcmp(name, "NPROC")) return RLIMIT_NPROC;
  if (!strcmp(name, "AS")) return RLIMIT_AS;
  if (!strcmp(name, "CPU")) return RLIMIT_CPU;
  if (!strcmp(name, "STACK")) return RLIMIT_STACK;
  return -1;
}

static void enter_overlay(const char *lower, const char *upper, const char *work, const char *merged) {
  uid_t uid = getuid();
  gid_t gid = getgid();
  if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0) fail("unshare(user+mount)");
  char map[64];
  if (write_file("/proc/self/setgroups", "deny") < 0) fail("setgroups");
  snprintf(map, sizeof map, "%u %u 1", uid, uid);
  if (write_file("/proc/self/uid_map", map) < 0) fail("uid_map");
  snprintf(map, sizeof map, "%u %u 1", gid, gid);
  if (write_file("/proc/self/gid_map", map) < 0) fail("gid_map");
  if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) fail("make / private");
  char opts[3 * PATH_MAX + 128];
  if (snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s,userxattr", lower, upper, work) >= (int)sizeof opts) {
    errno = ENAMETOOLONG;
    fail("overlay options");
  }
  if (mount("overlay", merged, "overlay", 0, opts) < 0) fail("mount overlay");
}

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

// The terminal relay: one bounded buffer each way, so nothing grows however fast either side is.
struct term {
  int master;      // -1: no terminal
  int master_open; // 0 once the master reported EIO: no process holds the terminal any more
  int in_fd;       // this process's stdin, -1 after EOF (or when input is no longer taken)
  int ctl_fd;      // the control channel, -1 when none or closed
  int out_broken;  // stdout failed (the reader went): output is read and dropped
  int eof_pending; // stdin ended: type VEOF once the pending input is written
  int saved_fl[2]; // fds 0 and 1's file status flags, restored at the end
  size_t in_off, in_len, out_off, out_len, ctl_len;
  char in[16384];
  char out[65536];
  char ctl[128];
};

// Opens a terminal pair of the current devpts (the sandbox's own inside bwrap) with the given size.
// Both ends are close-on-exec and never become this process's controlling terminal.
static int open_pty(unsigned cols, unsigned rows, int *slave) {
  int m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (m < 0) return -1;
  int unlock = 0;
  if (ioctl(m, TIOCSPTLCK, &unlock) < 0) goto fail;
  // TIOCGPTPEER opens the peer of this very master, whatever the mounts; a path is the fallback.
  int s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (s < 0) {
    char name[64];
    if (ptsname_r(m, name, sizeof name) != 0) goto fail;
    s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (s < 0) goto fail;
  }
  struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
  if (ioctl(m, TIOCSWINSZ, &ws) < 0) {
    close(s);
    goto fail;
  }
  *slave = s;
  return m;
fail:;
  int saved = errno;
  close(m);
  errno = saved;
  return -1;
}

static int set_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0 && !(fl & O_NONBLOCK)) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  return fl;
}

static void control_line(struct term *t, char *line) {
  unsigned cols, rows;
  char extra;
  if (sscanf(line, "resize %u %u %c", &cols, &rows, &extra) != 2) return;
  if (cols < 1 || cols > 65535 || rows < 1 || rows > 65535) return;
  struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
  ioctl(t->master, TIOCSWINSZ, &ws);
}

static void read_control(struct term *t) {
  ssize_t n = read(t->ctl_fd, t->ctl + t->ctl_len, sizeof t->ctl - 1 - t->ctl_len);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) {
    close(t->ctl_fd);
    t->ctl_fd = -1;
    return;
  }
  t->ctl_len += (size_t)n;
  size_t start = 0;
  for (size_t k = 0; k < t->ctl_len; k++) {
    if (t->ctl[k] != '\n') continue;
    t->ctl[k] = 0;
    control_line(t, t->ctl + start);
    start = k + 1;
  }
  memmove(t->ctl, t->ctl + start, t->ctl_len - start);
  t->ctl_len -= start;
  if (t->ctl_len == sizeof t->ctl - 1) t->ctl_len = 0; // a line that long is no command: drop it
}

// One round of waiting: for a signal (on `sfd`), and, with a terminal, for whatever the relay can
// move next. Signals: TERM, INT and HUP set term_requested; CHLD only wakes the caller to reap.
static void wait_step(struct term *t, int sfd, int timeout_ms) {
  struct pollfd p[5];
  int np = 0;
  p[np++] = (struct pollfd){.fd = sfd, .events = POLLIN};
  int im = -1, io = -1, ii = -1, ic = -1;
  if (t->master >= 0) {
    short ev = 0;
    // Read the terminal only when the last output is written: a reader that stops stops the command.
    if (t->master_open && t->out_off == t->out_len) ev |= POLLIN;
    if (t->master_open && (t->in_off < t->in_len || t->eof_pending)) ev |= POLLOUT;
    // An fd with no events would still report POLLHUP at once, and spin: leave it out instead.
    if (ev) {
      im = np;
      p[np++] = (struct pollfd){.fd = t->master, .events = ev};
    }
    if (t->out_off < t->out_len) {
      io = np;
      p[np++] = (struct pollfd){.fd = 1, .events = POLLOUT};
    }
    if (t->in_fd >= 0 && t->in_off == t->in_len && !t->eof_pending && t->master_open) {
      ii = np;
      p[np++] = (struct pollfd){.fd = t->in_fd, .events = POLLIN};
    }
    if (t->ctl_fd >= 0) {
      ic = np;
      p[np++] = (struct pollfd){.fd = t->ctl_fd, .events = POLLIN};
    }
  }
  int r = poll(p, (nfds_t)np, timeout_ms);
  if (r <= 0) return;
  if (p[0].revents) {
    struct signalfd_siginfo si;
    while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
      if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT || si.ssi_signo == SIGHUP) term_requested = 1;
  }
  if (im >= 0 && p[im].revents) {
    // No holder of the terminal is left to read input: drop it, or the hangup would be polled for ever.
    if (p[im].revents & (POLLHUP | POLLERR)) {
      t->in_off = t->in_len = 0;
      t->eof_pending = 0;
    }
    if ((p[im].revents & (POLLIN | POLLHUP | POLLERR)) && t->out_off == t->out_len) {
      ssize_t n = read(t->master, t->out, sizeof t->out);
      if (n > 0) {
        t->out_off = 0;
        t->out_len = t->out_broken ? 0 : (size_t)n;
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        t->master_open = 0; // EIO: every holder of the terminal is gone
      }
    }
    if ((p[im].revents & POLLOUT) && t->in_off < t->in_len) {
      ssize_t n = write(t->master, t->in + t->in_off, t->in_len - t->in_off);
      if (n > 0) t->in_off += (size_t)n;
      else if (n < 0 && errno != EAGAIN && errno != EINTR) t->in_off = t->in_len;
    }
    if ((p[im].revents & POLLOUT) && t->in_off == t->in_len && t->eof_pending) {
      struct termios tio;
      char eof = tcgetattr(t->master, &tio) == 0 ? (char)tio.c_cc[VEOF] : 4;
      ssize_t n = eof ? write(t->master, &eof, 1) : 1;
      if (n == 1 || (n < 0 && errno != EAGAIN && errno != EINTR)) t->eof_pending = 0;
    }
  }
  if (io >= 0 && p[io].revents) {
    ssize_t n = write(1, t->out + t->out_off, t->out_len - t->out_off);
    if (n > 0) t->out_off += (size_t)n;
    else if (n < 0 && errno != EAGAIN && errno != EINTR) {
      t->out_broken = 1;
      t->out_off = t->out_len = 0;
    }
    if (t->out_off == t->out_len) t->out_off = t->out_len = 0;
  }
  if (ii >= 0 && p[ii].revents) {
    ssize_t n = read(t->in_fd, t->in, sizeof t->in);
    if (n > 0) {
      t->in_off = 0;
      t->in_len = (size_t)n;
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
      t->in_fd = -1;
      t->eof_pending = 1;
    }
  }
  if (ic >= 0 && p[ic].revents) read_control(t);
}

int main(int argc, char **argv) {
  // corral-run --peer-cred FD: who is at the other end of the Unix socket FD (the daemon asks, as
  // Node has no SO_PEERCRED): prints "UID GID PID".
  if (argc == 3 && !strcmp(argv[1], "--peer-cred")) {
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(atoi(argv[2]), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      fprintf(stderr, "corral-run: SO_PEERCRED: %s\n", strerror(errno));
      return 1;
    }
    printf("%u %u %d\n", (unsigned)cred.uid, (unsigned)cred.gid, (int)cred.pid);
    return 0;
  }
  const char *cgroup_procs[16];
  int ncgroups = 0;
  const char *ov[4] = {0};
  const char *chdir_to = NULL;
  struct {
    int res;
    rlim_t value;
  } limits[16];
  int nlimits = 0;
  long grace_ms = 2000;
  int spare_child = 0;
  int extra_fds = 0;
  int passive = 0;
  unsigned pty_cols = 0, pty_rows = 0;
  int pty_ctl = -1;
  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--")) {
      i++;
      break;
    } else if (!strcmp(a, "--cgroup-procs") && i + 1 < argc && ncgroups < 16) {
      cgroup_procs[ncgroups++] = argv[++i];
    } else if (!strcmp(a, "--overlay") && i + 4 < argc) {
      for (int k = 0; k < 4; k++) ov[k] = argv[++i];
    } else if (!strcmp(a, "--chdir") && i + 1 < argc) {
      chdir_to = argv[++i];
    } else if (!strcmp(a, "--rlimit") && i + 1 < argc && nlimits < 16) {
      char name[32];
      unsigned long long v;
      if (sscanf(argv[++i], "%31[A-Z]=%llu", name, &v) != 2 || rlimit_resource(name) < 0) {
        fprintf(stderr, "corral-run: bad --rlimit %s\n", argv[i]);
        return 125;
      }
      limits[nlimits].res = rlimit_resource(name);
      limits[nlimits].value = (rlim_t)v;
      nlimits++;
    } else if (!strcmp(a, "--extra-fds") && i + 1 < argc) {
      extra_fds = atoi(argv[++i]);
    } else if (!strcmp(a, "--grace-ms") && i + 1 < argc) {
      grace_ms = atol(argv[++i]);
    } else if (!strcmp(a, "--term-spare-child")) {
      spare_child = 1;
    } else if (!strcmp(a, "--passive")) {
      passive = 1;
    } else if (!strcmp(a, "--pty") && i + 1 < argc) {
      char extra;
      if (sscanf(argv[++i], "%ux%u%c", &pty_cols, &pty_rows, &extra) != 2 || pty_cols < 1 || pty_cols > 65535 || pty_rows < 1 || pty_rows > 65535) {
        fprintf(stderr, "corral-run: bad --pty %s (want COLSxROWS)\n", argv[i]);
        return 125;
      }
    } else if (!strcmp(a, "--pty-control-fd") && i + 1 < argc) {
      pty_ctl = atoi(argv[++i]);
      fcntl(pty_ctl, F_SETFD, FD_CLOEXEC);
    } else if (!strcmp(a, "--status-fd") && i + 1 < argc) {
      status_fd = atoi(argv[++i]);
      fcntl(status_fd, F_SETFD, FD_CLOEXEC);
    } else {
      fprintf(stderr, "corral-run: unknown option %s\n", a);
      return 125;
    }
  }
  if (i >= argc) {
    fprintf(stderr, "corral-run: no command after --\n");
    return 125;
  }

  // Join the cgroups first: everything started from here on is counted and limited.
  char pidtext[32];
  snprintf(pidtext, sizeof pidtext, "%d", getpid());
  for (int k = 0; k < ncgroups; k++)
    if (write_file(cgroup_procs[k], pidtext) < 0) fail("join cgroup");

  // If Corral dies, take the tree down with us (handled as a termination request, without grace:
  // nobody waits for the command any more, and its late writes must not land after the next exec began).
  pid_t parent = getppid();
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != parent || parent == 1) term_requested = 1;
  prctl(PR_SET_CHILD_SUBREAPER, 1);

  if (ov[0]) enter_overlay(ov[0], ov[1], ov[2], ov[3]);

  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGHUP);
  sigaddset(&block, SIGCHLD);
  sigprocmask(SIG_BLOCK, &block, &old);
  // The signals stay blocked and are read here, so one poll waits for them and for the terminal.
  int sfd = signalfd(-1, &block, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) fail("signalfd");

  static struct term term;
  term.master = -1;
  term.in_fd = -1;
  term.ctl_fd = -1;
  int slave = -1;
  if (pty_cols) {
    term.master = open_pty(pty_cols, pty_rows, &slave);
    if (term.master < 0) fail("open a pseudo-terminal");
    term.master_open = 1;
    term.ctl_fd = pty_ctl;
  } else if (pty_ctl >= 0) {
    close(pty_ctl);
  }

  pid_t child = fork();
  if (child < 0) fail("fork");
  if (child == 0) {
    sigprocmask(SIG_SETMASK, &old, NULL);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    setsid();
    if (slave >= 0) {
      // The new session's controlling terminal; then it is the command's stdin, stdout and stderr.
      if (ioctl(slave, TIOCSCTTY, 0) < 0) {
        dprintf(2, "corral-run: cannot make the pseudo-terminal the controlling terminal: %s\n", strerror(errno));
        _exit(125);
      }
      for (int fd = 0; fd < 3; fd++)
        if (dup2(slave, fd) < 0) _exit(125);
      setenv("TERM", "xterm-256color", 0);
    }
    // Only stdio and the fds meant for the command (4 .. 3+extra_fds: bwrap's seccomp program) go
    // through: any other descriptor this process inherited would reach into the host.
    if (status_fd >= 0) close(status_fd);
    close_inherited(extra_fds);
    for (int k = 0; k < nlimits; k++) {
      struct rlimit rl = {limits[k].value, limits[k].value};
      struct rlimit cur;
      if (getrlimit(limits[k].res, &cur) == 0 && cur.rlim_max != RLIM_INFINITY && rl.rlim_max > cur.rlim_max) rl.rlim_max = rl.rlim_cur = cur.rlim_max;
      if (setrlimit(limits[k].res, &rl) < 0) {
        dprintf(2, "corral-run: setrlimit: %s\n", strerror(errno));
        _exit(125);
      }
    }
    if (chdir_to && chdir(chdir_to) < 0) {
      dprintf(2, "corral-run: cannot enter %s: %s\n", chdir_to, strerror(errno));
      _exit(125);
    }
    execvp(argv[i], argv + i);
    dprintf(2, "corral-run: cannot run %s: %s\n", argv[i], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
  }
  report("started %d", child);
  // The passive copy runs beside the command, as the same user: not dumpable, so the command cannot
  // reach its status fd (through /proc/PID/fd or pidfd_getfd) and forge how it ended.
  if (passive) prctl(PR_SET_DUMPABLE, 0);
  if (term.master >= 0) {
    close(slave); // the child holds it: the master reads EIO once every holder is gone
    signal(SIGPIPE, SIG_IGN); // a reader that went is an EPIPE, handled; the child got the default
    term.in_fd = 0;
    term.saved_fl[0] = set_nonblock(0);
    term.saved_fl[1] = set_nonblock(1);
    set_nonblock(term.master);
    if (term.ctl_fd >= 0) set_nonblock(term.ctl_fd);
  }

  int child_status = 0, child_done = 0;
  long kill_at = -1, term_at = -1;
  while (!child_done) {
    reap_all(child, &child_status, &child_done);
    if (child_done) break;
    if (term_requested && kill_at < 0 && !passive) {
      int orphaned = getppid() != parent || parent == 1;
      signal_tree(orphaned ? SIGKILL : SIGTERM, orphaned || !spare_child ? 0 : child);
      term_at = now_ms();
      kill_at = orphaned ? term_at : term_at + grace_ms;
    }
    if (kill_at >= 0 && now_ms() >= kill_at) {
      signal_tree(SIGKILL, 0);
      kill_at = now_ms() + 1000000;
    }
    // Wait for a child, a signal or the terminal; a short timeout keeps the grace clock honest.
    wait_step(&term, sfd, kill_at >= 0 ? 20 : 200);
  }

  // The command is over: nothing it started may outlive it. Wait on SIGCHLD, not a fixed sleep:
  // a pid namespace's init is reparented here and dies a moment after bwrap. The terminal keeps
  // being relayed meanwhile, but takes no more input.
  term.in_fd = -1;
  term.in_off = term.in_len = 0;
  term.eof_pending = 0;
  for (int round = 0; round < 5000; round++) {
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    if (signal_tree(SIGKILL, 0) == 0) break;
    wait_step(&term, sfd, 2);
  }
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }

  // Trailing output first: drain the terminal until no holder is left (EIO) and its last bytes
  // are written, so the reader has them all before the exit status. A reader that does not read
  // holds this up, unless a termination's grace is over (the outer copy; the passive one is killed).
  if (term.master >= 0) {
    long idle_since = now_ms();
    while ((term.master_open || term.out_off < term.out_len) && !term.out_broken) {
      if (!passive && term_requested && term_at >= 0 && now_ms() >= term_at + grace_ms) break;
      size_t before = term.out_len;
      int was_open = term.master_open;
      wait_step(&term, sfd, 200);
      if (term.out_len != before || term.master_open != was_open || term.out_off < term.out_len) idle_since = now_ms();
      // The master stays silent but not closed only when a process out of the tree holds the terminal.
      else if (now_ms() - idle_since > 1000) break;
    }
    for (int fd = 0; fd < 2; fd++)
      if (term.saved_fl[fd] >= 0) fcntl(fd, F_SETFL, term.saved_fl[fd]);
  }

  if (WIFSIGNALED(child_status)) report("signal %d", WTERMSIG(child_status));
  else report("exit %d", WEXITSTATUS(child_status));
  struct rusage ru;
  if (getrusage(RUSAGE_CHILDREN, &ru) == 0)
    report("rusage %ld %ld %ld %ld %ld", (long)(ru.ru_utime.tv_sec * 1000000L + ru.ru_utime.tv_usec),
           (long)(ru.ru_stime.tv_sec * 1000000L + ru.ru_stime.tv_usec), ru.ru_maxrss, ru.ru_inblock, ru.ru_oublock);
  if (ov[1]) {
    errno = 0;
    if (report_opaque(ov[1]) < 0) {
      report("error cannot read the overlay upper directory %s: %s", ov[1], strerror(errno ? errno : EIO));
      return 125;
    }
  }
  report("done");
  return 0;
}
