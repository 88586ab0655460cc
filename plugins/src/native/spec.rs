//! The functions a library declares, read from its C table into owned
//! Rust values and checked once, at load time.

use std::collections::HashSet;
use std::ffi::c_char;

use super::error::DescriptorProblem;
use super::ffi::{self, CallBatchFn, CallFn, RawFunction};

/// The type of an argument or result (`WEIR_*` type codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValueType {
    /// `WEIR_F64`: a double; SQL floats, integers and booleans convert.
    F64,
    /// `WEIR_I64`: a 64-bit integer; SQL integers and whole floats convert.
    I64,
    /// `WEIR_BOOL`: SQL booleans.
    Bool,
    /// `WEIR_F64_ARRAY`: doubles; SQL arrays of numbers (flattened) or one
    /// number convert.
    F64Array,
}

impl ValueType {
    fn from_code(code: u32) -> Option<ValueType> {
        match code {
            ffi::TYPE_F64 => Some(ValueType::F64),
            ffi::TYPE_I64 => Some(ValueType::I64),
            ffi::TYPE_BOOL => Some(ValueType::Bool),
            ffi::TYPE_F64_ARRAY => Some(ValueType::F64Array),
            _ => None,
        }
    }

    /// The C type code.
    pub(crate) fn code(self) -> u32 {
        match self {
            ValueType::F64 => ffi::TYPE_F64,
            ValueType::I64 => ffi::TYPE_I64,
            ValueType::Bool => ffi::TYPE_BOOL,
            ValueType::F64Array => ffi::TYPE_F64_ARRAY,
        }
    }
}

/// One declared argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgSpec {
    /// Name for messages; `arg<N>` if the library gave none.
    pub name: String,
    /// Its type.
    pub ty: ValueType,
    /// For arrays, the exact length required; `None` for any length (and
    /// for scalars).
    pub len: Option<usize>,
}

/// One function of a library, as declared in its table.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// SQL name, lower case.
    pub name: String,
    /// The library's one-line documentation, if any.
    pub doc: Option<String>,
    /// The arguments; every call passes exactly these.
    pub args: Vec<ArgSpec>,
    /// Result type.
    pub ret: ValueType,
    /// For an array result, the most values it holds; 0 for scalars.
    pub ret_len: usize,
    /// Whether weir may call it without the library's lock
    /// (`WEIR_FN_THREAD_SAFE`).
    pub thread_safe: bool,
    pub(crate) call: CallFn,
    pub(crate) call_batch: Option<CallBatchFn>,
}

