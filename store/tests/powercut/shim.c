/*
 * libpowercut: an LD_PRELOAD shim that journals, before every filesystem change a process makes
 * under $POWERCUT_ROOT, how to undo it, so a crash test can SIGKILL the process and roll the
 * directory back to what a power cut would have left (`rollback` in mod.rs). It is inert unless
 * both POWERCUT_ROOT and POWERCUT_JOURNAL are set to absolute, symlink-free paths; the root must
 * not be "/", and the journal must live outside the root but on the same filesystem (unlink
 * backups are hard links). Paths are tracked lexically: symlinks are not resolved.
 *
 *   cc -shared -fPIC -O2 -Wall -o libpowercut.so shim.c -ldl -lpthread   (glibc >= 2.28, x86_64)
 *
 * Journal format: records appended back to back, integers little-endian;
 * str = u32 byte length + bytes (an absolute, lexically normalised path, no NUL).
 *
 *   u64 len    bytes that follow in this record (kind + fields)
 *   u8  kind   one of:
 *   'W' DATA     u64 dev, u64 ino, str path, u64 old_size, u64 off, u64 n, old bytes (the rest)
 *                before a write, truncation or fallocate changes [off, off+n) of a regular
 *                file: its size and the old content of [off, min(off+n, old_size)).
 *   'C' CREATE   str path                   before open(O_CREAT) creates path
 *   'U' UNLINK   str path, str backup       before unlink; backup is a hard link to the file
 *   'R' RENAME   str from, str to, str backup   before rename; backup is a hard link to the
 *                                           file that `to` replaces, or "" if none
 *   'M' MKDIR    str path                   before mkdir
 *   'D' RMDIR    str path                   before rmdir (of an empty directory)
 *   'S' SYNC     u64 dev, u64 ino, str path after fsync/fdatasync of a regular file succeeded,
 *                                           or after a write to an O_DSYNC/O_SYNC file
 *   'Y' DIRSYNC  str path                   after fsync/fdatasync of a directory succeeded
 *   'A' SYNCALL                             after sync(), or syncfs() on the root's filesystem
 *
 * Each record is one write(2) to an O_APPEND file, so a SIGKILL leaves at most a torn last
 * record (shorter than its len), which readers ignore. Undo records precede the operation and
 * so may describe one that never ran; undoing such a record must be harmless.
 *
 * Not covered: stdio and remove() (glibc calls its internals), mmap writes, copy_file_range/
 * sendfile/splice, truncate(2) by path, link/symlink, io_uring, fds >= MAX_FDS, writes from a
 * signal handler that interrupts a journaled call on the same thread (deadlock), an empty
 * directory replaced by a rename (not recreated on undo), and renames across the root's
 * boundary or with RENAME_EXCHANGE (passed through with a warning).
 */
#define _GNU_SOURCE
#undef _FORTIFY_SOURCE /* its inline open() wrappers would clash with ours */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FDS 65536
#define TO_EOF UINT64_MAX /* a DATA range that runs to the end of the file */
#define AT_CURSOR (-1)    /* a write at the file position (also pwritev2's -1) */

/* The functions we forward to. On x86_64 the *64 variants and the non-at forms are the same
 * system calls, so every open flavour forwards to openat, every pwrite to pwrite64, etc. */
#define FORWARDED(X)                                                                            \
    X(openat) X(close) X(write) X(pwrite64) X(writev) X(pwritev64) X(pwritev2) X(ftruncate64)  \
    X(fallocate64) X(posix_fallocate64) X(renameat) X(renameat2) X(unlinkat) X(mkdirat)        \
    X(fsync) X(fdatasync) X(sync) X(syncfs) X(dup) X(dup2) X(dup3) X(fcntl)
#define DECLARE_REAL(name) static __typeof__(name) *real_##name;
FORWARDED(DECLARE_REAL)

/* One lock, held across journaling and the operation, orders the journal like the operations. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static char root[PATH_MAX];
static size_t root_len; /* 0: shim inactive */
static char journal_path[PATH_MAX];
static int journal_fd = -1;
static unsigned long backup_seq;

/* Paths of open fds at or under the root (guarded by mu). fd_on lets untracked fds, such as a
 * signal handler's wake-up pipe, skip the lock. */
