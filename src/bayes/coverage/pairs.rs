//! The held-out (θ*, x) pairs of a coverage test, from HDF5.
//!
//! Layout (h5py writes it as `f["theta"] = ...`):
//! - `theta`: float [n, len(θ)] (or [n] for one parameter) — θ*, drawn from the prior, in the
//!   order of the workspace's `priors`;
//! - `x`: float [n, len(x)] (one observation per pair) or [n, m, len(x)] (m independent
//!   observations per pair, all simulated at θ*), in the layout of the workspace's own
//!   observations;
//! - optional root attribute `parameters`: the JSON list of parameter names, checked against
//!   the priors when present.
//!
//! Every problem is reported with the file, the dataset and, for values, the pair.

use std::path::{Path, PathBuf};

use hdf5::types::VarLenUnicode;

use crate::bayes::amortised::Observations;
use crate::bayes::prior::Priors;
use crate::error::{Error, Result};

/// The dataset of θ*.
pub const THETA: &str = "theta";
/// The dataset of x.
pub const X: &str = "x";

/// n held-out pairs: θ* (n × dim) and x (n × rows × width), row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct TestPairs {
    pub path: PathBuf,
    pub n: usize,
    pub dim: usize,
    /// Observations per pair.
    pub rows: usize,
    /// Values per observation.
    pub width: usize,
    theta: Vec<f64>,
    x: Vec<f64>,
}

impl TestPairs {
    /// Reads and checks the file against the priors: θ* of their dimension, finite and inside
    /// their support; x finite, as many pairs as θ*.
    pub fn read(path: &Path, priors: &Priors) -> Result<TestPairs> {
        let fail = |message: String| Error::event_file(path, message);
        if !path.is_file() {
            return Err(fail("test file not found".into()));
        }
        let file = hdf5::File::open(path).map_err(|e| fail(format!("cannot open as HDF5: {e}")))?;
        check_parameter_names(&file, priors).map_err(&fail)?;
        let (theta, theta_shape) = read_dataset(&file, THETA, "[n, len(θ)]").map_err(&fail)?;
        let dim = priors.dim();
        let n = match theta_shape.as_slice() {
            [n, d] if *d == dim => *n,
            [n] if dim == 1 => *n,
            shape => {
                return Err(fail(format!(
                    "dataset `{THETA}` has shape {shape:?}; expected [n, {dim}] (one θ* per pair, \
                     {dim} parameters as in the workspace's priors: {})",
                    priors.names.join(", ")
                )))
            }
        };
        if n == 0 {
            return Err(fail(format!(
                "dataset `{THETA}` holds no pairs; expected at least one"
            )));
        }
        let (x, x_shape) =
            read_dataset(&file, X, "[n, len(x)] or [n, m, len(x)]").map_err(&fail)?;
        let (rows, width) = match x_shape.as_slice() {
            [m, w] if *m == n && *w > 0 => (1, *w),
            [m, r, w] if *m == n && *r > 0 && *w > 0 => (*r, *w),
            shape => {
                return Err(fail(format!(
                    "dataset `{X}` has shape {shape:?}; expected [{n}, len(x)] or [{n}, m, len(x)] \
                     ({n} pairs, as in `{THETA}`)"
                )))
            }
        };
        let pairs = TestPairs {
            path: path.to_path_buf(),
            n,
            dim,
            rows,
            width,
            theta,
            x,
        };
        pairs.check_values(priors).map_err(fail)?;
        Ok(pairs)
    }

    fn check_values(&self, priors: &Priors) -> std::result::Result<(), String> {
        for i in 0..self.n {
            for (k, (&t, prior)) in self.theta_star(i).iter().zip(&priors.priors).enumerate() {
                let (low, high) = prior.support();
                if !t.is_finite() {
                    return Err(format!(
                        "dataset `{THETA}`, pair {i}: {} = {t}; expected a finite value",
                        priors.names[k]
                    ));
                }
                if t < low || t > high {
                    return Err(format!(
                        "dataset `{THETA}`, pair {i}: {} = {t} lies outside its prior's support \
                         [{low}, {high}]; expected θ* drawn from the prior",
                        priors.names[k]
                    ));
                }
            }
            let per_pair = self.rows * self.width;
            let x = &self.x[i * per_pair..(i + 1) * per_pair];
            if let Some(k) = x.iter().position(|v| !v.is_finite()) {
                return Err(format!(
                    "dataset `{X}`, pair {i}: value {} of observation {} is {}; expected finite \
                     values",
                    k % self.width,
                    k / self.width,
                    x[k]
                ));
            }
        }
        Ok(())
    }

