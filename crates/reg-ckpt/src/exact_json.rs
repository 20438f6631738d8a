//! Metadata as JSON without losing a float.
//!
//! What a checkpoint says (hyperparameters, optimizer and scheduler
//! settings, callback and Trainer state, scores) is kept as JSON. JSON
//! numbers cannot be NaN or infinite, and serde_json writes such an `f64`
//! as `null`, which reads back as "absent" or fails to read at all. So
//! every float reg records goes through this module, which writes:
//!
//! - a finite float as a JSON number in its shortest exact form (`-0.0`,
//!   subnormals and `0.1 + 0.2` included: serde_json's `float_roundtrip`
//!   reads them back bit for bit);
//! - any other float as the **float tag** `{"$float": TEXT}`, TEXT one of
//!   `nan` (the quiet NaN Python's `float("nan")` is, bits
//!   `0x7ff8000000000000`), `inf`, `-inf`, or `nan:0x` and 16 hex digits
//!   for a NaN of any other bits (a negative NaN, as x86 computes `0/0`);
//! - an object of the source whose only key is `$float` or `$object`
//!   (which would read as a tag) as `{"$object": {...}}`, the **escape**.
//!
//! [`present`] turns stored JSON into what users see (`reg show --json`,
//! diffs, the web pages): tags become the strings `nan`, `inf`, `-inf`
//! and escapes their object, as docs/cli.md promises. [`parse`] reads JSON
//! that Python's `json.dump` wrote (`trainer_state.json`, `config.json`),
//! whose `NaN`, `Infinity` and `-Infinity` tokens standard JSON lacks.
//!
//! ```
//! # fn main() -> Result<(), serde_json::Error> {
//! use reg_ckpt::exact_json::{as_f64, float, parse, present};
//! let stored = float(f64::NAN);
//! assert_eq!(stored.to_string(), r#"{"$float":"nan"}"#);
//! assert!(as_f64(&stored).is_some_and(f64::is_nan));
//! assert_eq!(present(&stored), serde_json::json!("nan"));
//! let state = parse(br#"{"best_metric": NaN, "loss": -Infinity}"#)?;
//! assert_eq!(as_f64(&state["loss"]), Some(f64::NEG_INFINITY));
//! # Ok(())
//! # }
//! ```

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// The key of a float tag.
pub const FLOAT_TAG: &str = "$float";
/// The key of an escaped object.
pub const OBJECT_TAG: &str = "$object";

/// The bits of Python's `float("nan")`, written as plain `nan`.
const CANONICAL_NAN: u64 = 0x7ff8_0000_0000_0000;

/// A float as stored JSON: a number when finite, else a float tag.
pub fn float(f: f64) -> Value {
    match serde_json::Number::from_f64(f) {
        Some(n) => Value::Number(n),
        None => {
            let mut m = Map::new();
            m.insert(FLOAT_TAG.into(), Value::String(tag_text(f)));
            Value::Object(m)
        }
    }
}

/// The text of a float tag for a non-finite float.
fn tag_text(f: f64) -> String {
    if f.is_nan() {
        if f.to_bits() == CANONICAL_NAN {
            "nan".into()
        } else {
            format!("nan:0x{:016x}", f.to_bits())
        }
    } else if f > 0.0 {
        "inf".into()
    } else {
        "-inf".into()
    }
}

/// The float a tag's text names.
fn from_tag_text(text: &str) -> Option<f64> {
    match text {
        "nan" => Some(f64::from_bits(CANONICAL_NAN)),
        "inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        _ => {
            let hex = text.strip_prefix("nan:0x")?;
            if hex.len() != 16 {
                return None;
            }
            let f = f64::from_bits(u64::from_str_radix(hex, 16).ok()?);
            f.is_nan().then_some(f)
        }
    }
}

/// An object of the source as stored JSON: itself, or escaped when its
/// shape is that of a tag.
pub fn object(map: Map<String, Value>) -> Value {
    let reserved = map.len() == 1 && map.keys().all(|k| k == FLOAT_TAG || k == OBJECT_TAG);
    if reserved {
        let mut outer = Map::new();
        outer.insert(OBJECT_TAG.into(), Value::Object(map));
        Value::Object(outer)
    } else {
        Value::Object(map)
    }
}

