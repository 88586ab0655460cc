//! Built-in functions: hashing (eKuiper `funcs_misc.go`): the digest of
//! the argument's text as lower-case hex; null in, null out.

use md5::Digest as _;

use super::golike::go_str;
use super::Registry;
use super::{nil_checked, validate_strs};
use crate::value::Value;

fn hash_fn(r: &mut Registry, name: &'static str, f: fn(&[u8]) -> String) {
    nil_checked(r, name, 1, Some(1), move |args| Ok(Value::from(f(go_str(&args[0]).as_bytes()))));
    r.set_validate(name, validate_strs);
}

pub(crate) fn register(r: &mut Registry) {
    hash_fn(r, "md5", |b| hex::encode(md5::Md5::digest(b)));
    hash_fn(r, "sha1", |b| hex::encode(sha1::Sha1::digest(b)));
    hash_fn(r, "sha256", |b| hex::encode(sha2::Sha256::digest(b)));
    hash_fn(r, "sha384", |b| hex::encode(sha2::Sha384::digest(b)));
    hash_fn(r, "sha512", |b| hex::encode(sha2::Sha512::digest(b)));
    // Go's %x of a uint32: no zero padding.
    hash_fn(r, "crc32", |b| format!("{:x}", crc32fast::hash(b)));
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)]
mod tests {
    use crate::functions::{call_scalar, Registry};
    use crate::value::Value;

    fn call(name: &str, args: &[Value]) -> Result<Value, crate::functions::FuncError> {
        call_scalar(Registry::builtins(), name, args)
    }

    #[test]
    fn digests_are_lower_hex() {
        let s = Value::str("The quick brown fox jumps over the lazy dog");
        assert_eq!(call("md5", &[s.clone()]).unwrap(), Value::str("9e107d9d372bb6826bd81d3542a419d6"));
        assert_eq!(call("sha1", &[s.clone()]).unwrap(), Value::str("2fd4e1c67a2d28fced849ee1bb76e7391b93eb12"));
        assert_eq!(
            call("sha256", &[s.clone()]).unwrap(),
            Value::str("d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592")
        );
        assert_eq!(
            call("sha384", &[s.clone()]).unwrap(),
            Value::str(
                "ca737f1014a48f4c0b6dd43cb177b0afd9e5169367544c494011e3317dbf9a509cb1e5dc1e85a941bbee3d7f2afbc9b1"
            )
        );
        assert_eq!(
            call("sha512", &[s.clone()]).unwrap(),
            Value::str(
                "07e547d9586f6a73f73fbac0435ed76951218fb7d0c8d788a309d785436bbb642e93a252a954f23912547d1e8a3b5ed6e1bfd7097821233fa0538f3db854fee6"
            )
        );
        assert_eq!(call("crc32", &[s]).unwrap(), Value::str("414fa339"));
    }

    #[test]
    fn crc32_is_not_zero_padded() {
        // crc32("a") = 0xe8b7be43; find a short one: crc32("") = 0.
        assert_eq!(call("crc32", &[Value::str("")]).unwrap(), Value::str("0"));
    }

    #[test]
    fn non_strings_hash_their_text_and_null_is_null() {
        assert_eq!(call("md5", &[Value::Int(1)]).unwrap(), call("md5", &[Value::str("1")]).unwrap());
        assert_eq!(call("sha256", &[Value::Null]).unwrap(), Value::Null);
        assert!(call("md5", &[]).is_err());
        assert!(call("sha1", &[Value::str("a"), Value::str("b")]).is_err());
    }
}
