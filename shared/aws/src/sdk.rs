//! The functions' SDK configuration, read from the environment Lambda sets and nothing else.
//!
//! Lambda always gives a function its region (`AWS_REGION`) and its role's credentials
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) in the environment, so the
//! functions do not need `aws-config`'s default chain (profile files, STS, SSO, ECS and instance
//! metadata providers), which every function binary linked although it never ran past the
//! environment. `idflow deploy` and the tests keep that chain ([`crate::sdk_defaults`]).

use std::time::Duration;

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_runtime::client::identity::IdentityCache;
use aws_smithy_runtime_api::client::behavior_version::BehaviorVersion;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use aws_types::SdkConfig;
use aws_types::region::Region;

/// The connect timeout `aws-config` gives every client by default.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);

/// The name the credentials carry in the SDK's logs and errors (never their value).
const PROVIDER_NAME: &str = "Environment";

/// The environment lacks what the SDK needs.
#[derive(Debug, thiserror::Error)]
pub enum SdkConfigError {
    /// A variable Lambda always sets is missing or empty.
    #[error(
        "environment variable {name} is required (Lambda sets it; the functions read their region and credentials from the environment only)"
    )]
    Missing {
        /// The variable.
        name: &'static str,
    },
}

/// The SDK configuration of a function, from the process environment.
pub fn sdk_config() -> Result<SdkConfig, SdkConfigError> {
    sdk_config_from(|name| std::env::var(name).ok())
}

/// The SDK configuration read through `lookup` (the environment, or a map in tests): the region
/// from `AWS_REGION` (or `AWS_DEFAULT_REGION`), the credentials from `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` (absent outside Lambda, for an emulator), and
/// `AWS_ENDPOINT_URL` when set (an emulator in tests). The rest is what `aws-config` gives by
/// default: the latest behaviour version, standard retries, a 3.1-second connect timeout, a lazy
/// identity cache, the tokio sleep and the system clock, and the HTTPS client of
/// [`crate::https_client`].
pub fn sdk_config_from(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<SdkConfig, SdkConfigError> {
    let value = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
    let required = |name: &'static str| value(name).ok_or(SdkConfigError::Missing { name });
    let region = value("AWS_REGION")
        .or_else(|| value("AWS_DEFAULT_REGION"))
        .ok_or(SdkConfigError::Missing { name: "AWS_REGION" })?;
    let credentials = Credentials::new(
        required("AWS_ACCESS_KEY_ID")?,
        required("AWS_SECRET_ACCESS_KEY")?,
        value("AWS_SESSION_TOKEN"),
        None,
        PROVIDER_NAME,
    );
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.trim().to_owned()))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .identity_cache(IdentityCache::lazy().build())
        .retry_config(RetryConfig::standard())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .build(),
        )
        .time_source(aws_smithy_async::time::SystemTimeSource::new())
        .http_client(crate::https_client());
    builder.set_sleep_impl(aws_smithy_async::rt::sleep::default_async_sleep());
    builder.set_endpoint_url(value("AWS_ENDPOINT_URL").map(|url| url.trim().to_owned()));
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<SdkConfig, SdkConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        sdk_config_from(|name| env.get(name).cloned())
    }

    const LAMBDA: &[(&str, &str)] = &[
        ("AWS_REGION", "eu-west-3"),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI"),
        ("AWS_SESSION_TOKEN", "IQoJb3JpZ2lu"),
    ];

    #[tokio::test]
    async fn a_lambda_environment_gives_region_credentials_and_the_aws_endpoints() {
        use aws_credential_types::provider::ProvideCredentials as _;
        let sdk = config(LAMBDA).expect("a Lambda environment is enough");
        assert_eq!(sdk.region().map(Region::as_ref), Some("eu-west-3"));
        assert_eq!(sdk.endpoint_url(), None);
        let credentials = sdk
            .credentials_provider()
            .expect("credentials")
            .provide_credentials()
            .await
            .expect("static credentials");
        assert_eq!(credentials.access_key_id(), "AKIDEXAMPLE");
        assert_eq!(credentials.secret_access_key(), "wJalrXUtnFEMI");
        assert_eq!(credentials.session_token(), Some("IQoJb3JpZ2lu"));
        assert!(
            sdk.http_client().is_some(),
            "the SDK crates have no client of their own"
        );
        assert!(
            sdk.sleep_impl().is_some(),
            "retries and timeouts need a sleep"
        );
        assert_eq!(
            sdk.timeout_config()
                .and_then(TimeoutConfig::connect_timeout),
            Some(CONNECT_TIMEOUT)
        );
    }

    #[test]
    fn an_emulator_endpoint_and_the_default_region_name_are_read() {
        let sdk = config(&[
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5005"),
        ])
        .expect("an emulator environment");
        assert_eq!(sdk.region().map(Region::as_ref), Some("us-east-1"));
        assert_eq!(sdk.endpoint_url(), Some("http://127.0.0.1:5005"));
    }

    #[test]
    fn a_missing_variable_is_named_and_no_secret_is_shown() {
        for missing in ["AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            let pairs: Vec<_> = LAMBDA
                .iter()
                .copied()
                .filter(|(name, _)| *name != missing)
                .collect();
            let message = config(&pairs).expect_err(missing).to_string();
            assert!(message.contains(missing), "{message}");
            assert!(!message.contains("wJalrXUtnFEMI"), "{message}");
        }
        let blank: Vec<_> = LAMBDA
            .iter()
            .map(|&(name, value)| (name, if name == "AWS_REGION" { " " } else { value }))
            .collect();
        assert!(matches!(
            config(&blank),
            Err(SdkConfigError::Missing { name: "AWS_REGION" })
        ));
    }
}