/// What a stored value is, seen through tags.
pub enum Seen<'v> {
    /// A float (a number or a float tag).
    Float(f64),
    /// An object of the source (an escape's inner object, or a plain one).
    Object(&'v Map<String, Value>),
    /// Anything else, as it is.
    Other(&'v Value),
}

/// Look at a stored value through its tags.
pub fn see(v: &Value) -> Seen<'_> {
    match v {
        Value::Number(n) if n.is_f64() => Seen::Float(n.as_f64().unwrap_or(f64::NAN)),
        Value::Object(m) if m.len() == 1 => {
            if let Some(Value::String(t)) = m.get(FLOAT_TAG) {
                if let Some(f) = from_tag_text(t) {
                    return Seen::Float(f);
                }
            }
            match m.get(OBJECT_TAG) {
                Some(Value::Object(inner)) => Seen::Object(inner),
                _ => Seen::Object(m),
            }
        }
        Value::Object(m) => Seen::Object(m),
        other => Seen::Other(other),
    }
}

/// The number a stored value holds: a JSON number or a float tag.
pub fn as_f64(v: &Value) -> Option<f64> {
    match see(v) {
        Seen::Float(f) => Some(f),
        Seen::Other(Value::Number(n)) => n.as_f64(),
        _ => None,
    }
}

/// True for a float tag (a value, not a group of values).
pub fn is_float_tag(v: &Value) -> bool {
    matches!(see(v), Seen::Float(_)) && v.is_object()
}

/// The members of a stored object of the source (through an escape);
/// `None` for anything else, a float tag included.
pub fn as_object(v: &Value) -> Option<&Map<String, Value>> {
    match see(v) {
        Seen::Object(m) => Some(m),
        _ => None,
    }
}

/// Stored JSON as users see it: float tags as the strings `nan`, `inf`,
/// `-inf` (every NaN is `nan`), escaped objects as themselves.
pub fn present(v: &Value) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.iter().map(present).collect()),
        Value::Object(_) => match see(v) {
            Seen::Float(f) => Value::String(text_of_nonfinite(f)),
            Seen::Object(m) => Value::Object(m.iter().map(|(k, x)| (k.clone(), present(x))).collect()),
            Seen::Other(x) => x.clone(),
        },
        other => other.clone(),
    }
}

fn text_of_nonfinite(f: f64) -> String {
    if f.is_nan() {
        "nan".into()
    } else if f > 0.0 {
        "inf".into()
    } else if f < 0.0 {
        "-inf".into()
    } else {
        f.to_string()
    }
}

/// Exact equality of stored values: numbers by their exact text (`-0.0`
/// is not `0.0`, `1` is not `1.0`), float tags by their bits (a NaN
/// equals a NaN of the same bits), objects key by key whatever their
/// order (as Python compares dicts), lists element by element.
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.to_string() == y.to_string(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, p)| y.get(k).is_some_and(|q| same(p, q)))
        }
        _ => a == b,
    }
}

/// Stored JSON as one line of text for people: compact JSON, but a float
/// tag is the bare `nan`, `inf` or `-inf` (as Python prints it), so a
/// float NaN (`nan`) and the string `"nan"` read apart.
pub fn to_text(v: &Value) -> String {
    let mut out = String::new();
    write_text(v, &mut out, text_of_nonfinite);
    out
}

/// Stored JSON as Python's `json.dumps` writes it: standard JSON, but a
/// float tag is the bare token `NaN`, `Infinity` or `-Infinity`, which
/// Python's `json.loads` (and [`parse`]) read back as the float. For JSON
/// that Python code reads, such as a safetensors export's
/// `hyper_parameters` metadata. (A NaN's sign and payload bits are not
/// kept: Python writes every NaN as `NaN`.)
pub fn to_python_json(v: &Value) -> String {
    let mut out = String::new();
    write_text(v, &mut out, python_token);
    out
}

fn python_token(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f > 0.0 {
        "Infinity".into()
    } else {
        "-Infinity".into()
    }
}

fn write_text(v: &Value, out: &mut String, nonfinite: fn(f64) -> String) {
    match v {
        Value::Array(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_text(x, out, nonfinite);
            }
            out.push(']');
        }
        Value::Object(_) => match see(v) {
            Seen::Float(f) => out.push_str(&nonfinite(f)),
            Seen::Object(m) => {
                out.push('{');
                for (i, (k, x)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write_text(x, out, nonfinite);
                }
                out.push('}');
            }
            Seen::Other(x) => out.push_str(&x.to_string()),
        },
        other => out.push_str(&other.to_string()),
    }
}

/// [`present`] on any serializable value (a view that holds stored JSON).
pub fn present_value<T: Serialize + ?Sized>(v: &T) -> Result<Value, serde_json::Error> {
    Ok(present(&serde_json::to_value(v)?))
}

