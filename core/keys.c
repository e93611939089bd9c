/*
 * keys.c - key files and the key-slot file.
 *
 * The root key never reaches a disk in clear. It is wrapped, once per slot,
 * by a key derived from a secret the user holds: a key file (32 random
 * bytes) or a passphrase (Argon2id). The slot file is read and checked
 * before any LMDB environment is opened, so a wrong key opens nothing and
 * writes nothing.
 *
 * File layout (all integers big-endian):
 *
 *   "CKSTKEYS" | u32 body length | body (msgpack map) | MAC (32 bytes)
 *
 * body = { "format": u32, "store_id": bin 16, "slots": [slot, ...] }
 * slot = { "type": 1 (key file) | 2 (passphrase), "nonce": bin 24,
 *          "wrapped": bin 48, and for passphrases "salt": bin 16,
 *          "ops": u64, "mem": u64, "alg": 2 (Argon2id v1.3) }
 *
 * MAC = BLAKE2b-256 under the META subkey over everything before it. It
 * can only be checked once a slot has been opened; the wrapped keys are
 * authenticated on their own by their AEAD tag, with the slot's parameters
 * and the store id as associated data.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char MAGIC[8] = {'C', 'K', 'S', 'T', 'K', 'E', 'Y', 'S'};
#define HEADER_BYTES   12u
#define MAC_BYTES      32u
#define BODY_MAX       (64u * 1024u)
#define ALG_ARGON2ID13 2u
/* Refuse hostile Argon2 parameters before spending memory or time on them. */
#define OPS_MAX 32u
#define MEM_MAX (4ull << 30)

/* ------------------------------------------------------------------------ */
/* Parsing and serialising                                                  */
/* ------------------------------------------------------------------------ */

static int parse_bin(ck_mp *r, uint8_t *out, size_t want)
{
    const uint8_t *b;
    uint32_t n;
    CK_TRY(ck_mp__bin(r, &b, &n));
    if (n != want)
        return CK_EFORMAT;
    memcpy(out, b, want);
    return CK_OK;
}

static int parse_slot(ck_slot *s, ck_mp *r)
{
    uint32_t n;
    bool have_type = false, have_nonce = false, have_wrapped = false;
    bool have_salt = false, have_ops = false, have_mem = false;
    CK_TRY(ck_mp__map(r, &n));
    memset(s, 0, sizeof *s);
    for (uint32_t i = 0; i < n; i++) {
        const char *k;
        uint32_t kl;
        CK_TRY(ck_mp__str(r, &k, &kl));
        if (ck_mp__str_eq(k, kl, "type")) {
            uint32_t t;
            CK_TRY(ck_mp__u32(r, &t));
            if (t != CK_SLOT_KEY_FILE && t != CK_SLOT_PASSPHRASE)
                return CK_EFORMAT;
            s->type = (uint8_t)t;
            have_type = true;
        } else if (ck_mp__str_eq(k, kl, "nonce")) {
            CK_TRY(parse_bin(r, s->nonce, sizeof s->nonce));
            have_nonce = true;
        } else if (ck_mp__str_eq(k, kl, "wrapped")) {
            CK_TRY(parse_bin(r, s->wrapped, sizeof s->wrapped));
            have_wrapped = true;
        } else if (ck_mp__str_eq(k, kl, "salt")) {
            CK_TRY(parse_bin(r, s->salt, sizeof s->salt));
            have_salt = true;
        } else if (ck_mp__str_eq(k, kl, "ops")) {
            CK_TRY(ck_mp__u64(r, &s->opslimit));
            have_ops = true;
        } else if (ck_mp__str_eq(k, kl, "mem")) {
            CK_TRY(ck_mp__u64(r, &s->memlimit));
            have_mem = true;
        } else if (ck_mp__str_eq(k, kl, "alg")) {
            uint32_t alg;
            CK_TRY(ck_mp__u32(r, &alg));
            if (alg != ALG_ARGON2ID13)
                return CK_EFORMAT;
        } else {
            CK_TRY(ck_mp__skip(r));
        }
    }
    if (!have_type || !have_nonce || !have_wrapped)
        return CK_EFORMAT;
    if (s->type == CK_SLOT_PASSPHRASE) {
        if (!have_salt || !have_ops || !have_mem)
            return CK_EFORMAT;
        if (s->opslimit < crypto_pwhash_OPSLIMIT_MIN || s->opslimit > OPS_MAX ||
            s->memlimit < crypto_pwhash_MEMLIMIT_MIN || s->memlimit > MEM_MAX)
            return CK_EFORMAT;
    }
    return CK_OK;
}

