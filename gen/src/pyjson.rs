//! `json.dumps`'s exact bytes, written by `serde_json`.
//!
//! The config files, the weight index and the safetensors headers must be byte-identical to the
//! ones `gen_ckpt.py` writes with `json.dumps`. `serde_json`'s value model already behaves like
//! Python's where that matters: with `preserve_order` an object keeps insertion order, assigning
//! an existing key keeps its place (as `d[k] = v` does), a repeated key when parsing keeps the
//! first place and the last value (as `json.loads` does), and integers stay apart from floats
//! (`1000000` vs `1000000.0`). Its `PrettyFormatter` lays out `indent=N` as Python does, and its
//! `CompactFormatter` is `separators=(",", ":")`. The parser needs the `float_roundtrip` feature
//! (enabled in the workspace) to round floats correctly, as Python's `float()` does.
//!
//! Two things differ, and [`PyFormatter`] overrides them: floats are printed as Python's `repr`
//! prints them (`1e-06`, `1e+16`, where `serde_json` writes `1e-6` and `1e16`), and
//! `ensure_ascii` (which `serde_json` lacks) escapes everything outside printable ASCII as
//! `\uXXXX` (UTF-16 units, so a surrogate pair above U+FFFF).
//!
//! What `serde_json` cannot express, and why it does not matter here: a `Value` cannot hold NaN
//! or infinities, and the serializer writes `null` for them before any formatter sees the number,
//! so Python's `NaN`/`Infinity` cannot be produced; the only source of such a float is
//! `--rope-theta`, which therefore must be finite. When parsing, integers beyond 64 bits and `-0`
//! become floats (Python keeps them integers); none of the committed JSON files has such a number,
//! and the tests check that each of them is reproduced byte for byte.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter, PrettyFormatter};

/// How `json.dumps` was called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// `indent=N`; `None` is `separators=(",", ":")` (the only one-line form the generators use).
    pub indent: Option<usize>,
    /// `ensure_ascii` (Python's default is `True`).
    pub ensure_ascii: bool,
}

impl Style {
    /// `json.dumps(obj, indent=n, ensure_ascii=False)` (transformers' `to_json_string`).
    pub fn indented(n: usize) -> Self {
        Style { indent: Some(n), ensure_ascii: false }
    }
    /// `json.dumps(obj, separators=(",", ":"))` (the safetensors header).
    pub fn compact() -> Self {
        Style { indent: None, ensure_ascii: true }
    }
}

/// `json.dumps(value, ...)` in the given style.
///
/// Panics only if `value` is not representable as JSON at all (a map with non-string keys), a
/// programming error: callers pass a `serde_json::Value` or a plain struct.
pub fn dumps<T: Serialize + ?Sized>(value: &T, style: Style) -> String {
    let spaces = vec![b' '; style.indent.unwrap_or(0)];
    let bytes = match style.indent {
        Some(_) => write(value, PyFormatter { layout: PrettyFormatter::with_indent(&spaces), ensure_ascii: style.ensure_ascii }),
        None => write(value, PyFormatter { layout: CompactFormatter, ensure_ascii: style.ensure_ascii }),
    };
    String::from_utf8(bytes).expect("serde_json and PyFormatter write UTF-8")
}

fn write<T: Serialize + ?Sized, F: Formatter>(value: &T, formatter: F) -> Vec<u8> {
    let mut ser = serde_json::Serializer::with_formatter(Vec::new(), formatter);
    value.serialize(&mut ser).expect("a JSON-representable value serializes into memory");
    ser.into_inner()
}

/// `serde_json`'s layout (`layout`) with Python's floats and `ensure_ascii`.
#[derive(Debug)]
pub struct PyFormatter<F> {
    pub layout: F,
    pub ensure_ascii: bool,
}

macro_rules! forward_layout {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $name<W: ?Sized + Write>(&mut self, w: &mut W $(, $arg: $ty)*) -> io::Result<()> {
            self.layout.$name(w $(, $arg)*)
        }
    )*};
}

impl<F: Formatter> Formatter for PyFormatter<F> {
    forward_layout! {
        begin_array(); end_array(); begin_array_value(first: bool); end_array_value();
        begin_object(); end_object(); begin_object_key(first: bool); end_object_key();
        begin_object_value(); end_object_value();
    }

