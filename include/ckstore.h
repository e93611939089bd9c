/*
 * ckstore.h - the public interface of libckstore, a consent-aware
 * customer-knowledge store.
 *
 * This header is the specification. Everything a caller may rely on is
 * written here; nothing outside this file is public.
 *
 * CONVENTIONS (they hold for every declaration below unless it says otherwise)
 *
 *  - Every fallible function returns an int: CK_OK (0) or a negative CK_E*
 *    code. ck_strerror() gives the code's static text; ck_errmsg() gives a
 *    detail message for the last failed call made on a handle by the calling
 *    thread. No message ever holds a customer value, an identifier or key
 *    material: messages name fields, files and limits, never contents.
 *  - Output parameters come first and are named `out`; then the handle; then
 *    the inputs. On failure an `out` pointer is set to NULL (or zero) so the
 *    caller never frees garbage.
 *  - Inputs are borrowed: the library copies what it keeps and never holds a
 *    caller pointer past the call.
 *  - Objects returned through `**out` belong to the caller and are released
 *    with the matching _free / _close function, which accept NULL.
 *  - Secrets (key files, passphrases) never travel as command-line
 *    arguments; the library wipes its own copies as soon as it is done with
 *    them and keeps key material only in libsodium guarded memory.
 *
 * THREADS AND PROCESSES
 *
 *  A ck_store handle may be shared by the threads of one process. Several
 *  processes may open the same store directory at once (a CRM and the DPO's
 *  command-line tool, for example): LMDB serialises writers and lets readers
 *  run without blocking. Do not open the same store twice in one process;
 *  share the handle instead (an LMDB restriction).
 *
 * CAVEATS
 *
 *  - A store directory must live on a local file system: LMDB's locking does
 *    not work over NFS or similar.
 *  - Losing every key slot (the key file and the passphrase) loses the data.
 *    That is the point of encryption; keep a copy of the key file offline.
 */
#ifndef CKSTORE_H
#define CKSTORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Export and attributes                                                    */
/* ------------------------------------------------------------------------ */

#if defined(CK_BUILDING_LIBRARY) && defined(__GNUC__)
#define CK_EXPORT __attribute__((visibility("default")))
#else
#define CK_EXPORT
#endif

#if defined(__GNUC__)
/* Results that verify or decrypt must be looked at. */
#define CK_MUST_CHECK __attribute__((warn_unused_result))
#else
#define CK_MUST_CHECK
#endif

/* Library version. ck_version() gives the version of the library linked in,
 * which may differ from these when the library is shared. */
#define CK_VERSION_MAJOR  0
#define CK_VERSION_MINOR  1
#define CK_VERSION_PATCH  0
#define CK_VERSION_STRING "0.1.0"

/* The store format this library writes. A store with a newer format is
 * refused with CK_EVERSION (the library never guesses at a layout it does
 * not know). */
#define CK_FORMAT_VERSION 1

/* Sizes, published so that callers can size their buffers. */
#define CK_SUBJECT_ID_BYTES 16  /* a subject's internal id */
#define CK_STORE_ID_BYTES   16  /* a store's id */
#define CK_KEY_FILE_BYTES   32  /* a key file holds exactly this many bytes */
#define CK_ERRMSG_MAX       256 /* longest detail message, with its NUL */

/* ------------------------------------------------------------------------ */
/* Status codes                                                             */
/* ------------------------------------------------------------------------ */

#define CK_OK         0     /* success */
#define CK_ENOTFOUND  (-1)  /* no such store, subject, field or record */
#define CK_EKEY       (-2)  /* wrong key, or a key file that is unsafe or unusable */
#define CK_EINTEGRITY (-3)  /* authentication failed: tampering or corruption */
#define CK_EINVAL     (-4)  /* invalid argument or input (the message says which) */
#define CK_EDENIED    (-5)  /* refused by policy or by file permissions */
#define CK_EIO        (-6)  /* an operating-system I/O error */
#define CK_ENOMEM     (-7)  /* out of memory */
#define CK_EFORMAT    (-8)  /* a file or record is not in the expected format */
#define CK_EEXIST     (-9)  /* already exists (a store, a key file, a slot) */
#define CK_EBUSY      (-10) /* the store is in use in a way that prevents this */
#define CK_ENOSPC     (-11) /* the disk (or the map's hard limit) is full */
#define CK_EVERSION   (-12) /* the store was written by a newer format */
#define CK_ELIMIT     (-13) /* a declared size limit was exceeded */
#define CK_EINTERNAL  (-14) /* a bug: an internal invariant did not hold */
#define CK_EAMBIGUOUS (-15) /* a look-up matches several subjects */

/*
 * ck_strerror - the static, English text of a status code.
 *
 * in rc: any value returned by this library.
 * Returns a NUL-terminated string with static lifetime; never NULL. An
 * unknown code gives "unknown error".
 */
CK_EXPORT const char *ck_strerror(int rc);

/*
 * ck_version - the version string of the library linked in, e.g. "0.1.0".
 * Static lifetime.
 */
CK_EXPORT const char *ck_version(void);

/* ------------------------------------------------------------------------ */
/* Opening and closing a store                                              */
/* ------------------------------------------------------------------------ */

/* An open store: an LMDB environment for data, a small one for per-subject
 * keys, the unwrapped root key and its subkeys. Opaque. */
typedef struct ck_store ck_store;

/* Cost of the Argon2id derivation that protects a passphrase slot. The
 * parameters used are stored with the slot, so a store opens whatever the
 * cost it was made with. MODERATE is the default: about 256 MiB and most of
 * a second on a current core. MIN exists for tests only: it protects a weak
 * passphrase poorly. */
typedef enum ck_kdf_cost {
    CK_KDF_DEFAULT = 0, /* = CK_KDF_MODERATE */
    CK_KDF_MIN = 1,
    CK_KDF_INTERACTIVE = 2,
    CK_KDF_MODERATE = 3,
    CK_KDF_SENSITIVE = 4
} ck_kdf_cost;

/* Durability of the audit entries that releases write. Consent changes,
 * erasures and key operations are always written as in CK_AUDIT_STRICT.
 *  BATCHED: the entry is in a file (the log, or its staging file: either
 *           survives a crash of the process) before the release returns;
 *           it is in the log, visible to other processes, within about
 *           2 ms, and fsync'ed within audit_flush_ms, so a power loss may
 *           lose the entries of the last audit_flush_ms (docs/audit.md).
 *  STRICT:  the release returns only once its entry is fsync'ed. Entries of
 *           concurrent releases share one fsync (group commit). */
typedef enum ck_audit_mode { CK_AUDIT_BATCHED = 0, CK_AUDIT_STRICT = 1 } ck_audit_mode;

/* Flags for ck_options.flags. */
#define CK_OPEN_NOSYNC                                                                             \
    0x1u                    /* commits are not fsync'ed: a crash or power loss                     \
                               may lose the last commits (benchmarks, bulk                         \
                               loads that are redone on failure) */
#define CK_OPEN_RDONLY 0x2u /* open for reading only; every write is CK_EDENIED */
#define CK_INIT_CREATE_KEY_FILE                                                                    \
    0x100u /* ck_init: create key_file (mode 0600)                                                 \
              if it does not exist */

#define CK_OPTIONS_VERSION 1

/*
 * ck_options - how to open (or create) a store.
 *
 * Always start from CK_OPTIONS_INIT so that fields added by later versions
 * get their defaults:
 *
 *     ck_options o = CK_OPTIONS_INIT;
 *     o.key_file = "/etc/crm/ckstore.key";
 *     rc = ck_open(&st, "/var/lib/crm/ckstore", &o);
 *
 * The key comes from key_file, or from passphrase, or both (ck_init makes a
 * slot for each one given; ck_open tries the key file first). All pointers
 * are borrowed for the duration of the call only.
 */
typedef struct ck_options {
    unsigned int version;        /* CK_OPTIONS_VERSION */
    const char *key_file;        /* path of a key file, or NULL */
    const char *passphrase;      /* passphrase bytes (not NUL-terminated needed), or NULL */
    size_t passphrase_len;       /* its length in bytes */
    unsigned int flags;          /* CK_OPEN_* and CK_INIT_* bits */
    size_t map_size;             /* initial LMDB map size in bytes; 0 = 64 MiB.
                                    The map grows by itself when it fills. */
    ck_kdf_cost kdf_cost;        /* ck_init: cost of the passphrase slot */
    char *errbuf;                /* if not NULL, receives the detail of a failed
                                    ck_open/ck_init (there is no handle to ask) */
    size_t errbuf_max;           /* size of errbuf in bytes */
    ck_audit_mode audit_mode;    /* durability of audit entries of releases */
    unsigned int audit_flush_ms; /* CK_AUDIT_BATCHED: longest time an entry
                                    may wait for fsync; 0 = 10 ms */
    /* The store's clock, Unix seconds: consent expiry, contact windows,
     * retention and record times read it. NULL = the system's real-time
     * clock. For tests and simulations; a production caller leaves it
     * NULL (a clock in the past would keep expired consents alive). */
    int64_t (*clock)(void *ctx);
    void *clock_ctx;
} ck_options;

#define CK_OPTIONS_INIT                                                                            \
    {                                                                                              \
        CK_OPTIONS_VERSION, NULL, NULL, 0, 0u, 0, CK_KDF_DEFAULT, NULL, 0, CK_AUDIT_BATCHED, 0u,   \
            NULL, NULL                                                                             \
    }

/*
 * ck_init - create a new, empty store in directory `dir`.
 *
 * out  out: if not NULL, receives the open store (as ck_open would give);
 *           NULL on failure. Close it with ck_close().
 * dir  in:  the store directory. It is created (mode 0700) if missing; an
 *           existing directory must not already hold a store.
 * opts in:  at least one of key_file and passphrase. With
 *           CK_INIT_CREATE_KEY_FILE a missing key file is created with 32
 *           random bytes, mode 0600; an existing key file is used as is.
 *
 * A random 32-byte root key is made and wrapped in one key slot per secret
 * given. Nothing is left in `dir` if creation fails.
 *
 * Returns CK_OK; CK_EEXIST if `dir` already holds a store; CK_EINVAL if no
 * key is given or an option is out of range; CK_EKEY if the key file is
 * unsafe (readable or writable by group or others, not a regular file, not
 * 32 bytes); CK_EIO on a file-system error; CK_ENOMEM.
 */
CK_EXPORT int ck_init(ck_store **out, const char *dir, const ck_options *opts);

/*
 * ck_open - open an existing store.
 *
 * out  out: the open store, or NULL on failure. Close it with ck_close().
 * dir  in:  the store directory.
 * opts in:  the key (key_file and/or passphrase), flags, map size. NULL is
 *           refused: a store cannot be opened without a key.
 *
 * The key is checked before any store file is opened for writing, so a
 * wrong key changes no byte of the store. Stale LMDB reader slots left by
 * crashed processes are cleared.
 *
 * Returns CK_OK; CK_ENOTFOUND if `dir` holds no store; CK_EKEY if no slot
 * opens with the key given or the key file is unsafe; CK_EVERSION if the
 * store has a newer format; CK_EINTEGRITY if the key slots or the meta
 * record were tampered with or belong to another store; CK_EFORMAT if a
 * store file is not in the expected format; CK_EIO; CK_ENOMEM.
 */
CK_EXPORT int ck_open(ck_store **out, const char *dir, const ck_options *opts);

/*
 * ck_close - close a store and wipe its key material. NULL is a no-op.
 * Every result and cursor of the store must have been freed first.
 */
CK_EXPORT void ck_close(ck_store *st);

/*
 * ck_errmsg - detail of the last failed call made on `st` by the calling
 * thread, or "" if there was none.
 *
 * The string belongs to the store and stays valid until the calling thread's
 * next call on `st`, or ck_close(). It never holds a value, an identifier or
 * key material. NULL `st` gives "".
 */
CK_EXPORT const char *ck_errmsg(ck_store *st);

/*
 * ck_free - release memory the library returned through a `char **out` or
 * `void **out` parameter (JSON text, for example). Wipes it first when it
 * may hold customer data. NULL is a no-op.
 */
CK_EXPORT void ck_free(void *p);

