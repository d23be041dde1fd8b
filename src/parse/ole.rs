//! OLE compound files (the container of DOC, WPS, XLS and ET), read with
//! the `cfb` crate under the parse budget.
//!
//! `cfb` checks the container as it opens it: sector chains that loop or
//! run past the end of the file, directory entries that point outside the
//! directory, a directory tree that cycles. What it cannot check is how
//! large a stream claims to be before it is read, so every stream is read
//! through a reader bounded by what is left of `max_uncompressed_bytes`.

use std::io::{Cursor, Read, Write};

use super::{ParseError, ParseLimits};

/// The signature every compound file starts with.
pub const MAGIC: [u8; 8] = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

/// An opened compound file and the bytes its streams may still take.
pub struct Ole<'a> {
    file: cfb::CompoundFile<Cursor<&'a [u8]>>,
    budget: u64,
    what: &'static str,
}

impl<'a> Ole<'a> {
    /// Opens `bytes` as a compound file; `what` names the format in errors.
    pub fn open(
        bytes: &'a [u8],
        limits: &ParseLimits,
        what: &'static str,
    ) -> Result<Self, ParseError> {
        let file = cfb::CompoundFile::open(Cursor::new(bytes)).map_err(|e| {
            ParseError::corrupt(format!("broken {what} compound file (OLE container): {e}"))
        })?;
        Ok(Ole {
            file,
            budget: limits.max_uncompressed_bytes,
            what,
        })
    }

    /// Names of the streams at the root of the file.
    pub fn root_streams(&self) -> Vec<String> {
        self.file
            .read_root_storage()
            .filter(|e| e.is_stream())
            .map(|e| e.name().to_string())
            .collect()
    }

    /// Whether the root holds a stream called `name` (names in compound
    /// files compare without case).
    pub fn has_stream(&self, name: &str) -> bool {
        self.root_streams()
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name))
    }

    /// The whole stream `name` at the root, or `None` when there is none.
    /// Its bytes count against the budget, whatever its entry claims.
    pub fn read_stream(&mut self, name: &str) -> Result<Option<Vec<u8>>, ParseError> {
        let Some(actual) = self
            .root_streams()
            .into_iter()
            .find(|n| n.eq_ignore_ascii_case(name))
        else {
            return Ok(None);
        };
        let what = self.what;
        let mut stream = self
            .file
            .open_stream(format!("/{actual}"))
            .map_err(|e| ParseError::corrupt(format!("unreadable {what} stream {actual}: {e}")))?;
        if stream.len() > self.budget {
            return Err(self.over_budget());
        }
        let mut out = Vec::new();
        stream
            .by_ref()
            .take(self.budget + 1)
            .read_to_end(&mut out)
            .map_err(|e| ParseError::corrupt(format!("unreadable {what} stream {actual}: {e}")))?;
        if out.len() as u64 > self.budget {
            return Err(self.over_budget());
        }
        self.budget -= out.len() as u64;
        Ok(Some(out))
    }

    /// Takes `bytes` of the budget for data decoded from the streams.
    pub fn spend(&mut self, bytes: u64) -> Result<(), ParseError> {
        if bytes > self.budget {
            return Err(self.over_budget());
        }
        self.budget -= bytes;
        Ok(())
    }

    fn over_budget(&self) -> ParseError {
        ParseError::too_large(format!(
            "the {} file's streams hold more than the limit of bytes to read",
            self.what
        ))
    }
}

/// A new compound file holding one root stream: what a third-party reader
/// gets instead of the original, so that it never walks a hostile file's
/// sector chains itself.
pub fn single_stream_file(name: &str, data: &[u8]) -> Result<Vec<u8>, ParseError> {
    let write = || -> std::io::Result<Vec<u8>> {
        // Version 3 (512-byte sectors), which every reader takes.
        let mut file =
            cfb::CompoundFile::create_with_version(cfb::Version::V3, Cursor::new(Vec::new()))?;
        file.create_stream(format!("/{name}"))?.write_all(data)?;
        file.flush()?;
        Ok(file.into_inner().into_inner())
    };
    write().map_err(|e| ParseError::corrupt(format!("could not copy the {name} stream: {e}")))
}

/// A version 3 compound file (512-byte sectors, as Word and Excel write)
/// of the given root streams.
#[cfg(test)]
pub(crate) fn test_file(streams: &[(&str, &[u8])]) -> Vec<u8> {
    let mut file =
        cfb::CompoundFile::create_with_version(cfb::Version::V3, Cursor::new(Vec::new())).unwrap();
    for (name, data) in streams {
        file.create_stream(format!("/{name}"))
            .unwrap()
            .write_all(data)
            .unwrap();
    }
    file.flush().unwrap();
    file.into_inner().into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_read_within_the_budget() {
        let bytes = test_file(&[("WordDocument", &[7; 5000]), ("1Table", b"abc")]);
        let limits = ParseLimits::default();
        let mut ole = Ole::open(&bytes, &limits, "DOC").unwrap();
        assert!(ole.has_stream("worddocument"));
        assert_eq!(ole.read_stream("1Table").unwrap().unwrap(), b"abc");
        assert!(ole.read_stream("0Table").unwrap().is_none());

        let small = ParseLimits {
            max_uncompressed_bytes: 4096,
            ..ParseLimits::default()
        };
        let mut ole = Ole::open(&bytes, &small, "DOC").unwrap();
        assert_eq!(
            ole.read_stream("WordDocument").unwrap_err().kind,
            "too_large"
        );
    }

    #[test]
    fn a_copy_holds_the_one_stream() {
        let copy = single_stream_file("Workbook", b"biff").unwrap();
        let mut ole = Ole::open(&copy, &ParseLimits::default(), "XLS").unwrap();
        assert_eq!(ole.root_streams(), vec!["Workbook".to_string()]);
        assert_eq!(ole.read_stream("Workbook").unwrap().unwrap(), b"biff");
    }
}
