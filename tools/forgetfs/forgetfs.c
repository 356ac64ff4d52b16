// forgetfs: a FUSE passthrough filesystem that forgets what was not synced.
//
//   forgetfs STORE MOUNTPOINT [fuse options]
//
// Files live in STORE/data; STORE/keep holds hard links to every inode the filesystem may have to
// restore. Writing a command to MOUNTPOINT/.forgetfs (not listed by readdir) drives the faults:
//
//   powerloss          every write, truncation and directory change (create, mkdir, rename,
//                      unlink, rmdir, link) not made durable by fsync/fdatasync of the file, or of
//                      the directory for its entries, is undone in STORE/data
//   powerloss-torn     the same, but the last unsynced write survives half-written
//   delay-fsync-ms N [GLOB]  every fsync/fsyncdir (of names matching GLOB, default all) sleeps
//                      N ms first (a slow disk); 0 turns it off
//   fail eio|enospc    every write, create, truncate and fsync fails with that errno
//   fail none          writes succeed again
//
// Reading the control file returns counters. After a power loss the caller unmounts and mounts
// again, so that no kernel cache can serve what was discarded (the attribute and entry caches
// are off and files are opened without keep_cache, so reopened files do not see it anyway).
//
// How forgetting works: undo, not redo. Writes go straight to STORE/data. The first change to a
// file since its last sync records its durable size; each later write or truncation inside the
// durable size saves the bytes it overwrites. The first change to a directory since its last
// sync saves its entry list (name, inode). A power loss replays the saved bytes backwards,
// truncates each file to its durable size, then resets every changed directory (shallowest
// first) to its saved list, bringing back unlinked or renamed-away files from STORE/keep.
// Limits (named below) bound the tracked files, directories and saved bytes; past one, the
// operation fails with EIO rather than forget silently.
#define FUSE_USE_VERSION 31
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <fuse.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define TRACKED_FILES_MAX 4096
#define TRACKED_DIRS_MAX 1024
#define DIR_ENTRIES_MAX 65536
#define UNDO_BYTES_MAX (256L * 1024 * 1024)
#define TORN_BYTES_MAX (1024 * 1024)
#define DELAY_FSYNC_MS_MAX 60000
#define CTL_NAME "/.forgetfs"
#define STORE_PATH_MAX 1024

struct undo { off_t off; size_t len; char *bytes; struct undo *prev; };
struct file { ino_t ino; off_t durable_size; struct undo *last; };
struct entry { char *name; ino_t ino; int is_dir; };
struct dir { char *path; struct entry *entries; size_t count; };
struct torn { ino_t ino; off_t off; size_t len; char *bytes; };

static struct {
  char data[PATH_MAX], keep[PATH_MAX];
  pthread_mutex_t lock;
  struct file files[TRACKED_FILES_MAX]; size_t nfiles;
  struct dir dirs[TRACKED_DIRS_MAX]; size_t ndirs;
  long undo_bytes, fsyncs, powerlosses;
  struct torn torn;
  int delay_fsync_ms, fail_errno;
  char delay_glob[64];
} g = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void real(char *out, const char *path) { snprintf(out, PATH_MAX, "%s%s", g.data, path); }
static void keep_path(char *out, ino_t ino) { snprintf(out, PATH_MAX, "%s/%lu", g.keep, (unsigned long)ino); }
static int is_ctl(const char *path) { return strcmp(path, CTL_NAME) == 0; }

/** A hard link STORE/keep/INO to the inode at real path `rp`, so it can be restored later. */
static int keep_link(const char *rp, ino_t ino) {
  char kp[PATH_MAX];
  keep_path(kp, ino);
  if (link(rp, kp) == 0 || errno == EEXIST) return 0;
  return -errno;
}

static struct file *find_file(ino_t ino) {
  for (size_t i = 0; i < g.nfiles; i++) if (g.files[i].ino == ino) return &g.files[i];
  return NULL;
}

/** The tracked state of the file at `rp` (inode `st`), starting to track it at its current size. */
static struct file *track_file(const char *rp, const struct stat *st, off_t durable_size) {
  struct file *f = find_file(st->st_ino);
  if (f) return f;
  if (g.nfiles == TRACKED_FILES_MAX || keep_link(rp, st->st_ino) != 0) return NULL;
  f = &g.files[g.nfiles++];
  *f = (struct file){ .ino = st->st_ino, .durable_size = durable_size, .last = NULL };
  return f;
}

