//! Support for test binaries apart from `it`: a private broker node, and
//! the check that a projector's view equals the fold of the events.

pub mod node;
pub mod view;
