//! From `orderings` (edges between cards) to a sequence of steps with nested branches.
//!
//! An Okta Workflows flow is a chain of cards. An If/Else card starts two branches: its `branches`
//! name the first card of each (a Noop, the branch head), each branch is a chain that ends in the
//! If/Else's Join card (the head also has an edge straight to the Join), and the flow goes on after
//! the Join. Expand cards (hidden helpers that open an object's fields) appear in the orderings with
//! self-loops and shortcuts; they carry data only and are left out here.

use std::collections::{HashMap, HashSet};

use crate::pack::{Body, Card};

/// One element of a linearised body.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A card, by index into the body's cards.
    Card(usize),
    /// An If/Else card with its two branches and its Join card.
    If {
        card: usize,
        then: Vec<Node>,
        otherwise: Vec<Node>,
        join: Option<usize>,
    },
}

/// A body as a sequence: the card that starts it (a trigger or an inline flow's input card, when
/// there is one), what follows, and the cards no edge reaches.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Linear {
    pub start: Option<usize>,
    pub nodes: Vec<Node>,
    /// Cards (other than comments, noops and expand cards) that are not on the chain.
    pub unreachable: Vec<usize>,
}

/// Whether a card starts a flow: a trigger, a helper flow's input card or an inline flow's.
pub fn is_start(card: &Card) -> bool {
    let address = &card.address;
    matches!(
        (address.channel.as_str(), address.action.as_str()),
        ("control", "callable") | ("http", "accept") | ("http", "delegated")
    ) || is_event_card(card)
}

/// Whether a card is a connector's event card (it has the webhook `data`/`type` inputs and a
/// `collection` output holding the event batch).
pub fn is_event_card(card: &Card) -> bool {
    !card.address.kernel
        && card.output(None, "collection").is_some()
        && card.input(None, "data").is_some()
        && card.input(None, "type").is_some()
}

fn is_transparent(card: &Card) -> bool {
    card.address.kernel && card.address.channel == "object" && card.address.action == "expand"
}

fn is_if(card: &Card) -> bool {
    card.address.kernel && card.address.channel == "control" && card.address.action == "if"
}

fn is_join(card: &Card) -> bool {
    card.address.kernel && card.address.channel == "control" && card.address.action == "join"
}

/// Linearises a body.
pub fn linearise(body: &Body) -> Linear {
    let by_uuid: HashMap<&str, usize> = body
        .cards
        .iter()
        .enumerate()
        .map(|(i, c)| (c.uuid.as_str(), i))
        .collect();
    let mut next: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut has_incoming: HashSet<usize> = HashSet::new();
    for (from, to) in &body.orderings {
        let (Some(&from), Some(&to)) = (by_uuid.get(from.as_str()), by_uuid.get(to.as_str()))
        else {
            continue;
        };
        if from == to || is_transparent(&body.cards[from]) || is_transparent(&body.cards[to]) {
            continue;
        }
        let list = next.entry(from).or_default();
        if !list.contains(&to) {
            list.push(to);
        }
        has_incoming.insert(to);
    }
    let heads: HashSet<usize> = body
        .cards
        .iter()
        .flat_map(|c| c.branches.iter())
        .filter_map(|(head, _)| by_uuid.get(head.as_str()).copied())
        .collect();
    let start = body
        .cards
        .iter()
        .position(is_start)
        .or_else(|| {
            (0..body.cards.len()).find(|i| {
                !has_incoming.contains(i)
                    && !heads.contains(i)
                    && next.contains_key(i)
                    && !is_transparent(&body.cards[*i])
            })
        })
        .or_else(|| {
            (0..body.cards.len()).find(|i| !heads.contains(i) && !is_transparent(&body.cards[*i]))
        });
    let mut walker = Walker {
        body,
        by_uuid: &by_uuid,
        next: &next,
        visited: HashSet::new(),
    };
    let mut linear = Linear {
        start,
        ..Linear::default()
    };
    if let Some(start) = start {
        let (mut nodes, _) = if is_start(&body.cards[start]) {
            walker.visited.insert(start);
            let first = walker.successor(start, false);
            walker.chain(first, false, 0)
        } else {
            linear.start = None;
            walker.chain(Some(start), false, 0)
        };
        linear.nodes.append(&mut nodes);
    }
    for (i, card) in body.cards.iter().enumerate() {
        let ignorable = is_transparent(card)
            || (card.address.kernel
                && card.address.channel == "control"
                && matches!(card.address.action.as_str(), "noop" | "comment" | "join"));
        if !walker.visited.contains(&i) && !ignorable && Some(i) != linear.start {
            linear.unreachable.push(i);
        }
    }
    linear
}

/// How deep If/Else cards may nest.
const MAX_NESTING: usize = 48;

struct Walker<'b> {
    body: &'b Body,
    by_uuid: &'b HashMap<&'b str, usize>,
    next: &'b HashMap<usize, Vec<usize>>,
    visited: HashSet<usize>,
}

