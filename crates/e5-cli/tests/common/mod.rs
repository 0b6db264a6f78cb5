//! Helpers shared by the CLI's integration tests: the tiny fixture model and a run of `e5`.

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};

pub fn tiny() -> String {
    format!("{}/../../tests/fixtures/tiny-xlmr", env!("CARGO_MANIFEST_DIR"))
}

/// The `e5` binary under test, to be given its arguments and stdio.
pub fn command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_e5"))
}

/// Starts `e5 ARGS` with stdin, stdout and stderr piped.
pub fn spawn(args: &[&str]) -> Child {
    command().args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

/// Runs `e5 ARGS` with `stdin` as its input.
pub fn e5(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = spawn(args);
    // A child that fails before reading its input (bad flags) closes the pipe first.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    child.wait_with_output().unwrap()
}
