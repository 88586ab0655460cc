/*
 * gasflow_model.c: a sample weir native model, shaped like a MATLAB Coder
 * export wrapped for weir.
 *
 * The first part stands for the generated code: fixed-width typedefs, a
 * model with constant weights and a step function that knows nothing
 * about weir. The second part is the hand-written wrapper, the only code
 * that includes weir_model.h.
 *
 * Build:
 *   cc -std=c99 -shared -fPIC -O2 -I plugins/include \
 *      plugins/examples/native/gasflow_model.c -o libgasflow.so -lm
 *
 * Functions (see weir_model_functions below):
 *   gasflow(temperature, pressure, o2) -> float   gas flow set point, m3/h
 *   scale(values)                      -> array   values * gain (config)
 *   valve_position(flow, mode, manual) -> integer valve opening, percent
 *   in_spec(o2)                        -> boolean O2 within 2..6 %
 * Configuration: {"gain": <positive number>} (default 1).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weir_model.h"

/* ===================== "generated" model code ===================== */

typedef double real_T;
typedef int32_t int32_T;

/* Normalisation of the inputs: (x - mean) / scale. */
static const real_T gasflow_mean[3] = {850.0, 2.5, 4.0};
static const real_T gasflow_scale[3] = {150.0, 1.5, 2.0};
/* A 3-4-1 perceptron with tanh hidden units. */
static const real_T gasflow_W1[4][3] = {
    {0.8, -0.4, 0.3}, {-0.5, 0.9, 0.1}, {0.2, 0.3, -0.7}, {0.6, 0.1, 0.5}};
static const real_T gasflow_b1[4] = {0.1, -0.2, 0.05, 0.0};
static const real_T gasflow_W2[4] = {1.5, -0.8, 0.6, 1.1};
static const real_T gasflow_b2 = 0.3;
static const real_T gasflow_out_scale = 40.0;
static const real_T gasflow_out_offset = 120.0;

/* Returns 0 and the flow in *y, or 1 for a negative pressure. */
static int32_T gasflow_step(real_T temperature, real_T pressure, real_T o2, real_T *y)
{
    real_T u[3];
    real_T acc;
    int32_T i;
    int32_T j;
    if (pressure < 0.0) {
        return 1;
    }
    u[0] = (temperature - gasflow_mean[0]) / gasflow_scale[0];
    u[1] = (pressure - gasflow_mean[1]) / gasflow_scale[1];
    u[2] = (o2 - gasflow_mean[2]) / gasflow_scale[2];
    acc = gasflow_b2;
    for (i = 0; i < 4; i++) {
        real_T h = gasflow_b1[i];
        for (j = 0; j < 3; j++) {
            h += gasflow_W1[i][j] * u[j];
        }
        acc += gasflow_W2[i] * tanh(h);
    }
    *y = gasflow_out_offset + gasflow_out_scale * acc;
    return 0;
}

/* ===================== weir wrapper ===================== */

typedef struct gasflow_state {
    double gain;
} gasflow_state;

static int32_t fail(char *err, size_t err_len, int32_t code, const char *msg)
{
    snprintf(err, err_len, "%s", msg);
    return code;
}

static int32_t call_gasflow(void *state, const weir_value *args, size_t nargs, weir_value *ret, char *err,
                            size_t err_len)
{
    (void)state;
    (void)nargs; /* weir passes exactly the declared 3 */
    if (gasflow_step(args[0].v.f64, args[1].v.f64, args[2].v.f64, &ret->v.f64) != 0) {
        snprintf(err, err_len, "pressure must be non-negative, got %g", args[1].v.f64);
        return WEIR_E_INVALID_ARGUMENT;
    }
    return WEIR_OK;
}

static int32_t call_gasflow_batch(void *state, const weir_value *args, size_t nargs, size_t nrows,
                                  weir_value *ret, int32_t *status, char *err, size_t err_len)
{
    size_t r;
    int32_t rc = WEIR_OK;
    (void)state;
    for (r = 0; r < nrows; r++) {
        const weir_value *a = args + r * nargs;
        if (gasflow_step(a[0].v.f64, a[1].v.f64, a[2].v.f64, &ret[r].v.f64) != 0) {
            status[r] = WEIR_E_INVALID_ARGUMENT;
            if (rc == WEIR_OK) {
                snprintf(err, err_len, "pressure must be non-negative, got %g", a[1].v.f64);
            }
            rc = WEIR_E_INVALID_ARGUMENT;
        }
    }
    return rc;
}

