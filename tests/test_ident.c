/*
 * test_ident.c - normalisation, blind-index keys, pseudonyms.
 */
/* ck-test: fast */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <utf8proc.h>

#include "ident.h"
#include "fixture.h"

typedef struct norm_case {
    ck_norm_kind kind;
    const char *in;
    const char *out; /* NULL: refused with CK_EINVAL */
} norm_case;

static const norm_case CASES[] = {
    /* e-mail: trimmed, case-folded (accents included), NFC */
    {CK_NORM_EMAIL, "  Gabriel.Durand2@Gmail.COM \t", "gabriel.durand2@gmail.com"},
    {CK_NORM_EMAIL, "\xc3\x89lodie@Exemple.FR", "\xc3\xa9lodie@exemple.fr"},  /* Élodie */
    {CK_NORM_EMAIL, "E\xcc\x81lodie@exemple.fr", "\xc3\xa9lodie@exemple.fr"}, /* E + U+0301 */
    {CK_NORM_EMAIL,
     "\xc2\xa0"
     "a@b.fr\xc2\xa0",
     "a@b.fr"}, /* no-break spaces */
    {CK_NORM_EMAIL, "LOUIS@LAPOSTE.NET", "louis@laposte.net"},
    {CK_NORM_EMAIL, "no-at-sign.fr", NULL},
    {CK_NORM_EMAIL, "@b.fr", NULL},
    {CK_NORM_EMAIL, "a@", NULL},
    {CK_NORM_EMAIL, "a@b@c", NULL},
    {CK_NORM_EMAIL, "   ", NULL},
    {CK_NORM_EMAIL, "bad\xff@x.fr", NULL},
    /* phone: E.164, French national numbers */
    {CK_NORM_PHONE, "06 12 34 56 78", "+33612345678"},
    {CK_NORM_PHONE, "06.12.34.56.78", "+33612345678"},
    {CK_NORM_PHONE, "06-12-34-56-78", "+33612345678"},
    {CK_NORM_PHONE, "0612345678", "+33612345678"},
    {CK_NORM_PHONE, "+33 6 12 34 56 78", "+33612345678"},
    {CK_NORM_PHONE, "0033 6 12 34 56 78", "+33612345678"},
    {CK_NORM_PHONE, "+33612345678", "+33612345678"},
    {CK_NORM_PHONE, "01 (42) 68 53 00", "+33142685300"},
    {CK_NORM_PHONE, "+1 415 555 2671", "+14155552671"},
    {CK_NORM_PHONE, "+44 20 7946 0958", "+442079460958"},
    {CK_NORM_PHONE, "06 12 34 56", NULL},       /* too short for a national number */
    {CK_NORM_PHONE, "612345678", NULL},         /* no leading 0, no + */
    {CK_NORM_PHONE, "+1234567", NULL},          /* 7 digits */
    {CK_NORM_PHONE, "+1234567890123456", NULL}, /* 16 digits */
    {CK_NORM_PHONE, "06 12 34 56 7a", NULL},
    {CK_NORM_PHONE, "+33 6 12 +34", NULL},
    /* names: trimmed, NFC, case kept */
    {CK_NORM_TEXT, "  H\xc3\xa9l\xc3\xa8ne ", "H\xc3\xa9l\xc3\xa8ne"},
    {CK_NORM_TEXT, "He\xcc\x81le\xcc\x80ne", "H\xc3\xa9l\xc3\xa8ne"}, /* decomposed -> NFC */
    {CK_NORM_TEXT, "Fran\xc3\xa7ois", "Fran\xc3\xa7ois"},
    {CK_NORM_TEXT, "DUPONT", "DUPONT"},
    {CK_NORM_TEXT, "", NULL},
    /* refs: trimmed only */
    {CK_NORM_EXACT, " C-000123 ", "C-000123"},
    {CK_NORM_EXACT, "c-000123", "c-000123"},
};

static void test_normalisation_table(void **state)
{
    (void)state;
    ck_buf out = CK_BUF_INIT;
    for (size_t i = 0; i < CK_ARRAY_LEN(CASES); i++) {
        const norm_case *c = &CASES[i];
        int rc = ck_ident__normalize(&out, c->kind, c->in, strlen(c->in));
        if (c->out == NULL) {
            if (rc != CK_EINVAL)
                fail_msg("case %zu (%s): expected refusal, got %d", i, c->in, rc);
            continue;
        }
        if (rc != CK_OK)
            fail_msg("case %zu (%s): refused (%d)", i, c->in, rc);
        if (out.len != strlen(c->out) || memcmp(out.p, c->out, out.len) != 0)
            fail_msg("case %zu (%s): got '%.*s', want '%s'", i, c->in, (int)out.len,
                     (const char *)out.p, c->out);
    }
    ck_buf__free(&out);
}

