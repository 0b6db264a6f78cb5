//! Hostile environments and flags for the `e5` binary (issue 18; the library's families are
//! in tests/tests/hostile.rs): a full or closed stdout, out-of-range flags, `quantize` over
//! its source. Each exits 1 with one clear line on stderr, never a panic or a hang.

mod common;

use common::{command, e5, spawn, tiny};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

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
    let o = command().args(["info", "-m", &tiny()]).stdout(full).stderr(Stdio::piped()).output().unwrap();
    fails_cleanly(&o, &["writing to stdout", "No space left"]);
    // `e5 info | true`: the reader is gone before e5 writes.
    let mut child =
        command().args(["info", "-m", &tiny()]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    fails_cleanly(&o, &["writing to stdout", "Broken pipe"]);
}

#[test]
fn out_of_range_flags() {
    for threads in ["0", "5000", "100000"] {
        let o = e5(&["info", "-m", &tiny(), "--threads", threads], b"");
        fails_cleanly(&o, &["threads", threads]);
    }
    let workload = format!("{}/../../benches/workload.jsonl", env!("CARGO_MANIFEST_DIR"));
    for seconds in ["inf", "NaN", "-1", "1e9"] {
        let o = e5(&["bench", "-m", &tiny(), "--workload", &workload, &format!("--seconds={seconds}")], b"");
        fails_cleanly(&o, &["--seconds"]);
    }
}

#[test]
fn os_errors_are_printed_once() {
    let o = command().args(["info", "-m", "/proc/self/nonexistent-model-dir"]).output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), "{}").unwrap();
    std::fs::create_dir(dir.path().join("tokenizer.json")).unwrap();
    std::fs::write(dir.path().join("config.json"), std::fs::read(format!("{}/config.json", tiny())).unwrap()).unwrap();
    let o = command().args(["info", "-m", dir.path().to_str().unwrap()]).output().unwrap();
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
    let o = command().args(["quantize", "-m", s, "--precision", "int8", "--out", s, "--force"]).output().unwrap();
    fails_cleanly(&o, &["is the source"]);
    assert_eq!(std::fs::read(src.path().join("model.safetensors")).unwrap(), before);
    assert!(std::fs::read(src.path().join("config.json")).unwrap().len() > 100);

    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("notes"), "keep").unwrap();
    let q = |force: bool| {
        let mut c = command();
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

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dst = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dst);
        } else {
            std::fs::copy(&p, &dst).unwrap();
        }
    }
}

/// `--residency copy`: a long `e5 embed` survives its model file being truncated in place
/// and then overwritten by `cp` with other weights, and every vector is the one of the
/// model as loaded.
#[test]
fn a_long_embed_survives_truncate_and_cp_over_its_model_file() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(Path::new(&tiny()), dir.path());
    let weights = dir.path().join("model.safetensors");
    let lines = 20_000;
    let input: String = (0..lines).map(|i| format!("text number {}\n", i % 7)).collect();
    let mut child = spawn(&["embed", "-m", dir.path().to_str().unwrap(), "--residency", "copy"]);
    // Written from a thread: `e5 embed` streams, so it blocks on a full stdout until read.
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    // Embedding is under way: truncate the file in place, then `cp` other weights over it.
    std::fs::OpenOptions::new().write(true).open(&weights).unwrap().set_len(0).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    let other = format!("{}/../../tests/fixtures/tiny-bert/model.safetensors", env!("CARGO_MANIFEST_DIR"));
    assert!(Command::new("cp").arg(&other).arg(&weights).status().unwrap().success());
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(o.status.success(), "{:?} {}", o.status, stderr(&o));
    let rows: Vec<&str> = std::iter::once(first.trim_end()).chain(rest.lines()).collect();
    assert_eq!(rows.len(), lines);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(*r, rows[i % 7], "row {i} differs from the same text embedded before the change");
    }
}

/// One 20 MB line, truncated to the model's limit, stays within a few times its size
/// (it took 2.5 GB when the whole line was tokenized at once).
#[test]
fn a_20_mb_line_is_embedded_in_bounded_memory() {
    let line = "lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(20 << 20 >> 6);
    let mut child = spawn(&["embed", "-m", &tiny(), "--kind", "passage"]);
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(line.as_bytes()));
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("truncated"), "{}", stderr(&o));
    // SAFETY: getrusage only fills the struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) }, 0);
    let peak_mib = usage.ru_maxrss as usize / 1024;
    assert!(peak_mib < 400, "peak resident {peak_mib} MiB for a 20 MB line");
}
