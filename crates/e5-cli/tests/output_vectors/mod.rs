//! (A module of the `corpus` test binary: one link fewer.)
//! `e5 calibrate-output` and `e5 embed --output-precision`: every precision through JSONL,
//! .npy and Parquet holds what the library's `e5::output::quantize` computes from the float32
//! vectors (which tests/tests/output_vectors/mod.rs holds to sentence-transformers, bit for bit).

use arrow_array::cast::AsArray;
use arrow_array::types::{Int8Type, UInt8Type};
use arrow_array::{Array, RecordBatch, StringArray};
use e5::{OutputPrecision, OutputRanges, VectorData};
use std::path::Path;
use std::sync::Arc;

use super::common::{e5, tiny};
use super::{failed, ok};

/// A copy of the tiny model's directory (its ranges file is written into it).
fn model_copy(to: &Path) -> String {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let p = e.unwrap().path();
            let dst = to.join(p.file_name().unwrap());
            if p.is_dir() {
                copy(&p, &dst)
            } else {
                std::fs::copy(&p, &dst).unwrap();
            }
        }
    }
    copy(Path::new(&tiny()), to);
    to.to_str().unwrap().to_string()
}

fn texts(n: usize) -> String {
    (0..n).map(|i| format!("document {i}: {}\n", "quick brown fox ".repeat(i % 5))).collect()
}

/// The body (after the header) of a `.npy` file and its header text.
fn npy(path: &Path) -> (String, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    (String::from_utf8_lossy(&bytes[10..10 + len]).into_owned(), bytes[10 + len..].to_vec())
}

#[test]
fn every_output_precision_through_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_copy(&dir.path().join("model"));
    let input = dir.path().join("texts.txt");
    std::fs::write(&input, texts(40)).unwrap();
    let input = input.to_str().unwrap();
    let embed = |precision: &str, format: &str, out: &Path| {
        let args = ["embed", "-m", &model, "--kind", "passage", "-i", input, "--format", format, "-o"];
        let mut args = args.to_vec();
        args.extend([out.to_str().unwrap(), "--output-precision", precision]);
        e5(&args, b"")
    };

    // int8 before calibration: refused before any input is read, naming the file and the fix.
    let err = failed(&embed("int8", "npy", &dir.path().join("x.npy")));
    assert!(err.contains(OutputRanges::FILE) && err.contains("e5 calibrate-output"), "{err}");
    let err = failed(&e5(&["embed", "-m", &model, "--output-precision", "int4"], b""));
    assert!(err.contains("float32, int8, uint8, binary, ubinary"), "{err}");

    let calibrate = ["calibrate-output", "-m", &model, "--kind", "passage", "--texts", input];
    let err = ok(&e5(&calibrate, b""));
    assert!(err.contains("40 vectors, 32 dimensions, normalized") && err.contains("100 or more"), "{err}");
    assert!(failed(&e5(&calibrate, b"")).contains("--force"));
    let mut again = calibrate.to_vec();
    again.push("--force");
    ok(&e5(&again, b""));
    let ranges = OutputRanges::load(Path::new(&model)).unwrap();
    assert_eq!((ranges.vectors, ranges.dim(), ranges.normalized), (40, 32, true));

    let float = dir.path().join("f.npy");
    ok(&embed("float32", "npy", &float));
    let (header, body) = npy(&float);
    assert!(header.contains("'descr': '<f4'") && header.contains("(40, 32)"), "{header}");
    let vectors: Vec<f32> = body.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();

    for p in OutputPrecision::ALL {
        let expected = e5::output::quantize(vectors.clone(), 32, p, Some(&ranges)).unwrap();
        let width = p.width(32);
        // .npy: dtype and shape, then the rows.
        let out = dir.path().join(format!("{}.npy", p.name()));
        ok(&embed(p.name(), "npy", &out));
        let (header, body) = npy(&out);
        let descr = match expected.data {
            VectorData::F32(_) => "<f4",
            VectorData::I8(_) => "|i1",
            VectorData::U8(_) => "|u1",
        };
        assert!(
            header.contains(&format!("'descr': '{descr}'")) && header.contains(&format!("(40, {width})")),
            "{header}"
        );
        assert_eq!(body, expected.le_bytes(), "{} npy", p.name());
        // JSONL: one array of numbers per line.
        let out = dir.path().join(format!("{}.jsonl", p.name()));
        ok(&embed(p.name(), "jsonl", &out));
        let rows: Vec<Vec<serde_json::Value>> = std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Vec<serde_json::Value>>(l).unwrap())
            .collect();
        // f32 in shortest round-trip form: read back as f64, then f32, it is the same value.
        let flat: Vec<f32> = rows.iter().flatten().map(|v| v.as_f64().unwrap() as f32).collect();
        let want: Vec<f32> = match &expected.data {
            VectorData::F32(v) => v.clone(),
            VectorData::I8(v) => v.iter().map(|&x| x as f32).collect(),
            VectorData::U8(v) => v.iter().map(|&x| x as f32).collect(),
        };
        assert_eq!((rows.len(), flat), (40, want), "{} jsonl", p.name());
        if p != OutputPrecision::Float32 {
            assert!(rows.iter().flatten().all(|v| v.is_i64() || v.is_u64()), "{} jsonl holds integers", p.name());
        }
    }
}