/// Reads a NUL-terminated string of at most `max` bytes; `Err` with what
/// could be read if it is longer or not UTF-8.
///
/// # Safety
/// `p` is non-null and points to a NUL-terminated string, or to at least
/// `max + 1` readable bytes.
unsafe fn bounded_str(p: *const c_char, max: usize) -> Result<String, String> {
    let mut bytes = Vec::new();
    for i in 0..=max {
        // SAFETY: by the contract, bytes up to the NUL or up to `max` are
        // readable; we stop at the first NUL.
        let b = unsafe { *p.add(i) } as u8;
        if b == 0 {
            return String::from_utf8(bytes).map_err(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        }
        bytes.push(b);
    }
    Err(String::from_utf8_lossy(&bytes).into_owned())
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks and copies a library's function table.
///
/// # Errors
/// The first problem found, in table order.
///
/// # Safety
/// `table` is what `weir_model_functions` returned with `count`: NULL, or
/// `count` readable entries whose pointers follow `weir_model.h` (strings
/// NUL-terminated, `args` pointing to `nargs` entries). The function
/// pointers must stay valid as long as the caller keeps the library loaded.
pub(crate) unsafe fn read_table(
    table: *const RawFunction,
    count: usize,
) -> Result<Vec<FunctionSpec>, DescriptorProblem> {
    if count > ffi::MAX_FUNCTIONS {
        return Err(DescriptorProblem::TooManyFunctions { count, max: ffi::MAX_FUNCTIONS });
    }
    if count == 0 {
        return Ok(Vec::new());
    }
    if table.is_null() {
        return Err(DescriptorProblem::NullTable { count });
    }
    // SAFETY: non-null and, by the contract, `count` entries long (checked
    // above to be within the limit).
    let raw = unsafe { std::slice::from_raw_parts(table, count) };
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(count);
    for (index, f) in raw.iter().enumerate() {
        // SAFETY: `f` comes from the table the contract covers.
        let spec = unsafe { read_function(index, f) }?;
        if !seen.insert(spec.name.clone()) {
            return Err(DescriptorProblem::DuplicateName { name: spec.name });
        }
        out.push(spec);
    }
    Ok(out)
}

/// Checks and copies one entry.
///
/// # Safety
/// As [`read_table`], for this entry.
unsafe fn read_function(index: usize, f: &RawFunction) -> Result<FunctionSpec, DescriptorProblem> {
    if f.name.is_null() {
        return Err(DescriptorProblem::NullName { index });
    }
    // SAFETY: non-null; NUL-terminated by the contract.
    let name = unsafe { bounded_str(f.name, ffi::MAX_NAME_LEN) }
        .and_then(|n| if is_identifier(&n) { Ok(n) } else { Err(n) })
        .map_err(|name| DescriptorProblem::BadName { index, name, max: ffi::MAX_NAME_LEN })?
        .to_ascii_lowercase();
    let doc = if f.doc.is_null() {
        None
    } else {
        // SAFETY: non-null; NUL-terminated by the contract. Overlong or
        // non-UTF-8 documentation is kept as far as it reads.
        Some(unsafe { bounded_str(f.doc, 1024) }.unwrap_or_else(|partial| partial))
    };
    if f.nargs > ffi::MAX_ARGS {
        return Err(DescriptorProblem::TooManyArgs { function: name, nargs: f.nargs, max: ffi::MAX_ARGS });
    }
    if f.nargs > 0 && f.args.is_null() {
        return Err(DescriptorProblem::NullArgs { function: name, nargs: f.nargs });
    }
    let raw_args = if f.nargs == 0 {
        &[][..]
    } else {
        // SAFETY: non-null and `nargs` entries long by the contract.
        unsafe { std::slice::from_raw_parts(f.args, f.nargs) }
    };
    let mut args = Vec::with_capacity(raw_args.len());
    for (i, a) in raw_args.iter().enumerate() {
        let position = i + 1;
        let ty = ValueType::from_code(a.ty).ok_or_else(|| DescriptorProblem::UnknownArgType {
            function: name.clone(),
            position,
            code: a.ty,
        })?;
        if a.len > ffi::MAX_ARRAY_LEN {
            return Err(DescriptorProblem::ArgTooLong {
                function: name,
                position,
                len: a.len,
                max: ffi::MAX_ARRAY_LEN,
            });
        }
        let arg_name = if a.name.is_null() {
            format!("arg{position}")
        } else {
            // SAFETY: non-null; NUL-terminated by the contract. The name is
            // only shown in messages, so a bad one is kept as read.
            unsafe { bounded_str(a.name, ffi::MAX_NAME_LEN) }.unwrap_or_else(|partial| partial)
        };
        let len = (ty == ValueType::F64Array && a.len > 0).then_some(a.len as usize);
        args.push(ArgSpec { name: arg_name, ty, len });
    }
    let ret = ValueType::from_code(f.ret_type)
        .ok_or_else(|| DescriptorProblem::UnknownResultType { function: name.clone(), code: f.ret_type })?;
    let ret_len = if ret == ValueType::F64Array {
        if f.ret_len == 0 || f.ret_len > ffi::MAX_ARRAY_LEN {
            return Err(DescriptorProblem::BadResultLen { function: name, len: f.ret_len, max: ffi::MAX_ARRAY_LEN });
        }
        f.ret_len as usize
    } else {
        0
    };
    let unknown = f.flags & !ffi::FN_THREAD_SAFE;
    if unknown != 0 {
        return Err(DescriptorProblem::UnknownFlags { function: name, flags: unknown });
    }
    let Some(call) = f.call else {
        return Err(DescriptorProblem::NullCall { function: name });
    };
    Ok(FunctionSpec {
        name,
        doc,
        args,
        ret,
        ret_len,
        thread_safe: f.flags & ffi::FN_THREAD_SAFE != 0,
        call,
        call_batch: f.call_batch,
    })
}

#[cfg(test)]
mod tests {
    use std::ffi::c_void;
    use std::ptr;

    use super::*;
    use crate::native::ffi::{RawArg, RawValue};

    unsafe extern "C" fn noop(
        _: *mut c_void,
        _: *const RawValue,
        _: usize,
        _: *mut RawValue,
        _: *mut c_char,
        _: usize,
    ) -> i32 {
        0
    }

    const X: RawArg = RawArg { name: c"x".as_ptr(), ty: ffi::TYPE_F64, len: 0 };

    fn entry(name: *const c_char, args: &[RawArg]) -> RawFunction {
        RawFunction {
            name,
            doc: ptr::null(),
            args: args.as_ptr(),
            nargs: args.len(),
            ret_type: ffi::TYPE_F64,
            ret_len: 0,
            flags: 0,
            reserved: 0,
            call: Some(noop),
            call_batch: None,
        }
    }

    fn read(table: &[RawFunction]) -> Result<Vec<FunctionSpec>, DescriptorProblem> {
        // SAFETY: a well-formed table built above; `noop` lives forever.
        unsafe { read_table(table.as_ptr(), table.len()) }
    }

    #[test]
    fn a_valid_table_is_copied_with_lower_case_names() {
        let args = [X, RawArg { name: ptr::null(), ty: ffi::TYPE_F64_ARRAY, len: 3 }];
        let specs = read(&[entry(c"GasFlow".as_ptr(), &args)]).unwrap();
        assert_eq!(specs[0].name, "gasflow");
        assert_eq!(specs[0].args[1], ArgSpec { name: "arg2".into(), ty: ValueType::F64Array, len: Some(3) });
    }

    #[test]
    fn each_defect_is_named() {
        let args = [X];
        let mut dup = vec![entry(c"f".as_ptr(), &args), entry(c"F".as_ptr(), &args)];
        assert_eq!(read(&dup).unwrap_err(), DescriptorProblem::DuplicateName { name: "f".into() });
        dup.truncate(1);

        let mut e = entry(ptr::null(), &args);
        assert_eq!(read(&[e]).unwrap_err(), DescriptorProblem::NullName { index: 0 });
        e = entry(c"1f".as_ptr(), &args);
        assert!(matches!(read(&[e]).unwrap_err(), DescriptorProblem::BadName { .. }));
        e = entry(c"f".as_ptr(), &args);
        e.call = None;
        assert_eq!(read(&[e]).unwrap_err(), DescriptorProblem::NullCall { function: "f".into() });
        e = entry(c"f".as_ptr(), &args);
        e.flags = 6;
        assert_eq!(read(&[e]).unwrap_err(), DescriptorProblem::UnknownFlags { function: "f".into(), flags: 6 });
        e = entry(c"f".as_ptr(), &args);
        e.ret_type = ffi::TYPE_F64_ARRAY;
        assert!(matches!(read(&[e]).unwrap_err(), DescriptorProblem::BadResultLen { len: 0, .. }));
        e = entry(c"f".as_ptr(), &args);
        e.nargs = 2;
        e.args = ptr::null();
        assert!(matches!(read(&[e]).unwrap_err(), DescriptorProblem::NullArgs { nargs: 2, .. }));
        let bad = [RawArg { name: ptr::null(), ty: 42, len: 0 }];
        assert_eq!(
            read(&[entry(c"f".as_ptr(), &bad)]).unwrap_err(),
            DescriptorProblem::UnknownArgType { function: "f".into(), position: 1, code: 42 }
        );
        // SAFETY: NULL table; the count is rejected before anything is read.
        let absurd = unsafe { read_table(ptr::null(), usize::MAX) }.unwrap_err();
        assert!(matches!(absurd, DescriptorProblem::TooManyFunctions { .. }));
        // SAFETY: NULL table with a count: rejected without reading.
        assert_eq!(unsafe { read_table(ptr::null(), 2) }.unwrap_err(), DescriptorProblem::NullTable { count: 2 });
    }
}
