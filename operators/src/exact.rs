//! Exact running sums.
//!
//! Window sums are updated by adding and subtracting values for months on
//! end; plain `f64` running sums drift, and a sum that should return to a
//! small value after a large one left can be off by far more than the 1e-9
//! the contract allows. So sums are kept in integers, where adding and
//! subtracting is exact:
//!
//! * a number with a short decimal form (`m / 10^k`, `m < 2^16`, `k <= 3`:
//!   `60`, `4.5`, `149`, `18.3`; all but 0.1% of the synthetic marketplace's)
//!   counts in thousandths, in an `i64`: [`decimal_code`], [`Amount::Units`];
//! * any other finite number goes to an [`ExactSum`]: integers in units of
//!   2^-64 in 128 bits, with a plain `f64` side sum for what even that cannot
//!   hold. Each customer keeps these only once it has such a number.
//!
//! A sum's value is then the correctly rounded sum of the decimal numbers
//! present plus the (correctly rounded) sum of the others, whatever the
//! history.

/// Powers of ten of the decimal codes.
const POW10: [f64; 4] = [1.0, 10.0, 100.0, 1000.0];
/// Thousandths per unit of a decimal code's `m`, by `k`.
const UNITS: [i64; 4] = [1000, 100, 10, 1];
const MANTISSA_LIMIT: f64 = 65_536.0;

/// `x` as `k << 16 | m` with `x == m / 10^k` exactly, when there is such a
/// code (18 bits); the check makes it exact whatever the float (a negative,
/// NaN or too precise value has none; `-0.0` is `0`).
pub(crate) fn decimal_code(x: f64) -> Option<u32> {
    for (k, &p) in POW10.iter().enumerate() {
        let scaled = x * p + 0.5;
        if !(0.0..MANTISSA_LIMIT).contains(&scaled) {
            continue;
        }
        let m = scaled as u32;
        if f64::from(m) / p == x {
            return Some(((k as u32) << 16) | m);
        }
    }
    None
}

/// The `f64` of a decimal code: `m / 10^k` is correctly rounded, so it is
/// the very `f64` that was encoded.
pub(crate) fn code_value(code: u32) -> f64 {
    f64::from(code & 0xffff) / POW10[(code >> 16) as usize & 3]
}

/// A decimal code in thousandths.
fn code_units(code: u32) -> i64 {
    i64::from(code & 0xffff) * UNITS[(code >> 16) as usize & 3]
}

/// A number ready for the sums: thousandths, or a number without a decimal
/// code (rare; it goes to an [`ExactSum`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Amount {
    Units(i64),
    Odd(f64),
}

impl Amount {
    pub(crate) fn of(value: f64) -> Amount {
        match decimal_code(value) {
            Some(code) => Amount::from_code(code),
            None => Amount::Odd(value),
        }
    }

    pub(crate) fn from_code(code: u32) -> Amount {
        Amount::Units(code_units(code))
    }

    /// The number of an event without one.
    pub(crate) const ZERO: Amount = Amount::Units(0);

    /// The number as the record carried it (a decimal one exactly: the
    /// thousandths over 1000 round to the same `f64`).
    pub(crate) fn value(&self) -> f64 {
        match *self {
            Amount::Units(u) => u as f64 / 1000.0,
            Amount::Odd(value) => value,
        }
    }
}

/// The value of a sum of thousandths.
pub(crate) fn units_value(units: i64) -> f64 {
    units as f64 / 1000.0
}

/// 2^64: the fixed-point scale.
const SCALE: f64 = 18_446_744_073_709_551_616.0;
/// Values at or above this (2^62) would overflow 128 bits after a few additions.
const LIMIT: f64 = 4_611_686_018_427_387_904.0;

/// A sum of finite values that stays exact under addition and subtraction.
///
/// Values with bits below 2^-64 or at least 2^62 in magnitude (never produced by
/// real data: ratings, minutes, dollars) go to a plain `f64` side sum, which the
/// owner resets when the window's matching count returns to zero.
///
/// The fixed part is kept as two 64-bit halves rather than an `i128`, whose
/// 16-byte alignment would pad the struct to 32 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct ExactSum {
    lo: u64,
    hi: i64,
    other: f64,
}

const _: () = assert!(std::mem::size_of::<ExactSum>() == 24);

