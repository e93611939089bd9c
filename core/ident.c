/*
 * ident.c - normalisation, blind indexes and pseudonyms (see ident.h).
 *
 * Unicode normalisation (NFC) and case folding come from utf8proc: the
 * Unicode tables are exactly the kind of thing a maintained library does
 * better than code of our own.
 */
#include "ident.h"

#include <string.h>
#include <utf8proc.h>

/* ------------------------------------------------------------------------ */
/* Normalisation                                                            */
/* ------------------------------------------------------------------------ */

ck_norm_kind ck_ident__norm_kind_for(const char *name)
{
    if (strstr(name, "email") != NULL || strstr(name, "mail") != NULL)
        return CK_NORM_EMAIL;
    if (strstr(name, "phone") != NULL || strstr(name, "mobile") != NULL ||
        strstr(name, "tel") != NULL)
        return CK_NORM_PHONE;
    return CK_NORM_TEXT;
}

/* Longest run of digits a phone value may hold before it is refused. */
#define CK_PHONE_DIGITS_MAX 32

/* Trim ASCII white space and U+00A0 (no-break space, common in pasted
 * French text) at both ends. */
static void trim(const char **s, size_t *n)
{
    const char *p = *s;
    size_t len = *n;
    for (;;) {
        if (len > 0 && (p[0] == ' ' || (p[0] >= '\t' && p[0] <= '\r'))) {
            p++;
            len--;
        } else if (len > 1 && (unsigned char)p[0] == 0xc2 && (unsigned char)p[1] == 0xa0) {
            p += 2;
            len -= 2;
        } else {
            break;
        }
    }
    for (;;) {
        if (len > 0 && (p[len - 1] == ' ' || (p[len - 1] >= '\t' && p[len - 1] <= '\r')))
            len--;
        else if (len > 1 && (unsigned char)p[len - 2] == 0xc2 && (unsigned char)p[len - 1] == 0xa0)
            len -= 2;
        else
            break;
    }
    *s = p;
    *n = len;
}

/* NFC (and case folding when `fold`) through utf8proc into out.
 *
 * Pure ASCII, most e-mail addresses and many names, does not need
 * utf8proc: NFC leaves ASCII as it is, and the Unicode case folding of an
 * ASCII character is its ASCII lower case (CaseFolding.txt folds nothing
 * else below U+0080). The result is the same, without utf8proc's
 * decomposition, recomposition and allocation (tests/test_ident.c checks
 * every ASCII character against utf8proc). */
static int unicode_map(ck_buf *out, const char *s, size_t n, bool fold)
{
    size_t ascii = 0;
    while (ascii < n && (unsigned char)s[ascii] < 0x80)
        ascii++;
    if (ascii == n) {
        CK_TRY(ck_buf__reserve(out, n));
        uint8_t *d = out->p + out->len;
        for (size_t i = 0; i < n; i++) {
            char c = s[i];
            d[i] = (uint8_t)(fold && c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        }
        out->len += n;
        return CK_OK;
    }
    if (!ck_codec__utf8_valid(s, n))
        return CK_EINVAL;
    utf8proc_uint8_t *mapped = NULL;
    int opts = UTF8PROC_STABLE | UTF8PROC_COMPOSE | (fold ? UTF8PROC_CASEFOLD : 0);
    utf8proc_ssize_t len = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &mapped,
                                        (utf8proc_option_t)opts);
    if (len < 0)
        return len == UTF8PROC_ERROR_NOMEM ? CK_ENOMEM : CK_EINVAL;
    int rc = ck_buf__append(out, mapped, (size_t)len);
    sodium_memzero(mapped, (size_t)len);
    free(mapped); /* utf8proc allocates with malloc */
    return rc;
}

static int phone_digits(ck_buf *out, char digits[CK_PHONE_DIGITS_MAX], const char *s, size_t n)
{
    size_t nd = 0;
    bool plus = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9') {
            if (nd == CK_PHONE_DIGITS_MAX)
                return CK_EINVAL;
            digits[nd++] = c;
        } else if (c == '+' && nd == 0 && !plus) {
            plus = true;
        } else if (c == ' ' || c == '.' || c == '-' || c == '(' || c == ')' || c == '/') {
            continue;
        } else if ((unsigned char)c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] == 0xa0) {
            i++; /* no-break space */
        } else {
            return CK_EINVAL;
        }
    }
    const char *d = digits;
    if (!plus && nd >= 2 && digits[0] == '0' && digits[1] == '0') {
        d += 2; /* 00 international prefix */
        nd -= 2;
        plus = true;
    }
    if (!plus) {
        /* A French national number: 0 and nine digits. */
        if (nd != 10 || digits[0] != '0')
            return CK_EINVAL;
        CK_TRY(ck_buf__append(out, "+33", 3));
        return ck_buf__append(out, digits + 1, 9);
    }
    if (nd < 8 || nd > 15 || d[0] == '0')
        return CK_EINVAL;
    CK_TRY(ck_buf__append(out, "+", 1));
    return ck_buf__append(out, d, nd);
}

/* The digits are a customer value: wipe the stack copy on every path. */
static int normalize_phone(ck_buf *out, const char *s, size_t n)
{
    char digits[CK_PHONE_DIGITS_MAX] = {0};
    int rc = phone_digits(out, digits, s, n);
    sodium_memzero(digits, sizeof digits);
    return rc;
}

