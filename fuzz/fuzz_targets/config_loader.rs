//! Fuzz the configuration loader: any spec text, through parsing, validation and planning,
//! must give a configuration or a list of issues — never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

/// A folder with a run-bench.yaml listing one spec file, written once per process.
fn root() -> &'static PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("lmbench-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("0-bench-specs")).unwrap();
        std::fs::create_dir_all(dir.join("2-serving-engines/flat")).unwrap();
        std::fs::write(dir.join("2-serving-engines/flat/run.sh"), "exec true\n").unwrap();
        std::fs::write(
            dir.join("run-bench.yaml"),
            "0-bench-specs:\n  - spec.yaml\n1-infrastructure:\n  Location: Local-Flat\n",
        )
        .unwrap();
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let root = root();
    std::fs::write(root.join("0-bench-specs/spec.yaml"), text).unwrap();
    match lmbench::suite::load(&root.join("run-bench.yaml"), Some("hf_fuzz_token_value")) {
        Ok(cfg) => {
            let plan = lmbench::plan::build(&cfg, "lmbench-1-00000000".into());
            let _ = lmbench::plan::render_table(&plan);
            let _ = serde_json::to_string(&plan.to_json());
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains("hf_fuzz_token_value"), "token in an error message");
        }
    }
});
