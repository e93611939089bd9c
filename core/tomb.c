/*
 * tomb.c - tombstones as a set, the tombstone file, and its export
 * (ck_tombstones_export). The layout is in tomb.h and
 * docs/storage-format.md; what the tags reveal is in SECURITY.md.
 */
#include "tomb.h"

#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char TOMBFILE_KDF_CONTEXT[crypto_kdf_CONTEXTBYTES] = {'c', 'k', 't', 'o',
                                                                   'm', 'b', 'f', '1'};
#define TOMBFILE_KDF_ID 1

_Static_assert(sizeof CK_TOMBFILE_MAGIC - 1 == 8, "tombstone file magic");

/* ------------------------------------------------------------------------ */
/* The set                                                                   */
/* ------------------------------------------------------------------------ */

int ck_tombset__add(ck_tombset *s, const uint8_t tag[CK_TOMB_BYTES], int64_t at)
{
    if (s->n == s->cap) {
        if (s->cap >= CK_TOMBSET_MAX)
            return CK_ELIMIT;
        size_t cap = s->cap ? s->cap * 2 : 256, bytes;
        if (cap > CK_TOMBSET_MAX)
            cap = CK_TOMBSET_MAX;
        if (ck_mul_overflows(cap, sizeof *s->v, &bytes))
            return CK_ELIMIT;
        ck_tomb *v = ck_mem__realloc(s->v, bytes);
        if (v == NULL)
            return CK_ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    memcpy(s->v[s->n].tag, tag, CK_TOMB_BYTES);
    s->v[s->n].at = at;
    s->n++;
    return CK_OK;
}

static int cmp_tomb(const void *a, const void *b)
{
    return memcmp(((const ck_tomb *)a)->tag, ((const ck_tomb *)b)->tag, CK_TOMB_BYTES);
}

void ck_tombset__seal(ck_tombset *s)
{
    if (s->n < 2)
        return;
    qsort(s->v, s->n, sizeof *s->v, cmp_tomb);
    size_t out = 0;
    for (size_t i = 1; i < s->n; i++) {
        if (memcmp(s->v[i].tag, s->v[out].tag, CK_TOMB_BYTES) == 0) {
            if (s->v[i].at > s->v[out].at)
                s->v[out].at = s->v[i].at;
        } else {
            s->v[++out] = s->v[i];
        }
    }
    s->n = out + 1;
}

const ck_tomb *ck_tombset__find(const ck_tombset *s, const uint8_t tag[CK_TOMB_BYTES])
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(s->v[mid].tag, tag, CK_TOMB_BYTES);
        if (c == 0)
            return &s->v[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

void ck_tombset__free(ck_tombset *s)
{
    ck_mem__free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

int ck_tombset__load(ck_tombset *s, ck_store *st, uint64_t *count)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    uint64_t seen = 0;
    int rc;
    if (count != NULL)
        *count = 0;
    CK_GUARD(ck_env__read_begin(st, &st->data, &txn));
    int mrc = mdb_cursor_open(txn, st->dbi_tombstones, &cur);
    CK_ENSURE(mrc == 0, ck_err__mdb(st, mrc, "cannot read the tombstones"));
    MDB_val k, v;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        CK_ENSURE(k.mv_size == CK_TOMB_BYTES && v.mv_size == 8,
                  ck_err__set(st, CK_EINTEGRITY, "a tombstone of the store is malformed"));
        rc = ck_tombset__add(s, k.mv_data, (int64_t)ck_be64_get(v.mv_data));
        CK_ENSURE(
            rc == CK_OK,
            ck_err__set(st, rc, "%s", rc == CK_ENOMEM ? "out of memory" : "too many tombstones"));
        seen++;
    }
    CK_ENSURE(mrc == MDB_NOTFOUND, ck_err__mdb(st, mrc, "cannot read the tombstones"));
    if (count != NULL)
        *count = seen;
    rc = CK_OK;
cleanup:
    if (cur != NULL)
        mdb_cursor_close(cur);
    ck_env__read_end(&st->data, txn);
    return rc;
}

static int store_txn(ck_store *st, MDB_txn *txn, void *ctx)
{
    const ck_tombset *s = ctx;
    for (size_t i = 0; i < s->n; i++) {
        uint8_t when[8];
        MDB_val k = {CK_TOMB_BYTES, s->v[i].tag}, v;
        int mrc = mdb_get(txn, st->dbi_tombstones, &k, &v);
        if (mrc == 0 && v.mv_size == 8 && (int64_t)ck_be64_get(v.mv_data) >= s->v[i].at)
            continue;
        if (mrc != 0 && mrc != MDB_NOTFOUND)
            return ck_err__mdb(st, mrc, "cannot read the tombstones");
        ck_be64_put(when, (uint64_t)s->v[i].at);
        v.mv_size = sizeof when;
        v.mv_data = when;
        mrc = ck_mdb__put(txn, st->dbi_tombstones, &k, &v, 0);
        if (mrc != 0)
            return ck_err__mdb(st, mrc, "cannot write a tombstone");
    }
    return CK_OK;
}

int ck_tombset__store(ck_store *st, const ck_tombset *s)
{
    return ck_env__write(st, &st->data, store_txn, (void *)s);
}

/* ------------------------------------------------------------------------ */
/* The file                                                                  */
/* ------------------------------------------------------------------------ */

int ck_tombfile__parse(ck_tombfile *out, const uint8_t *p, size_t n)
{
    memset(out, 0, sizeof *out);
    if (n < CK_TOMBFILE_HEADER_BYTES + CK_TOMBFILE_MAC_BYTES ||
        memcmp(p, CK_TOMBFILE_MAGIC, 8) != 0)
        return CK_EFORMAT;
    uint32_t version = ck_be32_get(p + 8);
    if (version == 0)
        return CK_EFORMAT;
    if (version > CK_TOMBFILE_VERSION) {
        out->version = version;
        return CK_EVERSION;
    }
    uint64_t count = ck_be64_get(p + 12 + CK_STORE_ID_BYTES);
    size_t body, total;
    if (count > CK_TOMBSET_MAX || ck_mul_overflows((size_t)count, CK_TOMBFILE_ENTRY_BYTES, &body) ||
        ck_add_overflows(body, CK_TOMBFILE_HEADER_BYTES + CK_TOMBFILE_MAC_BYTES, &total) ||
        total != n)
        return CK_EFORMAT;
    const uint8_t *e = p + CK_TOMBFILE_HEADER_BYTES;
    for (uint64_t i = 1; i < count; i++) {
        const uint8_t *prev = e + (i - 1) * CK_TOMBFILE_ENTRY_BYTES;
        if (memcmp(prev, prev + CK_TOMBFILE_ENTRY_BYTES, CK_TOMB_BYTES) >= 0)
            return CK_EFORMAT;
    }
    out->version = version;
    memcpy(out->store_id, p + 12, CK_STORE_ID_BYTES);
    out->count = count;
    out->entries = e;
    return CK_OK;
}

void ck_tombfile__entry(ck_tomb *out, const ck_tombfile *f, uint64_t i)
{
    const uint8_t *e = f->entries + i * CK_TOMBFILE_ENTRY_BYTES;
    memcpy(out->tag, e, CK_TOMB_BYTES);
    out->at = (int64_t)ck_be64_get(e + CK_TOMB_BYTES);
}

void ck_tombfile__mac_key(unsigned char out[CK_KEY_BYTES], const ck_store *st)
{
    crypto_kdf_derive_from_key(out, CK_KEY_BYTES, TOMBFILE_KDF_ID, TOMBFILE_KDF_CONTEXT,
                               ck_store__subkey(st, CK_SUBKEY_TOMBSTONE));
}

int ck_tombfile__verify_mac(const uint8_t *p, size_t n, const unsigned char key[CK_KEY_BYTES])
{
    uint8_t mac[CK_TOMBFILE_MAC_BYTES];
    if (n < CK_TOMBFILE_MAC_BYTES)
        return CK_EINTEGRITY;
    ck_crypto__mac(mac, sizeof mac, p, n - CK_TOMBFILE_MAC_BYTES, key);
    return sodium_memcmp(mac, p + n - CK_TOMBFILE_MAC_BYTES, sizeof mac) == 0 ? CK_OK
                                                                              : CK_EINTEGRITY;
}

int ck_tombfile__serialize(ck_buf *out, const uint8_t store_id[CK_STORE_ID_BYTES],
                           const ck_tombset *s, const unsigned char key[CK_KEY_BYTES])
{
    uint8_t hdr[CK_TOMBFILE_HEADER_BYTES], mac[CK_TOMBFILE_MAC_BYTES];
    size_t body, total;
    if (s->n > CK_TOMBSET_MAX || ck_mul_overflows(s->n, CK_TOMBFILE_ENTRY_BYTES, &body) ||
        ck_add_overflows(body, sizeof hdr + sizeof mac, &total))
        return CK_ELIMIT;
    ck_buf__reset(out);
    CK_TRY(ck_buf__reserve(out, total));
    memcpy(hdr, CK_TOMBFILE_MAGIC, 8);
    ck_be32_put(hdr + 8, CK_TOMBFILE_VERSION);
    memcpy(hdr + 12, store_id, CK_STORE_ID_BYTES);
    ck_be64_put(hdr + 12 + CK_STORE_ID_BYTES, (uint64_t)s->n);
    CK_TRY(ck_buf__append(out, hdr, sizeof hdr));
    for (size_t i = 0; i < s->n; i++) {
        uint8_t e[CK_TOMBFILE_ENTRY_BYTES];
        memcpy(e, s->v[i].tag, CK_TOMB_BYTES);
        ck_be64_put(e + CK_TOMB_BYTES, (uint64_t)s->v[i].at);
        CK_TRY(ck_buf__append(out, e, sizeof e));
    }
    ck_crypto__mac(mac, sizeof mac, out->p, out->len, key);
    return ck_buf__append(out, mac, sizeof mac);
}

int ck_tombfile__read(ck_store *st, ck_tombset *s, const char *path, uint64_t *count)
{
    int rc;
    int fd = -1;
    ck_buf bytes = CK_BUF_INIT;
    ck_tombfile f;
    unsigned char *key = NULL;
    const size_t max =
        CK_TOMBFILE_HEADER_BYTES + CK_TOMBSET_MAX * CK_TOMBFILE_ENTRY_BYTES + CK_TOMBFILE_MAC_BYTES;
    *count = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = errno == ENOENT ? ck_err__set(st, CK_ENOTFOUND, "no tombstone file %s", path)
                             : ck_err__errno(st, errno, "cannot open the tombstone file", path);
        goto cleanup;
    }
    struct stat sb;
    CK_ENSURE(fstat(fd, &sb) == 0,
              ck_err__errno(st, errno, "cannot stat the tombstone file", path));
    CK_ENSURE(S_ISREG(sb.st_mode), ck_err__set(st, CK_EFORMAT, "%s is not a regular file", path));
    CK_ENSURE((uint64_t)sb.st_size <= max,
              ck_err__set(st, CK_EFORMAT, "%s is too large to be a tombstone file", path));
    CK_GUARD(ck_buf__reserve(&bytes, (size_t)sb.st_size + 1));
    for (;;) {
        if (bytes.len == bytes.cap)
            CK_GUARD(ck_buf__reserve(&bytes, 4096));
        ssize_t n = read(fd, bytes.p + bytes.len, bytes.cap - bytes.len);
        if (n < 0 && errno == EINTR)
            continue;
        CK_ENSURE(n >= 0, ck_err__errno(st, errno, "cannot read the tombstone file", path));
        if (n == 0)
            break;
        bytes.len += (size_t)n;
        CK_ENSURE(bytes.len <= max,
                  ck_err__set(st, CK_EFORMAT, "%s is too large to be a tombstone file", path));
    }
    /* Authenticity first, so that any change to an authentic file - its
     * version included - reads as what it is: a modified file. */
    CK_ENSURE(bytes.len >= CK_TOMBFILE_HEADER_BYTES + CK_TOMBFILE_MAC_BYTES &&
                  memcmp(bytes.p, CK_TOMBFILE_MAGIC, 8) == 0,
              ck_err__set(st, CK_EFORMAT, "%s is not a tombstone file, or it is truncated", path));
    CK_ENSURE(sodium_memcmp(bytes.p + 12, st->store_id, CK_STORE_ID_BYTES) == 0,
              ck_err__set(st, CK_EINTEGRITY,
                          "tombstone file %s belongs to another store: its tags cannot be "
                          "compared with this store's",
                          path));
    key = ck_store__key_take(st);
    CK_ENSURE(key != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
    ck_tombfile__mac_key(key, st);
    CK_ENSURE(ck_tombfile__verify_mac(bytes.p, bytes.len, key) == CK_OK,
              ck_err__set(st, CK_EINTEGRITY,
                          "tombstone file %s was modified, truncated or forged (MAC mismatch)",
                          path));
    rc = ck_tombfile__parse(&f, bytes.p, bytes.len);
    CK_ENSURE(rc != CK_EVERSION, ck_err__set(st, CK_EVERSION,
                                             "tombstone file %s has version %u; this ckstore "
                                             "reads version %d",
                                             path, f.version, CK_TOMBFILE_VERSION));
    CK_ENSURE(rc == CK_OK, ck_err__set(st, CK_EFORMAT, "tombstone file %s is malformed", path));
    for (uint64_t i = 0; i < f.count; i++) {
        ck_tomb t;
        ck_tombfile__entry(&t, &f, i);
        rc = ck_tombset__add(s, t.tag, t.at);
        CK_ENSURE(
            rc == CK_OK,
            ck_err__set(st, rc, "%s", rc == CK_ENOMEM ? "out of memory" : "too many tombstones"));
    }
    *count = f.count;
    rc = CK_OK;
cleanup:
    ck_store__key_give(st, key);
    if (fd >= 0)
        close(fd);
    ck_buf__free(&bytes);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Export                                                                    */
/* ------------------------------------------------------------------------ */

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        if (ck_fault__hit("write")) {
            errno = EIO;
            return -1;
        }
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* "dir" of "dir/name" ("." for a bare name) in a new block. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return ck_mem__strndup(".", 1);
    return ck_mem__strndup(path, slash == path ? 1 : (size_t)(slash - path));
}

/* Replace `path` with `n` bytes atomically: a temporary file beside it,
 * fsync, rename, fsync of the directory. */
static int write_file_atomic(ck_store *st, const char *path, const uint8_t *p, size_t n)
{
    int rc;
    int fd = -1;
    size_t plen = strlen(path);
    char *tmp = ck_mem__malloc(plen + sizeof ".tmp-XXXXXX");
    char *dir = dir_of(path);
    CK_ENSURE(tmp != NULL && dir != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp-XXXXXX", sizeof ".tmp-XXXXXX");
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        rc = ck_err__errno(st, errno, "cannot create the tombstone file", path);
        tmp[0] = '\0';
        goto cleanup;
    }
    CK_ENSURE(fchmod(fd, 0600) == 0 && write_all(fd, p, n) == 0,
              ck_err__errno(st, errno, "cannot write the tombstone file", path));
    int src = ck_fault__hit("fsync") ? (errno = EIO, -1) : fsync(fd);
    CK_ENSURE(src == 0, ck_err__errno(st, errno, "cannot fsync the tombstone file", path));
    close(fd);
    fd = -1;
    CK_ENSURE(rename(tmp, path) == 0,
              ck_err__errno(st, errno, "cannot put the tombstone file in place", path));
    tmp[0] = '\0'; /* renamed: nothing to remove */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int frc = dfd >= 0 ? fsync(dfd) : -1, ferr = errno;
    if (dfd >= 0)
        close(dfd);
    CK_ENSURE(frc == 0, ck_err__errno(st, ferr, "cannot fsync the directory of", path));
    rc = CK_OK;
cleanup:
    if (fd >= 0)
        close(fd);
    if (tmp != NULL && tmp[0] != '\0')
        unlink(tmp);
    ck_mem__free(tmp);
    ck_mem__free(dir);
    return rc;
}

CK_EXPORT int ck_tombstones_export(uint64_t *count, ck_store *st, const char *path,
                                   const char *actor)
{
    if (count != NULL)
        *count = 0;
    if (st == NULL)
        return CK_EINVAL;
    if (path == NULL || path[0] == '\0' || actor == NULL)
        return ck_err__set(st, CK_EINVAL, "a tombstone export needs a file and an actor");
    if ((st->flags & CK_OPEN_RDONLY) != 0)
        return ck_err__set(st, CK_EDENIED, "the store is open read-only");
    int rc;
    ck_tombset s = CK_TOMBSET_INIT;
    ck_buf bytes = CK_BUF_INIT;
    unsigned char *key = NULL;
    uint64_t n = 0;
    CK_GUARD(ck_tombset__load(&s, st, &n));
    ck_tombset__seal(&s);
    key = ck_store__key_take(st);
    CK_ENSURE(key != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
    ck_tombfile__mac_key(key, st);
    rc = ck_tombfile__serialize(&bytes, st->store_id, &s, key);
    CK_ENSURE(rc == CK_OK, ck_err__set(st, rc, "cannot make the tombstone file"));
    /* Audited (strictly) before the file exists. */
    ck_audit_detail_item d[] = {{"tombstones", NULL, (int64_t)s.n}};
    ck_audit_entry e = CK_AUDIT_ENTRY_INIT;
    e.actor = actor;
    e.action = "tombstones_export";
    e.detail = d;
    e.n_detail = CK_ARRAY_LEN(d);
    CK_GUARD(ck_audit__append(st, &e, true, NULL, NULL));
    CK_GUARD(write_file_atomic(st, path, bytes.p, bytes.len));
    if (count != NULL)
        *count = s.n;
    rc = CK_OK;
cleanup:
    ck_store__key_give(st, key);
    ck_buf__free(&bytes);
    ck_tombset__free(&s);
    return rc;
}