/** Saves the bytes [off, off+len) of `fd` that lie inside the durable size, before they change. */
static int save_undo(struct file *f, int fd, off_t off, size_t len) {
  if (off >= f->durable_size || len == 0) return 0;
  if ((off_t)len > f->durable_size - off) len = (size_t)(f->durable_size - off);
  if (g.undo_bytes + (long)len > UNDO_BYTES_MAX) return -EIO;
  struct undo *u = malloc(sizeof *u);
  char *bytes = malloc(len);
  if (!u || !bytes) { free(u); free(bytes); return -ENOMEM; }
  ssize_t n = pread(fd, bytes, len, off);
  if (n < 0) { free(u); free(bytes); return -errno; }
  *u = (struct undo){ .off = off, .len = (size_t)n, .bytes = bytes, .prev = f->last };
  f->last = u;
  g.undo_bytes += n;
  return 0;
}

static void drop_undo(struct file *f) {
  for (struct undo *u = f->last, *p; u; u = p) { p = u->prev; g.undo_bytes -= (long)u->len; free(u->bytes); free(u); }
  f->last = NULL;
}

static void forget_file(ino_t ino) {
  struct file *f = find_file(ino);
  if (!f) return;
  drop_undo(f);
  *f = g.files[--g.nfiles];
}

/** Records the last write for powerloss-torn (only the first TORN_BYTES_MAX bytes). */
static void note_torn(ino_t ino, const char *buf, size_t len, off_t off) {
  if (len > TORN_BYTES_MAX) len = TORN_BYTES_MAX;
  char *copy = malloc(len ? len : 1);
  if (!copy) return;
  memcpy(copy, buf, len);
  free(g.torn.bytes);
  g.torn = (struct torn){ .ino = ino, .off = off, .len = len, .bytes = copy };
}

static struct dir *find_dir(const char *path) {
  for (size_t i = 0; i < g.ndirs; i++) if (strcmp(g.dirs[i].path, path) == 0) return &g.dirs[i];
  return NULL;
}

static void free_dir(struct dir *d) {
  for (size_t i = 0; i < d->count; i++) free(d->entries[i].name);
  free(d->entries); free(d->path);
}

/** Saves the entry list of directory `path` before its first change since its last sync. */
static int save_dir(const char *path) {
  if (find_dir(path)) return 0;
  if (g.ndirs == TRACKED_DIRS_MAX) return -EIO;
  char rp[PATH_MAX], ep[PATH_MAX];
  real(rp, path);
  DIR *dp = opendir(rp);
  if (!dp) return -errno;
  struct dir d = { .path = strdup(path), .entries = calloc(DIR_ENTRIES_MAX, sizeof(struct entry)) };
  int err = d.path && d.entries ? 0 : -ENOMEM;
  for (struct dirent *de; !err && (de = readdir(dp));) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    struct stat st;
    snprintf(ep, sizeof ep, "%s/%s", rp, de->d_name);
    if (lstat(ep, &st) != 0) { err = -errno; break; }
    if (d.count == DIR_ENTRIES_MAX) { err = -EIO; break; }
    if (!S_ISDIR(st.st_mode) && (err = keep_link(ep, st.st_ino)) != 0) break;
    d.entries[d.count++] = (struct entry){ .name = strdup(de->d_name), .ino = st.st_ino, .is_dir = S_ISDIR(st.st_mode) };
  }
  closedir(dp);
  if (err) { free_dir(&d); return err; }
  g.dirs[g.ndirs++] = d;
  return 0;
}

/** The parent directory of `path` ("/" for a top-level name) in `out`. */
static void parent_of(char *out, const char *path) {
  snprintf(out, PATH_MAX, "%s", path);
  char *slash = strrchr(out, '/');
  if (slash == out) out[1] = 0; else *slash = 0;
}

static int save_parent(const char *path) {
  char p[PATH_MAX];
  parent_of(p, path);
  return save_dir(p);
}

// ---- power loss ------------------------------------------------------------------------------

static void restore_file(struct file *f) {
  char kp[PATH_MAX];
  keep_path(kp, f->ino);
  int fd = open(kp, O_WRONLY);
  if (fd < 0) return;
  for (struct undo *u = f->last; u; u = u->prev) if (pwrite(fd, u->bytes, u->len, u->off) < 0) break;
  if (ftruncate(fd, f->durable_size) != 0) perror("forgetfs: ftruncate");
  if (g.torn.bytes && g.torn.ino == f->ino && pwrite(fd, g.torn.bytes, g.torn.len / 2, g.torn.off) < 0) perror("forgetfs: torn");
  close(fd);
}

