//! Converting one Okta Workflows flow into an idflow flow file.
//!
//! A flow is converted card by card in the order the cards run ([`crate::structure`]). Each card
//! is looked up in the mapping table ([`crate::mapping`]) and its converter writes idflow steps and
//! registers an [`Out`] (an expression) for each of the card's outputs, so later cards' inputs,
//! which Okta Workflows fills through pins, become templates such as `{{ steps.read_user.id }}`.
//! A card that cannot be converted becomes a `flow.fail` step that names it, so the flow still
//! validates and stops loudly where a person must finish it.
//!
//! # Layout
//! - this module: the per-flow context ([`Cx`]), walking bodies, pins to values, triggers.
//! - `kernel`: Okta Workflows' built-in function and control cards.
//! - `okta`: the Okta connector's actions and event cards, and the Tables (`stash`) cards.
//! - `vendors`: other connectors' actions as `http.request` recipes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use crate::expr::{self, Out, Shape, Whole};
use crate::flow::{FlowFile, LoopBody, Retry, Step, StepKind, Trigger, Tv};
use crate::mapping::{self, Fidelity};
use crate::names::{self, Unique};
use crate::pack::{Body, Card, Flo, Io, IoType, Pack};
use crate::structure::{self, Node};

pub(crate) mod kernel;
pub(crate) mod okta;
pub(crate) mod vendors;

/// A card the importer could not convert: what the report lists under `unconverted`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Unconverted {
    /// The card's display name.
    pub card: String,
    /// The card's address in the export.
    pub address: String,
    pub reason: String,
}

/// Why a converter could not convert a card.
#[derive(Debug, Clone, PartialEq)]
pub struct Gap {
    pub reason: String,
}

impl Gap {
    pub fn new(reason: impl Into<String>) -> Gap {
        Gap {
            reason: reason.into(),
        }
    }
}

/// What a converter returns.
pub(crate) type Converted = Result<(), Gap>;

/// A converter: writes the card's steps into the list and registers its outputs.
pub(crate) type Converter = fn(&mut Cx<'_>, &Card, &mut Vec<Step>) -> Converted;

/// A connection a flow uses: its module (`okta`, `gmail`, …) and its name in `idflow.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConnectionUse {
    pub module: String,
    pub name: String,
    /// The connection's name in Okta Workflows, when the export has it.
    pub label: String,
}

/// A helper flow's input: its Okta Workflows name, its idflow input name and its kind.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HelperInput {
    pub okta: String,
    pub ident: String,
    pub kind: &'static str,
    pub shape: Shape,
}

/// What the importer decides about each flow before converting any (callers need their helpers'
/// names, inputs and results).
#[derive(Debug, Clone)]
pub(crate) struct FlowPlan<'p> {
    pub flo: &'p Flo,
    pub name: String,
    pub file: String,
    pub inputs: Vec<HelperInput>,
    /// The keys of the helper's Return cards.
    pub returns: Vec<String>,
}

/// A table: its idflow name and columns (Okta name, idflow name, idflow type).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TablePlan {
    pub okta: String,
    pub name: String,
    pub columns: Vec<(String, String, &'static str)>,
}

/// Everything known across the flows of the import.
pub(crate) struct Index<'p> {
    pub flows: HashMap<String, FlowPlan<'p>>,
    pub tables: HashMap<String, TablePlan>,
    /// Config id → (module, connection name, label).
    pub configs: HashMap<String, ConnectionUse>,
    /// The connection name used for a module when a card names no known config.
    pub module_defaults: HashMap<String, String>,
}

