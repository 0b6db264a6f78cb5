//! Hostile environments and flags for the `e5` binary (issue 18; the library's families are
//! in tests/tests/hostile.rs): a full or closed stdout, out-of-range flags, `quantize` over
//! its source. Each exits 1 with one clear line on stderr, never a panic or a hang.

use std::process::{Command, Output, Stdio};

fn tiny() -> String {
    format!("{}/../../tests/fixtures/tiny-xlmr", env!("CARGO_MANIFEST_DIR"))
}

fn e5() -> Command {
    Command::new(env!("CARGO_BIN_EXE_e5"))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit status 1 and exactly one line on stderr, which contains every `needle`.
fn fails_cleanly(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in {err}");
    }
}

#[test]
fn info_to_a_full_device_or_a_closed_pipe() {
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let o = e5().args(["info", "-m", &tiny()]).stdout(full).stderr(Stdio::piped()).output().unwrap();
    fails_cleanly(&o, &["writing to stdout", "No space left"]);
    // `e5 info | true`: the reader is gone before e5 writes.
    let mut child = e5().args(["info", "-m", &tiny()]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    fails_cleanly(&o, &["writing to stdout", "Broken pipe"]);
}

#[test]
fn out_of_range_flags() {
    for threads in ["0", "5000", "100000"] {
        let o = e5().args(["info", "-m", &tiny(), "--threads", threads]).output().unwrap();
        fails_cleanly(&o, &["threads", threads]);
    }
    let workload = format!("{}/../../benches/workload.jsonl", env!("CARGO_MANIFEST_DIR"));
    for seconds in ["inf", "NaN", "-1", "1e9"] {
        let o = e5()
            .args(["bench", "-m", &tiny(), "--workload", &workload, &format!("--seconds={seconds}")])
            .output()
            .unwrap();
        fails_cleanly(&o, &["--seconds"]);
    }
}

#[test]
fn os_errors_are_printed_once() {
    let o = e5().args(["info", "-m", "/proc/self/nonexistent-model-dir"]).output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), "{}").unwrap();
    std::fs::create_dir(dir.path().join("tokenizer.json")).unwrap();
    std::fs::write(dir.path().join("config.json"), std::fs::read(format!("{}/config.json", tiny())).unwrap()).unwrap();
    let o = e5().args(["info", "-m", dir.path().to_str().unwrap()]).output().unwrap();
    fails_cleanly(&o, &["tokenizer.json", "is a directory"]);
    let err = stderr(&o);
    assert_eq!(err.matches("is a directory").count(), 1, "{err}");
}

#[test]
fn quantize_refuses_its_source_and_a_non_empty_output() {
    let src = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(format!("{}/{f}", tiny()), src.path().join(f)).unwrap();
    }
    let before = std::fs::read(src.path().join("model.safetensors")).unwrap();
    let s = src.path().to_str().unwrap();
    let o = e5().args(["quantize", "-m", s, "--precision", "int8", "--out", s, "--force"]).output().unwrap();
    fails_cleanly(&o, &["is the source"]);
    assert_eq!(std::fs::read(src.path().join("model.safetensors")).unwrap(), before);
    assert!(std::fs::read(src.path().join("config.json")).unwrap().len() > 100);

    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("notes"), "keep").unwrap();
    let q = |force: bool| {
        let mut c = e5();
        c.args(["quantize", "-m", s, "--precision", "int8", "--out", out.path().to_str().unwrap()]);
        if force {
            c.arg("--force");
        }
        c.output().unwrap()
    };
    fails_cleanly(&q(false), &["non-empty", "--force"]);
    assert!(out.path().join("notes").exists());
    let o = q(true);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.path().join("e5-quantization.json").exists());
}
