//! One template or expression read through minijinja's own parser: the names it reads from its
//! context (with the constant path below each), the filters, tests and functions it calls, and the
//! secrets it names.
//!
//! The scan walks the syntax tree minijinja's parser builds (`minijinja::machinery`), so what it sees
//! is exactly what the engine will compile. Names the template binds itself (`{% set %}`, `{% for %}`,
//! macro arguments, `loop`) are not context reads.

use std::collections::HashSet;

use minijinja::machinery::ast::{self, CallArg, Expr, Stmt};
use minijinja::machinery::{Span, WhitespaceConfig};

use crate::template;

/// A position inside a template: 1-based line, 0-based column in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct At {
    pub(crate) line: u32,
    pub(crate) column: u32,
}

impl At {
    fn of(span: Span) -> At {
        At {
            line: u32::from(span.start_line),
            column: u32::from(span.start_col),
        }
    }
}

/// A read of a context name: `steps.lookup.user` is root `steps`, path `["lookup", "user"]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Read {
    pub(crate) root: String,
    /// The constant attribute and item names below the root, up to the first computed one.
    pub(crate) path: Vec<String>,
    pub(crate) at: At,
    /// Whether the read is tested before use (`is defined`, `| default`, a condition, `and`/`or`),
    /// so a value that may be missing is expected.
    pub(crate) guarded: bool,
}

/// A problem the scan itself finds (syntax, unknown filters, tests and functions).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Problem {
    pub(crate) at: At,
    pub(crate) message: String,
}

/// A `secret('name')` call with a literal name.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SecretUse {
    pub(crate) name: String,
    pub(crate) at: At,
}

/// What one template reads and calls.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub(crate) reads: Vec<Read>,
    pub(crate) problems: Vec<Problem>,
    pub(crate) secrets: Vec<SecretUse>,
}

/// Scans a template string (text with `{{ }}` and `{% %}`). A syntax error is the only problem then.
pub(crate) fn scan_template(source: &str) -> Scan {
    let whitespace = WhitespaceConfig {
        keep_trailing_newline: true,
        ..WhitespaceConfig::default()
    };
    match minijinja::machinery::parse(source, "<template>", Default::default(), whitespace) {
        Ok(stmt) => {
            let mut walker = Walker::default();
            walker.stmt(&stmt);
            walker.scan
        }
        Err(error) => syntax_problem(source, &error),
    }
}

/// Scans an expression written without `{{ }}` (the `where` of `list.filter`).
pub(crate) fn scan_expression(source: &str) -> Scan {
    match minijinja::machinery::parse_expr(source) {
        Ok(expr) => {
            let mut walker = Walker::default();
            walker.expr(&expr);
            walker.scan
        }
        Err(error) => syntax_problem(source, &error),
    }
}

fn syntax_problem(source: &str, error: &minijinja::Error) -> Scan {
    let at = match error.range() {
        Some(range) => position_of(source, range.start),
        None => At {
            line: error
                .line()
                .and_then(|l| u32::try_from(l).ok())
                .unwrap_or(1),
            column: 0,
        },
    };
    let detail = error.detail().unwrap_or("invalid template");
    Scan {
        problems: vec![Problem {
            at,
            message: format!("syntax error: {detail} in `{}`", template::preview(source)),
        }],
        ..Scan::default()
    }
}

/// The line and column of a byte offset.
fn position_of(source: &str, offset: usize) -> At {
    let mut at = At { line: 1, column: 0 };
    for (index, c) in source.char_indices() {
        if index >= offset {
            break;
        }
        if c == '\n' {
            at.line += 1;
            at.column = 0;
        } else {
            at.column += 1;
        }
    }
    at
}

/// Tests whose operand may well be missing: reading it is how a template asks.
const GUARD_TESTS: &[&str] = &["defined", "undefined", "none"];
/// Filters that supply a value for a missing one.
const GUARD_FILTERS: &[&str] = &["default", "d"];

#[derive(Default)]
struct Walker {
    scan: Scan,
    /// Names the template binds, innermost scope last.
    scopes: Vec<HashSet<String>>,
    /// How many guarding constructs enclose the current expression.
    guards: u32,
}