static char *fd_path[MAX_FDS];
static atomic_bool fd_on[MAX_FDS];
static int fd_high; /* 1 + highest fd ever tracked */

static void lock(void) { pthread_mutex_lock(&mu); }
static void unlock(void) { pthread_mutex_unlock(&mu); }

/* Helpers run around the real call, so they must leave errno as they found it. */
static void restore_errno(int *saved) { errno = *saved; }
#define KEEP_ERRNO int saved_errno __attribute__((cleanup(restore_errno))) = errno

static void say(const char *what, const char *detail, int err) {
    char msg[PATH_MAX + 256];
    int n = snprintf(msg, sizeof msg, "powercut: %s %s%s%s\n", what, detail, err ? ": " : "",
                     err ? strerror(err) : "");
    if (n > 0) syscall(SYS_write, 2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
}

/* A change we cannot journal would make the simulation silently wrong: stop loudly instead. */
static void die(const char *what, const char *detail) {
    say(what, detail, errno);
    abort();
}

/* Lexically normalises an absolute path: no ".", "..", repeated or trailing "/". */
static int normalize(const char *in, char out[PATH_MAX]) {
    size_t len = 0;
    for (const char *p = in; *p;) {
        while (*p == '/') p++;
        const char *start = p;
        while (*p && *p != '/') p++;
        size_t n = (size_t)(p - start);
        if (n == 0 || (n == 1 && start[0] == '.')) continue;
        if (n == 2 && start[0] == '.' && start[1] == '.') {
            while (len > 0 && out[--len] != '/') {
            }
            continue;
        }
        if (len + 1 + n >= PATH_MAX) return 0;
        out[len++] = '/';
        memcpy(out + len, start, n);
        len += n;
    }
    if (len == 0) out[len++] = '/';
    out[len] = 0;
    return 1;
}

/* Absolute form of path as seen from dirfd; 0 if it cannot be formed (then: not tracked). */
static int resolve(int dirfd, const char *path, char out[PATH_MAX]) {
    KEEP_ERRNO;
    char base[PATH_MAX] = "", joined[2 * PATH_MAX + 2];
    if (!path || !root_len) return 0;
    if (path[0] != '/') {
        if (dirfd == AT_FDCWD) {
            if (!getcwd(base, sizeof base)) return 0;
        } else {
            char link[64];
            snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
            ssize_t n = readlink(link, base, sizeof base - 1);
            if (n < 0) return 0;
            base[n] = 0;
        }
    }
    if (snprintf(joined, sizeof joined, "%s/%s", base, path) >= (int)sizeof joined) return 0;
    return normalize(joined, out);
}

/* Whether path is strictly inside the root, or (strict == 0) the root itself or inside it. */
static int inside_root(const char *path, int strict) {
    if (!root_len || strncmp(path, root, root_len)) return 0;
    return path[root_len] == '/' || (!strict && path[root_len] == 0);
}

static int exists(const char *path) {
    KEEP_ERRNO;
    struct stat st;
    return lstat(path, &st) == 0;
}

static int fd_tracked(int fd) {
    return fd >= 0 && fd < MAX_FDS && atomic_load_explicit(&fd_on[fd], memory_order_relaxed);
}

/* Starts (path != NULL) or stops tracking fd; mu held. */
static void track_fd(int fd, const char *path) {
    KEEP_ERRNO;
    if (fd < 0 || fd >= MAX_FDS) {
        if (path) say("fd out of range, not journaled:", path, 0);
        return;
    }
    char *copy = path ? strdup(path) : NULL;
    if (path && !copy) die("out of memory tracking", path);
    free(fd_path[fd]);
    fd_path[fd] = copy;
    atomic_store(&fd_on[fd], copy != NULL);
    if (copy && fd >= fd_high) fd_high = fd + 1;
}

static void copy_fd(int from, int to) {
    if (from != to) track_fd(to, fd_tracked(from) ? fd_path[from] : NULL);
}

/* After a rename, fds opened under the old name must journal the new one. */
static void retarget_fds(const char *from, const char *to) {
    size_t n = strlen(from);
    for (int fd = 0; fd < fd_high; fd++) {
        const char *p = fd_path[fd];
        char moved[PATH_MAX];
        if (!p || strncmp(p, from, n) || (p[n] && p[n] != '/')) continue;
        if (snprintf(moved, sizeof moved, "%s%s", to, p + n) < (int)sizeof moved)
            track_fd(fd, moved);
    }
}

static int fd_flags(int fd) { return (int)syscall(SYS_fcntl, fd, F_GETFL); }

/* ---- journal records ---- */

struct rec {
    unsigned char *buf;
    size_t len, cap;
};

static unsigned char *grow(struct rec *r, size_t n) {
    if (r->len + n > r->cap) {
        r->cap = 2 * (r->len + n) + 256;
        r->buf = realloc(r->buf, r->cap);
        if (!r->buf) die("out of memory for a journal record", "");
    }
    r->len += n;
    return r->buf + r->len - n;
}

static void put(struct rec *r, const void *p, size_t n) { memcpy(grow(r, n), p, n); }
static void put_u64(struct rec *r, uint64_t v) { put(r, &v, 8); } /* x86_64: little-endian */
static void put_str(struct rec *r, const char *s) {
    uint32_t n = (uint32_t)strlen(s);
    put(r, &n, 4);
    put(r, s, n);
}

static void rec_begin(struct rec *r, char kind) {
    *r = (struct rec){0};
    put_u64(r, 0); /* the length, filled in by rec_commit */
    put(r, &kind, 1);
}

/* Appends the record with the raw system call, so the shim never journals itself. */
static void rec_commit(struct rec *r) {
    uint64_t n = r->len - 8;
    memcpy(r->buf, &n, 8);
    for (size_t done = 0; done < r->len;) {
        long w = syscall(SYS_write, journal_fd, r->buf + done, r->len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) die("cannot append to", journal_path);
        done += (size_t)w;
    }
    free(r->buf);
}

/* Records kind with up to three path fields (NULL ends the list). */
static void record_paths(char kind, const char *a, const char *b, const char *c) {
    KEEP_ERRNO;
    struct rec r;
    rec_begin(&r, kind);
    if (a) put_str(&r, a);
    if (a && b) put_str(&r, b);
    if (a && b && c) put_str(&r, c);
    rec_commit(&r);
}

/* Appends the old bytes [off, off+n) of the file open as fd, fewer if the file is shorter. */
static void put_old_bytes(struct rec *r, int fd, const char *path, uint64_t off, uint64_t n) {
    int rfd = fd;
    unsigned char *dst = grow(r, n);
    uint64_t got = 0;
    while (got < n) {
        ssize_t k = pread(rfd, dst + got, n - got, (off_t)(off + got));
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && errno == EBADF && rfd == fd) { /* a write-only fd: read through /proc */
            char proc[64];
            snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
            rfd = (int)syscall(SYS_openat, AT_FDCWD, proc, O_RDONLY | O_CLOEXEC);
            if (rfd >= 0) continue;
        }
        if (k < 0) die("cannot read the old bytes of", path);
        if (k == 0) break;
        got += (uint64_t)k;
    }
    if (rfd != fd && rfd >= 0) syscall(SYS_close, rfd);
    r->len -= n - got;
}