static void remove_tree(const char *rp) {
  struct stat st;
  if (lstat(rp, &st) != 0) return;
  if (!S_ISDIR(st.st_mode)) { unlink(rp); return; }
  DIR *dp = opendir(rp);
  char ep[PATH_MAX];
  for (struct dirent *de; dp && (de = readdir(dp));) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    snprintf(ep, sizeof ep, "%s/%s", rp, de->d_name);
    remove_tree(ep);
  }
  if (dp) closedir(dp);
  rmdir(rp);
}

static const struct entry *saved_entry(const struct dir *d, const char *name) {
  for (size_t i = 0; i < d->count; i++) if (!strcmp(d->entries[i].name, name)) return &d->entries[i];
  return NULL;
}

/**
 * Resets directory `d` to its saved entry list. A directory that is gone was removed by the
 * reset of a shallower one (its own entry was not durable): nothing of it survives.
 */
static void restore_dir(const struct dir *d) {
  char rp[PATH_MAX], ep[PATH_MAX], kp[PATH_MAX];
  real(rp, d->path);
  DIR *dp = opendir(rp);
  if (!dp) return;
  for (struct dirent *de; dp && (de = readdir(dp));) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    snprintf(ep, sizeof ep, "%s/%s", rp, de->d_name);
    struct stat st;
    const struct entry *e = saved_entry(d, de->d_name);
    if (lstat(ep, &st) == 0 && e && e->is_dir == !!S_ISDIR(st.st_mode) && (e->is_dir || e->ino == st.st_ino)) continue;
    remove_tree(ep);
  }
  closedir(dp);
  for (size_t i = 0; i < d->count; i++) {
    const struct entry *e = &d->entries[i];
    snprintf(ep, sizeof ep, "%s/%s", rp, e->name);
    if (e->is_dir) { mkdir(ep, 0755); continue; }
    keep_path(kp, e->ino);
    if (access(ep, F_OK) != 0 && link(kp, ep) != 0) perror("forgetfs: restore link");
  }
}

static int by_depth(const void *a, const void *b) {
  const char *x = ((const struct dir *)a)->path, *y = ((const struct dir *)b)->path;
  int dx = 0, dy = 0;  // "/" is depth 0, "/a" 1, "/a/b" 2
  for (; x[1]; x++) dx += *x == '/';
  for (; y[1]; y++) dy += *y == '/';
  return dx - dy;
}

static void clear_keep(void) {
  char ep[PATH_MAX];
  DIR *dp = opendir(g.keep);
  for (struct dirent *de; dp && (de = readdir(dp));) {
    if (de->d_name[0] == '.') continue;
    snprintf(ep, sizeof ep, "%s/%s", g.keep, de->d_name);
    unlink(ep);
  }
  if (dp) closedir(dp);
}

static void power_loss(int torn) {
  if (!torn) { free(g.torn.bytes); g.torn.bytes = NULL; }
  for (size_t i = 0; i < g.nfiles; i++) restore_file(&g.files[i]);
  qsort(g.dirs, g.ndirs, sizeof g.dirs[0], by_depth);
  for (size_t i = 0; i < g.ndirs; i++) restore_dir(&g.dirs[i]);
  while (g.nfiles) forget_file(g.files[0].ino);
  for (size_t i = 0; i < g.ndirs; i++) free_dir(&g.dirs[i]);
  g.ndirs = 0;
  free(g.torn.bytes); g.torn.bytes = NULL;
  clear_keep();
  g.powerlosses++;
}

static int control(const char *buf, size_t len) {
  char cmd[64] = {0};
  memcpy(cmd, buf, len < sizeof cmd - 1 ? len : sizeof cmd - 1);
  cmd[strcspn(cmd, "\r\n")] = 0;
  int n;
  if (!strcmp(cmd, "powerloss")) power_loss(0);
  else if (!strcmp(cmd, "powerloss-torn")) power_loss(1);
  else if (!strcmp(cmd, "fail eio")) g.fail_errno = EIO;
  else if (!strcmp(cmd, "fail enospc")) g.fail_errno = ENOSPC;
  else if (!strcmp(cmd, "fail none")) g.fail_errno = 0;
  else if (sscanf(cmd, "delay-fsync-ms %d", &n) == 1 && n >= 0 && n <= DELAY_FSYNC_MS_MAX) {
    g.delay_fsync_ms = n;
    if (sscanf(cmd, "delay-fsync-ms %*d %63s", g.delay_glob) != 1) strcpy(g.delay_glob, "*");
  }
  else return -EINVAL;
  fprintf(stderr, "forgetfs: %s\n", cmd);
  return 0;
}