/* ------------------------------------------------------------------------ */
/* Key slots                                                                */
/* ------------------------------------------------------------------------ */

/* A store has at most one slot of each type. Each slot wraps the same root
 * key, so changing a passphrase rewraps the root key and touches no data. */
typedef enum ck_slot_type { CK_SLOT_KEY_FILE = 1, CK_SLOT_PASSPHRASE = 2 } ck_slot_type;

/*
 * ck_slot_set_passphrase - add the passphrase slot, or replace it.
 *
 * st   in: an open store (not read-only).
 * pass in: the new passphrase, `len` bytes (at least 1, at most 4096).
 * cost in: its Argon2id cost.
 *
 * The old passphrase, if any, no longer opens the store when this returns.
 * Returns CK_OK; CK_EINVAL; CK_EDENIED if read-only; CK_EIO; CK_ENOMEM.
 *
 * Slot changes are atomic: the slot file is replaced by a rename. CK_EIO
 * from the final fsync of the directory means the new slot is in place
 * (visible to every process) but may not survive a crash; retrying the
 * call is safe. This holds for every ck_slot_* call.
 */
CK_EXPORT int ck_slot_set_passphrase(ck_store *st, const char *pass, size_t len, ck_kdf_cost cost);

/*
 * ck_slot_set_key_file - add the key-file slot, or replace it.
 *
 * st    in: an open store (not read-only).
 * path  in: the key file. With CK_INIT_CREATE_KEY_FILE in `flags` it is
 *           created (32 random bytes, mode 0600) and must not exist yet;
 *           otherwise it must exist and be safe (see ck_init).
 *
 * Returns CK_OK; CK_EEXIST if asked to create a file that exists; CK_EKEY if
 * the file is unsafe or not 32 bytes; CK_EDENIED if read-only; CK_EIO.
 */
CK_EXPORT int ck_slot_set_key_file(ck_store *st, const char *path, unsigned int flags);

/*
 * ck_slot_remove - remove a slot. The last slot cannot be removed (that
 * would make the store unopenable): CK_EDENIED. CK_ENOTFOUND if the store
 * has no slot of that type.
 */
CK_EXPORT int ck_slot_remove(ck_store *st, ck_slot_type type);

/* ------------------------------------------------------------------------ */
/* Statistics                                                               */
/* ------------------------------------------------------------------------ */

#define CK_STATS_VERSION 1

/* Figures about a store. Start from CK_STATS_INIT. */
typedef struct ck_stats {
    unsigned int version; /* CK_STATS_VERSION */
    uint32_t format;      /* store format version */
    unsigned char store_id[CK_STORE_ID_BYTES];
    uint64_t subjects;           /* subjects held */
    uint64_t values;             /* sealed field values held */
    uint64_t data_file_bytes;    /* size of the data environment's file */
    uint64_t keyring_file_bytes; /* size of the keyring's file */
    uint64_t map_bytes;          /* current LMDB map size */
    uint64_t data_used_bytes;    /* pages in use in the data environment */
    unsigned int slots;          /* bit (1 << ck_slot_type) per slot present */
    uint32_t kdf_opslimit;       /* passphrase slot's Argon2id parameters */
    uint64_t kdf_memlimit;       /*   (0 when there is no passphrase slot) */
} ck_stats;

#define CK_STATS_INIT                                                                              \
    {                                                                                              \
        CK_STATS_VERSION, 0, {0}, 0, 0, 0, 0, 0, 0, 0u, 0, 0                                       \
    }

/*
 * ck_stats_get - fill `out` (whose version the caller set) with figures.
 * Returns CK_OK; CK_EINVAL on a bad version; CK_EIO.
 */
CK_EXPORT int ck_stats_get(ck_stats *out, ck_store *st);

/* ------------------------------------------------------------------------ */
/* Values                                                                   */
/* ------------------------------------------------------------------------ */

/* The type of a field, as the schema declares it. */
typedef enum ck_type {
    CK_TYPE_STRING = 1, /* UTF-8 text */
    CK_TYPE_INT = 2,    /* signed 64-bit integer */
    CK_TYPE_FLOAT = 3,  /* IEEE double, finite */
    CK_TYPE_BOOL = 4,
    CK_TYPE_DATE = 5,      /* calendar date, YYYY-MM-DD */
    CK_TYPE_TIMESTAMP = 6, /* instant with the UTC offset it was written with */
    CK_TYPE_BYTES = 7,     /* opaque bytes (base64 in JSON) */
    CK_TYPE_LIST = 8       /* list of UTF-8 strings */
} ck_type;

/* A borrowed string: `len` bytes at `ptr`, not necessarily NUL-terminated. */
typedef struct ck_str {
    const char *ptr;
    size_t len;
} ck_str;

/*
 * ck_value - one typed value.
 *
 * Strings, bytes and list items point at memory owned by whoever made the
 * value: the caller for values passed in; the result object for values
 * returned by the library (valid until that result is freed).
 */
typedef struct ck_value {
    ck_type type;
    union {
        ck_str str;   /* STRING and BYTES */
        int64_t i;    /* INT */
        double f;     /* FLOAT */
        int b;        /* BOOL: 0 or 1 */
        int32_t date; /* DATE: days since 1970-01-01 (proleptic Gregorian) */
        struct {
            int64_t sec;        /* seconds since 1970-01-01T00:00:00Z */
            int32_t nsec;       /* 0 .. 999 999 999 */
            int16_t offset_min; /* UTC offset written, -1439 .. 1439 */
        } ts;                   /* TIMESTAMP */
        struct {
            const ck_str *items;
            size_t count;
        } list; /* LIST */
    } u;
} ck_value;

/* Limits on a single value, enforced on write and on decode. */
#define CK_VALUE_MAX_BYTES (1u << 20) /* a string, bytes or whole list */
#define CK_LIST_MAX_ITEMS  1024u

/* ------------------------------------------------------------------------ */
/* Schema                                                                   */
/* ------------------------------------------------------------------------ */

/*
 * A store's schema declares its fields (type, sensitivity, identifying,
 * retention) and its purposes (legal basis, description, benefit, the
 * fields each may use, minimisation, contact channel). It is given as JSON;
 * docs/schema.md describes the shape and every rule:
 *
 *     {"fields":   {"email": {"type": "string", "sensitivity": "personal",
 *                             "identifying": true}, ...},
 *      "purposes": {"marketing.email": {"basis": "consent",
 *                             "description": "...", "benefit": "...",
 *                             "fields": ["email"], ...}, ...}}
 *
 * Schemas are versioned: each change applied makes version N+1 (the first
 * is 1); applying the current schema again changes nothing. Every field
 * gets a numeric id when it first appears; it keeps it while it keeps its
 * name and type, and an id is never given to another field, even after the
 * field was removed.
 */

/* ck_schema_apply flag: also remove, or retype, fields that hold values,
 * deleting those values. */
#define CK_SCHEMA_FORCE 0x1u

/* A list of names, borrowed from the result that holds it. */
typedef struct ck_schema_names {
    const char *const *names; /* NUL-terminated, in name order */
    size_t count;
} ck_schema_names;

#define CK_SCHEMA_APPLY_RESULT_VERSION 1

/*
 * ck_schema_apply_result - what ck_schema_apply did. Start from
 * CK_SCHEMA_APPLY_RESULT_INIT; release with ck_schema_apply_result_free
 * (the names are valid until then).
 */
typedef struct ck_schema_apply_result {
    unsigned int version;           /* CK_SCHEMA_APPLY_RESULT_VERSION */
    uint32_t schema_version;        /* the current version after the call */
    int changed;                    /* 1 if a new version was written, 0 if the
                                       schema given was the current one */
    ck_schema_names fields_added;   /* new names (a fresh id each) */
    ck_schema_names fields_removed; /* names no longer declared */
    ck_schema_names fields_retyped; /* same name, new type: a fresh id */
    ck_schema_names fields_changed; /* same name and type; sensitivity,
                                       identifying or retention changed */
    ck_schema_names purposes_added;
    ck_schema_names purposes_removed;
    ck_schema_names purposes_changed; /* any attribute of the purpose */
    uint64_t values_deleted;          /* CK_SCHEMA_FORCE: values of removed or
                                         retyped fields that were deleted */
    void *priv_;                      /* the library's storage for the names */
} ck_schema_apply_result;

#define CK_SCHEMA_APPLY_RESULT_INIT                                                                \
    {                                                                                              \
        CK_SCHEMA_APPLY_RESULT_VERSION, 0, 0, {NULL, 0}, {NULL, 0}, {NULL, 0}, {NULL, 0},          \
            {NULL, 0}, {NULL, 0}, {NULL, 0}, 0, NULL                                               \
    }

/*
 * ck_schema_apply - validate a schema and make it the store's current one.
 *
 * st    in:  an open store (not read-only).
 * json  in:  `len` bytes of JSON (at most 4 MiB; no NUL needed).
 * flags in:  0 or CK_SCHEMA_FORCE.
 * out   out: optional (NULL allowed): what changed; its `version` must be
 *            set (CK_SCHEMA_APPLY_RESULT_INIT). Release with
 *            ck_schema_apply_result_free, also after a failure.
 *
 * In one write transaction the schema is compared with the current one:
 * fields matched by name (and type) keep their id; added fields and
 * purposes are free. Removing a field, or changing its type, while some
 * subject holds a value for it is refused (CK_EDENIED, the message says how
 * many subjects hold it) unless CK_SCHEMA_FORCE is given, in which case
 * those values are deleted in the same transaction. A schema identical to
 * the current one writes nothing (out->changed = 0). A change is audited
 * (action "schema", fsync'ed) before it commits: one the log cannot
 * record is not made. A failed call changes nothing.
 *
 * Returns CK_OK; CK_EINVAL for an invalid schema, ck_errmsg() naming the
 * place and the problem (`purposes.analytics.minimize.birth_date: unknown
 * minimisation "yeer"`), limits of docs/schema.md included; CK_ELIMIT
 * for a file over 4 MiB, or when the store has handed out all 65535 field
 * ids; CK_EDENIED when data would be lost without
 * CK_SCHEMA_FORCE, or the store is read-only; CK_EINTEGRITY if the stored
 * schema does not authenticate; CK_EIO; CK_ENOSPC; CK_ENOMEM.
 */
CK_EXPORT int ck_schema_apply(ck_store *st, const char *json, size_t len, unsigned int flags,
                              ck_schema_apply_result *out);

/*
 * ck_schema_apply_result_free - release the names of a result and reset it
 * to CK_SCHEMA_APPLY_RESULT_INIT. NULL is a no-op.
 */
CK_EXPORT void ck_schema_apply_result_free(ck_schema_apply_result *r);

/*
 * ck_schema_get_json - the current schema as JSON: the shape ck_schema_apply
 * takes, plus "version"; fields and purposes in name order; every
 * attribute spelled out (defaults included). ck_schema_apply accepts it
 * back (it ignores "version") and finds it identical.
 *
 * out out: NUL-terminated JSON text; free with ck_free(). NULL on failure.
 * Returns CK_OK; CK_ENOTFOUND if no schema was applied yet; CK_EINTEGRITY;
 * CK_ENOMEM.
 */
CK_EXPORT int ck_schema_get_json(char **out, ck_store *st);

/*
 * ck_schema_version - the current schema version, 0 when none was applied.
 * Returns CK_OK; CK_EINTEGRITY; CK_EIO.
 */
CK_EXPORT int ck_schema_version(uint32_t *out, ck_store *st);

/* ------------------------------------------------------------------------ */
/* Subjects                                                                 */
/* ------------------------------------------------------------------------ */

/*
 * A subject is a customer: 16 random bytes of internal id, never derived
 * from who they are. A subject may be reached by
 *  - its id (32 lower-case hex characters, as ck_subject_id_hex gives it);
 *  - the CRM's customer number, its "ref" (unique in a store);
 *  - an identifying field of the schema (`"identifying": true`), through a
 *    look-up of the normalised value (several subjects may share one, a
 *    family e-mail address for instance: such a look-up is CK_EAMBIGUOUS);
 *  - one of its aliases: handles the customer chose (a loyalty card, an app
 *    handle), unique in a store, so that a subject with no identifying
 *    field at all can be recognised;
 *  - one of its pseudonyms, in the context that made it (a purpose, or a
 *    purpose and a recipient; see ck_release).
 * Refs, aliases and identifying values are stored only as keyed blind
 * indexes (SECURITY.md says what they leak).
 */

