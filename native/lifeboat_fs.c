/*
 * lifeboat_fs: the few Linux file-system calls Node lacks, for exact metadata round-trips:
 * extended attributes (l*xattr), mknod (FIFOs, device nodes), utimensat with nanoseconds and
 * AT_SYMLINK_NOFOLLOW, and SEEK_DATA/SEEK_HOLE for sparse files; the lstat of a whole folder's
 * entries in one call; zstd, scrypt and memory helpers for speed. Plain C, node_api.h only.
 * Every call is synchronous and short; errors throw an Error with `code` set to the errno name.
 * Paths and xattr names are Buffers (bytes), never strings, so any name round-trips.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

#define CHECK(call) do { if ((call) != napi_ok) { napi_throw_error(env, NULL, "lifeboat_fs: bad arguments"); return NULL; } } while (0)

static const char *errno_name(int e) {
  switch (e) {
    case ENOENT: return "ENOENT"; case EACCES: return "EACCES"; case EPERM: return "EPERM";
    case ENODATA: return "ENODATA"; case ENOTSUP: return "ENOTSUP"; case ERANGE: return "ERANGE";
    case EEXIST: return "EEXIST"; case EINVAL: return "EINVAL"; case ENOSPC: return "ENOSPC";
    case ENXIO: return "ENXIO"; case ENOTDIR: return "ENOTDIR"; case ELOOP: return "ELOOP";
    case ENAMETOOLONG: return "ENAMETOOLONG"; case EIO: return "EIO"; case EBADF: return "EBADF";
    default: return "EUNKNOWN";
  }
}

static napi_value throw_errno(napi_env env, const char *what) {
  int e = errno;
  napi_value msg, code, err;
  char buf[256];
  snprintf(buf, sizeof buf, "%s: %s", what, strerror(e));
  napi_create_string_utf8(env, buf, NAPI_AUTO_LENGTH, &msg);
  napi_create_string_utf8(env, errno_name(e), NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, msg, &err);
  napi_set_named_property(env, err, "code", code);
  napi_throw(env, err);
  return NULL;
}

/* Copies a Buffer argument into a NUL-terminated heap string (caller frees). */
static char *cstr(napi_env env, napi_value v) {
  void *data; size_t len;
  if (napi_get_buffer_info(env, v, &data, &len) != napi_ok) return NULL;
  char *s = malloc(len + 1);
  if (!s) return NULL;
  memcpy(s, data, len);
  s[len] = 0;
  return s;
}

static napi_value get_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv) {
  size_t argc = n;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < n) {
    napi_throw_type_error(env, NULL, "lifeboat_fs: missing arguments");
    return NULL;
  }
  return argv[0];
}

/* llistxattr(path) -> Buffer of NUL-separated names */
static napi_value js_llistxattr(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  char *path = cstr(env, argv[0]);
  if (!path) { napi_throw_type_error(env, NULL, "path must be a Buffer"); return NULL; }
  {
    /* First into a small buffer on the stack: one lookup of the path where asking for the size
       first made two, for every entry of a backup (nearly all have no extended attributes). */
    char small[4096];
    ssize_t m = llistxattr(path, small, sizeof small);
    if (m >= 0) {
      void *out; napi_value buf;
      napi_create_buffer_copy(env, (size_t)m, small, &out, &buf);
      free(path);
      return buf;
    }
    if (errno != ERANGE) { free(path); return throw_errno(env, "llistxattr"); }
  }
  for (int attempt = 0; attempt < 4; attempt++) {
    ssize_t n = llistxattr(path, NULL, 0);
    if (n < 0) { free(path); return throw_errno(env, "llistxattr"); }
    void *out; napi_value buf;
    char *tmp = malloc(n > 0 ? (size_t)n : 1);
    ssize_t m = n > 0 ? llistxattr(path, tmp, (size_t)n) : 0;
    if (m < 0 && errno == ERANGE) { free(tmp); continue; }
    if (m < 0) { free(tmp); free(path); return throw_errno(env, "llistxattr"); }
    napi_create_buffer_copy(env, (size_t)m, tmp, &out, &buf);
    free(tmp); free(path);
    return buf;
  }
  free(path);
  errno = ERANGE;
  return throw_errno(env, "llistxattr");
}

/* lgetxattr(path, name) -> Buffer */
static napi_value js_lgetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  char *path = cstr(env, argv[0]), *name = cstr(env, argv[1]);
  if (!path || !name) { free(path); free(name); napi_throw_type_error(env, NULL, "arguments must be Buffers"); return NULL; }
  for (int attempt = 0; attempt < 4; attempt++) {
    ssize_t n = lgetxattr(path, name, NULL, 0);
    if (n < 0) { free(path); free(name); return throw_errno(env, "lgetxattr"); }
    char *tmp = malloc(n > 0 ? (size_t)n : 1);
    ssize_t m = n > 0 ? lgetxattr(path, name, tmp, (size_t)n) : 0;
    if (m < 0 && errno == ERANGE) { free(tmp); continue; }
    if (m < 0) { free(tmp); free(path); free(name); return throw_errno(env, "lgetxattr"); }
    void *out; napi_value buf;
    napi_create_buffer_copy(env, (size_t)m, tmp, &out, &buf);
    free(tmp); free(path); free(name);
    return buf;
  }
  free(path); free(name);
  errno = ERANGE;
  return throw_errno(env, "lgetxattr");
}

