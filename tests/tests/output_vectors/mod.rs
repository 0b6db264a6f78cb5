//! (A module of the `quantized` test binary.) Output precisions against sentence-transformers' `quantize_embeddings`, bit for bit
//! (`tests/fixtures/reference/output_quantization.safetensors`, written by
//! `tools/make_output_quant_reference.py`), and the ranges file through `Model`.

use e5::output::quantize;
use e5::{Input, Model, Options, OutputPrecision, OutputRanges, VectorData};
use e5_tests::{fixture, scratch_copy, Reference};
use safetensors::SafeTensors;

struct Fixture {
    bytes: Vec<u8>,
}

impl Fixture {
    fn load() -> Fixture {
        let path = fixture("reference/output_quantization.safetensors");
        Fixture { bytes: std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())) }
    }
    fn raw(&self, name: &str) -> (Vec<u8>, Vec<usize>) {
        let st = SafeTensors::deserialize(&self.bytes).unwrap();
        let t = st.tensor(name).unwrap_or_else(|_| panic!("no tensor {name}"));
        (t.data().to_vec(), t.shape().to_vec())
    }
    fn f32s(&self, name: &str) -> Vec<f32> {
        self.raw(name).0.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
    }
}

/// Each precision of `vectors` with ranges calibrated on `calibration` equals the reference
/// `{set}_{precision}`; the calibrated ranges equal `{set}_ranges`.
fn check_set(fx: &Fixture, set: &str, vectors: &[f32], calibration: &[f32], dim: usize) {
    let ranges = OutputRanges::calibrate(calibration, dim, true).unwrap();
    let reference = fx.f32s(&format!("{set}_ranges"));
    assert_eq!([ranges.min.as_slice(), ranges.max.as_slice()].concat(), reference, "{set}: ranges");
    let n = vectors.len() / dim;
    for p in OutputPrecision::ALL.into_iter().filter(|p| *p != OutputPrecision::Float32) {
        let ours = quantize(vectors.to_vec(), dim, p, Some(&ranges)).unwrap();
        let (theirs, shape) = fx.raw(&format!("{set}_{}", p.name()));
        assert_eq!(shape, [n, p.width(dim)], "{set} {}", p.name());
        assert_eq!(ours.rows(), n);
        let differ = ours.le_bytes().iter().zip(&theirs).filter(|(a, b)| a != b).count();
        assert_eq!(
            differ,
            0,
            "{set} {}: {differ} of {} elements differ from sentence-transformers",
            p.name(),
            theirs.len()
        );
        let signed = matches!(ours.data, VectorData::I8(_));
        assert_eq!(signed, matches!(p, OutputPrecision::Int8 | OutputPrecision::Binary), "{}", p.name());
    }
    let float = quantize(vectors.to_vec(), dim, OutputPrecision::Float32, None).unwrap();
    assert_eq!(float.data, VectorData::F32(vectors.to_vec()));
}

#[test]
fn quantized_outputs_equal_sentence_transformers_bit_for_bit() {
    let fx = Fixture::load();
    // Real vectors: sentence-transformers' e5-small embeddings, calibrated on two thirds.
    let e5 = Reference::load(&fixture("reference/e5-small.safetensors")).embeddings;
    let (rows, _) = fx.raw("e5_calibration_rows");
    let rows: Vec<usize> = rows.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as usize).collect();
    let calibration: Vec<f32> = rows.iter().flat_map(|&i| e5[i].clone()).collect();
    check_set(&fx, "e5", &e5.concat(), &calibration, 384);
    // Edge cases: 20 dimensions, a constant one, bounds, bucket edges, zeros, ±1e30, subnormals.
    check_set(&fx, "edge", &fx.f32s("edge_vectors"), &fx.f32s("edge_calibration"), 20);
}

#[test]
fn the_model_reads_its_ranges_file_and_says_when_it_is_missing() {
    let dir = scratch_copy(&fixture("tiny-xlmr"));
    let texts = ["a first text", "ein zweiter Text", "третий текст", "", "四番目"];
    let inputs: Vec<Input> = texts.iter().map(|t| Input::passage(*t)).collect();
    let model = Model::load(dir.path(), Options::default()).unwrap();
    let emb = model.embed(&inputs).unwrap();
    let e = model.quantize(emb.data.clone(), OutputPrecision::Int8).unwrap_err().to_string();
    assert!(e.contains(OutputRanges::FILE) && e.contains("not found"), "{e}");
    // Sign bits need no ranges.
    let bits = model.quantize(emb.data.clone(), OutputPrecision::Ubinary).unwrap();
    assert_eq!((bits.rows(), bits.width), (texts.len(), model.dim().div_ceil(8)));

    let ranges = OutputRanges::calibrate(&emb.data, model.dim(), true).unwrap();
    ranges.save(dir.path()).unwrap();
    let model = Model::load(dir.path(), Options::default()).unwrap();
    let q = model.quantize(emb.data.clone(), OutputPrecision::Uint8).unwrap();
    assert_eq!(q, quantize(emb.data.clone(), model.dim(), OutputPrecision::Uint8, Some(&ranges)).unwrap());
    // Calibrated on these very vectors: every dimension spans 0..=255 (254 where f32 rounds
    // (max − min) / step just below 255, as numpy does).
    let VectorData::U8(levels) = &q.data else { panic!("uint8 data") };
    for j in 0..model.dim() {
        let col: Vec<u8> = levels.iter().skip(j).step_by(model.dim()).copied().collect();
        let (lo, hi) = (*col.iter().min().unwrap(), *col.iter().max().unwrap());
        assert!(lo == 0 && hi >= 254, "dimension {j}: levels {lo}..={hi}");
    }
    // A row's bytes do not depend on its batch-mates.
    let alone = model.embed(&inputs[2..3]).unwrap();
    let one = model.quantize(alone.data, OutputPrecision::Int8).unwrap();
    let all = model.quantize(emb.data.clone(), OutputPrecision::Int8).unwrap();
    assert_eq!(one.le_bytes(), all.le_bytes()[2 * model.dim()..3 * model.dim()]);

    // `e5 quantize` takes the ranges along (not as a hashed source weight file).
    let out = tempfile::tempdir().unwrap();
    let m = e5::quantize::quantize_model(dir.path(), out.path(), &Default::default()).unwrap();
    assert!(m.source.contains_key("model.safetensors") && !m.source.contains_key(OutputRanges::FILE));
    let copied = std::fs::read(out.path().join(OutputRanges::FILE)).unwrap();
    assert_eq!(copied, std::fs::read(dir.path().join(OutputRanges::FILE)).unwrap());
    let int8 = Model::load(out.path(), Options::default()).unwrap();
    assert_eq!(int8.output_ranges().unwrap(), &ranges);

    // Ranges of other vectors are refused by name.
    let raw = Model::load(dir.path(), Options { normalize: Some(false), ..Options::default() }).unwrap();
    let e = raw.quantize(vec![0.0; raw.dim()], OutputPrecision::Int8).unwrap_err().to_string();
    assert!(e.contains(OutputRanges::FILE) && e.contains("normalized"), "{e}");
    let cut = Model::load(dir.path(), Options { dimensions: Some(8), ..Options::default() }).unwrap();
    let e = cut.quantize(vec![0.0; 8], OutputPrecision::Int8).unwrap_err().to_string();
    assert!(e.contains("dimensions"), "{e}");
}
