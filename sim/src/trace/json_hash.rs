//! [`Trace::hash`](super::Trace::hash)'s writer: a record's JSON line, byte for byte as
//! `serde_json` writes it (compact), fed straight into FNV-1a with no buffer in between.
//!
//! A `serde::Serializer` of the shapes trace events are made of: structs (an internally
//! tagged enum's variant is one), strings, integers, booleans, options, sequences,
//! tuples, unit variants. Anything else (maps, floats, 128-bit integers, bytes, chars)
//! is refused with [`Unsupported`], and `Trace::hash` then hashes that record through
//! `serde_json` from the hasher's state before it: the bytes hashed are `serde_json`'s
//! either way. Strings are escaped as `serde_json::ser::format_escaped_str_contents`
//! escapes them (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other controls as `\u00xx`
//! in lower-case hex; nothing else).

use super::{Fnv64, TraceRecord};
use serde::ser::{self, Serialize};
use std::fmt;

/// A shape this writer does not write (the record is hashed through `serde_json`).
#[derive(Debug)]
pub(super) struct Unsupported;

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a shape trace events are not made of")
    }
}

impl std::error::Error for Unsupported {}

impl ser::Error for Unsupported {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Unsupported
    }
}

/// Hash `r`'s JSON line (`{"seq":…,"time":…,"choice":…,` the event's fields `}` `\n`).
pub(super) fn hash_record(h: &mut Fnv64, r: &TraceRecord) -> Result<(), Unsupported> {
    h.write(b"{\"seq\":");
    write_u64(h, r.seq);
    h.write(b",\"time\":");
    write_u64(h, r.time);
    h.write(b",\"choice\":");
    write_u64(h, r.choice);
    // The event's object continues the record's: `#[serde(flatten)]` writes its fields
    // after the record's own, each after a comma.
    r.event.serialize(Json {
        h: &mut *h,
        continued: true,
    })?;
    h.write(b"\n");
    Ok(())
}

fn write_u64(h: &mut Fnv64, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    h.write(&buf[i..]);
}

fn write_i64(h: &mut Fnv64, n: i64) {
    if n < 0 {
        h.write(b"-");
    }
    write_u64(h, n.unsigned_abs());
}

/// Whether `serde_json` escapes this byte.
fn escaped(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// `s` as a JSON string, quoted and escaped.
fn write_str(h: &mut Fnv64, s: &str) {
    h.write(b"\"");
    write_str_contents(h, s);
    h.write(b"\"");
}

fn write_str_contents(h: &mut Fnv64, s: &str) {
    let bytes = s.as_bytes();
    // No early exit: the scan vectorises, and most strings need no escape.
    if !bytes.iter().fold(false, |any, b| any | escaped(*b)) {
        h.write(bytes);
        return;
    }
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !escaped(b) {
            continue;
        }
        h.write(&bytes[run..i]);
        run = i + 1;
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            0x0c => b'f',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            _ => 0,
        };
        if short != 0 {
            h.write(&[b'\\', short]);
        } else {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            h.write(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]);
        }
    }
    h.write(&bytes[run..]);
}

/// Escapes what a `Display` writes (`collect_str`) as it goes.
struct StrContents<'a>(&'a mut Fnv64);

impl fmt::Write for StrContents<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_str_contents(self.0, s);
        Ok(())
    }
}

struct Json<'a> {
    h: &'a mut Fnv64,
    /// The next object continues one already open (the record's): no `{`, and a comma
    /// before its first field.
    continued: bool,
}

/// A sequence's or an object's members; `close` is written at its end.
struct Compound<'a> {
    h: &'a mut Fnv64,
    first: bool,
    close: &'static [u8],
}

impl<'a> Compound<'a> {
    fn comma(&mut self) {
        if !self.first {
            self.h.write(b",");
        }
        self.first = false;
    }

    fn element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Unsupported> {
        self.comma();
        value.serialize(Json {
            h: &mut *self.h,
            continued: false,
        })
    }

