//! Small value types the spec files need beyond serde's defaults: numbers that remember whether
//! they were written as integers (LMBench names result files with Python's `str()` of the value),
//! keys that hold one item or a list, trace durations, and secrets that never print.

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// A YAML number that keeps its written form: `2` stays an integer, `2.0` stays a float.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Num {
    /// The value.
    pub value: f64,
    /// True if it was written as an integer.
    pub is_int: bool,
}

impl Num {
    /// A float-valued number.
    pub fn float(value: f64) -> Self {
        Num {
            value,
            is_int: false,
        }
    }

    /// The label LMBench puts in file names and in `workload.QPS`: Python's `str()` of the value.
    pub fn label(&self) -> String {
        if self.is_int {
            format!("{}", self.value as i64)
        } else if self.value.is_finite()
            && self.value == self.value.trunc()
            && self.value.abs() < 1e16
        {
            format!("{:.1}", self.value)
        } else {
            format!("{}", self.value)
        }
    }

    /// The value as JSON, an integer if it was written as one.
    pub fn to_json(&self) -> serde_json::Value {
        if self.is_int {
            serde_json::Value::from(self.value as i64)
        } else {
            serde_json::Number::from_f64(self.value)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null)
        }
    }
}

impl Serialize for Num {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.is_int {
            s.serialize_i64(self.value as i64)
        } else {
            s.serialize_f64(self.value)
        }
    }
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Num, E> {
                Ok(Num {
                    value: v as f64,
                    is_int: true,
                })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Num, E> {
                Ok(Num {
                    value: v as f64,
                    is_int: true,
                })
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Num, E> {
                Ok(Num::float(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// A key that holds either one item or a list of items (LMBench accepts both for workloads,
/// and a single number where a list of QPS values is expected).
#[derive(Debug, Clone, PartialEq)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<T> Default for OneOrMany<T> {
    fn default() -> Self {
        OneOrMany(Vec::new())
    }
}

impl<T: Serialize> Serialize for OneOrMany<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("one item or a list of items")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element()? {
                    out.push(item);
                }
                Ok(OneOrMany(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|t| OneOrMany(vec![t]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                T::deserialize(de::value::I64Deserializer::new(v)).map(|t| OneOrMany(vec![t]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                T::deserialize(de::value::U64Deserializer::new(v)).map(|t| OneOrMany(vec![t]))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                T::deserialize(de::value::F64Deserializer::new(v)).map(|t| OneOrMany(vec![t]))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                T::deserialize(de::value::StrDeserializer::new(v)).map(|t| OneOrMany(vec![t]))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// TraceReplayer's `DURATION`: a number of seconds, or the whole trace (`null`, `full`).
#[derive(Debug, Clone, PartialEq)]
pub enum TraceDuration {
    /// Replay the whole trace (LMBench's `-1`).
    Full,
    /// Replay this many seconds from START_TIME.
    Seconds(f64),
}

impl Serialize for TraceDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            TraceDuration::Full => s.serialize_i64(-1),
            TraceDuration::Seconds(v) => s.serialize_f64(*v),
        }
    }
}

impl<'de> Deserialize<'de> for TraceDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = TraceDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of seconds, `full` or null")
            }
            fn visit_unit<E: de::Error>(self) -> Result<TraceDuration, E> {
                Ok(TraceDuration::Full)
            }
            fn visit_none<E: de::Error>(self) -> Result<TraceDuration, E> {
                Ok(TraceDuration::Full)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TraceDuration, E> {
                Ok(if v < 0 {
                    TraceDuration::Full
                } else {
                    TraceDuration::Seconds(v as f64)
                })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TraceDuration, E> {
                Ok(TraceDuration::Seconds(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<TraceDuration, E> {
                Ok(if v < 0.0 {
                    TraceDuration::Full
                } else {
                    TraceDuration::Seconds(v)
                })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TraceDuration, E> {
                if v.eq_ignore_ascii_case("full") {
                    Ok(TraceDuration::Full)
                } else {
                    v.trim()
                        .parse::<f64>()
                        .map(TraceDuration::Seconds)
                        .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A boolean that also accepts the strings `true`/`false` in any case (LMBench coerces
/// `PRESERVE_TIMING` with `str(value).lower() == 'true'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LooseBool(pub bool);

impl Serialize for LooseBool {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(self.0)
    }
}

impl<'de> Deserialize<'de> for LooseBool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = LooseBool;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("true or false")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<LooseBool, E> {
                Ok(LooseBool(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<LooseBool, E> {
                match v.trim().to_ascii_lowercase().as_str() {
                    "true" => Ok(LooseBool(true)),
                    "false" => Ok(LooseBool(false)),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A secret (an HF token): never printed, never serialized.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The value, for handing to a deployment's environment. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn num_labels_follow_python_str() {
        let n: Vec<Num> = serde_saphyr::from_str("[2, 2.0, 0.5, 1.34, 10]").unwrap();
        let labels: Vec<String> = n.iter().map(Num::label).collect();
        assert_eq!(labels, ["2", "2.0", "0.5", "1.34", "10"]);
        assert_eq!(n[0].to_json(), serde_json::json!(2));
        assert_eq!(n[1].to_json(), serde_json::json!(2.0));
    }

    #[test]
    fn one_or_many_accepts_both() {
        let one: OneOrMany<Num> = serde_saphyr::from_str("1.5").unwrap();
        assert_eq!(one.0.len(), 1);
        let many: OneOrMany<Num> = serde_saphyr::from_str("[1, 2, 3]").unwrap();
        assert_eq!(many.0.len(), 3);
    }

    #[test]
    fn trace_duration_forms() {
        let d: Vec<TraceDuration> = serde_saphyr::from_str("[full, FULL, 60, 2.5, -1]").unwrap();
        assert_eq!(
            d,
            [
                TraceDuration::Full,
                TraceDuration::Full,
                TraceDuration::Seconds(60.0),
                TraceDuration::Seconds(2.5),
                TraceDuration::Full
            ]
        );
    }

    #[test]
    fn loose_bool_forms() {
        let b: Vec<LooseBool> = serde_saphyr::from_str("[true, 'True', 'false', false]").unwrap();
        assert_eq!(
            b.iter().map(|b| b.0).collect::<Vec<_>>(),
            [true, true, false, false]
        );
    }

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hf_abcdef");
        assert!(!format!("{s:?}").contains("hf_abc"));
    }
}

/// Workload items: one item or a list, each with its location where the parser gives one. A
/// single item written as a map has no location of its own (serde's map adapter cannot carry
/// one); callers fall back to the enclosing key's location.
#[derive(Debug, Clone)]
pub struct Items<T>(pub Vec<serde_saphyr::Spanned<T>>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Items<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Items<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("one workload item (a map) or a list of them")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element()? {
                    out.push(item);
                }
                Ok(Items(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let t = T::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let unknown = serde_saphyr::Location::UNKNOWN;
                Ok(Items(vec![serde_saphyr::Spanned::new(t, unknown, unknown)]))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// The keys a serde struct accepts (its fields as named in files), read from its
/// `Deserialize` implementation.
pub fn field_names<T: de::DeserializeOwned>() -> Vec<&'static str> {
    struct Grab<'a>(&'a mut &'static [&'static str]);
    impl<'de> Deserializer<'de> for Grab<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("fields read"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Grab(&mut fields));
    fields.to_vec()
}

/// A name from a fixed list (a registered workload or baseline type), read as a map key or an
/// enum tag; anything else is serde's unknown-field (`as_variant: false`) or unknown-variant
/// error, which lists the names.
pub struct KnownName {
    /// The names allowed.
    pub names: &'static [&'static str],
    /// Whether the name is an enum tag (else a struct's field).
    pub as_variant: bool,
}

impl<'de> de::DeserializeSeed<'de> for KnownName {
    type Value = &'static str;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<&'static str, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl Visitor<'_> for KnownName {
    type Value = &'static str;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "one of {}", self.names.join(", "))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<&'static str, E> {
        match self.names.iter().find(|n| **n == v) {
            Some(n) => Ok(n),
            None if self.as_variant => Err(E::unknown_variant(v, self.names)),
            None => Err(E::unknown_field(v, self.names)),
        }
    }
}
