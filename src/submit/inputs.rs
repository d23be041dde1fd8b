//! Which files a `submit` names: files, folders and glob patterns.
//!
//! - A file is taken as it is, whatever its name.
//! - A folder is walked recursively (through symbolic links, loops
//!   refused), its entries sorted by name. Hidden files and folders (a name
//!   that begins with a dot) are left out, and so are files whose extension
//!   is not one of a format tenderflow reads ([`DOCUMENT_EXTENSIONS`]): an
//!   archive of tenders holds indexes, thumbnails and notes too, and
//!   submitting those would only fail them. Ingest still checks every file
//!   by its bytes, whatever its name.
//! - A path that does not exist and holds `*`, `?` or `[` is a glob
//!   pattern, for those the shell did not expand (quoted, or on a shell
//!   that does not): `*` stays within one folder, `**` crosses folders, and
//!   neither matches a name that begins with a dot unless the pattern spells
//!   the dot. Every file it matches is taken, as if named; a folder it
//!   matches is walked as above.
//!
//! A file named twice (by two patterns, or a folder and a pattern) is taken
//! once.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The extensions (lower case) of the formats tenderflow reads: the files
/// of a folder that a submit takes.
pub const DOCUMENT_EXTENSIONS: &[&str] = &[
    "pdf", "docx", "doc", "wps", "xlsx", "xls", "et", "html", "htm", "md", "markdown", "txt", "zip",
];

/// The files a submit's arguments name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Gathered {
    /// The files to submit, each once, in the order named.
    pub files: Vec<PathBuf>,
    /// Arguments, or entries of a folder, that name no file to submit.
    pub problems: Vec<Problem>,
    /// Files of the folders walked that were left out by their extension.
    pub skipped: Vec<PathBuf>,
}

/// An argument, or a folder entry, that could not be taken, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// As the user wrote it, or as the walk found it.
    pub path: String,
    pub reason: String,
}

/// The files `args` name (see the module's rules).
pub fn gather(args: &[PathBuf]) -> Gathered {
    let mut gathered = Gathered::default();
    let mut seen = HashSet::new();
    for arg in args {
        if arg.exists() {
            take(arg, &mut gathered, &mut seen);
        } else if is_pattern(arg) {
            expand(arg, &mut gathered, &mut seen);
        } else {
            gathered.problems.push(Problem {
                path: arg.display().to_string(),
                reason: "no such file or folder".into(),
            });
        }
    }
    gathered
}

/// Whether `path` holds a glob metacharacter.
fn is_pattern(path: &Path) -> bool {
    path.to_string_lossy().contains(['*', '?', '['])
}

/// A file or folder that exists: the file itself, or the folder walked.
fn take(path: &Path, gathered: &mut Gathered, seen: &mut HashSet<PathBuf>) {
    if path.is_dir() {
        walk(path, gathered, seen);
    } else {
        add(path.to_path_buf(), gathered, seen);
    }
}

/// The files of a glob pattern, folders it matches walked.
fn expand(pattern: &Path, gathered: &mut Gathered, seen: &mut HashSet<PathBuf>) {
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let text = pattern.to_string_lossy();
    let matches = match glob::glob_with(&text, options) {
        Ok(matches) => matches,
        Err(err) => {
            gathered.problems.push(Problem {
                path: text.into_owned(),
                reason: format!("not a valid pattern: {err}"),
            });
            return;
        }
    };
    let before = gathered.files.len() + gathered.problems.len() + gathered.skipped.len();
    for entry in matches {
        match entry {
            Ok(path) => take(&path, gathered, seen),
            Err(err) => gathered.problems.push(Problem {
                path: err.path().display().to_string(),
                reason: err.error().to_string(),
            }),
        }
    }
    if gathered.files.len() + gathered.problems.len() + gathered.skipped.len() == before {
        gathered.problems.push(Problem {
            path: text.into_owned(),
            reason: "the pattern matches no file".into(),
        });
    }
}

/// The documents of a folder and its subfolders, sorted by name.
fn walk(dir: &Path, gathered: &mut Gathered, seen: &mut HashSet<PathBuf>) {
    let entries = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|entry| entry.depth() == 0 || !is_hidden(entry.file_name()));
    for entry in entries {
        match entry {
            Ok(entry) if entry.file_type().is_dir() => {}
            Ok(entry) if is_document(entry.path()) => {
                add(entry.into_path(), gathered, seen);
            }
            Ok(entry) => gathered.skipped.push(entry.into_path()),
            Err(err) => gathered.problems.push(Problem {
                path: err.path().unwrap_or(dir).display().to_string(),
                reason: walk_error(&err),
            }),
        }
    }
}