int ck_keys__parse(ck_slotfile *out, const uint8_t *p, size_t n)
{
    memset(out, 0, sizeof *out);
    if (n < HEADER_BYTES + MAC_BYTES || memcmp(p, MAGIC, sizeof MAGIC) != 0)
        return CK_EFORMAT;
    uint32_t body_len = ck_be32_get(p + 8);
    if (body_len > BODY_MAX || (size_t)body_len != n - HEADER_BYTES - MAC_BYTES)
        return CK_EFORMAT;

    ck_mp r;
    ck_mp__init(&r, p + HEADER_BYTES, body_len);
    uint32_t fields;
    bool have_format = false, have_id = false, have_slots = false;
    CK_TRY(ck_mp__map(&r, &fields));
    for (uint32_t i = 0; i < fields; i++) {
        const char *k;
        uint32_t kl;
        CK_TRY(ck_mp__str(&r, &k, &kl));
        if (ck_mp__str_eq(k, kl, "format")) {
            CK_TRY(ck_mp__u32(&r, &out->format));
            have_format = true;
            /* A newer format may lay out the rest differently: stop here. */
            if (out->format > CK_FORMAT_VERSION)
                return CK_EVERSION;
            if (out->format == 0)
                return CK_EFORMAT;
        } else if (ck_mp__str_eq(k, kl, "store_id")) {
            CK_TRY(parse_bin(&r, out->store_id, sizeof out->store_id));
            have_id = true;
        } else if (ck_mp__str_eq(k, kl, "slots")) {
            uint32_t ns;
            CK_TRY(ck_mp__array(&r, &ns));
            if (ns == 0 || ns > CK_ARRAY_LEN(out->slots))
                return CK_EFORMAT;
            for (uint32_t j = 0; j < ns; j++) {
                CK_TRY(parse_slot(&out->slots[j], &r));
                for (uint32_t m = 0; m < j; m++)
                    if (out->slots[m].type == out->slots[j].type)
                        return CK_EFORMAT; /* at most one slot per type */
            }
            out->nslots = ns;
            have_slots = true;
        } else {
            CK_TRY(ck_mp__skip(&r));
        }
    }
    if (!have_format || !have_id || !have_slots || ck_mp__left(&r) != 0)
        return CK_EFORMAT;
    return CK_OK;
}

int ck_keys__verify_mac(const uint8_t *p, size_t n, const unsigned char meta_key[CK_KEY_BYTES])
{
    uint8_t mac[MAC_BYTES];
    if (n < HEADER_BYTES + MAC_BYTES)
        return CK_EFORMAT;
    ck_crypto__mac(mac, sizeof mac, p, n - MAC_BYTES, meta_key);
    int ok = sodium_memcmp(mac, p + n - MAC_BYTES, MAC_BYTES) == 0;
    return ok ? CK_OK : CK_EINTEGRITY;
}

