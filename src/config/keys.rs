//! The configuration keys the settings structs declare, learnt by deserializing through them.
//!
//! [`read`] deserializes the merged configuration tree through a deserializer that, at every
//! struct, notes the fields the struct declares and the keys it was given that none of them
//! names. So the known keys *are* the `Settings` structs: a field added there is known here,
//! with no list to keep in step, and an `Option` field nobody set is still listed. Leaves are
//! handed to the `config` crate's own deserializer, so every value parses exactly as before.

use std::{cell::RefCell, collections::BTreeMap, fmt};

use config::{Value, ValueKind};
use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, IntoDeserializer, Visitor};

/// What one deserialization through the settings structs saw.
#[derive(Debug, Default)]
pub(super) struct Seen {
    /// Every struct met, by path (`""` for the root), with the fields it declares, in order.
    sections: BTreeMap<String, &'static [&'static str]>,
    /// Keys given that no struct declares, sorted.
    pub unknown: Vec<Unknown>,
}

/// A key no settings struct declares.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Unknown {
    /// Its full path, e.g. `securty` or `server.listn`.
    pub key: String,
    /// The declared key of the same struct it most resembles (an edit or two away), if any.
    pub suggestion: Option<String>,
}

impl Seen {
    /// Every leaf key the structs declare, sections expanded in place, in declaration order.
    pub fn leaves(&self) -> Vec<String> {
        let mut leaves = Vec::new();
        self.expand("", &mut leaves);
        leaves
    }

    fn expand(&self, section: &str, leaves: &mut Vec<String>) {
        let Some(fields) = self.sections.get(section) else {
            return;
        };
        for field in *fields {
            let key = join(section, field);
            if self.sections.contains_key(&key) {
                self.expand(&key, leaves);
            } else {
                leaves.push(key);
            }
        }
    }
}

/// Why a value could not be deserialized, and the key it concerns: relative to the value being
/// deserialized while the error travels up, the full path once out of [`read`].
#[derive(Debug)]
pub(super) struct KeyError {
    pub key: Option<String>,
    pub problem: Problem,
}

#[derive(Debug)]
pub(super) enum Problem {
    /// A declared key without a value (a field missing from the defaults: a bug).
    Missing,
    /// The value does not parse as the field's type.
    Invalid(String),
}

impl KeyError {
    fn within(mut self, parent: &str) -> Self {
        self.key = Some(match self.key {
            Some(key) => join(parent, &key),
            None => parent.to_owned(),
        });
        self
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.problem {
            Problem::Missing => write!(f, "no value and no default"),
            Problem::Invalid(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for KeyError {}

impl de::Error for KeyError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self {
            key: None,
            problem: Problem::Invalid(msg.to_string()),
        }
    }

    fn missing_field(field: &'static str) -> Self {
        Self {
            key: Some(field.to_owned()),
            problem: Problem::Missing,
        }
    }
}

impl From<config::ConfigError> for KeyError {
    fn from(e: config::ConfigError) -> Self {
        de::Error::custom(e)
    }
}

/// Deserializes `tree` as a `T`, noting what the structs of `T` declare and what they do not.
pub(super) fn read<T: DeserializeOwned>(tree: Value) -> (Result<T, KeyError>, Seen) {
    let seen = RefCell::new(Seen::default());
    let result = T::deserialize(Node {
        value: tree,
        path: String::new(),
        seen: &seen,
    });
    let mut seen = seen.into_inner();
    seen.unknown.sort();
    seen.unknown.dedup();
    (result, seen)
}

/// `a.b`, or `b` at the root.
pub(super) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// One value of the tree, at `path`.
struct Node<'s> {
    value: Value,
    path: String,
    seen: &'s RefCell<Seen>,
}

impl<'s> Node<'s> {
    fn entries(
        map: config::Map<String, Value>,
        path: String,
        seen: &'s RefCell<Seen>,
    ) -> Entries<'s> {
        Entries {
            entries: map.into_iter(),
            pending: None,
            path,
            seen,
        }
    }
}

