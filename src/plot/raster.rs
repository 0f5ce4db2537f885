//! Anti-aliased raster output. Plotters' bitmap backend draws aliased lines and places glyphs on
//! whole pixels, so PNG and GIF figures are drawn at [`SCALE`]× the size by [`Supersample`]
//! (a backend that scales every coordinate, stroke width and font size) and box-filtered down:
//! each output pixel is the mean of a SCALE × SCALE block, i.e. 2×2 supersampling.

use plotters::prelude::*;
use plotters::style::{FontDesc, FontFamily, TextStyle};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind,
};

/// The supersampling factor.
pub const SCALE: u32 = 2;

type Inner<'a> = BitMapBackend<'a>;
type InnerError<'a> = <Inner<'a> as DrawingBackend>::ErrorType;

/// A backend of logical size `size` drawing into an RGB buffer of SCALE× the size.
pub struct Supersample<'a> {
    inner: Inner<'a>,
    size: (u32, u32),
}

/// An RGB buffer of SCALE× the logical size (bytes), or `None` when the size overflows.
pub fn hires_buffer(size: (u32, u32)) -> Option<Vec<u8>> {
    let w = usize::try_from(size.0).ok()?.checked_mul(SCALE as usize)?;
    let h = usize::try_from(size.1).ok()?.checked_mul(SCALE as usize)?;
    Some(vec![0u8; w.checked_mul(h)?.checked_mul(3)?])
}

impl<'a> Supersample<'a> {
    /// Draw into `buffer` (from [`hires_buffer`] with the same `size`).
    pub fn new(buffer: &'a mut [u8], size: (u32, u32)) -> Self {
        Supersample {
            inner: BitMapBackend::with_buffer(buffer, (size.0 * SCALE, size.1 * SCALE)),
            size,
        }
    }
}

/// The mean of each SCALE × SCALE block of a high-resolution RGB buffer: the logical image.
pub fn downsample(hires: &[u8], size: (u32, u32)) -> Vec<u8> {
    let (w, h) = (size.0 as usize, size.1 as usize);
    let s = SCALE as usize;
    let hw = w * s;
    let mut out = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let mut sum = 0u32;
                for dy in 0..s {
                    for dx in 0..s {
                        sum += u32::from(hires[((y * s + dy) * hw + x * s + dx) * 3 + c]);
                    }
                }
                let n = (s * s) as u32;
                out[(y * w + x) * 3 + c] = ((sum + n / 2) / n) as u8;
            }
        }
    }
    out
}

/// A logical pixel's centre in high-resolution coordinates.
fn centre(p: BackendCoord) -> BackendCoord {
    let s = SCALE as i32;
    (p.0 * s + s / 2, p.1 * s + s / 2)
}

/// A style with the stroke width scaled.
struct Scaled<'s, S: BackendStyle>(&'s S);

impl<S: BackendStyle> BackendStyle for Scaled<'_, S> {
    fn color(&self) -> BackendColor {
        self.0.color()
    }
    fn stroke_width(&self) -> u32 {
        self.0.stroke_width() * SCALE
    }
}

/// The same text style at SCALE× the font size.
fn scaled_text<T: BackendTextStyle>(style: &T) -> TextStyle<'static> {
    // Only the bundled font is registered: every family maps to it.
    let _ = style.family();
    let family = FontFamily::Name(super::font::FAMILY);
    let font_style = style.style();
    let font = FontDesc::new(family, style.size() * f64::from(SCALE), font_style)
        .transform(style.transform());
    TextStyle {
        font,
        color: style.color(),
        pos: style.anchor(),
    }
}

impl<'a> DrawingBackend for Supersample<'a> {
    type ErrorType = InnerError<'a>;

    fn get_size(&self) -> (u32, u32) {
        self.size
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.present()
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        let s = SCALE as i32;
        for dy in 0..s {
            for dx in 0..s {
                self.inner
                    .draw_pixel((point.0 * s + dx, point.1 * s + dy), color)?;
            }
        }
        Ok(())
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner
            .draw_line(centre(from), centre(to), &Scaled(style))
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        let s = SCALE as i32;
        if fill {
            self.inner.draw_rect(
                (upper_left.0 * s, upper_left.1 * s),
                (bottom_right.0 * s + s - 1, bottom_right.1 * s + s - 1),
                style,
                true,
            )
        } else {
            self.inner.draw_path(
                [
                    centre(upper_left),
                    centre((bottom_right.0, upper_left.1)),
                    centre(bottom_right),
                    centre((upper_left.0, bottom_right.1)),
                    centre(upper_left),
                ],
                &Scaled(style),
            )
        }
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner
            .draw_path(path.into_iter().map(centre), &Scaled(style))
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner
            .draw_circle(centre(center), radius * SCALE, &Scaled(style), fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.fill_polygon(vert.into_iter().map(centre), style)
    }

    fn draw_text<TStyle: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &TStyle,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        let s = SCALE as i32;
        self.inner
            .draw_text(text, &scaled_text(style), (pos.0 * s, pos.1 * s))
    }

    fn estimate_text_size<TStyle: BackendTextStyle>(
        &self,
        text: &str,
        style: &TStyle,
    ) -> Result<(u32, u32), DrawingErrorKind<Self::ErrorType>> {
        let (w, h) = self.inner.estimate_text_size(text, &scaled_text(style))?;
        Ok((w.div_ceil(SCALE), h.div_ceil(SCALE)))
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        (iw, ih): (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        let s = SCALE as usize;
        let (w, h) = (iw as usize, ih as usize);
        if src.len() < w * h * 3 {
            return Ok(());
        }
        let mut big = vec![0u8; w * s * h * s * 3];
        for y in 0..h * s {
            for x in 0..w * s {
                let from = ((y / s) * w + x / s) * 3;
                let to = (y * w * s + x) * 3;
                big[to..to + 3].copy_from_slice(&src[from..from + 3]);
            }
        }
        let si = SCALE as i32;
        self.inner
            .blit_bitmap((pos.0 * si, pos.1 * si), (iw * SCALE, ih * SCALE), &big)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downsampling_averages_blocks() {
        // 2×1 logical pixels: a black/white checker block and a uniform grey block.
        let size = (2, 1);
        let mut hires = vec![0u8; 4 * 2 * 3];
        let px = |x: usize, y: usize| (y * 4 + x) * 3;
        for c in 0..3 {
            hires[px(1, 0) + c] = 255;
            hires[px(0, 1) + c] = 255;
            for (x, y) in [(2, 0), (3, 0), (2, 1), (3, 1)] {
                hires[px(x, y) + c] = 100;
            }
        }
        assert_eq!(downsample(&hires, size), vec![128, 128, 128, 100, 100, 100]);
    }

    #[test]
    fn a_diagonal_line_gets_intermediate_shades() {
        assert!(super::super::font::register());
        let size = (40, 40);
        let mut buf = hires_buffer(size).unwrap();
        {
            let root = Supersample::new(&mut buf, size).into_drawing_area();
            root.fill(&WHITE).unwrap();
            root.draw(&PathElement::new(
                vec![(2, 5), (37, 30)],
                plotters::style::Color::stroke_width(&BLACK, 1),
            ))
            .unwrap();
            root.draw_text(
                "Euclidean",
                &(super::super::font::FAMILY, 12).into_text_style(&root),
                (1, 1),
            )
            .unwrap();
            root.present().unwrap();
        }
        let img = downsample(&buf, size);
        let partial = img.chunks(3).filter(|p| p[0] > 20 && p[0] < 235).count();
        assert!(partial > 20, "only {partial} grey pixels: no anti-aliasing");
    }
}