/// Parse JSON as Python's `json.dump` writes it: standard JSON plus the
/// bare tokens `NaN`, `Infinity` and `-Infinity`, which become float tags.
/// Objects shaped like tags are escaped, so the result is stored JSON.
pub fn parse(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    // Each token is replaced by a string no input holds (checked by
    // counting after the parse), then the strings become tags.
    for attempt in 0u32..64 {
        let marker = format!("\u{0}reg-float-{attempt}:");
        let (text, replaced) = replace_tokens(bytes, &marker);
        let value: Value = serde_json::from_slice(&text)?;
        let mut found = 0usize;
        let value = retag(value, &marker, &mut found);
        if found == replaced {
            return Ok(value);
        }
    }
    // Unreachable in practice (64 markers all present in the input); the
    // plain parser's verdict stands then.
    serde_json::from_slice(bytes)
}

/// Replace the non-standard float tokens outside strings by marker strings.
fn replace_tokens(bytes: &[u8], marker: &str) -> (Vec<u8>, usize) {
    let mut out = Vec::with_capacity(bytes.len());
    let mut replaced = 0;
    let mut in_string = false;
    let mut i = 0;
    let quoted = |name: &str| {
        let mut s = serde_json::to_string(&format!("{marker}{name}")).unwrap_or_default();
        s.insert(0, ' ');
        s.push(' ');
        s.into_bytes()
    };
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            out.push(b);
            match b {
                b'\\' => {
                    if let Some(&next) = bytes.get(i + 1) {
                        out.push(next);
                        i += 1;
                    }
                }
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        let rest = &bytes[i..];
        let token = [("NaN", "nan"), ("-Infinity", "-inf"), ("Infinity", "inf")]
            .into_iter()
            .find(|(t, _)| rest.starts_with(t.as_bytes()));
        match token {
            Some((t, name)) => {
                out.extend_from_slice(&quoted(name));
                replaced += 1;
                i += t.len();
            }
            None => {
                if b == b'"' {
                    in_string = true;
                }
                out.push(b);
                i += 1;
            }
        }
    }
    (out, replaced)
}

/// Markers to tags, tag-shaped objects escaped.
fn retag(v: Value, marker: &str, found: &mut usize) -> Value {
    match v {
        Value::String(s) => match s.strip_prefix(marker) {
            Some(name) => {
                *found += 1;
                float(from_tag_text(name).unwrap_or(f64::NAN))
            }
            None => Value::String(s),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(|x| retag(x, marker, found)).collect()),
        Value::Object(m) => object(m.into_iter().map(|(k, x)| (k, retag(x, marker, found))).collect()),
        other => other,
    }
}

/// Make JSON that came from elsewhere (a plain `serde_json` parse) stored
/// JSON: tag-shaped objects escaped.
pub fn escape_objects(v: Value) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.into_iter().map(escape_objects).collect()),
        Value::Object(m) => object(m.into_iter().map(|(k, x)| (k, escape_objects(x))).collect()),
        other => other,
    }
}

/// Serde for an `f64` field of stored JSON: a number or a float tag. Reads
/// also the strings `nan`, `inf`, `-inf` and, as NaN, the `null` that
/// releases before this module wrote for a non-finite value.
pub mod f64_exact {
    use super::*;

    /// Write `f` as [`float`] does.
    pub fn serialize<S: Serializer>(f: &f64, s: S) -> Result<S::Ok, S::Error> {
        float(*f).serialize(s)
    }

    /// Read a number, a float tag, `"nan"`/`"inf"`/`"-inf"` or `null` (NaN).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        let v = Value::deserialize(d)?;
        read(&v).ok_or_else(|| serde::de::Error::custom(format!("expected a float, found {v}")))
    }

    pub(super) fn read(v: &Value) -> Option<f64> {
        match v {
            Value::Null => Some(f64::NAN),
            Value::String(s) => from_tag_text(s),
            other => as_f64(other),
        }
    }
}

/// Serde for an `Option<f64>` field of stored JSON: `null` for `None`,
/// else as [`f64_exact`] (a legacy `null` reads as `None`: releases before
/// this module cannot tell a non-finite value from an absent one).
pub mod opt_f64_exact {
    use super::*;

    /// Write `None` as `null`, a float as [`float`] does.
    pub fn serialize<S: Serializer>(f: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match f {
            Some(f) => float(*f).serialize(s),
            None => s.serialize_none(),
        }
    }