/* lsetxattr(path, name, value) */
static napi_value js_lsetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  char *path = cstr(env, argv[0]), *name = cstr(env, argv[1]);
  void *val; size_t vlen;
  if (!path || !name || napi_get_buffer_info(env, argv[2], &val, &vlen) != napi_ok) {
    free(path); free(name); napi_throw_type_error(env, NULL, "arguments must be Buffers"); return NULL;
  }
  int r = lsetxattr(path, name, val, vlen, 0);
  free(path); free(name);
  if (r < 0) return throw_errno(env, "lsetxattr");
  return NULL;
}

/* mknod(path, mode, rdev: bigint) */
static napi_value js_mknod(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  char *path = cstr(env, argv[0]);
  uint32_t mode; uint64_t rdev; bool lossless;
  if (!path) { napi_throw_type_error(env, NULL, "path must be a Buffer"); return NULL; }
  if (napi_get_value_uint32(env, argv[1], &mode) != napi_ok || napi_get_value_bigint_uint64(env, argv[2], &rdev, &lossless) != napi_ok) {
    free(path); napi_throw_type_error(env, NULL, "mode must be a number, rdev a bigint"); return NULL;
  }
  int r = mknod(path, (mode_t)mode, (dev_t)rdev);
  free(path);
  if (r < 0) return throw_errno(env, "mknod");
  return NULL;
}

static int split_ns(napi_env env, napi_value v, struct timespec *ts) {
  int64_t ns; bool lossless;
  if (napi_get_value_bigint_int64(env, v, &ns, &lossless) != napi_ok) return -1;
  int64_t sec = ns / 1000000000, rem = ns % 1000000000;
  if (rem < 0) { rem += 1000000000; sec -= 1; }
  ts->tv_sec = (time_t)sec;
  ts->tv_nsec = (long)rem;
  return 0;
}

/* lutimens(path, atimeNs: bigint, mtimeNs: bigint): utimensat(AT_FDCWD, path, ..., AT_SYMLINK_NOFOLLOW) */
static napi_value js_lutimens(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  char *path = cstr(env, argv[0]);
  struct timespec ts[2];
  if (!path) { napi_throw_type_error(env, NULL, "path must be a Buffer"); return NULL; }
  if (split_ns(env, argv[1], &ts[0]) < 0 || split_ns(env, argv[2], &ts[1]) < 0) {
    free(path); napi_throw_type_error(env, NULL, "times must be bigints"); return NULL;
  }
  int r = utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW);
  free(path);
  if (r < 0) return throw_errno(env, "utimensat");
  return NULL;
}

/* holes(fd, size) -> Float64Array of (offset, length) pairs of holes, [] if none or unsupported */
static napi_value js_holes(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  int32_t fd; double dsize;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  CHECK(napi_get_value_double(env, argv[1], &dsize));
  off_t size = (off_t)dsize;
  size_t cap = 16, n = 0;
  double *pairs = malloc(cap * sizeof(double));
  off_t pos = 0;
  while (pos < size) {
    off_t hole = lseek(fd, pos, SEEK_HOLE);
    if (hole < 0) { if (errno == ENXIO) break; if (errno == EINVAL) { n = 0; break; } free(pairs); return throw_errno(env, "lseek"); }
    if (hole >= size) break;
    off_t data = lseek(fd, hole, SEEK_DATA);
    if (data < 0 && errno != ENXIO) { free(pairs); return throw_errno(env, "lseek"); }
    off_t end = data < 0 || data > size ? size : data;
    if (n + 2 > cap) { cap *= 2; pairs = realloc(pairs, cap * sizeof(double)); }
    pairs[n++] = (double)hole;
    pairs[n++] = (double)(end - hole);
    pos = end;
  }
  lseek(fd, 0, SEEK_SET);
  napi_value ab, arr; void *out;
  napi_create_arraybuffer(env, n * sizeof(double), &out, &ab);
  if (n) memcpy(out, pairs, n * sizeof(double));
  free(pairs);
  napi_create_typedarray(env, napi_float64_array, n, ab, 0, &arr);
  return arr;
}


