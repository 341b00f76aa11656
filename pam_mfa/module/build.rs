//! Links GCC's unwinder into the module statically (`libgcc_eh.a`, as `gcc
//! -static-libgcc` does), instead of the `libgcc_s.so.1` Rust's standard library asks for.
//!
//! The module is loaded and unloaded at every login (`pam_start` … `pam_end`), and the
//! programs that load it (sshd, sudo, su, login: C programs) do not have `libgcc_s.so.1`
//! loaded, so every login loaded and unloaded it as well: 192 µs per `dlopen` +
//! `dlclose` of the module in a C program here, against 93 µs without it (the
//! benchmark's host, a Rust program, has it loaded already, which hid the cost). Panics
//! still unwind to the module's panic guard: the unwinder is in the module, hidden
//! (the module exports only the `pam_sm_*` functions), and finds the module's unwind
//! tables as the shared one would (`dl_iterate_phdr`). Without a `libgcc_eh.a` the
//! module links `libgcc_s.so.1` as before.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=CC");
    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os != "linux" || target_env != "gnu" {
        return;
    }
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let Ok(out) = Command::new(&cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
    else {
        println!("cargo::warning=cannot run {cc}: the module links libgcc_s.so.1");
        return;
    };
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let archive = Path::new(&printed);
    // The compiler prints the bare name back when it has no such file.
    match archive.parent() {
        Some(dir) if out.status.success() && archive.is_absolute() && archive.is_file() => {
            println!("cargo::rustc-link-search=native={}", dir.display());
            // Not bundled into the rlib: whoever links the module gets it from the
            // compiler's directory, before the standard library asks for libgcc_s.
            println!("cargo::rustc-link-lib=static:-bundle=gcc_eh");
        }
        _ => println!("cargo::warning=no libgcc_eh.a: the module links libgcc_s.so.1"),
    }
}