/* DATA record before [off, off+n) of the regular file open as fd (st: its stat) changes. */
static void record_data(int fd, const char *path, const struct stat *st, uint64_t off,
                        uint64_t n, int save_old) {
    KEEP_ERRNO;
    uint64_t size = (uint64_t)st->st_size;
    if (n == TO_EOF) n = size > off ? size - off : 0;
    struct rec r;
    rec_begin(&r, 'W');
    put_u64(&r, st->st_dev);
    put_u64(&r, st->st_ino);
    put_str(&r, path);
    put_u64(&r, size);
    put_u64(&r, off);
    put_u64(&r, n);
    if (save_old && off < size) put_old_bytes(&r, fd, path, off, n < size - off ? n : size - off);
    rec_commit(&r);
}

/* Before a write of n bytes at off (AT_CURSOR: the file position) on a tracked fd. */
static void record_write(int fd, off_t off, size_t n, int append) {
    KEEP_ERRNO;
    struct stat st;
    if (!fd_path[fd] || fstat(fd, &st) || !S_ISREG(st.st_mode)) return;
    if (append || (fd_flags(fd) & O_APPEND)) off = st.st_size; /* Linux: even for pwrite */
    else if (off == AT_CURSOR) off = lseek(fd, 0, SEEK_CUR);
    if (off >= 0) record_data(fd, fd_path[fd], &st, (uint64_t)off, n, 1);
}