impl Walker<'_> {
    /// The card after `card` on its chain: the first successor that is not a Join when
    /// `stop_at_join` (a branch head also points at its Join).
    fn successor(&self, card: usize, prefer_non_join: bool) -> Option<usize> {
        let list = self.next.get(&card)?;
        if prefer_non_join
            && let Some(found) = list.iter().find(|&&n| !is_join(&self.body.cards[n]))
        {
            return Some(*found);
        }
        list.first().copied()
    }

    /// Follows a chain from `first`. Returns the nodes and the Join card that ended it, if any.
    fn chain(
        &mut self,
        first: Option<usize>,
        in_branch: bool,
        depth: usize,
    ) -> (Vec<Node>, Option<usize>) {
        let mut nodes = Vec::new();
        // If/Else nests this deep at most; deeper branches are left out (and reported as cards
        // not on the chain) rather than exhausting the stack on a hostile export.
        if depth > MAX_NESTING {
            return (nodes, None);
        }
        let mut current = first;
        while let Some(card) = current {
            if is_join(&self.body.cards[card]) && in_branch {
                return (nodes, Some(card));
            }
            if !self.visited.insert(card) {
                break;
            }
            let data = &self.body.cards[card];
            if is_if(data) {
                let mut branches: Vec<(bool, usize)> = data
                    .branches
                    .iter()
                    .filter_map(|(head, value)| {
                        self.by_uuid.get(head.as_str()).map(|&i| (*value, i))
                    })
                    .collect();
                branches.sort_by_key(|(value, _)| !*value);
                let mut then = Vec::new();
                let mut otherwise = Vec::new();
                let mut join = None;
                for (value, head) in branches {
                    if !self.visited.insert(head) {
                        continue;
                    }
                    // The head's edge to its Join tells which Join this If/Else uses even when the
                    // branch itself is empty.
                    let direct_join = self
                        .next
                        .get(&head)
                        .and_then(|l| l.iter().find(|&&n| is_join(&self.body.cards[n])).copied());
                    let branch_first = self
                        .successor(head, true)
                        .filter(|n| Some(*n) != direct_join);
                    let (branch, ended_at) = self.chain(branch_first, true, depth + 1);
                    join = join.or(ended_at).or(direct_join);
                    if value {
                        then = branch;
                    } else {
                        otherwise = branch;
                    }
                }
                nodes.push(Node::If {
                    card,
                    then,
                    otherwise,
                    join,
                });
                current = match join {
                    Some(join) if self.visited.insert(join) => self.successor(join, false),
                    _ => None,
                };
                continue;
            }
            nodes.push(Node::Card(card));
            current = self.successor(card, in_branch);
        }
        (nodes, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::Address;

    fn card(uuid: &str, action: &str) -> Card {
        Card {
            uuid: uuid.into(),
            address: Address::parse(&format!("root:kernel:control:0.0.1:{action}")),
            name: action.into(),
            ..Card::default()
        }
    }

    fn edges(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn a_chain_after_its_trigger() {
        let body = Body {
            cards: vec![card("c", "let"), card("t", "callable"), card("d", "return")],
            orderings: edges(&[("t", "c"), ("c", "d")]),
        };
        let linear = linearise(&body);
        assert_eq!(linear.start, Some(1));
        assert_eq!(linear.nodes, vec![Node::Card(0), Node::Card(2)]);
        assert!(linear.unreachable.is_empty());
    }

    #[test]
    fn if_else_branches_end_at_their_join() {
        let mut if_card = card("if", "if");
        if_card.branches = vec![("h1".into(), true), ("h2".into(), false)];
        let body = Body {
            cards: vec![
                card("start", "noop"),
                if_card,
                card("h1", "noop"),
                card("h2", "noop"),
                card("a", "let"),
                card("j", "join"),
                card("after", "let"),
                card("stray", "let"),
            ],
            orderings: edges(&[
                ("start", "if"),
                ("h1", "a"),
                ("h1", "j"),
                ("a", "j"),
                ("h2", "j"),
                ("j", "after"),
            ]),
        };
        let linear = linearise(&body);
        assert_eq!(linear.start, None);
        assert_eq!(
            linear.nodes,
            vec![
                Node::Card(0),
                Node::If {
                    card: 1,
                    then: vec![Node::Card(4)],
                    otherwise: vec![],
                    join: Some(5),
                },
                Node::Card(6),
            ]
        );
        assert_eq!(linear.unreachable, vec![7]);
    }

    #[test]
    fn cycles_and_dangling_edges_end_the_walk() {
        let body = Body {
            cards: vec![card("a", "let"), card("b", "let")],
            orderings: edges(&[("a", "b"), ("b", "a"), ("b", "nowhere"), ("x", "a")]),
        };
        let linear = linearise(&body);
        assert_eq!(linear.nodes.len(), 2);
    }
}