int ck_keys__serialize(ck_buf *out, const ck_slotfile *sf,
                       const unsigned char meta_key[CK_KEY_BYTES])
{
    int rc;
    uint8_t hdr[HEADER_BYTES] = {0};
    ck_buf__reset(out);
    memcpy(hdr, MAGIC, sizeof MAGIC);
    CK_GUARD(ck_buf__append(out, hdr, sizeof hdr)); /* length patched below */

    ck_mp_writer w;
    ck_mp_writer__init(&w, out);
    ck_mp_writer__map(&w, 3);
    ck_mp_writer__cstr(&w, "format");
    ck_mp_writer__u64(&w, sf->format);
    ck_mp_writer__cstr(&w, "store_id");
    ck_mp_writer__bin(&w, sf->store_id, sizeof sf->store_id);
    ck_mp_writer__cstr(&w, "slots");
    ck_mp_writer__array(&w, sf->nslots);
    for (unsigned i = 0; i < sf->nslots; i++) {
        const ck_slot *s = &sf->slots[i];
        bool pass = s->type == CK_SLOT_PASSPHRASE;
        ck_mp_writer__map(&w, pass ? 7u : 3u);
        ck_mp_writer__cstr(&w, "type");
        ck_mp_writer__u64(&w, s->type);
        ck_mp_writer__cstr(&w, "nonce");
        ck_mp_writer__bin(&w, s->nonce, sizeof s->nonce);
        ck_mp_writer__cstr(&w, "wrapped");
        ck_mp_writer__bin(&w, s->wrapped, sizeof s->wrapped);
        if (pass) {
            ck_mp_writer__cstr(&w, "salt");
            ck_mp_writer__bin(&w, s->salt, sizeof s->salt);
            ck_mp_writer__cstr(&w, "ops");
            ck_mp_writer__u64(&w, s->opslimit);
            ck_mp_writer__cstr(&w, "mem");
            ck_mp_writer__u64(&w, s->memlimit);
            ck_mp_writer__cstr(&w, "alg");
            ck_mp_writer__u64(&w, ALG_ARGON2ID13);
        }
    }
    CK_GUARD(w.rc);
    size_t body = out->len - HEADER_BYTES;
    CK_ENSURE(body <= BODY_MAX, CK_ELIMIT);
    ck_be32_put(out->p + 8, (uint32_t)body);
    uint8_t mac[MAC_BYTES];
    ck_crypto__mac(mac, sizeof mac, out->p, out->len, meta_key);
    CK_GUARD(ck_buf__append(out, mac, sizeof mac));
    rc = CK_OK;
cleanup:
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Wrapping                                                                 */
/* ------------------------------------------------------------------------ */

/* Associated data of a slot: binds the wrapped key to its store and to the
 * slot's own parameters, so a slot cannot be moved or its cost lowered. */
#define SLOT_AAD_MAX (8 + CK_STORE_ID_BYTES + 1 + crypto_pwhash_SALTBYTES + 16)

static size_t slot_aad(uint8_t aad[SLOT_AAD_MAX], const ck_slot *s,
                       const uint8_t store_id[CK_STORE_ID_BYTES])
{
    size_t n = 0;
    memcpy(aad, "ckslot1", 8);
    n += 8;
    memcpy(aad + n, store_id, CK_STORE_ID_BYTES);
    n += CK_STORE_ID_BYTES;
    aad[n++] = s->type;
    if (s->type == CK_SLOT_PASSPHRASE) {
        memcpy(aad + n, s->salt, sizeof s->salt);
        n += sizeof s->salt;
        ck_be64_put(aad + n, s->opslimit);
        ck_be64_put(aad + n + 8, s->memlimit);
        n += 16;
    }
    return n;
}

static void keyfile_kek(unsigned char kek[CK_KEY_BYTES], const uint8_t store_id[CK_STORE_ID_BYTES],
                        const unsigned char kf[CK_KEY_FILE_BYTES])
{
    uint8_t msg[21 + CK_STORE_ID_BYTES];
    memcpy(msg, "ckstore key-file slot", 21);
    memcpy(msg + 21, store_id, CK_STORE_ID_BYTES);
    crypto_generichash(kek, CK_KEY_BYTES, msg, sizeof msg, kf, CK_KEY_FILE_BYTES);
}

/* Seal root into the slot under kek. */
static void wrap(ck_slot *s, const uint8_t store_id[CK_STORE_ID_BYTES],
                 const unsigned char root[CK_KEY_BYTES], const unsigned char kek[CK_KEY_BYTES])
{
    uint8_t aad[SLOT_AAD_MAX];
    size_t aad_len = slot_aad(aad, s, store_id);
    randombytes_buf(s->nonce, sizeof s->nonce);
    crypto_aead_xchacha20poly1305_ietf_encrypt(s->wrapped, NULL, root, CK_KEY_BYTES, aad, aad_len,
                                               NULL, s->nonce, kek);
}

static int unwrap(unsigned char root[CK_KEY_BYTES], const ck_slot *s,
                  const uint8_t store_id[CK_STORE_ID_BYTES], const unsigned char kek[CK_KEY_BYTES])
{
    uint8_t aad[SLOT_AAD_MAX];
    size_t aad_len = slot_aad(aad, s, store_id);
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(root, NULL, NULL, s->wrapped, sizeof s->wrapped,
                                                   aad, aad_len, s->nonce, kek) != 0)
        return CK_EKEY;
    return CK_OK;
}