    fn write_f64<W: ?Sized + Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        w.write_all(float_repr(value).as_bytes())
    }

    /// `serde_json` has already escaped quotes, backslashes and control characters (as Python
    /// does, `\n` or `\u001f`) and passes the runs between them here.
    fn write_string_fragment<W: ?Sized + Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        if !self.ensure_ascii {
            return w.write_all(fragment.as_bytes());
        }
        for c in fragment.chars() {
            if (' '..='~').contains(&c) {
                w.write_all(&[c as u8])?;
            } else {
                for unit in c.encode_utf16(&mut [0; 2]) {
                    write!(w, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

/// Python's `float.__repr__` (as `json.dumps` uses it, with JSON's names for non-finite values).
pub fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    let sign = if x.is_sign_negative() { "-" } else { "" };
    if x == 0.0 {
        return format!("{sign}0.0");
    }
    // Rust's `{:e}` prints the shortest round-trip digits, as Python's repr does; only the
    // placement of the point and the exponent's spelling differ.
    let e = format!("{:e}", x.abs());
    let (mant, exp) = e.split_once('e').expect("LowerExp has an exponent");
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let exp: i32 = exp.parse().expect("LowerExp exponent is an integer");
    let decpt = exp + 1; // value = 0.DIGITS * 10^decpt
    let nd = digits.len() as i32;
    let body = if decpt > -4 && decpt <= 16 {
        if decpt <= 0 {
            format!("0.{}{}", "0".repeat((-decpt) as usize), digits)
        } else if decpt >= nd {
            format!("{}{}.0", digits, "0".repeat((decpt - nd) as usize))
        } else {
            format!("{}.{}", &digits[..decpt as usize], &digits[decpt as usize..])
        }
    } else {
        let e = decpt - 1;
        let frac = if nd > 1 { format!(".{}", &digits[1..]) } else { String::new() };
        format!("{}{}e{}{:02}", &digits[..1], frac, if e < 0 { '-' } else { '+' }, e.abs())
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};
    use sha2::{Digest, Sha256};

    use super::*;

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn floats_as_python_repr() {
        // json.dumps([1e-06, 1e-05, ...]) in Python 3
        let floats = [
            1e-06,
            1e-05,
            0.0001,
            0.02,
            0.5,
            1.0,
            1000000.0,
            1e15,
            1e16,
            1e20,
            1.5e-07,
            123456789.125,
            -0.0,
            0.1 + 0.2,
            2.5e300,
            5e-324,
            f64::MAX,
            -1234.5,
            0.001,
            1e22,
            9007199254740993.0,
            1e-4 * 3.0,
        ];
        let want = "[1e-06, 1e-05, 0.0001, 0.02, 0.5, 1.0, 1000000.0, 1000000000000000.0, 1e+16, 1e+20, 1.5e-07, \
                    123456789.125, -0.0, 0.30000000000000004, 2.5e+300, 5e-324, 1.7976931348623157e+308, -1234.5, 0.001, \
                    1e+22, 9007199254740992.0, 0.00030000000000000003]";
        let got: Vec<String> = floats.iter().map(|&x| dumps(&x, Style::compact())).collect();
        assert_eq!(format!("[{}]", got.join(", ")), want);
        // The same through a parsed Value, next to integers: 1 and 1.0 stay apart.
        assert_eq!(
            dumps(&parse("[1, 1.0, 1e-6, 1E+20, 18446744073709551615, -9223372036854775808]"), Style::compact()),
            "[1,1.0,1e-06,1e+20,18446744073709551615,-9223372036854775808]"
        );
        // json.dumps([float("inf"), float("-inf"), float("nan")]); serde_json writes no such values.
        assert_eq!([f64::INFINITY, f64::NEG_INFINITY, f64::NAN].map(float_repr), ["Infinity", "-Infinity", "NaN"]);
    }

    #[test]
    fn strings_as_python() {
        let s = "a\"b\\c/\n\r\t\u{8}\u{c}\u{0}\u{1f}\u{7f} é ü 中 😀 \u{2028}";
        // json.dumps(s)
        let ascii = r#""a\"b\\c/\n\r\t\b\f\u0000\u001f\u007f \u00e9 \u00fc \u4e2d \ud83d\ude00 \u2028""#;
        assert_eq!(dumps(s, Style { indent: None, ensure_ascii: true }), ascii);
        // json.dumps(s, ensure_ascii=False)
        let utf8 = "\"a\\\"b\\\\c/\\n\\r\\t\\b\\f\\u0000\\u001f\u{7f} é ü 中 😀 \u{2028}\"";
        assert_eq!(dumps(s, Style { indent: None, ensure_ascii: false }), utf8);
        // Keys are escaped the same way: json.dumps({"k😀": "v"}, separators=(",", ":"))
        assert_eq!(dumps(&json!({"k😀": "v"}), Style::compact()), r#"{"k\ud83d\ude00":"v"}"#);
        assert_eq!(parse(ascii), Value::from(s), "and parsed back");
    }

    #[test]
    fn nesting_and_empty_containers_as_python() {
        let v = parse(r#"{"b": [1, 2.0, {}], "a": {"x": null, "y": "é\n", "z": [[], [true, false]]}, "c": [], "d": {}}"#);
        // json.dumps(v, indent=2, ensure_ascii=False)
        assert_eq!(
            dumps(&v, Style::indented(2)),
            "{\n  \"b\": [\n    1,\n    2.0,\n    {}\n  ],\n  \"a\": {\n    \"x\": null,\n    \"y\": \"é\\n\",\n    \"z\": [\n      [],\n      [\n        true,\n        false\n      ]\n    ]\n  },\n  \"c\": [],\n  \"d\": {}\n}"
        );
        // json.dumps(v, indent=1)
        assert_eq!(
            dumps(&v, Style { indent: Some(1), ensure_ascii: true }),
            "{\n \"b\": [\n  1,\n  2.0,\n  {}\n ],\n \"a\": {\n  \"x\": null,\n  \"y\": \"\\u00e9\\n\",\n  \"z\": [\n   [],\n   [\n    true,\n    false\n   ]\n  ]\n },\n \"c\": [],\n \"d\": {}\n}"
        );
        // json.dumps(v, separators=(",", ":"))
        assert_eq!(dumps(&v, Style::compact()), r#"{"b":[1,2.0,{}],"a":{"x":null,"y":"\u00e9\n","z":[[],[true,false]]},"c":[],"d":{}}"#);
        assert_eq!(dumps(&json!([]), Style::indented(4)), "[]");
        assert_eq!(dumps(&json!({}), Style::indented(4)), "{}");
    }

    #[test]
    fn dict_order_as_python() {
        // json.dumps(json.loads('{"a":1,"b":2,"a":3}')) keeps the first place and the last value,
        // and d["b"] = 5; d["c"] = 6 keeps "b" in place.
        let mut v = parse(r#"{"a": 1, "b": 2, "a": 3}"#);
        let m = v.as_object_mut().unwrap();
        m.insert("b".into(), json!(5));
        m.insert("c".into(), json!(6));
        assert_eq!(dumps(&v, Style::compact()), r#"{"a":3,"b":5,"c":6}"#);
    }

    /// Every committed JSON file was written by `json.dumps`; parsing and dumping it again in the
    /// same style must give the same bytes (tokenizer.json: 11 MB, 262k lines with non-ASCII text).
    #[test]
    fn committed_files_round_trip() {
        let dir = crate::model_assets_dir().unwrap();
        for (file, style, newline) in [
            ("config.json", Style::indented(2), false),
            ("preprocessor_config.json", Style::indented(4), false),
            ("model.safetensors.index.json", Style::indented(2), true),
            ("generation_config.json", Style::indented(2), true),
            ("tokenizer_config.json", Style::indented(2), true),
            ("special_tokens_map.json", Style::indented(2), true),
            ("added_tokens.json", Style::indented(2), true),
            ("tokenizer.json", Style::indented(2), false),
            ("vocab.json", Style { indent: None, ensure_ascii: false }, false),
        ] {
            let text = std::fs::read_to_string(dir.join(file)).unwrap();
            let again = dumps(&parse(&text), style) + if newline { "\n" } else { "" };
            assert!(again == text, "{file} does not round-trip");
        }
        // ensure_ascii over the same text: sha256 of json.dumps(json.load(f), indent=2) in Python 3
        let tok = parse(&std::fs::read_to_string(dir.join("tokenizer.json")).unwrap());
        let ascii = dumps(&tok, Style { indent: Some(2), ensure_ascii: true });
        assert_eq!(crate::hex(&Sha256::digest(ascii.as_bytes())), "d2aa2fb3658ea3454b65f105522e31b65eee639cf8154dc8e42163033c05ef0c");
    }
}
