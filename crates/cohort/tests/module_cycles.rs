//! No import circle between the files of the protocol crate, the runtime
//! crate, the simulator, the Erlang bridge or the `cohort` executable
//! (`scripts/module-cycles.py` lists them).

use std::path::Path;
use std::process::Command;

#[test]
fn no_import_circle_between_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("python3")
        .current_dir(&root)
        .arg("scripts/module-cycles.py")
        .args([
            "crates/cohort-proto/src",
            "crates/cohort/src",
            "crates/cohort-sim/src",
            "crates/cohort-erl/src",
            "crates/cohort-cli/src",
        ])
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "import circles:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.matches("no import circle").count(), 5, "{text}");
}