typedef enum ck_by {
    CK_BY_ID = 1,       /* value: 32 hex characters */
    CK_BY_REF = 2,      /* value: the CRM's customer number */
    CK_BY_LOOKUP = 3,   /* value: the value of identifying field `field` */
    CK_BY_ALIAS = 4,    /* value: an alias */
    CK_BY_PSEUDONYM = 5 /* value: 43 characters, in context purpose/recipient */
} ck_by;

/*
 * ck_who - how a call names its subject. All pointers are borrowed for the
 * call. `len` 0 means strlen(value). For CK_BY_PSEUDONYM, `purpose` (and
 * `recipient` if the pseudonym was made for one) give the context; in
 * ck_release and ck_segment a NULL purpose means the request's own context.
 */
typedef struct ck_who {
    ck_by by;
    const char *value;
    size_t len;
    const char *field;     /* CK_BY_LOOKUP: the identifying field's name */
    const char *purpose;   /* CK_BY_PSEUDONYM: its context */
    const char *recipient; /*   (NULL when made without a recipient) */
} ck_who;

/*
 * ck_subject_find - the id of the subject `who` names.
 *
 * out out: the subject id (CK_SUBJECT_ID_BYTES bytes); zeroed on failure.
 * Returns CK_OK; CK_ENOTFOUND; CK_EAMBIGUOUS (a look-up matching several
 * subjects); CK_EINVAL (malformed id or pseudonym, a look-up on a field that
 * is not identifying); CK_EINTEGRITY; CK_EIO.
 */
CK_EXPORT int ck_subject_find(unsigned char out[CK_SUBJECT_ID_BYTES], ck_store *st,
                              const ck_who *who);

/* Hex form of a subject id: 32 characters and a NUL into `out`. */
CK_EXPORT void ck_subject_id_hex(char out[2 * CK_SUBJECT_ID_BYTES + 1],
                                 const unsigned char id[CK_SUBJECT_ID_BYTES]);

/*
 * ck_subject_create - create a subject with a fresh random id and data key.
 *
 * out out: optional: its id.
 * ref in:  optional (NULL): the CRM's customer number, `ref_len` bytes
 *          (0 = strlen), 1..256 bytes of UTF-8, trimmed of surrounding
 *          white space before it is indexed.
 * Returns CK_OK; CK_EEXIST when the ref is taken; CK_EINVAL; CK_EDENIED
 * (read-only); CK_EIO; CK_ENOSPC; CK_ENOMEM.
 */
CK_EXPORT int ck_subject_create(unsigned char out[CK_SUBJECT_ID_BYTES], ck_store *st,
                                const char *ref, size_t ref_len);

/* One field to write: a typed value of the field's schema type, or NULL to
 * delete the field's value. */
typedef struct ck_field_value {
    const char *field;
    const ck_value *value;
} ck_field_value;

/* ck_put flag: with CK_BY_REF, create the subject when the ref is unknown. */
#define CK_PUT_CREATE 0x1u

/*
 * ck_put - set (or delete) fields of one subject, all or none.
 *
 * out   out: optional: the subject's id.
 * who   in:  the subject.
 * fv    in:  `n` fields (1..1024), each named at most once.
 * flags in:  0 or CK_PUT_CREATE.
 *
 * Each value must have its field's type (CK_EINVAL otherwise) and pass the
 * limits of a value. An identifying field's blind index follows its value.
 * Nothing is written unless every field is valid. Returns CK_OK;
 * CK_ENOTFOUND (no such subject, no schema); CK_EINVAL (unknown field,
 * wrong type, invalid value: ck_errmsg names the field, never the value);
 * CK_EDENIED; CK_EIO; CK_ENOSPC; CK_ENOMEM.
 */
CK_EXPORT int ck_put(unsigned char out[CK_SUBJECT_ID_BYTES], ck_store *st, const ck_who *who,
                     const ck_field_value *fv, size_t n, unsigned int flags);

/*
 * ck_put_json - like ck_put, with the fields as a JSON object
 * `{"field": value, ...}` (`len` bytes, at most 16 MiB): the JSON forms of
 * docs/schema.md ("Values in JSON"); null deletes the field.
 */
CK_EXPORT int ck_put_json(unsigned char out[CK_SUBJECT_ID_BYTES], ck_store *st, const ck_who *who,
                          const char *json, size_t len, unsigned int flags);

/*
 * ck_alias_add - give the subject an alias (1..256 bytes, trimmed).
 * Returns CK_OK (also when the subject already has it); CK_EEXIST when
 * another subject holds it; CK_ENOTFOUND; CK_EINVAL; CK_EDENIED; CK_EIO.
 */
CK_EXPORT int ck_alias_add(ck_store *st, const ck_who *who, const char *alias, size_t len);

/* ck_alias_remove - remove an alias of the subject. CK_ENOTFOUND when the
 * subject does not hold it. */
CK_EXPORT int ck_alias_remove(ck_store *st, const ck_who *who, const char *alias, size_t len);

/* ------------------------------------------------------------------------ */
/* Consent                                                                  */
/* ------------------------------------------------------------------------ */

typedef enum ck_consent_state {
    CK_CONSENT_GRANTED = 1,
    CK_CONSENT_WITHDRAWN = 2,
    CK_CONSENT_REFUSED = 3,
    CK_CONSENT_OBJECTED = 4, /* objection (art. 21) to a legitimate interest */
    CK_CONSENT_EXPIRED = 5   /* a granted consent whose expiry passed, closed by
                                ck_purge; never recorded by a caller
                                (ck_consent_record refuses it) */
} ck_consent_state;

#define CK_CONSENT_VERSION 1

/*
 * ck_consent - one consent record to append. Start from CK_CONSENT_INIT.
 * Pointers are borrowed for the call.
 *
 * Records are append-only: the newest record of a (subject, purpose) is its
 * current state, the older ones its history; nothing is ever rewritten.
 */
typedef struct ck_consent {
    unsigned int version;          /* CK_CONSENT_VERSION */
    const char *purpose;           /* a purpose of the schema */
    ck_consent_state state;        /* required */
    const char *const *fields;     /* scope: a subset of the purpose's fields, */
    size_t nfields;                /*   or 0 for all of them (not "explicit") */
    const char *const *recipients; /* recipients covered; 0 = use inside */
    size_t nrecipients;            /*   the company only */
    int64_t expires;               /* Unix seconds from which it no longer holds,
                                      0 = never */
    const char *source;            /* evidence: where it was collected (form, */
    const char *notice;            /*   channel), the notice version shown, */
    const char *collector;         /*   who collected it; each optional, <= 256 B */
    int64_t at;                    /* when it was given, Unix seconds; 0 = now */
} ck_consent;

#define CK_CONSENT_INIT                                                                            \
    {                                                                                              \
        CK_CONSENT_VERSION, NULL, 0, NULL, 0, NULL, 0, 0, NULL, NULL, NULL, 0                      \
    }

/*
 * ck_consent_record - append a consent record for the subject.
 *
 * actor in: who records it (written to the audit log).
 *
 * The audit entry is written (and fsync'ed) before the record is
 * committed: a consent change that cannot be audited is not made.
 * Returns CK_OK; CK_ENOTFOUND (no such subject, or no schema); CK_EINVAL
 * (unknown purpose, a scope field the purpose does not declare, a bad
 * state - CK_CONSENT_EXPIRED included: only ck_purge records it; the
 * message says which); CK_EDENIED; CK_EIO; CK_ENOSPC; CK_ENOMEM.
 */
CK_EXPORT int ck_consent_record(ck_store *st, const ck_who *who, const ck_consent *c,
                                const char *actor);

/*
 * ck_consent_json - the subject's consents as JSON:
 *   {"current": {"<purpose>": {record}, ...}, "history": [{record}, ...]}
 * with each record {"purpose","state","fields","recipients","expires",
 * "at","source","notice","collector","tc_string"} (times RFC 3339 UTC;
 * absent optional members omitted), history in the order the store
 * recorded it.
 * out: NUL-terminated text, free with ck_free(). Returns CK_OK;
 * CK_ENOTFOUND; CK_EINTEGRITY; CK_ENOMEM.
 */
CK_EXPORT int ck_consent_json(char **out, ck_store *st, const ck_who *who);

/* ------------------------------------------------------------------------ */
/* Import                                                                   */
/* ------------------------------------------------------------------------ */

/*
 * Import reads JSON Lines, one subject per line:
 *
 *   {"ref":"C-000123","fields":{"email":"...","city":"Paris"},
 *    "consent":{"marketing.email":true,"analytics":{"state":"objected"},
 *               "personalization":{"state":"granted","fields":["city"],
 *                  "recipients":["acme"],"expires":"2027-11-22",
 *                  "source":"web-form-v3"}}}
 *
 * "ref" is required; "fields" and "consent" are optional. A consent value
 * is true (granted, all the purpose's fields), false (refused) or an
 * object. A ref seen before updates its subject (upsert): the fields
 * given are set, the others kept; the consents given are appended.
 *
 * Each line is atomic: a line that is not valid (bad JSON, not an object,
 * unknown field or purpose, wrong type, impossible date, bad consent value)
 * is rejected with its line number and reason and writes nothing; good
 * lines are committed in batches. Blank lines are skipped.
 */
typedef struct ck_importer ck_importer;

#define CK_IMPORT_OPTIONS_VERSION 1

typedef struct ck_import_options {
    unsigned int version;     /* CK_IMPORT_OPTIONS_VERSION */
    const char *actor;        /* audit actor; NULL = "import" */
    const char *source;       /* default evidence source of the consents given
                                 (the CLI passes the file name); NULL = "import" */
    unsigned int batch_lines; /* lines per commit; 0 = 4096 */
    /* Called for each rejected line (line numbers from 1), with a reason
     * that never quotes a value. Optional. */
    void (*on_reject)(void *ctx, uint64_t line, const char *reason);
    void *ctx;
    unsigned int flags; /* CK_IMPORT_* */
} ck_import_options;

/* Import flag: a line whose ref belongs to an erased subject (it has a
 * tombstone) is imported as a NEW subject, with only the consents the line
 * gives. Without it such a line is rejected. */
#define CK_IMPORT_RECREATE_ERASED 0x1u

#define CK_IMPORT_OPTIONS_INIT                                                                     \
    {                                                                                              \
        CK_IMPORT_OPTIONS_VERSION, NULL, NULL, 0u, NULL, NULL, 0u                                  \
    }

typedef struct ck_import_stats {
    uint64_t lines;    /* lines read (blank ones included) */
    uint64_t imported; /* lines committed: created + updated */
    uint64_t created;
    uint64_t updated;
    uint64_t rejected;
    uint64_t consents; /* consent records appended */
} ck_import_stats;

/* Start an import. Returns CK_OK; CK_ENOTFOUND (no schema); CK_EINVAL;
 * CK_EDENIED (read-only); CK_ENOMEM. */
CK_EXPORT int ck_import_begin(ck_importer **out, ck_store *st, const ck_import_options *opts);

/*
 * ck_import_feed - give the importer more bytes, in chunks of any size
 * (a line may span chunks; lines longer than 16 MiB are rejected). Full
 * batches are committed as they fill. A rejected line is not an error
 * (on_reject is told); an error (CK_EIO, CK_ENOSPC, CK_ENOMEM, CK_EBUSY...)
 * stops the import: the batch in progress is rolled back, the batches
 * committed before stay, and every later call returns the same error.
 */
CK_EXPORT int ck_import_feed(ck_importer *imp, const char *data, size_t len);

/* ck_import_stats_get - the counts so far (committed lines only). */
CK_EXPORT void ck_import_stats_get(const ck_importer *imp, ck_import_stats *out);

/*
 * ck_import_finish - take the last line (it needs no final newline), commit
 * the last batch, write the import's audit entries, fill `out` (optional)
 * and free the importer. Returns CK_OK or the error that stopped it.
 */
CK_EXPORT int ck_import_finish(ck_importer *imp, ck_import_stats *out);

