//! Filter: classify a parsed document's sections and keep the relevant ones.

use serde::{Deserialize, Serialize};

use crate::document::{Block, ParsedDocument};

/// Version of the classified-document layout.
pub const CLASSIFIED_SCHEMA: u32 = 1;

/// A section of the document with its category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    /// Heading path of the section.
    pub section: String,
    /// Category name.
    pub category: String,
    /// Confidence in the category, 0 to 1.
    pub score: f32,
    /// Whether extraction reads this chunk.
    pub keep: bool,
    /// The section's blocks.
    pub blocks: Vec<Block>,
}

/// The classified chunks of one document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifiedDocument {
    pub schema: u32,
    pub chunks: Vec<Chunk>,
}

/// Placeholder rule set: one chunk per top-level section, all kept.
pub fn classify(doc: &ParsedDocument) -> ClassifiedDocument {
    let mut chunks: Vec<Chunk> = Vec::new();
    for block in &doc.blocks {
        if let Block::Heading { text, .. } = block {
            chunks.push(Chunk {
                section: text.clone(),
                category: "other".into(),
                score: 0.0,
                keep: true,
                blocks: Vec::new(),
            });
        }
        if chunks.is_empty() {
            chunks.push(Chunk {
                section: String::new(),
                category: "other".into(),
                score: 0.0,
                keep: true,
                blocks: Vec::new(),
            });
        }
        chunks
            .last_mut()
            .expect("one chunk at least")
            .blocks
            .push(block.clone());
    }
    ClassifiedDocument {
        schema: CLASSIFIED_SCHEMA,
        chunks,
    }
}
