/*
 * Loaded into squashfuse_ll with LD_PRELOAD by sarus (userns mode).
 *
 * Every open(2) on a squashfuse mount costs an OPEN and a RELEASE round trip
 * to the daemon, every directory listing an OPENDIR, READDIRs and a
 * RELEASEDIR, every symlink a READLINK; the kernel caches none of it, and
 * Python's imports make hundreds of each (a warm `import numpy` ran 1.5x
 * slower than on the host). The kernel stops sending OPEN and RELEASE, and
 * keeps page cache and directory contents across opens, when the daemon
 * answers OPEN (OPENDIR) with ENOSYS; it caches symlinks when INIT asks for
 * it. An image never changes, so all three are safe, but squashfuse cannot
 * be told to do them. This library does them inside the daemon, wrapping
 * its low-level operations when the session is created:
 *   - OPEN and OPENDIR are answered with ENOSYS;
 *   - a READ (which then comes without a file handle) gets a handle from
 *     squashfuse's own open, made once per inode and released when the
 *     kernel forgets the inode;
 *   - a READDIR gets a handle of its own for the call (directory reads are
 *     rare once the kernel caches their results);
 *   - GETXATTR and LISTXATTR are answered with ENOSYS (see sarus_getxattr).
 * squashfuse's open and opendir answer through fuse_reply_open() and
 * fuse_reply_err(), which this library interposes: while a handle is being
 * made on behalf of another request, their answer is captured instead of
 * sent. Doing this in the daemon rather than in a relay process keeps each
 * request one round trip: on a VM, every extra wake-up costs more than the
 * open it saves.
 *
 * With SARUS_SQUASHFUSE_OWNER=UID:GID in its environment, every file and
 * directory is reported as owned by UID:GID (in the daemon's user namespace),
 * whatever the image records: the container's user owns its whole rootfs, as
 * in Sarus, also in images imported before or by someone else. This is done
 * by interposing the replies that carry attributes, so it holds whatever the
 * operations are.
 *
 * squashfuse_block_cache.c, linked into the same library, keeps
 * squashfuse's recently decompressed blocks.
 *
 * The no-open part is engaged only when the operations live outside libfuse (libfuse's high-level
 * layer calls its reply functions directly, so they could not be captured)
 * and the kernel supports no-open. SARUS_SQUASHFUSE_PRELOAD_DEBUG=<host-pid>
 * (sarus --debug) makes it say at INIT what it does.
 */
#define _GNU_SOURCE
#define FUSE_USE_VERSION 34
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <search.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXPORTED __attribute__((visibility("default")))

typedef int (*reply_open_function)(fuse_req_t, const struct fuse_file_info *);
typedef int (*reply_err_function)(fuse_req_t, int);
typedef int (*reply_attr_function)(fuse_req_t, const struct stat *, double);
typedef int (*reply_entry_function)(fuse_req_t, const struct fuse_entry_param *);
typedef size_t (*add_direntry_plus_function)(fuse_req_t, char *, size_t, const char *,
                                             const struct fuse_entry_param *, off_t);
typedef struct fuse_session *(*session_new_function)(struct fuse_args *, const struct fuse_lowlevel_ops *, size_t,
                                                     void *);

static struct fuse_lowlevel_ops original;
static int files_without_open;
static int directories_without_open;

/* A reply captured on this thread instead of being sent. */
struct capture {
    int active;
    int replied;
    int error;
    uint64_t fh;
};
/* Preloaded at start-up, so the cheap initial-exec TLS model is safe. */
static __thread struct capture capture __attribute__((tls_model("initial-exec")));

/* Handles made for READs, by inode. */
struct cached_handle {
    fuse_ino_t ino;
    uint64_t fh;
};
static void *file_handles;
static pthread_mutex_t file_handles_lock = PTHREAD_MUTEX_INITIALIZER;

static void *libfuse_function(const char *name) {
    return dlvsym(RTLD_NEXT, name, "FUSE_3.0");
}

EXPORTED int fuse_reply_open(fuse_req_t req, const struct fuse_file_info *fi) {
    if (capture.active) {
        capture.replied = 1;
        capture.error = 0;
        capture.fh = fi->fh;
        return 0;
    }
    static reply_open_function real;
    if (!real) {
        real = (reply_open_function)libfuse_function("fuse_reply_open");
    }
    return real(req, fi);
}

EXPORTED int fuse_reply_err(fuse_req_t req, int err) {
    if (capture.active) {
        capture.replied = 1;
        capture.error = err;
        return 0;
    }
    static reply_err_function real;
    if (!real) {
        real = (reply_err_function)libfuse_function("fuse_reply_err");
    }
    return real(req, err);
}

/* SARUS_SQUASHFUSE_OWNER, read once; owner.set is 0 without it. */
static struct {
    int set;
    uid_t uid;
    gid_t gid;
} owner;
static pthread_once_t owner_once = PTHREAD_ONCE_INIT;

