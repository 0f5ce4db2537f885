//! The animated flow: the manifold figure with the particles moving along the natural-gradient
//! flow, one GIF frame per equal time interval, each stamped with its time.

use super::manifold::{MANIFOLD_SIZE, ManifoldFigure, draw_manifold_on};
use super::{font, plot_err};
use crate::error::{Error, Result};
use std::path::Path;

/// Frame times: `frames` equally spaced times from 0 to `t_end` inclusive (one frame at 0 when
/// `frames` = 1).
pub fn frame_times(frames: usize, t_end: f64) -> Vec<f64> {
    match frames {
        0 => Vec::new(),
        1 => vec![0.0],
        n => (0..n).map(|k| t_end * k as f64 / (n - 1) as f64).collect(),
    }
}

/// Index of the transparent colour in every frame after the first.
const TRANSPARENT: u8 = 255;

/// A 255-colour palette (NeuQuant, trained on sample frames) with a cache of the colours
/// already mapped; index 255 is left for transparency.
struct Palette {
    quant: color_quant::NeuQuant,
    cache: std::collections::HashMap<[u8; 3], u8>,
}

impl Palette {
    fn train(frames: &[&[u8]]) -> Palette {
        let rgba: Vec<u8> = frames
            .iter()
            .flat_map(|f| f.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], 255]))
            .collect();
        Palette {
            quant: color_quant::NeuQuant::new(10, 255, &rgba),
            cache: std::collections::HashMap::new(),
        }
    }

    /// Global colour table: 256 RGB entries (the last one unused: transparency).
    fn table(&self) -> Vec<u8> {
        let mut t = self.quant.color_map_rgb();
        t.resize(256 * 3, 0);
        t
    }

    fn index(&mut self, p: [u8; 3]) -> u8 {
        let quant = &self.quant;
        *self
            .cache
            .entry(p)
            .or_insert_with(|| quant.index_of(&[p[0], p[1], p[2], 255]).min(254) as u8)
    }

    fn map(&mut self, rgb: &[u8]) -> Vec<u8> {
        rgb.chunks_exact(3)
            .map(|p| self.index([p[0], p[1], p[2]]))
            .collect()
    }
}

/// The GIF frame showing `next` over `prev` (palette indices, `w` wide): the bounding box of
/// the changed pixels, unchanged ones transparent. An unchanged frame is one transparent pixel.
fn delta_frame(prev: &[u8], next: &[u8], w: usize) -> gif::Frame<'static> {
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for (k, (a, b)) in prev.iter().zip(next).enumerate() {
        if a != b {
            let (x, y) = (k % w, k / w);
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
    }
    if x0 == usize::MAX {
        return gif::Frame {
            width: 1,
            height: 1,
            transparent: Some(TRANSPARENT),
            buffer: vec![TRANSPARENT].into(),
            ..gif::Frame::default()
        };
    }
    let mut buffer = Vec::with_capacity((x1 - x0 + 1) * (y1 - y0 + 1));
    for y in y0..=y1 {
        for x in x0..=x1 {
            let k = y * w + x;
            buffer.push(if prev[k] == next[k] {
                TRANSPARENT
            } else {
                next[k]
            });
        }
    }
    gif::Frame {
        left: x0 as u16,
        top: y0 as u16,
        width: (x1 - x0 + 1) as u16,
        height: (y1 - y0 + 1) as u16,
        transparent: Some(TRANSPARENT),
        buffer: buffer.into(),
        ..gif::Frame::default()
    }
}

/// Write the animation to `path` (must end in `.gif`), atomically: `frames` frames at equal time
/// steps over [0, `t_end`], each shown for `delay_ms` milliseconds (rounded to GIF's 10 ms).
///
/// Frames are drawn anti-aliased (2× supersampling), quantised to one global 255-colour
/// palette trained on the first and last frames, and stored as the rectangle that changed
/// since the previous frame (unchanged pixels transparent), which keeps the file small.
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
    let size = MANIFOLD_SIZE;
    let draw = |t: f64| {
        super::rasterize(size, |root| {
            draw_manifold_on(root, fig, Some(t)).map_err(|e| e.to_string())
        })
        .map_err(|e| plot_err(path, e))
    };
    let times = frame_times(frames, t_end);
    let first = draw(times[0])?;
    let last = draw(times[times.len() - 1])?;
    let mut palette = Palette::train(&[&first, &last]);
    let mut bytes = Vec::new();
    let gif_err = |e: gif::EncodingError| plot_err(path, e);
    {
        let mut enc = gif::Encoder::new(&mut bytes, size.0 as u16, size.1 as u16, &palette.table())
            .map_err(gif_err)?;
        enc.set_repeat(gif::Repeat::Infinite).map_err(gif_err)?;
        let delay = (delay_ms.div_ceil(10)).min(u32::from(u16::MAX)) as u16;
        let mut prev: Option<Vec<u8>> = None;
        for (k, &t) in times.iter().enumerate() {
            let rgb = if k == 0 {
                first.clone()
            } else if k + 1 == times.len() {
                last.clone()
            } else {
                draw(t)?
            };
            let idx = palette.map(&rgb);
            let mut frame = match &prev {
                None => gif::Frame {
                    width: size.0 as u16,
                    height: size.1 as u16,
                    buffer: idx.clone().into(),
                    ..gif::Frame::default()
                },
                Some(p) => delta_frame(p, &idx, size.0 as usize),
            };
            frame.delay = delay;
            frame.dispose = gif::DisposalMethod::Keep;
            enc.write_frame(&frame).map_err(gif_err)?;
            prev = Some(idx);
        }
    }
    crate::export::write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_frames_cover_only_the_change() {
        let prev = vec![1u8; 12]; // 4 × 3
        let mut next = prev.clone();
        next[5] = 7; // (1, 1)
        next[10] = 8; // (2, 2)
        let f = delta_frame(&prev, &next, 4);
        assert_eq!((f.left, f.top, f.width, f.height), (1, 1, 2, 2));
        assert_eq!(f.buffer.as_ref(), &[7, TRANSPARENT, TRANSPARENT, 8]);
        let same = delta_frame(&prev, &prev, 4);
        assert_eq!((same.width, same.height), (1, 1));
        assert_eq!(same.buffer.as_ref(), &[TRANSPARENT]);
    }

    #[test]
    fn frames_are_equally_spaced() {
        let t = frame_times(5, 2.0);
        assert_eq!(t, vec![0.0, 0.5, 1.0, 1.5, 2.0]);
        assert_eq!(frame_times(1, 2.0), vec![0.0]);
        assert!(frame_times(0, 2.0).is_empty());
    }
}
