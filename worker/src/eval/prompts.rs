//! Prompt templates: the user message for each kind of problem (docs/eval.md lists them).
//!
//! Why zero-shot instructions with `\boxed{}`: MiMo and the R1-style models are evaluated that way
//! (the report's protocol), and one answer format per kind keeps extraction rule-based.

use crucible_verify::code::{CodeProblem, TestCase};

/// MiMo's / Qwen's math instruction, appended after the problem.
pub const MATH_INSTRUCTION: &str =
    "Please reason step by step, and put your final answer within \\boxed{}.";

/// The instruction after a multiple-choice question and its options.
pub const CHOICE_INSTRUCTION: &str = "Answer with the letter of the correct option. Please reason step by step, and put the letter of your final answer within \\boxed{}.";

/// The instruction after a BBH input (free-form or lettered).
pub const BBH_INSTRUCTION: &str = "Think step by step, and put your final answer within \\boxed{}.";

/// A math problem.
pub fn math(problem: &str) -> String {
    format!("{}\n{MATH_INSTRUCTION}", problem.trim_end())
}

/// A question with lettered options (`A. text` per line).
pub fn choice(question: &str, labels: &[char], choices: &[String]) -> String {
    let options: Vec<String> = labels
        .iter()
        .zip(choices)
        .map(|(l, c)| format!("{l}. {}", c.trim()))
        .collect();
    format!(
        "{}\n\n{}\n\n{CHOICE_INSTRUCTION}",
        question.trim_end(),
        options.join("\n")
    )
}

/// A BBH input, whose text already holds any options.
pub fn bbh(input: &str) -> String {
    format!("{}\n\n{BBH_INSTRUCTION}", input.trim_end())
}

/// A HumanEval-style stub (signature + docstring) to complete.
pub fn complete_function(stub: &str) -> String {
    format!(
        "Complete the following Python function. Reply with the complete function in a ```python code block.\n\n```python\n{}\n```",
        stub.trim_end()
    )
}

/// An MBPP-style task whose tests show the expected function name and signature.
pub fn with_example_tests(task: &str, tests: &[String]) -> String {
    format!(
        "{}\nYour code should pass these tests:\n\n{}\n\nWrite the Python code in a ```python code block.",
        task.trim_end(),
        tests.join("\n")
    )
}

/// Any other code task; stdin/stdout problems say so, since the program's I/O shape is part of
/// being correct.
pub fn program(statement: &str, problem: &CodeProblem) -> String {
    let stdio = !problem.tests.is_empty()
        && problem
            .tests
            .iter()
            .all(|t| matches!(t, TestCase::Stdio { .. }));
    let io = if stdio {
        "Write a Python program that reads the input from standard input and writes the answer to standard output."
    } else {
        "Write the Python code that solves the problem."
    };
    format!(
        "{}\n\n{io} Reply with the complete code in a ```python code block.",
        statement.trim_end()
    )
}