int ck_keys__wrap_keyfile(ck_slot *s, const uint8_t store_id[CK_STORE_ID_BYTES],
                          const unsigned char root[CK_KEY_BYTES],
                          const unsigned char kf[CK_KEY_FILE_BYTES])
{
    unsigned char *kek = ck_mem__smalloc(CK_KEY_BYTES);
    if (kek == NULL)
        return CK_ENOMEM;
    memset(s, 0, sizeof *s);
    s->type = CK_SLOT_KEY_FILE;
    keyfile_kek(kek, store_id, kf);
    wrap(s, store_id, root, kek);
    ck_mem__sfree(kek);
    return CK_OK;
}

int ck_keys__unwrap_keyfile(unsigned char root[CK_KEY_BYTES], const ck_slot *s,
                            const uint8_t store_id[CK_STORE_ID_BYTES],
                            const unsigned char kf[CK_KEY_FILE_BYTES])
{
    unsigned char *kek = ck_mem__smalloc(CK_KEY_BYTES);
    if (kek == NULL)
        return CK_ENOMEM;
    keyfile_kek(kek, store_id, kf);
    int rc = unwrap(root, s, store_id, kek);
    ck_mem__sfree(kek);
    return rc;
}

static void cost_limits(ck_kdf_cost cost, uint64_t *ops, uint64_t *mem)
{
    switch (cost) {
    case CK_KDF_MIN:
        *ops = crypto_pwhash_OPSLIMIT_MIN;
        *mem = crypto_pwhash_MEMLIMIT_MIN;
        break;
    case CK_KDF_INTERACTIVE:
        *ops = crypto_pwhash_OPSLIMIT_INTERACTIVE;
        *mem = crypto_pwhash_MEMLIMIT_INTERACTIVE;
        break;
    case CK_KDF_SENSITIVE:
        *ops = crypto_pwhash_OPSLIMIT_SENSITIVE;
        *mem = crypto_pwhash_MEMLIMIT_SENSITIVE;
        break;
    case CK_KDF_DEFAULT:
    case CK_KDF_MODERATE:
    default:
        *ops = crypto_pwhash_OPSLIMIT_MODERATE;
        *mem = crypto_pwhash_MEMLIMIT_MODERATE;
        break;
    }
}

static int passphrase_kek(unsigned char kek[CK_KEY_BYTES], const ck_slot *s, const char *pass,
                          size_t len)
{
    if (crypto_pwhash(kek, CK_KEY_BYTES, pass, len, s->salt, s->opslimit, (size_t)s->memlimit,
                      crypto_pwhash_ALG_ARGON2ID13) != 0)
        return CK_ENOMEM; /* libsodium fails only when it cannot get the memory */
    return CK_OK;
}