/// A walk's error, without the path it names (the problem names it).
fn walk_error(err: &walkdir::Error) -> String {
    if let Some(ancestor) = err.loop_ancestor() {
        return format!(
            "a symbolic link loop back to {}: not followed",
            ancestor.display()
        );
    }
    err.io_error()
        .map_or_else(|| err.to_string(), ToString::to_string)
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().starts_with('.')
}

/// Whether a folder's file is of a format tenderflow reads, by its extension.
fn is_document(path: &Path) -> bool {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .is_some_and(|e| DOCUMENT_EXTENSIONS.contains(&e.as_str()))
}

/// Adds `path` unless it was taken already (under any name of it).
fn add(path: PathBuf, gathered: &mut Gathered, seen: &mut HashSet<PathBuf>) {
    let identity = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
    if seen.insert(identity) {
        gathered.files.push(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder of `files` (relative paths, folders made as needed).
    fn tree(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for file in files {
            let path = dir.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        }
        dir
    }

    fn names(dir: &Path, paths: &[PathBuf]) -> Vec<String> {
        paths
            .iter()
            .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn a_folder_is_walked_for_documents_leaving_hidden_and_other_files_out() {
        let dir = tree(&[
            "b.pdf",
            "a.DOCX",
            "2024/q1/c.md",
            "2024/notes.psd",
            ".git/d.pdf",
            "2024/.e.pdf",
            "Thumbs.db",
        ]);
        let gathered = gather(&[dir.path().to_path_buf()]);
        assert_eq!(
            names(dir.path(), &gathered.files),
            ["2024/q1/c.md", "a.DOCX", "b.pdf"]
        );
        assert_eq!(
            names(dir.path(), &gathered.skipped),
            ["2024/notes.psd", "Thumbs.db"]
        );
        assert!(gathered.problems.is_empty(), "{:?}", gathered.problems);
    }

    #[test]
    fn a_named_file_is_taken_whatever_its_name_and_once() {
        let dir = tree(&[".hidden", "notes.psd"]);
        let hidden = dir.path().join(".hidden");
        let other = dir.path().join("notes.psd");
        let again = dir.path().join(".").join("notes.psd");
        let gathered = gather(&[hidden.clone(), other.clone(), again]);
        assert_eq!(gathered.files, [hidden, other]);
    }

    #[test]
    fn a_pattern_matches_within_a_folder_or_across_them_with_two_stars() {
        let dir = tree(&["a/x.pdf", "a/b/y.pdf", "a/b/z.doc", "a/.h.pdf", "a/w.pdf"]);
        let one = gather(&[dir.path().join("a/*.pdf")]);
        assert_eq!(names(dir.path(), &one.files), ["a/w.pdf", "a/x.pdf"]);
        let all = gather(&[dir.path().join("a/**/*.pdf")]);
        assert_eq!(
            names(dir.path(), &all.files),
            ["a/b/y.pdf", "a/w.pdf", "a/x.pdf"]
        );
    }

    #[test]
    fn a_folder_and_a_pattern_over_it_name_each_file_once() {
        let dir = tree(&["a/x.pdf", "a/y.md"]);
        let gathered = gather(&[dir.path().join("a"), dir.path().join("a/*")]);
        assert_eq!(names(dir.path(), &gathered.files), ["a/x.pdf", "a/y.md"]);
    }

    #[test]
    fn what_names_nothing_is_a_problem_and_the_rest_are_taken() {
        let dir = tree(&["a.pdf"]);
        let gathered = gather(&[
            dir.path().join("missing.pdf"),
            dir.path().join("*.docx"),
            dir.path().join("[.pdf"),
            dir.path().join("a.pdf"),
        ]);
        assert_eq!(names(dir.path(), &gathered.files), ["a.pdf"]);
        let reasons: Vec<&str> = gathered
            .problems
            .iter()
            .map(|p| p.reason.as_str())
            .collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert_eq!(reasons[0], "no such file or folder");
        assert_eq!(reasons[1], "the pattern matches no file");
        assert!(reasons[2].starts_with("not a valid pattern"), "{reasons:?}");
    }

    #[cfg(unix)]
    #[test]
    fn a_link_loop_is_reported_not_followed() {
        let dir = tree(&["a/x.pdf"]);
        std::os::unix::fs::symlink(dir.path().join("a"), dir.path().join("a/back")).unwrap();
        let gathered = gather(&[dir.path().join("a")]);
        assert_eq!(names(dir.path(), &gathered.files), ["a/x.pdf"]);
        assert_eq!(gathered.problems.len(), 1, "{:?}", gathered.problems);
        assert!(gathered.problems[0].reason.contains("loop"));
    }
}
