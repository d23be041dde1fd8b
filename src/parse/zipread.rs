//! Bounded reading of the zip containers DOCX and XLSX come in.
//!
//! A zip bomb is a small file whose entries decompress to gigabytes, or that
//! holds millions of entries. The declared sizes in the central directory
//! can lie, so every entry is read through a reader that stops at the budget
//! left, whatever the header says.

use std::io::{Cursor, Read};

use zip::ZipArchive;

use super::{ParseError, ParseLimits};

/// An opened container with a decompression budget shared by its entries.
pub struct BoundedZip<'a> {
    archive: ZipArchive<Cursor<&'a [u8]>>,
    budget: u64,
    limit: u64,
}

impl<'a> BoundedZip<'a> {
    /// Opens `bytes` as a zip, checking the entry count and the declared
    /// total size against `limits` before anything is decompressed.
    pub fn open(bytes: &'a [u8], limits: &ParseLimits, what: &str) -> Result<Self, ParseError> {
        let archive = ZipArchive::new(Cursor::new(bytes))
            .map_err(|e| ParseError::corrupt(format!("broken {what} zip container: {e}")))?;
        if archive.len() > limits.max_zip_entries {
            return Err(ParseError::too_large(format!(
                "the {what} holds {} zip entries, over the limit of {}",
                archive.len(),
                limits.max_zip_entries
            )));
        }
        if let Some(declared) = archive.decompressed_size()
            && declared > u128::from(limits.max_uncompressed_bytes)
        {
            return Err(ParseError::too_large(format!(
                "the {what} would decompress to {declared} bytes, over the limit of {}",
                limits.max_uncompressed_bytes
            )));
        }
        Ok(BoundedZip {
            archive,
            budget: limits.max_uncompressed_bytes,
            limit: limits.max_uncompressed_bytes,
        })
    }

    /// Whether the container has an entry called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.archive.index_for_name(name).is_some()
    }

    /// The entry names.
    pub fn names(&self) -> impl Iterator<Item = String> + '_ {
        self.archive
            .file_names()
            .filter_map(Result::ok)
            .map(|n| n.into_owned())
    }

    /// Reads entry `name` fully, or `None` when there is no such entry.
    /// Fails as `too_large` once the container's budget is spent.
    pub fn read(&mut self, name: &str) -> Result<Option<Vec<u8>>, ParseError> {
        let Some(index) = self.archive.index_for_name(name) else {
            return Ok(None);
        };
        let entry = self
            .archive
            .by_index(index)
            .map_err(|e| ParseError::corrupt(format!("unreadable zip entry {name}: {e}")))?;
        let mut data = Vec::new();
        entry
            .take(self.budget + 1)
            .read_to_end(&mut data)
            .map_err(|e| ParseError::corrupt(format!("unreadable zip entry {name}: {e}")))?;
        if data.len() as u64 > self.budget {
            return Err(ParseError::too_large(format!(
                "the zip entries decompress to more than {} bytes (a zip bomb?)",
                self.limit
            )));
        }
        self.budget -= data.len() as u64;
        Ok(Some(data))
    }

    /// Decompresses every entry into nothing, so that a container whose
    /// declared sizes lie is caught before another library reads it.
    pub fn check_all_entries(&mut self) -> Result<(), ParseError> {
        for index in 0..self.archive.len() {
            let entry = self
                .archive
                .by_index(index)
                .map_err(|e| ParseError::corrupt(format!("unreadable zip entry: {e}")))?;
            let read = std::io::copy(&mut entry.take(self.budget + 1), &mut std::io::sink())
                .map_err(|e| ParseError::corrupt(format!("unreadable zip entry: {e}")))?;
            if read > self.budget {
                return Err(ParseError::too_large(format!(
                    "the zip entries decompress to more than {} bytes (a zip bomb?)",
                    self.limit
                )));
            }
            self.budget -= read;
        }
        Ok(())
    }

    /// Reads entry `name` as UTF-8 text (XML parts are UTF-8 or UTF-16).
    pub fn read_text(&mut self, name: &str) -> Result<Option<String>, ParseError> {
        let Some(bytes) = self.read(name)? else {
            return Ok(None);
        };
        let (text, _, _) = encoding_rs::UTF_8.decode(&bytes);
        Ok(Some(text.into_owned()))
    }
}

/// A zip of `entries` (name, bytes), for tests of the zip-based parsers.
#[cfg(test)]
pub(crate) fn test_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut buf = Cursor::new(Vec::new());
    let mut w = zip::ZipWriter::new(&mut buf);
    for (name, data) in entries {
        w.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap();
    buf.into_inner()
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn a_bomb_is_stopped_at_the_budget() {
        let big = vec![b'a'; 2 * 1024 * 1024];
        let bytes = test_zip(&[("word/document.xml", &big)]);
        let limits = ParseLimits {
            max_uncompressed_bytes: 1024 * 1024,
            ..ParseLimits::default()
        };
        let err = BoundedZip::open(&bytes, &limits, "DOCX")
            .and_then(|mut z| z.read("word/document.xml").map(|_| ()))
            .unwrap_err();
        assert_eq!(err.kind, "too_large");
    }

    #[test]
    fn too_many_entries_is_refused() {
        let names: Vec<String> = (0..20).map(|i| format!("e{i}")).collect();
        let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
        let bytes = test_zip(&entries);
        let limits = ParseLimits {
            max_zip_entries: 10,
            ..ParseLimits::default()
        };
        assert_eq!(
            BoundedZip::open(&bytes, &limits, "DOCX")
                .err()
                .unwrap()
                .kind,
            "too_large"
        );
    }
}