// ---- FUSE operations -------------------------------------------------------------------------

#define LOCKED(expr) ({ pthread_mutex_lock(&g.lock); int r_ = (expr); pthread_mutex_unlock(&g.lock); r_; })

static void *ff_init(struct fuse_conn_info *conn, struct fuse_config *cfg) {
  (void)conn;
  cfg->use_ino = 1;
  cfg->attr_timeout = 0; cfg->entry_timeout = 0; cfg->negative_timeout = 0;
  cfg->kernel_cache = 0; cfg->hard_remove = 1;
  return NULL;
}

static int ff_getattr(const char *path, struct stat *st, struct fuse_file_info *fi) {
  if (is_ctl(path)) { memset(st, 0, sizeof *st); st->st_mode = S_IFREG | 0600; st->st_nlink = 1; return 0; }
  if (fi && fi->fh != (uint64_t)-1) return fstat((int)fi->fh, st) == 0 ? 0 : -errno;
  char rp[PATH_MAX]; real(rp, path);
  return lstat(rp, st) == 0 ? 0 : -errno;
}

static int ff_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off, struct fuse_file_info *fi, enum fuse_readdir_flags fl) {
  (void)off; (void)fi; (void)fl;
  char rp[PATH_MAX]; real(rp, path);
  DIR *dp = opendir(rp);
  if (!dp) return -errno;
  for (struct dirent *de; (de = readdir(dp));) fill(buf, de->d_name, NULL, 0, 0);
  closedir(dp);
  return 0;
}

static int do_truncate(const char *path, off_t size, struct fuse_file_info *fi);

/**
 * The flags to open a backing file with: read-write when writing (saving the bytes a write
 * overwrites needs to read them), no O_APPEND (the kernel already gives appends their offset),
 * no O_TRUNC (done through do_truncate, which saves what it cuts).
 */
static int backing_flags(int flags) {
  if ((flags & O_ACCMODE) == O_WRONLY) flags = (flags & ~O_ACCMODE) | O_RDWR;
  return flags & ~(O_TRUNC | O_APPEND);
}

static int ff_open(const char *path, struct fuse_file_info *fi) {
  if (is_ctl(path)) { fi->fh = (uint64_t)-1; fi->direct_io = 1; return 0; }
  char rp[PATH_MAX]; real(rp, path);
  int fd = open(rp, backing_flags(fi->flags));
  if (fd < 0) return -errno;
  fi->fh = (uint64_t)fd;
  int err = fi->flags & O_TRUNC ? LOCKED(do_truncate(path, 0, fi)) : 0;
  if (err) { close(fd); return err; }
  return 0;
}

static int do_create(const char *path, mode_t mode, struct fuse_file_info *fi) {
  if (g.fail_errno) return -g.fail_errno;
  char rp[PATH_MAX]; real(rp, path);
  int err = save_parent(path);
  if (err) return err;
  int fd = open(rp, backing_flags(fi->flags) | O_CREAT, mode);
  if (fd < 0) return -errno;
  struct stat st;
  fstat(fd, &st);
  if (!track_file(rp, &st, 0)) { close(fd); return -EIO; }
  fi->fh = (uint64_t)fd;
  return 0;
}
static int ff_create(const char *path, mode_t mode, struct fuse_file_info *fi) { return LOCKED(do_create(path, mode, fi)); }

static int ff_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
  if (is_ctl(path)) {
    char s[256];
    int n = LOCKED(snprintf(s, sizeof s, "files %zu dirs %zu undo_bytes %ld fsyncs %ld powerlosses %ld delay_fsync_ms %d fail_errno %d\n",
                            g.nfiles, g.ndirs, g.undo_bytes, g.fsyncs, g.powerlosses, g.delay_fsync_ms, g.fail_errno));
    if (off >= n) return 0;
    size_t len = (size_t)(n - off) < size ? (size_t)(n - off) : size;
    memcpy(buf, s + off, len);
    return (int)len;
  }
  ssize_t n = pread((int)fi->fh, buf, size, off);
  return n < 0 ? -errno : (int)n;
}

