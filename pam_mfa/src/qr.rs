//! QR codes for `otpauth://` URIs as a matrix of modules and as terminal text: one
//! drawing for `mfa enroll totp` and for a registration at login (which `mfad` draws
//! and the module only shows), so the two can never differ.
//!
//! The data always carries a TOTP secret, so nothing here logs it or puts it into an
//! error message. Our own buffers are zeroized after use; the qrcode crate's internal
//! buffers are not, so this is best effort. Whatever is returned encodes the secret just
//! as well as the URI does; callers should treat it the same way.

use qrcode::types::QrError as EncodeError;
use qrcode::{Color, EcLevel, QrCode};
use zeroize::Zeroizing;

/// Width of the light border around the symbol, in modules. ISO/IEC 18004 asks for four;
/// scanners rely on it to find the finder patterns, which matters most when the terminal
/// background around the code is dark.
const QUIET_ZONE: usize = 4;

/// Black text on bright white background (SGR 30 and 107). Explicit colours on both sides
/// make the code look the same on dark and light themes; without them a dark theme would
/// show it inverted, which some scanner apps cannot read.
const ANSI_BLACK_ON_WHITE: &str = "\x1b[30;107m";
const ANSI_RESET: &str = "\x1b[0m";

#[derive(Debug, thiserror::Error)]
pub enum QrError {
    /// Kept apart from other encoder failures because the user can fix it (shorter issuer
    /// or account name). Only the length is reported, never the data.
    #[error(
        "the otpauth URI is too long for a QR code ({len} bytes); use a shorter issuer or account name"
    )]
    TooLong { len: usize },
    #[error("cannot encode the otpauth URI as a QR code: {0}")]
    Encode(EncodeError),
}

/// Level M recovers from ~15 % damage (glare, a stray cursor) while keeping typical
/// otpauth URIs at a version small enough for an 80-column terminal.
pub fn encode(data: &str) -> Result<QrCode, QrError> {
    QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M).map_err(|e| match e {
        EncodeError::DataTooLong => QrError::TooLong { len: data.len() },
        other => QrError::Encode(other),
    })
}

/// The symbol as a square of dark (`true`) / light modules, quiet zone included, so that
/// every renderer draws the border the same way instead of each adding its own.
pub struct Matrix {
    size: usize,
    dark: Zeroizing<Vec<bool>>,
}

impl Matrix {
    /// Modules per side, quiet zone included.
    pub fn size(&self) -> usize {
        self.size
    }

    pub fn encode(data: &str) -> Result<Self, QrError> {
        let code = encode(data)?;
        let width = code.width();
        let modules = code.into_colors();
        let size = width + 2 * QUIET_ZONE;
        let mut dark = Zeroizing::new(vec![false; size * size]);
        for (y, row) in modules.chunks_exact(width).enumerate() {
            let start = (y + QUIET_ZONE) * size + QUIET_ZONE;
            if let Some(dst) = dark.get_mut(start..start + width) {
                for (d, c) in dst.iter_mut().zip(row) {
                    *d = *c == Color::Dark;
                }
            }
        }
        Ok(Self { size, dark })
    }

    /// Out-of-range coordinates count as light, which lets the terminal renderer pair the
    /// last (odd) row with an imaginary light one.
    pub fn is_dark(&self, x: usize, y: usize) -> bool {
        x < self.size && y < self.size && self.dark.get(y * self.size + x) == Some(&true)
    }
}

/// Renders `data` for a terminal, two module rows per line with half blocks, so the code
/// is roughly square in a typical terminal font and fits on screen. Every line ends in
/// `'\n'`.
///
/// The glyphs draw dark modules in the foreground colour. With `color` each line sets
/// black-on-white explicitly and resets at its end, so the code scans on any theme and
/// the colour never leaks into the rest of the line or the prompt. Without `color` (not a
/// tty, `NO_COLOR`) the output is plain text; on a dark theme it then appears inverted.
pub fn terminal(data: &str, color: bool) -> Result<String, QrError> {
    let m = Matrix::encode(data)?;
    let lines = m.size.div_ceil(2);
    let wrap = if color {
        ANSI_BLACK_ON_WHITE.len() + ANSI_RESET.len()
    } else {
        0
    };
    // Each glyph is 3 bytes in UTF-8. Reserving it all up front means the string never
    // reallocates, so no stray copies of the code are left in freed memory.
    let mut out = String::with_capacity(lines * (m.size * 3 + wrap + 1));
    for y in (0..m.size).step_by(2) {
        if color {
            out.push_str(ANSI_BLACK_ON_WHITE);
        }
        for x in 0..m.size {
            out.push(match (m.is_dark(x, y), m.is_dark(x, y + 1)) {
                (false, false) => ' ',
                (true, false) => '▀',
                (false, true) => '▄',
                (true, true) => '█',
            });
        }
        if color {
            out.push_str(ANSI_RESET);
        }
        out.push('\n');
    }
    Ok(out)
}
