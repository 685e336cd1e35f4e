//! `run_eval` end to end: the tiny MiMo fixture on a GSM8K slice (structure and consistency, not
//! a score), and the OpenAI-compatible client against a small endpoint started in the test
//! (exact scores from known answers, retries, errors).

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crucible_gpu::model::{LoadOptions, MimoModel};
use crucible_gpu::tokenizer::Tokenizer;
use crucible_types::dataset::DatasetKind;
use crucible_types::eval::SampleRecord;
use crucible_types::sampling::SamplingParams;
use crucible_types::testing::data_dir;
use crucible_worker::eval::metrics::pass_at_k;
use crucible_worker::eval::{
    Benchmark, Completion, EvalError, EvalReport, Generator, LocalGenerator, OpenAiConfig,
    OpenAiGenerator, load_benchmark, run_eval,
};
use serde_json::{Value, json};

/// A run's report, every sample handed over, and every progress report.
type Outcome = (
    Result<EvalReport, EvalError>,
    Vec<SampleRecord>,
    Vec<(u64, u64)>,
);

/// Runs `bench` and collects every chunk handed to `on_samples` and every progress report.
fn run(
    bench: &Benchmark,
    generator: &mut dyn Generator,
    n: u32,
    sampling: &SamplingParams,
    ks: &[u32],
) -> Outcome {
    let mut samples = Vec::new();
    let mut progress = Vec::new();
    let report = run_eval(
        bench,
        generator,
        n,
        sampling,
        ks,
        &mut |chunk| {
            samples.extend(chunk);
            Ok(())
        },
        &|| false,
        &mut |done, total| progress.push((done, total)),
    );
    (report, samples, progress)
}

