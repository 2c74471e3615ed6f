//! Resource quantities as upstream's `resource.Quantity` parses, compares, adds and prints them (canonical form: `500m`, `1Gi`, `2k`), for the admission plugins' arithmetic and messages.

use std::cmp::Ordering;

use serde_json::Value;

/// How a quantity prints, taken from the suffix it was written with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `m`, ``, `k`, `M`, ...
    DecimalSi,
    /// `Ki`, `Mi`, ...
    BinarySi,
    /// `1e3`
    DecimalExponent,
}

/// A quantity in billionths (upstream rounds finer values up to the nano), with its format.
#[derive(Clone, Copy, Debug)]
pub struct Quantity {
    pub nanos: i128,
    pub format: Format,
}

const NANO: i128 = 1_000_000_000;

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.nanos.cmp(&other.nanos))
    }
}

impl Quantity {
    pub const ZERO: Quantity = Quantity {
        nanos: 0,
        format: Format::DecimalSi,
    };

    pub fn from_int(value: i64) -> Quantity {
        Quantity {
            nanos: i128::from(value) * NANO,
            format: Format::DecimalSi,
        }
    }

    /// Parse `^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$`.
    pub fn parse(text: &str) -> Option<Quantity> {
        let text = text.trim();
        let (negative, rest) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(split);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return None;
        }
        let (base, exponent, format): (i128, i32, Format) = match suffix {
            "" => (10, 0, Format::DecimalSi),
            "n" => (10, -9, Format::DecimalSi),
            "u" => (10, -6, Format::DecimalSi),
            "m" => (10, -3, Format::DecimalSi),
            "k" => (10, 3, Format::DecimalSi),
            "M" => (10, 6, Format::DecimalSi),
            "G" => (10, 9, Format::DecimalSi),
            "T" => (10, 12, Format::DecimalSi),
            "P" => (10, 15, Format::DecimalSi),
            "E" => (10, 18, Format::DecimalSi),
            "Ki" => (2, 10, Format::BinarySi),
            "Mi" => (2, 20, Format::BinarySi),
            "Gi" => (2, 30, Format::BinarySi),
            "Ti" => (2, 40, Format::BinarySi),
            "Pi" => (2, 50, Format::BinarySi),
            "Ei" => (2, 60, Format::BinarySi),
            s if s.starts_with(['e', 'E']) => {
                let e: i32 = s[1..].parse().ok()?;
                (10, e, Format::DecimalExponent)
            }
            _ => return None,
        };
        // The digits as an integer with `scale` decimals.
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        let digits = format!("{int_part}{frac_part}");
        let mut mantissa: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().ok()?
        };
        let scale = frac_part.len() as i32;
        // value = mantissa * 10^-scale * base^exponent, in nanos: * 10^9.
        let mut pow10 = 9 - scale;
        if base == 2 {
            mantissa = mantissa.checked_mul(1i128.checked_shl(exponent as u32)?)?;
        } else {
            pow10 += exponent;
        }
        let nanos = if pow10 >= 0 {
            mantissa.checked_mul(10i128.checked_pow(pow10 as u32)?)?
        } else {
            let divisor = 10i128.checked_pow((-pow10) as u32)?;
            // Rounded up to the nano, as upstream.
            (mantissa + divisor - 1) / divisor
        };
        Some(Quantity {
            nanos: if negative { -nanos } else { nanos },
            format,
        })
    }

    /// A quantity from a JSON value (string or number), as it appears in a resource list.
    pub fn from_json(value: &Value) -> Option<Quantity> {
        match value {
            Value::String(s) => Quantity::parse(s),
            Value::Number(n) => Quantity::parse(&n.to_string()),
            _ => None,
        }
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// Upstream's `Add`: a zero quantity takes the other's format.
    pub fn add(self, other: Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos + other.nanos,
            format: if self.nanos == 0 {
                other.format
            } else {
                self.format
            },
        }
    }

    pub fn to_json(self) -> Value {
        Value::String(self.to_string())
    }
}

impl std::fmt::Display for Quantity {
    /// Upstream's canonical form (`Quantity.String`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.nanos == 0 {
            return f.write_str("0");
        }
        let mut format = self.format;
        if format == Format::BinarySi && (self.nanos.abs() < 1024 * NANO || self.nanos % NANO != 0)
        {
            format = Format::DecimalSi;
        }
        if format == Format::BinarySi {
            let mut amount = self.nanos / NANO;
            let mut exp = 0;
            while amount % 1024 == 0 && exp < 6 {
                amount /= 1024;
                exp += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][exp];
            return write!(f, "{amount}{suffix}");
        }
        let mut amount = self.nanos;
        let mut exponent: i32 = -9;
        while amount % 10 == 0 {
            amount /= 10;
            exponent += 1;
        }
        match exponent.rem_euclid(3) {
            1 => {
                amount *= 10;
                exponent -= 1;
            }
            2 => {
                amount *= 100;
                exponent -= 2;
            }
            _ => {}
        }
        if format == Format::DecimalExponent {
            return match exponent {
                0 => write!(f, "{amount}"),
                e => write!(f, "{amount}e{e}"),
            };
        }
        let suffix = match exponent {
            -9 => "n",
            -6 => "u",
            -3 => "m",
            0 => "",
            3 => "k",
            6 => "M",
            9 => "G",
            12 => "T",
            15 => "P",
            18 => "E",
            e => return write!(f, "{amount}e{e}"),
        };
        write!(f, "{amount}{suffix}")
    }
}

/// A resource list (`{"cpu": "100m", ...}`) as sorted name → quantity pairs; unparsable
/// entries are skipped (validation reports them).
pub fn list(value: Option<&Value>) -> std::collections::BTreeMap<String, Quantity> {
    value
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), Quantity::from_json(v)?)))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        Quantity::parse(s).unwrap().to_string()
    }

    #[test]
    fn canonical_forms_match_upstream() {
        for (input, want) in [
            ("100m", "100m"),
            ("0.5", "500m"),
            ("1000m", "1"),
            ("1500m", "1500m"),
            ("2000", "2k"),
            ("1Gi", "1Gi"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("512", "512"),
            ("1e3", "1e3"),
            ("0", "0"),
            ("1.5Gi", "1536Mi"),
            ("100M", "100M"),
            ("12345", "12345"),
        ] {
            assert_eq!(canon(input), want, "{input}");
        }
        assert!(Quantity::parse("abc").is_none());
        assert!(Quantity::parse("1Xi").is_none());
    }

    #[test]
    fn arithmetic_and_order() {
        let a = Quantity::parse("500m").unwrap();
        let b = Quantity::parse("1").unwrap();
        assert!(a < b);
        assert_eq!(a.add(a), b);
        assert_eq!(
            Quantity::ZERO
                .add(Quantity::parse("1Gi").unwrap())
                .to_string(),
            "1Gi"
        );
        assert_eq!(
            Quantity::parse("1Ki").unwrap(),
            Quantity::parse("1024").unwrap()
        );
    }
}
