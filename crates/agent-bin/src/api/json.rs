//! Strict reading of protobuf-JSON objects, with the field path in every error.
//!
//! serde's derive reports `missing field` without saying where, and accepts what protobuf-JSON
//! would not; requests are instead read field by field through [`Obj`], which knows its path
//! (`launch_container.command.uris[1].value`) and refuses unknown fields by name.

use serde_json::{Map, Value};

use super::schema::{Disposition, Message};
use crate::error::ApiError;

/// What a JSON value is, for error messages ("found a string").
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A field-path-aware view of a JSON object.
#[derive(Debug)]
pub struct Obj<'a> {
    path: String,
    map: &'a Map<String, Value>,
    known: Vec<&'static str>,
    schema: Option<&'static Message>,
}

/// `parent.child`, or `child` at the top.
pub fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn wrong_type(path: &str, expected: &str, found: &Value) -> ApiError {
    ApiError::bad_request(format!(
        "field '{path}': expected {expected}, found {}",
        kind(found)
    ))
}

impl<'a> Obj<'a> {
    /// Views `value` (at `path`) as an object.
    pub fn new(path: impl Into<String>, value: &'a Value) -> Result<Obj<'a>, ApiError> {
        let path = path.into();
        match value {
            Value::Object(map) => Ok(Obj {
                path,
                map,
                known: Vec::new(),
                schema: None,
            }),
            other if path.is_empty() => Err(ApiError::bad_request(format!(
                "the request body must be a JSON object (a Call), found {}",
                kind(other)
            ))),
            other => Err(wrong_type(&path, "an object", other)),
        }
    }

    /// Declares which Mesos message this object is: [`Obj::finish`] then answers fields the
    /// parser did not read by their disposition in `message` (accepted, or refused with the
    /// reason) rather than as unknown.
    pub fn schema(&mut self, message: &'static Message) {
        self.schema = Some(message);
    }

    /// [`Obj::new`] with [`Obj::schema`].
    pub fn of(
        path: impl Into<String>,
        value: &'a Value,
        message: &'static Message,
    ) -> Result<Obj<'a>, ApiError> {
        let mut o = Obj::new(path, value)?;
        o.schema(message);
        Ok(o)
    }

    /// The 400 refusing `key` with the reason its message's table gives (for fields refused
    /// only with some values, such as `share_pid_namespace: true`).
    pub fn refusal(&self, key: &str) -> ApiError {
        let why = match self
            .schema
            .and_then(|m| m.field(key))
            .map(|f| f.disposition)
        {
            Some(Disposition::Refused(why)) => why,
            _ => "not supported",
        };
        self.unsupported(key, why)
    }

    fn unsupported(&self, key: &str, why: &str) -> ApiError {
        let message = self.schema.map(|m| m.name).unwrap_or("this message");
        ApiError::bad_request(format!(
            "field '{}': Berth does not support Mesos's {message}.{key}: {why}",
            self.field_path(key)
        ))
    }

    /// This object's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The path of one of this object's fields.
    pub fn field_path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The raw value of `key`, if present and not null; marks the key known.
    pub fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        // A parser reading a field its message's table does not list is a bug in the table.
        debug_assert!(
            self.schema.is_none_or(|m| m.field(key).is_some()),
            "{key} is missing from the schema of {}",
            self.schema.map(|m| m.name).unwrap_or_default()
        );
        self.known.push(key);
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    fn missing(&self, key: &str, expected: &str) -> ApiError {
        ApiError::bad_request(format!(
            "missing required field '{}' ({expected})",
            self.field_path(key)
        ))
    }

    /// A required string.
    pub fn req_str(&mut self, key: &'static str) -> Result<&'a str, ApiError> {
        self.opt_str(key)?
            .ok_or_else(|| self.missing(key, "a string"))
    }

    /// An optional string.
    pub fn opt_str(&mut self, key: &'static str) -> Result<Option<&'a str>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(wrong_type(&self.field_path(key), "a string", v)),
        }
    }