    /// The first `n` pairs only (`--pairs`): the same test as a file holding just those.
    pub fn first(mut self, n: usize) -> Result<TestPairs> {
        if n == 0 || n > self.n {
            return Err(Error::event_file(
                &self.path,
                format!(
                    "--pairs {n}: the file holds {} pairs; expected 1 to {}",
                    self.n, self.n
                ),
            ));
        }
        self.theta.truncate(n * self.dim);
        self.x.truncate(n * self.rows * self.width);
        self.n = n;
        Ok(self)
    }

    /// The x widths must be the workspace's: `expected` values per observation.
    pub fn check_width(&self, expected: usize, of: &Path) -> Result<()> {
        if self.width == expected {
            return Ok(());
        }
        Err(Error::event_file(
            &self.path,
            format!(
                "dataset `{X}` has {} values per observation; the workspace's observations ({}) \
                 have {expected}",
                self.width,
                of.display()
            ),
        ))
    }

    pub fn theta_star(&self, pair: usize) -> &[f64] {
        &self.theta[pair * self.dim..(pair + 1) * self.dim]
    }

    /// The observations of pair `pair`, as the posterior conditions on them.
    pub fn observations(&self, pair: usize) -> Observations {
        let per_pair = self.rows * self.width;
        Observations {
            values: self.x[pair * per_pair..(pair + 1) * per_pair].to_vec(),
            rows: self.rows,
            width: self.width,
            source: self.path.clone(),
        }
    }

    /// The smallest and largest θ* of each parameter: the TARP normalisation.
    pub fn theta_range(&self) -> (Vec<f64>, Vec<f64>) {
        let mut low = vec![f64::INFINITY; self.dim];
        let mut high = vec![f64::NEG_INFINITY; self.dim];
        for i in 0..self.n {
            for (k, &t) in self.theta_star(i).iter().enumerate() {
                low[k] = low[k].min(t);
                high[k] = high[k].max(t);
            }
        }
        (low, high)
    }

    /// A hash of the shapes and values: shards are matched to their test file by it.
    pub fn fingerprint(&self) -> String {
        let mut hasher = blake3::Hasher::new();
        for size in [self.n, self.dim, self.rows, self.width] {
            hasher.update(&(size as u64).to_le_bytes());
        }
        for v in self.theta.iter().chain(&self.x) {
            hasher.update(&v.to_le_bytes());
        }
        hasher.finalize().to_hex().to_string()
    }
}

/// A dataset's values (as f64) and shape.
fn read_dataset(
    file: &hdf5::File,
    name: &str,
    expected: &str,
) -> std::result::Result<(Vec<f64>, Vec<usize>), String> {
    let data = file.dataset(name).map_err(|_| {
        let names = file.member_names().unwrap_or_default().join(", ");
        format!("no dataset `{name}` (found: {names}); expected {expected}")
    })?;
    let array = data
        .read_dyn::<f64>()
        .map_err(|e| format!("dataset `{name}` cannot be read as numbers: {e}"))?;
    Ok((array.iter().copied().collect(), array.shape().to_vec()))
}

/// The optional `parameters` attribute must list the priors' names in their order.
fn check_parameter_names(file: &hdf5::File, priors: &Priors) -> std::result::Result<(), String> {
    let Ok(attr) = file.attr("parameters") else {
        return Ok(());
    };
    let text: VarLenUnicode = attr
        .read_scalar()
        .map_err(|e| format!("attribute `parameters` cannot be read as text: {e}"))?;
    let names: Vec<String> = serde_json::from_str(text.as_str())
        .map_err(|e| format!("attribute `parameters` is not a JSON list of names ({e}): {text}"))?;
    if names != priors.names {
        return Err(format!(
            "attribute `parameters` lists {names:?}; the workspace's priors are {:?} (θ* columns \
             must follow the priors' order)",
            priors.names
        ));
    }
    Ok(())
}