static void record_sync(int fd) {
    KEEP_ERRNO;
    struct stat st;
    struct rec r;
    if (!fd_path[fd] || fstat(fd, &st)) return;
    if (S_ISDIR(st.st_mode)) {
        rec_begin(&r, 'Y');
    } else {
        rec_begin(&r, 'S');
        put_u64(&r, st.st_dev);
        put_u64(&r, st.st_ino);
    }
    put_str(&r, fd_path[fd]);
    rec_commit(&r);
}

/* Writes to O_DSYNC files, or with RWF_DSYNC, are durable once they return. */
static void after_write(int fd, ssize_t done, int sync) {
    KEEP_ERRNO;
    if (done > 0 && (sync || (fd_flags(fd) & O_DSYNC))) record_sync(fd);
}

static void record_resize(int fd, off_t length) {
    KEEP_ERRNO;
    struct stat st;
    if (fd_path[fd] && length >= 0 && !fstat(fd, &st) && S_ISREG(st.st_mode))
        record_data(fd, fd_path[fd], &st, (uint64_t)length, TO_EOF, 1);
}

static void record_fallocate(int fd, int mode, off_t off, off_t len) {
    KEEP_ERRNO;
    struct stat st;
    if (!fd_path[fd] || off < 0 || len <= 0 || fstat(fd, &st) || !S_ISREG(st.st_mode)) return;
    if (mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE)) /* these shift the tail */
        record_data(fd, fd_path[fd], &st, (uint64_t)off, TO_EOF, 1);
    else /* plain allocation keeps the content; only the size may change */
        record_data(fd, fd_path[fd], &st, (uint64_t)off, (uint64_t)len,
                    (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) != 0);
}

/* Before open(path, flags): a CREATE for a new file, or the old content O_TRUNC will drop. */
static void record_open(const char *path, int flags) {
    KEEP_ERRNO;
    struct stat st;
    if (stat(path, &st) != 0) {
        if ((flags & O_CREAT) && errno == ENOENT) record_paths('C', path, NULL, NULL);
        return;
    }
    if (!(flags & O_TRUNC) || !S_ISREG(st.st_mode) || st.st_size == 0) return;
    int rfd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    if (rfd < 0) die("cannot read before truncating", path);
    record_data(rfd, path, &st, 0, TO_EOF, 1);
    syscall(SYS_close, rfd);
}

/* Hard-links path to a fresh name beside the journal, so removing or replacing it can be
 * undone; out is "" if path vanished (the operation will then fail or replace nothing). */
static void backup_of(const char *path, char out[PATH_MAX]) {
    for (;;) {
        if (snprintf(out, PATH_MAX, "%s.bak.%d.%lu", journal_path, (int)getpid(), ++backup_seq) >=
            PATH_MAX)
            die("backup name too long for", path);
        if (link(path, out) == 0) return;
        if (errno == ENOENT) break;
        if (errno != EEXIST) die("cannot hard-link a backup of", path);
    }
    out[0] = 0;
}

static void record_unlink(const char *path, int is_dir) {
    KEEP_ERRNO;
    struct stat st;
    char backup[PATH_MAX];
    if (lstat(path, &st)) return; /* the unlink will fail */
    if (is_dir) {
        if (S_ISDIR(st.st_mode)) record_paths('D', path, NULL, NULL);
    } else if (!S_ISDIR(st.st_mode)) {
        backup_of(path, backup);
        if (backup[0]) record_paths('U', path, backup, NULL);
    }
}

static void record_rename(const char *from, const char *to, unsigned flags) {
    KEEP_ERRNO;
    struct stat st;
    char backup[PATH_MAX] = "";
    if (!(flags & RENAME_NOREPLACE) && lstat(to, &st) == 0 && !S_ISDIR(st.st_mode))
        backup_of(to, backup);
    record_paths('R', from, to, backup);
}

static int same_fs_as_root(int fd) {
    KEEP_ERRNO;
    struct stat a, b;
    return !fstat(fd, &a) && !stat(root, &b) && a.st_dev == b.st_dev;
}