fn metric(report: &EvalReport, name: &str) -> f64 {
    report
        .scores
        .iter()
        .find(|s| s.metric == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", report.scores))
        .value
}

#[test]
fn tiny_model_on_a_gsm8k_slice() {
    let Some(dir) = data_dir("tiny_model_on_a_gsm8k_slice") else {
        return;
    };
    let fixture = common::fixture_dir();
    let model = MimoModel::load(&fixture, &LoadOptions::default()).unwrap();
    let tokenizer = Tokenizer::load(&fixture).unwrap();
    // The fixture's context is 256 tokens of a byte-level vocabulary: take the three shortest
    // GSM8K test problems so that prompt + completion fit.
    let mut problems = load_benchmark("gsm8k", Some(&dir), None).unwrap().problems;
    problems.sort_by_key(|p| p.prompt.len());
    problems.truncate(3);
    let bench = Benchmark::from_problems("gsm8k-short3", problems);
    let sampling = SamplingParams {
        temperature: 0.9,
        top_p: 0.95,
        seed: 11,
        max_new_tokens: 24,
        ..SamplingParams::default()
    };
    let n = 2;
    let mut generator = LocalGenerator::new(&model, &tokenizer).with_max_batch(4);
    let (report, samples, progress) = run(&bench, &mut generator, n, &sampling, &[2]);
    let report = report.unwrap();

    assert_eq!(report.problems, 3);
    assert_eq!(samples.len(), 3 * n as usize);
    let keys: HashSet<(i32, i32)> = samples
        .iter()
        .map(|s| (s.problem_idx, s.sample_idx))
        .collect();
    assert_eq!(
        keys.len(),
        samples.len(),
        "(problem_idx, sample_idx) is unique"
    );
    for s in &samples {
        let p = &bench.problems[s.problem_idx as usize];
        assert_eq!((&s.problem_id, &s.prompt), (&p.id, &p.prompt));
        assert!((0..n as i32).contains(&s.sample_idx));
        assert!(s.tokens > 0 && s.tokens <= 24, "{}", s.tokens);
        assert_eq!(s.reward, if s.correct { 1.0 } else { 0.0 });
        assert!(["correct", "wrong", "no_answer"].contains(&s.verdict.as_str()));
        assert_eq!(s.verdict == "correct", s.correct);
    }
    assert_eq!(progress.first(), Some(&(0, 3)));
    assert_eq!(progress.last(), Some(&(3, 3)));

    // Scores agree with the samples, whatever this random model gets.
    let correct_of = |i: i32| {
        samples
            .iter()
            .filter(|s| s.problem_idx == i && s.correct)
            .count() as u32
    };
    let mean_correct = samples.iter().filter(|s| s.correct).count() as f64 / samples.len() as f64;
    assert!((metric(&report, "pass@1") - mean_correct).abs() < 1e-12);
    let pass2 = (0..3).map(|i| pass_at_k(n, correct_of(i), 2)).sum::<f64>() / 3.0;
    assert!((metric(&report, "pass@2") - pass2).abs() < 1e-12);
    let names: Vec<&str> = report.scores.iter().map(|s| s.metric.as_str()).collect();
    assert_eq!(names, ["pass@1", "pass@2", "maj@2"]);
    for s in &report.scores {
        assert_eq!(s.n, 3);
        let (low, high) = (s.ci_low.unwrap(), s.ci_high.unwrap());
        assert!(low <= s.value && s.value <= high, "{s:?}");
    }

    // Seeds per sample make the run reproducible.
    let (again, samples_again, _) = run(&bench, &mut generator, n, &sampling, &[2]);
    assert_eq!(again.unwrap(), report);
    assert_eq!(samples_again, samples);

    // A stop request ends the run before any chunk, handing over nothing.
    let mut handed = 0;
    let stopped = run_eval(
        &bench,
        &mut generator,
        n,
        &sampling,
        &[],
        &mut |chunk| {
            handed += chunk.len();
            Ok(())
        },
        &|| true,
        &mut |_, _| {},
    );
    assert!(matches!(
        stopped,
        Err(EvalError::Stopped { done: 0, total: 3 })
    ));
    assert_eq!(handed, 0);
    // k beyond n is refused by name.
    let bad = run(&bench, &mut generator, n, &sampling, &[4])
        .0
        .unwrap_err();
    assert!(
        bad.to_string().contains("k must be between 1 and n"),
        "{bad}"
    );
}

/// What the in-test endpoint saw.
#[derive(Default)]
struct Seen {
    requests: AtomicUsize,
    bodies: Mutex<Vec<Value>>,
    auth: Mutex<Vec<String>>,
}

/// One HTTP/1.1 request: (headers in lower case, body).
fn read_request(stream: &TcpStream) -> Option<(Vec<String>, Vec<u8>)> {
    let mut reader = BufReader::new(stream);
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end().to_string();
        if line.is_empty() {
            break;
        }
        headers.push(line.to_ascii_lowercase());
    }
    let length = headers
        .iter()
        .find_map(|h| h.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((headers, body))
}

fn respond(mut stream: &TcpStream, status: &str, body: &Value) {
    let text = body.to_string();
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
}

/// Serves chat/completions: `answer(prompt, seed)` gives (content, finish_reason). Requests
/// numbered in `fail_first` (0-based) get a 503 first; `always` overrides every reply.
fn serve(
    answer: fn(&str, u64) -> (String, &'static str),
    fail_first: usize,
    always: Option<(&'static str, Value)>,
) -> (String, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let seen = Arc::new(Seen::default());
    let state = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let seen = state.clone();
            let always = always.clone();
            std::thread::spawn(move || {
                let Some((headers, body)) = read_request(&stream) else {
                    return;
                };
                let number = seen.requests.fetch_add(1, Ordering::SeqCst);
                if let Some(a) = headers
                    .iter()
                    .find_map(|h| h.strip_prefix("authorization:"))
                {
                    seen.auth.lock().unwrap().push(a.trim().to_string());
                }
                if let Some((status, reply)) = always {
                    respond(&stream, status, &reply);
                    return;
                }
                if number < fail_first {
                    respond(
                        &stream,
                        "503 Service Unavailable",
                        &json!({"error": "warming up"}),
                    );
                    return;
                }
                let req: Value = serde_json::from_slice(&body).unwrap();
                let prompt = req["messages"][0]["content"].as_str().unwrap().to_string();
                let (content, finish) = answer(&prompt, req["seed"].as_u64().unwrap());
                seen.bodies.lock().unwrap().push(req);
                respond(
                    &stream,
                    "200 OK",
                    &json!({
                        "id": "x", "object": "chat.completion",
                        "choices": [{"index": 0, "finish_reason": finish,
                                     "message": {"role": "assistant", "content": content}}],
                        "usage": {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14}
                    }),
                );
            });
        }
    });
    (url, seen)
}