impl Walker {
    fn bound(&self, name: &str) -> bool {
        self.scopes.iter().any(|scope| scope.contains(name))
    }

    fn bind(&mut self, name: &str) {
        if self.scopes.is_empty() {
            self.scopes.push(HashSet::new());
        }
        if let Some(scope) = self.scopes.last_mut() {
            scope.insert(name.to_owned());
        }
    }

    fn bind_target(&mut self, target: &Expr<'_>) {
        match target {
            Expr::Var(var) => self.bind(var.id),
            Expr::List(list) => list.items.iter().for_each(|item| self.bind_target(item)),
            // `{% set ns.count = 1 %}` assigns into an object the template already holds.
            other => self.expr(other),
        }
    }

    fn scoped(&mut self, names: &[&str], f: impl FnOnce(&mut Walker)) {
        self.scopes
            .push(names.iter().map(|n| (*n).to_owned()).collect());
        f(self);
        self.scopes.pop();
    }

    fn guarded(&mut self, f: impl FnOnce(&mut Walker)) {
        self.guards += 1;
        f(self);
        self.guards -= 1;
    }

    fn problem(&mut self, span: Span, message: String) {
        self.scan.problems.push(Problem {
            at: At::of(span),
            message,
        });
    }

    fn body(&mut self, stmts: &[Stmt<'_>]) {
        stmts.iter().for_each(|s| self.stmt(s));
    }

    fn stmt(&mut self, stmt: &Stmt<'_>) {
        match stmt {
            Stmt::Template(t) => self.body(&t.children),
            Stmt::EmitExpr(e) => self.expr(&e.expr),
            Stmt::EmitRaw(_) => {}
            Stmt::ForLoop(f) => {
                self.expr(&f.iter);
                self.scopes.push(HashSet::new());
                self.bind("loop");
                self.bind_target(&f.target);
                if let Some(filter) = &f.filter_expr {
                    self.guarded(|w| w.expr(filter));
                }
                self.body(&f.body);
                self.scopes.pop();
                self.body(&f.else_body);
            }
            // What a branch reads is read only when its condition says so: the author made it
            // conditional, so a value that may be missing there is expected.
            Stmt::IfCond(c) => self.guarded(|w| {
                w.expr(&c.expr);
                w.body(&c.true_body);
                w.body(&c.false_body);
            }),
            Stmt::WithBlock(w) => {
                for (_, value) in &w.assignments {
                    self.expr(value);
                }
                self.scopes.push(HashSet::new());
                for (target, _) in &w.assignments {
                    self.bind_target(target);
                }
                self.body(&w.body);
                self.scopes.pop();
            }
            Stmt::Set(s) => {
                self.expr(&s.expr);
                self.bind_target(&s.target);
            }
            Stmt::SetBlock(s) => {
                if let Some(filter) = &s.filter {
                    self.expr(filter);
                }
                self.body(&s.body);
                self.bind_target(&s.target);
            }
            Stmt::AutoEscape(a) => {
                self.expr(&a.enabled);
                self.body(&a.body);
            }
            Stmt::FilterBlock(f) => {
                self.expr(&f.filter);
                self.body(&f.body);
            }
            Stmt::Block(b) => self.body(&b.body),
            // The sandbox refuses these when the template compiles; nothing to read here.
            Stmt::Import(_) | Stmt::FromImport(_) | Stmt::Extends(_) | Stmt::Include(_) => {}
            Stmt::Macro(m) => {
                self.bind(m.name);
                self.macro_body(m);
            }
            Stmt::CallBlock(c) => {
                self.call(&c.call);
                self.scoped(&["caller"], |w| w.macro_body(&c.macro_decl));
            }
            Stmt::Continue(_) | Stmt::Break(_) => {}
            Stmt::Do(d) => self.call(&d.call),
        }
    }

    fn macro_body(&mut self, m: &ast::Macro<'_>) {
        m.defaults.iter().for_each(|d| self.expr(d));
        self.scopes.push(HashSet::new());
        self.bind("varargs");
        self.bind("kwargs");
        self.bind("caller");
        for arg in &m.args {
            self.bind_target(arg);
        }
        self.body(&m.body);
        self.scopes.pop();
    }

    fn args(&mut self, args: &[CallArg<'_>]) {
        for arg in args {
            match arg {
                CallArg::Pos(e)
                | CallArg::Kwarg(_, e)
                | CallArg::PosSplat(e)
                | CallArg::KwargSplat(e) => self.expr(e),
            }
        }
    }

    fn call(&mut self, call: &ast::Spanned<ast::Call<'_>>) {
        match &call.expr {
            Expr::Var(var) if !self.bound(var.id) => {
                if !template::has_function(var.id) {
                    let mut message = format!("unknown function `{}`", var.id);
                    if let Some(close) =
                        crate::flowfile::suggest(var.id, template::function_names())
                    {
                        message.push_str(&format!("; did you mean `{close}`?"));
                    } else {
                        message.push_str(&format!(
                            "; the functions are {}",
                            template::function_names().collect::<Vec<_>>().join(", ")
                        ));
                    }
                    self.problem(call.span(), message);
                }
                if var.id == "secret" {
                    match call.args.as_slice() {
                        [CallArg::Pos(Expr::Const(name))] if name.value.as_str().is_some() => {
                            self.scan.secrets.push(SecretUse {
                                name: name.value.as_str().unwrap_or_default().to_owned(),
                                at: At::of(call.span()),
                            });
                        }
                        _ => self.problem(
                            call.span(),
                            "secret() takes one literal name, such as secret('okta-token')".into(),
                        ),
                    }
                    return;
                }
            }
            // A method such as `name.upper()` or `user.items()`: the object is read, the method
            // belongs to its value.
            Expr::GetAttr(method) => self.expr(&method.expr),
            other => self.expr(other),
        }
        self.args(&call.args);
    }

    fn expr(&mut self, expr: &Expr<'_>) {
        match expr {
            Expr::Var(var) => self.read(var.id, Vec::new(), var.span()),
            Expr::Const(_) => {}
            Expr::Slice(s) => {
                self.expr(&s.expr);
                for part in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                    self.expr(part);
                }
            }
            Expr::UnaryOp(u) => match u.op {
                ast::UnaryOpKind::Not => self.guarded(|w| w.expr(&u.expr)),
                ast::UnaryOpKind::Neg => self.expr(&u.expr),
            },
            Expr::BinOp(b) => match b.op {
                ast::BinOpKind::ScAnd | ast::BinOpKind::ScOr => self.guarded(|w| {
                    w.expr(&b.left);
                    w.expr(&b.right);
                }),
                _ => {
                    self.expr(&b.left);
                    self.expr(&b.right);
                }
            },
            Expr::Compare(c) => {
                self.expr(&c.expr);
                c.ops.iter().for_each(|op| self.expr(&op.expr));
            }
            Expr::IfExpr(i) => self.guarded(|w| {
                w.expr(&i.test_expr);
                w.expr(&i.true_expr);
                if let Some(otherwise) = &i.false_expr {
                    w.expr(otherwise);
                }
            }),
            Expr::Filter(f) => {
                if !template::has_filter(f.name) {
                    let mut message = format!("unknown filter `{}`", f.name);
                    if let Some(close) = crate::flowfile::suggest(f.name, template::filter_names())
                    {
                        message.push_str(&format!("; did you mean `{close}`?"));
                    }
                    self.problem(f.span(), message);
                }
                if let Some(operand) = &f.expr {
                    if GUARD_FILTERS.contains(&f.name) {
                        self.guarded(|w| w.expr(operand));
                    } else {
                        self.expr(operand);
                    }
                }
                self.args(&f.args);
            }
            Expr::Test(t) => {
                if !template::has_test(t.name) {
                    let mut message = format!("unknown test `{}`", t.name);
                    if let Some(close) = crate::flowfile::suggest(t.name, template::test_names()) {
                        message.push_str(&format!("; did you mean `{close}`?"));
                    }
                    self.problem(t.span(), message);
                }
                if GUARD_TESTS.contains(&t.name) {
                    self.guarded(|w| w.expr(&t.expr));
                } else {
                    self.expr(&t.expr);
                }
                self.args(&t.args);
            }
            Expr::GetAttr(_) | Expr::GetItem(_) => self.chain(expr),
            Expr::Call(c) => self.call(c),
            Expr::List(l) => l.items.iter().for_each(|item| self.expr(item)),
            Expr::Map(m) => {
                m.keys.iter().for_each(|k| self.expr(k));
                m.values.iter().for_each(|v| self.expr(v));
            }
        }
    }

    /// `a.b['c'].d`: one read of `a` with its constant path.
    fn chain(&mut self, expr: &Expr<'_>) {
        let mut names: Vec<Option<String>> = Vec::new();
        let mut cursor = expr;
        loop {
            match cursor {
                Expr::GetAttr(a) => {
                    names.push(Some(a.name.to_owned()));
                    cursor = &a.expr;
                }
                Expr::GetItem(i) => {
                    match &i.subscript_expr {
                        Expr::Const(c) if c.value.as_str().is_some() => {
                            names.push(c.value.as_str().map(str::to_owned));
                        }
                        subscript => {
                            self.expr(subscript);
                            names.push(None);
                        }
                    }
                    cursor = &i.expr;
                }
                _ => break,
            }
        }
        names.reverse();
        let path: Vec<String> = names.into_iter().map_while(|n| n).collect();
        match cursor {
            Expr::Var(var) => self.read(var.id, path, var.span()),
            other => self.expr(other),
        }
    }

    fn read(&mut self, name: &str, path: Vec<String>, span: Span) {
        if self.bound(name) {
            return;
        }
        self.scan.reads.push(Read {
            root: name.to_owned(),
            path,
            at: At::of(span),
            guarded: self.guards > 0,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(source: &str) -> Vec<String> {
        scan_template(source)
            .reads
            .iter()
            .map(|r| {
                let mut text = r.root.clone();
                for p in &r.path {
                    text.push('.');
                    text.push_str(p);
                }
                if r.guarded {
                    text.push('?');
                }
                text
            })
            .collect()
    }

    #[test]
    fn reads_roots_and_constant_paths() {
        assert_eq!(
            reads("{{ steps.a.b['c'][input.i].d }}"),
            vec!["input.i", "steps.a.b.c"]
        );
        assert_eq!(
            reads("{% for u in steps.users %}{{ u.name }}{{ loop.index }}{% endfor %}{{ u }}"),
            vec!["steps.users", "u"]
        );
        assert_eq!(reads("{% set x = vars.a %}{{ x.b }}"), vec!["vars.a"]);
        assert_eq!(
            reads("{{ steps.x.y | default('n') }} {{ a if steps.b is defined }}"),
            vec!["steps.x.y?", "steps.b?", "a?"]
        );
        assert_eq!(reads("{{ input.name.upper() }}"), vec!["input.name"]);
    }

    #[test]
    fn reports_unknown_names_and_syntax_with_positions() {
        let scan = scan_template("hello {{ input.name | nosuchfilter }}");
        assert_eq!(scan.problems.len(), 1);
        assert!(
            scan.problems[0]
                .message
                .starts_with("unknown filter `nosuchfilter`")
        );
        let scan = scan_template("a\n{{ input.name | uppr }}");
        assert_eq!(
            scan.problems[0].message,
            "unknown filter `uppr`; did you mean `upper`?"
        );
        assert_eq!(scan.problems[0].at.line, 2);
        let scan = scan_template("{{ nosuchfunction() }} {{ x is nosuchtest }}");
        assert_eq!(scan.problems.len(), 2);
        let scan = scan_template("hello {{ input.name");
        assert_eq!(scan.problems.len(), 1);
        assert!(
            scan.problems[0].message.starts_with("syntax error"),
            "{:?}",
            scan.problems
        );
        let scan = scan_template("{{ secret('a') }} {{ secret(name) }}");
        assert_eq!(scan.secrets.len(), 1);
        assert_eq!(scan.problems.len(), 1);
    }
}
