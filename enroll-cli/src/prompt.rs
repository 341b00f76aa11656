//! Talking to the person at the terminal: prompts go to stderr (stdout stays clean for
//! scripts), answers are read with a size bound and wiped after use.

use std::io::{BufRead, IsTerminal, Read, Write};

use zeroize::Zeroizing;

use crate::CliError;

/// Longest line read; a code is at most a few dozen characters.
const MAX_LINE: u64 = 1024;

pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// Prints `question` on stderr and reads one line; `None` at end of input.
pub fn ask(question: &str) -> Result<Option<Zeroizing<String>>, CliError> {
    let mut err = std::io::stderr();
    let _ = write!(err, "{question}");
    let _ = err.flush();
    read_line()
}

/// Reads one line of standard input, without its line end; `None` at end of input.
pub fn read_line() -> Result<Option<Zeroizing<String>>, CliError> {
    let mut bytes = Zeroizing::new(Vec::new());
    let n = std::io::stdin()
        .lock()
        .take(MAX_LINE)
        .read_until(b'\n', &mut bytes)
        .map_err(|e| CliError::msg(format!("cannot read from standard input: {e}")))?;
    if n == 0 {
        return Ok(None);
    }
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    let text = String::from_utf8(bytes.to_vec())
        .map_err(|_| CliError::msg("the answer is not valid text"))?;
    Ok(Some(Zeroizing::new(text)))
}

/// Prints `question` on stderr and reads one line without echoing it when stdin is a
/// terminal (a PIN); from a pipe it reads one line as [`ask`] does.
pub fn ask_secret(question: &str) -> Result<Option<Zeroizing<String>>, CliError> {
    use nix::sys::termios::{self, LocalFlags, SetArg};

    let stdin = std::io::stdin();
    let saved = if stdin.is_terminal() {
        termios::tcgetattr(&stdin).ok()
    } else {
        None
    };
    if let Some(saved) = &saved {
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        quiet.local_flags.insert(LocalFlags::ECHONL);
        let _ = termios::tcsetattr(&stdin, SetArg::TCSAFLUSH, &quiet);
    }
    let answer = ask(question);
    if let Some(saved) = &saved {
        let _ = termios::tcsetattr(&stdin, SetArg::TCSAFLUSH, saved);
    }
    answer
}

/// A yes/no question that defaults to no.
pub fn confirm(question: &str) -> Result<bool, CliError> {
    Ok(ask(&format!("{question} [y/N] "))?
        .is_some_and(|a| matches!(a.trim().to_ascii_lowercase().as_str(), "y" | "yes")))
}
