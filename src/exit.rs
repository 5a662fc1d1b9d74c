//! How `lmbench` ends: its exit codes, and the one way it prints to stdout.
//!
//! stdout carries only what scripts read (result paths, the plan, `validate`'s verdict);
//! everything else goes to stderr. This module imports nothing of the crate, so every stage
//! (the suite loop, `report`, `sim`) can use it without importing another.

use std::io::Write;

/// The process's exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitCode {
    /// 0: everything ran.
    Ok,
    /// 1: at least one run, deployment, report or upload failed (the others still ran).
    RunFailed,
    /// 2: bad configuration or arguments; nothing was deployed.
    BadInput,
    /// 130: interrupted by Ctrl-C or SIGTERM.
    Interrupted,
}

impl ExitCode {
    /// The numeric status.
    pub fn code(self) -> u8 {
        match self {
            ExitCode::Ok => 0,
            ExitCode::RunFailed => 1,
            ExitCode::BadInput => 2,
            ExitCode::Interrupted => 130,
        }
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(c: ExitCode) -> Self {
        std::process::ExitCode::from(c.code())
    }
}

/// Print one line to stdout; a closed pipe (`lmbench plan | head`) is not an error.
pub fn out(line: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_ones() {
        let all = [
            ExitCode::Ok,
            ExitCode::RunFailed,
            ExitCode::BadInput,
            ExitCode::Interrupted,
        ];
        assert_eq!(all.map(ExitCode::code), [0, 1, 2, 130]);
    }
}
