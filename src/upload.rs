//! Upload of result files to a dashboard (under construction).

use std::path::{Path, PathBuf};

/// What an upload did.
#[derive(Debug, Clone, Default)]
pub struct UploadSummary {
    /// Files accepted by the server.
    pub uploaded: Vec<PathBuf>,
}

/// Upload one result file, or every result JSON in a folder, to `url` (LMBench's protocol:
/// `GET <base>/health`, then a multipart POST with field `file` per JSON). Any failure is an
/// error.
pub async fn upload_path(
    _path: &Path,
    _url: &str,
    _token: Option<&str>,
) -> anyhow::Result<UploadSummary> {
    anyhow::bail!("upload is not implemented yet")
}