/// `x` in units of 2^-64, when that is exact; integer operations only (a
/// float `fract` or `i128` conversion is a library call on baseline x86-64).
fn to_fixed(x: f64) -> Option<i128> {
    // Written so that NaN (never passed in: values are validated finite)
    // also takes the fallback path.
    if x.abs().partial_cmp(&LIMIT) != Some(std::cmp::Ordering::Less) {
        return None;
    }
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1u64 << 52) - 1);
    // x = ±mantissa · 2^exp, with exp counted so that mantissa is an integer.
    let (mantissa, exp) = if biased == 0 { (fraction, -1074) } else { (fraction | (1u64 << 52), biased - 1075) };
    let shift = exp + 64;
    let magnitude = if shift >= 0 {
        // |x| < 2^62 keeps mantissa · 2^shift below 2^126.
        i128::from(mantissa) << shift
    } else if shift > -64 && mantissa.trailing_zeros() as i32 >= -shift {
        i128::from(mantissa >> -shift)
    } else if mantissa == 0 {
        0
    } else {
        return None;
    };
    Some(if bits >> 63 == 1 { -magnitude } else { magnitude })
}

impl ExactSum {
    fn fixed(&self) -> i128 {
        (i128::from(self.hi) << 64) | i128::from(self.lo)
    }

    fn set_fixed(&mut self, v: i128) {
        self.lo = v as u64;
        self.hi = (v >> 64) as i64;
    }

    fn with(fixed: i128, other: f64) -> ExactSum {
        let mut s = ExactSum { lo: 0, hi: 0, other };
        s.set_fixed(fixed);
        s
    }

    /// Adds `x`: to the fixed part when it is exact there and the fixed part
    /// has room, else to the side sum.
    ///
    /// Room: each fixed value is below 2^62, so 128 bits hold only a few of
    /// the largest (three of `4e18` overflow). A sum that would overflow
    /// goes to the side sum instead, where it is rounded but never wraps
    /// (a release build) or panics (a debug build). A later `sub` of the same
    /// value may then take it from the fixed part: the total stays right,
    /// only its split between the parts differs. Validated data never gets
    /// near this (`pulse_schemas::validate::MAX_UNBOUNDED_VALUE` bounds the
    /// largest number to 1e12, so millions of them fit).
    pub(crate) fn add(&mut self, x: f64) {
        match to_fixed(x).and_then(|v| self.fixed().checked_add(v)) {
            Some(sum) => self.set_fixed(sum),
            None => self.other += x,
        }
    }

    /// Subtracts `x`, as [`ExactSum::add`] adds it.
    pub(crate) fn sub(&mut self, x: f64) {
        match to_fixed(x).and_then(|v| self.fixed().checked_sub(v)) {
            Some(difference) => self.set_fixed(difference),
            None => self.other -= x,
        }
    }

    /// Forgets the side sum's rounding residue once no value is left in it.
    #[cfg(test)]
    fn settle_if_empty(&mut self, count: u32) {
        if count == 0 {
            *self = ExactSum::default();
        }
    }

    /// The sum, within an ulp of the correctly rounded one: the integer part
    /// and the fraction are converted separately (two cheap conversions,
    /// where a 128-bit one is a library call).
    pub(crate) fn value(&self) -> f64 {
        let whole = self.hi as f64;
        // Exact: a power of two.
        let fraction = self.lo as f64 * (1.0 / SCALE);
        whole + fraction + self.other
    }

    /// The exact part alone: what any history of the same values leaves (the
    /// side sum's rounding depends on the order values came and went).
    pub(crate) fn exact_part(&self) -> ExactSum {
        ExactSum { other: 0.0, ..*self }
    }
}

