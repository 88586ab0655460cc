//! The C declarations of `include/weir_model.h`, mirrored with `repr(C)`.
//!
//! Keep this file and the header in step: field order, widths and codes
//! must match exactly (the layout test below pins the sizes the header's
//! LP64 layout gives).

use std::ffi::{c_char, c_void};

/// `WEIR_MODEL_ABI_VERSION`.
pub(crate) const ABI_VERSION: u32 = 1;

/// `WEIR_F64`.
pub(crate) const TYPE_F64: u32 = 1;
/// `WEIR_I64`.
pub(crate) const TYPE_I64: u32 = 2;
/// `WEIR_BOOL`.
pub(crate) const TYPE_BOOL: u32 = 3;
/// `WEIR_F64_ARRAY`.
pub(crate) const TYPE_F64_ARRAY: u32 = 4;

/// `WEIR_FN_THREAD_SAFE`.
pub(crate) const FN_THREAD_SAFE: u32 = 1;

/// `WEIR_MAX_FUNCTIONS`.
pub(crate) const MAX_FUNCTIONS: usize = 1024;
/// `WEIR_MAX_ARGS`.
pub(crate) const MAX_ARGS: usize = 64;
/// `WEIR_MAX_NAME_LEN`.
pub(crate) const MAX_NAME_LEN: usize = 128;
/// `WEIR_MAX_ARRAY_LEN`.
pub(crate) const MAX_ARRAY_LEN: u32 = 1 << 20;

/// Bytes of the error message buffer weir passes (NUL included).
pub(crate) const ERR_LEN: usize = 512;

/// The exported symbols, NUL-terminated for `dlsym`.
pub(crate) const SYM_ABI_VERSION: &[u8] = b"weir_model_abi_version\0";
pub(crate) const SYM_FUNCTIONS: &[u8] = b"weir_model_functions\0";
pub(crate) const SYM_INIT: &[u8] = b"weir_model_init\0";
pub(crate) const SYM_FREE: &[u8] = b"weir_model_free\0";

/// A symbol's name without its NUL, for messages.
pub(crate) fn symbol_name(sym: &'static [u8]) -> &'static str {
    let bytes = sym.strip_suffix(b"\0").unwrap_or(sym);
    std::str::from_utf8(bytes).unwrap_or("?")
}

/// `weir_array`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct RawArray {
    pub(crate) data: *mut f64,
    pub(crate) len: usize,
}

/// The union of `weir_value`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) union RawUnion {
    pub(crate) f64: f64,
    pub(crate) i64: i64,
    pub(crate) b: i32,
    pub(crate) array: RawArray,
}

/// `weir_value`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct RawValue {
    pub(crate) ty: u32,
    pub(crate) reserved: u32,
    pub(crate) v: RawUnion,
}

impl RawValue {
    /// A value of type `ty` with every bit of the union zero.
    pub(crate) fn zeroed(ty: u32) -> RawValue {
        RawValue { ty, reserved: 0, v: RawUnion { array: RawArray { data: std::ptr::null_mut(), len: 0 } } }
    }
}

/// `weir_arg`.
#[repr(C)]
pub(crate) struct RawArg {
    pub(crate) name: *const c_char,
    pub(crate) ty: u32,
    pub(crate) len: u32,
}

/// `weir_call_fn`.
pub(crate) type CallFn = unsafe extern "C" fn(
    state: *mut c_void,
    args: *const RawValue,
    nargs: usize,
    ret: *mut RawValue,
    err: *mut c_char,
    err_len: usize,
) -> i32;

/// `weir_call_batch_fn`.
pub(crate) type CallBatchFn = unsafe extern "C" fn(
    state: *mut c_void,
    args: *const RawValue,
    nargs: usize,
    nrows: usize,
    ret: *mut RawValue,
    status: *mut i32,
    err: *mut c_char,
    err_len: usize,
) -> i32;

/// `weir_function`. The function pointers are `Option` so that a NULL in
/// the table is a value Rust can see (a null non-`Option` fn pointer would
/// be undefined behaviour).
#[repr(C)]
pub(crate) struct RawFunction {
    pub(crate) name: *const c_char,
    pub(crate) doc: *const c_char,
    pub(crate) args: *const RawArg,
    pub(crate) nargs: usize,
    pub(crate) ret_type: u32,
    pub(crate) ret_len: u32,
    pub(crate) flags: u32,
    pub(crate) reserved: u32,
    pub(crate) call: Option<CallFn>,
    pub(crate) call_batch: Option<CallBatchFn>,
}

/// `weir_model_abi_version`.
pub(crate) type AbiVersionFn = unsafe extern "C" fn() -> u32;
/// `weir_model_functions`.
pub(crate) type FunctionsFn = unsafe extern "C" fn(count: *mut usize) -> *const RawFunction;
/// `weir_model_init`.
pub(crate) type InitFn =
    unsafe extern "C" fn(config: *const c_char, state: *mut *mut c_void, err: *mut c_char, err_len: usize) -> i32;
/// `weir_model_free`.
pub(crate) type FreeFn = unsafe extern "C" fn(state: *mut c_void);

/// The message a library wrote into an error buffer: up to the first NUL,
/// invalid UTF-8 replaced.
pub(crate) fn message(buf: &[u8]) -> String {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn layout_matches_the_header_on_lp64() {
        assert_eq!(std::mem::size_of::<RawValue>(), 24);
        assert_eq!(std::mem::offset_of!(RawValue, v), 8);
        assert_eq!(std::mem::size_of::<RawArg>(), 16);
        assert_eq!(std::mem::size_of::<RawFunction>(), 64);
        assert_eq!(std::mem::offset_of!(RawFunction, call), 48);
    }

    #[test]
    fn messages_stop_at_nul_and_survive_bad_utf8() {
        assert_eq!(message(b"bad input\0garbage"), "bad input");
        assert_eq!(message(b"no nul"), "no nul");
        assert_eq!(message(b"\xffx\0"), "\u{fffd}x");
    }
}
