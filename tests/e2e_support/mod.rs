//! Runs one end-to-end scenario script through `tests/e2e/ns` (its own throwaway namespace)
//! and fails the test, with everything the scenario said, unless it exits 0.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `tests/e2e/scenarios/NAME.sh` with the built keyward and `env` added.
pub fn scenario_with(name: &str, env: &[(&str, &str)]) {
    run_scenario("tests/e2e/ns", name, env);
}

/// Runs scenario NAME through `runner` (a namespace runner under tests/e2e) and fails the test,
/// with everything it said, unless it exits 0; returns what it said.
pub fn run_scenario(runner: &str, name: &str, env: &[(&str, &str)]) -> String {
    let script = repo()
        .join("tests/e2e/scenarios")
        .join(format!("{name}.sh"));
    let mut command = Command::new(repo().join(runner));
    command.arg(script);
    run_checked(command, &format!("scenario {name}"), env)
}

/// Runs `command` with the built keyward (`KEYWARD_BIN`), `env` added and no stdin, and fails
/// the test, with everything it said, unless it exits 0; returns what it said.
pub fn run_checked(mut command: Command, what: &str, env: &[(&str, &str)]) -> String {
    let started = Instant::now();
    let out = command
        .env("KEYWARD_BIN", env!("CARGO_BIN_EXE_keyward"))
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e} (run scripts/test)"));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed ({}) after {:.1?}; its output:\n{said}",
        out.status,
        started.elapsed()
    );
    said
}

pub fn scenario(name: &str) {
    scenario_with(name, &[]);
}
