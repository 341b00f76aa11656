//! The native part of pam_mfa: libudev loaded on demand (`native/udev_lazy.c`), so that
//! loading pam_mfa.so, which every login does, no longer loads libudev too (see
//! docs/performance.md).

fn main() {
    println!("cargo:rerun-if-changed=native/udev_lazy.c");
    println!("cargo:rerun-if-changed=build.rs");
    // Linked whole, so its definitions are in place before the linker meets hidapi's
    // references to libudev, and `--as-needed` then leaves libudev out of the module.
    cc::Build::new()
        .file("native/udev_lazy.c")
        .flag("-fvisibility=hidden")
        .warnings(true)
        .extra_warnings(true)
        .cargo_metadata(false)
        .compile("pam_mfa_udev_lazy");
    let out = std::env::var("OUT_DIR").unwrap_or_default();
    println!("cargo:rustc-link-search=native={out}");
    println!("cargo:rustc-link-lib=static:+whole-archive=pam_mfa_udev_lazy");
}
