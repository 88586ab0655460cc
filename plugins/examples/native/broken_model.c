/*
 * broken_model.c: deliberately broken weir model libraries, for the tests
 * of plugins/tests/native.rs. Each -D switch builds one defect:
 *
 *   -DMISSING_FREE     no weir_model_free symbol
 *   -DWRONG_ABI        weir_model_abi_version() returns 99
 *   -DDUPLICATE_NAME   two functions named twice (case-insensitively)
 *   -DBAD_TYPE         an argument of unknown type code 42
 *   -DNULL_CALL        a function without a call entry point
 *   -DBAD_RESULT_LEN   an array result whose length exceeds the capacity
 *
 * Without a switch it is a valid library with one function, one(x) = 1.
 */
#include <stddef.h>

#include "weir_model.h"

#ifndef NULL_CALL
static int32_t call_one(void *state, const weir_value *args, size_t nargs, weir_value *ret, char *err,
                        size_t err_len)
{
    (void)state;
    (void)args;
    (void)nargs;
    (void)err;
    (void)err_len;
#ifdef BAD_RESULT_LEN
    ret->v.array.len += 1;
#else
    ret->v.f64 = 1.0;
#endif
    return WEIR_OK;
}
#endif

#ifdef BAD_TYPE
static const weir_arg one_args[1] = {{"x", 42u, 0}};
#else
static const weir_arg one_args[1] = {{"x", WEIR_F64, 0}};
#endif

#ifdef NULL_CALL
#define ONE_CALL NULL
#else
#define ONE_CALL call_one
#endif

#ifdef BAD_RESULT_LEN
#define ONE_RET WEIR_F64_ARRAY, 4
#else
#define ONE_RET WEIR_F64, 0
#endif

static const weir_function functions[] = {
    {"one", NULL, one_args, 1, ONE_RET, 0, 0, ONE_CALL, NULL},
#ifdef DUPLICATE_NAME
    {"One", NULL, one_args, 1, ONE_RET, 0, 0, ONE_CALL, NULL},
#endif
};

uint32_t weir_model_abi_version(void)
{
#ifdef WRONG_ABI
    return 99u;
#else
    return WEIR_MODEL_ABI_VERSION;
#endif
}

const weir_function *weir_model_functions(size_t *count)
{
    *count = sizeof functions / sizeof functions[0];
    return functions;
}

int32_t weir_model_init(const char *config_json, void **state, char *err, size_t err_len)
{
    (void)config_json;
    (void)err;
    (void)err_len;
    *state = NULL;
    return WEIR_OK;
}

#ifndef MISSING_FREE
void weir_model_free(void *state)
{
    (void)state;
}
#endif