/* utf8proc's NFC (case-folded when `fold`) of the n bytes at s. */
static size_t utf8proc_form(char *out, size_t max, const char *s, size_t n, bool fold)
{
    utf8proc_uint8_t *m = NULL;
    int opts = UTF8PROC_STABLE | UTF8PROC_COMPOSE | (fold ? UTF8PROC_CASEFOLD : 0);
    utf8proc_ssize_t len =
        utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &m, (utf8proc_option_t)opts);
    assert_true(len >= 0 && (size_t)len <= max);
    memcpy(out, m, (size_t)len);
    free(m);
    return (size_t)len;
}

/* Text made only of ASCII is normalised without utf8proc: the result must
 * be utf8proc's, for every ASCII character (NUL and controls included),
 * folded (e-mail) and not (text); and a string with one non-ASCII
 * character still goes through utf8proc. */
static void test_ascii_matches_utf8proc(void **state)
{
    (void)state;
    ck_buf out = CK_BUF_INIT;
    char in[16], want[64];
    for (int c = 0; c < 0x80; c++) {
        if (c == '@')
            continue;
        /* x<c>Y@Ab.FR: neither end is white space, one @ */
        memcpy(in, "x?Y@Ab.FR", 9);
        in[1] = (char)c;
        assert_int_equal(ck_ident__normalize(&out, CK_NORM_EMAIL, in, 9), CK_OK);
        size_t wl = utf8proc_form(want, sizeof want, in, 9, true);
        if (out.len != wl || memcmp(out.p, want, wl) != 0)
            fail_msg("e-mail with character 0x%02x differs from utf8proc", c);
        assert_int_equal(ck_ident__normalize(&out, CK_NORM_TEXT, in, 9), CK_OK);
        wl = utf8proc_form(want, sizeof want, in, 9, false);
        if (out.len != wl || memcmp(out.p, want, wl) != 0)
            fail_msg("text with character 0x%02x differs from utf8proc", c);
    }
    /* Not ASCII: E + combining acute accent, composed and folded. */
    const char mixed[] = "E\xcc\x81@X.fr";
    assert_int_equal(ck_ident__normalize(&out, CK_NORM_EMAIL, mixed, sizeof mixed - 1), CK_OK);
    assert_int_equal(out.len, 7);
    assert_memory_equal(out.p, "\xc3\xa9@x.fr", 7);
    ck_buf__free(&out);
}

static void test_norm_kind_from_name(void **state)
{
    (void)state;
    assert_int_equal(ck_ident__norm_kind_for("email"), CK_NORM_EMAIL);
    assert_int_equal(ck_ident__norm_kind_for("work_email"), CK_NORM_EMAIL);
    assert_int_equal(ck_ident__norm_kind_for("phone"), CK_NORM_PHONE);
    assert_int_equal(ck_ident__norm_kind_for("mobile"), CK_NORM_PHONE);
    assert_int_equal(ck_ident__norm_kind_for("last_name"), CK_NORM_TEXT);
    assert_int_equal(ck_ident__norm_kind_for("address"), CK_NORM_TEXT);
}

/* A store with random keys is all these functions need. */
static int setup(void **state)
{
    return tu_fx_setup(state, "ident", TU_FX_WALL_CLOCK, CK_INIT_CREATE_KEY_FILE, NULL);
}

static void test_index_keys(void **state)
{
    tu_fx *f = *state;
    uint8_t a[CK_INDEX_KEY_BYTES], b[CK_INDEX_KEY_BYTES], c[CK_INDEX_KEY_BYTES];
    const uint8_t v[] = "+33612345678";
    ck_ident__index_key(a, f->st, CK_INDEX_FIELD, 2, v, sizeof v - 1);
    ck_ident__index_key(b, f->st, CK_INDEX_FIELD, 2, v, sizeof v - 1);
    assert_memory_equal(a, b, sizeof a); /* deterministic */
    assert_int_equal(a[0], CK_INDEX_FIELD);
    assert_int_equal(a[1], 0);
    assert_int_equal(a[2], 2);
    ck_ident__index_key(c, f->st, CK_INDEX_FIELD, 3, v, sizeof v - 1);
    assert_memory_not_equal(a + 3, c + 3, CK_BLIND_BYTES); /* another field */
    ck_ident__index_key(c, f->st, CK_INDEX_REF, 0, v, sizeof v - 1);
    assert_memory_not_equal(a + 3, c + 3, CK_BLIND_BYTES); /* another kind */
    ck_ident__index_key(c, f->st, CK_INDEX_FIELD, 2, v, sizeof v - 2);
    assert_memory_not_equal(a + 3, c + 3, CK_BLIND_BYTES); /* another value */
    /* The tag is not the value nor a plain hash of it. */
    uint8_t plain[CK_BLIND_BYTES];
    crypto_generichash(plain, sizeof plain, v, sizeof v - 1, NULL, 0);
    assert_memory_not_equal(a + 3, plain, CK_BLIND_BYTES);
}

