//! A uniform cell-centred grid on a box in 1 or 2 dimensions.
//!
//! Cell i of an axis with `n` cells on [lo, hi] has centre xᵢ = lo + (i + ½)h, h = (hi − lo)/n;
//! a density is a value per cell, its mass Σ ρᵢ·V with the cell volume V = Π hₖ (the midpoint
//! rule). In 2-D cells are numbered i + nₓ·j (x fastest).

/// The grid of a density flow.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    /// Lower corner, one entry per axis (1 or 2).
    pub lo: Vec<f64>,
    /// Upper corner.
    pub hi: Vec<f64>,
    /// Cells per axis.
    pub n: Vec<usize>,
}

impl Grid {
    /// A 1-D grid of `n` cells on [lo, hi].
    pub fn line(lo: f64, hi: f64, n: usize) -> Grid {
        Grid {
            lo: vec![lo],
            hi: vec![hi],
            n: vec![n],
        }
    }

    /// A 2-D grid of nx × ny cells on [x0, x1] × [y0, y1].
    pub fn plane(x: (f64, f64), y: (f64, f64), nx: usize, ny: usize) -> Grid {
        Grid {
            lo: vec![x.0, y.0],
            hi: vec![x.1, y.1],
            n: vec![nx, ny],
        }
    }

    /// Number of axes (1 or 2).
    pub fn dim(&self) -> usize {
        self.n.len()
    }

    /// Total number of cells.
    pub fn len(&self) -> usize {
        self.n.iter().product()
    }

    /// Whether the grid has no cells.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Cell width along axis k.
    pub fn h(&self, k: usize) -> f64 {
        (self.hi[k] - self.lo[k]) / self.n[k] as f64
    }

    /// Cell volume V = Π hₖ.
    pub fn volume(&self) -> f64 {
        (0..self.dim()).map(|k| self.h(k)).product()
    }

    /// Centre of cell i along axis k.
    pub fn coord(&self, k: usize, i: usize) -> f64 {
        self.lo[k] + (i as f64 + 0.5) * self.h(k)
    }

    /// Centre of the cell with flat index `idx` (1 or 2 coordinates).
    pub fn point(&self, idx: usize) -> Vec<f64> {
        if self.dim() == 1 {
            vec![self.coord(0, idx)]
        } else {
            let nx = self.n[0];
            vec![self.coord(0, idx % nx), self.coord(1, idx / nx)]
        }
    }

    /// Whether cell `idx` touches the boundary of the box.
    pub fn on_boundary(&self, idx: usize) -> bool {
        let nx = self.n[0];
        let i = idx % nx;
        let edge_x = i == 0 || i + 1 == nx;
        if self.dim() == 1 {
            edge_x
        } else {
            let j = idx / nx;
            edge_x || j == 0 || j + 1 == self.n[1]
        }
    }

    /// The faces between neighbouring cells: (i, j, 1/h²) with j the right (or upper)
    /// neighbour of i. There are (nₓ − 1)·n_y + nₓ·(n_y − 1) of them in 2-D.
    pub fn faces(&self) -> Vec<(usize, usize, f64)> {
        let nx = self.n[0];
        let ny = if self.dim() == 2 { self.n[1] } else { 1 };
        let wx = 1.0 / (self.h(0) * self.h(0));
        let mut f = Vec::with_capacity(2 * self.len());
        for j in 0..ny {
            for i in 0..nx.saturating_sub(1) {
                f.push((i + nx * j, i + 1 + nx * j, wx));
            }
        }
        if self.dim() == 2 {
            let wy = 1.0 / (self.h(1) * self.h(1));
            for j in 0..ny.saturating_sub(1) {
                for i in 0..nx {
                    f.push((i + nx * j, i + nx * (j + 1), wy));
                }
            }
        }
        f
    }

    /// `f` evaluated at every cell centre.
    pub fn eval(&self, f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
        (0..self.len()).map(|i| f(&self.point(i))).collect()
    }
}

/// log Σᵢ V·e^{aᵢ}, computed without overflow (−∞ when every aᵢ is −∞).
pub fn log_mass(log_rho: &[f64], volume: f64) -> f64 {
    let m = log_rho.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return m;
    }
    let s: f64 = log_rho.iter().map(|a| (a - m).exp()).sum();
    m + (s * volume).ln()
}

/// `log_rho` shifted so that Σ V·e^{aᵢ} = 1.
pub fn normalized(log_rho: &[f64], volume: f64) -> Vec<f64> {
    let z = log_mass(log_rho, volume);
    log_rho.iter().map(|a| a - z).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faces_count_and_neighbours() {
        let g = Grid::plane((0.0, 1.0), (0.0, 2.0), 3, 4);
        let f = g.faces();
        assert_eq!(f.len(), 2 * 4 + 3 * 3);
        assert!(f.iter().all(|&(i, j, _)| j == i + 1 || j == i + 3));
        assert_eq!(g.point(4), vec![0.5, 0.75]);
        assert!(!g.on_boundary(4));
        assert!(g.on_boundary(3));
    }

    #[test]
    fn normalization_is_a_unit_mass() {
        let a = [-1000.0, -1001.0, -999.5];
        let z = normalized(&a, 0.25);
        let m: f64 = z.iter().map(|v| 0.25 * v.exp()).sum();
        // a − log M loses ε·|a| ≈ 1e-13 at |a| = 1000
        assert!((m - 1.0).abs() < 1e-12, "{m}");
    }
}