/// A value for the `config` crate's deserializer, its origin dropped: the caller names where a
/// refused value came from, once.
fn leaf(value: Value) -> Value {
    let kind = match value.kind {
        ValueKind::Array(items) => ValueKind::Array(items.into_iter().map(leaf).collect()),
        ValueKind::Table(map) => {
            ValueKind::Table(map.into_iter().map(|(k, v)| (k, leaf(v))).collect())
        }
        other => other,
    };
    Value::new(None, kind)
}

/// Deserializer methods that read a leaf: the `config` crate's own.
macro_rules! leaves {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, KeyError> {
            Ok(leaf(self.value).$method($($arg,)* visitor)?)
        }
    )*};
}

impl<'de> Deserializer<'de> for Node<'_> {
    type Error = KeyError;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, KeyError> {
        let map = match self.value.kind {
            ValueKind::Table(map) => map,
            kind => {
                return Ok(leaf(Value::new(None, kind)).deserialize_struct(name, fields, visitor)?);
            }
        };
        {
            let mut seen = self.seen.borrow_mut();
            seen.sections.insert(self.path.clone(), fields);
            for key in map.keys().filter(|k| !fields.contains(&k.as_str())) {
                let unknown = Unknown {
                    key: join(&self.path, key),
                    suggestion: closest(key, fields).map(|field| join(&self.path, field)),
                };
                seen.unknown.push(unknown);
            }
        }
        visitor.visit_map(Node::entries(map, self.path, self.seen))
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, KeyError> {
        match self.value.kind {
            ValueKind::Table(map) => visitor.visit_map(Node::entries(map, self.path, self.seen)),
            kind => Ok(leaf(Value::new(None, kind)).deserialize_map(visitor)?),
        }
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, KeyError> {
        match self.value.kind {
            ValueKind::Table(map) => visitor.visit_map(Node::entries(map, self.path, self.seen)),
            kind => Ok(leaf(Value::new(None, kind)).deserialize_any(visitor)?),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, KeyError> {
        match self.value.kind {
            ValueKind::Nil => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, KeyError> {
        visitor.visit_newtype_struct(self)
    }

    leaves! {
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_unit();
        deserialize_seq();
        deserialize_identifier();
        deserialize_ignored_any();
        deserialize_unit_struct(name: &'static str);
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
    }
}

/// The entries of a table, each value a [`Node`] one level down.
struct Entries<'s> {
    entries: <config::Map<String, Value> as IntoIterator>::IntoIter,
    /// The entry whose key was just handed out, awaiting its value.
    pending: Option<(String, Value)>,
    path: String,
    seen: &'s RefCell<Seen>,
}

impl<'de> de::MapAccess<'de> for Entries<'_> {
    type Error = KeyError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, KeyError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        let decoded = seed.deserialize(IntoDeserializer::<KeyError>::into_deserializer(
            key.as_str(),
        ))?;
        self.pending = Some((key, value));
        Ok(Some(decoded))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, KeyError> {
        let (key, value) = self
            .pending
            .take()
            .expect("BUG: serde asks for a value only after its key");
        let node = Node {
            value,
            path: join(&self.path, &key),
            seen: self.seen,
        };
        seed.deserialize(node).map_err(|e| e.within(&key))
    }
}

/// The field `key` was most likely meant to be: at most two edits away (one for short keys).
fn closest(key: &str, fields: &[&'static str]) -> Option<&'static str> {
    let allowed = if key.chars().count() <= 4 { 1 } else { 2 };
    fields
        .iter()
        .map(|field| (edit_distance(key, field), *field))
        .filter(|(distance, _)| *distance <= allowed)
        .min()
        .map(|(_, field)| field)
}

/// Levenshtein distance: insertions, deletions and substitutions of characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_are_suggested_and_strangers_are_not() {
        let fields = &["listen", "shutdown_grace_seconds"];
        assert_eq!(closest("listn", fields), Some("listen"));
        assert_eq!(closest("lisetn", fields), Some("listen"));
        assert_eq!(closest("port", fields), None);
        assert_eq!(edit_distance("securty", "security"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
