//! The `oversell` command: run, explore, replay, shrink, check, matrix (see `oversell::cli`).

use oversell::designs::Registry;
use std::process::ExitCode;

fn main() -> ExitCode {
    oversell::cli::main(Registry::builtin())
}
