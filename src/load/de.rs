//! A serde `Deserializer` over toml's spanned document (`toml::de::DeTable`, whose keys
//! and values are `toml::Spanned`): the derives in `scenario.rs` read the file through
//! it, and every error comes back as a [`DeError`] that knows *what* went wrong (serde's
//! own classes: unknown key, missing key, unknown variant, or a value of the wrong kind)
//! and *where* (the byte span and key path of the offending key or value). Only public
//! APIs of serde and toml are used.

use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess};
use std::fmt;
use std::ops::Range;
use toml::de::DeValue;
use toml::Spanned;

pub(super) type Span = Range<usize>;

/// One step of a key path: a table key or an array index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

pub(super) type Path = Vec<Seg>;

/// The kind of value a type asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Want {
    Number,
    Str,
    Bool,
    List,
    Table,
    /// Anything but a date (no scenario value is a date).
    NotDate,
}

/// A plain value that serde reported as unexpected (from its `Unexpected`).
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Found {
    Int(i128),
    Float(f64),
    Str(String),
    Bool(bool),
    Other,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Fault {
    UnknownField {
        field: String,
        expected: &'static [&'static str],
    },
    MissingField(&'static str),
    UnknownVariant {
        variant: String,
        expected: &'static [&'static str],
    },
    /// A value of another kind than the type asked for.
    Mismatch(Want),
    /// A whole number that does not fit the type (negative, or too large).
    OutOfRange,
    /// A list of the wrong length (the ranges `[low, high]`).
    Length(usize),
    /// serde's `invalid_type` / `invalid_value`, raised by a visitor.
    Invalid {
        found: Found,
        expected: String,
    },
    /// Field names of a struct, captured by [`fields_of`].
    Fields(&'static [&'static str]),
    Custom(String),
}

/// An error while reading the tree, with the span and path where it happened.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct DeError {
    pub fault: Fault,
    pub at: Option<(Span, Path)>,
}

impl DeError {
    fn new(fault: Fault) -> DeError {
        DeError { fault, at: None }
    }

    /// Places the error here unless a deeper reader already placed it.
    fn locate(mut self, span: &Span, path: &Path) -> DeError {
        if self.at.is_none() {
            self.at = Some((span.clone(), path.clone()));
        }
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.fault)
    }
}

impl std::error::Error for DeError {}

fn found(u: de::Unexpected<'_>) -> Found {
    match u {
        de::Unexpected::Signed(i) => Found::Int(i128::from(i)),
        de::Unexpected::Unsigned(u) => Found::Int(i128::from(u)),
        de::Unexpected::Float(f) => Found::Float(f),
        de::Unexpected::Str(s) => Found::Str(s.to_string()),
        de::Unexpected::Bool(b) => Found::Bool(b),
        _ => Found::Other,
    }
}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::new(Fault::Custom(msg.to_string()))
    }

    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        DeError::new(Fault::Invalid {
            found: found(unexp),
            expected: exp.to_string(),
        })
    }

    fn invalid_value(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::invalid_type(unexp, exp)
    }

    fn invalid_length(len: usize, _exp: &dyn de::Expected) -> Self {
        DeError::new(Fault::Length(len))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DeError::new(Fault::UnknownVariant {
            variant: variant.to_string(),
            expected,
        })
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        DeError::new(Fault::UnknownField {
            field: field.to_string(),
            expected,
        })
    }

    fn missing_field(field: &'static str) -> Self {
        DeError::new(Fault::MissingField(field))
    }
}

/// Reads `T` from a spanned value (the document root, as a table).
pub(super) fn from_value<T: de::DeserializeOwned>(v: &Spanned<DeValue<'_>>) -> Result<T, DeError> {
    T::deserialize(ValueDe {
        v,
        path: Vec::new(),
    })
    .map_err(|e| e.locate(&v.span(), &Vec::new()))
}

