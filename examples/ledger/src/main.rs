//! `oversell` with the ledger design registered: every command takes `--design ledger`.

use oversell::designs::Registry;
use oversell_ledger::Ledger;
use std::process::ExitCode;

fn main() -> ExitCode {
    oversell::cli::main(Registry::builtin().with(Box::new(Ledger)))
}