// lstatAt(dir, names) -> BigInt64Array of names.length rows of LSTAT_FIELDS: errno (0 when the
// row is good; -1: ask Node, the times do not fit), mode, dev, ino, nlink, uid, gid, rdev, size,
// atimeNs, mtimeNs, ctimeNs, with Node's values (statx and makedev as libuv does; BigInt64Array
// as Node's bigint stats). One call per folder, each name looked up relative to the folder: a
// backup's lstat of every entry through Node cost ~7.5 µs each (path walk from the root, a
// BigIntStats object), most of a no-change backup (bench/README.md, session 13). The 13th field,
// with a third argument true: 0 when the entry has no extended attributes (llistxattr of its path
// gave nothing), 1 when it may have some (or the list could not be read, or was not asked for):
// the backup asks for the list only then. Through a JavaScript call per entry, that cost ~6 µs
// each, the system call ~3 µs (session 19). A folder backed up before takes its entries'
// attributes from the previous listing: there the system call is not made.
#define LSTAT_FIELDS 13
static int ns_of(long long sec, unsigned nsec, int64_t *out) {
  __int128 v = (__int128)sec * 1000000000 + nsec;
  if (v > INT64_MAX || v < INT64_MIN) return 0;
  *out = (int64_t)v;
  return 1;
}
static napi_value js_lstat_at(napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3], ab, out;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char *dir; size_t dlen; uint32_t n;
  bool probe = false;
  if (argc >= 3) napi_get_value_bool(env, argv[2], &probe);
  if (argc < 2 || napi_get_buffer_info(env, argv[0], (void **)&dir, &dlen) != napi_ok || napi_get_array_length(env, argv[1], &n) != napi_ok) {
    napi_throw_error(env, NULL, "lstatAt(Buffer, Buffer[])"); return NULL;
  }
  char *dpath = malloc(dlen + 1);
  if (!dpath) { napi_throw_error(env, NULL, "out of memory"); return NULL; }
  memcpy(dpath, dir, dlen); dpath[dlen] = 0;
  int dfd = open(dpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int derr = dfd < 0 ? errno : 0;
  free(dpath);
  // The entry's full path for llistxattr (there is no llistxattrat): the folder, a slash, the name.
  char full[PATH_MAX];
  size_t flen = dlen;
  if (flen < sizeof full) memcpy(full, dir, flen);
  if (flen > 0 && flen < sizeof full && full[flen - 1] != '/') full[flen++] = '/';
  int64_t *row;
  if (napi_create_arraybuffer(env, (size_t)n * LSTAT_FIELDS * 8, (void **)&row, &ab) != napi_ok) { if (dfd >= 0) close(dfd); return NULL; }
  memset(row, 0, (size_t)n * LSTAT_FIELDS * 8);
  char name[4096];
  for (uint32_t i = 0; i < n; i++, row += LSTAT_FIELDS) {
    napi_value v; char *nb; size_t nl;
    if (napi_get_element(env, argv[1], i, &v) != napi_ok || napi_get_buffer_info(env, v, (void **)&nb, &nl) != napi_ok) { row[0] = EINVAL; continue; }
    if (derr) { row[0] = derr; continue; }
    if (nl >= sizeof name) { row[0] = ENAMETOOLONG; continue; }
    if (nl == 0 || memchr(nb, '/', nl) || memchr(nb, 0, nl)) { row[0] = EINVAL; continue; } // one path component only
    memcpy(name, nb, nl); name[nl] = 0;
    struct statx x;
    if (statx(dfd, name, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_BASIC_STATS, &x) != 0) { row[0] = errno; continue; }
    row[1] = x.stx_mode; row[2] = (int64_t)makedev(x.stx_dev_major, x.stx_dev_minor); row[3] = (int64_t)x.stx_ino;
    row[4] = x.stx_nlink; row[5] = x.stx_uid; row[6] = x.stx_gid; row[7] = (int64_t)makedev(x.stx_rdev_major, x.stx_rdev_minor);
    row[8] = (int64_t)x.stx_size;
    if (!ns_of(x.stx_atime.tv_sec, x.stx_atime.tv_nsec, &row[9]) || !ns_of(x.stx_mtime.tv_sec, x.stx_mtime.tv_nsec, &row[10]) || !ns_of(x.stx_ctime.tv_sec, x.stx_ctime.tv_nsec, &row[11])) row[0] = -1;
    row[12] = 1;
    if (probe && flen + nl < sizeof full) {
      memcpy(full + flen, name, nl + 1);
      ssize_t xl = llistxattr(full, NULL, 0);
      if (xl == 0 || (xl < 0 && (errno == ENOTSUP || errno == EOPNOTSUPP))) row[12] = 0;
    }
  }
  if (dfd >= 0) close(dfd);
  CHECK(napi_create_typedarray(env, napi_bigint64_array, (size_t)n * LSTAT_FIELDS, ab, 0, &out));
  return out;
}

