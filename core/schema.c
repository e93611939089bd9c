/*
 * schema.c - placeholder until the schema module lands (issue 3): a store
 * has no schema yet.
 */
#include "store.h"

int ck_schema__open(ck_store *st, MDB_txn *dtxn)
{
    (void)dtxn;
    st->schema = NULL;
    return CK_OK;
}

void ck_schema__close(ck_store *st)
{
    st->schema = NULL;
}