/* ck_import_free - abandon an import: the batch in progress is rolled back
 * (batches already committed stay). NULL is a no-op. */
CK_EXPORT void ck_import_free(ck_importer *imp);

/* ------------------------------------------------------------------------ */
/* Release                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * Why a field was withheld. The rules and their order are in docs/release.md
 * (DESIGN.md section 4): the first reason that applies is reported, so a
 * withheld answer never reveals whether a value exists.
 */
typedef enum ck_reason {
    CK_RELEASED = 0,
    CK_WITHHELD_NOT_IN_PURPOSE = 1,
    CK_WITHHELD_NO_CONSENT = 2,
    CK_WITHHELD_REFUSED = 3,
    CK_WITHHELD_WITHDRAWN = 4,
    CK_WITHHELD_EXPIRED = 5,
    CK_WITHHELD_RECIPIENT = 6,
    CK_WITHHELD_OBJECTED = 7,
    CK_WITHHELD_SPECIAL_CATEGORY = 8,
    CK_WITHHELD_CONTACT_CAP = 9,
    CK_WITHHELD_RETENTION = 10,
    CK_WITHHELD_UNSET = 11
} ck_reason;

/* "released", "no_consent", ...: static text. */
CK_EXPORT const char *ck_reason_name(ck_reason r);

#define CK_REQUEST_VERSION 1

/* A release request. Start from CK_REQUEST_INIT; pointers are borrowed. */
typedef struct ck_request {
    unsigned int version;  /* CK_REQUEST_VERSION */
    const char *actor;     /* required: who asks */
    const char *purpose;   /* required: a purpose of the schema */
    const char *recipient; /* optional: who receives */
    ck_who subject;
    const char *const *fields; /* fields wanted, or NULL (nfields 0) for all */
    size_t nfields;            /*   of the purpose's fields */
} ck_request;

#define CK_REQUEST_INIT                                                                            \
    {                                                                                              \
        CK_REQUEST_VERSION, NULL, NULL, NULL, {CK_BY_ID, NULL, 0, NULL, NULL, NULL}, NULL, 0       \
    }

/* One field of an answer. `value` is meaningful only when reason is
 * CK_RELEASED; it is minimised as the purpose says (its type may then
 * differ from the field's: a date minimised to "year" is an INT). */
typedef struct ck_field_result {
    const char *field;
    ck_reason reason;
    ck_value value;
} ck_field_result;

/* An answer: pseudonym, fields released and withheld. Opaque; its memory
 * is wiped when freed. */
typedef struct ck_result ck_result;

/*
 * ck_release - release what the purpose may see of one subject.
 *
 * out out: the answer, or NULL on failure; free with ck_result_free().
 * req in:  the request.
 *
 * Every rule of docs/release.md, deny by default. The answer's entry is
 * written to the audit log BEFORE the call returns the answer; if it
 * cannot be written nothing is released (the call fails).
 * Returns CK_OK (also when every field is withheld); CK_ENOTFOUND (no such
 * subject; no schema); CK_EINVAL (unknown purpose, a field not in the
 * schema, missing actor, malformed subject reference); CK_EAMBIGUOUS;
 * CK_EINTEGRITY; CK_EIO / CK_ENOSPC (audit could not be written); CK_ENOMEM.
 */
CK_EXPORT int ck_release(ck_result **out, ck_store *st, const ck_request *req);

/* The subject's pseudonym in the request's context: 43 characters, NUL-
 * terminated, valid until the result is freed. */
CK_EXPORT const char *ck_result_subject(const ck_result *r);
/* The fields of the answer, in the order requested (or the purpose's). */
CK_EXPORT size_t ck_result_count(const ck_result *r);
CK_EXPORT const ck_field_result *ck_result_field(const ck_result *r, size_t i);

/*
 * ck_result_json - the answer as one line of JSON:
 *   {"subject":"<pseudonym>","purpose":"...","released":{...},
 *    "withheld":{"field":"reason",...}}
 * out: NUL-terminated, free with ck_free(). CK_OK or CK_ENOMEM.
 */
CK_EXPORT int ck_result_json(char **out, const ck_result *r);

/* ck_result_free - free an answer (wiping its values). NULL is a no-op. */
CK_EXPORT void ck_result_free(ck_result *r);

/* ------------------------------------------------------------------------ */
/* Contact pressure                                                         */
/* ------------------------------------------------------------------------ */

/*
 * A purpose that declares a contact channel (email, sms, phone, post) caps
 * how often a subject is contacted through it: at most `count` contacts in
 * any window of `days` days. Once reached, the field that carries the
 * channel's address is withheld (CK_WITHHELD_CONTACT_CAP) for the purposes
 * that declare the channel, until the window slides. The customer may
 * lower the cap, or set it to 0: do not contact.
 */

/* ck_contact_record - count one contact of the subject on `channel`
 * ("email", "sms", "phone", "post"), now. Audited. CK_OK; CK_ENOTFOUND;
 * CK_EINVAL; CK_EDENIED; CK_EIO. The same as ck_contact_record_v2 with
 * flags 0. */
CK_EXPORT int ck_contact_record(ck_store *st, const ck_who *who, const char *channel,
                                const char *actor);

/* ck_contact_record_v2 flag: the CUSTOMER made the contact (wrote in,
 * called, answered). */
#define CK_CONTACT_INBOUND 0x1u

/*
 * ck_contact_record_v2 - record one contact of the subject on `channel`
 * ("email", "sms", "phone", "post"), now (the store's clock).
 *
 * flags in: 0 - a contact the company made: it counts toward the channel's
 *              cap (as ck_contact_record).
 *           CK_CONTACT_INBOUND - a contact the customer initiated: it
 *              does NOT count toward the cap; it keeps the channel's
 *              address alive: a field that is the address field of some
 *              purpose's channel is kept (by ck_purge) and released (by
 *              ck_release) for its retention_days counted from the later
 *              of its write time and the customer's last inbound contact
 *              on that channel. Only the time of the last one is kept.
 * actor in: who records it (audit log, action "contact", detail
 *           "channel" and, for an inbound one, "direction": "inbound").
 *
 * Returns CK_OK; CK_ENOTFOUND; CK_EINVAL (unknown channel or flag, no
 * actor); CK_EDENIED (read-only); CK_EINTEGRITY; CK_EIO; CK_ENOSPC;
 * CK_ENOMEM.
 */
CK_EXPORT int ck_contact_record_v2(ck_store *st, const ck_who *who, const char *channel,
                                   unsigned int flags, const char *actor);

/* ck_contact_limit - the subject's own cap on `channel`: at most `count`
 * contacts per window (0 = do not contact), or -1 to remove the override.
 * It can only lower the purposes' caps. Audited. */
CK_EXPORT int ck_contact_limit(ck_store *st, const ck_who *who, const char *channel, int count,
                               const char *actor);

/* ------------------------------------------------------------------------ */
/* Segments                                                                 */
/* ------------------------------------------------------------------------ */

typedef enum ck_pred_op {
    CK_PRED_EQ = 1,     /* field = value (typed comparison) */
    CK_PRED_PREFIX = 2, /* string field starts with value */
    CK_PRED_GE = 3,     /* int, float, date, timestamp field >= value; */
    CK_PRED_LE = 4      /* ... <= value (strings: byte order) */
} ck_pred_op;

/* A predicate: `value` is text, parsed as the field's type (as ck_put_json
 * parses a JSON string). Pointers borrowed. */
typedef struct ck_predicate {
    const char *field;
    ck_pred_op op;
    const char *value;
    size_t len; /* 0 = strlen(value) */
} ck_predicate;

#define CK_SEGMENT_VERSION 1

typedef struct ck_segment_request {
    unsigned int version; /* CK_SEGMENT_VERSION */
    const char *actor;
    const char *purpose;
    const char *recipient;
    const ck_predicate *where; /* all must hold */
    size_t nwhere;
    const char *const *fields; /* as in ck_request */
    size_t nfields;
    uint64_t limit; /* at most this many subjects; 0 = no limit */
} ck_segment_request;

#define CK_SEGMENT_INIT                                                                            \
    {                                                                                              \
        CK_SEGMENT_VERSION, NULL, NULL, NULL, NULL, 0, NULL, 0, 0                                  \
    }

typedef struct ck_cursor ck_cursor;

/*
 * ck_segment - start a segment query: one answer per subject for whom the
 * purpose is lawful and every predicate holds on a field that the purpose
 * may read for that subject (a predicate on a field withheld from a
 * subject does not match it: filtering on it would leak it). A subject
 * whose every field asked is withheld by the basis or the recipient rule
 * (docs/release.md, step 2) is not lawful for the request and is skipped:
 * not even its pseudonym is returned.
 *
 * The cursor reads one snapshot of the store; free it before closing the
 * store (it holds a read transaction). Each answer is audited before it is
 * returned, as a release. Returns CK_OK; CK_EINVAL (unknown purpose or
 * field, a predicate that does not parse as its field's type or an
 * operator that does not apply to it); CK_ENOTFOUND (no schema); CK_ENOMEM.
 */
CK_EXPORT int ck_segment(ck_cursor **out, ck_store *st, const ck_segment_request *req);

/* The next answer (valid until the next call on `c`), or CK_ENOTFOUND at the
 * end. Errors as ck_release. */
CK_EXPORT int ck_segment_next(ck_cursor *c, const ck_result **out);

/* ck_cursor_free - release a cursor. NULL is a no-op. */
CK_EXPORT void ck_cursor_free(ck_cursor *c);

/* ------------------------------------------------------------------------ */
/* Erasure                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * ck_erase - erase a subject (GDPR art. 17) by crypto-shredding.
 *
 * out    out: optional: the receipt as JSON, free with ck_free():
 *             {"erased":true,"subject":"<audit pseudonym, hex>","at":"<RFC
 *              3339>","reason":"...","audit":{"seq":N,"hash":"<hex>"},
 *              "deleted":{"values":N,"consents":N,"contacts":N,
 *              "index_entries":N},"tombstones":N,"keyring_copies_scrubbed":N,
 *              "holds":[{"hold":"<hold id, 32 hex>","purpose":"...",
 *              "basis":"legal_obligation","description":"...","until":"<RFC
 *              3339>","fields":["<name>", ...]}, ...]}
 *             "holds" lists what was kept for a legal obligation, why and
 *             until when (below); it is [] for most erasures.
 * who    in: the subject.
 * reason in: a reason code, 1..64 characters of [A-Za-z0-9_.:/+=-] (e.g.
 *            "art17-request"): it goes to the audit log, which holds no
 *            free text.
 * actor  in: who erases.
 *
 * Legal holds: for each purpose of the schema that declares a "hold"
 * (docs/schema.md; basis legal_obligation only), the subject's values of
 * the hold's fields, if it has any, are kept in a hold of their own:
 * sealed under a new random key, under a random hold id that shares
 * nothing with the subject id, until the erasure time plus the hold's
 * days. The hold is reachable by its id only (ck_hold_get) and destroyed
 * by ck_hold_expire once its time is over. Everything else of the subject
 * is erased.
 *
 * In order: the erasure (and each hold made) is audited (strict); the
 * holds are written and the subject's data key deleted from the keyring
 * in one commit, fsync'ed - the point of no return: nothing of the subject
 * can be decrypted any more; the keyring file is then scrubbed of every
 * stale copy of the wrapped key (LMDB keeps freed pages as they were);
 * finally the subject's values, consent records, consent-index entries,
 * contact logs, index entries and record are deleted, and tombstones -
 * hashes of its ref and identifying values under a key of their own - are
 * written, so that a re-import of an old file cannot silently bring the
 * customer back (see ck_import_options and CK_IMPORT_RECREATE_ERASED); so
 * is a tombstone of the subject's id (not counted in the receipt's
 * "tombstones"), by which ck_restore recognises the subject in an older
 * backup. The audit pseudonym in the receipt can no longer be recomputed once the
 * key is gone. An erasure cut between the key's destruction and the data
 * commit (a crash) is finished by erasing the subject again.
 *
 * The deleted data records stay, encrypted under the destroyed key, in
 * free pages of the data file until LMDB reuses them: undecryptable, but
 * the subject id and its blind-index entries are still bytes in the file
 * until ck_compact rewrites it (SECURITY.md).
 * Returns CK_OK; CK_ENOTFOUND (no such subject - erasing twice is this);
 * CK_EINVAL (reason or actor); CK_EDENIED (read-only); CK_EIO; CK_ENOSPC;
 * CK_ENOMEM.
 */