static int do_write(const char *path, const char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
  if (is_ctl(path)) { int err = control(buf, size); return err ? err : (int)size; }
  if (g.fail_errno) return -g.fail_errno;
  int fd = (int)fi->fh;
  struct stat st;
  if (fstat(fd, &st) != 0) return -errno;
  char rp[PATH_MAX]; real(rp, path);
  struct file *f = track_file(rp, &st, st.st_size);
  if (!f) return -EIO;
  int err = save_undo(f, fd, off, size);
  if (err) return err;
  ssize_t n = pwrite(fd, buf, size, off);
  if (n < 0) return -errno;
  note_torn(st.st_ino, buf, (size_t)n, off);
  return (int)n;
}
static int ff_write(const char *path, const char *buf, size_t size, off_t off, struct fuse_file_info *fi) { return LOCKED(do_write(path, buf, size, off, fi)); }

static int do_truncate(const char *path, off_t size, struct fuse_file_info *fi) {
  if (is_ctl(path)) return 0;
  if (g.fail_errno) return -g.fail_errno;
  char rp[PATH_MAX]; real(rp, path);
  int fd = fi && fi->fh != (uint64_t)-1 ? (int)fi->fh : open(rp, O_RDWR);
  if (fd < 0) return -errno;
  struct stat st;
  int err = fstat(fd, &st) == 0 ? 0 : -errno;
  struct file *f = err ? NULL : track_file(rp, &st, st.st_size);
  if (!err && !f) err = -EIO;
  if (!err && size < st.st_size) err = save_undo(f, fd, size, (size_t)(st.st_size - size));
  if (!err && ftruncate(fd, size) != 0) err = -errno;
  if (!(fi && fi->fh != (uint64_t)-1)) close(fd);
  return err;
}
static int ff_truncate(const char *path, off_t size, struct fuse_file_info *fi) { return LOCKED(do_truncate(path, size, fi)); }

/** Sleeps before the fsync of `path` when a delay is set for names like its own. */
static void delay_fsync(const char *path) {
  const char *base = strrchr(path, '/');
  int ms = LOCKED(fnmatch(g.delay_glob, base ? base + 1 : path, 0) == 0 ? g.delay_fsync_ms : 0);
  if (ms > 0) usleep((useconds_t)ms * 1000);
}

static int do_fsync(struct fuse_file_info *fi) {
  if (g.fail_errno) return -g.fail_errno;
  struct stat st;
  if (fi->fh == (uint64_t)-1) return 0;
  if (fstat((int)fi->fh, &st) != 0) return -errno;
  forget_file(st.st_ino);
  g.fsyncs++;
  return 0;
}
static int ff_fsync(const char *path, int datasync, struct fuse_file_info *fi) {
  (void)datasync;
  delay_fsync(path);
  return LOCKED(do_fsync(fi));
}

/** True when a tracked file or a saved directory entry may still need the inode's keep link. */
static int keep_needed(ino_t ino) {
  if (find_file(ino)) return 1;
  for (size_t i = 0; i < g.ndirs; i++)
    for (size_t j = 0; j < g.dirs[i].count; j++)
      if (!g.dirs[i].entries[j].is_dir && g.dirs[i].entries[j].ino == ino) return 1;
  return 0;
}

/**
 * Removes the keep links nothing needs any more, so that the space of files deleted and synced
 * away is freed (a keep link holds the inode). Run when a directory is synced.
 */
static void gc_keep(void) {
  char ep[PATH_MAX];
  DIR *dp = opendir(g.keep);
  for (struct dirent *de; dp && (de = readdir(dp));) {
    if (de->d_name[0] == '.') continue;
    if (keep_needed((ino_t)strtoul(de->d_name, NULL, 10))) continue;
    snprintf(ep, sizeof ep, "%s/%s", g.keep, de->d_name);
    unlink(ep);
  }
  if (dp) closedir(dp);
}

static int do_fsyncdir(const char *path) {
  if (g.fail_errno) return -g.fail_errno;
  for (size_t i = 0; i < g.ndirs; i++) {
    if (strcmp(g.dirs[i].path, path) != 0) continue;
    free_dir(&g.dirs[i]);
    g.dirs[i] = g.dirs[--g.ndirs];
    break;
  }
  gc_keep();
  g.fsyncs++;
  return 0;
}
static int ff_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi) {
  (void)datasync; (void)fi;
  delay_fsync(path);
  return LOCKED(do_fsyncdir(path));
}

static int ff_release(const char *path, struct fuse_file_info *fi) {
  (void)path;
  if (fi->fh != (uint64_t)-1) close((int)fi->fh);
  return 0;
}