    fn field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        self.comma();
        write_str(self.h, key);
        self.h.write(b":");
        value.serialize(Json {
            h: &mut *self.h,
            continued: false,
        })
    }

    fn end(self) -> Result<(), Unsupported> {
        self.h.write(self.close);
        Ok(())
    }
}

impl<'a> Json<'a> {
    fn seq(self, open: &'static [u8], close: &'static [u8]) -> Compound<'a> {
        self.h.write(open);
        Compound {
            h: self.h,
            first: true,
            close,
        }
    }

    fn object(self, close: &'static [u8]) -> Compound<'a> {
        if self.continued {
            Compound {
                h: self.h,
                first: false,
                close,
            }
        } else {
            self.h.write(b"{");
            Compound {
                h: self.h,
                first: true,
                close,
            }
        }
    }
}

impl<'a> ser::Serializer for Json<'a> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = ser::Impossible<(), Unsupported>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    fn serialize_bool(self, v: bool) -> Result<(), Unsupported> {
        self.h.write(if v { b"true" } else { b"false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Unsupported> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<(), Unsupported> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<(), Unsupported> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<(), Unsupported> {
        write_i64(self.h, v);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), Unsupported> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<(), Unsupported> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<(), Unsupported> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<(), Unsupported> {
        write_u64(self.h, v);
        Ok(())
    }
    fn serialize_f32(self, _: f32) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_f64(self, _: f64) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_char(self, _: char) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_str(self, v: &str) -> Result<(), Unsupported> {
        write_str(self.h, v);
        Ok(())
    }
    fn collect_str<T: ?Sized + fmt::Display>(self, value: &T) -> Result<(), Unsupported> {
        use fmt::Write as _;
        self.h.write(b"\"");
        write!(StrContents(&mut *self.h), "{value}").map_err(|_| Unsupported)?;
        self.h.write(b"\"");
        Ok(())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_none(self) -> Result<(), Unsupported> {
        self.h.write(b"null");
        Ok(())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), Unsupported> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Unsupported> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Unsupported> {
        self.serialize_none()
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), Unsupported> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        let mut o = self.object(b"}");
        o.field(variant, value)?;
        o.end()
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'a>, Unsupported> {
        Ok(self.seq(b"[", b"]"))
    }
    fn serialize_tuple(self, _: usize) -> Result<Compound<'a>, Unsupported> {
        Ok(self.seq(b"[", b"]"))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Compound<'a>, Unsupported> {
        Ok(self.seq(b"[", b"]"))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'a>, Unsupported> {
        let mut o = self.object(b"]}");
        o.comma();
        write_str(o.h, variant);
        o.h.write(b":[");
        o.first = true;
        Ok(o)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Compound<'a>, Unsupported> {
        Ok(self.object(b"}"))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'a>, Unsupported> {
        let mut o = self.object(b"}}");
        o.comma();
        write_str(o.h, variant);
        o.h.write(b":{");
        o.first = true;
        Ok(o)
    }
}

impl ser::SerializeSeq for Compound<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Unsupported> {
        self.element(value)
    }
    fn end(self) -> Result<(), Unsupported> {
        Compound::end(self)
    }
}

impl ser::SerializeTuple for Compound<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Unsupported> {
        self.element(value)
    }
    fn end(self) -> Result<(), Unsupported> {
        Compound::end(self)
    }
}

impl ser::SerializeTupleStruct for Compound<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Unsupported> {
        self.element(value)
    }
    fn end(self) -> Result<(), Unsupported> {
        Compound::end(self)
    }
}

impl ser::SerializeTupleVariant for Compound<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Unsupported> {
        self.element(value)
    }
    fn end(self) -> Result<(), Unsupported> {
        Compound::end(self)
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        self.field(key, value)
    }
    fn end(self) -> Result<(), Unsupported> {
        Compound::end(self)
    }
}

impl ser::SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        self.field(key, value)
    }
    fn end(self) -> Result<(), Unsupported> {
        Compound::end(self)
    }
}
