//! Reading QR codes back, with `zbarimg` as the independent decoder.
//!
//! Image files (`--qr-png`, `--qr-svg`) go to `zbarimg` as they are. The QR code `mfa`
//! prints in the terminal is text made of Unicode half blocks (`▀ ▄ █` and spaces, one
//! character = one module wide, two modules tall), possibly coloured with ANSI escapes so
//! that it reads on dark and light terminals. [`decode_terminal_qr`] redraws that text as
//! a greyscale image and lets `zbarimg` read it, trying both polarities because a terminal
//! code may draw either the dark or the light modules as blocks.

use std::path::Path;
use std::process::Command;

use crate::paths;

/// Decodes the single QR code in an image file with `zbarimg --raw -q`.
///
/// `scratch` receives ImageMagick's temporary files (SVG rendering leaves some behind), so
/// they disappear with the test's directory.
pub fn decode_qr_image(path: &Path, scratch: &Path) -> Result<String, String> {
    let out = Command::new(paths::tool("zbarimg", "zbar-tools"))
        .args(["--raw", "-q"])
        .arg(path)
        .env("MAGICK_TEMPORARY_PATH", scratch)
        .env("MAGICK_TMPDIR", scratch)
        .output()
        .map_err(|e| format!("cannot run zbarimg: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "zbarimg found no QR code in {} (exit {}): {}",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8(out.stdout).map_err(|_| "zbarimg printed non-UTF-8".to_owned())?;
    // zbarimg ends each symbol with a newline; a URI never contains one.
    let text = text.strip_suffix('\n').unwrap_or(&text).to_owned();
    if text.contains('\n') {
        return Err(format!(
            "more than one symbol in {}: {text:?}",
            path.display()
        ));
    }
    Ok(text)
}

/// A terminal colour, as far as SGR escapes set it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Color {
    Default,
    Indexed(u8),
    Rgb(u8, u8, u8),
}

/// Whether a colour looks dark; `None` for the terminal's default colour, whose shade
/// depends on the terminal theme.
fn is_dark(color: Color) -> Option<bool> {
    let (r, g, b) = match color {
        Color::Default => return None,
        Color::Rgb(r, g, b) => (r, g, b),
        Color::Indexed(i) => match i {
            0 => (0, 0, 0),
            1 => (205, 0, 0),
            2 => (0, 205, 0),
            3 => (205, 205, 0),
            4 => (0, 0, 238),
            5 => (205, 0, 205),
            6 => (0, 205, 205),
            7 => (229, 229, 229),
            8 => (127, 127, 127),
            9 => (255, 0, 0),
            10 => (0, 255, 0),
            11 => (255, 255, 0),
            12 => (92, 92, 255),
            13 => (255, 0, 255),
            14 => (0, 255, 255),
            15 => (255, 255, 255),
            16..=231 => {
                let level = |v: u8| if v == 0 { 0 } else { 55 + v * 40 };
                let v = i - 16;
                (level(v / 36), level((v / 6) % 6), level(v % 6))
            }
            232..=255 => {
                let l = 8 + (i - 232) * 10;
                (l, l, l)
            }
        },
    };
    let luma = 299 * u32::from(r) + 587 * u32::from(g) + 114 * u32::from(b);
    Some(luma < 128 * 1000)
}

/// One character cell of terminal output with the colours in force when it was printed.
#[derive(Clone, Copy, Debug)]
struct Cell {
    ch: char,
    fg: Color,
    bg: Color,
}

/// Applies the parameters of one SGR escape (`ESC [ … m`) to the current colours.
fn apply_sgr(params: &str, fg: &mut Color, bg: &mut Color) {
    let nums: Vec<u32> = if params.is_empty() {
        vec![0]
    } else {
        params
            .split([';', ':'])
            .map(|p| p.parse().unwrap_or(0))
            .collect()
    };
    let mut i = 0;
    while i < nums.len() {
        let n = nums[i];
        let byte = |k: usize| nums.get(k).map_or(0, |&v| u8::try_from(v).unwrap_or(255));
        match n {
            0 => {
                *fg = Color::Default;
                *bg = Color::Default;
            }
            30..=37 => *fg = Color::Indexed(byte(i) - 30),
            40..=47 => *bg = Color::Indexed(byte(i) - 40),
            90..=97 => *fg = Color::Indexed(byte(i) - 90 + 8),
            100..=107 => *bg = Color::Indexed(byte(i) - 100 + 8),
            39 => *fg = Color::Default,
            49 => *bg = Color::Default,
            38 | 48 => {
                let target = if n == 38 { &mut *fg } else { &mut *bg };
                match nums.get(i + 1) {
                    Some(5) => {
                        *target = Color::Indexed(byte(i + 2));
                        i += 2;
                    }
                    Some(2) => {
                        *target = Color::Rgb(byte(i + 2), byte(i + 3), byte(i + 4));
                        i += 4;
                    }
                    _ => {}
                }
            }
            7 => std::mem::swap(fg, bg),
            _ => {}
        }
        i += 1;
    }
}

/// Splits terminal output into lines of cells, interpreting colour escapes and dropping
/// every other escape sequence.
fn parse_terminal(text: &str) -> Vec<Vec<Cell>> {
    let mut lines = vec![Vec::new()];
    let (mut fg, mut bg) = (Color::Default, Color::Default);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    let mut params = String::new();
                    for p in chars.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&p) {
                            if p == 'm' {
                                apply_sgr(&params, &mut fg, &mut bg);
                            }
                            break;
                        }
                        params.push(p);
                    }
                } else {
                    chars.next();
                }
            }
            '\n' => lines.push(Vec::new()),
            '\r' => {}
            c => lines
                .last_mut()
                .expect("there is always a current line")
                .push(Cell { ch: c, fg, bg }),
        }
    }
    lines
}

