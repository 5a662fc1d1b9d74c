//! How a tool call failed, and the text that says so: the command line as a shell would read
//! it, the tail of its output, a hint on installing a missing tool — everything redacted.

use std::io;
use std::process::ExitStatus;
use std::time::Duration;

use super::{ToolOutput, TAIL_CHARS, TAIL_LINES};

/// Why a tool call failed. Commands and output in it are redacted.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The program is not on the search path.
    #[error("`{program}` not found: {hint}")]
    NotFound {
        /// The program as asked for.
        program: String,
        /// How to install it, and where it was looked for.
        hint: String,
    },
    /// The tool did not finish in time and was killed.
    #[error("`{command}` did not finish within {}s and was killed{}", timeout.as_secs_f64(), quote_tail(stderr_tail))]
    Timeout {
        /// The program as asked for.
        program: String,
        /// The command line, redacted.
        command: String,
        /// The deadline it had.
        timeout: Duration,
        /// The last lines of its stderr (stdout when stderr was empty), redacted.
        stderr_tail: String,
    },
    /// The call was cancelled (Ctrl-C) and the tool killed.
    #[error("`{command}` was interrupted and killed")]
    Cancelled {
        /// The program as asked for.
        program: String,
        /// The command line, redacted.
        command: String,
    },
    /// The tool exited unsuccessfully.
    #[error("`{command}` failed ({status}){}", quote_tail(stderr_tail))]
    Failed {
        /// The program as asked for.
        program: String,
        /// The command line, redacted.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// The last lines of its stderr (stdout when stderr was empty), redacted.
        stderr_tail: String,
    },
    /// The tool printed something the caller could not read.
    #[error("`{command}` printed output that could not be read: {message}")]
    BadOutput {
        /// The program as asked for.
        program: String,
        /// The command line, redacted.
        command: String,
        /// What was expected.
        message: String,
    },
    /// Starting or waiting for the tool, or writing the log, failed.
    #[error("`{command}`: {context}: {source}")]
    Io {
        /// The program as asked for.
        program: String,
        /// The command line, redacted.
        command: String,
        /// What was being done.
        context: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl ToolError {
    /// The program the failed call ran.
    pub fn program(&self) -> &str {
        match self {
            ToolError::NotFound { program, .. }
            | ToolError::Timeout { program, .. }
            | ToolError::Cancelled { program, .. }
            | ToolError::Failed { program, .. }
            | ToolError::BadOutput { program, .. }
            | ToolError::Io { program, .. } => program,
        }
    }

    /// Was the call cancelled?
    pub fn is_cancelled(&self) -> bool {
        matches!(self, ToolError::Cancelled { .. })
    }
}

fn quote_tail(tail: &str) -> String {
    if tail.trim().is_empty() {
        String::new()
    } else {
        format!(":\n{}", tail.trim_end())
    }
}

/// How to get a missing tool.
pub fn hint_for(program: &str) -> &'static str {
    match program {
        "kubectl" => "install kubectl (1-infrastructure/local-minikube/install-kubectl.sh puts it in ~/.local/bin); ",
        "helm" => "install helm (1-infrastructure/local-minikube/install-helm.sh puts it in ~/.local/bin); ",
        "minikube" => "install minikube (1-infrastructure/local-minikube/install-minikube.sh puts it in ~/.local/bin); ",
        "gcloud" => "install the Google Cloud CLI (https://cloud.google.com/sdk/docs/install), then `gcloud auth login` and `gcloud config set project <id>`; ",
        "docker" => "install Docker Engine (https://docs.docker.com/engine/install/) and let this user run `docker ps`; ",
        _ => "",
    }
}

/// The command line as a shell would read it, each argument redacted then quoted.
pub fn display_command(program: &str, args: &[String], redact: &[String]) -> String {
    let mut s = shell_quote(&redact_with(program, redact));
    for a in args {
        s.push(' ');
        s.push_str(&shell_quote(&redact_with(a, redact)));
    }
    redact_with(&s, redact)
}

fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=,@%+*".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

pub(super) fn redact_with(text: &str, redact: &[String]) -> String {
    let mut out = text.to_string();
    for r in redact {
        if !r.is_empty() && out.contains(r.as_str()) {
            out = out.replace(r.as_str(), "***");
        }
    }
    out
}

/// The last lines of stderr (or of stdout when stderr is empty), redacted and bounded.
pub(super) fn tail(out: &ToolOutput, redact: &[String]) -> String {
    let text = if out.stderr.trim().is_empty() {
        &out.stdout
    } else {
        &out.stderr
    };
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let from = lines.len().saturating_sub(TAIL_LINES);
    let joined = redact_with(&lines[from..].join("\n"), redact);
    if joined.chars().count() > TAIL_CHARS {
        let skip = joined.chars().count() - TAIL_CHARS;
        format!("…{}", joined.chars().skip(skip).collect::<String>())
    } else {
        joined
    }
}
