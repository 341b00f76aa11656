//! Module argument parsing: the input is the argument vector, NUL-separated, as PAM hands
//! it over (one C string per argument, so an argument never contains a NUL itself).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_mfa_module::args::{self, MAX_WINDOW};

fuzz_target!(|data: &[u8]| {
    let argv: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    if let Ok(parsed) = args::parse(argv.iter().copied()) {
        // Whatever it accepts is within the documented limits.
        assert!(parsed.db.is_absolute(), "{parsed:?}");
        assert!(parsed.socket.is_absolute(), "{parsed:?}");
        assert!((1..=60).contains(&parsed.timeout), "{parsed:?}");
        assert!(parsed.settings.window <= MAX_WINDOW, "{parsed:?}");
        assert!((1..=120).contains(&parsed.fido2_timeout), "{parsed:?}");
        let _ = parsed.overrides();
        // Parsing is a function of its input.
        assert_eq!(args::parse(argv.iter().copied()).ok(), Some(parsed));
    }
});