CK_EXPORT int ck_erase(char **out, ck_store *st, const ck_who *who, const char *reason,
                       const char *actor);

/*
 * ck_erase_fn - what ck_erase_many says of each subject asked, once the
 * erasure of the chunk holding it is durable, in the order of `who`.
 *
 * ctx     in: the caller's, as given to ck_erase_many.
 * index   in: the subject's position in `who`.
 * rc      in: CK_OK erased; CK_ENOTFOUND no such subject (unknown, already
 *             erased, or named earlier in the same call); CK_EINVAL a
 *             malformed reference (an empty ref, an id that is not hex);
 *             CK_EAMBIGUOUS a look-up that matches several subjects;
 *             CK_EINTEGRITY its records do not authenticate (left as they
 *             are). Every subject but the CK_OK ones is left untouched.
 * receipt in: for CK_OK, the receipt (as ck_erase gives it), borrowed for
 *             the call only; NULL otherwise.
 */
typedef void (*ck_erase_fn)(void *ctx, size_t index, int rc, const char *receipt);

/*
 * ck_erase_many - erase many subjects (a batch of GDPR requests) at once.
 *
 * erased out: optional: how many were erased.
 * who    in: n subjects (n may be 0). reason, actor: as ck_erase, for all.
 * fn     in: optional: called once per subject (see ck_erase_fn).
 *
 * Each subject is erased exactly as ck_erase would (holds, tombstones,
 * receipt), but up to 1024 of them share one data transaction, one strict
 * audit append, one keyring commit that destroys all their keys, and one
 * scrub of the keyring: a batch runs at thousands of subjects a second
 * where ck_erase pays two fsyncs and a pass over the keyring per subject.
 * A subject that cannot be erased (see ck_erase_fn) does not stop the
 * others.
 *
 * Crash safety is per chunk of 1024, as for ck_erase: a crash leaves every
 * subject of the chunk either whole (and erasable) or with its key
 * destroyed (erasing it again finishes it). Returns CK_OK when every chunk
 * ran, whatever each subject's outcome; CK_EINVAL (reason, actor); CK_EDENIED
 * (read-only); CK_EIO; CK_ENOSPC; CK_ENOMEM: the subjects already reported
 * to `fn` are erased, the others may be erased or not - erase them again.
 */
CK_EXPORT int ck_erase_many(uint64_t *erased, ck_store *st, const ck_who *who, size_t n,
                            const char *reason, const char *actor, ck_erase_fn fn, void *ctx);

/* ------------------------------------------------------------------------ */
/* Legal holds                                                              */
/* ------------------------------------------------------------------------ */

#define CK_HOLD_ID_CHARS 32 /* a hold id: 16 random bytes in lower-case hex */

/*
 * ck_hold_get - read a hold that an erasure kept for a legal obligation
 * (ck_erase, "holds" of the receipt).
 *
 * out     out: the hold as JSON, free with ck_free() (it holds customer
 *              values: the memory is wiped when freed):
 *              {"hold":"<id>","purpose":"...","basis":"legal_obligation",
 *               "description":"...","kept_at":"<RFC 3339>","until":"<RFC
 *               3339>","fields":{"<name>":<value>, ...}}
 *              values written as ck_result_json writes them.
 * hold_id in: CK_HOLD_ID_CHARS hexadecimal characters.
 * actor   in: who reads (for the legal obligation).
 *
 * Audited before anything is revealed: action "hold", the hold's purpose,
 * the fields read, detail event "read", under the hold's own audit
 * pseudonym (not the erased subject's); if the entry cannot be written
 * nothing is returned. Returns CK_OK; CK_EINVAL (a malformed id, no
 * actor); CK_ENOTFOUND (no such hold, or destroyed); CK_EDENIED (its time
 * is over: nothing is released; ck_hold_expire destroys it);
 * CK_EINTEGRITY (tampered, or its end changed); CK_EIO; CK_ENOMEM.
 */
CK_EXPORT int ck_hold_get(char **out, ck_store *st, const char *hold_id, const char *actor);

/*
 * ck_hold_expire - destroy every hold whose time is over (until <= the
 * store's clock), as an erasure destroys a data key.
 *
 * expired out: optional: how many holds were destroyed.
 * actor   in:  who runs the expiry (purge calls this).
 *
 * For each chunk of up to 1024 holds due: their end is audited, strictly
 * (action "hold", detail event "expired"); their keys and records are
 * deleted in one keyring commit, fsync'ed; the keyring file is scrubbed of
 * every stale copy of the wrapped keys. Nothing of the values can be
 * decrypted afterwards. A hold that does not authenticate stops the call
 * before anything of its chunk is destroyed (CK_EINTEGRITY).
 * Returns CK_OK (also when none is due); CK_EINVAL; CK_EDENIED (read-only);
 * CK_EINTEGRITY; CK_EIO; CK_ENOSPC; CK_ENOMEM.
 */
CK_EXPORT int ck_hold_expire(uint64_t *expired, ck_store *st, const char *actor);

/*
 * ck_backup - write a consistent, compacted copy of the store into a new
 * directory `dir` (created, mode 0700; it must not exist), while the store
 * is in use.
 *
 * The data and keyring environments are copied from a snapshot, entry by
 * entry, into new files: no page of the store is copied, so neither its
 * free pages nor the unused space of its pages - where the bytes of erased
 * subjects linger until LMDB reuses them - reach the copy, which holds
 * nothing of a subject erased before it. The key-slot file and the audit log are copied
 * as they are; the copy opens with the same keys. The backup is audited
 * (action "backup", strict) before it is made. On failure `dir` is
 * removed. SECURITY.md says what erasures after a backup mean for it.
 *
 * Returns CK_OK; CK_EEXIST if `dir` exists; CK_EINVAL; CK_EIO; CK_ENOSPC;
 * CK_ENOMEM.
 */
CK_EXPORT int ck_backup(ck_store *st, const char *dir, const char *actor);

/*
 * ck_compact - rewrite the store's data and keyring files so that nothing
 * of erased subjects remains in them.
 *
 * LMDB never zeroes what it frees: after an erasure, the subject's deleted
 * records (undecryptable) and its id and blind-index keys stay as bytes in
 * free pages and in unused space of pages in use, until overwritten. This
 * copies both environments entry by entry into new files and puts them in
 * place with an atomic rename, after which no byte of an erased subject is
 * in any file of the store directory but the audit log (which never held
 * one). It needs the store to itself: every handle holds the store lock
 * shared, and compaction takes it exclusively - CK_EBUSY while another
 * process has the store open (opening waits while a compaction runs). In
 * this process, no other thread may use `st` during the call. Audited.
 *
 * Returns CK_OK; CK_EBUSY; CK_EDENIED (read-only); CK_EIO; CK_ENOSPC;
 * CK_ENOMEM. After a failure past the copy the handle must be closed and
 * the store reopened (the files in place are whole: old or new).
 */
CK_EXPORT int ck_compact(ck_store *st, const char *actor);

/* ------------------------------------------------------------------------ */
/* Purge: field retention and consent expiry                                */
/* ------------------------------------------------------------------------ */

/* ck_purge_options.flags: compute the figures, change nothing. */
#define CK_PURGE_DRY_RUN 0x1u

#define CK_PURGE_OPTIONS_VERSION 1

/* How ck_purge runs. Start from CK_PURGE_OPTIONS_INIT. */
typedef struct ck_purge_options {
    unsigned int version;        /* CK_PURGE_OPTIONS_VERSION */
    unsigned int flags;          /* 0 or CK_PURGE_DRY_RUN */
    unsigned int batch_subjects; /* subjects per write transaction (each
                                    committed on its own); 0 = 512, at most
                                    65536 */
} ck_purge_options;

#define CK_PURGE_OPTIONS_INIT                                                                      \
    {                                                                                              \
        CK_PURGE_OPTIONS_VERSION, 0u, 0u                                                           \
    }

/*
 * ck_purge - apply field retention and consent expiry to every subject.
 *
 * out   out: optional (NULL allowed): the figures as one line of JSON, free
 *            with ck_free(); NULL on failure:
 *              {"dry_run":false,"values_removed":N,"consents_expired":M,
 *               "subjects":K,"by_field":{"<field>":n,...},
 *               "by_purpose":{"<purpose>":n,...}}
 *            K counts the subjects changed; by_field and by_purpose name
 *            only what was removed or expired (names in byte order). It
 *            holds names and counts only: never a value, a ref or a
 *            pseudonym.
 * st    in:  an open store (read-only is fine for a dry run).
 * opts  in:  NULL for the defaults, or options whose version is set.
 * actor in:  who purges (1 to 256 bytes of text): the audit entries' actor
 *            and the collector of the records it appends.
 *
 * Time is the store's clock (ck_options.clock). What it does, for the
 * schema in force:
 *  - a value of a field with retention_days > 0 is deleted once it is
 *    retention_days old (at write time + retention_days * 86400 <= now,
 *    exactly when ck_release starts to withhold it with
 *    CK_WITHHELD_RETENTION) - the same deletion as ck_put with a NULL
 *    value: an identifying field's blind index goes with it, so the
 *    subject can no longer be looked up by it. Age counts from the
 *    value's last write; for a field that is the address field of some
 *    purpose's contact channel, from the later of that and the customer's
 *    last inbound contact on such a channel (ck_contact_record_v2 with
 *    CK_CONTACT_INBOUND);
 *  - a subject's current consent record of a purpose of the schema that is
 *    granted with an expiry at or before now is closed by a new record in
 *    state CK_CONSENT_EXPIRED: same scope, recipients and expiry, `at` the
 *    expiry, source "purge", collector `actor`. Release keeps saying
 *    CK_WITHHELD_EXPIRED; a later grant supersedes it as usual. An
 *    expired record is never expired again: purging twice changes
 *    nothing the second time;
 *  - after the subjects, the legal holds whose time is over are destroyed
 *    (ck_hold_expire: audited, keys deleted, keyring scrubbed); the
 *    figures' "holds_expired" counts them (a dry run counts those due).
 *
 * Subjects are taken in id order, `batch_subjects` per write transaction:
 * no giant transaction, and each batch commits whole or not at all. Before
 * a batch commits, one audit entry per subject it changes is appended and
 * fsync'ed (action "purge", the subject's audit pseudonym, the fields whose
 * values went as `withheld` with reason "retention", detail
 * values_removed and consents_expired), and one "consent" entry per
 * consent it closed (state "expired", via "purge"); see docs/audit.md. If
 * they cannot be written the batch is not committed. After a failure or a
 * crash the batches committed before stay, the store is consistent, and
 * running ck_purge again finishes the job (its figures then count only
 * what that run did).
 *
 * With CK_PURGE_DRY_RUN nothing is written - not even to the audit log,
 * like ck_audit_report_json: it reveals names and counts only - and the
 * figures are those a real run at the same clock would give.
 *
 * Returns CK_OK (also when nothing is due, or no schema was applied yet:
 * all zero); CK_EINVAL (no actor, bad options); CK_EDENIED (read-only, not
 * a dry run); CK_EINTEGRITY (a record that does not authenticate, the
 * consent index disagreeing with a record); CK_EIO / CK_ENOSPC (the audit
 * entries or a commit could not be written); CK_ENOMEM.
 */
CK_EXPORT int ck_purge(char **out, ck_store *st, const ck_purge_options *opts, const char *actor);

/* ------------------------------------------------------------------------ */
/* The customer's export                                                    */
/* ------------------------------------------------------------------------ */

/* ck_export flag: the consent history as CSV instead of the whole export as
 * JSON. */
#define CK_EXPORT_CSV 0x1u