static int32_t call_scale(void *state, const weir_value *args, size_t nargs, weir_value *ret, char *err,
                          size_t err_len)
{
    const gasflow_state *s = (const gasflow_state *)state;
    const weir_array *in = &args[0].v.array;
    size_t i;
    (void)nargs;
    if (in->len == 0) {
        return fail(err, err_len, WEIR_E_INVALID_ARGUMENT, "values must not be empty");
    }
    if (in->len > ret->v.array.len) {
        return fail(err, err_len, WEIR_E_INVALID_ARGUMENT, "at most 64 values");
    }
    for (i = 0; i < in->len; i++) {
        ret->v.array.data[i] = in->data[i] * s->gain;
    }
    ret->v.array.len = in->len;
    return WEIR_OK;
}

static int32_t call_valve_position(void *state, const weir_value *args, size_t nargs, weir_value *ret,
                                   char *err, size_t err_len)
{
    double flow = args[0].v.f64;
    int64_t mode = args[1].v.i64;
    double pos;
    (void)state;
    (void)nargs;
    if (mode < 0 || mode > 10) {
        snprintf(err, err_len, "mode must be 0..10, got %lld", (long long)mode);
        return WEIR_E_INVALID_ARGUMENT;
    }
    if (args[2].v.b) {
        ret->v.i64 = mode * 10;
        return WEIR_OK;
    }
    pos = floor(flow / 2.0 + 0.5);
    ret->v.i64 = pos < 0.0 ? 0 : pos > 100.0 ? 100 : (int64_t)pos;
    return WEIR_OK;
}

static int32_t call_in_spec(void *state, const weir_value *args, size_t nargs, weir_value *ret, char *err,
                            size_t err_len)
{
    (void)state;
    (void)nargs;
    (void)err;
    (void)err_len;
    ret->v.b = args[0].v.f64 >= 2.0 && args[0].v.f64 <= 6.0;
    return WEIR_OK;
}

static const weir_arg gasflow_args[3] = {
    {"temperature", WEIR_F64, 0}, {"pressure", WEIR_F64, 0}, {"o2", WEIR_F64, 0}};
static const weir_arg scale_args[1] = {{"values", WEIR_F64_ARRAY, 0}};
static const weir_arg valve_args[3] = {{"flow", WEIR_F64, 0}, {"mode", WEIR_I64, 0}, {"manual", WEIR_BOOL, 0}};
static const weir_arg in_spec_args[1] = {{"o2", WEIR_F64, 0}};

static const weir_function functions[4] = {
    {"gasflow", "gas flow set point (m3/h) from temperature (C), pressure (bar), O2 (%)", gasflow_args, 3,
     WEIR_F64, 0, 0, 0, call_gasflow, call_gasflow_batch},
    {"scale", "the values times the configured gain", scale_args, 1, WEIR_F64_ARRAY, 64, 0, 0, call_scale, NULL},
    {"valve_position", "valve opening in percent", valve_args, 3, WEIR_I64, 0, 0, 0, call_valve_position, NULL},
    {"in_spec", "whether O2 is within 2..6 %", in_spec_args, 1, WEIR_BOOL, 0, WEIR_FN_THREAD_SAFE, 0,
     call_in_spec, NULL},
};

uint32_t weir_model_abi_version(void)
{
    return WEIR_MODEL_ABI_VERSION;
}

const weir_function *weir_model_functions(size_t *count)
{
    *count = sizeof functions / sizeof functions[0];
    return functions;
}

int32_t weir_model_init(const char *config_json, void **state, char *err, size_t err_len)
{
    gasflow_state *s;
    double gain = 1.0;
    /* A real wrapper would use a JSON parser; one number needs none. */
    const char *key = strstr(config_json, "\"gain\"");
    if (key != NULL) {
        const char *colon = strchr(key, ':');
        char *end;
        if (colon == NULL) {
            return fail(err, err_len, WEIR_E_CONFIG, "gain: expected a number");
        }
        gain = strtod(colon + 1, &end);
        if (end == colon + 1) {
            return fail(err, err_len, WEIR_E_CONFIG, "gain: expected a number");
        }
    }
    if (!(gain > 0.0)) {
        snprintf(err, err_len, "gain must be positive, got %g", gain);
        return WEIR_E_CONFIG;
    }
    s = (gasflow_state *)malloc(sizeof *s);
    if (s == NULL) {
        return fail(err, err_len, WEIR_E_FAILED, "out of memory");
    }
    s->gain = gain;
    *state = s;
    return WEIR_OK;
}

void weir_model_free(void *state)
{
    free(state);
}
