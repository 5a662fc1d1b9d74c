//! The process's open-file limit (`RLIMIT_NOFILE`): every request in flight holds a socket (and
//! through a port-forward, two more: the accepted connection and its stream to the API server),
//! so the limit caps how many requests lmbench can have in flight.
//!
//! At start the soft limit is raised to the hard limit ([`raise_open_file_limit`]): many
//! systems give processes a soft limit of 1,024 under a hard limit of 500,000 or more. A run
//! whose concurrency is known beforehand and does not fit is refused before anything is
//! deployed ([`check_open_files`]); in an open loop, where concurrency is not known
//! beforehand, a connect that fails for want of descriptors says so ([`out_of_files`]) rather
//! than being a bare connect error.
//!
//! A leaf: it imports nothing of the crate, so the client and the command line can both use it.

use nix::errno::Errno;
use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Descriptors kept aside for everything but request connections: the runtime, standard
/// streams, result and log files, engine pipes, the Kubernetes client, listeners.
pub const RESERVED_FILES: u64 = 128;

/// The soft and hard open-file limits after [`raise_open_file_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    /// The limit that applies (`ulimit -Sn`).
    pub soft: u64,
    /// The most the soft limit may be raised to without privileges (`ulimit -Hn`).
    pub hard: u64,
}

/// The current open-file limits, if they can be read.
pub fn open_file_limits() -> Option<OpenFiles> {
    getrlimit(Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(soft, hard)| OpenFiles { soft, hard })
}

/// Raises the soft open-file limit to the hard limit (once at start; later calls change
/// nothing). Returns the limits that apply afterwards.
pub fn raise_open_file_limit() -> Option<OpenFiles> {
    let before = open_file_limits()?;
    if before.soft >= before.hard {
        return Some(before);
    }
    match setrlimit(Resource::RLIMIT_NOFILE, before.hard, before.hard) {
        Ok(()) => tracing::debug!(
            "open-file limit raised from {} to {}",
            before.soft,
            before.hard
        ),
        // macOS refuses an unlimited hard limit as the soft one; the soft limit stays.
        Err(e) => tracing::debug!(
            "cannot raise the open-file limit from {} to {}: {e}",
            before.soft,
            before.hard
        ),
    }
    open_file_limits()
}

/// Refuses `streams` requests in flight at once (each holding `files_per_stream`
/// descriptors) when they cannot fit the soft open-file limit beside [`RESERVED_FILES`]; the
/// message names `what` set that concurrency (a key, an option), the descriptors needed and
/// those available.
pub fn check_open_files(streams: u64, files_per_stream: u64, what: &str) -> Result<(), String> {
    let Some(limits) = open_file_limits() else {
        return Ok(());
    };
    let needed = streams
        .saturating_mul(files_per_stream)
        .saturating_add(RESERVED_FILES);
    if needed <= limits.soft {
        return Ok(());
    }
    let per = if files_per_stream == 1 {
        "one descriptor".to_string()
    } else {
        format!("{files_per_stream} descriptors")
    };
    Err(format!(
        "{what} needs about {needed} open files ({streams} requests in flight, {per} each, plus \
         {RESERVED_FILES} for the rest of lmbench), but only {} are available (open-file limit, \
         RLIMIT_NOFILE; hard limit {}); raise it (`ulimit -n {needed}`, or LimitNOFILE= for a \
         service) or lower {what}",
        limits.soft, limits.hard
    ))
}

/// If `e` (or an error in its chain of causes) is the process or the system running out of
/// file descriptors, what to say about it.
pub fn out_of_files(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            match io.raw_os_error().map(Errno::from_raw) {
                Some(Errno::EMFILE) => {
                    let limit = open_file_limits()
                        .map_or_else(|| "unknown".to_string(), |l| l.soft.to_string());
                    return Some(format!(
                        "out of file descriptors: the open-file limit (RLIMIT_NOFILE) is {limit} \
                         and every request in flight holds one; raise it with `ulimit -n` or \
                         send fewer requests at once"
                    ));
                }
                Some(Errno::ENFILE) => {
                    return Some(
                        "the system's open-file table is full (ENFILE, fs.file-max)".to_string(),
                    )
                }
                _ => {}
            }
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let after = raise_open_file_limit().expect("limits readable");
        assert!(after.soft <= after.hard);
        let again = raise_open_file_limit().unwrap();
        assert_eq!(after, again);
    }

    #[test]
    fn a_concurrency_that_cannot_fit_is_refused_with_the_numbers() {
        let soft = open_file_limits().unwrap().soft;
        assert!(check_open_files(1, 1, "MAX_CONCURRENCY").is_ok());
        let too_many = soft / 2 + 1;
        let e = check_open_files(too_many, 2, "MAX_CONCURRENCY").unwrap_err();
        let needed = too_many * 2 + RESERVED_FILES;
        assert!(
            e.contains("MAX_CONCURRENCY")
                && e.contains(&format!("{needed} open files"))
                && e.contains(&format!("only {soft} are available"))
                && e.contains("RLIMIT_NOFILE"),
            "{e}"
        );
    }

    #[test]
    fn emfile_anywhere_in_the_chain_is_named() {
        #[derive(Debug)]
        struct Wrap(std::io::Error);
        impl std::fmt::Display for Wrap {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("tcp open error")
            }
        }
        impl std::error::Error for Wrap {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Wrap(std::io::Error::from_raw_os_error(Errno::EMFILE as i32));
        let why = out_of_files(&e).unwrap();
        assert!(why.contains("open-file limit (RLIMIT_NOFILE) is"), "{why}");
        let e = Wrap(std::io::Error::from_raw_os_error(
            Errno::ECONNREFUSED as i32,
        ));
        assert_eq!(out_of_files(&e), None);
    }
}
