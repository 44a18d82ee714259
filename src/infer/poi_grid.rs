//! The points of POI space a toy construction is made at: a product of one axis per POI
//! (`--grid c1=-1:1:0.1 --grid c2=-1:1:0.1`), or a list of points read from a file
//! (`--points FILE`). A product grid keeps its axes, which a 2-D region's contour needs
//! (marching squares runs on a rectangle); a list of points gives the accepted set as a mask.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The most grid points a toy construction may have (each point costs a set of toy fits).
pub const MAX_GRID_POINTS: usize = 1_000_000;

/// Points of POI space: `points[g]` holds the values of the grid's POIs at point g.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PoiGrid {
    pub points: Vec<Vec<f64>>,
    /// A product grid's axes, one per POI: `points` runs over them in row-major order (the
    /// last POI fastest). `None` for a list of points.
    pub axes: Option<Vec<Vec<f64>>>,
}

impl PoiGrid {
    /// The grid of one POI at `values`: a product grid of one axis.
    pub fn line(values: Vec<f64>) -> PoiGrid {
        PoiGrid::product(vec![values]).expect("one axis is never too large")
    }

    /// Every combination of the axes' values, the last axis running fastest; refused beyond
    /// [`MAX_GRID_POINTS`] points.
    pub fn product(axes: Vec<Vec<f64>>) -> Result<PoiGrid> {
        let n = axes
            .iter()
            .try_fold(1usize, |n, axis| n.checked_mul(axis.len()))
            .filter(|&n| n <= MAX_GRID_POINTS);
        let Some(n) = n else {
            let sizes: Vec<String> = axes.iter().map(|a| a.len().to_string()).collect();
            return Err(Error::Analysis(format!(
                "a grid of {} points has more than the {MAX_GRID_POINTS} points a construction \
                 may have: use larger steps",
                sizes.join(" × ")
            )));
        };
        let points = (0..n)
            .map(|mut flat| {
                let mut point = vec![0.0; axes.len()];
                for (k, axis) in axes.iter().enumerate().rev() {
                    point[k] = axis[flat % axis.len()];
                    flat /= axis.len();
                }
                point
            })
            .collect();
        Ok(PoiGrid {
            points,
            axes: Some(axes),
        })
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The index of the point at `values` (within 1e-9 in every coordinate).
    pub fn index_of(&self, values: &[f64]) -> Option<usize> {
        self.points.iter().position(|p| {
            p.len() == values.len() && p.iter().zip(values).all(|(a, b)| (a - b).abs() < 1e-9)
        })
    }
}

/// `start:stop:step` → start, start + step, …, stop (inclusive, to rounding); `option` is the
/// command-line option as given, for errors (`--mu-grid '0:3:0.1'`, `--grid 'c1=-1:1:0.1'`).
pub fn parse_values(option: &str, text: &str) -> Result<Vec<f64>> {
    let bad = || Error::Analysis(format!("{option}: expected start:stop:step"));
    let parts: Vec<f64> = text
        .split(':')
        .map(|p| p.trim().parse::<f64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad())?;
    let [start, stop, step] = parts[..] else {
        return Err(bad());
    };
    if !(step > 0.0 && stop >= start && start.is_finite() && stop.is_finite()) {
        return Err(bad());
    }
    // In floating point first: a tiny step gives 10³⁰⁰ points, which no integer holds (n is
    // never NaN: the ends are finite and the step positive).
    let n = ((stop - start) / step + 1e-9).floor() + 1.0;
    if n > MAX_GRID_POINTS as f64 {
        return Err(Error::Analysis(format!(
            "{option} has {n:.3e} points; at most {MAX_GRID_POINTS} points are \
             allowed: use a larger step"
        )));
    }
    Ok((0..n as usize).map(|i| start + i as f64 * step).collect())
}

/// One axis of a product grid, `--grid NAME=start:stop:step`: the POI's name and its values.
pub fn parse_axis(text: &str) -> Result<(String, Vec<f64>)> {
    let Some((name, values)) = text.split_once('=') else {
        return Err(Error::Analysis(format!(
            "--grid '{text}': expected NAME=start:stop:step, e.g. c1=-1:1:0.1"
        )));
    };
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::Analysis(format!(
            "--grid '{text}': no parameter name before '='"
        )));
    }
    let values = parse_values(&format!("--grid '{text}'"), values)?;
    Ok((name.to_string(), values))
}

/// A list of points from a text file (`--points FILE`): a first line naming the POIs
/// (separated by commas or white space), then one point per line with a value per POI.
/// Blank lines and lines starting with `#` are skipped.
pub fn read_points(path: &Path) -> Result<(Vec<String>, PoiGrid)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("cannot read the points file {}", path.display()), e))?;
    let fail = |line: usize, message: String| Error::EventFile {
        file: path.to_path_buf(),
        message: format!("line {line}: {message}"),
    };
    let split = |l: &str| -> Vec<String> {
        l.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
    let Some((_, first)) = lines.next() else {
        return Err(Error::EventFile {
            file: path.to_path_buf(),
            message: "no header line naming the POIs (e.g. `c1, c2`)".into(),
        });
    };
    let names = split(first);
    let mut points = Vec::new();
    for (number, line) in lines {
        let fields = split(line);
        if fields.len() != names.len() {
            return Err(fail(
                number,
                format!(
                    "{} value(s), but the header names {} POI(s) ({})",
                    fields.len(),
                    names.len(),
                    names.join(", ")
                ),
            ));
        }
        let point = fields
            .iter()
            .zip(&names)
            .map(|(field, name)| match field.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => Err(fail(
                    number,
                    format!("{name} = '{field}' is not a finite number"),
                )),
            })
            .collect::<Result<Vec<f64>>>()?;
        points.push(point);
    }
    if points.len() > MAX_GRID_POINTS {
        return Err(Error::EventFile {
            file: path.to_path_buf(),
            message: format!(
                "{} points; a construction may have at most {MAX_GRID_POINTS}",
                points.len()
            ),
        });
    }
    Ok((names, PoiGrid { points, axes: None }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_runs_the_last_axis_fastest() {
        let grid = PoiGrid::product(vec![vec![0.0, 1.0], vec![5.0, 6.0, 7.0]]).unwrap();
        assert_eq!(grid.points[0], vec![0.0, 5.0]);
        assert_eq!(grid.points[2], vec![0.0, 7.0]);
        assert_eq!(grid.points[3], vec![1.0, 5.0]);
        assert_eq!(grid.len(), 6);
        assert_eq!(grid.index_of(&[1.0, 6.0]), Some(4));
        assert_eq!(grid.index_of(&[1.0, 6.5]), None);
    }

    #[test]
    fn products_beyond_the_limit_are_refused() {
        let axis = vec![0.0; 1001];
        let text = PoiGrid::product(vec![axis.clone(), axis])
            .unwrap_err()
            .to_string();
        assert!(text.contains("1001 × 1001"), "{text}");
    }

    #[test]
    fn axes_name_their_poi() {
        let (name, values) = parse_axis("c1=-1:1:0.5").unwrap();
        assert_eq!(name, "c1");
        assert_eq!(values, vec![-1.0, -0.5, 0.0, 0.5, 1.0]);
        let text = parse_axis("-1:1:0.5").unwrap_err().to_string();
        assert!(text.contains("NAME=start:stop:step"), "{text}");
        let text = parse_axis("c1=1:0:0.5").unwrap_err().to_string();
        assert!(text.contains("--grid 'c1=1:0:0.5': expected"), "{text}");
    }
}