/*
 * ck_export - everything the store holds on one subject, for the customer's
 * rights of access and portability (GDPR art. 15 and 20).
 *
 * out   out: NUL-terminated text; free it with ck_free(), which wipes it (it
 *            holds the subject's values in full). NULL on failure.
 * st    in:  an open store, not read-only (the export is audited).
 * who   in:  the subject, named as in ck_subject_find (a CK_BY_PSEUDONYM
 *            needs who->purpose). A look-up that matches several subjects
 *            is CK_EAMBIGUOUS, as everywhere.
 * actor in:  who exports, for the audit log: 1 to 256 bytes of text.
 * flags in:  0 (JSON) or CK_EXPORT_CSV.
 *
 * JSON: one compact object (docs/cli.md, "export", shows one whole):
 *   "format"    1 (the shape's version); "generated": when (store's clock);
 *   "subject"   the internal id, 32 hex characters (for the customer to
 *               quote); "created": when the subject was created;
 *   "fields"    every value held, decrypted and in full (not minimised), in
 *               field-name order: {"<field>": {"type", "sensitivity",
 *               "identifying", "retention_days" (when the field has one),
 *               "value" (the JSON form of docs/schema.md, as ck_result_json
 *               writes it), "updated" (its last write)}};
 *   "lookups"   how the subject can be found: {"ref": 0|1, "aliases": N,
 *               "identifying_fields": [names], "note"}. The store keeps the
 *               ref and aliases only as keyed hashes (blind indexes), never
 *               their text, so the export can count them but not show them;
 *   "consents"  {"current": {...}, "history": [...]} as ck_consent_json
 *               gives them, each record with "recorded" too (when the store
 *               recorded it, RFC 3339 with nanoseconds);
 *   "contacts"  {"<channel>": {"contacts": [times], "limit": N|null}} for
 *               each channel with a contact log: the contacts the store
 *               still holds (those a cap window may count: the last 1024
 *               within the longest window a schema may declare, 3660 days)
 *               and the subject's own cap (ck_contact_limit);
 *   "purposes"  every purpose of the schema, declared as ck_schema_get_json
 *               gives it (basis, description, benefit, fields, minimize,
 *               channel, tcf), plus "consent" - the subject's current
 *               consent state for it: granted, withdrawn, refused, objected,
 *               "expired" (granted, past its expiry) or "none" - and
 *               "may_use": whether its legal basis holds for the subject now
 *               (consent: granted and unexpired; legitimate interest: no
 *               objection; contract, legal obligation: always). Field-level
 *               rules (scope, recipients, special categories, contact caps,
 *               retention) may still withhold single fields;
 *   "releases"  every release (ck_release) and segment answer (ck_segment)
 *               of the subject's data in the audit log, oldest first:
 *               {"seq", "time", "actor", "action", "purpose", "recipient"
 *               (when named), "released": [fields], "withheld": {field:
 *               reason}} - found by the subject's audit pseudonym;
 *   "history"   the subject's other audit entries, oldest first (consent
 *               changes, contacts and limits, earlier exports): {"seq",
 *               "time", "actor", "action", "purpose"?, "detail"?}.
 * Times are RFC 3339 UTC; audit times have milliseconds.
 *
 * CSV (CK_EXPORT_CSV): the consent history, oldest first, RFC 4180: a
 * header line "purpose,state,at,expires,fields,recipients,source,notice,
 * collector,recorded", then one line per consent record, lines ended by
 * CRLF. A cell is quoted when it holds a comma, a double quote (doubled),
 * CR or LF. "fields" is "all" or the scope's fields and "recipients" the
 * recipients, one per line within the cell; "expires" and "recorded" are
 * empty when there is none. A cell that begins with =, +, -, @, tab or CR
 * is written with a leading single quote, so that a spreadsheet does not
 * read it as a formula (the quote is not part of the data).
 *
 * Everything comes from one snapshot of the store (one read transaction);
 * the audit log is read as ck_audit_query reads it, its chain checked. The
 * JSON export walks the whole log, so its time grows with the log's size
 * (the CSV export does not read the log).
 * Before the text is handed out an audit entry is written and fsync'ed:
 * action "export", the subject's audit pseudonym, detail "format" (json or
 * csv) and the counts "consents", "fields", "releases" (JSON only) - never
 * a value. If it cannot be written, nothing is returned.
 *
 * Returns CK_OK; CK_ENOTFOUND (no such subject, or no schema); CK_EAMBIGUOUS;
 * CK_EINVAL (actor, flags, a malformed subject reference); CK_EDENIED (the
 * store is open read-only); CK_EINTEGRITY (a record that does not
 * authenticate, a value of a field the schema does not declare, a bad
 * audit entry); CK_ELIMIT (more than 100 000 consent records, or an export
 * over 1 GiB); CK_EIO / CK_ENOSPC (the audit entry could not be written);
 * CK_ENOMEM.
 */
CK_EXPORT int ck_export(char **out, ck_store *st, const ck_who *who, const char *actor,
                        unsigned int flags);

/* ------------------------------------------------------------------------ */
/* Tombstones and restore                                                   */
/* ------------------------------------------------------------------------ */

/*
 * An erasure leaves tombstones: keyed hashes (BLAKE2b-128 under the
 * TOMBSTONE subkey of the root key) of the subject's ref, of each of its
 * identifying values and of its id, with the time of the erasure - never
 * the values, never the live blind-index bytes. They stop a re-import of
 * an old file (ck_import_options) and let ck_restore erase again, in a
 * restored backup, the subjects erased after it was made. Tags are
 * comparable only under the root key that made them: a tombstone file
 * serves the store it came from (and its backups and restores), no other.
 */

/*
 * ck_tombstones_export - write every tombstone of the store to a file, so
 * that the list survives the loss of the store (keep it apart from the
 * store and its backups, and export again after erasures).
 *
 * count out: optional: the number of tombstones written.
 * path  in:  the file; written to a temporary file beside it, fsync'ed,
 *            renamed over `path` (an existing file is replaced), mode 0600.
 * actor in:  who exports (audited, action "tombstones_export", strict,
 *            before the file is written).
 *
 * The file (docs/storage-format.md, "Tombstone files") is versioned and
 * authenticated: a MAC under a key derived from the store's root key
 * covers the store id, every tag and time. It holds keyed hashes, not
 * values in clear (SECURITY.md says what they reveal to a holder of the
 * key). `ck_restore` reads it; a modified, forged, truncated or other
 * store's file is refused there.
 *
 * Returns CK_OK; CK_EINVAL (no path or actor); CK_EDENIED (read-only);
 * CK_EINTEGRITY (a malformed tombstone in the store); CK_EIO; CK_ENOSPC;
 * CK_ENOMEM. On failure `path` is unchanged.
 */
CK_EXPORT int ck_tombstones_export(uint64_t *count, ck_store *st, const char *path,
                                   const char *actor);

#define CK_RESTORE_OPTIONS_VERSION 1

/* What ck_restore is given besides the key. Start from
 * CK_RESTORE_OPTIONS_INIT. Every pointer is borrowed for the call. */
typedef struct ck_restore_options {
    unsigned int version;               /* CK_RESTORE_OPTIONS_VERSION */
    const char *actor;                  /* required: who restores (audited) */
    const char *const *tombstone_files; /* files of ck_tombstones_export, or NULL */
    size_t n_tombstone_files;
} ck_restore_options;

#define CK_RESTORE_OPTIONS_INIT                                                                    \
    {                                                                                              \
        CK_RESTORE_OPTIONS_VERSION, NULL, NULL, 0                                                  \
    }

#define CK_RESTORE_RESULT_VERSION 1

/* What ck_restore did: counts, never a value. Start from
 * CK_RESTORE_RESULT_INIT. */
typedef struct ck_restore_result {
    unsigned int version;         /* CK_RESTORE_RESULT_VERSION */
    uint64_t subjects;            /* subjects in the backup */
    uint64_t replayed;            /* of them, erased again: the sum of */
    uint64_t replayed_by_id;      /*   named by the tombstone of their id */
    uint64_t replayed_by_ref;     /*   by their ref's (erased before id tombstones existed) */
    uint64_t replayed_by_value;   /*   by an identifying value's (subjects without a ref) */
    uint64_t replayed_unfinished; /*   records whose data key was already destroyed (an
                                       erasure cut short in the backup) */
    uint64_t tombstones;          /* distinct tombstones applied, the union of: */
    uint64_t tombstones_backup;   /*   the backup's */
    uint64_t tombstones_target;   /*   the replaced store's */
    uint64_t tombstones_files;    /*   the files' (entries read, duplicates included) */
    uint64_t backup_audit_seq;    /* the last entry of the backup's audit log */
    uint64_t target_audit_seq;    /* the last entry of the replaced store's log (0: none);
                                     the entries after backup_audit_seq are not in the
                                     restored log */
    uint64_t audit_seq;           /* the restore's own entry in the restored log */
    char *kept;                   /* where the replaced store was moved, or NULL when the
                                     target held none; free with ck_free() */
} ck_restore_result;

#define CK_RESTORE_RESULT_INIT                                                                     \
    {                                                                                              \
        CK_RESTORE_RESULT_VERSION, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL                     \
    }

/*
 * ck_restore - put the backup in `backup_dir` in place at `dir`, erasing
 * again every subject of it that a tombstone names, before it is visible.
 *
 * out        out: optional: what was done; out->version must be set. Filled
 *                 on CK_OK, and also on a failure after the new store was put
 *                 in place (out->kept then says where the old one is).
 * dir        in:  the target: absent, an empty directory, or a store.
 * backup_dir in:  a copy made by ck_backup (left as it is: opened
 *                 read-only; LMDB may create its lock files there).
 * opts       in:  the key (key_file / passphrase) that opens the backup - and
 *                 the target store, when there is one; flags: only
 *                 CK_OPEN_NOSYNC; clock, audit mode and map size apply to
 *                 the new store. Error detail goes to opts->errbuf (there
 *                 is no handle to ask): it never holds a value.
 * ro         in:  the actor and the tombstone files.
 *
 * The backup must open with the key (CK_EKEY otherwise: nothing changed)
 * and its audit log must verify (CK_EINTEGRITY). A target that holds a
 * store must open with the same key, hold the backup's store (the same
 * root key: tags compare only under it; CK_EEXIST otherwise) and be open
 * nowhere else: its store lock is taken exclusively (CK_EBUSY otherwise;
 * nothing changed), so nobody can open it until the call returns.
 *
 * Tombstone replay: the union of the backup's tombstones, the target's and
 * those of every file given (each must belong to the backup's store and
 * authenticate: CK_EINTEGRITY for a modified, truncated or forged file;
 * nothing changed) is written into the new store, and every subject of
 * the backup whose records the union names is erased again, exactly as
 * ck_erase does (audit entry "erase", reason "restore-replay", data key
 * destroyed and scrubbed before the data is deleted). A subject is named
 * by the tombstone of its id; or of its ref, or - for a subject without a
 * ref - of one of its identifying values, when it was created at or before
 * that erasure (a subject created after it, such as a customer re-created
 * with CK_IMPORT_RECREATE_ERASED, is someone new). A subject without a ref
 * that shares an identifying value with an erased subject and existed
 * before that erasure is erased too (counted in replayed_by_value).
 * Records whose data key is already gone are erased too. Every subject
 * record is opened (its key unwrapped, its record authenticated):
 * CK_EINTEGRITY when one does not open.
 *
 * All of this happens in a new directory beside the target
 * ("<dir>.restore-XXXXXX"): the backup's data and keyring copied entry by
 * entry (never page by page), its audit segments, and the target's key
 * slots and audit-signing.key when it holds a store (so a secret removed
 * after the backup stays removed). The restore is audited there (action
 * "restore", with the counts); when subjects were erased the copy is
 * compacted, so no byte of them is in any of its files; everything is
 * fsync'ed. Then it is put in place atomically: exchanged with the old
 * store by renameat2(RENAME_EXCHANGE) (renamed, for an absent or empty
 * target), and the parent directory fsync'ed. A crash at any point leaves
 * either the old or the new store whole at `dir` (and maybe a partial
 * "<dir>.restore-XXXXXX" beside it: as sensitive as the backup; remove
 * it). The old store is never deleted: it is kept at
 * "<dir>.replaced-XXXXXX" (out->kept) with everything written after the
 * backup - data, consent changes, audit entries, which the restored store
 * does not have: its audit log is the backup's followed by the restore's
 * entries, and verifies.
 *
 * No handle of the calling process may have `backup_dir` open (LMDB
 * forbids opening an environment twice in one process); one on `dir` is
 * detected (CK_EBUSY).
 *
 * Returns CK_OK; CK_EINVAL (arguments; the backup is the target; the
 * target is a symbolic link);
 * CK_EKEY; CK_ENOTFOUND (no store in backup_dir, no tombstone file, no
 * parent directory); CK_EEXIST (the target is a file, a non-empty
 * directory without a store, or another store); CK_EBUSY; CK_EINTEGRITY;
 * CK_EFORMAT; CK_EVERSION; CK_EIO (also: the file system cannot exchange
 * directories atomically); CK_ENOSPC; CK_ENOMEM. On failure nothing
 * changed at `dir`, unless out->kept is set: then the new store is in
 * place and only its last fsync or the renaming of the old one failed.
 */