/// The field names a derived struct accepts, from its own `Deserialize` impl.
pub(super) fn fields_of<T: de::DeserializeOwned>() -> &'static [&'static str] {
    match T::deserialize(FieldsDe) {
        Err(DeError {
            fault: Fault::Fields(f),
            ..
        }) => f,
        _ => &[],
    }
}

struct FieldsDe;

impl<'de> Deserializer<'de> for FieldsDe {
    type Error = DeError;

    fn deserialize_any<V: de::Visitor<'de>>(self, _v: V) -> Result<V::Value, DeError> {
        Err(DeError::new(Fault::Fields(&[])))
    }

    fn deserialize_struct<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _v: V,
    ) -> Result<V::Value, DeError> {
        Err(DeError::new(Fault::Fields(fields)))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// A value of the tree, at a key path.
struct ValueDe<'a, 'i> {
    v: &'a Spanned<DeValue<'i>>,
    path: Path,
}

impl ValueDe<'_, '_> {
    fn fail<T>(&self, fault: Fault) -> Result<T, DeError> {
        Err(DeError::new(fault).locate(&self.v.span(), &self.path))
    }

    fn int(&self) -> Result<i128, DeError> {
        match self.v.get_ref() {
            DeValue::Integer(i) => match i128::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Ok(n),
                Err(_) => self.fail(Fault::OutOfRange),
            },
            DeValue::Datetime(_) => self.fail(Fault::Mismatch(Want::Number)),
            _ => self.fail(Fault::Mismatch(Want::Number)),
        }
    }

    /// A whole number within `lo..=hi` (the type's range).
    fn ranged(&self, lo: i128, hi: i128) -> Result<i128, DeError> {
        let n = self.int()?;
        if n < lo || n > hi {
            return self.fail(Fault::OutOfRange);
        }
        Ok(n)
    }

    fn placed<T>(&self, r: Result<T, DeError>) -> Result<T, DeError> {
        r.map_err(|e| e.locate(&self.v.span(), &self.path))
    }

    fn seq<'de, V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let DeValue::Array(items) = self.v.get_ref() else {
            return self.fail(Fault::Mismatch(Want::List));
        };
        let mut access = SeqAcc {
            items: items.iter(),
            index: 0,
            path: &self.path,
        };
        let value = self.placed(visitor.visit_seq(&mut access))?;
        if access.items.len() > 0 {
            return self.fail(Fault::Length(items.len()));
        }
        Ok(value)
    }

    fn map<'de, V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let DeValue::Table(t) = self.v.get_ref() else {
            return self.fail(Fault::Mismatch(Want::Table));
        };
        let access = MapAcc {
            entries: t.iter(),
            value: None,
            path: &self.path,
        };
        self.placed(visitor.visit_map(access))
    }
}

macro_rules! ints {
    ($($method:ident $visit:ident $t:ty;)*) => {$(
        fn $method<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let n = self.ranged(i128::from(<$t>::MIN), i128::from(<$t>::MAX))?;
            self.placed(visitor.$visit(n as $t))
        }
    )*};
}

impl<'de> Deserializer<'de> for ValueDe<'_, '_> {
    type Error = DeError;

