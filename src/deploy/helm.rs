//! The `helm` command-line tool, run through [`ToolEnv`](super::tools::ToolEnv).
//!
//! There is no Helm library for Rust, so releases are installed and removed by the `helm`
//! binary. `upgrade --install` is used without `--wait`: whether the pods became ready is
//! checked through the Kubernetes API elsewhere, with its own deadline and diagnostics.
//!
//! Values files hold `<YOUR_HF_TOKEN>`; [`substituted_copy`] writes the token-substituted
//! copy helm reads into a private folder (0700, file 0600) and deletes it when dropped, so the
//! token lives on disk only while helm needs it.

use std::fs::{DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::tools::{display_command, RunOpts, ToolEnv, ToolError, ToolOutput};

/// Extra time the tool call gets beyond helm's own `--timeout`, for helm's start-up and
/// API round trips.
const CALL_SLACK: Duration = Duration::from_secs(60);
/// Deadline of calls that take no timeout argument (uninstall, repo, list).
const SHORT_CALL: Duration = Duration::from_secs(300);

/// The helm CLI, optionally pinned to one kubeconfig context.
#[derive(Debug, Clone)]
pub struct Helm<'a> {
    tools: &'a ToolEnv,
    kube_context: Option<String>,
}

/// One release as `helm list` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct HelmRelease {
    /// Release name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// `deployed`, `failed`, `pending-install`, …
    #[serde(default)]
    pub status: String,
    /// Chart name and version, e.g. `vllm-stack-0.1.5`.
    #[serde(default)]
    pub chart: String,
    /// The revision number (helm prints it as a string).
    #[serde(default)]
    pub revision: String,
}

impl<'a> Helm<'a> {
    /// helm from `tools`, using the kubeconfig's current context.
    pub fn new(tools: &'a ToolEnv) -> Self {
        Helm {
            tools,
            kube_context: None,
        }
    }

    /// Pass `--kube-context <context>` to every call (when `Some`).
    pub fn with_kube_context(mut self, context: Option<&str>) -> Self {
        self.kube_context = context.map(str::to_string);
        self
    }

    fn context_args(&self, args: &mut Vec<String>) {
        if let Some(c) = &self.kube_context {
            args.push("--kube-context".into());
            args.push(c.clone());
        }
    }

    /// Install `chart` as `release`, or upgrade it when it exists:
    /// `helm upgrade --install <release> <chart> -f <values> [--namespace ns --create-namespace]
    /// --timeout <t>s`. No `--wait`: readiness is checked elsewhere.
    pub async fn upgrade_install(
        &self,
        release: &str,
        chart: &str,
        namespace: Option<&str>,
        values_file: &Path,
        timeout: Duration,
    ) -> Result<ToolOutput, ToolError> {
        let mut args: Vec<String> = vec![
            "upgrade".into(),
            "--install".into(),
            release.into(),
            chart.into(),
            "-f".into(),
            values_file.to_string_lossy().into_owned(),
        ];
        if let Some(ns) = namespace {
            args.extend(["--namespace".into(), ns.into(), "--create-namespace".into()]);
        }
        args.extend(["--timeout".into(), format!("{}s", timeout.as_secs().max(1))]);
        self.context_args(&mut args);
        self.tools
            .run("helm", &args, RunOpts::new().timeout(timeout + CALL_SLACK))
            .await
    }

    /// Remove `release`: `helm uninstall <release> [--namespace ns] [--wait]
    /// --ignore-not-found` (a release that is already gone is not an error).
    pub async fn uninstall(
        &self,
        release: &str,
        namespace: Option<&str>,
        wait: bool,
    ) -> Result<(), ToolError> {
        let mut args: Vec<String> = vec!["uninstall".into(), release.into()];
        if let Some(ns) = namespace {
            args.extend(["--namespace".into(), ns.into()]);
        }
        if wait {
            args.push("--wait".into());
        }
        args.push("--ignore-not-found".into());
        self.context_args(&mut args);
        self.tools
            .run("helm", &args, RunOpts::new().timeout(SHORT_CALL))
            .await
            .map(drop)
    }

    /// `helm repo add <name> <url> --force-update` (re-adding an existing repo is fine).
    pub async fn repo_add(&self, name: &str, url: &str) -> Result<(), ToolError> {
        let args: Vec<String> = vec![
            "repo".into(),
            "add".into(),
            name.into(),
            url.into(),
            "--force-update".into(),
        ];
        self.tools
            .run("helm", &args, RunOpts::new().timeout(SHORT_CALL))
            .await
            .map(drop)
    }

    /// `helm repo update`.
    pub async fn repo_update(&self) -> Result<(), ToolError> {
        let args: Vec<String> = vec!["repo".into(), "update".into()];
        self.tools
            .run("helm", &args, RunOpts::new().timeout(SHORT_CALL))
            .await
            .map(drop)
    }