int ck_keys__wrap_passphrase(ck_slot *s, const uint8_t store_id[CK_STORE_ID_BYTES],
                             const unsigned char root[CK_KEY_BYTES], const char *pass, size_t len,
                             ck_kdf_cost cost)
{
    int rc;
    unsigned char *kek = ck_mem__smalloc(CK_KEY_BYTES);
    if (kek == NULL)
        return CK_ENOMEM;
    memset(s, 0, sizeof *s);
    s->type = CK_SLOT_PASSPHRASE;
    randombytes_buf(s->salt, sizeof s->salt);
    cost_limits(cost, &s->opslimit, &s->memlimit);
    CK_GUARD(passphrase_kek(kek, s, pass, len));
    wrap(s, store_id, root, kek);
    rc = CK_OK;
cleanup:
    ck_mem__sfree(kek);
    return rc;
}

int ck_keys__unwrap_passphrase(unsigned char root[CK_KEY_BYTES], const ck_slot *s,
                               const uint8_t store_id[CK_STORE_ID_BYTES], const char *pass,
                               size_t len)
{
    int rc;
    unsigned char *kek = ck_mem__smalloc(CK_KEY_BYTES);
    if (kek == NULL)
        return CK_ENOMEM;
    CK_GUARD(passphrase_kek(kek, s, pass, len));
    rc = unwrap(root, s, store_id, kek);
cleanup:
    ck_mem__sfree(kek);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Key files                                                                */
/* ------------------------------------------------------------------------ */

int ck_keys__read_key_file(ck_store *st, unsigned char out[CK_KEY_FILE_BYTES], const char *path)
{
    int rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        if (errno == ENOENT)
            return ck_err__set(st, CK_EKEY, "key file %s does not exist", path);
        return ck_err__errno(st, errno, "cannot open key file", path);
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        rc = ck_err__errno(st, errno, "cannot stat key file", path);
        goto cleanup;
    }
    if (!S_ISREG(sb.st_mode)) {
        rc = ck_err__set(st, CK_EKEY, "key file %s is not a regular file", path);
        goto cleanup;
    }
    if ((sb.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        rc = ck_err__set(st, CK_EKEY,
                         "key file %s is accessible by group or others (mode %04o); "
                         "run: chmod 600 %s",
                         path, (unsigned)(sb.st_mode & 07777), path);
        goto cleanup;
    }
    if (sb.st_size != CK_KEY_FILE_BYTES) {
        rc = ck_err__set(st, CK_EKEY, "key file %s must hold exactly %d bytes", path,
                         CK_KEY_FILE_BYTES);
        goto cleanup;
    }
    size_t got = 0;
    while (got < CK_KEY_FILE_BYTES) {
        ssize_t n = read(fd, out + got, CK_KEY_FILE_BYTES - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? ck_err__errno(st, errno, "cannot read key file", path)
                       : ck_err__set(st, CK_EKEY, "key file %s is truncated", path);
            sodium_memzero(out, CK_KEY_FILE_BYTES);
            goto cleanup;
        }
        got += (size_t)n;
    }
    rc = CK_OK;
cleanup:
    close(fd);
    return rc;
}

/* fsync the directory that holds `path`, so that a new name survives a
 * crash. */
static int sync_parent_dir(ck_store *st, const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash == NULL ? ck_mem__strndup(".", 1)
                              : ck_mem__strndup(path, slash == path ? 1 : (size_t)(slash - path));
    if (dir == NULL)
        return ck_err__set(st, CK_ENOMEM, "out of memory");
    int rc = CK_OK;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0)
        rc = ck_err__errno(st, errno, "cannot sync directory", dir);
    if (fd >= 0)
        close(fd);
    ck_mem__free(dir);
    return rc;
}

