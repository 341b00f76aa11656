//! QR codes for `otpauth://` URIs, shown on the terminal or written to a file the user
//! asked for.
//!
//! The data always carries a TOTP secret, so nothing here logs it or puts it into an
//! error message. Our own pixel buffers are zeroized after use; the qrcode and png crates'
//! internal buffers are not, so this is best effort. Whatever is returned encodes the
//! secret just as well as the URI does; callers should treat it the same way.

use zeroize::Zeroizing;

pub use pam_mfa::qr::Matrix;

/// Pixels per module in the PNG: big enough to scan off a screen or a printout without
/// smoothing, small enough that the largest code stays under 1500 pixels across.
const PNG_MODULE_PX: usize = 8;

/// The SVG has no intrinsic resolution, but viewers use its width/height to pick a
/// default size; this keeps it comfortably scannable when opened as is.
const SVG_MIN_PX: u32 = 320;

#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error(transparent)]
    Qr(#[from] pam_mfa::qr::QrError),
    #[error("cannot write the QR code as PNG: {0}")]
    Png(#[from] png::EncodingError),
}

/// The library's terminal drawing (see [`pam_mfa::qr::terminal`]).
pub fn terminal(data: &str, color: bool) -> Result<String, QrError> {
    Ok(pam_mfa::qr::terminal(data, color)?)
}

/// Renders `data` as an 8-bit grayscale PNG: universally readable, and lossless so the
/// module edges stay sharp.
pub fn png(data: &str) -> Result<Vec<u8>, QrError> {
    let m = Matrix::encode(data)?;
    let side = m.size() * PNG_MODULE_PX;
    let mut pixels = Zeroizing::new(Vec::with_capacity(side * side));
    for py in 0..side {
        for px in 0..side {
            let dark = m.is_dark(px / PNG_MODULE_PX, py / PNG_MODULE_PX);
            pixels.push(if dark { 0x00 } else { 0xff });
        }
    }
    // The largest QR code is 185 modules with its border, so this cannot overflow; the
    // error path only exists to avoid a cast.
    let side =
        u32::try_from(side).map_err(|_| pam_mfa::qr::QrError::TooLong { len: data.len() })?;

    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(out)
}

/// Renders `data` as a standalone SVG document, for users who want to print the code or
/// scale it without blur.
pub fn svg(data: &str) -> Result<String, QrError> {
    Ok(pam_mfa::qr::encode(data)?
        .render::<qrcode::render::svg::Color<'_>>()
        .quiet_zone(true)
        .min_dimensions(SVG_MIN_PX, SVG_MIN_PX)
        .dark_color(qrcode::render::svg::Color("#000000"))
        .light_color(qrcode::render::svg::Color("#ffffff"))
        .build())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use qrcode::{EcLevel, QrCode};
    use std::path::Path;
    use std::process::Command;

    /// The spec's value, deliberately not the module's constant, so that shrinking the
    /// constant fails the tests.
    const QZ: usize = 4;

    const SHORT: &str = "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP";
    const TYPICAL: &str = "otpauth://totp/Example%20Corp:alice%40example.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Example%20Corp&algorithm=SHA1&digits=6&period=30";

    /// A larger version (more alignment patterns) than any realistic URI needs.
    fn long() -> String {
        format!(
            "otpauth://totp/Example:bob?secret={}&issuer=Example",
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".repeat(10)
        )
    }

    fn samples() -> Vec<String> {
        vec![SHORT.to_owned(), TYPICAL.to_owned(), long()]
    }

    /// Decodes with zbarimg, the independent decoder the architecture prescribes. `None`
    /// when no code was found; a missing zbarimg fails the test rather than skipping it.
    fn zbar(path: &Path) -> Option<String> {
        let out = Command::new("zbarimg")
            .arg("--raw")
            .arg("-q")
            .arg(path)
            .output()
            .expect("zbarimg must be installed (package zbar-tools)");
        if !out.status.success() {
            return None;
        }
        let mut text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.pop(), Some('\n'), "zbarimg --raw ends with a newline");
        Some(text)
    }

    /// Binary PGM (P5); `pixels` holds `true` for dark, each scaled to `scale`×`scale`.
    fn write_pgm(path: &Path, pixels: &[Vec<bool>], scale: usize) {
        let h = pixels.len();
        let w = pixels[0].len();
        let mut out = format!("P5\n{} {}\n255\n", w * scale, h * scale).into_bytes();
        for row in pixels {
            assert_eq!(row.len(), w, "ragged bitmap");
            for _ in 0..scale {
                for &dark in row {
                    out.extend(std::iter::repeat_n(if dark { 0u8 } else { 255 }, scale));
                }
            }
        }
        std::fs::write(path, out).unwrap();
    }

    /// Removes CSI sequences (ESC '[' params final-byte), failing on any other escape.
    fn strip_ansi(s: &str) -> String {
        let mut out = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c != '\x1b' {
                out.push(c);
                continue;
            }
            assert_eq!(chars.next(), Some('['), "only CSI escapes expected");
            loop {
                match chars.next() {
                    Some('@'..='~') => break,
                    Some(_) => {}
                    None => panic!("unterminated escape sequence"),
                }
            }
        }
        out
    }

    /// Turns half-block text back into pixels: each character is one column and two rows.
    fn halfblocks_to_bitmap(text: &str) -> Vec<Vec<bool>> {
        let mut rows = Vec::new();
        for line in text.lines() {
            let (mut top, mut bottom) = (Vec::new(), Vec::new());
            for c in line.chars() {
                let (t, b) = match c {
                    ' ' => (false, false),
                    '▀' => (true, false),
                    '▄' => (false, true),
                    '█' => (true, true),
                    other => panic!("unexpected character {other:?} in QR output"),
                };
                top.push(t);
                bottom.push(b);
            }
            rows.push(top);
            rows.push(bottom);
        }
        rows
    }

    fn decode_terminal(text: &str, name: &str) -> Option<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        write_pgm(&path, &halfblocks_to_bitmap(&strip_ansi(text)), 4);
        zbar(&path)
    }

    /// Asserts that the outer `QZ` modules on every side are light. The bitmap may
    /// have one extra light row at the bottom (odd size, two rows per line).
    fn assert_quiet_zone(bitmap: &[Vec<bool>]) {
        let size = bitmap[0].len();
        assert!(bitmap.len() == size || bitmap.len() == size + 1);
        for (y, row) in bitmap.iter().enumerate() {
            for (x, &dark) in row.iter().enumerate() {
                let border = x < QZ || y < QZ || x >= size - QZ || y >= size - QZ;
                assert!(!(border && dark), "dark module in quiet zone at ({x}, {y})");
            }
        }
        // Make sure the code itself is there: the finder pattern's corner is dark.
        assert!(bitmap[QZ][QZ]);
    }

    #[test]
    fn terminal_plain_decodes_and_has_no_escapes() {
        for data in samples() {
            let text = terminal(&data, false).unwrap();
            assert!(!text.contains('\x1b'), "escape sequence in plain output");
            assert!(text.ends_with('\n'));
            assert!(text.chars().all(|c| " ▀▄█\n".contains(c)));
            let width = text.lines().next().unwrap().chars().count();
            assert!(text.lines().all(|l| l.chars().count() == width));
            assert_eq!(text.lines().count(), width.div_ceil(2));
            assert_quiet_zone(&halfblocks_to_bitmap(&text));
            assert_eq!(decode_terminal(&text, "plain.pgm").as_deref(), Some(&*data));
        }
    }

    #[test]
    fn terminal_color_decodes_and_wraps_every_line() {
        for data in samples() {
            let text = terminal(&data, true).unwrap();
            for line in text.lines() {
                let inner = line
                    .strip_prefix("\x1b[30;107m")
                    .and_then(|l| l.strip_suffix("\x1b[0m"))
                    .unwrap_or_else(|| panic!("line not wrapped in colours: {line:?}"));
                assert!(!inner.contains('\x1b'), "stray escape inside a line");
            }
            let plain = terminal(&data, false).unwrap();
            assert_eq!(
                strip_ansi(&text),
                plain,
                "colour must not change the glyphs"
            );
            assert_eq!(decode_terminal(&text, "color.pgm").as_deref(), Some(&*data));
        }
    }

    /// Shows the decode check is not vacuous: the same text with upper and lower halves
    /// swapped (a plausible renderer bug) must not decode to the data.
    #[test]
    fn terminal_decode_check_catches_swapped_halves() {
        let swapped: String = terminal(TYPICAL, false)
            .unwrap()
            .chars()
            .map(|c| match c {
                '▀' => '▄',
                '▄' => '▀',
                other => other,
            })
            .collect();
        assert_ne!(
            decode_terminal(&swapped, "swapped.pgm").as_deref(),
            Some(TYPICAL)
        );

        let dir = tempfile::tempdir().unwrap();
        let blank = dir.path().join("blank.pgm");
        write_pgm(&blank, &vec![vec![false; 40]; 40], 4);
        assert_eq!(zbar(&blank), None);
    }

    #[test]
    fn png_decodes_with_zbar() {
        let dir = tempfile::tempdir().unwrap();
        for data in samples() {
            let bytes = png(&data).unwrap();
            let path = dir.path().join("code.png");
            std::fs::write(&path, &bytes).unwrap();
            assert_eq!(zbar(&path).as_deref(), Some(&*data));
        }
    }

    #[test]
    fn png_is_8bit_gray_with_8px_modules_and_quiet_zone() {
        let bytes = png(TYPICAL).unwrap();
        let mut reader = ::png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, ::png::ColorType::Grayscale);
        assert_eq!(info.bit_depth, ::png::BitDepth::Eight);
        assert_eq!(info.width, info.height);

        let side = info.width as usize;
        let modules = QrCode::with_error_correction_level(TYPICAL, EcLevel::M)
            .unwrap()
            .width();
        assert_eq!(side, (modules + 2 * QZ) * 8);

        let bitmap: Vec<Vec<bool>> = (0..side)
            .step_by(8)
            .map(|y| {
                (0..side)
                    .step_by(8)
                    .map(|x| buf[y * info.line_size + x] == 0)
                    .collect()
            })
            .collect();
        assert_quiet_zone(&bitmap);
        // Every pixel is pure black or white and each 8×8 block is uniform.
        for y in 0..side {
            for x in 0..side {
                let p = buf[y * info.line_size + x];
                assert!(p == 0 || p == 255);
                assert_eq!(
                    p == 0,
                    bitmap[y / 8][x / 8],
                    "block not uniform at ({x}, {y})"
                );
            }
        }
    }

    /// zbarimg reads SVG through ImageMagick's librsvg delegate (installed here with
    /// libmagickcore-6.q16-6-extra), so the SVG is checked by decoding, not only by shape.
    #[test]
    fn svg_is_svg_and_decodes_with_zbar() {
        let dir = tempfile::tempdir().unwrap();
        for data in samples() {
            let doc = svg(&data).unwrap();
            assert!(doc.contains("<svg "));
            assert!(doc.trim_end().ends_with("</svg>"));
            let width: u32 = doc
                .split(" width=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .and_then(|s| s.parse().ok())
                .unwrap();
            assert!(width >= SVG_MIN_PX);
            assert_svg_quiet_zone(&doc, &data, width);
            let path = dir.path().join("code.svg");
            std::fs::write(&path, &doc).unwrap();
            assert_eq!(zbar(&path).as_deref(), Some(&*data));
        }
    }

    /// Every dark rectangle starts inside the quiet zone; the crate's renderer writes each
    /// as `M{left} {top}h…`, so the move-to coordinates are enough.
    fn assert_svg_quiet_zone(doc: &str, data: &str, width: u32) {
        let modules = QrCode::with_error_correction_level(data, EcLevel::M)
            .unwrap()
            .width() as u32;
        let total = modules + 2 * QZ as u32;
        assert_eq!(width % total, 0, "modules are not whole pixels");
        let unit = width / total;
        let path = doc.split(" d=\"").nth(1).unwrap();
        let mut rects = 0;
        for cmd in path.split('M').skip(1) {
            let mut nums = cmd
                .split(|c: char| !c.is_ascii_digit())
                .filter(|s| !s.is_empty())
                .map(|s| s.parse::<u32>().unwrap());
            let (x, y) = (nums.next().unwrap(), nums.next().unwrap());
            let inner = QZ as u32 * unit..width - QZ as u32 * unit;
            assert!(
                inner.contains(&x) && inner.contains(&y),
                "rect at ({x}, {y})"
            );
            rects += 1;
        }
        assert!(rects > 0, "no dark modules in the SVG");
    }

    #[test]
    fn too_long_is_reported_without_the_data() {
        let data = format!("otpauth://totp/x?secret={}", "Q".repeat(5000));
        for err in [
            terminal(&data, true).unwrap_err(),
            png(&data).unwrap_err(),
            svg(&data).unwrap_err(),
        ] {
            assert!(matches!(
                err,
                QrError::Qr(pam_mfa::qr::QrError::TooLong { len }) if len == data.len()
            ));
            let shown = format!("{err} {err:?}");
            assert!(shown.contains("too long"), "{shown}");
            assert!(!shown.contains("secret="), "message leaks the data");
        }
    }
}
