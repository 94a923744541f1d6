//! Numbers as bn-case/1 writes them: JSON numbers, or the strings
//! `"nan"`, `"inf"`, `"-inf"` for the values JSON cannot hold.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// One value of a case file or an output file.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Num(pub f64);

impl Serialize for Num {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_nan() {
            s.serialize_str("nan")
        } else if v == f64::INFINITY {
            s.serialize_str("inf")
        } else if v == f64::NEG_INFINITY {
            s.serialize_str("-inf")
        } else {
            s.serialize_f64(v)
        }
    }
}

struct NumVisitor;

impl Visitor<'_> for NumVisitor {
    type Value = Num;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a number, or one of the strings \"nan\", \"inf\", \"-inf\"")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Num, E> {
        Ok(Num(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Num, E> {
        Ok(Num(v as f64))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Num, E> {
        Ok(Num(v as f64))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Num, E> {
        match v {
            "nan" => Ok(Num(f64::NAN)),
            "inf" => Ok(Num(f64::INFINITY)),
            "-inf" => Ok(Num(f64::NEG_INFINITY)),
            _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
        }
    }
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Num, D::Error> {
        d.deserialize_any(NumVisitor)
    }
}

/// Widen a slice of case numbers to `f64`.
pub fn to_f64s(v: &[Num]) -> Vec<f64> {
    v.iter().map(|n| n.0).collect()
}

/// Wrap `f64` values for writing.
pub fn to_nums(v: impl IntoIterator<Item = f64>) -> Vec<Num> {
    v.into_iter().map(Num).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_specials_and_numbers() {
        let v = vec![
            Num(1.5),
            Num(f64::NAN),
            Num(f64::INFINITY),
            Num(f64::NEG_INFINITY),
            Num(-0.1),
        ];
        let s = serde_json::to_string(&v).unwrap();
        assert_eq!(s, r#"[1.5,"nan","inf","-inf",-0.1]"#);
        let back: Vec<Num> = serde_json::from_str(&s).unwrap();
        assert!(back[1].0.is_nan());
        assert_eq!(back[2].0, f64::INFINITY);
        assert_eq!(back[4].0, -0.1);
        assert!(serde_json::from_str::<Num>(r#""NaN""#).is_err());
        assert!(serde_json::from_str::<Num>("true").is_err());
    }
}
