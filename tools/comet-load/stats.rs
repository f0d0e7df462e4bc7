//! Latency histogram: log-linear buckets over microseconds (exact below 128 µs,
//! then 64 buckets per power of two, so any value is off by under 1.6%), plus
//! exact count, min, max, sum and sum of squares. A million samples cost nothing
//! extra; per-thread histograms merge by addition. No I/O, no clocks.

/// Values below this are their own bucket.
const LINEAR: u64 = 128;
/// Buckets per power of two above [`LINEAR`].
const SUB: u64 = 64;
/// Enough buckets for any u64.
const BUCKETS: usize = (LINEAR + (64 - 7) * SUB) as usize;

/// A histogram of microsecond values.
#[derive(Debug, Clone)]
pub struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    min: u64,
    max: u64,
    sum: f64,
    sum_sq: f64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: vec![0; BUCKETS],
            count: 0,
            min: u64::MAX,
            max: 0,
            sum: 0.0,
            sum_sq: 0.0,
        }
    }
}

/// Bucket index of a value.
fn index(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let msb = 63 - u64::from(v.leading_zeros()); // >= 7
    let shift = msb - 6; // v >> shift is in [64, 128)
    (LINEAR + (shift - 1) * SUB + ((v >> shift) - SUB)) as usize
}

/// Smallest value and width of a bucket.
fn bounds(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < LINEAR {
        return (i, 1);
    }
    let k = i - LINEAR;
    let shift = k / SUB + 1;
    ((SUB + k % SUB) << shift, 1 << shift)
}

/// Summary numbers of a histogram, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Number of samples.
    pub count: u64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Population standard deviation.
    pub stddev: f64,
    /// Percentiles 50, 75, 95, 98, 99, 99.9.
    pub p: [f64; 6],
}

/// The percentiles reported in [`Summary::p`].
pub const PERCENTILES: [f64; 6] = [50.0, 75.0, 95.0, 98.0, 99.0, 99.9];

impl Histogram {
    /// Adds one sample.
    pub fn record(&mut self, us: u64) {
        self.buckets[index(us)] += 1;
        self.count += 1;
        self.min = self.min.min(us);
        self.max = self.max.max(us);
        let f = us as f64;
        self.sum += f;
        self.sum_sq += f * f;
    }

    /// Adds all samples of another histogram.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a += b;
        }
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
        self.sum_sq += other.sum_sq;
    }

    /// Number of samples.
    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The value at percentile `p` (0-100), by nearest rank, in microseconds:
    /// the midpoint of the bucket holding that rank, clamped to [min, max].
    pub fn percentile(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((p / 100.0 * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let (low, width) = bounds(i);
                return (low + (width - 1) / 2).clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// Count, min, max, mean, stddev and [`PERCENTILES`], in milliseconds;
    /// `None` without samples.
    pub fn summary(&self) -> Option<Summary> {
        if self.count == 0 {
            return None;
        }
        let n = self.count as f64;
        let mean = self.sum / n;
        let variance = (self.sum_sq / n - mean * mean).max(0.0);
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Summary {
            count: self.count,
            min: ms(self.min),
            max: ms(self.max),
            mean: mean / 1000.0,
            stddev: variance.sqrt() / 1000.0,
            p: PERCENTILES.map(|p| ms(self.percentile(p))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_once() {
        let mut last = 0;
        for v in (0..100_000u64).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let i = index(v);
            assert!(i < BUCKETS, "{v} -> {i}");
            let (low, width) = bounds(i);
            assert!(low <= v && v - low < width, "{v} in bucket {i} = [{low}, +{width})");
            assert!(v < LINEAR || width as f64 / low as f64 <= 1.0 / 64.0 + 1e-12);
            if v < 100_000 {
                assert!(i == last || i == last + 1, "buckets are contiguous at {v}");
                last = i;
            }
        }
    }

    #[test]
    fn percentiles_of_a_uniform_range() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v);
        }
        for (p, exact) in [(50.0, 5_000.0), (75.0, 7_500.0), (99.0, 9_900.0), (99.9, 9_990.0)] {
            let got = h.percentile(p) as f64;
            assert!((got - exact).abs() / exact < 0.016, "p{p}: {got} vs {exact}");
        }
        assert_eq!(h.percentile(100.0), 10_000);
        assert_eq!(h.percentile(0.0), 1);
        let s = h.summary().expect("has samples");
        assert_eq!(s.count, 10_000);
        assert_eq!((s.min, s.max), (0.001, 10.0));
        assert!((s.mean - 5.0005).abs() < 1e-9);
        assert!((s.stddev - 2.8867).abs() < 1e-3, "{}", s.stddev);
    }

    #[test]
    fn small_values_are_exact_and_merge_adds() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        for v in [5, 5, 7] {
            a.record(v);
        }
        for v in [1, 100] {
            b.record(v);
        }
        a.merge(&b);
        assert_eq!(a.count(), 5);
        assert_eq!(a.percentile(50.0), 5);
        assert_eq!(a.percentile(80.0), 7);
        assert_eq!(a.percentile(99.0), 100);
        assert_eq!(a.percentile(1.0), 1);
        assert!(Histogram::default().summary().is_none());
    }

    #[test]
    fn one_sample() {
        let mut h = Histogram::default();
        h.record(123_456);
        let s = h.summary().expect("one sample");
        assert_eq!(s.p, [123.456; 6], "clamped to the only value");
        assert_eq!(s.stddev, 0.0);
    }
}