// ---- zstd through the system's libzstd (dlopen: no headers needed at build time) ----------------
// One compression and one decompression context per codec object, reused for every call: the
// npm binding makes a fresh streaming context per call, which costs ~50 µs (a 2 MiB window
// allocated and cleared) and dominates backups of many small files. Frames are standard zstd
// with the content size in the header; absent libzstd, JavaScript falls back to the npm binding.
typedef void *(*zfn_create)(void);
typedef size_t (*zfn_free)(void *);
typedef size_t (*zfn_bound)(size_t);
typedef unsigned (*zfn_iserr)(size_t);
typedef const char *(*zfn_errname)(size_t);
typedef size_t (*zfn_cctx)(void *, void *, size_t, const void *, size_t, int);
typedef size_t (*zfn_dctx)(void *, void *, size_t, const void *, size_t);
typedef unsigned long long (*zfn_csize)(const void *, size_t);
// ZSTD_parameters as zstd.h lays it out (stable since 1.0): compression parameters, then frame flags.
typedef struct { unsigned windowLog, chainLog, hashLog, searchLog, minMatch, targetLength; int strategy; } zparams_c;
typedef struct { zparams_c c; int contentSizeFlag, checksumFlag, noDictIDFlag; } zparams;
typedef zparams (*zfn_getparams)(int, unsigned long long, size_t);
typedef size_t (*zfn_cadvanced)(void *, void *, size_t, const void *, size_t, const void *, size_t, zparams);
static struct {
  int ok;
  zfn_create createC, createD;
  zfn_free freeC, freeD;
  zfn_bound bound;
  zfn_iserr isError;
  zfn_errname errName;
  zfn_cctx compress;
  zfn_dctx decompress;
  zfn_csize contentSize;
  zfn_getparams getParams; // optional (experimental API): with compressAdvanced, one set of
  zfn_cadvanced compressAdvanced; // parameters for every call, see zcodec
} Z;

static pthread_once_t zstd_once = PTHREAD_ONCE_INIT;

static void zstd_open(void) {
  void *h = dlopen("libzstd.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!h) return;
  Z.createC = (zfn_create)dlsym(h, "ZSTD_createCCtx");
  Z.createD = (zfn_create)dlsym(h, "ZSTD_createDCtx");
  Z.freeC = (zfn_free)dlsym(h, "ZSTD_freeCCtx");
  Z.freeD = (zfn_free)dlsym(h, "ZSTD_freeDCtx");
  Z.bound = (zfn_bound)dlsym(h, "ZSTD_compressBound");
  Z.isError = (zfn_iserr)dlsym(h, "ZSTD_isError");
  Z.errName = (zfn_errname)dlsym(h, "ZSTD_getErrorName");
  Z.compress = (zfn_cctx)dlsym(h, "ZSTD_compressCCtx");
  Z.decompress = (zfn_dctx)dlsym(h, "ZSTD_decompressDCtx");
  Z.contentSize = (zfn_csize)dlsym(h, "ZSTD_getFrameContentSize");
  Z.getParams = (zfn_getparams)dlsym(h, "ZSTD_getParams");
  Z.compressAdvanced = (zfn_cadvanced)dlsym(h, "ZSTD_compress_advanced");
  if (!Z.getParams || !Z.compressAdvanced) Z.getParams = NULL, Z.compressAdvanced = NULL;
  Z.ok = Z.createC && Z.createD && Z.freeC && Z.freeD && Z.bound && Z.isError && Z.errName && Z.compress && Z.decompress && Z.contentSize;
}

// Once per process, whichever thread (main or a worker) asks first.
static int zstd_load(void) {
  pthread_once(&zstd_once, zstd_open);
  return Z.ok;
}

// ZSTD_compressCCtx picks parameters by the input's size, so a backup's mix of small files and
// 1 MiB chunks made the context resize its workspace and clear its tables over and over: memset
// and page faults were a third of the worker's zstd time (bench/README.md, session 13). With one
// set of parameters (the level's for inputs of unknown size) the context keeps its workspace and
// continues its tables; small inputs compress as well (+0.08% on 40,000 real files, 2.1x faster).
// Frames still record their content size and fit in one segment, so decoders need no more memory.
typedef struct { void *c; void *d; int level; zparams params; } zcodec;

static size_t zcompress(zcodec *z, void *dst, size_t cap, const void *src, size_t len) {
  if (Z.compressAdvanced) return Z.compressAdvanced(z->c, dst, cap, src, len, NULL, 0, z->params);
  return Z.compress(z->c, dst, cap, src, len, z->level);
}

static void zcodec_free(napi_env env, void *data, void *hint) {
  (void)env; (void)hint;
  zcodec *z = data;
  if (z->c) Z.freeC(z->c);
  if (z->d) Z.freeD(z->d);
  free(z);
}

static napi_value throw_msg(napi_env env, const char *msg) {
  napi_throw_error(env, NULL, msg);
  return NULL;
}

// zstdCodec(level) -> external handle, or undefined when libzstd is not available.
static napi_value js_zstd_codec(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1], r;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t level = 3;
  if (argc > 0) napi_get_value_int32(env, argv[0], &level);
  if (!zstd_load()) { napi_get_undefined(env, &r); return r; }
  zcodec *z = calloc(1, sizeof *z);
  if (!z) return throw_msg(env, "out of memory");
  z->c = Z.createC(); z->d = Z.createD(); z->level = level;
  if (Z.getParams) {
    z->params = Z.getParams(level, 0, 0);
    z->params.contentSizeFlag = 1; z->params.checksumFlag = 0; z->params.noDictIDFlag = 1;
  }
  if (!z->c || !z->d) { zcodec_free(env, z, NULL); return throw_msg(env, "zstd: cannot create a context"); }
  napi_create_external(env, z, zcodec_free, NULL, &r);
  return r;
}

