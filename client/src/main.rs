//! `redline`: the command line for hotline analysts (submit, retract, status, import/export),
//! platforms (hash, match) and auditors (audit). Run `redline --help`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