#[test]
fn parquet_columns_of_every_output_precision() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_copy(&dir.path().join("model"));
    let texts: Vec<String> = texts(30).lines().map(String::from).collect();
    let input = dir.path().join("in.parquet");
    let batch =
        RecordBatch::try_from_iter([("text", Arc::new(StringArray::from(texts.clone())) as Arc<dyn Array>)]).unwrap();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&input).unwrap(), batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let lines = dir.path().join("cal.txt");
    std::fs::write(&lines, texts.join("\n")).unwrap();
    ok(&e5(&["calibrate-output", "-m", &model, "--kind", "passage", "--texts", lines.to_str().unwrap()], b""));
    let ranges = OutputRanges::load(Path::new(&model)).unwrap();
    let model_ = e5::Model::load(&model, e5::Options::default()).unwrap();
    let inputs: Vec<e5::Input> = texts.iter().map(|t| e5::Input::passage(t.as_str())).collect();
    let vectors = model_.embed(&inputs).unwrap().data;

    let expected_types = [
        (OutputPrecision::Float32, "FixedSizeList(32 x non-null Float32)"),
        (OutputPrecision::Int8, "FixedSizeList(32 x non-null Int8)"),
        (OutputPrecision::Uint8, "FixedSizeList(32 x non-null UInt8)"),
        (OutputPrecision::Binary, "FixedSizeList(4 x non-null Int8)"),
        (OutputPrecision::Ubinary, "FixedSizeBinary(4)"),
    ];
    for (p, ty) in expected_types {
        let out = dir.path().join(format!("{}.parquet", p.name()));
        let args = ["embed", "-m", &model, "--kind", "passage", "--input-format", "parquet", "--format", "parquet"];
        let mut args = args.to_vec();
        args.extend(["-i", input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--output-precision", p.name()]);
        ok(&e5(&args, b""));
        let f = std::fs::File::open(&out).unwrap();
        let batches: Vec<RecordBatch> = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap()
            .build()
            .unwrap()
            .map(|b| b.unwrap())
            .collect();
        let col = batches[0].column_by_name("embedding").unwrap();
        assert_eq!(format!("{}", col.data_type()), ty, "{}", p.name());
        let expected = e5::output::quantize(vectors.clone(), 32, p, Some(&ranges)).unwrap().le_bytes();
        let got: Vec<u8> = batches
            .iter()
            .flat_map(|b| {
                let col = b.column_by_name("embedding").unwrap();
                match p {
                    OutputPrecision::Ubinary => col.as_fixed_size_binary().values().to_vec(),
                    OutputPrecision::Float32 => {
                        let v = col.as_fixed_size_list().values().clone();
                        v.as_primitive::<arrow_array::types::Float32Type>()
                            .values()
                            .iter()
                            .flat_map(|x| x.to_le_bytes())
                            .collect()
                    }
                    OutputPrecision::Uint8 => {
                        col.as_fixed_size_list().values().as_primitive::<UInt8Type>().values().to_vec()
                    }
                    _ => col
                        .as_fixed_size_list()
                        .values()
                        .as_primitive::<Int8Type>()
                        .values()
                        .iter()
                        .map(|&x| x as u8)
                        .collect(),
                }
            })
            .collect();
        assert_eq!(got, expected, "{} parquet", p.name());
    }
}