static int bytes_arg(napi_env env, napi_value v, void **data, size_t *len) {
  napi_typedarray_type t; napi_value ab; size_t off;
  if (napi_get_typedarray_info(env, v, &t, len, data, &ab, &off) != napi_ok || t != napi_uint8_array) return 0;
  return 1;
}

// zstdCompress(handle, bytes) -> Buffer holding one frame (content size in its header).
// zstdCompressInto(handle, bytes, dst) -> length of the frame written at the start of dst, which
// must hold ZSTD_compressBound(bytes.length) bytes: no allocation, for callers that copy the frame
// on at once (a blob's envelope).
static napi_value js_zstd_compress_into(napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3], r;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  zcodec *z; void *src, *dst; size_t len, cap;
  if (argc < 3 || napi_get_value_external(env, argv[0], (void **)&z) != napi_ok || !bytes_arg(env, argv[1], &src, &len) || !bytes_arg(env, argv[2], &dst, &cap)) {
    return throw_msg(env, "zstdCompressInto(handle, Uint8Array, Uint8Array)");
  }
  if (cap < Z.bound(len)) return throw_msg(env, "zstdCompressInto: the output buffer is smaller than the compress bound");
  size_t n = zcompress(z, dst, cap, src, len);
  if (Z.isError(n)) return throw_msg(env, Z.errName(n));
  napi_create_double(env, (double)n, &r);
  return r;
}

static napi_value js_zstd_compress(napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2], r;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  zcodec *z; void *src; size_t len;
  if (argc < 2 || napi_get_value_external(env, argv[0], (void **)&z) != napi_ok || !bytes_arg(env, argv[1], &src, &len)) return throw_msg(env, "zstdCompress(handle, Uint8Array)");
  size_t cap = Z.bound(len);
  void *tmp = malloc(cap ? cap : 1);
  if (!tmp) return throw_msg(env, "out of memory");
  size_t n = zcompress(z, tmp, cap, src, len);
  if (Z.isError(n)) { free(tmp); return throw_msg(env, Z.errName(n)); }
  void *out;
  napi_create_buffer_copy(env, n, tmp, &out, &r);
  free(tmp);
  return r;
}

// zstdDecompress(handle, bytes, expectedLength) -> Buffer; throws when the frame is damaged or
// does not decode to exactly expectedLength bytes (when the frame records a size, it must agree).
static napi_value js_zstd_decompress(napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3], r;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  zcodec *z; void *src; size_t len; int64_t expected;
  if (argc < 3 || napi_get_value_external(env, argv[0], (void **)&z) != napi_ok || !bytes_arg(env, argv[1], &src, &len) || napi_get_value_int64(env, argv[2], &expected) != napi_ok || expected < 0) {
    return throw_msg(env, "zstdDecompress(handle, Uint8Array, expectedLength)");
  }
  unsigned long long cs = Z.contentSize(src, len);
  if (cs != 0ULL - 1 && cs != 0ULL - 2 && cs != (unsigned long long)expected) return throw_msg(env, "zstd: the frame's size differs from the expected size");
  void *out;
  napi_create_buffer(env, (size_t)expected, &out, &r);
  size_t n = Z.decompress(z->d, out, (size_t)expected, src, len);
  if (Z.isError(n)) return throw_msg(env, Z.errName(n));
  if (n != (size_t)expected) return throw_msg(env, "zstd: the frame decoded to fewer bytes than expected");
  return r;
}

// zstdDecompressInto(handle, bytes, dst) -> dst.length, having decoded the frame into all of dst;
// throws when the frame is damaged or does not decode to exactly dst.length bytes. No allocation:
// check decodes every blob of a repository into one buffer it keeps.
static napi_value js_zstd_decompress_into(napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3], r;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  zcodec *z; void *src, *dst; size_t len, cap;
  if (argc < 3 || napi_get_value_external(env, argv[0], (void **)&z) != napi_ok || !bytes_arg(env, argv[1], &src, &len) || !bytes_arg(env, argv[2], &dst, &cap)) {
    return throw_msg(env, "zstdDecompressInto(handle, Uint8Array, Uint8Array)");
  }
  unsigned long long cs = Z.contentSize(src, len);
  if (cs != 0ULL - 1 && cs != 0ULL - 2 && cs != (unsigned long long)cap) return throw_msg(env, "zstd: the frame's size differs from the expected size");
  size_t n = Z.decompress(z->d, dst, cap, src, len);
  if (Z.isError(n)) return throw_msg(env, Z.errName(n));
  if (n != cap) return throw_msg(env, "zstd: the frame decoded to fewer bytes than expected");
  napi_create_double(env, (double)n, &r);
  return r;
}