int ck_ident__normalize(ck_buf *out, ck_norm_kind kind, const char *s, size_t n)
{
    ck_buf__reset(out);
    trim(&s, &n);
    if (n == 0)
        return CK_EINVAL;
    switch (kind) {
    case CK_NORM_EXACT:
        if (!ck_codec__utf8_valid(s, n))
            return CK_EINVAL;
        return ck_buf__append(out, s, n);
    case CK_NORM_TEXT:
        return unicode_map(out, s, n, false);
    case CK_NORM_EMAIL: {
        const char *at = memchr(s, '@', n);
        if (at == NULL || at == s || at == s + n - 1 ||
            memchr(at + 1, '@', n - (size_t)(at - s) - 1))
            return CK_EINVAL;
        return unicode_map(out, s, n, true);
    }
    case CK_NORM_PHONE:
        return normalize_phone(out, s, n);
    }
    return CK_EINVAL;
}

/* ------------------------------------------------------------------------ */
/* Blind indexes                                                            */
/* ------------------------------------------------------------------------ */

void ck_ident__index_key(uint8_t out[CK_INDEX_KEY_BYTES], const ck_store *st, ck_index_kind kind,
                         uint16_t field_id, const uint8_t *norm, size_t n)
{
    uint8_t head[5 + 1 + 2];
    memcpy(head, "ckbi1", 5);
    head[5] = (uint8_t)kind;
    head[6] = (uint8_t)(field_id >> 8);
    head[7] = (uint8_t)field_id;
    crypto_generichash_state h;
    crypto_generichash_init(&h, ck_store__subkey(st, CK_SUBKEY_BLIND), CK_KEY_BYTES,
                            CK_BLIND_BYTES);
    crypto_generichash_update(&h, head, sizeof head);
    crypto_generichash_update(&h, norm, n);
    out[0] = (uint8_t)kind;
    out[1] = head[6];
    out[2] = head[7];
    crypto_generichash_final(&h, out + 3, CK_BLIND_BYTES);
    sodium_memzero(&h, sizeof h);
}

/* ------------------------------------------------------------------------ */
/* Pseudonyms                                                               */
/* ------------------------------------------------------------------------ */

static void context_keys(unsigned char k[64], const ck_store *st, const char *purpose,
                         const char *recipient)
{
    /* Lengths before each part so ("ab","c") and ("a","bc") differ. */
    uint8_t lens[5 + 8];
    size_t pl = strlen(purpose), rl = recipient != NULL ? strlen(recipient) : 0;
    memcpy(lens, "ckps1", 5);
    for (int i = 0; i < 4; i++) {
        lens[5 + i] = (uint8_t)(pl >> (24 - 8 * i));
        lens[9 + i] = (uint8_t)(recipient != NULL ? (rl + 1) >> (24 - 8 * i) : 0);
    }
    crypto_generichash_state h;
    crypto_generichash_init(&h, ck_store__subkey(st, CK_SUBKEY_PSEUDONYM), CK_KEY_BYTES, 64);
    crypto_generichash_update(&h, lens, sizeof lens);
    crypto_generichash_update(&h, (const unsigned char *)purpose, pl);
    if (recipient != NULL)
        crypto_generichash_update(&h, (const unsigned char *)recipient, rl);
    crypto_generichash_final(&h, k, 64);
    sodium_memzero(&h, sizeof h);
}

void ck_ident__pseudonym(uint8_t out[CK_PSEUDONYM_BYTES], const ck_store *st, const char *purpose,
                         const char *recipient, const uint8_t sid[CK_SUBJECT_ID_BYTES])
{
    unsigned char k[64];
    context_keys(k, st, purpose, recipient);
    crypto_generichash(out, 16, sid, CK_SUBJECT_ID_BYTES, k, 32);
    crypto_stream_chacha20_ietf_xor(out + 16, sid, CK_SUBJECT_ID_BYTES, out, k + 32);
    sodium_memzero(k, sizeof k);
}

int ck_ident__resolve(uint8_t sid[CK_SUBJECT_ID_BYTES], const ck_store *st, const char *purpose,
                      const char *recipient, const uint8_t ps[CK_PSEUDONYM_BYTES])
{
    unsigned char k[64];
    uint8_t cand[CK_SUBJECT_ID_BYTES], tag[16];
    context_keys(k, st, purpose, recipient);
    crypto_stream_chacha20_ietf_xor(cand, ps + 16, CK_SUBJECT_ID_BYTES, ps, k + 32);
    crypto_generichash(tag, sizeof tag, cand, sizeof cand, k, 32);
    sodium_memzero(k, sizeof k);
    if (sodium_memcmp(tag, ps, sizeof tag) != 0)
        return CK_ENOTFOUND;
    memcpy(sid, cand, sizeof cand);
    return CK_OK;
}

void ck_ident__pseudonym_text(char out[CK_PSEUDONYM_CHARS + 1],
                              const uint8_t ps[CK_PSEUDONYM_BYTES])
{
    sodium_bin2base64(out, CK_PSEUDONYM_CHARS + 1, ps, CK_PSEUDONYM_BYTES,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

int ck_ident__pseudonym_parse(uint8_t ps[CK_PSEUDONYM_BYTES], const char *s, size_t n)
{
    size_t len = 0;
    if (n != CK_PSEUDONYM_CHARS ||
        sodium_base642bin(ps, CK_PSEUDONYM_BYTES, s, n, NULL, &len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        len != CK_PSEUDONYM_BYTES)
        return CK_EINVAL;
    return CK_OK;
}
