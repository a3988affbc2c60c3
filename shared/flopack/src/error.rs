//! The importer's errors.

use std::path::PathBuf;

/// Why an import could not produce a project. Problems inside a flow are never errors: they become
/// `flow.fail` steps and entries of the report's `unconverted` list.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file is not JSON.
    #[error("not a flopack: the file is not JSON ({message})")]
    NotJson {
        line: usize,
        column: usize,
        message: String,
    },
    /// The file is JSON but not an Okta Workflows export.
    #[error("not a flopack: {0}; export flows or folders from Okta Workflows as .flopack files")]
    NotFlopack(String),
    /// A file or directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A directory holds no `.flopack` file.
    #[error("no .flopack file in {}", path.display())]
    NoFlopack { path: PathBuf },
    /// The output could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The output directory already holds files the import would replace.
    #[error(
        "{} already holds {file}; import into an empty or new directory so no flow is overwritten",
        path.display()
    )]
    OutputNotEmpty { path: PathBuf, file: String },
}

impl ImportError {
    /// Whether the input itself is the problem (as opposed to the file system).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            ImportError::NotJson { .. }
                | ImportError::NotFlopack(_)
                | ImportError::NoFlopack { .. }
        )
    }
}