// ---- allocator ------------------------------------------------------------------------------
// keepAllocatorLean([mmapThreshold, trimThreshold]) -> whether it applied. glibc serves large
// blocks from its heaps once a freed mapping has raised its threshold (up to 32 MiB), and a heap
// gives memory back only from its top: after a backup's stream of 1 MiB chunks and envelopes
// through three threads, each heap held 50-110 MiB that was free but resident. A fixed threshold
// (which also turns that adjustment off; 256 KiB by default) puts every block from there up in its
// own mapping, returned to the system when freed. A restore, which frees each block before the
// next of its size, passes a high threshold and trim threshold instead: its blocks are reused
// from the heap, not mapped and faulted in afresh (540k page faults per 1.5 GB restored).
static napi_value js_keep_allocator_lean(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], r;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t mmap_threshold = 256 * 1024, trim_threshold = -1;
  if (argc >= 1 && napi_get_value_int64(env, argv[0], &mmap_threshold) != napi_ok) return throw_msg(env, "keepAllocatorLean([mmapThreshold, trimThreshold])");
  if (argc >= 2 && napi_get_value_int64(env, argv[1], &trim_threshold) != napi_ok) return throw_msg(env, "keepAllocatorLean([mmapThreshold, trimThreshold])");
#ifdef __GLIBC__
  int ok = mmap_threshold > 0 && mmap_threshold <= 32 * 1024 * 1024 && mallopt(M_MMAP_THRESHOLD, (int)mmap_threshold) == 1;
  if (ok && trim_threshold > 0 && trim_threshold <= 1024 * 1024 * 1024) ok = mallopt(M_TRIM_THRESHOLD, (int)trim_threshold) == 1;
  napi_get_boolean(env, ok, &r);
#else
  (void)mmap_threshold;
  (void)trim_threshold;
  napi_get_boolean(env, false, &r);
#endif
  return r;
}

// ---- page cache -----------------------------------------------------------------------------
// adviseCache(fd, offset, length, willNeed) -> whether the kernel took the advice
// (posix_fadvise; length 0 means to the end of the file).
// willNeed false (DONTNEED): after fsync a repository file's pages are clean and nobody reads them
// again soon; dropping them (as borg does for its segment files) keeps a backup from pushing the
// user's working set out of the cache, and lets the next file reuse the same memory instead of
// claiming fresh pages (costly in a VM whose host reclaims the guest's free memory: 1.5 GB of
// packs took 11 s of system time there instead of 0.3).
// willNeed true (WILLNEED): starts reading a pack into the cache ahead of the blobs a restore is
// about to read from it one by one, which the kernel would otherwise read as separate requests.
static napi_value js_advise_cache(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], r;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  int64_t offset, length;
  bool will;
  if (argc < 4 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 || napi_get_value_int64(env, argv[1], &offset) != napi_ok || offset < 0 ||
      napi_get_value_int64(env, argv[2], &length) != napi_ok || length < 0 || napi_get_value_bool(env, argv[3], &will) != napi_ok) {
    return throw_msg(env, "adviseCache(fd, offset, length, willNeed)");
  }
  napi_get_boolean(env, posix_fadvise(fd, (off_t)offset, (off_t)length, will ? POSIX_FADV_WILLNEED : POSIX_FADV_DONTNEED) == 0, &r);
  return r;
}

// ---- buffers --------------------------------------------------------------------------------
// release(arrayBuffer) -> whether it was released. Detaching an ArrayBuffer drops its bytes at once
// instead of when the garbage collector next finds it dead (V8 counts those bytes loosely, and a
// pipeline passing gigabytes through short-lived buffers otherwise holds tens of MiB of them).
// The caller guarantees that nothing else uses the buffer: afterwards every view of it is empty.
static napi_value js_release(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], r;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  bool is_ab = false, detachable = false;
  if (argc < 1 || napi_is_arraybuffer(env, argv[0], &is_ab) != napi_ok || !is_ab) return throw_msg(env, "release: expected an ArrayBuffer");
  bool ok = napi_detach_arraybuffer(env, argv[0]) == napi_ok;
  (void)detachable;
  napi_get_boolean(env, ok, &r);
  return r;
}

// forgetPages(view, from) -> bool: gives the kernel back the whole pages of a Uint8Array from byte
// `from` on (madvise MADV_DONTNEED: they read as zeros when next touched, and count in no RSS
// until then). For pooled buffers whose later bytes are garbage (util/memory.ts BufferPool.give).
static napi_value js_forget_pages(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], r;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  bool is_ta = false;
  if (argc < 2 || napi_is_typedarray(env, argv[0], &is_ta) != napi_ok || !is_ta) return throw_msg(env, "forgetPages: expected a Uint8Array");
  napi_typedarray_type type;
  size_t length = 0;
  void *data = NULL;
  int64_t from = 0;
  if (napi_get_typedarray_info(env, argv[0], &type, &length, &data, NULL, NULL) != napi_ok || type != napi_uint8_array) return throw_msg(env, "forgetPages: expected a Uint8Array");
  if (napi_get_value_int64(env, argv[1], &from) != napi_ok || from < 0) return throw_msg(env, "forgetPages: expected a byte offset");
  long page = sysconf(_SC_PAGESIZE);
  uintptr_t start = ((uintptr_t)data + (uintptr_t)from + page - 1) & ~(uintptr_t)(page - 1);
  uintptr_t end = ((uintptr_t)data + length) & ~(uintptr_t)(page - 1);
  bool ok = (size_t)from >= length || end <= start || madvise((void *)start, end - start, MADV_DONTNEED) == 0;
  napi_get_boolean(env, ok, &r);
  return r;
}

