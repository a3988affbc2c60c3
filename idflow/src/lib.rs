//! The `idflow` command's library: [`serve`], the whole product assembled in one local process
//! (`idflow serve`), so the integration tests can start it in-process. The command line itself
//! (`main.rs` and its modules) only parses arguments and calls into the crates under `shared/`.

pub mod serve;