/// "2+2" is always right, "3+3" right on even seeds, "5+5" always wrong and cut off.
fn known_answers(prompt: &str, seed: u64) -> (String, &'static str) {
    if prompt.starts_with("2+2") {
        ("It is \\boxed{4}.".into(), "stop")
    } else if prompt.starts_with("3+3") {
        let a = if seed.is_multiple_of(2) { 6 } else { 7 };
        (format!("So \\boxed{{{a}}}"), "stop")
    } else {
        ("\\boxed{11} and then".into(), "length")
    }
}

fn three_problems() -> Benchmark {
    let rows = [
        json!({"id": "a", "problem": "2+2?", "answer": "4"}),
        json!({"id": "b", "problem": "3+3?", "answer": "6"}),
        json!({"id": "c", "problem": "5+5?", "answer": "10"}),
    ];
    Benchmark::from_rows("arith", DatasetKind::Math, &rows).unwrap()
}

fn fast_config(url: &str) -> OpenAiConfig {
    OpenAiConfig {
        api_key: Some("sk-test".into()),
        retry_backoff: Duration::from_millis(10),
        concurrency: 3,
        timeout: Duration::from_secs(20),
        ..OpenAiConfig::new(url, "served-model")
    }
}

#[test]
fn openai_endpoint_gives_exact_scores() {
    let (url, seen) = serve(known_answers, 1, None);
    let mut generator = OpenAiGenerator::new(fast_config(&url)).unwrap();
    let sampling = SamplingParams {
        temperature: 0.6,
        top_p: 0.95,
        seed: 10,
        max_new_tokens: 64,
        ..SamplingParams::default()
    };
    let (report, samples, _) = run(&three_problems(), &mut generator, 4, &sampling, &[2, 4]);
    let report = report.unwrap();

    // a: 4/4, b: 2/4 (seeds 10, 12), c: 0/4.
    let close = |name: &str, want: f64| {
        let got = metric(&report, name);
        assert!((got - want).abs() < 1e-12, "{name}: {got} vs {want}");
    };
    close("pass@1", (1.0 + 0.5 + 0.0) / 3.0);
    close("pass@2", (1.0 + (1.0 - 1.0 / 6.0) + 0.0) / 3.0);
    close("pass@4", 2.0 / 3.0);
    // b's blocks: (6, 7) and (6, 7): ties go to the first answer, 6, so both are right.
    close("maj@2", 2.0 / 3.0);
    close("maj@4", 2.0 / 3.0);

    assert_eq!(samples.len(), 12);
    let c: Vec<&SampleRecord> = samples.iter().filter(|s| s.problem_id == "c").collect();
    assert!(
        c.iter()
            .all(|s| s.truncated && s.tokens == 5 && s.verdict == "wrong")
    );
    assert!(c.iter().all(|s| s.extracted.as_deref() == Some("11")));

    // One 503, retried; then one request per sample with seed + sample index.
    assert_eq!(seen.requests.load(Ordering::SeqCst), 13);
    let bodies = seen.bodies.lock().unwrap();
    let mut seeds: Vec<u64> = bodies
        .iter()
        .filter(|b| {
            b["messages"][0]["content"]
                .as_str()
                .unwrap()
                .starts_with("3+3")
        })
        .map(|b| b["seed"].as_u64().unwrap())
        .collect();
    seeds.sort_unstable();
    assert_eq!(seeds, [10, 11, 12, 13]);
    let b = &bodies[0];
    assert_eq!(
        (
            b["model"].as_str(),
            b["max_tokens"].as_u64(),
            b["n"].as_u64()
        ),
        (Some("served-model"), Some(64), Some(1))
    );
    assert!(
        seen.auth
            .lock()
            .unwrap()
            .iter()
            .all(|a| a == "bearer sk-test")
    );
}

