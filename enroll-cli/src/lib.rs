//! The definition of `mfa`'s command line, and nothing else: `mfa` parses its arguments
//! with it, and `packaging/`'s `gen-docs` makes the mfa(1) manual page and the shell
//! completions from the same definition, so they never drift from `mfa --help`. (The
//! generators stay out of the binary.)

pub mod cli;