const BLOCKS: [char; 3] = ['▀', '▄', '█'];

fn is_qr_line(line: &[Cell]) -> bool {
    line.iter().any(|c| BLOCKS.contains(&c.ch))
        && line
            .iter()
            .all(|c| BLOCKS.contains(&c.ch) || c.ch == ' ' || c.ch == '\u{a0}')
}

/// The module grid of the largest block of half-block lines in `text`, as "looks dark"
/// per module (true = dark on a light-background terminal), or `None` without one.
pub fn terminal_qr_grid(text: &str) -> Option<Vec<Vec<bool>>> {
    let lines = parse_terminal(text);
    // The longest run of consecutive QR-looking lines is the code.
    let (mut best, mut start) = ((0, 0), None);
    for (i, line) in lines.iter().enumerate() {
        if is_qr_line(line) {
            let s = *start.get_or_insert(i);
            if i + 1 - s > best.1 - best.0 {
                best = (s, i + 1);
            }
        } else {
            start = None;
        }
    }
    let block = &lines[best.0..best.1];
    // A version-1 code is 21 modules tall, that is 11 lines.
    if block.len() < 11 {
        return None;
    }
    // Crop to the columns that carry any ink: indentation and a quiet zone drawn with
    // spaces are dropped (a border is added back when the image is drawn).
    let inked = |c: &Cell| (c.ch != ' ' && c.ch != '\u{a0}') || c.bg != Color::Default;
    let first = block
        .iter()
        .filter_map(|l| l.iter().position(inked))
        .min()?;
    let last = block
        .iter()
        .filter_map(|l| l.iter().rposition(inked))
        .max()?;
    let mut rows = Vec::with_capacity(block.len() * 2);
    for line in block {
        let mut upper = Vec::with_capacity(last + 1 - first);
        let mut lower = Vec::with_capacity(last + 1 - first);
        for col in first..=last {
            let cell = line.get(col).copied().unwrap_or(Cell {
                ch: ' ',
                fg: Color::Default,
                bg: Color::Default,
            });
            let ink_up = cell.ch == '█' || cell.ch == '▀';
            let ink_down = cell.ch == '█' || cell.ch == '▄';
            // Ink is drawn in the foreground colour, the rest shows the background; the
            // default foreground counts as dark and the default background as light
            // (a light terminal), the other polarity is tried by the caller.
            let dark = |ink: bool| {
                if ink {
                    is_dark(cell.fg).unwrap_or(true)
                } else {
                    is_dark(cell.bg).unwrap_or(false)
                }
            };
            upper.push(dark(ink_up));
            lower.push(dark(ink_down));
        }
        rows.push(upper);
        rows.push(lower);
    }
    Some(rows)
}

/// Writes a module grid as a binary PGM image, `scale` pixels per module, with a light
/// border of 4 modules (the quiet zone a scanner needs).
fn write_pgm(grid: &[Vec<bool>], invert: bool, scale: usize, path: &Path) -> std::io::Result<()> {
    const BORDER: usize = 4;
    let h = grid.len();
    let w = grid.iter().map(Vec::len).max().unwrap_or(0);
    let (pw, ph) = ((w + 2 * BORDER) * scale, (h + 2 * BORDER) * scale);
    let mut data = format!("P5\n{pw} {ph}\n255\n").into_bytes();
    for py in 0..ph {
        for px in 0..pw {
            let (mx, my) = (px / scale, py / scale);
            let dark = if mx < BORDER || my < BORDER || mx >= w + BORDER || my >= h + BORDER {
                false
            } else {
                let v = grid[my - BORDER].get(mx - BORDER).copied().unwrap_or(false);
                v != invert
            };
            data.push(if dark { 0 } else { 255 });
        }
    }
    std::fs::write(path, data)
}

/// Decodes the QR code drawn with half blocks in terminal output `text`, using `scratch`
/// for the intermediate images. Tries the light-terminal reading first, then the inverse.
pub fn decode_terminal_qr(text: &str, scratch: &Path) -> Result<String, String> {
    let grid =
        terminal_qr_grid(text).ok_or_else(|| "no half-block QR code in the output".to_owned())?;
    let mut errors = Vec::new();
    for invert in [false, true] {
        let path = scratch.join(format!("terminal-qr-{}.pgm", u8::from(invert)));
        write_pgm(&grid, invert, 6, &path)
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        match decode_qr_image(&path, scratch) {
            Ok(text) => return Ok(text),
            Err(e) => errors.push(e),
        }
    }
    Err(errors.join("; "))
}

/// Waits until a running command has printed a terminal QR code that decodes, and returns
/// its text; `None` if the command exited without printing one.
///
/// Decoding is tried only when the output has grown and contains a half-block block, so
/// `zbarimg` runs a handful of times at most.
pub fn wait_for_terminal_qr(child: &mut crate::Running, scratch: &Path) -> Option<String> {
    let mut tried_len = usize::MAX;
    let mut found = None;
    child.wait_for("a QR code on stdout", |out, _| {
        if out.len() == tried_len || terminal_qr_grid(out).is_none() {
            return false;
        }
        tried_len = out.len();
        found = decode_terminal_qr(out, scratch).ok();
        found.is_some()
    });
    found
}