static void init(void) {
#define RESOLVE_REAL(name) \
    if (!(real_##name = (__typeof__(real_##name))dlsym(RTLD_NEXT, #name))) die("libc lacks", #name);
    FORWARDED(RESOLVE_REAL)
    const char *r = getenv("POWERCUT_ROOT"), *j = getenv("POWERCUT_JOURNAL");
    if (!r || !j || r[0] != '/' || j[0] != '/' || !normalize(r, root) || !root[1] ||
        !normalize(j, journal_path))
        return;
    journal_fd = (int)syscall(SYS_openat, AT_FDCWD, journal_path,
                              O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (journal_fd < 0) die("cannot open", journal_path);
    pthread_atfork(lock, unlock, unlock); /* a fork must not copy the lock while it is held */
    root_len = strlen(root);
    if (inside_root(journal_path, 0)) die("the journal must be outside the root:", journal_path);
}

static void ensure_init(void) { pthread_once(&once, init); }
__attribute__((constructor)) static void load(void) { ensure_init(); }

/* ---- interposed functions ---- */

static int open_common(int dirfd, const char *path, int flags, mode_t mode) {
    char abs[PATH_MAX];
    ensure_init();
    if ((flags & O_TMPFILE) == O_TMPFILE || !resolve(dirfd, path, abs) || !inside_root(abs, 0))
        return real_openat(dirfd, path, flags, mode);
    lock();
    if (inside_root(abs, 1)) record_open(abs, flags);
    int fd = real_openat(dirfd, path, flags, mode);
    if (fd >= 0) track_fd(fd, abs);
    unlock();
    return fd;
}

/* open's mode argument exists only when the flags may create a file. */
#define OPEN_MODE(flags, last)                                      \
    mode_t mode = 0;                                                \
    if (((flags) & O_CREAT) || ((flags) & O_TMPFILE) == O_TMPFILE) { \
        va_list ap;                                                 \
        va_start(ap, last);                                         \
        mode = va_arg(ap, mode_t);                                  \
        va_end(ap);                                                 \
    }

int open(const char *path, int flags, ...) {
    OPEN_MODE(flags, flags);
    return open_common(AT_FDCWD, path, flags, mode);
}
int open64(const char *path, int flags, ...) {
    OPEN_MODE(flags, flags);
    return open_common(AT_FDCWD, path, flags, mode);
}
int openat(int dirfd, const char *path, int flags, ...) {
    OPEN_MODE(flags, flags);
    return open_common(dirfd, path, flags, mode);
}
int openat64(int dirfd, const char *path, int flags, ...) {
    OPEN_MODE(flags, flags);
    return open_common(dirfd, path, flags, mode);
}
/* _FORTIFY_SOURCE builds call these for opens without a mode. */
int __open_2(const char *path, int flags) { return open_common(AT_FDCWD, path, flags, 0); }
int __open64_2(const char *path, int flags) { return open_common(AT_FDCWD, path, flags, 0); }
int __openat_2(int dirfd, const char *path, int flags) {
    return open_common(dirfd, path, flags, 0);
}
int __openat64_2(int dirfd, const char *path, int flags) {
    return open_common(dirfd, path, flags, 0);
}
int creat(const char *path, mode_t mode) {
    return open_common(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}
int creat64(const char *path, mode_t mode) {
    return open_common(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

int close(int fd) {
    ensure_init();
    if (fd >= 0 && fd == journal_fd) return 0; /* keep journaling if a program closes all fds */
    if (!fd_tracked(fd)) return real_close(fd);
    lock();
    track_fd(fd, NULL);
    int r = real_close(fd);
    unlock();
    return r;
}

/* Shared body of the write family: journal the undo, write, note O_DSYNC durability. */
#define JOURNALED_WRITE(fd, off, n, append, sync, call) \
    ensure_init();                                      \
    if (!fd_tracked(fd)) return call;                   \
    lock();                                             \
    record_write(fd, off, n, append);                   \
    ssize_t r = call;                                   \
    after_write(fd, r, sync);                           \
    unlock();                                           \
    return r

static size_t iov_total(const struct iovec *iov, int count) {
    size_t n = 0;
    for (int i = 0; i < count; i++) n += iov[i].iov_len;
    return n;
}

ssize_t write(int fd, const void *buf, size_t n) {
    JOURNALED_WRITE(fd, AT_CURSOR, n, 0, 0, real_write(fd, buf, n));
}
ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    JOURNALED_WRITE(fd, off, n, 0, 0, real_pwrite64(fd, buf, n, off));
}
ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off) {
    JOURNALED_WRITE(fd, off, n, 0, 0, real_pwrite64(fd, buf, n, off));
}
ssize_t writev(int fd, const struct iovec *iov, int count) {
    JOURNALED_WRITE(fd, AT_CURSOR, iov_total(iov, count), 0, 0, real_writev(fd, iov, count));
}
ssize_t pwritev(int fd, const struct iovec *iov, int count, off_t off) {
    JOURNALED_WRITE(fd, off, iov_total(iov, count), 0, 0, real_pwritev64(fd, iov, count, off));
}
ssize_t pwritev64(int fd, const struct iovec *iov, int count, off64_t off) {
    JOURNALED_WRITE(fd, off, iov_total(iov, count), 0, 0, real_pwritev64(fd, iov, count, off));
}
ssize_t pwritev2(int fd, const struct iovec *iov, int count, off_t off, int flags) {
    JOURNALED_WRITE(fd, off, iov_total(iov, count), flags & RWF_APPEND,
                    flags & (RWF_DSYNC | RWF_SYNC), real_pwritev2(fd, iov, count, off, flags));
}
ssize_t pwritev64v2(int fd, const struct iovec *iov, int count, off64_t off, int flags) {
    JOURNALED_WRITE(fd, off, iov_total(iov, count), flags & RWF_APPEND,
                    flags & (RWF_DSYNC | RWF_SYNC), real_pwritev2(fd, iov, count, off, flags));
}

static int truncate_fd(int fd, off64_t length) {
    ensure_init();
    if (!fd_tracked(fd)) return real_ftruncate64(fd, length);
    lock();
    record_resize(fd, length);
    int r = real_ftruncate64(fd, length);
    unlock();
    return r;
}
int ftruncate(int fd, off_t length) { return truncate_fd(fd, length); }
int ftruncate64(int fd, off64_t length) { return truncate_fd(fd, length); }

static int fallocate_fd(int fd, int mode, off64_t off, off64_t len) {
    ensure_init();
    if (!fd_tracked(fd)) return real_fallocate64(fd, mode, off, len);
    lock();
    record_fallocate(fd, mode, off, len);
    int r = real_fallocate64(fd, mode, off, len);
    unlock();
    return r;
}
int fallocate(int fd, int mode, off_t off, off_t len) { return fallocate_fd(fd, mode, off, len); }
int fallocate64(int fd, int mode, off64_t off, off64_t len) {
    return fallocate_fd(fd, mode, off, len);
}

/* glibc's posix_fallocate calls fallocate internally, so it needs its own entry point. */
static int posix_fallocate_fd(int fd, off64_t off, off64_t len) {
    ensure_init();
    if (!fd_tracked(fd)) return real_posix_fallocate64(fd, off, len);
    lock();
    record_fallocate(fd, 0, off, len);
    int r = real_posix_fallocate64(fd, off, len);
    unlock();
    return r;
}
int posix_fallocate(int fd, off_t off, off_t len) { return posix_fallocate_fd(fd, off, len); }
int posix_fallocate64(int fd, off64_t off, off64_t len) {
    return posix_fallocate_fd(fd, off, len);
}

static int do_rename(int olddir, const char *old, int newdir, const char *new, unsigned flags) {
    return flags ? real_renameat2(olddir, old, newdir, new, flags)
                 : real_renameat(olddir, old, newdir, new);
}

static int rename_common(int olddir, const char *old, int newdir, const char *new,
                         unsigned flags) {
    char from[PATH_MAX], to[PATH_MAX];
    ensure_init();
    int from_in = resolve(olddir, old, from) && inside_root(from, 1);
    int to_in = resolve(newdir, new, to) && inside_root(to, 1);
    if (!from_in && !to_in) return do_rename(olddir, old, newdir, new, flags);
    if (from_in != to_in || (flags & RENAME_EXCHANGE)) {
        say("rename not journaled (crosses the root or exchanges):", from_in ? from : to, 0);
        return do_rename(olddir, old, newdir, new, flags);
    }
    lock();
    record_rename(from, to, flags);
    int r = do_rename(olddir, old, newdir, new, flags);
    if (r == 0) retarget_fds(from, to);
    unlock();
    return r;
}
int rename(const char *old, const char *new) {
    return rename_common(AT_FDCWD, old, AT_FDCWD, new, 0);
}
int renameat(int olddir, const char *old, int newdir, const char *new) {
    return rename_common(olddir, old, newdir, new, 0);
}
int renameat2(int olddir, const char *old, int newdir, const char *new, unsigned flags) {
    return rename_common(olddir, old, newdir, new, flags);
}

static int unlink_common(int dirfd, const char *path, int flags) {
    char abs[PATH_MAX];
    ensure_init();
    if (!resolve(dirfd, path, abs) || !inside_root(abs, 1))
        return real_unlinkat(dirfd, path, flags);
    lock();
    record_unlink(abs, flags & AT_REMOVEDIR);
    int r = real_unlinkat(dirfd, path, flags);
    unlock();
    return r;
}
int unlink(const char *path) { return unlink_common(AT_FDCWD, path, 0); }
int unlinkat(int dirfd, const char *path, int flags) { return unlink_common(dirfd, path, flags); }
int rmdir(const char *path) { return unlink_common(AT_FDCWD, path, AT_REMOVEDIR); }

static int mkdir_common(int dirfd, const char *path, mode_t mode) {
    char abs[PATH_MAX];
    ensure_init();
    if (!resolve(dirfd, path, abs) || !inside_root(abs, 1)) return real_mkdirat(dirfd, path, mode);
    lock();
    if (!exists(abs)) record_paths('M', abs, NULL, NULL);
    int r = real_mkdirat(dirfd, path, mode);
    unlock();
    return r;
}
int mkdir(const char *path, mode_t mode) { return mkdir_common(AT_FDCWD, path, mode); }
int mkdirat(int dirfd, const char *path, mode_t mode) { return mkdir_common(dirfd, path, mode); }

/* The lock is held across the sync so that a racing write cannot be taken for synced. */
static int sync_fd(int fd, int data_only) {
    ensure_init();
    int (*real)(int) = data_only ? real_fdatasync : real_fsync;
    if (!fd_tracked(fd)) return real(fd);
    lock();
    int r = real(fd);
    if (r == 0) record_sync(fd);
    unlock();
    return r;
}
int fsync(int fd) { return sync_fd(fd, 0); }
int fdatasync(int fd) { return sync_fd(fd, 1); }

void sync(void) {
    ensure_init();
    if (!root_len) {
        real_sync();
        return;
    }
    lock();
    real_sync();
    record_paths('A', NULL, NULL, NULL);
    unlock();
}

int syncfs(int fd) {
    ensure_init();
    if (!root_len) return real_syncfs(fd);
    lock();
    int r = real_syncfs(fd);
    if (r == 0 && same_fs_as_root(fd)) record_paths('A', NULL, NULL, NULL);
    unlock();
    return r;
}

/* Duplicates of a tracked fd are tracked too; duplicating over one forgets it. */
int dup(int fd) {
    ensure_init();
    if (!fd_tracked(fd)) return real_dup(fd);
    lock();
    int r = real_dup(fd);
    if (r >= 0) copy_fd(fd, r);
    unlock();
    return r;
}
int dup2(int fd, int to) {
    ensure_init();
    if (!fd_tracked(fd) && !fd_tracked(to)) return real_dup2(fd, to);
    lock();
    int r = real_dup2(fd, to);
    if (r >= 0) copy_fd(fd, to);
    unlock();
    return r;
}
int dup3(int fd, int to, int flags) {
    ensure_init();
    if (!fd_tracked(fd) && !fd_tracked(to)) return real_dup3(fd, to, flags);
    lock();
    int r = real_dup3(fd, to, flags);
    if (r >= 0) copy_fd(fd, to);
    unlock();
    return r;
}

/* fcntl's third argument is an int or a pointer; both travel in one register on x86_64. */
static int fcntl_common(int fd, int cmd, void *arg) {
    ensure_init();
    if ((cmd != F_DUPFD && cmd != F_DUPFD_CLOEXEC) || !fd_tracked(fd))
        return real_fcntl(fd, cmd, arg);
    lock();
    int r = real_fcntl(fd, cmd, arg);
    if (r >= 0) copy_fd(fd, r);
    unlock();
    return r;
}
int fcntl(int fd, int cmd, ...) {
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_common(fd, cmd, arg);
}
int fcntl64(int fd, int cmd, ...) {
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_common(fd, cmd, arg);
}