static void read_owner(void) {
    const char *value = getenv("SARUS_SQUASHFUSE_OWNER");
    unsigned long uid, gid;
    char end;
    if (value && sscanf(value, "%lu:%lu%c", &uid, &gid, &end) == 2) {
        owner.uid = (uid_t)uid;
        owner.gid = (gid_t)gid;
        owner.set = 1;
    } else if (value) {
        fprintf(stderr, "squashfuse preload: ignoring SARUS_SQUASHFUSE_OWNER=%s (expected UID:GID)\n", value);
    }
}

static struct stat owned(const struct stat *attr) {
    struct stat copy = *attr;
    pthread_once(&owner_once, read_owner);
    if (owner.set) {
        copy.st_uid = owner.uid;
        copy.st_gid = owner.gid;
    }
    return copy;
}

static struct fuse_entry_param owned_entry(const struct fuse_entry_param *entry) {
    struct fuse_entry_param copy = *entry;
    copy.attr = owned(&entry->attr);
    return copy;
}

EXPORTED int fuse_reply_attr(fuse_req_t req, const struct stat *attr, double attr_timeout) {
    static reply_attr_function real;
    if (!real) {
        real = (reply_attr_function)libfuse_function("fuse_reply_attr");
    }
    struct stat copy = owned(attr);
    return real(req, &copy, attr_timeout);
}

EXPORTED int fuse_reply_entry(fuse_req_t req, const struct fuse_entry_param *entry) {
    static reply_entry_function real;
    if (!real) {
        real = (reply_entry_function)libfuse_function("fuse_reply_entry");
    }
    struct fuse_entry_param copy = owned_entry(entry);
    return real(req, &copy);
}

EXPORTED size_t fuse_add_direntry_plus(fuse_req_t req, char *buf, size_t bufsize, const char *name,
                                       const struct fuse_entry_param *entry, off_t off) {
    static add_direntry_plus_function real;
    if (!real) {
        real = (add_direntry_plus_function)libfuse_function("fuse_add_direntry_plus");
    }
    struct fuse_entry_param copy = owned_entry(entry);
    return real(req, buf, bufsize, name, &copy, off);
}

static void begin_capture(void) {
    memset(&capture, 0, sizeof capture);
    capture.active = 1;
}

/* The error of the captured reply; EIO if the operation did not answer. */
static int end_capture(void) {
    capture.active = 0;
    return capture.replied ? capture.error : EIO;
}

static int compare_inodes(const void *a, const void *b) {
    fuse_ino_t x = ((const struct cached_handle *)a)->ino, y = ((const struct cached_handle *)b)->ino;
    return x < y ? -1 : x > y;
}

/* The handle for READs of ino, opened by squashfuse the first time. */
static int file_handle_for(fuse_req_t req, fuse_ino_t ino, uint64_t *fh) {
    struct cached_handle key = {ino, 0};
    int error = 0;
    pthread_mutex_lock(&file_handles_lock);
    struct cached_handle **found = tfind(&key, &file_handles, compare_inodes);
    if (found) {
        *fh = (*found)->fh;
    } else {
        struct fuse_file_info fi;
        memset(&fi, 0, sizeof fi);
        fi.flags = O_RDONLY;
        begin_capture();
        original.open(req, ino, &fi);
        error = end_capture();
        struct cached_handle *handle = error ? NULL : malloc(sizeof *handle);
        if (handle) {
            handle->ino = ino;
            handle->fh = capture.fh;
            tsearch(handle, &file_handles, compare_inodes);
            *fh = handle->fh;
        } else if (!error) {
            error = ENOMEM;
        }
    }
    pthread_mutex_unlock(&file_handles_lock);
    return error;
}

static void drop_file_handle(fuse_req_t req, fuse_ino_t ino) {
    struct cached_handle key = {ino, 0};
    pthread_mutex_lock(&file_handles_lock);
    struct cached_handle **found = tfind(&key, &file_handles, compare_inodes);
    if (found) {
        struct cached_handle *handle = *found;
        tdelete(&key, &file_handles, compare_inodes);
        if (original.release) {
            struct fuse_file_info fi;
            memset(&fi, 0, sizeof fi);
            fi.flags = O_RDONLY;
            fi.fh = handle->fh;
            begin_capture();
            original.release(req, ino, &fi);
            end_capture();
        }
        free(handle);
    }
    pthread_mutex_unlock(&file_handles_lock);
}

/* With sarus --debug: a line in sarus's log format, under its instance id
 * ("host-pid", the variable's value), written at once. */
static void debug_line(const char *format, ...) {
    const char *instance = getenv("SARUS_SQUASHFUSE_PRELOAD_DEBUG");
    if (!instance || !*instance) {
        return;
    }
    char message[512];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    fprintf(stderr, "[%lld.%09ld] [%s] [Runtime] [DEBUG] squashfuse preload: %s\n", (long long)now.tv_sec,
            now.tv_nsec, instance, message);
}