// ---- scrypt ---------------------------------------------------------------------------------
// scryptLanes(blocks, N, r) -> Promise<Uint8Array>: scrypt's ROMix (RFC 7914 §5) of each 128·r-byte
// block of `blocks`, one after another, on the libuv thread pool. repo/crypto.ts does the PBKDF2
// steps before and after with Node's crypto: the same key as crypto.scrypt. The working memory
// (128·r·N bytes: 32 MiB for N = 2^15, r = 8) is one mapping per call, reused by its lanes, with
// huge pages asked for: faulting it in 4 KiB pages cost about as much as a lane's arithmetic on
// this VM (the key derivation every command pays: 0.80 -> 0.63 CPU-s for `lifeboat snapshots`).
// scrypt's lanes are independent, so calls may run side by side (crypto.ts MAX_SHARES).
typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  uint32_t *X;       // the blocks, as 32·r little-endian words each (in, then out)
  size_t lanes;
  uint64_t N;
  size_t r;
  int failed;
} scrypt_job;

static inline uint32_t rotl32(uint32_t a, int b) { return (a << b) | (a >> (32 - b)); }

static void salsa20_8(uint32_t B[16]) {
  uint32_t x[16];
  memcpy(x, B, 64);
  for (int i = 0; i < 8; i += 2) {
    x[4] ^= rotl32(x[0] + x[12], 7);  x[8] ^= rotl32(x[4] + x[0], 9);
    x[12] ^= rotl32(x[8] + x[4], 13); x[0] ^= rotl32(x[12] + x[8], 18);
    x[9] ^= rotl32(x[5] + x[1], 7);   x[13] ^= rotl32(x[9] + x[5], 9);
    x[1] ^= rotl32(x[13] + x[9], 13); x[5] ^= rotl32(x[1] + x[13], 18);
    x[14] ^= rotl32(x[10] + x[6], 7); x[2] ^= rotl32(x[14] + x[10], 9);
    x[6] ^= rotl32(x[2] + x[14], 13); x[10] ^= rotl32(x[6] + x[2], 18);
    x[3] ^= rotl32(x[15] + x[11], 7); x[7] ^= rotl32(x[3] + x[15], 9);
    x[11] ^= rotl32(x[7] + x[3], 13); x[15] ^= rotl32(x[11] + x[7], 18);
    x[1] ^= rotl32(x[0] + x[3], 7);   x[2] ^= rotl32(x[1] + x[0], 9);
    x[3] ^= rotl32(x[2] + x[1], 13);  x[0] ^= rotl32(x[3] + x[2], 18);
    x[6] ^= rotl32(x[5] + x[4], 7);   x[7] ^= rotl32(x[6] + x[5], 9);
    x[4] ^= rotl32(x[7] + x[6], 13);  x[5] ^= rotl32(x[4] + x[7], 18);
    x[11] ^= rotl32(x[10] + x[9], 7); x[8] ^= rotl32(x[11] + x[10], 9);
    x[9] ^= rotl32(x[8] + x[11], 13); x[10] ^= rotl32(x[9] + x[8], 18);
    x[12] ^= rotl32(x[15] + x[14], 7); x[13] ^= rotl32(x[12] + x[15], 9);
    x[14] ^= rotl32(x[13] + x[12], 13); x[15] ^= rotl32(x[14] + x[13], 18);
  }
  for (int i = 0; i < 16; i++) B[i] += x[i];
}

// BlockMix (RFC 7914 §4): B (2r 64-byte blocks) -> Y, even blocks first, then odd ones.
static void blockmix(const uint32_t *B, uint32_t *Y, size_t r) {
  uint32_t X[16];
  memcpy(X, &B[(2 * r - 1) * 16], 64);
  for (size_t i = 0; i < 2 * r; i++) {
    for (int k = 0; k < 16; k++) X[k] ^= B[i * 16 + k];
    salsa20_8(X);
    memcpy(&Y[((i >> 1) + (i & 1) * r) * 16], X, 64);
  }
}

static void romix(uint32_t *X, uint32_t *Y, uint32_t *V, uint64_t N, size_t r) {
  size_t words = 32 * r;
  for (uint64_t i = 0; i < N; i++) {
    memcpy(&V[i * words], X, words * sizeof(uint32_t));
    blockmix(X, Y, r);
    memcpy(X, Y, words * sizeof(uint32_t));
  }
  for (uint64_t i = 0; i < N; i++) {
    uint64_t j = X[(2 * r - 1) * 16] & (N - 1);
    for (size_t k = 0; k < words; k++) X[k] ^= V[j * words + k];
    blockmix(X, Y, r);
    memcpy(X, Y, words * sizeof(uint32_t));
  }
}

