/*
 * ident.h - how subjects are found without storing who they are:
 * normalisation, blind indexes, per-context pseudonyms.
 */
#ifndef CK_IDENT_H
#define CK_IDENT_H

#include "store.h"

/* How a value is normalised before it is blind-indexed. */
typedef enum ck_norm_kind {
    CK_NORM_EXACT = 0, /* refs and aliases: trimmed, otherwise as given */
    CK_NORM_TEXT = 1,  /* names, addresses: trimmed, Unicode NFC, case kept */
    CK_NORM_EMAIL = 2, /* trimmed, NFC, Unicode case-folded; needs one '@' */
    CK_NORM_PHONE = 3  /* E.164: "+" and 8-15 digits; French national numbers
                          (10 digits starting with 0) become +33... */
} ck_norm_kind;

/* The normalisation an identifying field gets, from its name: names that
 * contain "email" or "mail" -> EMAIL; "phone", "mobile", "tel" -> PHONE;
 * anything else -> TEXT. */
ck_norm_kind ck_ident__norm_kind_for(const char *field_name);

/* Normalise `n` bytes at `s` into `out` (reset first). The result is a
 * customer value: pass a secure buffer (CK_BUF_SECURE_INIT) so it is wiped.
 * CK_OK, or CK_EINVAL
 * when the value cannot be normalised (invalid UTF-8, a phone number that is
 * not one, an e-mail without '@', empty after trimming); CK_ENOMEM. */
int ck_ident__normalize(ck_buf *out, ck_norm_kind kind, const char *s, size_t n);

/* Blind index tags. Kinds of index entry. */
#define CK_BLIND_BYTES     16
#define CK_INDEX_KEY_BYTES (1 + 2 + CK_BLIND_BYTES)
typedef enum ck_index_kind {
    CK_INDEX_REF = 1,   /* the CRM's customer number */
    CK_INDEX_FIELD = 2, /* an identifying field */
    CK_INDEX_ALIAS = 3  /* a customer-chosen handle */
} ck_index_kind;

/* Index key = kind (1) || field id (u16 BE, 0 for refs and aliases) ||
 * BLAKE2b-128(key = BLIND subkey, "ckbi1" || kind || field id || value).
 * The field id in the hashed message keeps equal values of two fields
 * unlinkable. `norm` must already be normalised. */
void ck_ident__index_key(uint8_t out[CK_INDEX_KEY_BYTES], const ck_store *st, ck_index_kind kind,
                         uint16_t field_id, const uint8_t *norm, size_t n);

/* Pseudonyms: deterministic authenticated encryption (SIV-like) of the
 * subject id under a key of the context (the purpose, or the purpose and
 * a recipient):
 *   K1 || K2 = BLAKE2b-512(key = PSEUDONYM subkey, context)
 *   tag = BLAKE2b-128(key = K1, sid);  ct = sid XOR ChaCha20(K2, tag[0..12))
 *   pseudonym = tag || ct   (32 bytes; 43 characters of base64url)
 * Stable within a context, unlinkable across contexts without the store's
 * key, and resolvable back to the subject only in its own context (the
 * tag is checked), with no index to store or erase. */
#define CK_PSEUDONYM_BYTES 32
#define CK_PSEUDONYM_CHARS 43 /* base64url, no padding, without the NUL */

void ck_ident__pseudonym(uint8_t out[CK_PSEUDONYM_BYTES], const ck_store *st, const char *purpose,
                         const char *recipient, const uint8_t sid[CK_SUBJECT_ID_BYTES]);
/* CK_OK and the subject id, or CK_ENOTFOUND when `ps` was not made in this
 * context (or is forged). */
CK_MUST_CHECK int ck_ident__resolve(uint8_t sid[CK_SUBJECT_ID_BYTES], const ck_store *st,
                                    const char *purpose, const char *recipient,
                                    const uint8_t ps[CK_PSEUDONYM_BYTES]);
/* Text form: base64url without padding, NUL-terminated (44 bytes). */
void ck_ident__pseudonym_text(char out[CK_PSEUDONYM_CHARS + 1],
                              const uint8_t ps[CK_PSEUDONYM_BYTES]);
/* CK_OK or CK_EINVAL (not 43 base64url characters). */
int ck_ident__pseudonym_parse(uint8_t ps[CK_PSEUDONYM_BYTES], const char *s, size_t n);

#endif /* CK_IDENT_H */