#[test]
fn openai_endpoint_errors_are_named_and_client_errors_not_retried() {
    let (url, seen) = serve(
        known_answers,
        0,
        Some((
            "400 Bad Request",
            json!({"error": {"message": "unknown model"}}),
        )),
    );
    let mut generator = OpenAiGenerator::new(fast_config(&url)).unwrap();
    let e = generator
        .generate(&["2+2?".to_string()], &SamplingParams::greedy(8), 1)
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("/v1/chat/completions")
            && text.contains("400")
            && text.contains("unknown model"),
        "{text}"
    );
    assert_eq!(seen.requests.load(Ordering::SeqCst), 1);

    // A server that keeps failing: retried max_retries times, then a named error.
    let (url, seen) = serve(known_answers, usize::MAX, None);
    let config = OpenAiConfig {
        max_retries: 2,
        ..fast_config(&url)
    };
    let e = OpenAiGenerator::new(config)
        .unwrap()
        .generate(&["2+2?".to_string()], &SamplingParams::greedy(8), 1)
        .unwrap_err();
    assert!(e.to_string().contains("gave up after 3 attempts"), "{e}");
    assert_eq!(seen.requests.load(Ordering::SeqCst), 3);
}

/// Replies with fixed texts per prompt, in order: a stand-in for a model whose answers are known,
/// so that code grading through the real sandbox can be checked against canonical solutions.
struct Replies(Vec<Vec<String>>);

impl Generator for Replies {
    fn generate(
        &mut self,
        prompts: &[String],
        _sampling: &SamplingParams,
        n: u32,
    ) -> Result<Vec<Vec<Completion>>, EvalError> {
        let out = self.0.drain(..prompts.len()).collect::<Vec<_>>();
        Ok(out
            .into_iter()
            .map(|texts| {
                assert_eq!(texts.len(), n as usize);
                texts
                    .into_iter()
                    .map(|text| Completion {
                        text,
                        tokens: 1,
                        truncated: false,
                    })
                    .collect()
            })
            .collect())
    }
}

#[test]
fn code_benchmarks_grade_canonical_solutions_in_the_sandbox() {
    let Some(dir) = data_dir("code_benchmarks_grade_canonical_solutions_in_the_sandbox") else {
        return;
    };
    let raw: Vec<Value> = std::fs::read_to_string(dir.join("humaneval/HumanEval.jsonl"))
        .unwrap()
        .lines()
        .take(2)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let bench = load_benchmark("humaneval", Some(&dir), Some(2)).unwrap();
    // Per problem: the body alone (HumanEval's convention), the whole function in a fence, and a
    // wrong body.
    let replies = raw
        .iter()
        .map(|r| {
            let (stub, body) = (
                r["prompt"].as_str().unwrap(),
                r["canonical_solution"].as_str().unwrap(),
            );
            vec![
                body.to_string(),
                format!("Here it is:\n```python\n{stub}{body}```"),
                "    return None\n".to_string(),
            ]
        })
        .collect();
    let (report, samples, _) = run(
        &bench,
        &mut Replies(replies),
        3,
        &SamplingParams::greedy(8),
        &[2],
    );
    let report = report.unwrap();
    let verdicts: Vec<(i32, &str, bool)> = samples
        .iter()
        .map(|s| (s.sample_idx, s.verdict.as_str(), s.correct))
        .collect();
    for p in 0..2 {
        let v = &verdicts[p * 3..p * 3 + 3];
        assert_eq!(v[0], (0, "passed", true), "{verdicts:?}");
        assert_eq!(v[1], (1, "passed", true), "{verdicts:?}");
        assert!(!v[2].2 && v[2].1 != "passed", "{verdicts:?}");
    }
    assert!(samples[2].reward < 1.0);
    assert!((metric(&report, "pass@1") - 2.0 / 3.0).abs() < 1e-12);
    // Code has no answers to vote on: pass@k only.
    let names: Vec<&str> = report.scores.iter().map(|s| s.metric.as_str()).collect();
    assert_eq!(names, ["pass@1", "pass@2"]);
}
