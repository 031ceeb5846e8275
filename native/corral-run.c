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
// Usage: corral-run [--cgroup-procs FILE]... [--overlay LOWER UPPER WORK MERGED] [--chdir DIR]
//                   [--rlimit NAME=VALUE]... [--grace-ms N] [--term-spare-child] [--status-fd N]
//                   [--extra-fds N] [--passive] -- ARGV...
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
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
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

static void on_term(int sig) {
  (void)sig;
  term_requested = 1;
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

int main(int argc, char **argv) {
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

  pid_t child = fork();
  if (child < 0) fail("fork");
  if (child == 0) {
    sigprocmask(SIG_SETMASK, &old, NULL);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    // Only stdio and the fds meant for the command (4 .. 3+extra_fds: bwrap's seccomp program) go
    // through: any other descriptor this process inherited would reach into the host.
    if (status_fd >= 0) close(status_fd);
    close_inherited(extra_fds);
    setsid();
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

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  sa.sa_handler = SIG_DFL;
  sigaction(SIGCHLD, &sa, NULL);
  sigset_t waitmask;
  sigemptyset(&waitmask);

  int child_status = 0, child_done = 0;
  long kill_at = -1;
  while (!child_done) {
    reap_all(child, &child_status, &child_done);
    if (child_done) break;
    if (term_requested && kill_at < 0 && !passive) {
      int orphaned = getppid() != parent || parent == 1;
      signal_tree(orphaned ? SIGKILL : SIGTERM, orphaned || !spare_child ? 0 : child);
      kill_at = orphaned ? now_ms() : now_ms() + grace_ms;
    }
    if (kill_at >= 0 && now_ms() >= kill_at) {
      signal_tree(SIGKILL, 0);
      kill_at = now_ms() + 1000000;
    }
    // Wait for a child or a signal; a short timeout keeps the grace clock honest.
    struct timespec ts = {0, kill_at >= 0 ? 20000000L : 200000000L};
    sigset_t wanted;
    sigemptyset(&wanted);
    sigaddset(&wanted, SIGCHLD);
    sigaddset(&wanted, SIGTERM);
    sigaddset(&wanted, SIGINT);
    sigaddset(&wanted, SIGHUP);
    int sig = sigtimedwait(&wanted, NULL, &ts);
    if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) term_requested = 1;
  }

  // The command is over: nothing it started may outlive it. Wait on SIGCHLD, not a fixed sleep:
  // a pid namespace's init is reparented here and dies a moment after bwrap.
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  for (int round = 0; round < 5000; round++) {
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    if (signal_tree(SIGKILL, 0) == 0) break;
    struct timespec ts = {0, 2000000L};
    sigtimedwait(&chld, NULL, &ts);
  }
  while (waitpid(-1, NULL, WNOHANG) > 0) {
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