impl<'p> Index<'p> {
    /// Plans every flow, table and connection of the packs.
    pub fn new(packs: &'p [Pack]) -> Index<'p> {
        let mut flow_names = Unique::default();
        let mut flows = HashMap::new();
        // Stream targets take `record` and `state`; find them first.
        let mut streamed: HashMap<String, Shape> = HashMap::new();
        for pack in packs {
            for flo in &pack.flows {
                visit_cards(&flo.body, &mut |card| {
                    if let Some(target) = okta::stream_target(card) {
                        streamed.insert(target, okta::stream_record_shape(card));
                    }
                });
            }
        }
        for pack in packs {
            for flo in &pack.flows {
                if flows.contains_key(&flo.id) {
                    continue;
                }
                let name = flow_names.take(&names::slug(&flo.name, "imported-flow"), '-', 64);
                let inputs = helper_inputs(flo, streamed.get(&flo.id));
                let returns = return_keys(&flo.body);
                flows.insert(
                    flo.id.clone(),
                    FlowPlan {
                        flo,
                        file: format!("{name}.yaml"),
                        name,
                        inputs,
                        returns,
                    },
                );
            }
        }
        let mut table_names = Unique::default();
        let mut tables = HashMap::new();
        for pack in packs {
            for table in &pack.tables {
                if tables.contains_key(&table.id) {
                    continue;
                }
                let name = table_names.take(&names::ident(&table.name, "table"), '_', 60);
                let mut column_names = Unique::default();
                let columns = table
                    .columns
                    .iter()
                    .map(|(okta, kind)| {
                        let ident = column_names.take(&names::ident(okta, "column"), '_', 60);
                        (okta.clone(), ident, column_type(kind))
                    })
                    .collect();
                tables.insert(
                    table.id.clone(),
                    TablePlan {
                        okta: table.name.clone(),
                        name,
                        columns,
                    },
                );
            }
        }
        let mut connection_names = Unique::default();
        let mut configs = HashMap::new();
        let mut module_defaults = HashMap::new();
        for pack in packs {
            for config in &pack.configs {
                if configs.contains_key(&config.id) || config.module.is_empty() {
                    continue;
                }
                let base = mapping::connection_base(&config.module);
                let name = connection_names.take(&base, '-', 64);
                module_defaults
                    .entry(config.module.clone())
                    .or_insert_with(|| name.clone());
                configs.insert(
                    config.id.clone(),
                    ConnectionUse {
                        module: config.module.clone(),
                        name,
                        label: config.name.clone(),
                    },
                );
            }
        }
        Index {
            flows,
            tables,
            configs,
            module_defaults,
        }
    }

    /// The connection a connector card uses.
    pub fn connection(&self, card: &Card) -> ConnectionUse {
        if let Some(found) = card.config.as_ref().and_then(|id| self.configs.get(id)) {
            return found.clone();
        }
        let module = card.address.channel.clone();
        let name = self
            .module_defaults
            .get(&module)
            .cloned()
            .unwrap_or_else(|| mapping::connection_base(&module));
        ConnectionUse {
            module,
            name,
            label: String::new(),
        }
    }
}

/// Calls `f` on every card of a body, inline sub-flows and error handlers included.
pub(crate) fn visit_cards(body: &Body, f: &mut dyn FnMut(&Card)) {
    for card in &body.cards {
        f(card);
        for io in &card.inputs {
            if let Some(sub) = &io.subflow {
                visit_cards(sub, f);
            }
        }
        if let Some(handler) = &card.policy.handler {
            visit_cards(handler, f);
        }
    }
}

/// Every card of a body, inline sub-flows and handlers included, by uuid.
fn collect_cards<'a>(body: &'a Body, cards: &mut HashMap<String, &'a Card>) {
    for card in &body.cards {
        cards.entry(card.uuid.clone()).or_insert(card);
        for io in &card.inputs {
            if let Some(sub) = &io.subflow {
                collect_cards(sub, cards);
            }
        }
        if let Some(handler) = &card.policy.handler {
            collect_cards(handler, cards);
        }
    }
}

/// The keys of the Return cards of a flow's own body (not of inline sub-flows, whose returns are
/// local).
fn return_keys(body: &Body) -> Vec<String> {
    let mut keys = Vec::new();
    for card in &body.cards {
        if card.address.kernel
            && card.address.channel == "control"
            && card.address.action == "return"
        {
            for io in card.plain_inputs() {
                if !keys.contains(&io.key) {
                    keys.push(io.key.clone());
                }
            }
        }
    }
    keys
}

/// A helper flow's inputs: the outputs of its Helper Flow card other than the `context` ones.
fn helper_inputs(flo: &Flo, streamed: Option<&Shape>) -> Vec<HelperInput> {
    let Some(start) = flo.body.cards.iter().find(|c| {
        c.address.kernel && c.address.channel == "control" && c.address.action == "callable"
    }) else {
        return Vec::new();
    };
    let mut idents = Unique::default();
    let mut inputs = Vec::new();
    for (position, io) in start
        .outputs
        .iter()
        .filter(|io| io.group.as_deref() != Some("context"))
        .enumerate()
    {
        // A flow that a streaming card feeds gets each record as `record` and the card's extra
        // values as `state`, whatever the Okta Workflows inputs were called.
        let (ident, shape) = match (streamed, position) {
            (Some(shape), 0) => ("record".to_owned(), shape.clone()),
            (Some(_), 1) => ("state".to_owned(), Shape::Plain),
            _ => (names::input_name(&io.key), Shape::Plain),
        };
        let ident = idents.take(&ident, '_', 60);
        inputs.push(HelperInput {
            okta: io.key.clone(),
            kind: input_kind(io),
            ident,
            shape,
        });
    }
    inputs
}

/// The idflow input type of an Okta Workflows field.
pub(crate) fn input_kind(io: &Io) -> &'static str {
    if io.collection {
        return "list";
    }
    match io.ty {
        IoType::String => "text",
        IoType::Number => "number",
        IoType::Boolean => "boolean",
        IoType::Date => "datetime",
        IoType::Object(_) => "object",
        _ => "any",
    }
}

/// The idflow column type of an Okta Workflows table column type.
fn column_type(kind: &str) -> &'static str {
    match kind {
        "dec" | "int" | "num" | "number" => "number",
        "bln" | "bool" | "boolean" => "boolean",
        "dte" | "date" | "datetime" => "datetime",
        "obj" | "json" | "object" => "json",
        _ => "text",
    }
}

/// A value for a card input: typed into the card, or an expression from a pin.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Lit(Value),
    Out(Out),
}

impl Val {
    /// Nothing typed and nothing pinned (Okta Workflows leaves unused inputs as `""`, `[]`, `{}`
    /// or `null`).
    pub fn is_unset(&self) -> bool {
        match self {
            Val::Lit(Value::Null) => true,
            Val::Lit(Value::String(s)) => s.is_empty(),
            Val::Lit(Value::Array(a)) => a.is_empty(),
            Val::Lit(Value::Object(o)) => o.is_empty(),
            _ => false,
        }
    }

    /// The literal text, when the value is literal text.
    pub fn text(&self) -> Option<&str> {
        match self {
            Val::Lit(Value::String(s)) => Some(s),
            _ => None,
        }
    }
}

