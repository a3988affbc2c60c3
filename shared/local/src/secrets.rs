//! Secrets for `idflow serve`: environment variables and files beside the project.
//!
//! Nothing is cached: a secret is read again on every [`Secrets::resolve`], so rotating a file or
//! restarting with a new environment takes effect without any invalidation step. Reads are a syscall
//! or two and happen once per step that needs a credential, which is cheap next to the HTTP call the
//! credential is for.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use domain::model::SecretRef;
use domain::ports::{SecretError, SecretValue, Secrets};

/// Resolves `env:NAME` from the process environment and `file:path` from a file, relative to a base
/// directory (the project directory). `aws-secretsmanager:` references are
/// [`SecretError::Unsupported`] here.
///
/// An empty value (an empty variable, or a file holding only a newline) counts as not set, because
/// an empty credential is always a mistake and "not set" names the fix.
#[derive(Debug, Clone)]
pub struct LocalSecrets {
    base: PathBuf,
}

impl LocalSecrets {
    /// Resolves `file:` references relative to `base`; absolute paths are used as they are.
    pub fn new(base: impl Into<PathBuf>) -> LocalSecrets {
        LocalSecrets { base: base.into() }
    }

    /// The directory `file:` references are relative to.
    pub fn base(&self) -> &Path {
        &self.base
    }
}

#[async_trait]
impl Secrets for LocalSecrets {
    async fn resolve(&self, reference: &SecretRef) -> Result<SecretValue, SecretError> {
        let value = match reference {
            SecretRef::Env(name) => match std::env::var(name) {
                Ok(value) => value,
                Err(std::env::VarError::NotPresent) => String::new(),
                Err(source @ std::env::VarError::NotUnicode(_)) => {
                    return Err(SecretError::Unreadable {
                        reference: reference.to_string(),
                        source: Box::new(source),
                    });
                }
            },
            SecretRef::File(path) => match tokio::fs::read_to_string(self.base.join(path)).await {
                Ok(text) => text.trim_end_matches(['\n', '\r']).to_owned(),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(error) => {
                    return Err(SecretError::Unreadable {
                        reference: reference.to_string(),
                        source: Box::new(error),
                    });
                }
            },
            SecretRef::AwsSecretsManager(_) => {
                return Err(SecretError::Unsupported {
                    reference: reference.to_string(),
                });
            }
        };
        if value.is_empty() {
            return Err(SecretError::Missing {
                reference: reference.to_string(),
            });
        }
        Ok(SecretValue::new(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system temp dir, removed with its contents when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            let dir = std::env::temp_dir().join(format!("idflow-secrets-{}", ulid::Ulid::new()));
            std::fs::create_dir_all(&dir).expect("create temp dir");
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Resolves `reference` and compares with the value, or with the error's kind and message.
    async fn check(secrets: &LocalSecrets, reference: &str, expected: Result<&str, &str>) {
        let parsed = SecretRef::parse(reference).expect("valid reference");
        let actual = secrets.resolve(&parsed).await;
        match (actual, expected) {
            (Ok(value), Ok(expected)) => assert_eq!(value.expose(), expected, "{reference}"),
            (Err(error), Err(expected)) => assert_eq!(error.to_string(), expected, "{reference}"),
            (actual, expected) => panic!("{reference}: got {actual:?}, expected {expected:?}"),
        }
    }

    #[tokio::test]
    async fn resolves_env_and_file_references() {
        let temp = TempDir::new();
        let dir = &temp.0;
        std::fs::write(dir.join("token"), "s3cret\n").expect("write");
        std::fs::write(dir.join("crlf"), "with-crlf\r\n").expect("write");
        std::fs::write(dir.join("blank"), "\n").expect("write");
        std::fs::create_dir_all(dir.join("nested")).expect("mkdir");
        std::fs::write(dir.join("nested/key"), "inner").expect("write");
        // Setting a variable is unsafe with other test threads running, so read one that every test
        // environment has.
        let path = std::env::var("PATH").expect("PATH is set");
        let secrets = LocalSecrets::new(dir);

        check(&secrets, "env:PATH", Ok(&path)).await;
        check(
            &secrets,
            "env:IDFLOW_TEST_SURELY_UNSET_42",
            Err("secret env:IDFLOW_TEST_SURELY_UNSET_42 is not set"),
        )
        .await;
        check(&secrets, "file:token", Ok("s3cret")).await;
        check(&secrets, "file:./crlf", Ok("with-crlf")).await;
        check(&secrets, "file:nested/key", Ok("inner")).await;
        check(&secrets, "file:blank", Err("secret file:blank is not set")).await;
        check(
            &secrets,
            "file:missing",
            Err("secret file:missing is not set"),
        )
        .await;
        check(
            &secrets,
            "file:nested",
            Err("secret file:nested cannot be read"),
        )
        .await;
        check(
            &secrets,
            "aws-secretsmanager:prod/okta",
            Err("secret scheme of aws-secretsmanager:prod/okta is not available here"),
        )
        .await;
    }

    #[tokio::test]
    async fn rereads_files_after_they_change() {
        let temp = TempDir::new();
        let dir = &temp.0;
        let secrets = LocalSecrets::new(dir);
        std::fs::write(dir.join("rotating"), "old").expect("write");
        check(&secrets, "file:rotating", Ok("old")).await;
        std::fs::write(dir.join("rotating"), "new").expect("write");
        check(&secrets, "file:rotating", Ok("new")).await;
    }
}
