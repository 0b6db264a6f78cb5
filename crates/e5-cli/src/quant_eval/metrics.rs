//! Error metrics between an activation / embedding and its fp32 reference, and ranking metrics.

/// Cosine similarity; 1 when both vectors are zero, 0 when exactly one is.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    match (aa == 0.0, bb == 0.0) {
        (true, true) => 1.0,
        (true, false) | (false, true) => 0.0,
        // One square root of the product: for a = b it is exactly ‖a‖², so a vector's
        // cosine with itself is exactly 1 (√a·√a need not round back to a).
        _ => ab / (aa * bb).sqrt(),
    }
}

/// ‖x − x_ref‖ / ‖x_ref‖.
#[allow(dead_code)] // used by tests
pub fn relative_l2(x: &[f32], x_ref: &[f32]) -> f64 {
    let (r2, e2) = energies(x, x_ref);
    (e2 / r2).sqrt()
}

/// Signal-to-quantization-noise ratio in dB: 10·log10(Σx_ref² / Σ(x − x_ref)²); +∞ when equal.
#[allow(dead_code)] // used by tests
pub fn sqnr_db(x: &[f32], x_ref: &[f32]) -> f64 {
    let (r2, e2) = energies(x, x_ref);
    sqnr_from(r2, e2)
}

pub fn sqnr_from(ref2: f64, err2: f64) -> f64 {
    10.0 * (ref2 / err2).log10()
}

/// (Σx_ref², Σ(x − x_ref)²) in f64.
pub fn energies(x: &[f32], x_ref: &[f32]) -> (f64, f64) {
    let (mut r2, mut e2) = (0.0f64, 0.0f64);
    for (&a, &r) in x.iter().zip(x_ref) {
        let d = a as f64 - r as f64;
        r2 += r as f64 * r as f64;
        e2 += d * d;
    }
    (r2, e2)
}

/// Percentile `p` in [0, 100] of `v` with linear interpolation (numpy's default); NaN if empty.
pub fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let pos = (s.len() - 1) as f64 * p / 100.0;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
}

/// nDCG@k with binary relevance: `relevant[r]` tells whether the item at rank r (0-based) is
/// relevant; `n_relevant` is the number of relevant items in the whole pool (for the ideal DCG).
pub fn ndcg_at(relevant: &[bool], k: usize, n_relevant: usize) -> f64 {
    let dcg: f64 =
        relevant.iter().take(k).enumerate().filter(|(_, &r)| r).map(|(i, _)| 1.0 / (i as f64 + 2.0).log2()).sum();
    let ideal: f64 = (0..n_relevant.min(k)).map(|i| 1.0 / (i as f64 + 2.0).log2()).sum();
    if ideal == 0.0 {
        0.0
    } else {
        dcg / ideal
    }
}

/// Kendall's τ-b between two score vectors over the same items (ties handled); O(n²).
/// 1 for identical orderings, −1 for reversed ones; 1 if both are constant, 0 if only one is.
pub fn kendall_tau_b(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let (mut conc, mut disc, mut tie_a, mut tie_b, mut n0) = (0i64, 0i64, 0i64, 0i64, 0i64);
    for i in 0..a.len() {
        for j in i + 1..a.len() {
            n0 += 1;
            let (x, y) = (a[i].total_cmp(&a[j]) as i64, b[i].total_cmp(&b[j]) as i64);
            match (x, y) {
                (0, 0) => {
                    tie_a += 1;
                    tie_b += 1
                }
                (0, _) => tie_a += 1,
                (_, 0) => tie_b += 1,
                _ if x == y => conc += 1,
                _ => disc += 1,
            }
        }
    }
    let denom = (((n0 - tie_a) as f64) * ((n0 - tie_b) as f64)).sqrt();
    if denom == 0.0 {
        if tie_a == tie_b {
            1.0
        } else {
            0.0
        }
    } else {
        (conc - disc) as f64 / denom
    }
}

/// (Σx_ref², Σ(x − x_ref)², cosine(x, x_ref)) in one pass.
pub fn row_stats(x: &[f32], x_ref: &[f32]) -> (f64, f64, f64) {
    let (mut r2, mut e2, mut xx, mut xr) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for (&a, &r) in x.iter().zip(x_ref) {
        let (a, r) = (a as f64, r as f64);
        let d = a - r;
        r2 += r * r;
        e2 += d * d;
        xx += a * a;
        xr += a * r;
    }
    let c = match (xx == 0.0, r2 == 0.0) {
        (true, true) => 1.0,
        (true, false) | (false, true) => 0.0,
        _ => xr / (xx * r2).sqrt(), // exactly 1 for x = x_ref, as in `cosine`
    };
    (r2, e2, c)
}

/// Running error statistics of one site against its reference: per-token cosine (mean, min)
/// and energy sums for relative L2 and SQNR.
#[derive(Clone, Debug)]
pub struct ErrAcc {
    pub ref2: f64,
    pub err2: f64,
    pub cos_sum: f64,
    pub cos_min: f64,
    pub n: usize,
}

impl Default for ErrAcc {
    fn default() -> Self {
        ErrAcc { ref2: 0.0, err2: 0.0, cos_sum: 0.0, cos_min: f64::INFINITY, n: 0 }
    }
}