/// Where a pin comes from: the source card's uuid, its output id, and the conversion on the way.
type PinSource = (String, String, Option<crate::pack::Convert>);

/// Where a Return card's values go in an inline body: a `flow.assign` with this id.
#[derive(Debug, Clone)]
struct InlineReturn {
    id: String,
}

/// The conversion of one flow.
pub(crate) struct Cx<'a> {
    pub index: &'a Index<'a>,
    pub plan: &'a FlowPlan<'a>,
    ids: Unique,
    /// (card uuid, output id) → the output's value.
    outs: HashMap<(String, String), Out>,
    /// (card uuid, input id) → (source card uuid, output id, conversion).
    pins: HashMap<(String, String), Vec<PinSource>>,
    /// Every card of the flow (inline sub-flows included), by uuid.
    cards: HashMap<String, &'a Card>,
    /// Expand cards being resolved (a malformed export could make them refer to each other).
    expanding: std::collections::HashSet<String>,
    /// Step ids of converted cards, by card uuid.
    card_ids: HashMap<String, String>,
    /// The bodies of inline sub-flows, to know which cards a branch holds.
    inline_return: Vec<InlineReturn>,
    /// Values of `context` inputs of the card whose inline body is being converted, by key.
    context: Vec<HashMap<String, Out>>,
    /// The loop item, inside an inline loop body.
    pub(crate) item: Option<Out>,
    pub unconverted: Vec<Unconverted>,
    /// Notes on approximations, for the flow's header comment.
    pub notes: Vec<String>,
    /// Whether any approximation was made.
    pub approximate: bool,
    pub connections: BTreeSet<ConnectionUse>,
    /// Secrets (name → reference) the flow reads with `secret('…')`.
    pub secrets: BTreeMap<String, String>,
    /// Variables (name → placeholder value) the flow reads as `vars.…`.
    pub vars: BTreeMap<String, Value>,
    /// The trigger kind, for cards whose meaning depends on it (Return Error If in API flows).
    pub trigger_kind: &'static str,
    /// Whether the flow has a Return card (an API endpoint then answers synchronously).
    pub returns_value: bool,
    /// Comments waiting for the next step.
    pending_comments: Vec<String>,
}

