//! msgpack values (as notepack.io encodes JavaScript values) to the JSON that npm socket.io
//! would send for them, refusing what JSON cannot carry.
//!
//! - maps with string keys, arrays, strings, booleans and nil map one to one; a repeated key
//!   keeps its first position and its last value, like a JavaScript object;
//! - integers keep all 64 bits (u64 and i64 ranges); floats are kept, `NaN` and `±Infinity`
//!   become `null` as in `JSON.stringify`;
//! - the timestamp extension (-1, a JavaScript `Date`) becomes `Date.prototype.toJSON`'s ISO
//!   string, or `null` outside the range of a JavaScript `Date`;
//! - binary, other extensions, non-string keys and invalid UTF-8 are refused.

use rmpv::Value;
use serde_json::{Map, Number, Value as Json, value::RawValue};

use super::{EmitterError, MAX_DATA_DEPTH};

/// The msgpack timestamp extension type.
const TIMESTAMP_EXT: i8 = -1;
/// A JavaScript `Date` holds at most ±8.64e15 ms around the epoch (ECMA-262 TimeClip).
const MAX_JS_TIME_MS: i128 = 8_640_000_000_000_000;
const MS_PER_DAY: i64 = 86_400_000;

/// The last value under `key` in a msgpack map (JavaScript objects keep the last one too).
pub(super) fn field<'v>(map: &'v [(Value, Value)], key: &str) -> Option<&'v Value> {
    map.iter()
        .rev()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

/// A string value, or `WrongShape(wrong)`; invalid UTF-8 is [`EmitterError::InvalidUtf8`].
pub(super) fn string(value: &Value, wrong: &'static str) -> Result<String, EmitterError> {
    match value {
        Value::String(s) => s
            .as_str()
            .map(str::to_owned)
            .ok_or(EmitterError::InvalidUtf8),
        _ => Err(EmitterError::WrongShape(wrong)),
    }
}

/// One event argument as JSON text.
pub(super) fn to_raw_json(value: &Value) -> Result<Box<RawValue>, EmitterError> {
    let json = to_json(value, 0)?;
    serde_json::value::to_raw_value(&json)
        .map_err(|_| EmitterError::WrongShape("argument is not serializable as JSON"))
}

/// `depth` counts the arrays and maps around `value`.
fn to_json(value: &Value, depth: usize) -> Result<Json, EmitterError> {
    Ok(match value {
        Value::Nil => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Integer(i) => i
            .as_u64()
            .map(Number::from)
            .or_else(|| i.as_i64().map(Number::from))
            .map_or(Json::Null, Json::Number),
        Value::F32(f) => float(f64::from(*f)),
        Value::F64(f) => float(*f),
        Value::String(s) => Json::String(s.as_str().ok_or(EmitterError::InvalidUtf8)?.to_owned()),
        Value::Binary(_) => return Err(EmitterError::Binary),
        Value::Array(items) => {
            check_depth(depth)?;
            Json::Array(
                items
                    .iter()
                    .map(|v| to_json(v, depth + 1))
                    .collect::<Result<_, _>>()?,
            )
        }
        Value::Map(entries) => {
            check_depth(depth)?;
            let mut map = Map::new();
            for (k, v) in entries {
                let Value::String(k) = k else {
                    return Err(EmitterError::NonStringKey);
                };
                let k = k.as_str().ok_or(EmitterError::InvalidUtf8)?;
                map.insert(k.to_owned(), to_json(v, depth + 1)?);
            }
            Json::Object(map)
        }
        Value::Ext(TIMESTAMP_EXT, data) => {
            let (secs, nanos) =
                timestamp(data).ok_or(EmitterError::UnsupportedExtension(TIMESTAMP_EXT))?;
            js_iso_string(secs, nanos).map_or(Json::Null, Json::String)
        }
        Value::Ext(kind, _) => return Err(EmitterError::UnsupportedExtension(*kind)),
    })
}

fn check_depth(depth: usize) -> Result<(), EmitterError> {
    if depth >= MAX_DATA_DEPTH {
        Err(EmitterError::TooDeep)
    } else {
        Ok(())
    }
}

/// `JSON.stringify` writes non-finite numbers as `null`.
fn float(f: f64) -> Json {
    Number::from_f64(f).map_or(Json::Null, Json::Number)
}

/// The msgpack timestamp's (seconds, nanoseconds), from its 4, 8 or 12 bytes.
fn timestamp(data: &[u8]) -> Option<(i64, u32)> {
    match data.len() {
        4 => Some((i64::from(u32::from_be_bytes(data.try_into().ok()?)), 0)),
        8 => {
            let v = u64::from_be_bytes(data.try_into().ok()?);
            let nanos = u32::try_from(v >> 34).ok()?;
            let secs = i64::try_from(v & 0x3_ffff_ffff).ok()?;
            Some((secs, nanos))
        }
        12 => {
            let nanos = u32::from_be_bytes(data.get(..4)?.try_into().ok()?);
            let secs = i64::from_be_bytes(data.get(4..)?.try_into().ok()?);
            Some((secs, nanos))
        }
        _ => None,
    }
}

/// What `new Date(secs * 1e3 + nanos / 1e6).toJSON()` gives: the ISO string with milliseconds
/// (truncated toward zero, as TimeClip does), or `None` (JSON `null`) for an invalid `Date`.
pub(super) fn js_iso_string(secs: i64, nanos: u32) -> Option<String> {
    let ms = (i128::from(secs) * 1_000_000_000 + i128::from(nanos)) / 1_000_000;
    if ms.abs() > MAX_JS_TIME_MS {
        return None;
    }
    let ms = i64::try_from(ms).ok()?;
    let (year, month, day) = civil_from_days(ms.div_euclid(MS_PER_DAY));
    let t = ms.rem_euclid(MS_PER_DAY);
    let (hour, min, sec, milli) = (t / 3_600_000, t / 60_000 % 60, t / 1000 % 60, t % 1000);
    // toISOString: four-digit years in 0..=9999, otherwise a sign and six digits.
    let year = if (0..=9999).contains(&year) {
        format!("{year:04}")
    } else if year < 0 {
        format!("-{:06}", -year)
    } else {
        format!("+{year:06}")
    };
    Some(format!(
        "{year}-{month:02}-{day:02}T{hour:02}:{min:02}:{sec:02}.{milli:03}Z"
    ))
}

/// Proleptic Gregorian (year, month, day) of a day count from 1970-01-01 (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
