//! Resource quantities as upstream's `resource.Quantity`: parsed from `500m`, `1Gi`, `1.5`, `2e3`, rounded up to nanounits, added keeping the first non-zero addend's format, and printed in upstream's canonical form (`1500m`, `1536Mi`, `2k`).

use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;

/// Nanounits per unit.
const NANO: i128 = 1_000_000_000;
/// Upstream caps every parsed quantity at the largest int64 (in units).
const MAX_NANOS: i128 = i64::MAX as i128 * NANO;

/// Why a quantity does not parse (upstream's `ErrFormatWrong` and `ErrSuffix`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The text is not a number followed by a suffix.
    #[error(
        "quantity {0:?}: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    Format(String),
    /// The suffix is none upstream knows.
    #[error("quantity {0:?}: unable to parse quantity's suffix")]
    Suffix(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a quantity prints: the format of the text it was parsed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `1e3`, `5E-2`.
    DecimalExponent,
    /// `1Ki`, `5Gi`.
    BinarySi,
    /// `5`, `500m`, `1k`, `2M`.
    DecimalSi,
}

/// A quantity: its value in nanounits (exact for everything upstream can hold after its
/// rounding) and its format. Equality and order are by value, as upstream's `Cmp`.
#[derive(Clone, Copy, Debug)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Quantity) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Quantity) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Quantity) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl Default for Quantity {
    /// Zero, `DecimalSI` (upstream's `resource.Quantity{Format: DecimalSI}`).
    fn default() -> Quantity {
        Quantity::zero()
    }
}

/// The pieces of a quantity's text (upstream's `parseQuantityString`).
struct Parts<'a> {
    positive: bool,
    num: &'a str,
    denom: &'a str,
    suffix: &'a str,
}

fn split(text: &str) -> Option<Parts<'_>> {
    let bytes = text.as_bytes();
    let end = bytes.len();
    let mut pos = 0;
    let mut positive = true;
    match bytes.first() {
        Some(b'-') => {
            positive = false;
            pos += 1;
        }
        Some(b'+') => pos += 1,
        _ => {}
    }
    while pos < end && bytes[pos] == b'0' {
        pos += 1;
    }
    if pos >= end {
        return Some(Parts {
            positive,
            num: "0",
            denom: "",
            suffix: "",
        });
    }
    let digits = |from: usize| {
        (from..end)
            .find(|&i| !bytes[i].is_ascii_digit())
            .unwrap_or(end)
    };
    let num_end = digits(pos);
    let num = &text[pos..num_end];
    pos = num_end;
    let mut denom = "";
    if pos < end && bytes[pos] == b'.' {
        let denom_end = digits(pos + 1);
        denom = &text[pos + 1..denom_end];
        pos = denom_end;
    }
    let suffix_start = pos;
    while pos < end && b"eEinumkKMGTP".contains(&bytes[pos]) {
        pos += 1;
    }
    if pos < end && (bytes[pos] == b'-' || bytes[pos] == b'+') {
        pos += 1;
    }
    if digits(pos) != end {
        return None;
    }
    Some(Parts {
        positive,
        num,
        denom,
        suffix: &text[suffix_start..],
    })
}

/// Base, exponent and format a suffix stands for (upstream's `quantitySuffixer.interpret`).
fn interpret(suffix: &str) -> Option<(u32, i32, Format)> {
    let decimal = |e| Some((10, e, Format::DecimalSi));
    let binary = |e| Some((2, e, Format::BinarySi));
    match suffix {
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "" => decimal(0),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        _ if suffix.len() > 1 && suffix.starts_with(['e', 'E']) => suffix[1..]
            .parse::<i32>()
            .ok()
            .map(|e| (10, e, Format::DecimalExponent)),
        _ => None,
    }
}

/// `10^exponent`, if it fits.
fn pow10(exponent: u32) -> Option<i128> {
    10i128.checked_pow(exponent)
}

impl Quantity {
    pub fn zero() -> Quantity {
        Quantity {
            nanos: 0,
            format: Format::DecimalSi,
        }
    }

    /// A whole number of units (upstream's `resource.NewQuantity`).
    pub fn from_units(units: i64, format: Format) -> Quantity {
        Quantity {
            nanos: i128::from(units) * NANO,
            format,
        }
    }