impl<'a> Cx<'a> {
    fn new(index: &'a Index<'a>, plan: &'a FlowPlan<'a>) -> Cx<'a> {
        let mut pins = HashMap::new();
        visit_cards(&plan.flo.body, &mut |card| {
            for pin in &card.pins {
                pins.entry((pin.target.clone(), pin.input.clone()))
                    .or_insert_with(Vec::new)
                    .push((card.uuid.clone(), pin.output.clone(), pin.convert.clone()));
            }
        });
        let mut cards = HashMap::new();
        collect_cards(&plan.flo.body, &mut cards);
        Cx {
            index,
            plan,
            cards,
            expanding: std::collections::HashSet::new(),
            ids: Unique::default(),
            outs: HashMap::new(),
            pins,
            card_ids: HashMap::new(),
            inline_return: Vec::new(),
            context: Vec::new(),
            item: None,
            unconverted: Vec::new(),
            notes: Vec::new(),
            approximate: false,
            connections: BTreeSet::new(),
            secrets: BTreeMap::new(),
            vars: BTreeMap::new(),
            trigger_kind: "manual",
            returns_value: false,
            pending_comments: Vec::new(),
        }
    }

    /// The step id of a card (from its display name), made once and reused.
    pub fn id(&mut self, card: &Card) -> String {
        if let Some(id) = self.card_ids.get(&card.uuid) {
            return id.clone();
        }
        let base = names::ident(&card.name, "step");
        let id = self.ids.take(&base, '_', 60);
        self.card_ids.insert(card.uuid.clone(), id.clone());
        id
    }

    /// A fresh step id for an extra step.
    pub fn fresh(&mut self, base: &str) -> String {
        let base = names::ident(base, "step");
        self.ids.take(&base, '_', 60)
    }

    /// Records an approximation.
    pub fn approx(&mut self, card: &Card, note: impl Into<String>) {
        self.approximate = true;
        let note = format!("{}: {}", card.name, note.into());
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    /// Sets the value of a card's output.
    pub fn set_out(&mut self, card: &Card, output: &Io, out: Out) {
        self.outs
            .insert((card.uuid.clone(), output.id.clone()), out);
    }

    /// Sets every output of a card from a function of the output.
    pub fn set_outs(&mut self, card: &Card, mut f: impl FnMut(&Io) -> Out) {
        for output in &card.outputs {
            let out = f(output);
            self.set_out(card, output, out);
        }
    }

    /// Registers a card's outputs as `steps.<id>.<key>` (the outputs of a `flow.assign` whose
    /// fields are the card's output keys).
    pub fn outs_by_key(&mut self, card: &Card, id: &str) {
        let base = Out::step(id);
        self.set_outs(card, |io| {
            let mut out = base.clone();
            out.path.push(expr::Seg::Key(io.key.clone()));
            out
        });
    }

    /// The value of an input: its pin, the loop item for a For Each item input, or what was typed.
    pub fn val(&mut self, card: &Card, io: &Io) -> Val {
        if let Some(sources) = self.pins.get(&(card.uuid.clone(), io.id.clone())).cloned()
            && let Some((source, output, convert)) = sources.last()
        {
            let out = self.out_of(card, source, output);
            let out = match convert {
                Some(c) => out.convert(&c.kind, c.force_wrap),
                None => out,
            };
            self.note_read(card, &out);
            return Val::Out(out);
        }
        if let Some(proxy) = &io.proxy
            && proxy.dynamic
            && let Some(item) = &self.item
        {
            return Val::Out(item.project_path(&proxy.path));
        }
        Val::Lit(io.data.clone())
    }

    /// Records the approximation of a value a card reads.
    fn note_read(&mut self, card: &Card, out: &Out) {
        if out.approximate {
            let note = out
                .note
                .clone()
                .unwrap_or_else(|| "reads a value idflow does not give exactly".into());
            self.approx(card, note);
        }
    }

    /// The value of an input, without the pin's type conversion (for cards that can take the
    /// value as it is, such as a response body given as an object instead of JSON text).
    pub fn val_unconverted(&mut self, card: &Card, io: &Io) -> Val {
        if let Some(sources) = self.pins.get(&(card.uuid.clone(), io.id.clone())).cloned()
            && let Some((source, output, _)) = sources.last()
        {
            let out = self.out_of(card, source, output);
            self.note_read(card, &out);
            return Val::Out(out);
        }
        self.val(card, io)
    }

    /// The value of the input with this key (group ignored), or `null` when the card has none.
    pub fn val_key(&mut self, card: &Card, key: &str) -> Val {
        match card.input(None, key) {
            Some(io) => self.val(card, io),
            None => Val::Lit(Value::Null),
        }
    }

    /// The value of the input with this group and key.
    pub fn val_in(&mut self, card: &Card, group: &str, key: &str) -> Val {
        match card.input(Some(group), key) {
            Some(io) => self.val(card, io),
            None => Val::Lit(Value::Null),
        }
    }

    /// Every value pinned into an input (a Join input takes one per branch).
    pub fn sources(&mut self, card: &Card, io: &Io) -> Vec<(String, Out)> {
        let sources = self
            .pins
            .get(&(card.uuid.clone(), io.id.clone()))
            .cloned()
            .unwrap_or_default();
        sources
            .into_iter()
            .map(|(source, output, convert)| {
                let out = self.out_of(card, &source, &output);
                let out = match convert {
                    Some(c) => out.convert(&c.kind, c.force_wrap),
                    None => out,
                };
                self.note_read(card, &out);
                (source, out)
            })
            .collect()
    }

    fn out_of(&mut self, card: &Card, source: &str, output: &str) -> Out {
        if let Some(out) = self.outs.get(&(source.to_owned(), output.to_owned())) {
            return out.clone();
        }
        if let Some(expand) = self.cards.get(source).copied()
            && expand.address.kernel
            && expand.address.channel == "object"
            && expand.address.action == "expand"
            && self.expanding.insert(source.to_owned())
        {
            let out = self.expand(expand, output);
            self.expanding.remove(source);
            self.outs
                .insert((source.to_owned(), output.to_owned()), out.clone());
            return out;
        }
        self.approx(
            card,
            "an input is mapped from a value that could not be converted; it reads as empty",
        );
        Out::constant("none")
    }

    /// An output of an expand card: the field at its `key` path inside the expanded object.
    fn expand(&mut self, card: &Card, output: &str) -> Out {
        let Some(io) = card.outputs.iter().find(|io| io.id == output) else {
            return Out::constant("none");
        };
        let path: Vec<String> = card
            .outputs
            .iter()
            .find(|k| k.group == io.group && k.key == "key")
            .and_then(|k| k.data.as_array())
            .map(|segments| {
                segments
                    .iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if io.key == "key" {
            return Out::new(expr::literal(&Value::Array(
                path.into_iter().map(Value::String).collect(),
            )));
        }
        let object = match card.input(None, "object") {
            Some(input) => self.val(card, input),
            None => Val::Lit(Value::Null),
        };
        let mut out = match object {
            Val::Out(out) => out,
            Val::Lit(value) => Out::new(expr::literal(&value)),
        };
        for segment in &path {
            out = out.project(segment);
        }
        out
    }

    /// A value as one expression, keeping its type. A list of records used whole gets a
    /// `list.map` step first that rebuilds Okta Workflows' field names.
    pub fn expr(&mut self, val: &Val, steps: &mut Vec<Step>) -> String {
        match val {
            Val::Lit(value) => expr::literal(value),
            Val::Out(out) => {
                match out.whole() {
                    Whole::Expr(text) => text,
                    Whole::NeedsList { list, item } => {
                        let id = self.fresh("okta_fields");
                        steps.push(
                        Step::card(
                            Some(id.clone()),
                            "list.map",
                            vec![
                                ("list".into(), Tv::expr(&list)),
                                ("expression".into(), Tv::text(&item)),
                            ],
                        )
                        .with_comment("The list with Okta Workflows' field names, as the next step expects"),
                    );
                        format!("steps.{id}")
                    }
                }
            }
        }
    }

    /// A value as a field value: a literal, or one expression that keeps its type.
    pub fn tv(&mut self, val: &Val, steps: &mut Vec<Step>) -> Tv {
        match val {
            Val::Lit(value) => Tv::json(value),
            Val::Out(_) => {
                let text = self.expr(val, steps);
                Tv::expr(&text)
            }
        }
    }

    /// A value inside text: literal text escaped, or `{{ expression }}`.
    pub fn inline(&mut self, val: &Val, steps: &mut Vec<Step>) -> String {
        match val {
            Val::Lit(Value::String(s)) => crate::flow::literal_text(s),
            Val::Lit(Value::Null) => String::new(),
            Val::Lit(other) => crate::flow::literal_text(&other.to_string()),
            Val::Out(_) => {
                let text = self.expr(val, steps);
                format!("{{{{ {text} }}}}")
            }
        }
    }

    /// A value as it is (no field renaming), keeping its shape: for cards that pass values on
    /// (Assign, list items, Get Multiple).
    pub fn raw(&mut self, val: &Val) -> (String, Out) {
        match val {
            Val::Lit(value) => {
                let text = expr::literal(value);
                (text.clone(), Out::new(text))
            }
            Val::Out(out) => (out.read(), out.clone()),
        }
    }

    /// Uses a connection; returns its name.
    pub fn use_connection(&mut self, card: &Card) -> ConnectionUse {
        let connection = self.index.connection(card);
        self.connections.insert(connection.clone());
        connection
    }

    /// Declares a secret the flow reads; returns the template that reads it.
    pub fn secret(&mut self, name: &str, reference: &str) -> String {
        self.secrets.insert(name.to_owned(), reference.to_owned());
        format!("{{{{ secret('{name}') }}}}")
    }

    /// Declares a variable the flow reads; returns the expression that reads it.
    pub fn var(&mut self, name: &str, placeholder: Value) -> String {
        self.vars.entry(name.to_owned()).or_insert(placeholder);
        format!("vars.{name}")
    }

    /// The plan of a helper flow named by a `flo` input.
    pub fn helper(&mut self, card: &Card, key: &str) -> Option<&'a FlowPlan<'a>> {
        let uuid = card
            .input(None, key)
            .or_else(|| card.inputs.iter().find(|io| io.ty == IoType::Flo))
            .and_then(|io| io.data.as_str())?;
        self.index.flows.get(uuid)
    }

    /// The `with` of a call to `helper`: each of its inputs, from the card's input of the same key.
    pub fn helper_with(
        &mut self,
        card: &Card,
        helper: &FlowPlan<'_>,
        skip: &[&str],
        steps: &mut Vec<Step>,
    ) -> Vec<(String, Tv)> {
        let mut with = Vec::new();
        for input in &helper.inputs {
            let io = card.inputs.iter().find(|io| {
                io.key == input.okta
                    && io.group.as_deref() != Some("context")
                    && !skip.contains(&io.key.as_str())
            });
            let value = match io {
                Some(io) => {
                    let val = self.val(card, io);
                    self.tv(&val, steps)
                }
                None => Tv::Null,
            };
            with.push((input.ident.clone(), value));
        }
        with
    }

    /// Converts a body that runs inline (If Error, If/ElseIf, inline loops): its start card's
    /// outputs take the `context` values given, and its Return becomes a `flow.assign` with id
    /// `return_id`.
    pub fn inline_body(
        &mut self,
        body: &Body,
        context: HashMap<String, Out>,
        item_fields: Option<Out>,
        return_id: &str,
    ) -> Vec<Step> {
        self.context.push(context);
        self.inline_return.push(InlineReturn {
            id: return_id.to_owned(),
        });
        let linear = structure::linearise(body);
        if let Some(start) = linear.start.and_then(|i| body.cards.get(i)) {
            self.bind_inline_start(start, item_fields.as_ref());
        }
        let mut steps = self.nodes(body, &linear.nodes);
        self.note_unreachable(body, &linear.unreachable);
        self.inline_return.pop();
        self.context.pop();
        if steps.is_empty() {
            steps.push(Step::placeholder(
                "Nothing to do here in the Okta Workflows flow",
            ));
        }
        steps
    }

    fn bind_inline_start(&mut self, start: &Card, item: Option<&Out>) {
        let context = self.context.last().cloned().unwrap_or_default();
        for output in &start.outputs {
            let out = if output.group.as_deref() == Some("context") {
                match context.get(&output.key) {
                    Some(out) => out.clone(),
                    None if output.key == "error" => error_out(),
                    None => context_out(&output.key, self.trigger_kind),
                }
            } else {
                match item {
                    Some(item) => item.project(&output.key),
                    None => Out::constant("none"),
                }
            };
            self.set_out(start, output, out);
        }
    }

    /// The id a Return card writes to inside an inline body, or `None` at the top of the flow.
    pub fn inline_return_id(&self) -> Option<String> {
        self.inline_return.last().map(|r| r.id.clone())
    }

    /// The `context` inputs of a card that holds inline bodies, by key.
    pub fn context_of(&mut self, card: &Card) -> HashMap<String, Out> {
        let mut context = HashMap::new();
        for io in card
            .inputs
            .iter()
            .filter(|io| io.group.as_deref() == Some("context"))
        {
            let val = self.val(card, io);
            let out = match val {
                Val::Out(out) => out,
                Val::Lit(value) => Out::new(expr::literal(&value)),
            };
            context.insert(io.key.clone(), out);
        }
        context
    }

    /// Converts linearised nodes.
    pub fn nodes(&mut self, body: &Body, nodes: &[Node]) -> Vec<Step> {
        let mut steps = Vec::new();
        for node in nodes {
            match node {
                Node::Card(i) => {
                    if let Some(card) = body.cards.get(*i) {
                        self.card(card, &mut steps);
                    }
                }
                Node::If {
                    card,
                    then,
                    otherwise,
                    join,
                } => {
                    let Some(if_card) = body.cards.get(*card) else {
                        continue;
                    };
                    kernel::if_else(self, body, if_card, then, otherwise, *join, &mut steps);
                }
            }
        }
        if !self.pending_comments.is_empty()
            && let Some(last) = steps.last_mut()
        {
            last.comments.append(&mut self.pending_comments);
        }
        steps
    }

    /// Converts one card, or writes a `flow.fail` step naming it.
    pub fn card(&mut self, card: &Card, steps: &mut Vec<Step>) {
        let address = &card.address;
        if address.kernel && address.channel == "control" {
            match address.action.as_str() {
                "noop" => return,
                "comment" => {
                    if let Some(text) = &card.comment {
                        self.pending_comments.extend(
                            text.lines()
                                .map(str::trim)
                                .filter(|l| !l.is_empty())
                                .map(str::to_owned),
                        );
                    }
                    return;
                }
                _ => {}
            }
        }
        let before = steps.len();
        let outcome = match mapping::lookup(address) {
            Some(entry) => match entry.fidelity {
                Fidelity::NeedsCard(missing) => Err(Gap::new(format!("needs card {missing}"))),
                Fidelity::NoEquivalent => Err(Gap::new(entry.note)),
                Fidelity::Approximate => {
                    let result = (entry.convert)(self, card, steps);
                    if result.is_ok() && !entry.note.is_empty() {
                        self.approx(card, entry.note);
                    }
                    result
                }
                _ => (entry.convert)(self, card, steps),
            },
            None => Err(Gap::new(format!(
                "no idflow equivalent known for `{}` cards",
                address.key()
            ))),
        };
        match outcome {
            Ok(()) => {
                if let Some(retry) = card.policy.retry.filter(|r| *r > 0)
                    && let Some(step) = steps[before..].iter_mut().rev().find(|s| is_io_card(s))
                {
                    step.retry = Some(Retry {
                        max: (retry + 1).min(10),
                        backoff_ms: card.policy.delay_ms.unwrap_or(1000).clamp(1, 3_600_000),
                    });
                }
            }
            Err(gap) => {
                steps.truncate(before);
                self.unconverted.push(Unconverted {
                    card: card.name.clone(),
                    address: address.raw.clone(),
                    reason: gap.reason.clone(),
                });
                let message = format!(
                    "Okta Workflows card `{}` ({}) was not imported: {}; finish this step by hand",
                    card.name,
                    address.key(),
                    gap.reason
                );
                let id = self.id(card);
                steps.push(
                    Step::card(
                        Some(id),
                        "flow.fail",
                        vec![
                            ("message".into(), Tv::text(&message)),
                            ("code".into(), Tv::text("not_imported")),
                        ],
                    )
                    .with_comment(format!("TODO: {} ({})", card.name, gap.reason)),
                );
                for output in &card.outputs {
                    self.set_out(card, output, Out::constant("none"));
                }
            }
        }
        if !self.pending_comments.is_empty()
            && let Some(first) = steps.get_mut(before)
        {
            let mut comments = std::mem::take(&mut self.pending_comments);
            comments.append(&mut first.comments);
            first.comments = comments;
        }
    }

    fn note_unreachable(&mut self, body: &Body, unreachable: &[usize]) {
        for card in unreachable.iter().filter_map(|i| body.cards.get(*i)) {
            let note = format!(
                "{}: not connected to the flow in Okta Workflows (it never ran), left out",
                card.name
            );
            if !self.notes.contains(&note) {
                self.notes.push(note);
            }
        }
    }
}

fn is_io_card(step: &Step) -> bool {
    match &step.kind {
        StepKind::Card { card, .. } => ["okta.", "oig.", "http.", "table.", "email.", "slack."]
            .iter()
            .any(|family| card.starts_with(family)),
        _ => false,
    }
}

/// The `error` an If Error handler sees, with Okta Workflows' field names.
fn error_out() -> Out {
    Out::new("error").shaped(error_shape())
}

fn error_shape() -> Shape {
    use crate::expr::{Fallback, Field, FieldRef, Record};
    let field = |okta: &str, to: FieldRef, approximate: bool| Field {
        okta: okta.into(),
        to,
        required: false,
        shape: Shape::Plain,
        approximate,
    };
    Shape::Record(std::rc::Rc::new(Record {
        name: "error",
        fields: vec![
            field("message", FieldRef::Path(expr::path("message")), false),
            field("method", FieldRef::Path(expr::path("code")), true),
            field("flo", FieldRef::Const("run.flow".into()), true),
            field("execution", FieldRef::Const("run.id".into()), true),
        ],
        fallback: Fallback::LowerFirst,
    }))
}

/// The `context` outputs of a flow's first card.
fn context_out(key: &str, trigger: &str) -> Out {
    match key {
        "execution_id" => Out::new("run.id"),
        "execution_time" if trigger == "schedule" => Out::new("input.scheduled_for"),
        "execution_time" => Out::new("run.started_at"),
        "error" => error_out(),
        _ => Out::constant("none"),
    }
}

/// A duration in idflow's notation (`500ms`, `3m`, `1h30m`).
pub fn duration_text(ms: u64) -> String {
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let mut seconds = ms / 1000;
    let mut out = String::new();
    for (unit, size) in [("h", 3600), ("m", 60)] {
        if seconds >= size {
            out.push_str(&format!("{}{unit}", seconds / size));
            seconds %= size;
        }
    }
    if seconds > 0 || out.is_empty() {
        out.push_str(&format!("{seconds}s"));
    }
    out
}

/// The result of converting one flow.
#[derive(Debug, Clone)]
pub struct FlowResult {
    pub file: FlowFile,
    pub file_name: String,
    pub okta_name: String,
    pub unconverted: Vec<Unconverted>,
    pub approximate: bool,
    pub connections: BTreeSet<ConnectionUse>,
    pub secrets: BTreeMap<String, String>,
    pub vars: BTreeMap<String, Value>,
    /// Delegated flows' callers the project must declare.
    pub callers: BTreeSet<String>,
}

/// Converts one flow.
pub(crate) fn convert_flow(index: &Index<'_>, plan: &FlowPlan<'_>) -> FlowResult {
    let mut cx = Cx::new(index, plan);
    let body = &plan.flo.body;
    let linear = structure::linearise(body);
    let start = linear.start.and_then(|i| body.cards.get(i));
    cx.returns_value = body.cards.iter().any(|c| {
        c.address.kernel
            && c.address.channel == "control"
            && matches!(c.address.action.as_str(), "return" | "returnRaw")
    }) || body
        .cards
        .iter()
        .any(|c| c.address.channel == "httpfunctions" && c.address.action == "close");
    let mut callers = BTreeSet::new();
    let (trigger, mut steps) = match start {
        Some(start) => trigger(&mut cx, body, start, &linear, &mut callers),
        None => {
            let steps = cx.nodes(body, &linear.nodes);
            (Trigger::Manual, steps)
        }
    };
    cx.note_unreachable(body, &linear.unreachable);
    if steps.is_empty() {
        steps.push(Step::placeholder(
            "The Okta Workflows flow has no cards after its trigger",
        ));
    }
    let mut header = vec![format!(
        "Imported from Okta Workflows flow \"{}\" ({}).",
        names::one_line(&plan.flo.name),
        plan.flo.id
    )];
    if !cx.unconverted.is_empty() {
        header.push(format!(
            "{} card(s) could not be converted: search for TODO, each stops the run with flow.fail.",
            cx.unconverted.len()
        ));
    }
    if !cx.notes.is_empty() {
        header.push("Differences from the Okta Workflows flow:".into());
        for note in &cx.notes {
            header.push(format!("- {}", names::one_line(note)));
        }
    }
    let description = Some(plan.flo.description.trim())
        .filter(|d| !d.is_empty())
        .map(names::one_line)
        .or_else(|| Some(names::one_line(&plan.flo.name)));
    FlowResult {
        file: FlowFile {
            header,
            name: plan.name.clone(),
            description,
            trigger,
            steps,
        },
        file_name: plan.file.clone(),
        okta_name: plan.flo.name.clone(),
        unconverted: cx.unconverted,
        approximate: cx.approximate,
        connections: cx.connections,
        secrets: cx.secrets,
        vars: cx.vars,
        callers,
    }
}

/// The trigger a flow's first card gives, and the flow's steps.
fn trigger(
    cx: &mut Cx<'_>,
    body: &Body,
    start: &Card,
    linear: &structure::Linear,
    callers: &mut BTreeSet<String>,
) -> (Trigger, Vec<Step>) {
    let address = &start.address;
    match (address.channel.as_str(), address.action.as_str()) {
        ("control", "callable") if cx.plan.flo.scheduled => {
            cx.trigger_kind = "schedule";
            for output in &start.outputs {
                let out = context_out(&output.key, "schedule");
                cx.set_out(start, output, out);
            }
            let trigger = schedule(cx, start);
            (trigger, cx.nodes(body, &linear.nodes))
        }
        ("control", "callable") => {
            cx.trigger_kind = "helper";
            let inputs: Vec<(String, &'static str)> = cx
                .plan
                .inputs
                .iter()
                .map(|i| (i.ident.clone(), i.kind))
                .collect();
            let plan = cx.plan;
            for output in &start.outputs {
                let out = if output.group.as_deref() == Some("context") {
                    context_out(&output.key, "helper")
                } else {
                    match plan.inputs.iter().find(|i| i.okta == output.key) {
                        Some(input) => {
                            let mut out = Out::new("input").shaped(input.shape.clone());
                            out.path.push(expr::Seg::Key(input.ident.clone()));
                            out
                        }
                        None => Out::constant("none"),
                    }
                };
                cx.set_out(start, output, out);
            }
            (Trigger::Helper { inputs }, cx.nodes(body, &linear.nodes))
        }
        ("http", "accept") => {
            cx.trigger_kind = "api";
            okta::api_endpoint(cx, start);
            let auth = okta::api_auth(cx, start);
            let steps = cx.nodes(body, &linear.nodes);
            (
                Trigger::Api {
                    auth,
                    sync: cx.returns_value,
                },
                steps,
            )
        }
        ("http", "delegated") => {
            cx.trigger_kind = "delegated";
            let (inputs, caller) = okta::delegated(cx, start);
            callers.insert(caller.clone());
            let steps = cx.nodes(body, &linear.nodes);
            (
                Trigger::Delegated {
                    inputs,
                    callers: vec![caller],
                },
                steps,
            )
        }
        _ if structure::is_event_card(start) => {
            cx.trigger_kind = "event";
            okta::event_flow(cx, body, start, linear)
        }
        _ => {
            cx.approx(
                start,
                "this trigger card has no idflow equivalent; the flow runs by hand",
            );
            (Trigger::Manual, cx.nodes(body, &linear.nodes))
        }
    }
}

/// A scheduled flow's trigger: Okta Workflows' cron fields as an EventBridge cron expression.
fn schedule(cx: &mut Cx<'_>, start: &Card) -> Trigger {
    let Some(cron) = cx.plan.flo.cron.clone() else {
        cx.approx(
            start,
            "the export has no schedule; it runs daily at 09:00 UTC",
        );
        return Trigger::Schedule {
            cron: "0 9 * * ? *".into(),
            timezone: None,
        };
    };
    let field = |text: &str, first: u32| -> String {
        let text = text.trim();
        if text.is_empty() {
            return "*".into();
        }
        // EventBridge writes steps from a start value (`0/15`), not from `*`.
        match text.strip_prefix("*/") {
            Some(step) => format!("{first}/{step}"),
            None => text.to_owned(),
        }
    };
    let minutes = field(&cron.minutes, 0);
    let hours = field(&cron.hours, 0);
    let day_of_month = field(&cron.day_of_month, 1);
    let month = field(&cron.month, 1);
    let day_of_week = cron.day_of_week.trim();
    let (day_of_month, day_of_week) = if day_of_week.is_empty() || day_of_week == "*" {
        (day_of_month, "?".to_owned())
    } else {
        // Okta Workflows counts weekdays from 0 (Sunday), EventBridge from 1 (SUN).
        let days: Option<Vec<&str>> = day_of_week
            .split(',')
            .map(|d| match d.trim() {
                "0" | "7" => Some("SUN"),
                "1" => Some("MON"),
                "2" => Some("TUE"),
                "3" => Some("WED"),
                "4" => Some("THU"),
                "5" => Some("FRI"),
                "6" => Some("SAT"),
                _ => None,
            })
            .collect();
        match days {
            Some(days) => ("?".to_owned(), days.join(",")),
            None => {
                cx.approx(
                    start,
                    format!("weekday list `{day_of_week}` kept as written"),
                );
                ("?".to_owned(), day_of_week.to_owned())
            }
        }
    };
    let expression = format!("{minutes} {hours} {day_of_month} {month} {day_of_week} *");
    let zone = timezone(cron.time_zone.trim());
    let timezone = match zone {
        Some(zone) => Some(zone),
        None if cron.time_zone.trim().is_empty() => None,
        None => {
            cx.approx(
                start,
                format!(
                    "time zone `{}` is not an IANA name; UTC is used",
                    cron.time_zone
                ),
            );
            None
        }
    };
    if domain::schedule::Schedule::parse(&format!("cron({expression})"), timezone.as_deref())
        .is_err()
    {
        cx.approx(
            start,
            format!(
                "schedule `{expression}` is not a valid EventBridge cron; it runs daily at 09:00"
            ),
        );
        return Trigger::Schedule {
            cron: "0 9 * * ? *".into(),
            timezone,
        };
    }
    Trigger::Schedule {
        cron: expression,
        timezone,
    }
}

/// An IANA zone name for an Okta Workflows zone, when there is one.
pub(crate) fn timezone(zone: &str) -> Option<String> {
    const ALIASES: &[(&str, &str)] = &[
        ("America/Pacific", "America/Los_Angeles"),
        ("America/Mountain", "America/Denver"),
        ("America/Central", "America/Chicago"),
        ("America/Eastern", "America/New_York"),
    ];
    if zone.is_empty() {
        return None;
    }
    let zone = ALIASES
        .iter()
        .find(|(alias, _)| *alias == zone)
        .map_or(zone, |(_, iana)| iana);
    // The core's zone type knows the IANA database the schedules are checked against.
    zone.parse::<domain::datetime::Zone>()
        .ok()
        .map(|_| zone.to_owned())
}

/// The loop body of a For Each over a helper flow, ignoring each item's errors when asked.
pub(crate) fn loop_over_helper(
    helper: String,
    with: Vec<(String, Tv)>,
    ignore_errors: bool,
) -> LoopBody {
    if ignore_errors {
        LoopBody::Steps(vec![Step::of(
            None,
            StepKind::Try {
                steps: vec![Step::card(
                    None,
                    "flow.call",
                    vec![
                        ("flow".into(), Tv::Str(helper)),
                        ("with".into(), Tv::Map(with)),
                    ],
                )],
                catch: vec![Step::placeholder(
                    "For Each - Ignore Errors: an item that fails does not stop the others",
                )],
            },
        )])
    } else {
        LoopBody::Flow { flow: helper, with }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_use_idflow_notation() {
        assert_eq!(duration_text(180_000), "3m");
        assert_eq!(duration_text(1_000), "1s");
        assert_eq!(duration_text(5_400_000), "1h30m");
        assert_eq!(duration_text(1_500), "1500ms");
        assert_eq!(duration_text(0), "0s");
    }

    #[test]
    fn time_zones_are_iana_names() {
        assert_eq!(
            timezone("America/Los_Angeles").as_deref(),
            Some("America/Los_Angeles")
        );
        assert_eq!(
            timezone("America/Pacific").as_deref(),
            Some("America/Los_Angeles")
        );
        assert_eq!(timezone("GMT").as_deref(), Some("GMT"));
        assert_eq!(timezone("Mars/Olympus"), None);
    }
}