    fn deserialize_any<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.v.get_ref() {
            DeValue::String(s) => self.placed(visitor.visit_str(s)),
            DeValue::Integer(_) => {
                let n = self.int()?;
                let r = match i64::try_from(n) {
                    Ok(i) => visitor.visit_i64(i),
                    Err(_) => match u64::try_from(n) {
                        Ok(u) => visitor.visit_u64(u),
                        Err(_) => return self.fail(Fault::OutOfRange),
                    },
                };
                self.placed(r)
            }
            DeValue::Float(f) => match f.as_str().parse::<f64>() {
                Ok(x) => self.placed(visitor.visit_f64(x)),
                Err(_) => self.fail(Fault::Mismatch(Want::Number)),
            },
            DeValue::Boolean(b) => self.placed(visitor.visit_bool(*b)),
            DeValue::Datetime(_) => self.fail(Fault::Mismatch(Want::NotDate)),
            DeValue::Array(_) => self.seq(visitor),
            DeValue::Table(_) => self.map(visitor),
        }
    }

    fn deserialize_bool<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.v.get_ref() {
            DeValue::Boolean(b) => self.placed(visitor.visit_bool(*b)),
            _ => self.fail(Fault::Mismatch(Want::Bool)),
        }
    }

    ints! {
        deserialize_i8 visit_i8 i8;
        deserialize_i16 visit_i16 i16;
        deserialize_i32 visit_i32 i32;
        deserialize_i64 visit_i64 i64;
        deserialize_u8 visit_u8 u8;
        deserialize_u16 visit_u16 u16;
        deserialize_u32 visit_u32 u32;
        deserialize_u64 visit_u64 u64;
    }

    fn deserialize_f32<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.v.get_ref() {
            DeValue::Float(_) | DeValue::Integer(_) => self.deserialize_any(visitor),
            _ => self.fail(Fault::Mismatch(Want::Number)),
        }
    }

    fn deserialize_str<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.v.get_ref() {
            DeValue::String(s) => self.placed(visitor.visit_str(s)),
            _ => self.fail(Fault::Mismatch(Want::Str)),
        }
    }

    fn deserialize_string<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_char<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.seq(visitor)
    }

    fn deserialize_tuple<V: de::Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.seq(visitor)
    }

    fn deserialize_tuple_struct<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.seq(visitor)
    }

    fn deserialize_map<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.map(visitor)
    }

    fn deserialize_struct<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.map(visitor)
    }

    fn deserialize_enum<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.v.get_ref() {
            DeValue::String(s) => {
                let unit: de::value::StrDeserializer<'_, DeError> = s.as_ref().into_deserializer();
                self.placed(visitor.visit_enum(unit))
            }
            _ => self.fail(Fault::Mismatch(Want::Str)),
        }
    }

    fn deserialize_ignored_any<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! { i128 u128 bytes byte_buf unit unit_struct }
}

struct SeqAcc<'a, 'i, 'p> {
    items: std::slice::Iter<'a, Spanned<DeValue<'i>>>,
    index: usize,
    path: &'p Path,
}

impl<'de> SeqAccess<'de> for SeqAcc<'_, '_, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(v) = self.items.next() else {
            return Ok(None);
        };
        let mut path = self.path.clone();
        path.push(Seg::Index(self.index));
        self.index += 1;
        let span = v.span();
        seed.deserialize(ValueDe {
            v,
            path: path.clone(),
        })
        .map(Some)
        .map_err(|e| e.locate(&span, &path))
    }
}

type Entry<'a, 'i> = (
    &'a Spanned<std::borrow::Cow<'i, str>>,
    &'a Spanned<DeValue<'i>>,
);

struct MapAcc<'a, 'i, 'p, I: Iterator<Item = Entry<'a, 'i>>> {
    entries: I,
    value: Option<(Path, &'a Spanned<DeValue<'i>>)>,
    path: &'p Path,
}

impl<'de, 'a, 'i, I: Iterator<Item = Entry<'a, 'i>>> MapAccess<'de> for MapAcc<'a, 'i, '_, I> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((k, v)) = self.entries.next() else {
            return Ok(None);
        };
        let mut path = self.path.clone();
        path.push(Seg::Key(k.get_ref().to_string()));
        let key: de::value::StrDeserializer<'_, DeError> = k.get_ref().as_ref().into_deserializer();
        let out = seed
            .deserialize(key)
            .map_err(|e| e.locate(&k.span(), &path))?;
        self.value = Some((path, v));
        Ok(Some(out))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, DeError> {
        let Some((path, v)) = self.value.take() else {
            return Err(DeError::new(Fault::Custom("a value without a key".into())));
        };
        let span = v.span();
        seed.deserialize(ValueDe {
            v,
            path: path.clone(),
        })
        .map_err(|e| e.locate(&span, &path))
    }
}
