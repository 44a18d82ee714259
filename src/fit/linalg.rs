//! Dense symmetric linear algebra for the handful of parameters a fit has (tens at most):
//! Cholesky factorisation, solves and inverses. Small enough that a library buys nothing.

/// Cholesky factor L (row-major, lower) of the symmetric n×n matrix `a`, or None if `a` is not
/// positive definite.
pub fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = a.to_vec();
    if !cholesky_in_place(&mut l, n) {
        return None;
    }
    for i in 0..n {
        l[i * n + i + 1..(i + 1) * n].fill(0.0);
    }
    Some(l)
}

/// Overwrites the lower triangle of the symmetric n×n matrix `a` with its Cholesky factor
/// (the upper triangle above the diagonal is left as it was); false if `a` is not positive
/// definite. For loops that factorise a matrix per iteration without allocating.
pub fn cholesky_in_place(a: &mut [f64], n: usize) -> bool {
    for i in 0..n {
        for j in 0..=i {
            let mut sum = a[i * n + j];
            for k in 0..j {
                sum -= a[i * n + k] * a[j * n + k];
            }
            if i == j {
                if !(sum > 0.0 && sum.is_finite()) {
                    return false;
                }
                a[i * n + i] = sum.sqrt();
            } else {
                a[i * n + j] = sum / a[j * n + j];
            }
        }
    }
    true
}

/// Solves L Lᵀ x = b.
pub fn cholesky_solve(l: &[f64], n: usize, b: &[f64]) -> Vec<f64> {
    let mut x = b.to_vec();
    cholesky_solve_in_place(l, n, &mut x);
    x
}

/// Solves L Lᵀ x = b in place: `x` holds b on entry, the solution on return. Only L's lower
/// triangle is read.
pub fn cholesky_solve_in_place(l: &[f64], n: usize, x: &mut [f64]) {
    for i in 0..n {
        let mut sum = x[i];
        for k in 0..i {
            sum -= l[i * n + k] * x[k];
        }
        x[i] = sum / l[i * n + i];
    }
    for i in (0..n).rev() {
        let mut sum = x[i];
        for k in i + 1..n {
            sum -= l[k * n + i] * x[k];
        }
        x[i] = sum / l[i * n + i];
    }
}

/// Inverse of a symmetric positive-definite matrix, or None.
pub fn spd_inverse(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let l = cholesky(a, n)?;
    let mut inv = vec![0.0; n * n];
    let mut e = vec![0.0; n];
    for j in 0..n {
        e.fill(0.0);
        e[j] = 1.0;
        let col = cholesky_solve(&l, n, &e);
        for i in 0..n {
            inv[i * n + j] = col[i];
        }
    }
    Some(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_of_a_known_matrix() {
        let a = [4.0, 2.0, 2.0, 3.0];
        let inv = spd_inverse(&a, 2).unwrap();
        let expected = [3.0 / 8.0, -2.0 / 8.0, -2.0 / 8.0, 4.0 / 8.0];
        for (x, y) in inv.iter().zip(expected) {
            assert!((x - y).abs() < 1e-15);
        }
        assert!(cholesky(&[1.0, 2.0, 2.0, 1.0], 2).is_none(), "indefinite");
        let l = cholesky(&a, 2).unwrap();
        assert_eq!(l[1], 0.0, "the factor's upper triangle is zero");
        let x = cholesky_solve(&l, 2, &[1.0, 1.0]);
        assert!((x[0] - 1.0 / 8.0).abs() < 1e-15 && (x[1] - 2.0 / 8.0).abs() < 1e-15);
    }
}
