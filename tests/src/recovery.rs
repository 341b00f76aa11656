//! Reading recovery and bypass codes out of `mfa`'s output, as a person copies them.

/// The grouped codes (`xxxx-xxxx-xxxx`) in `mfa` output, in order.
pub fn codes_in(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| w.trim_end_matches(['.', ',']))
        .filter(|w| {
            w.len() == 14
                && w.split('-').count() == 3
                && w.split('-').all(|g| {
                    g.len() == 4
                        && g.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                })
        })
        .map(str::to_owned)
        .collect()
}