    /// Every release in every namespace, whatever its state
    /// (`helm list --all-namespaces --all -o json`).
    pub async fn list_releases(&self) -> Result<Vec<HelmRelease>, ToolError> {
        let mut args: Vec<String> = vec![
            "list".into(),
            "--all-namespaces".into(),
            "--all".into(),
            "-o".into(),
            "json".into(),
        ];
        self.context_args(&mut args);
        let out = self
            .tools
            .run("helm", &args, RunOpts::new().timeout(SHORT_CALL))
            .await?;
        let text = out.stdout.trim();
        if text.is_empty() {
            return Ok(Vec::new());
        }
        serde_json::from_str(text).map_err(|e| ToolError::BadOutput {
            program: "helm".into(),
            command: display_command("helm", &args, &[]),
            message: format!("expected a JSON list of releases: {e}"),
        })
    }
}

/// A file in a private folder (mode 0700, file 0600), deleted with its folder when dropped.
#[derive(Debug)]
pub struct PrivateFile {
    dir: PathBuf,
    path: PathBuf,
}

impl PrivateFile {
    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PrivateFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!("could not delete {}: {e}", self.path.display());
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Why [`substituted_copy`] failed. Never contains the file's content.
#[derive(Debug, thiserror::Error)]
#[error("{what} {}: {source}", path.display())]
pub struct CopyError {
    /// What was being done (`reading`, `writing the private copy of`, …).
    pub what: &'static str,
    /// The file concerned.
    pub path: PathBuf,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

/// Copy `src` into a new private folder under the system temp folder, replacing every
/// occurrence of each `(token, value)` pair's token by its value, in order. The copy keeps
/// `src`'s file name, is readable by this user only, and is deleted (with its folder) when
/// the returned [`PrivateFile`] is dropped.
pub fn substituted_copy(
    src: &Path,
    replacements: &[(&str, &str)],
) -> Result<PrivateFile, CopyError> {
    let mut text = std::fs::read_to_string(src).map_err(|source| CopyError {
        what: "reading",
        path: src.to_path_buf(),
        source,
    })?;
    for (token, value) in replacements {
        if !token.is_empty() {
            text = text.replace(token, value);
        }
    }
    let dir = private_dir()?;
    let name = src
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "values.yaml".into());
    // From here on `file` owns the folder, so an error below still removes it.
    let file = PrivateFile {
        path: dir.join(name),
        dir,
    };
    let write_err = |source| CopyError {
        what: "writing the private copy",
        path: file.path.clone(),
        source,
    };
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&file.path)
        .map_err(write_err)?;
    // The mode above is filtered by the umask; state it exactly.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(write_err)?;
    f.write_all(text.as_bytes()).map_err(write_err)?;
    f.flush().map_err(write_err)?;
    Ok(file)
}

/// A new folder `lmbench-<pid>-<time>-<n>` (mode 0700) in the system temp folder.
fn private_dir() -> Result<PathBuf, CopyError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = std::env::temp_dir();
    let mut last = None;
    for _ in 0..32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("lmbench-{}-{nanos:08x}-{n}", std::process::id()));
        match DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(source) => {
                return Err(CopyError {
                    what: "creating a private folder in",
                    path: base,
                    source,
                })
            }
        }
    }
    Err(CopyError {
        what: "creating a private folder in",
        path: base,
        source: last.unwrap_or_else(|| io::Error::other("no free name")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substituted_copy_is_private_and_deleted_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("values.yaml");
        std::fs::write(
            &src,
            "hf_token: <YOUR_HF_TOKEN>\nb64: <YOUR_HF_TOKEN_BASE64>\nagain: <YOUR_HF_TOKEN>\n",
        )
        .unwrap();
        let copy = substituted_copy(
            &src,
            &[
                ("<YOUR_HF_TOKEN_BASE64>", "aGZfeHl6"),
                ("<YOUR_HF_TOKEN>", "hf_xyz"),
            ],
        )
        .unwrap();
        let path = copy.path().to_path_buf();
        let parent = path.parent().unwrap().to_path_buf();
        assert_eq!(path.file_name().unwrap(), "values.yaml");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "hf_token: hf_xyz\nb64: aGZfeHl6\nagain: hf_xyz\n"
        );
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&parent), 0o700);
        // The source is untouched.
        assert!(std::fs::read_to_string(&src)
            .unwrap()
            .starts_with("hf_token: <YOUR_HF_TOKEN>"));
        let other = substituted_copy(&src, &[]).unwrap();
        assert_ne!(other.path(), copy.path());
        drop(copy);
        assert!(!path.exists());
        assert!(!parent.exists());
    }

    #[test]
    fn missing_source_names_the_file() {
        let err = substituted_copy(Path::new("/nonexistent/v.yaml"), &[("<T>", "secret")])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("reading /nonexistent/v.yaml: "), "{err}");
        assert!(!err.contains("secret"));
    }
}
