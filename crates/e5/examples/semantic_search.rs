//! Rank passages for queries with multilingual-e5: the library's main job, end to end.
//!
//! `cargo run --release -p e5 --example semantic_search -- models/multilingual-e5-small`

use e5::{Input, Model, Options};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "models/multilingual-e5-small".into());
    let model = Model::load(&dir, Options::default())?;
    let passages = [
        "As a general guideline, the CDC's average requirement of protein for women ages 19 to 70 is 46 grams per day.",
        "Definition of summit for English Language Learners: the highest point of a mountain.",
        "面包通常在220摄氏度的烤箱中烘烤大约三十分钟。",
        "Der Eiffelturm wurde 1889 für die Weltausstellung in Paris errichtet.",
    ];
    let queries = ["how much protein should a female eat", "如何烤面包", "when was the Eiffel tower built"];
    let mut inputs: Vec<Input> = passages.iter().map(|p| Input::passage(*p)).collect();
    inputs.extend(queries.iter().map(|q| Input::query(*q)));
    let out = model.embed(&inputs)?;
    let mut correct = 0;
    for (qi, q) in queries.iter().enumerate() {
        let qv = out.vector(passages.len() + qi);
        let scores: Vec<f32> =
            (0..passages.len()).map(|p| qv.iter().zip(out.vector(p)).map(|(a, b)| a * b).sum()).collect();
        let best = (0..passages.len()).max_by(|&a, &b| scores[a].total_cmp(&scores[b])).unwrap();
        println!("{q:40} → {:.3}  {}", scores[best], passages[best]);
        correct += usize::from(best == [0, 2, 3][qi]);
    }
    // Used as a smoke test by tools/test.sh: every query must find its passage.
    if correct != queries.len() {
        return Err(format!("only {correct} of {} queries found their passage", queries.len()).into());
    }
    Ok(())
}
