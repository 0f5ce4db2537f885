//! The bundled font. Plotters is built without system-font support, so every figure uses
//! DejaVu Sans compiled into the binary and registered under the family name [`FAMILY`].
//! SVGs carry a subset of it (Latin, Greek, super/subscripts, arithmetic and arrows: what the
//! figures write) as an `@font-face` with a base64 TrueType, so they render with the same
//! font everywhere; `assets/fonts/DejaVuSans-subset.ttf` was made from the bundled font by
//! fontTools (`pyftsubset`, command in `assets/fonts/README.md`).

use plotters::style::{FontStyle, register_font};
use std::sync::OnceLock;

/// The font family name to use in every text style.
pub const FAMILY: &str = "DejaVu Sans";

/// DejaVu Sans (see `assets/fonts/DejaVuSans-LICENSE.txt`); covers Greek letters, sub- and
/// superscript digits and the minus sign.
pub static DEJAVU_SANS: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/fonts/DejaVuSans.ttf"
));

/// The subset of DejaVu Sans embedded in SVGs.
pub static DEJAVU_SANS_SUBSET: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/fonts/DejaVuSans-subset.ttf"
));

/// Standard base64 (RFC 4648, with padding).
pub fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(char::from(ABC[((n >> (18 - 6 * k)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The `<defs>` element declaring the embedded font (computed once).
pub fn svg_font_defs() -> &'static str {
    static DEFS: OnceLock<String> = OnceLock::new();
    DEFS.get_or_init(|| {
        format!(
            "<defs><style>@font-face{{font-family:\"{FAMILY}\";src:url(data:font/ttf;base64,{}) format(\"truetype\");}}</style></defs>",
            base64(DEJAVU_SANS_SUBSET)
        )
    })
}

/// Embed the font in an SVG written by plotters: the `@font-face` right after the opening
/// `<svg …>` tag, and a generic fallback after the family name.
pub fn embed_in_svg(svg: &str) -> String {
    let family = format!("font-family=\"{FAMILY}\"");
    let fallback = format!("font-family=\"{FAMILY}, sans-serif\"");
    let body = svg.replace(&family, &fallback);
    match body
        .find("<svg")
        .and_then(|i| body[i..].find('>').map(|j| i + j + 1))
    {
        Some(k) => format!("{}\n{}{}", &body[..k], svg_font_defs(), &body[k..]),
        None => body,
    }
}

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
    fn base64_matches_rfc4648() {
        assert_eq!(super::base64(b""), "");
        assert_eq!(super::base64(b"f"), "Zg==");
        assert_eq!(super::base64(b"fo"), "Zm8=");
        assert_eq!(super::base64(b"foo"), "Zm9v");
        assert_eq!(super::base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn svg_gets_the_font_face() {
        let svg = "<?xml version=\"1.0\"?>\n<svg width=\"10\" height=\"10\">\n<text font-family=\"DejaVu Sans\">a</text></svg>";
        let out = super::embed_in_svg(svg);
        assert!(out.contains("<svg width=\"10\" height=\"10\">\n<defs><style>@font-face"));
        assert!(out.contains("font-family=\"DejaVu Sans, sans-serif\""));
        assert!(
            out.contains("data:font/ttf;base64,AAEAAA"),
            "TrueType magic 00 01 00 00"
        );
    }

    #[test]
    fn bundled_font_registers() {
        assert!(super::register());
        assert!(super::register());
    }
}