    /// An optional boolean.
    pub fn opt_bool(&mut self, key: &'static str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(wrong_type(
                &self.field_path(key),
                "a boolean (true or false)",
                v,
            )),
        }
    }

    /// An optional integer in `min..=max`; protobuf-JSON allows 64-bit integers as strings.
    pub fn opt_int(
        &mut self,
        key: &'static str,
        min: i64,
        max: i64,
    ) -> Result<Option<i64>, ApiError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let path = self.field_path(key);
        int_value(&path, v, min, max).map(Some)
    }

    /// A required integer in `min..=max`.
    pub fn req_int(&mut self, key: &'static str, min: i64, max: i64) -> Result<i64, ApiError> {
        self.opt_int(key, min, max)?
            .ok_or_else(|| self.missing(key, "an integer"))
    }

    /// An optional number (protobuf-JSON also allows `"Infinity"` and numeric strings).
    pub fn opt_f64(&mut self, key: &'static str) -> Result<Option<f64>, ApiError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let path = self.field_path(key);
        float_value(&path, v).map(Some)
    }

    /// An optional nested object.
    pub fn opt_obj(&mut self, key: &'static str) -> Result<Option<Obj<'a>>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => Obj::new(self.field_path(key), v).map(Some),
        }
    }

    /// A required nested object.
    pub fn req_obj(&mut self, key: &'static str) -> Result<Obj<'a>, ApiError> {
        self.opt_obj(key)?
            .ok_or_else(|| self.missing(key, "an object"))
    }

    /// An optional array, as `(path, element)` pairs; absent is empty.
    pub fn arr(&mut self, key: &'static str) -> Result<Vec<(String, &'a Value)>, ApiError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => {
                let path = self.field_path(key);
                Ok(items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (format!("{path}[{i}]"), v))
                    .collect())
            }
            Some(v) => Err(wrong_type(&self.field_path(key), "an array", v)),
        }
    }

    /// Fails on the first field that no reader asked for, naming it: with a [`Obj::schema`],
    /// a field Mesos defines is accepted or refused by its disposition, and only a field Mesos
    /// does not define is "unknown".
    pub fn finish(self) -> Result<(), ApiError> {
        let mut unknown: Vec<&String> = self
            .map
            .keys()
            .filter(|k| !self.known.contains(&k.as_str()))
            .collect();
        unknown.sort();
        if let Some(schema) = self.schema {
            let mut rest = Vec::new();
            for k in unknown {
                let null = matches!(self.map.get(k.as_str()), Some(Value::Null));
                match schema.field(k).map(|f| f.disposition) {
                    // protobuf-JSON: null is the field's absence.
                    Some(_) if null => {}
                    Some(Disposition::Ignored(_)) => {}
                    Some(Disposition::Refused(why)) => return Err(self.unsupported(k, why)),
                    // Read only in some forms of the message (`ranges` of a SCALAR resource).
                    Some(Disposition::Honoured | Disposition::Kept(_)) => {
                        return Err(ApiError::bad_request(format!(
                            "field '{}': does not apply here (Mesos's {}.{k} is not used with \
                             the other fields given)",
                            self.field_path(k),
                            schema.name
                        )))
                    }
                    None => rest.push(k),
                }
            }
            unknown = rest;
        }
        match unknown.first() {
            None => Ok(()),
            Some(k) => {
                let mut known: Vec<&str> = match self.schema {
                    Some(m) => m.fields.iter().map(|f| f.name).collect(),
                    None => self.known.clone(),
                };
                known.sort_unstable();
                known.dedup();
                Err(ApiError::bad_request(format!(
                    "unknown field '{}' (known fields here: {})",
                    self.field_path(k),
                    known.join(", ")
                )))
            }
        }
    }
}

/// An integer in `min..=max` from a JSON number or numeric string.
pub fn int_value(path: &str, v: &Value, min: i64, max: i64) -> Result<i64, ApiError> {
    let n = match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => return Err(wrong_type(path, "an integer", v)),
    };
    let n = n.ok_or_else(|| {
        ApiError::bad_request(format!("field '{path}': expected an integer, found {v}"))
    })?;
    if n < min || n > max {
        return Err(ApiError::bad_request(format!(
            "field '{path}': {n} is out of range ({min}..={max})"
        )));
    }
    Ok(n)
}

/// A number from a JSON number, a numeric string, or `"Infinity"`.
pub fn float_value(path: &str, v: &Value) -> Result<f64, ApiError> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| wrong_type(path, "a number", v)),
        Value::String(s) => match s.trim() {
            "Infinity" | "inf" | "infinity" => Ok(f64::INFINITY),
            t => t
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "field '{path}': expected a number, found \"{s}\""
                    ))
                }),
        },
        other => Err(wrong_type(path, "a number", other)),
    }
}

/// A string element of an array.
pub fn str_value<'a>(path: &str, v: &'a Value) -> Result<&'a str, ApiError> {
    v.as_str().ok_or_else(|| wrong_type(path, "a string", v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_carry_the_full_path() {
        let v = json!({"a": {"b": [{"c": 1}]}});
        let mut top = Obj::new("", &v).unwrap();
        let mut a = top.req_obj("a").unwrap();
        let items = a.arr("b").unwrap();
        let mut item = Obj::new(items[0].0.clone(), items[0].1).unwrap();
        let e = item.req_str("c").unwrap_err();
        assert_eq!(
            e.message,
            "field 'a.b[0].c': expected a string, found a number"
        );
        let e = item.req_str("d").unwrap_err();
        assert_eq!(e.message, "missing required field 'a.b[0].d' (a string)");
    }

    #[test]
    fn unknown_fields_are_named() {
        let v = json!({"x": 1, "zz": 2});
        let mut o = Obj::new("call", &v).unwrap();
        o.opt_int("x", 0, 10).unwrap();
        let e = o.finish().unwrap_err();
        assert!(
            e.message.contains("unknown field 'call.zz'"),
            "{}",
            e.message
        );
    }

    #[test]
    fn integers_accept_protobuf_json_strings_and_check_ranges() {
        assert_eq!(int_value("p", &json!("42"), 0, 100).unwrap(), 42);
        assert_eq!(int_value("p", &json!(7.0), 0, 100).unwrap(), 7);
        assert!(int_value("p", &json!(7.5), 0, 100)
            .unwrap_err()
            .message
            .contains("expected an integer"));
        assert!(int_value("p", &json!(-1), 0, 100)
            .unwrap_err()
            .message
            .contains("out of range"));
        assert!(int_value("p", &json!(true), 0, 100)
            .unwrap_err()
            .message
            .contains("found a boolean"));
        assert_eq!(float_value("p", &json!("Infinity")).unwrap(), f64::INFINITY);
        assert!(float_value("p", &json!("NaN")).is_err());
    }

    #[test]
    fn null_counts_as_absent() {
        let v = json!({"a": null});
        let mut o = Obj::new("", &v).unwrap();
        assert_eq!(o.opt_str("a").unwrap(), None);
        o.finish().unwrap();
        assert!(Obj::new("", &json!([1]))
            .unwrap_err()
            .message
            .contains("must be a JSON object"));
    }
}