/// Snapshots: the fixed part, and the side sum's bits (a varint, so the usual
/// `0.0` takes one byte; `-0.0` keeps its sign, bit for bit).
impl serde::Serialize for ExactSum {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.fixed(), self.other.to_bits()).serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for ExactSum {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (fixed, other) = <(i128, u64)>::deserialize(d)?;
        Ok(ExactSum::with(fixed, f64::from_bits(other)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_codes_round_trip_exactly() {
        for x in [0.0, 1.0, 4.5, 4.3, 18.3, 60.0, 99.0, 149.0, 0.001, 65.535, 6553.5, 65535.0, 12.25] {
            let code = decimal_code(x).unwrap_or_else(|| panic!("{x} has a code"));
            assert_eq!(code_value(code).to_bits(), x.to_bits(), "{x}");
            assert_eq!(Amount::from_code(code).value().to_bits(), x.to_bits(), "{x} from thousandths");
        }
        assert_eq!(decimal_code(-0.0).map(code_value), Some(0.0));
        for x in [65536.0, 12994.1, 0.0001, 1e-300, 1e300, -1.0, 1.0 / 3.0, f64::NAN, f64::INFINITY, 600.123_456] {
            assert_eq!(decimal_code(x), None, "{x}");
        }
        assert_eq!(Amount::of(4.3), Amount::Units(4300));
        assert_eq!(Amount::of(0.125), Amount::Units(125));
        assert_eq!(Amount::of(1.0 / 3.0), Amount::Odd(1.0 / 3.0));
    }

    #[test]
    fn exact_sum_returns_exactly_after_cancellation() {
        let mut s = ExactSum::default();
        s.add(1.0e12);
        s.add(0.1);
        s.add(37.3);
        s.sub(1.0e12);
        assert_eq!(s.value(), 0.1 + 37.3);
        s.sub(0.1);
        assert_eq!(s.value(), 37.3);
        s.sub(37.3);
        assert_eq!(s.value(), 0.0);
        s.sub(2.5);
        assert_eq!(s.value(), -2.5);
    }

    #[test]
    fn exact_sum_drift_free_over_many_updates() {
        let mut s = ExactSum::default();
        for i in 0..100_000 {
            s.add(0.1 * (i % 7) as f64 + 45.3);
        }
        for i in 0..99_999 {
            s.sub(0.1 * (i % 7) as f64 + 45.3);
        }
        assert_eq!(s.value(), 0.1 * (99_999 % 7) as f64 + 45.3);
    }

    #[test]
    fn fixed_point_is_exact_where_it_applies() {
        for x in [0.0, -0.0, 1.0, 0.1, 37.3, 4.5, 599.999, 1.0e-3, 3.0e18, -2.5] {
            let v = to_fixed(x).unwrap();
            assert_eq!(v as f64 / SCALE, x, "{x}");
        }
        assert_eq!(to_fixed(1e-30), None);
        assert_eq!(to_fixed(1e-10), None); // its lowest bit is 2^-86
        assert_eq!(to_fixed(1e19), None);
        assert_eq!(to_fixed(f64::MIN_POSITIVE), None);
    }

    #[test]
    fn snapshots_keep_both_parts_bit_for_bit() {
        let mut s = ExactSum::default();
        s.add(1.0e30);
        s.add(37.3);
        s.add(1.0e-30);
        s.sub(1.0e30);
        let negative_zero = ExactSum::with(0, -0.0);
        for x in [s, negative_zero, ExactSum::default()] {
            let bytes = postcard::to_allocvec(&x).unwrap();
            let back: ExactSum = postcard::from_bytes(&bytes).unwrap();
            assert_eq!((back.fixed(), back.other.to_bits()), (x.fixed(), x.other.to_bits()));
        }
        assert_eq!(postcard::to_allocvec(&ExactSum::default()).unwrap().len(), 2, "zeros are a byte each");
    }

    #[test]
    fn a_full_fixed_part_overflows_into_the_side_sum_not_past_i128() {
        // Each is below the fixed-point limit (2^62), but three of them
        // exceed 128 bits in units of 2^-64.
        let x = 4.0e18;
        assert!(to_fixed(x).is_some());
        let mut s = ExactSum::default();
        for _ in 0..3 {
            s.add(x);
        }
        assert_eq!(s.value(), 1.2e19);
        s.sub(x);
        assert_eq!(s.value(), 8.0e18);
        s.sub(x);
        s.sub(x);
        assert_eq!(s.value(), 0.0);
        // Subtraction overflows the same way.
        let mut s = ExactSum::default();
        for _ in 0..3 {
            s.sub(x);
        }
        assert_eq!(s.value(), -1.2e19);
    }

    #[test]
    fn exotic_values_fall_back_to_float_and_reset() {
        let mut s = ExactSum::default();
        s.add(1.0e30);
        s.add(2.5);
        assert_eq!(s.value(), 1.0e30 + 2.5);
        s.sub(1.0e30);
        s.sub(2.5);
        s.settle_if_empty(0);
        assert_eq!(s.value(), 0.0);
    }
}
