//! The animated flow: the manifold figure with the particles moving along the natural-gradient
//! flow, one GIF frame per equal time interval, each stamped with its time.

use super::manifold::{MANIFOLD_SIZE, ManifoldFigure, draw_manifold_on};
use super::{font, plot_err};
use crate::error::{Error, Result};
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// Frame times: `frames` equally spaced times from 0 to `t_end` inclusive (one frame at 0 when
/// `frames` = 1).
pub fn frame_times(frames: usize, t_end: f64) -> Vec<f64> {
    match frames {
        0 => Vec::new(),
        1 => vec![0.0],
        n => (0..n).map(|k| t_end * k as f64 / (n - 1) as f64).collect(),
    }
}

/// Write the animation to `path` (must end in `.gif`), atomically: `frames` frames at equal time
/// steps over [0, `t_end`], each shown for `delay_ms` milliseconds.
pub fn animate(
    path: &Path,
    fig: &ManifoldFigure,
    frames: usize,
    t_end: f64,
    delay_ms: u32,
) -> Result<()> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if ext != "gif" {
        return Err(Error::Plot {
            path: path.to_path_buf(),
            message: format!("unsupported animation extension '{ext}': use .gif"),
        });
    }
    if frames == 0 || !(t_end.is_finite() && t_end > 0.0) {
        return Err(Error::Plot {
            path: path.to_path_buf(),
            message: "an animation needs at least one frame and a positive duration".into(),
        });
    }
    if !font::register() {
        return Err(plot_err(path, "the bundled font could not be loaded"));
    }
    // The GIF encoder writes the file as it goes: draw into a temporary sibling ending in .gif.
    let mut tmp = crate::export::temp_path(path).into_os_string();
    tmp.push(".gif");
    let tmp = PathBuf::from(tmp);
    std::fs::File::create(&tmp).map_err(|source| Error::Write {
        path: path.to_path_buf(),
        source,
    })?;
    let result = (|| -> std::result::Result<(), String> {
        let root = BitMapBackend::gif(&tmp, MANIFOLD_SIZE, delay_ms)
            .map_err(|e| e.to_string())?
            .into_drawing_area();
        for t in frame_times(frames, t_end) {
            draw_manifold_on(&root, fig, Some(t)).map_err(|e| e.to_string())?;
            root.present().map_err(|e| e.to_string())?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => crate::export::commit(&tmp, path),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(plot_err(path, e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_equally_spaced() {
        let t = frame_times(5, 2.0);
        assert_eq!(t, vec![0.0, 0.5, 1.0, 1.5, 2.0]);
        assert_eq!(frame_times(1, 2.0), vec![0.0]);
        assert!(frame_times(0, 2.0).is_empty());
    }
}
