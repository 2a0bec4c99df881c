//! The `oversell` command: run, explore, replay, shrink, check, matrix (see `oversell::cli`).

use oversell::cli::Registry;
use std::process::ExitCode;

fn main() -> ExitCode {
    oversell::cli::main(Registry::builtin())
}
