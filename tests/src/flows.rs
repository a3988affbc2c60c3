//! Flows several test files deploy as they are.

/// A manual flow of one pure step that greets `input.name`.
pub const HELLO: &str = r#"
name: hello
steps:
  - id: greeting
    card: text.compose
    with: { text: "Hello {{ input.name }}" }
"#;

/// A helper flow (`child`) that answers twice its input `n`.
pub const CHILD: &str = r#"
name: child
trigger: { helper: { inputs: { n: number } } }
steps:
  - id: double
    card: number.multiply
    with: { a: "{{ input.n }}", b: 2 }
  - card: flow.return
    with: { body: "{{ steps.double }}" }
"#;
