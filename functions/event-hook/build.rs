//! Links the function with identical code folding where the linker has it (see `../icf.rs`).

#[path = "../icf.rs"]
mod icf;

fn main() {
    icf::fold_identical_code();
}