static void sarus_init(void *userdata, struct fuse_conn_info *conn) {
    if (original.init) {
        original.init(userdata, conn);
    }
    if (conn->capable & FUSE_CAP_CACHE_SYMLINKS) {
        conn->want |= FUSE_CAP_CACHE_SYMLINKS;
    }
    files_without_open = original.open && original.read && (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT);
    directories_without_open =
        original.opendir && original.readdir && (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT);
    debug_line("files read without OPEN: %s, directories without OPENDIR: %s, symlinks cached: %s",
               files_without_open ? "yes" : "no", directories_without_open ? "yes" : "no",
               (conn->want & FUSE_CAP_CACHE_SYMLINKS) ? "yes" : "no");
}

static void sarus_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    if (files_without_open) {
        fuse_reply_err(req, ENOSYS); /* from now on, the kernel opens files by itself */
        return;
    }
    original.open(req, ino, fi);
}

static void sarus_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
    if (!files_without_open) {
        original.read(req, ino, size, off, fi);
        return;
    }
    struct fuse_file_info with_handle = *fi;
    int error = file_handle_for(req, ino, &with_handle.fh);
    if (error) {
        fuse_reply_err(req, error);
        return;
    }
    original.read(req, ino, size, off, &with_handle);
}

static void sarus_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
    drop_file_handle(req, ino);
    original.forget(req, ino, nlookup);
}

static void sarus_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets) {
    for (size_t i = 0; i < count; ++i) {
        drop_file_handle(req, forgets[i].ino);
    }
    original.forget_multi(req, count, forgets);
}

static void sarus_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    if (directories_without_open) {
        fuse_reply_err(req, ENOSYS);
        return;
    }
    original.opendir(req, ino, fi);
}

/* overlayfs asks its lower layer for its own attributes on nearly every
 * lookup (about 380 GETXATTR round trips for one `import numpy` in a new
 * container, a quarter of its time). The kernel caches no attribute, but
 * stops asking for good when the daemon answers ENOSYS: the image's
 * extended attributes are then not visible in the container. In userns mode
 * they serve nothing there (file capabilities do not apply under
 * no_new_privs; fuse-overlayfs hides them too). */
static void sarus_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size) {
    (void)ino;
    (void)name;
    (void)size;
    fuse_reply_err(req, ENOSYS);
}

static void sarus_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
    (void)ino;
    (void)size;
    fuse_reply_err(req, ENOSYS);
}

typedef void (*readdir_function)(fuse_req_t, fuse_ino_t, size_t, off_t, struct fuse_file_info *);

/* One directory read with a handle of its own, made and released around it. */
static void read_directory(readdir_function read, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info *fi) {
    if (!directories_without_open) {
        read(req, ino, size, off, fi);
        return;
    }
    struct fuse_file_info directory;
    memset(&directory, 0, sizeof directory);
    directory.flags = O_RDONLY | O_DIRECTORY;
    begin_capture();
    original.opendir(req, ino, &directory);
    int error = end_capture();
    if (error) {
        fuse_reply_err(req, error);
        return;
    }
    directory.fh = capture.fh;
    read(req, ino, size, off, &directory);
    if (original.releasedir) {
        begin_capture();
        original.releasedir(req, ino, &directory);
        end_capture();
    }
}

static void sarus_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
    read_directory(original.readdir, req, ino, size, off, fi);
}

static void sarus_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
    read_directory(original.readdirplus, req, ino, size, off, fi);
}

/* True when the operations are the daemon's own, not libfuse's high-level layer. */
static int operations_outside_libfuse(const struct fuse_lowlevel_ops *op) {
    Dl_info operation, library;
    void *reply = libfuse_function("fuse_reply_open");
    if (!op->open || !reply || !dladdr((void *)op->open, &operation) || !dladdr(reply, &library)) {
        return 0;
    }
    return operation.dli_fbase != library.dli_fbase;
}

EXPORTED struct fuse_session *fuse_session_new(struct fuse_args *args, const struct fuse_lowlevel_ops *op,
                                               size_t op_size, void *userdata) {
    session_new_function real = (session_new_function)libfuse_function("fuse_session_new");
    if (!real) {
        return NULL;
    }
    if (op_size != sizeof original || !operations_outside_libfuse(op)) {
        debug_line("operations of libfuse's high-level layer, left as they are");
        return real(args, op, op_size, userdata);
    }
    original = *op;
    tdestroy(file_handles, free); /* handles belong to one session */
    file_handles = NULL;
    struct fuse_lowlevel_ops wrapped = *op;
    wrapped.init = sarus_init;
    wrapped.open = sarus_open;
    if (op->read) {
        wrapped.read = sarus_read;
    }
    if (op->forget) {
        wrapped.forget = sarus_forget;
    }
    if (op->forget_multi) {
        wrapped.forget_multi = sarus_forget_multi;
    }
    if (op->opendir) {
        wrapped.opendir = sarus_opendir;
    }
    if (op->readdir) {
        wrapped.readdir = sarus_readdir;
    }
    if (op->readdirplus) {
        wrapped.readdirplus = sarus_readdirplus;
    }
    wrapped.getxattr = sarus_getxattr;
    wrapped.listxattr = sarus_listxattr;
    return real(args, &wrapped, sizeof wrapped, userdata);
}