static int do_mkdir(const char *path, mode_t mode) {
  if (g.fail_errno) return -g.fail_errno;
  char rp[PATH_MAX]; real(rp, path);
  int err = save_parent(path);
  return err ? err : mkdir(rp, mode) == 0 ? 0 : -errno;
}
static int ff_mkdir(const char *path, mode_t mode) { return LOCKED(do_mkdir(path, mode)); }

static int do_unlink(const char *path, int dir) {
  if (is_ctl(path)) return -EPERM;
  char rp[PATH_MAX]; real(rp, path);
  int err = save_parent(path);
  if (err) return err;
  return (dir ? rmdir(rp) : unlink(rp)) == 0 ? 0 : -errno;
}
static int ff_unlink(const char *path) { return LOCKED(do_unlink(path, 0)); }
static int ff_rmdir(const char *path) { return LOCKED(do_unlink(path, 1)); }

static int do_rename(const char *from, const char *to, unsigned int flags) {
  if (flags) return -EINVAL;
  if (is_ctl(from) || is_ctl(to)) return -EPERM;
  char rf[PATH_MAX], rt[PATH_MAX]; real(rf, from); real(rt, to);
  struct stat st;
  if (lstat(rf, &st) != 0) return -errno;
  // A renamed directory keeps its saved entry list under its old path: refused rather than
  // restored wrongly (nothing in quorumkv renames a directory).
  if (S_ISDIR(st.st_mode)) return -EXDEV;
  int err = save_parent(from);
  if (!err) err = save_parent(to);
  return err ? err : rename(rf, rt) == 0 ? 0 : -errno;
}
static int ff_rename(const char *from, const char *to, unsigned int flags) { return LOCKED(do_rename(from, to, flags)); }

static int do_link(const char *from, const char *to) {
  char rf[PATH_MAX], rt[PATH_MAX]; real(rf, from); real(rt, to);
  int err = save_parent(to);
  return err ? err : link(rf, rt) == 0 ? 0 : -errno;
}
static int ff_link(const char *from, const char *to) { return LOCKED(do_link(from, to)); }

static int ff_chmod(const char *path, mode_t mode, struct fuse_file_info *fi) {
  (void)fi;
  char rp[PATH_MAX]; real(rp, path);
  return is_ctl(path) ? 0 : chmod(rp, mode) == 0 ? 0 : -errno;
}

static int ff_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi) {
  (void)fi;
  char rp[PATH_MAX]; real(rp, path);
  return is_ctl(path) ? 0 : utimensat(AT_FDCWD, rp, tv, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
}

static int ff_statfs(const char *path, struct statvfs *sv) {
  (void)path;
  return statvfs(g.data, sv) == 0 ? 0 : -errno;
}

static int ff_opendir(const char *path, struct fuse_file_info *fi) { (void)path; fi->fh = (uint64_t)-1; return 0; }

static const struct fuse_operations ops = {
  .init = ff_init, .getattr = ff_getattr, .readdir = ff_readdir, .opendir = ff_opendir,
  .open = ff_open, .create = ff_create, .read = ff_read, .write = ff_write,
  .truncate = ff_truncate, .fsync = ff_fsync, .fsyncdir = ff_fsyncdir, .release = ff_release,
  .mkdir = ff_mkdir, .unlink = ff_unlink, .rmdir = ff_rmdir, .rename = ff_rename, .link = ff_link,
  .chmod = ff_chmod, .utimens = ff_utimens, .statfs = ff_statfs,
};

int main(int argc, char *argv[]) {
  if (argc < 3) { fprintf(stderr, "usage: forgetfs STORE MOUNTPOINT [fuse options]\n"); return 2; }
  char store[PATH_MAX];
  if (!realpath(argv[1], store)) { perror(argv[1]); return 2; }
  // Paths inside STORE are built in PATH_MAX buffers: a short STORE leaves room for them.
  if (strlen(store) > STORE_PATH_MAX) { fprintf(stderr, "forgetfs: STORE path longer than %d bytes\n", STORE_PATH_MAX); return 2; }
  snprintf(g.data, sizeof g.data, "%s/data", store);
  snprintf(g.keep, sizeof g.keep, "%s/keep", store);
  mkdir(g.data, 0755); mkdir(g.keep, 0755);
  strcpy(g.delay_glob, "*");
  clear_keep();
  // fuse_main sees: argv0 MOUNTPOINT [options…]
  argv[1] = argv[0];
  return fuse_main(argc - 1, argv + 1, &ops, NULL);
}