impl ErrAcc {
    /// Adds one token's row.
    pub fn add(&mut self, x: &[f32], x_ref: &[f32]) {
        self.add_row(row_stats(x, x_ref));
    }
    /// Adds one row's `row_stats`.
    pub fn add_row(&mut self, (r2, e2, c): (f64, f64, f64)) {
        self.ref2 += r2;
        self.err2 += e2;
        self.cos_sum += c;
        self.cos_min = self.cos_min.min(c);
        self.n += 1;
    }
    pub fn merge(&mut self, o: &ErrAcc) {
        self.ref2 += o.ref2;
        self.err2 += o.err2;
        self.cos_sum += o.cos_sum;
        self.cos_min = self.cos_min.min(o.cos_min);
        self.n += o.n;
    }
    pub fn cos_mean(&self) -> f64 {
        self.cos_sum / self.n.max(1) as f64
    }
    pub fn rel_l2(&self) -> f64 {
        (self.err2 / self.ref2).sqrt()
    }
    pub fn sqnr_db(&self) -> f64 {
        sqnr_from(self.ref2, self.err2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn sqnr_known_value() {
        assert!(close(sqnr_db(&[1.0, 2.0, 4.0], &[1.0, 2.0, 3.0]), 10.0 * 14f64.log10()));
        assert_eq!(sqnr_db(&[1.0, 2.0], &[1.0, 2.0]), f64::INFINITY);
    }

    #[test]
    fn cosine_known_values() {
        assert!(close(cosine(&[1.0, 0.0], &[0.0, 1.0]), 0.0));
        assert!(close(cosine(&[1.0, 2.0], &[2.0, 4.0]), 1.0));
        assert!(close(cosine(&[1.0, 0.0], &[-1.0, 0.0]), -1.0));
        assert!(close(cosine(&[1.0, 1.0], &[1.0, 0.0]), 1.0 / 2f64.sqrt()));
        assert!(close(cosine(&[0.0, 0.0], &[0.0, 0.0]), 1.0));
    }

    /// The fp32 row of a report compares vectors with themselves: exactly 1, not 1 − 2⁻⁵².
    #[test]
    fn cosine_with_itself_is_exactly_one() {
        let mut s = 0x2545_F491_4F6C_DD1Du64;
        for n in 1..400 {
            let v: Vec<f32> = (0..n)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (s >> 40) as f32 / (1u64 << 20) as f32 - 8.0
                })
                .collect();
            assert_eq!(cosine(&v, &v), 1.0, "n = {n}");
            assert_eq!(row_stats(&v, &v).2, 1.0, "n = {n}");
        }
    }

    #[test]
    fn relative_l2_known_value() {
        // ‖(0,0,1)‖ / ‖(1,2,3)‖ = 1/√14
        assert!(close(relative_l2(&[1.0, 2.0, 4.0], &[1.0, 2.0, 3.0]), 1.0 / 14f64.sqrt()));
        assert!(close(relative_l2(&[3.0, 4.0], &[3.0, 4.0]), 0.0));
    }

    #[test]
    fn ndcg_known_values() {
        let at = |r: usize| {
            let mut v = vec![false; 20];
            v[r - 1] = true;
            ndcg_at(&v, 10, 1)
        };
        assert!(close(at(1), 1.0));
        assert!(close(at(3), 0.5));
        assert!(close(at(2), 1.0 / 3f64.log2()));
        assert!(close(at(11), 0.0));
        // two relevant at ranks 1 and 2 of two: ideal
        assert!(close(ndcg_at(&[true, true, false], 10, 2), 1.0));
    }

    #[test]
    fn kendall_known_values() {
        let a = [1.0, 2.0, 3.0, 4.0];
        assert!(close(kendall_tau_b(&a, &a), 1.0));
        assert!(close(kendall_tau_b(&a, &[4.0, 3.0, 2.0, 1.0]), -1.0));
        assert!(close(kendall_tau_b(&a, &[2.0, 1.0, 3.0, 4.0]), 2.0 / 3.0));
        // τ-b with a tie: a = (1,2,3), b = (1,1,2): C = 2, D = 0, ties in b = 1 → 2/√(3·2)
        assert!(close(kendall_tau_b(&[1.0, 2.0, 3.0], &[1.0, 1.0, 2.0]), 2.0 / 6f64.sqrt()));
    }

    #[test]
    fn percentile_interpolates() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert!(close(percentile(&v, 50.0), 3.0));
        assert!(close(percentile(&v, 0.0), 1.0));
        assert!(close(percentile(&v, 25.0), 2.0));
        assert!(close(percentile(&[1.0, 2.0], 50.0), 1.5));
    }

    #[test]
    fn acc_matches_direct() {
        let mut acc = ErrAcc::default();
        acc.add(&[1.0, 2.0], &[1.0, 2.0]);
        acc.add(&[4.0], &[3.0]);
        assert!(close(acc.sqnr_db(), 10.0 * 14f64.log10()));
        assert!(close(acc.rel_l2(), 1.0 / 14f64.sqrt()));
        assert!(close(acc.cos_mean(), 1.0));
    }
}