    /// Upstream's `ParseQuantity`.
    pub fn parse(text: &str) -> Result<Quantity> {
        let format_error = || Error::Format(text.to_string());
        if text.is_empty() {
            return Err(format_error());
        }
        if text == "0" {
            return Ok(Quantity::zero());
        }
        let parts = split(text).ok_or_else(format_error)?;
        let (base, exponent, format) =
            interpret(parts.suffix).ok_or_else(|| Error::Suffix(text.to_string()))?;
        let mut mantissa: i128 = 0;
        for digit in parts.num.bytes().chain(parts.denom.bytes()) {
            mantissa = mantissa
                .saturating_mul(10)
                .saturating_add(i128::from(digit - b'0'));
        }
        // value = mantissa × 10^(-len(denom)) × base^exponent, in nanounits.
        let mut power10 = 9 - i64::try_from(parts.denom.len()).unwrap_or(i64::MAX / 2);
        let mut amount = mantissa;
        if base == 2 {
            amount = amount.saturating_mul(1i128 << exponent);
        } else {
            power10 += i64::from(exponent);
        }
        let magnitude = if power10 >= 0 {
            u32::try_from(power10)
                .ok()
                .and_then(pow10)
                .map_or(i128::MAX, |p| amount.saturating_mul(p))
        } else {
            // Rounded up (away from zero) to a nanounit, as upstream does.
            match u32::try_from(-power10).ok().and_then(pow10) {
                Some(divisor) => amount / divisor + i128::from(amount % divisor != 0),
                None => i128::from(amount != 0),
            }
        };
        // Upstream caps only binary amounts, and prints a binary fraction of one decimally.
        let mut format = format;
        let mut nanos = magnitude;
        if format == Format::BinarySi {
            nanos = nanos.min(MAX_NANOS);
            if nanos > 0 && nanos < NANO {
                format = Format::DecimalSi;
            }
        }
        if !parts.positive {
            nanos = -nanos;
        }
        Ok(Quantity { nanos, format })
    }