static void test_pseudonym_properties(void **state)
{
    tu_fx *f = *state;
    uint8_t s1[16], s2[16], back[16];
    randombytes_buf(s1, sizeof s1);
    randombytes_buf(s2, sizeof s2);
    uint8_t p1[32], p1again[32], p2[32], q1[32], r1[32], r1b[32];
    ck_ident__pseudonym(p1, f->st, "marketing.email", NULL, s1);
    ck_ident__pseudonym(p1again, f->st, "marketing.email", NULL, s1);
    ck_ident__pseudonym(p2, f->st, "marketing.email", NULL, s2);
    ck_ident__pseudonym(q1, f->st, "analytics", NULL, s1);
    ck_ident__pseudonym(r1, f->st, "marketing.email", "acme", s1);
    ck_ident__pseudonym(r1b, f->st, "marketing.email", "globex", s1);

    assert_memory_equal(p1, p1again, 32);     /* stable in its context */
    assert_memory_not_equal(p1, p2, 32);      /* differs across subjects */
    assert_memory_not_equal(p1, q1, 32);      /* ... across purposes */
    assert_memory_not_equal(p1, r1, 32);      /* ... with a recipient */
    assert_memory_not_equal(r1, r1b, 32);     /* ... across recipients */
    assert_memory_not_equal(p1 + 16, s1, 16); /* the id does not show */

    /* Resolvable in its own context only. */
    assert_int_equal(ck_ident__resolve(back, f->st, "marketing.email", NULL, p1), CK_OK);
    assert_memory_equal(back, s1, 16);
    assert_int_equal(ck_ident__resolve(back, f->st, "analytics", NULL, p1), CK_ENOTFOUND);
    assert_int_equal(ck_ident__resolve(back, f->st, "marketing.email", "acme", p1), CK_ENOTFOUND);
    assert_int_equal(ck_ident__resolve(back, f->st, "marketing.email", "acme", r1), CK_OK);
    assert_memory_equal(back, s1, 16);
    /* ("ab", "c") and ("a", "bc") are different contexts. */
    uint8_t x[32], y[32];
    ck_ident__pseudonym(x, f->st, "ab", "c", s1);
    ck_ident__pseudonym(y, f->st, "a", "bc", s1);
    assert_memory_not_equal(x, y, 32);
    /* A recipient "" is not "no recipient". */
    ck_ident__pseudonym(y, f->st, "ab", "", s1);
    ck_ident__pseudonym(x, f->st, "ab", NULL, s1);
    assert_memory_not_equal(x, y, 32);
    /* Any flipped bit is refused. */
    for (int bit = 0; bit < 256; bit++) {
        uint8_t bad[32];
        memcpy(bad, p1, 32);
        bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        assert_int_equal(ck_ident__resolve(back, f->st, "marketing.email", NULL, bad),
                         CK_ENOTFOUND);
    }
}

static void test_pseudonym_text(void **state)
{
    tu_fx *f = *state;
    uint8_t s[16], p[32], q[32];
    char text[CK_PSEUDONYM_CHARS + 1];
    randombytes_buf(s, sizeof s);
    ck_ident__pseudonym(p, f->st, "service", NULL, s);
    ck_ident__pseudonym_text(text, p);
    assert_int_equal(strlen(text), CK_PSEUDONYM_CHARS);
    assert_null(strpbrk(text, "+/="));
    assert_int_equal(ck_ident__pseudonym_parse(q, text, strlen(text)), CK_OK);
    assert_memory_equal(p, q, 32);
    assert_int_equal(ck_ident__pseudonym_parse(q, text, strlen(text) - 1), CK_EINVAL);
    text[5] = '*';
    assert_int_equal(ck_ident__pseudonym_parse(q, text, strlen(text)), CK_EINVAL);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalisation_table),
        cmocka_unit_test(test_ascii_matches_utf8proc),
        cmocka_unit_test(test_norm_kind_from_name),
        cmocka_unit_test_setup_teardown(test_index_keys, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_pseudonym_properties, setup, tu_fx_teardown),
        cmocka_unit_test_setup_teardown(test_pseudonym_text, setup, tu_fx_teardown),
    };
    return cmocka_run_group_tests_name("ident", tests, NULL, NULL);
}