CK_EXPORT int ck_restore(ck_restore_result *out, const char *dir, const char *backup_dir,
                         const ck_options *opts, const ck_restore_options *ro);

/* ------------------------------------------------------------------------ */
/* Audit log                                                                */
/* ------------------------------------------------------------------------ */

/*
 * Every release, consent change, schema change, export, erasure and key
 * operation appends an entry to the store's audit log: append-only segment
 * files "audit-NNNNNN.log" in the store directory, each entry chained to the
 * previous one by a keyed BLAKE2b (under a subkey of the root key), so that
 * changing, removing, reordering or inserting an entry is detected by
 * ck_audit_verify(). Removing entries at the END of the log is detectable
 * only against a checkpoint held elsewhere (ck_audit_checkpoint_make).
 *
 * An entry never holds a value, a ref or an identifying datum: it names the
 * actor, the action, the purpose, the recipient, the fields released and
 * withheld (with the reason) and refers to the subject by an *audit
 * pseudonym* - 16 bytes that cannot be recomputed once the subject has been
 * erased. docs/audit.md describes the format and the durability modes.
 *
 * A torn last entry (a crash in the middle of a write) is not tampering: it
 * is truncated when the store is next opened (not read-only), the repair is
 * itself logged (action "recover"), and ck_audit_recovered() tells how many
 * bytes were removed so that a tool can warn.
 */

#define CK_AUDIT_HASH_BYTES       32 /* a chain hash */
#define CK_AUDIT_PSEUDONYM_BYTES  16 /* a subject's audit pseudonym */
#define CK_AUDIT_PUBLIC_KEY_BYTES 32 /* Ed25519 public key of a checkpoint */
#define CK_AUDIT_SIGNATURE_BYTES  64 /* Ed25519 signature of a checkpoint */
#define CK_AUDIT_SEGMENT_NAME_MAX 32 /* "audit-NNNNNN.log" and its NUL */

/* A withheld field and the reason (no_consent, withdrawn, ...). */
typedef struct ck_audit_withheld_field {
    const char *field;
    const char *reason;
} ck_audit_withheld_field;

/* A detail item: a string when `str` is not NULL, else the integer `num`. */
typedef struct ck_audit_detail_item {
    const char *key;
    const char *str;
    int64_t num;
} ck_audit_detail_item;

/*
 * ck_audit_record - one entry of the log, as ck_audit_next() gives it.
 * Every pointer belongs to the cursor and is valid until the next call on
 * it (ck_audit_next or ck_audit_cursor_free). Strings are NUL-terminated.
 */
typedef struct ck_audit_record {
    uint64_t seq;                 /* 1, 2, 3, ... with no gap */
    uint64_t time_ms;             /* milliseconds since 1970-01-01T00:00:00Z */
    const char *actor;            /* who asked */
    const char *action;           /* release, segment, consent, erase, key, init, ... */
    const char *purpose;          /* or NULL */
    const char *recipient;        /* or NULL */
    const unsigned char *subject; /* CK_AUDIT_PSEUDONYM_BYTES, or NULL */
    const char *const *released;  /* field names released */
    size_t n_released;
    const ck_audit_withheld_field *withheld; /* field names withheld, with why */
    size_t n_withheld;
    const ck_audit_detail_item *detail; /* counts, receipts, slot names, ... */
    size_t n_detail;
    unsigned char hash[CK_AUDIT_HASH_BYTES]; /* the entry's chain hash */
    const char *segment;                     /* the segment file that holds it */
    uint64_t offset;                         /* byte offset of its frame in that file */
} ck_audit_record;

/* What ck_audit_verify found wrong first. */
typedef enum ck_audit_problem {
    CK_AUDIT_PROBLEM_NONE = 0,
    CK_AUDIT_PROBLEM_HASH = 1,        /* an entry's chain hash does not match:
                                         the entry or its hash was changed, or
                                         it was forged */
    CK_AUDIT_PROBLEM_SEQ = 2,         /* sequence number out of order: entries
                                         removed, reordered or inserted */
    CK_AUDIT_PROBLEM_UNDECODABLE = 3, /* a frame or entry is not well formed */
    CK_AUDIT_PROBLEM_MISSING = 4,     /* a segment file (or entry 1) is missing */
    CK_AUDIT_PROBLEM_CHECKPOINT = 5   /* the log does not extend the checkpoint
                                         (or its signature is wrong) */
} ck_audit_problem;

#define CK_AUDIT_VERIFY_VERSION 1

/* The outcome of ck_audit_verify. Start from CK_AUDIT_VERIFY_INIT. */
typedef struct ck_audit_verify_result {
    unsigned int version;  /* CK_AUDIT_VERIFY_VERSION */
    uint64_t entries;      /* entries checked (all of them on success) */
    unsigned int segments; /* segment files walked */
    uint64_t head_seq;     /* the last good entry: its sequence number, */
    uint64_t head_time_ms; /*   time and chain hash (0 when there is none) */
    unsigned char head_hash[CK_AUDIT_HASH_BYTES];
    uint64_t torn_bytes;      /* bytes of an incomplete last entry seen now and not
                                 counted (a read-only handle, or a write in
                                 progress in another process); not an error */
    uint64_t recovered_bytes; /* torn bytes this handle removed at open */
    /* When the result is CK_EINTEGRITY, the first bad entry: */
    ck_audit_problem problem;
    char segment[CK_AUDIT_SEGMENT_NAME_MAX]; /* its segment file name */
    uint64_t offset;                         /* byte offset of its frame in that file */
    uint64_t seq;                            /* the sequence number expected at that place */
} ck_audit_verify_result;

#define CK_AUDIT_VERIFY_INIT                                                                       \
    {                                                                                              \
        CK_AUDIT_VERIFY_VERSION, 0, 0u, 0, 0, {0}, 0, 0, CK_AUDIT_PROBLEM_NONE, {0}, 0, 0          \
    }

#define CK_AUDIT_CHECKPOINT_VERSION 1

/*
 * ck_audit_checkpoint - a signed statement of the log's head: "entry `seq`
 * has chain hash `hash`". Whoever keeps a checkpoint (a third party, an
 * offline copy) can later check that the log still extends it, so that
 * entries removed from the end of the log are detected.
 *
 * The signature is Ed25519 over
 *     "ckstore-audit-checkpoint-v1" || store_id || seq (u64 BE) ||
 *     time_ms (u64 BE) || hash
 * by a key that does not derive from the store's root key (its own file).
 */
typedef struct ck_audit_checkpoint {
    unsigned int version; /* CK_AUDIT_CHECKPOINT_VERSION */
    uint64_t seq;
    uint64_t time_ms;
    unsigned char hash[CK_AUDIT_HASH_BYTES];
    unsigned char store_id[CK_STORE_ID_BYTES];
    unsigned char public_key[CK_AUDIT_PUBLIC_KEY_BYTES];
    unsigned char signature[CK_AUDIT_SIGNATURE_BYTES];
} ck_audit_checkpoint;

/*
 * ck_audit_verify - walk every segment of the log, recompute the chain and
 * check the sequence numbers and the segments' continuity.
 *
 * out in/out: the caller sets out->version (start from
 *             CK_AUDIT_VERIFY_INIT); filled on CK_OK and CK_EINTEGRITY.
 * st  in:     an open store (read-only is fine).
 * cp  in:     NULL, or a checkpoint: its signature is checked first, then
 *             that the log holds entry cp->seq with exactly cp->hash (it
 *             extends that head). The signature proves only that the holder
 *             of the signing key made it: compare cp->public_key with the
 *             key you expect.
 *
 * Entries appended by other processes while it runs may or may not be
 * counted. An incomplete last entry is reported in torn_bytes, not as an
 * error.
 *
 * Returns CK_OK; CK_EINTEGRITY with the first bad entry in `out` (problem,
 * segment, offset, seq) and in ck_errmsg(); CK_EINVAL (bad version, a
 * checkpoint of another store is CK_EINTEGRITY); CK_EIO; CK_ENOMEM.
 */
CK_EXPORT CK_MUST_CHECK int ck_audit_verify(ck_audit_verify_result *out, ck_store *st,
                                            const ck_audit_checkpoint *cp);

/*
 * ck_audit_checkpoint_make - log an entry (action "checkpoint") and sign
 * the head it makes.
 *
 * out              out: the signed checkpoint (out->version is set); zeroed
 *                       on failure.
 * st               in:  an open store, not read-only.
 * signing_key_file in:  the Ed25519 seed file (32 bytes), or NULL for
 *                       "<store dir>/audit-signing.key". A missing file is
 *                       created (32 random bytes, mode 0600). It must be
 *                       safe like a key file: a regular file owned by the
 *                       caller, no group or other permission.
 *
 * Returns CK_OK; CK_EKEY (signing key file unsafe or not 32 bytes);
 * CK_EDENIED (read-only); CK_EIO; CK_ENOMEM; and the errors of an append.
 */
CK_EXPORT int ck_audit_checkpoint_make(ck_audit_checkpoint *out, ck_store *st,
                                       const char *signing_key_file);

/*
 * ck_audit_checkpoint_check - check a checkpoint's signature only, with the
 * public key it carries (no store needed: what a third party runs).
 * Returns CK_OK; CK_EINTEGRITY; CK_EINVAL (NULL or bad version).
 */
CK_EXPORT CK_MUST_CHECK int ck_audit_checkpoint_check(const ck_audit_checkpoint *cp);

/*
 * ck_audit_recovered - bytes of a torn last entry that this handle removed
 * when it opened the store (0: none). The removal is logged in the chain
 * (action "recover"); a tool shows it as a warning. NULL gives 0.
 */
CK_EXPORT uint64_t ck_audit_recovered(ck_store *st);

#define CK_AUDIT_FILTER_VERSION 1

/*
 * ck_audit_filter - which entries a query gives. NULL / 0 fields do not
 * filter. Start from CK_AUDIT_FILTER_INIT. All pointers are borrowed for
 * the duration of ck_audit_query only (the cursor copies them).
 */
typedef struct ck_audit_filter {
    unsigned int version;         /* CK_AUDIT_FILTER_VERSION */
    const char *actor;            /* exact match */
    const char *action;           /* exact match */
    const char *purpose;          /* exact match */
    const unsigned char *subject; /* CK_AUDIT_PSEUDONYM_BYTES, or NULL */
    uint64_t since_ms;            /* time_ms >= since_ms */
    uint64_t until_ms;            /* time_ms < until_ms (0: no bound) */
} ck_audit_filter;

#define CK_AUDIT_FILTER_INIT                                                                       \
    {                                                                                              \
        CK_AUDIT_FILTER_VERSION, NULL, NULL, NULL, NULL, 0, 0                                      \
    }

/* A walk over the log, oldest entry first. Opaque. */
typedef struct ck_audit_cursor ck_audit_cursor;

/*
 * ck_audit_query - start a walk over the entries that match `f`.
 *
 * out out: the cursor, or NULL on failure; free it with
 *          ck_audit_cursor_free() before closing the store.
 * st  in:  an open store (read-only is fine).
 * f   in:  the filter, or NULL for every entry.
 *
 * The cursor checks the chain as it reads (so what it returns is
 * authentic) and holds no lock: other threads and processes keep
 * appending, and entries appended during the walk may or may not be seen.
 * Returns CK_OK; CK_EINVAL (bad filter version); CK_EIO; CK_ENOMEM.
 */