    /// A quantity as the API carries it: a string, or (from YAML) a number.
    pub fn from_json(value: &Value) -> Result<Quantity> {
        match value {
            Value::String(s) => Quantity::parse(s),
            Value::Number(n) => Quantity::parse(&n.to_string()),
            other => Err(Error::Format(other.to_string())),
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// Upstream's `Value`: whole units, rounded up.
    pub fn value(&self) -> i64 {
        let units = self.nanos.div_euclid(NANO) + i128::from(self.nanos.rem_euclid(NANO) != 0);
        i64::try_from(units).unwrap_or(if units < 0 { i64::MIN } else { i64::MAX })
    }

    /// Upstream's `MilliValue`: thousandths of a unit, rounded up.
    pub fn milli_value(&self) -> i64 {
        let milli = NANO / 1000;
        let units = self.nanos.div_euclid(milli) + i128::from(self.nanos.rem_euclid(milli) != 0);
        i64::try_from(units).unwrap_or(if units < 0 { i64::MIN } else { i64::MAX })
    }

    /// Upstream's `Quantity.Add`: a zero quantity takes the format of what is added to it.
    pub fn add(&mut self, other: Quantity) {
        if self.nanos == 0 {
            self.format = other.format;
        }
        self.nanos = self.nanos.saturating_add(other.nanos);
    }

    /// Upstream's `RoundUp(0)`: rounded up to whole units.
    pub fn round_up_to_units(&self) -> Quantity {
        let units = self.nanos.div_euclid(NANO) + i128::from(self.nanos.rem_euclid(NANO) != 0);
        Quantity {
            nanos: units * NANO,
            format: self.format,
        }
    }

    /// Upstream's `CanonicalizeBytes`: the value with the largest suffix that keeps it a
    /// whole number (base-10 exponents a multiple of 3), binary suffixes only for whole
    /// numbers of at least 1024 that divide evenly.
    fn canonical(&self) -> String {
        if self.nanos == 0 {
            return "0".into();
        }
        let mut format = self.format;
        if format == Format::BinarySi && (self.nanos.abs() < 1024 * NANO || self.nanos % NANO != 0)
        {
            format = Format::DecimalSi;
        }
        if format == Format::BinarySi {
            let mut value = self.nanos / NANO;
            let mut exponent = 0;
            while value.abs() >= 1024 && value % 1024 == 0 && exponent < 60 {
                value /= 1024;
                exponent += 10;
            }
            let suffix = match exponent {
                10 => "Ki",
                20 => "Mi",
                30 => "Gi",
                40 => "Ti",
                50 => "Pi",
                60 => "Ei",
                _ => "",
            };
            return format!("{value}{suffix}");
        }
        let (mut value, mut exponent) = (self.nanos, -9i32);
        while value.abs() >= 10 && value % 10 == 0 {
            value /= 10;
            exponent += 1;
        }
        match exponent.rem_euclid(3) {
            1 => {
                value *= 10;
                exponent -= 1;
            }
            2 => {
                value *= 100;
                exponent -= 2;
            }
            _ => {}
        }
        let suffix = match (format, exponent) {
            (_, 0) => String::new(),
            (Format::DecimalSi, -9) => "n".into(),
            (Format::DecimalSi, -6) => "u".into(),
            (Format::DecimalSi, -3) => "m".into(),
            (Format::DecimalSi, 3) => "k".into(),
            (Format::DecimalSi, 6) => "M".into(),
            (Format::DecimalSi, 9) => "G".into(),
            (Format::DecimalSi, 12) => "T".into(),
            (Format::DecimalSi, 15) => "P".into(),
            (Format::DecimalSi, 18) => "E".into(),
            (_, e) => format!("e{e}"),
        };
        format!("{value}{suffix}")
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

impl std::str::FromStr for Quantity {
    type Err = Error;

    fn from_str(s: &str) -> Result<Quantity> {
        Quantity::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(text: &str) -> String {
        Quantity::parse(text)
            .unwrap_or_else(|e| panic!("{e}"))
            .to_string()
    }

    fn sum(texts: &[&str]) -> String {
        let mut total = Quantity::zero();
        for t in texts {
            total.add(Quantity::parse(t).unwrap());
        }
        total.to_string()
    }

    /// Upstream's canonicalisation examples (`quantity_test.go`'s `TestQuantityParse` and
    /// `TestQuantityString`).
    #[test]
    fn parse_and_print_canonically() {
        for (text, expect) in [
            ("0", "0"),
            ("0m", "0"),
            ("0Ki", "0"),
            ("1", "1"),
            ("1000m", "1"),
            ("1500m", "1500m"),
            ("1.5", "1500m"),
            ("0.1", "100m"),
            ("100m", "100m"),
            (".5", "500m"),
            ("500m", "500m"),
            ("1k", "1k"),
            ("1000", "1k"),
            ("2000", "2k"),
            ("1500", "1500"),
            ("1M", "1M"),
            ("1G", "1G"),
            ("1Ki", "1Ki"),
            ("1024", "1024"),
            ("1Mi", "1Mi"),
            ("1Gi", "1Gi"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("0.5Gi", "512Mi"),
            ("1.5Gi", "1536Mi"),
            ("1.5Ki", "1536"),
            ("0.5Ki", "512"),
            ("1e3", "1e3"),
            ("1E3", "1e3"),
            ("1.5e3", "1500"),
            ("1e-3", "1e-3"),
            ("5e2", "500"),
            ("100n", "100n"),
            ("1u", "1u"),
            ("12345678n", "12345678n"),
            ("0.0000000001", "1n"),
            ("1.0000000001", "1000000001n"),
            ("-1", "-1"),
            ("-1500m", "-1500m"),
            ("+2", "2"),
            ("007", "7"),
            ("1.", "1"),
            ("10E", "10E"),
            ("1Ei", "1Ei"),
            ("128974848", "128974848"),
            ("129e6", "129e6"),
            ("123Mi", "123Mi"),
        ] {
            assert_eq!(canonical(text), expect, "{text}");
        }
    }

    #[test]
    fn rejects_what_upstream_rejects() {
        for text in ["", "a", "1.2.3", "1Z", "1kb", "1i", "1e", "--1", "1 "] {
            assert!(Quantity::parse(text).is_err(), "{text:?} parsed");
        }
        assert_eq!(
            Quantity::parse("1mi").unwrap_err().to_string(),
            "quantity \"1mi\": unable to parse quantity's suffix"
        );
        assert!(matches!(Quantity::parse("x1"), Err(Error::Format(_))));
        assert!(matches!(Quantity::parse("1Z"), Err(Error::Format(_))));
    }

    #[test]
    fn equality_is_by_value() {
        assert_eq!(
            Quantity::parse("1").unwrap(),
            Quantity::parse("1000m").unwrap()
        );
        assert_eq!(
            Quantity::parse("1Ki").unwrap(),
            Quantity::parse("1024").unwrap()
        );
        assert!(Quantity::parse("1Gi").unwrap() > Quantity::parse("1G").unwrap());
        assert_eq!(
            Quantity::from_json(&serde_json::json!(2)).unwrap(),
            Quantity::parse("2").unwrap()
        );
    }

    /// Sums keep the format of the first non-zero addend, then print canonically.
    #[test]
    fn addition() {
        assert_eq!(sum(&["500m", "1"]), "1500m");
        assert_eq!(sum(&["500m", "500m"]), "1");
        assert_eq!(sum(&["250m", "250m", "1"]), "1500m");
        assert_eq!(sum(&["1Gi", "512Mi"]), "1536Mi");
        assert_eq!(sum(&["512Mi", "512Mi"]), "1Gi");
        assert_eq!(sum(&["0", "1Gi"]), "1Gi");
        // Binary first, then a decimal amount that leaves no whole binary suffix.
        assert_eq!(sum(&["1Gi", "500M"]), "1573741824");
        // Decimal first: printed decimally.
        assert_eq!(sum(&["1G", "1Gi"]), "2073741824");
        assert_eq!(sum(&["100M", "100M"]), "200M");
        assert_eq!(sum(&["1", "1", "1"]), "3");
        assert_eq!(sum(&[]), "0");
        assert_eq!(sum(&["1e3", "1"]), "1001");
    }

    #[test]
    fn rounding_up_to_units() {
        let q = Quantity::parse("1500m").unwrap().round_up_to_units();
        assert_eq!(q.to_string(), "2");
        assert_eq!(
            Quantity::parse("1Gi")
                .unwrap()
                .round_up_to_units()
                .to_string(),
            "1Gi"
        );
    }
}