static int write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        if (ck_fault__hit("write")) {
            errno = EIO;
            return -1;
        }
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static int fsync_checked(int fd)
{
    if (ck_fault__hit("fsync")) {
        errno = EIO;
        return -1;
    }
    return fsync(fd);
}

int ck_keys__create_key_file(ck_store *st, unsigned char out[CK_KEY_FILE_BYTES], const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0)
        return ck_err__errno(st, errno, "cannot create key file", path);
    randombytes_buf(out, CK_KEY_FILE_BYTES);
    int rc = CK_OK;
    if (fchmod(fd, 0600) != 0 || write_all(fd, out, CK_KEY_FILE_BYTES) != 0 ||
        fsync_checked(fd) != 0) {
        rc = ck_err__errno(st, errno, "cannot write key file", path);
        close(fd);
        unlink(path);
        sodium_memzero(out, CK_KEY_FILE_BYTES);
        return rc;
    }
    close(fd);
    rc = sync_parent_dir(st, path);
    if (rc != CK_OK) {
        /* Not durable, so not usable: the caller will not wrap a slot with
         * it, and must not be left with a key file that opens nothing. */
        unlink(path);
        sodium_memzero(out, CK_KEY_FILE_BYTES);
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The slot file on disk                                                    */
/* ------------------------------------------------------------------------ */

int ck_keys__write_file(ck_store *st, const char *dir, const ck_slotfile *sf)
{
    int rc;
    int fd = -1;
    ck_buf bytes = CK_BUF_INIT;
    char *final = ck_mem__path_join(dir, CK_KEYS_FILE);
    char *tmp = ck_mem__path_join(dir, "." CK_KEYS_FILE ".XXXXXX");
    CK_ENSURE(final != NULL && tmp != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
    CK_GUARD(ck_keys__serialize(&bytes, sf, ck_store__subkey(st, CK_SUBKEY_META)));

    fd = mkostemp(tmp, O_CLOEXEC);
    CK_ENSURE(fd >= 0, ck_err__errno(st, errno, "cannot create", tmp));
    if (write_all(fd, bytes.p, bytes.len) != 0 || fsync_checked(fd) != 0) {
        rc = ck_err__errno(st, errno, "cannot write", tmp);
        unlink(tmp);
        goto cleanup;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, final) != 0) {
        rc = ck_err__errno(st, errno, "cannot rename key-slot file into", final);
        unlink(tmp);
        goto cleanup;
    }
    CK_GUARD(sync_parent_dir(st, final));
    rc = CK_OK;
cleanup:
    if (fd >= 0)
        close(fd);
    ck_buf__free(&bytes);
    ck_mem__free(tmp);
    ck_mem__free(final);
    return rc;
}

int ck_keys__read_file(ck_store *st, ck_buf *out, const char *dir)
{
    int rc;
    char *path = ck_mem__path_join(dir, CK_KEYS_FILE);
    int fd = -1;
    CK_ENSURE(path != NULL, ck_err__set(st, CK_ENOMEM, "out of memory"));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            rc = ck_err__set(st, CK_ENOTFOUND, "no ckstore store in %s", dir);
        else
            rc = ck_err__errno(st, errno, "cannot open", path);
        goto cleanup;
    }
    ck_buf__reset(out);
    for (;;) {
        CK_GUARD(ck_buf__reserve(out, 4096));
        ssize_t n = read(fd, out->p + out->len, out->cap - out->len);
        if (n < 0 && errno == EINTR)
            continue;
        CK_ENSURE(n >= 0, ck_err__errno(st, errno, "cannot read", path));
        if (n == 0)
            break;
        out->len += (size_t)n;
        CK_ENSURE(out->len <= HEADER_BYTES + BODY_MAX + MAC_BYTES,
                  ck_err__set(st, CK_EFORMAT, "%s is too large to be a key-slot file", path));
    }
    rc = CK_OK;
cleanup:
    if (fd >= 0)
        close(fd);
    ck_mem__free(path);
    return rc;
}
