//! A small element tree over `quick-xml`, for the XML parts of DOCX.
//!
//! Hostile XML is refused rather than tamed: a DOCTYPE (the only way to
//! define entities, hence "billion laughs") is an error, entity references
//! other than the five predefined ones and character references are errors,
//! and nesting deeper than the limit is an error. Office writers produce none
//! of these.

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use super::ParseError;

/// An element: its qualified name (`w:p`), attributes and children.
#[derive(Debug, Default)]
pub struct Element {
    /// Qualified name as written, prefix included (`w:tbl`).
    pub name: String,
    /// Attributes as (qualified name, unescaped value).
    pub attrs: Vec<(String, String)>,
    /// Child nodes in document order.
    pub children: Vec<Node>,
}

/// A node of the tree.
#[derive(Debug)]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Character data.
    Text(String),
}

impl Element {
    /// The value of attribute `name` (qualified, as `w:val`).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Child elements.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child element called `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.name == name)
    }

    /// Follows a path of child names (`["w:pPr", "w:pStyle"]`).
    pub fn path(&self, names: &[&str]) -> Option<&Element> {
        names.iter().try_fold(self, |e, n| e.child(n))
    }

    /// The text directly inside this element.
    pub fn own_text(&self) -> String {
        self.children
            .iter()
            .filter_map(|n| match n {
                Node::Text(t) => Some(t.as_str()),
                Node::Element(_) => None,
            })
            .collect()
    }
}

/// Parses `xml` into its root element, refusing nesting past `max_depth`.
pub fn parse(xml: &str, max_depth: usize) -> Result<Element, ParseError> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = vec![Element::default()];
    loop {
        let event = reader
            .read_event()
            .map_err(|e| ParseError::corrupt(format!("malformed XML: {e}")))?;
        match event {
            Event::Start(start) => {
                if stack.len() > max_depth {
                    return Err(ParseError::too_large(format!(
                        "XML nested deeper than {max_depth} levels"
                    )));
                }
                stack.push(element_of(&start));
            }
            Event::Empty(start) => push_node(&mut stack, Node::Element(element_of(&start))),
            Event::End(_) => {
                let done = stack.pop().unwrap_or_default();
                if stack.is_empty() {
                    return Err(ParseError::corrupt("malformed XML: unbalanced end tag"));
                }
                push_node(&mut stack, Node::Element(done));
            }
            Event::Text(text) => push_node(&mut stack, Node::Text(text.xml10_content().into())),
            Event::CData(data) => push_node(&mut stack, Node::Text(data.into_inner().into_owned())),
            Event::GeneralRef(r) => {
                let c = resolve_reference(&r.xml10_content(), r.resolve_char_ref().ok().flatten())?;
                push_node(&mut stack, Node::Text(c.to_string()));
            }
            Event::DocType(_) => {
                return Err(ParseError::corrupt(
                    "XML with a DOCTYPE declaration (entity definitions are refused)",
                ));
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
        }
    }
    let mut root = stack.pop().unwrap_or_default();
    if !stack.is_empty() {
        return Err(ParseError::corrupt("malformed XML: unclosed elements"));
    }
    root.children
        .drain(..)
        .find_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
        .ok_or_else(|| ParseError::corrupt("XML part has no root element"))
}

/// The character an entity or character reference stands for.
fn resolve_reference(name: &str, char_ref: Option<char>) -> Result<char, ParseError> {
    if let Some(c) = char_ref {
        return Ok(c);
    }
    match name {
        "amp" => Ok('&'),
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "quot" => Ok('"'),
        "apos" => Ok('\''),
        other => Err(ParseError::corrupt(format!(
            "XML uses the undefined entity &{other}; (entity definitions are refused)"
        ))),
    }
}

fn push_node(stack: &mut [Element], node: Node) {
    if let Some(top) = stack.last_mut() {
        top.children.push(node);
    }
}

fn element_of(start: &BytesStart<'_>) -> Element {
    let attrs = start
        .attributes()
        .with_checks(false)
        .filter_map(Result::ok)
        .map(|a| {
            let value = a
                .normalized_value(XmlVersion::Implicit1_0)
                .map(|v| v.into_owned())
                .unwrap_or_else(|_| a.value.clone().into_owned());
            (a.key.as_ref().to_string(), value)
        })
        .collect();
    Element {
        name: start.name().as_ref().to_string(),
        attrs,
        children: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_tree_with_references() {
        let root = parse(r#"<a x="1 &amp; 2"><b>t &lt; u &#x4E2D;</b><c/></a>"#, 10).unwrap();
        assert_eq!(root.attr("x"), Some("1 & 2"));
        assert_eq!(root.child("b").unwrap().own_text(), "t < u 中");
        assert!(root.child("c").is_some());
    }

    #[test]
    fn refuses_entity_expansion_and_depth() {
        let laughs = r#"<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><l>&b;</l>"#;
        assert_eq!(parse(laughs, 10).unwrap_err().kind, "corrupt");
        assert_eq!(parse("<l>&b;</l>", 10).unwrap_err().kind, "corrupt");
        let deep = "<a>".repeat(50) + &"</a>".repeat(50);
        assert_eq!(parse(&deep, 20).unwrap_err().kind, "too_large");
        assert_eq!(parse("<a><b></a>", 10).unwrap_err().kind, "corrupt");
    }
}