static void scrypt_execute(napi_env env, void *data) {
  (void)env;
  scrypt_job *job = data;
  size_t words = 32 * job->r;
  // V in its own mapping, with huge pages where the system gives them (see above).
  size_t vbytes = words * sizeof(uint32_t) * job->N;
  uint32_t *V = mmap(NULL, vbytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (V == MAP_FAILED) { job->failed = 1; return; }
#ifdef MADV_HUGEPAGE
  madvise(V, vbytes, MADV_HUGEPAGE);
#endif
  uint32_t *Y = malloc(words * sizeof(uint32_t));
  if (!Y) { munmap(V, vbytes); job->failed = 1; return; }
  for (size_t k = 0; k < job->lanes; k++) romix(&job->X[k * words], Y, V, job->N, job->r);
  munmap(V, vbytes);
  free(Y);
}

static void scrypt_complete(napi_env env, napi_status status, void *data) {
  scrypt_job *job = data;
  napi_value r;
  if (status != napi_ok || job->failed) {
    napi_value msg;
    napi_create_string_utf8(env, job->failed ? "scrypt: out of memory" : "scrypt: the work was cancelled", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &r);
    napi_reject_deferred(env, job->deferred, r);
  } else {
    size_t n = 128 * job->r * job->lanes;
    void *out;
    napi_value ab;
    napi_create_arraybuffer(env, n, &out, &ab);
    uint8_t *o = out;
    for (size_t k = 0; k < n / 4; k++) {
      uint32_t v = job->X[k];
      o[4 * k] = v; o[4 * k + 1] = v >> 8; o[4 * k + 2] = v >> 16; o[4 * k + 3] = v >> 24;
    }
    napi_create_typedarray(env, napi_uint8_array, n, ab, 0, &r);
    napi_resolve_deferred(env, job->deferred, r);
  }
  napi_delete_async_work(env, job->work);
  free(job->X);
  free(job);
}

static napi_value js_scrypt_lanes(napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3], promise, name;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *src; size_t len; int64_t N, r;
  if (argc < 3 || !bytes_arg(env, argv[0], &src, &len) || napi_get_value_int64(env, argv[1], &N) != napi_ok || napi_get_value_int64(env, argv[2], &r) != napi_ok ||
      r < 1 || r > 32 || N < 2 || N > (1 << 22) || (N & (N - 1)) != 0 || len == 0 || len % (size_t)(128 * r) != 0) {
    return throw_msg(env, "scryptLanes(Uint8Array of k blocks of 128*r bytes, N a power of two up to 2^22, r up to 32)");
  }
  scrypt_job *job = calloc(1, sizeof *job);
  uint32_t *X = malloc(len);
  if (!job || !X) { free(job); free(X); return throw_msg(env, "out of memory"); }
  const uint8_t *b = src;
  for (size_t k = 0; k < len / 4; k++) X[k] = (uint32_t)b[4 * k] | ((uint32_t)b[4 * k + 1] << 8) | ((uint32_t)b[4 * k + 2] << 16) | ((uint32_t)b[4 * k + 3] << 24);
  job->X = X; job->lanes = len / (size_t)(128 * r); job->N = (uint64_t)N; job->r = (size_t)r;
  napi_create_promise(env, &job->deferred, &promise);
  napi_create_string_utf8(env, "lifeboat:scrypt", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, scrypt_execute, scrypt_complete, job, &job->work);
  napi_queue_async_work(env, job->work);
  return promise;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "llistxattr", NULL, js_llistxattr, NULL, NULL, NULL, napi_default, NULL },
    { "lgetxattr", NULL, js_lgetxattr, NULL, NULL, NULL, napi_default, NULL },
    { "lsetxattr", NULL, js_lsetxattr, NULL, NULL, NULL, napi_default, NULL },
    { "mknod", NULL, js_mknod, NULL, NULL, NULL, napi_default, NULL },
    { "lutimens", NULL, js_lutimens, NULL, NULL, NULL, napi_default, NULL },
    { "holes", NULL, js_holes, NULL, NULL, NULL, napi_default, NULL },
    { "lstatAt", NULL, js_lstat_at, NULL, NULL, NULL, napi_default, NULL },
    { "zstdCodec", NULL, js_zstd_codec, NULL, NULL, NULL, napi_default, NULL },
    { "zstdCompress", NULL, js_zstd_compress, NULL, NULL, NULL, napi_default, NULL },
    { "keepAllocatorLean", NULL, js_keep_allocator_lean, NULL, NULL, NULL, napi_default, NULL },
    { "zstdCompressInto", NULL, js_zstd_compress_into, NULL, NULL, NULL, napi_default, NULL },
    { "release", NULL, js_release, NULL, NULL, NULL, napi_default, NULL },
    { "forgetPages", NULL, js_forget_pages, NULL, NULL, NULL, napi_default, NULL },
    { "adviseCache", NULL, js_advise_cache, NULL, NULL, NULL, napi_default, NULL },
    { "zstdDecompress", NULL, js_zstd_decompress, NULL, NULL, NULL, napi_default, NULL },
    { "zstdDecompressInto", NULL, js_zstd_decompress_into, NULL, NULL, NULL, napi_default, NULL },
    { "scryptLanes", NULL, js_scrypt_lanes, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
