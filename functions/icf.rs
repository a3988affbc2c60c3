//! Identical code folding for the functions' binaries, where the linker has it: each function's
//! `build.rs` includes this file and calls [`fold_identical_code`].
//!
//! Monomorphised generics often compile to byte-identical functions (the same future polled for two
//! types of the same layout, the same `drop_in_place` for two wrappers); `--icf=all` keeps one copy.
//! rust-lld, the default linker of `x86_64-unknown-linux-gnu` since Rust 1.90, has the flag; GNU ld
//! (the default of older toolchains) and zig's linker (which `cargo lambda build` uses) refuse it,
//! and a refused flag fails the link. So the flag is given only when a probe program links with
//! it, under the same compiler, target, linker and flags as the real build: a build with any other
//! linker is unchanged.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The linker argument that folds identical functions.
const FLAG: &str = "-Wl,--icf=all";

/// Passes `--icf=all` to the link of this package's binaries when the linker in use accepts it.
pub fn fold_identical_code() {
    println!("cargo:rerun-if-changed=../icf.rs");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    if linker_accepts(FLAG) {
        println!("cargo:rustc-link-arg-bins={FLAG}");
    }
}

/// Whether an empty program links with `flag` added. Any failure to run the probe counts as a no:
/// the build then links as it would without this file.
fn linker_accepts(flag: &str) -> bool {
    let var = |name: &str| std::env::var_os(name);
    let (Some(rustc), Some(out_dir), Some(target)) = (var("RUSTC"), var("OUT_DIR"), var("TARGET"))
    else {
        return false;
    };
    let dir = PathBuf::from(out_dir);
    let source = dir.join("icf_probe.rs");
    if std::fs::write(&source, "fn main() {}\n").is_err() {
        return false;
    }
    let mut probe = Command::new(rustc);
    probe
        .arg("--crate-name=icf_probe")
        .arg("--crate-type=bin")
        .arg("--target")
        .arg(target)
        .arg("-o")
        .arg(dir.join("icf_probe"))
        .arg(format!("-Clink-arg={flag}"))
        .arg(&source);
    if let Some(linker) = var("RUSTC_LINKER") {
        let mut setting = OsString::from("-Clinker=");
        setting.push(linker);
        probe.arg(setting);
    }
    // The flags of the real build (`RUSTFLAGS`, `.cargo/config.toml`) can choose the linker too
    // (`-Clink-arg=-fuse-ld=...`), so the probe links with them.
    if let Some(flags) = std::env::var("CARGO_ENCODED_RUSTFLAGS")
        .ok()
        .filter(|flags| !flags.is_empty())
    {
        probe.args(flags.split('\u{1f}'));
    }
    probe
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}
