//! The bundled font. Plotters is built without system-font support, so every figure uses
//! DejaVu Sans compiled into the binary and registered under the family name [`FAMILY`].

use plotters::style::{FontStyle, register_font};
use std::sync::OnceLock;

/// The font family name to use in every text style.
pub const FAMILY: &str = "sans-serif";

/// DejaVu Sans (see `assets/fonts/DejaVuSans-LICENSE.txt`); covers Greek letters, sub- and
/// superscript digits and the minus sign.
pub static DEJAVU_SANS: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/fonts/DejaVuSans.ttf"
));

static REGISTERED: OnceLock<bool> = OnceLock::new();

/// Register the bundled font as [`FAMILY`] (once per process; later calls are free).
/// Returns whether the font is available. Call this before drawing any text with plotters:
/// without a registered font the bitmap backend panics.
pub fn register() -> bool {
    *REGISTERED.get_or_init(|| register_font(FAMILY, FontStyle::Normal, DEJAVU_SANS).is_ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn bundled_font_registers() {
        assert!(super::register());
        assert!(super::register());
    }
}