    /// Read `null` as `None`, anything else as [`f64_exact`] does.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        let v = Value::deserialize(d)?;
        if v.is_null() {
            return Ok(None);
        }
        f64_exact::read(&v)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("expected a float or null, found {v}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_json_writes_non_finite_floats_as_python_does_and_reads_back() {
        let stored = json!({"clip": float(f64::INFINITY), "floor": float(f64::NEG_INFINITY),
                            "warmup": float(f64::NAN), "eps": -0.0, "odd": {"$object": {"$float": "x"}}});
        let text = to_python_json(&stored);
        assert_eq!(
            text,
            r#"{"clip":Infinity,"floor":-Infinity,"warmup":NaN,"eps":-0.0,"odd":{"$float":"x"}}"#
        );
        let back = parse(text.as_bytes()).expect("parse");
        assert!(same(&back, &stored), "{back} vs {stored}");
    }

    fn bits_round_trip(f: f64) -> u64 {
        let text = float(f).to_string();
        let back: Value = serde_json::from_str(&text).expect("parse");
        as_f64(&back).expect("a float").to_bits()
    }

    #[test]
    fn every_float_class_round_trips_bit_for_bit() {
        let cases = [
            0.0,
            -0.0,
            f64::MIN_POSITIVE / 4.0,
            -5e-324,
            0.1 + 0.2,
            f64::MAX,
            f64::MIN,
            1.0 / 3.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            -f64::NAN,
            f64::from_bits(0x7ff0_0000_0000_0001),
            f64::from(f32::from_bits(0xffc0_0000)),
        ];
        for f in cases {
            assert_eq!(bits_round_trip(f), f.to_bits(), "{f:e} ({:#x})", f.to_bits());
        }
    }

    #[test]
    fn tag_shaped_objects_are_escaped_and_presented_as_themselves() {
        let user = json!({"$float": "nan"});
        let Value::Object(m) = user.clone() else { unreachable!() };
        let stored = object(m);
        assert_eq!(stored, json!({"$object": {"$float": "nan"}}));
        assert!(as_f64(&stored).is_none());
        assert_eq!(present(&stored), user);
        let two = json!({"$float": "nan", "b": 1});
        let Value::Object(m) = two.clone() else { unreachable!() };
        assert_eq!(object(m), two, "only the one-key shape is a tag");
    }

    #[test]
    fn text_tells_a_float_nan_from_the_string() {
        let v = json!([{"$float": "nan"}, "nan", {"$float": "-inf"}, -0.0, {"$object": {"$float": 1}}]);
        assert_eq!(to_text(&v), r#"[nan,"nan",-inf,-0.0,{"$float":1}]"#);
    }

    #[test]
    fn python_json_parses_with_its_nan_tokens_outside_strings_only() {
        let text = br#"{"a": NaN, "b": [Infinity, -Infinity, 1.5], "c": "NaN \" Infinity", "d": {"$float": "inf"}}"#;
        let v = parse(text).expect("parse");
        assert!(as_f64(&v["a"]).is_some_and(f64::is_nan));
        assert_eq!(as_f64(&v["b"][0]), Some(f64::INFINITY));
        assert_eq!(as_f64(&v["b"][1]), Some(f64::NEG_INFINITY));
        assert_eq!(v["c"], json!("NaN \" Infinity"));
        assert!(as_f64(&v["d"]).is_none(), "a user's tag-shaped object is not a float");
        assert_eq!(present(&v["d"]), json!({"$float": "inf"}));
        assert!(parse(b"{\"a\": Nan}").is_err());
    }

    #[test]
    fn typed_fields_read_legacy_nulls_and_strings() {
        #[derive(Serialize, Deserialize)]
        struct S {
            #[serde(with = "f64_exact")]
            v: f64,
            #[serde(with = "opt_f64_exact", default)]
            o: Option<f64>,
        }
        let s: S = serde_json::from_str(r#"{"v": null, "o": null}"#).expect("legacy");
        assert!(s.v.is_nan() && s.o.is_none());
        let s: S = serde_json::from_str(r#"{"v": "-inf", "o": {"$float": "inf"}}"#).expect("tags");
        assert_eq!((s.v, s.o), (f64::NEG_INFINITY, Some(f64::INFINITY)));
        let text = serde_json::to_string(&S {
            v: -0.0,
            o: Some(f64::NAN),
        })
        .expect("write");
        assert_eq!(text, r#"{"v":-0.0,"o":{"$float":"nan"}}"#);
    }
}