CK_EXPORT int ck_audit_query(ck_audit_cursor **out, ck_store *st, const ck_audit_filter *f);

/*
 * ck_audit_next - the next matching entry.
 *
 * c   in:  a cursor from ck_audit_query.
 * out out: the record, valid until the next call on `c`; NULL unless CK_OK.
 *
 * Returns CK_OK; CK_ENOTFOUND at the end of the log; CK_EINTEGRITY when the
 * walk meets a bad entry (ck_errmsg() of the store names it; the cursor then
 * stays at its end); CK_EIO; CK_ENOMEM.
 */
CK_EXPORT int ck_audit_next(ck_audit_cursor *c, const ck_audit_record **out);

/* ck_audit_cursor_free - release a cursor. NULL is a no-op. */
CK_EXPORT void ck_audit_cursor_free(ck_audit_cursor *c);

/*
 * ck_audit_subject - the audit pseudonym of a subject: what the `subject`
 * of its entries holds, so that a caller can set ck_audit_filter.subject
 * to see one subject's entries.
 *
 * out out: CK_AUDIT_PSEUDONYM_BYTES bytes; zeroed on failure.
 * st  in:  an open store (read-only is fine).
 * who in:  the subject, named as in ck_subject_find (a CK_BY_PSEUDONYM
 *          needs who->purpose).
 *
 * An erased subject has no pseudonym any more (its salt went with its data
 * key): its past entries can no longer be tied to it.
 * Returns CK_OK; CK_ENOTFOUND (unknown or erased subject); CK_EAMBIGUOUS;
 * CK_EINVAL; CK_EINTEGRITY; CK_EIO; CK_ENOMEM.
 */
CK_EXPORT int ck_audit_subject(unsigned char out[CK_AUDIT_PSEUDONYM_BYTES], ck_store *st,
                               const ck_who *who);

/*
 * ck_audit_report_json - the data protection officer's summary, as JSON.
 *
 * out out: NUL-terminated compact JSON (keys sorted); free with ck_free().
 *          NULL on failure.
 * st  in:  an open store (read-only is fine).
 * f   in:  NULL for the whole log, or a filter of which only since_ms,
 *          until_ms, actor and purpose apply (action and subject are
 *          ignored). The purpose keeps the entries of that purpose (and
 *          the pairs of an import's consent entries that name it) and the
 *          consent index of that purpose only.
 *
 * From the audit log (walked as ck_audit_query does, so its chain is
 * checked): "entries" counted and "range" {first, last} of their times;
 * "actions" {action: n}; "releases" and "segment_answers" (one per subject
 * a segment answered); "purposes" {P: {releases, segment_answers,
 * fields_released, withheld: {reason: n}}}; "actors" {A: {releases,
 * segment_answers}}; "consent_changes" {total, by_purpose: {P: {state:
 * n}}}; "contacts" {total, by_channel: {channel: n}}; "erasures",
 * "exports", "schema_changes", "key_operations". From the consent index
 * (the current state, not the history), "consents_now" {at, purposes: {P:
 * {basis, granted, withdrawn, refused, objected, expired, expiring_30d}}}
 * for each purpose of the current schema (null when no schema was
 * applied): subjects per current state, where "granted" counts unexpired
 * consents only, "expired" the granted ones whose expiry is at or before
 * now (the store's clock), and "expiring_30d" the granted ones that
 * expire within the next 30 days. "filter" echoes what applied. The
 * report holds names, counts and times only - never a value, a ref or a
 * pseudonym.
 *
 * Returns CK_OK; CK_EINVAL (bad filter version); CK_EINTEGRITY (a bad
 * entry in the log, or a malformed consent index entry); CK_EIO;
 * CK_ENOMEM.
 */
CK_EXPORT int ck_audit_report_json(char **out, ck_store *st, const ck_audit_filter *f);

/* ------------------------------------------------------------------------ */
/* TCF consent strings                                                      */
/* ------------------------------------------------------------------------ */

/*
 * A TC string is the consent signal of the IAB Europe Transparency and
 * Consent Framework v2 ("Consent string and vendor list formats v2", IAB
 * Tech Lab): base64url segments joined by '.', the core segment first, then
 * optional disclosed-vendors, allowed-vendors and publisher-TC segments.
 * Decoding needs no store. docs/tcf.md lists what is accepted and refused.
 */

/* Longest TC string accepted, in bytes of text. */
#define CK_TCF_TEXT_MAX 65536u
/* Most vendor ids a decoded string may hold in all (its vendor lists and
 * publisher restrictions together): a few bytes of range entries can name
 * 65535 vendors. */
#define CK_TCF_IDS_MAX 524288u

/*
 * ck_tcf_decode_json - decode a TCF v2 TC string into JSON.
 *
 * out     out: NUL-terminated JSON text, one compact object with the field
 *              names of the IAB reference implementation (version, created,
 *              lastUpdated, cmpId, ..., vendorConsents, publisherRestrictions,
 *              vendorsDisclosed, ...; docs/tcf.md shows it). Times are RFC
 *              3339 UTC; id lists are ascending and 1-based; absent segments
 *              give empty lists. Free with ck_free(). NULL on failure.
 * tc      in:  `len` bytes of the string (no NUL needed; no surrounding
 *              whitespace), at most CK_TCF_TEXT_MAX.
 * err     out: if not NULL, receives on failure why, in at most err_max
 *              bytes with the NUL (CK_ERRMSG_MAX is enough): the segment,
 *              the bit and the field, e.g. "core segment: truncated at bit
 *              213 (vendor consents: MaxVendorId)". "" on success. It names
 *              positions, never the string's content.
 *
 * Malformed input is refused, never read past: a character outside the
 * base64url alphabet, '=' padding, an empty segment, truncation anywhere, a
 * version other than 2, an unknown or repeated segment type, letters
 * outside A-Z, restriction type 3, purpose id 0, vendor id 0, a range that
 * ends before it starts or past MaxVendorId, a bitfield longer than the
 * data, non-zero bits after a segment's content.
 *
 * Returns CK_OK; CK_EINVAL for a malformed string (or `out` NULL);
 * CK_ELIMIT when it is longer than CK_TCF_TEXT_MAX or names more than
 * CK_TCF_IDS_MAX vendor ids; CK_ENOMEM.
 */
CK_EXPORT int ck_tcf_decode_json(char **out, const char *tc, size_t len, char *err, size_t err_max);

/*
 * Mapping a TC string onto the schema's purposes. A purpose of the schema
 * may declare the TCF signals it stands for (docs/schema.md, "tcf"):
 *
 *   "ads":  {"basis": "consent", ..., "tcf": {"purposes": [1, 3, 4],
 *            "special_features": [1], "vendor": 755}}
 *   "site": {"basis": "legitimate_interest", ...,
 *            "tcf": {"purposes": [8], "publisher": true}}
 *
 * ck_consent_tcf reads the string's signals for each such purpose
 * (docs/tcf.md, "Mapping onto purposes"): every mapped TCF purpose's bit,
 * every special feature's opt-in, and the named vendor's bit (with no
 * publisher restriction "not allowed" for it) or the publisher's bits (the
 * publisher TC segment must be present). The bits read are the consent
 * bits for a consent purpose, which is then granted or refused, and the
 * legitimate-interest bits for a legitimate-interest purpose, which is
 * then granted or objected.
 */

/* What ck_consent_tcf did for one purpose. */
typedef enum ck_tcf_action {
    CK_TCF_APPLIED = 1, /* a consent record was appended with `state` */
    CK_TCF_OLDER = 2,   /* nothing written: the string is older than the
                           subject's current record for the purpose (the
                           newest signal wins; an equal time applies) */
    CK_TCF_SAME = 3     /* nothing written: the current record was mapped
                           from this very string, to the same state */
} ck_tcf_action;

typedef struct ck_tcf_outcome {
    const char *purpose;    /* a purpose of the schema that declares "tcf" */
    ck_tcf_action action;   /* what was done */
    ck_consent_state state; /* what the string signals for the purpose:
                               granted or refused (basis consent), granted or
                               objected (legitimate interest); recorded only
                               when action is CK_TCF_APPLIED */
} ck_tcf_outcome;

#define CK_TCF_RESULT_VERSION 1

/*
 * ck_tcf_result - what ck_consent_tcf did. Start from CK_TCF_RESULT_INIT;
 * release with ck_tcf_result_free (the outcomes and their names are valid
 * until then).
 */
typedef struct ck_tcf_result {
    unsigned int version;           /* CK_TCF_RESULT_VERSION */
    int64_t at;                     /* the time of the records, Unix seconds: the
                                       string's lastUpdated (tenths dropped), or
                                       the store's clock when that is later */
    const ck_tcf_outcome *outcomes; /* one per purpose declaring "tcf", in name order */
    size_t count;
    size_t applied; /* outcomes with CK_TCF_APPLIED */
    void *priv_;    /* the library's storage */
} ck_tcf_result;

#define CK_TCF_RESULT_INIT                                                                         \
    {                                                                                              \
        CK_TCF_RESULT_VERSION, 0, NULL, 0, 0, NULL                                                 \
    }

/*
 * ck_consent_tcf - record what a TC string says for each purpose of the
 * schema that declares "tcf".
 *
 * out   out: optional (NULL allowed): what was done, per purpose; its
 *            `version` must be set (CK_TCF_RESULT_INIT). Release with
 *            ck_tcf_result_free, also after a failure (it is then empty).
 * who   in:  the subject (it must exist).
 * tc    in:  `len` bytes of the TC string, as ck_tcf_decode_json takes it.
 * actor in:  who records it (written to the audit log).
 *
 * Each purpose whose signal is newer than (or as old as) the subject's
 * current record for it gets a consent record: `at` the string's
 * lastUpdated (at most the store's clock: a string dated in the future
 * must not outlive the signals that follow it), source "tcf", notice
 * "cmp:<cmpId>/<cmpVersion>/v<policyVersion>", scope all the purpose's
 * fields, no recipient, no expiry; the string itself is sealed in the
 * record as evidence (ck_consent_json shows it as "tc_string"). A purpose
 * whose current record is newer is left as it is (CK_TCF_OLDER), and so is
 * one whose current record came from this same string (CK_TCF_SAME): a
 * string sent again with every visit appends nothing.
 *
 * Everything happens in one write transaction, and every record appended
 * is audited (action "consent", via "tcf", fsync'ed) before it commits; a
 * failed call writes nothing.
 *
 * Returns CK_OK; CK_EINVAL for a malformed string (ck_errmsg() gives the
 * decoder's message, as ck_tcf_decode_json's `err`), a string whose
 * lastUpdated is zero, a schema in which no purpose declares "tcf" ("no
 * purpose of the schema maps TCF signals"), a missing actor or subject, or
 * an unsupported `out->version`; CK_ELIMIT for a string over
 * CK_TCF_TEXT_MAX bytes or CK_TCF_IDS_MAX vendor ids; CK_ENOTFOUND (no
 * such subject, or no schema); CK_EAMBIGUOUS; CK_EDENIED (read-only);
 * CK_EINTEGRITY; CK_EIO; CK_ENOSPC; CK_ENOMEM.
 */
CK_EXPORT int ck_consent_tcf(ck_tcf_result *out, ck_store *st, const ck_who *who, const char *tc,
                             size_t len, const char *actor);

/*
 * ck_tcf_result_json - a result as one line of JSON:
 *   {"at":"2024-03-02T08:30:15Z",
 *    "applied":[{"purpose":"ads","state":"granted"}, ...],
 *    "unchanged":[{"purpose":"x","state":"refused",
 *                  "reason":"older than the current record"}, ...]}
 * (reasons: "older than the current record", "already recorded from this
 * string"; purposes in name order). out: free with ck_free(); NULL on
 * failure. Returns CK_OK; CK_EINVAL; CK_ENOMEM.
 */
CK_EXPORT int ck_tcf_result_json(char **out, const ck_tcf_result *r);

/* ck_tcf_result_free - release a result and reset it to CK_TCF_RESULT_INIT.
 * NULL is a no-op. */
CK_EXPORT void ck_tcf_result_free(ck_tcf_result *r);

#ifdef __cplusplus
}
#endif

#endif /* CKSTORE_H */
