//! Drives the whole pipeline on the local stack, for the demo and the end-to-end tests: signs
//! users up in the local Cognito, invokes the real emitter binary with the PostConfirmation
//! event Cognito would send (moto does not call triggers), and runs the real worker.

use std::path::Path;
use std::time::Duration;

use aws_sdk_cognitoidentityprovider::types::{AttributeType, MessageActionType};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uc_devkit::{Invocation, LambdaHarness, RunningBinary, StandInControl};

use crate::local::StackEnv;

pub use uc_schemas::trigger_source::{CONFIRM_FORGOT_PASSWORD, CONFIRM_SIGN_UP};
const PASSWORD: &str = "Local-Demo-Passw0rd!";

/// A user confirmed in the local Cognito.
#[derive(Debug, Clone)]
pub struct ConfirmedUser {
    pub username: String,
    pub sub: String,
    pub confirmed_at: DateTime<Utc>,
}

pub struct Pipeline {
    pub env: StackEnv,
    pub standin: StandInControl,
    cognito: aws_sdk_cognitoidentityprovider::Client,
    events: aws_sdk_eventbridge::Client,
    emitter: LambdaHarness,
}

fn sdk_error<E: aws_sdk_sqs::error::ProvideErrorMetadata>(
    e: aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>,
) -> anyhow::Error {
    anyhow::anyhow!(uc_ops::aws_message(&e))
}

impl Pipeline {
    /// Starts the emitter binary under the local Runtime API, configured from the stack's env
    /// file plus `overrides`.
    pub async fn start(
        env: StackEnv,
        emitter_bin: &Path,
        overrides: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let sdk = env.sdk_config().await?;
        let mut emitter_env: Vec<(String, String)> = env.binary_env();
        emitter_env.extend(overrides.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let borrowed: Vec<(&str, String)> = emitter_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        let emitter = LambdaHarness::start(&emitter_bin.display().to_string(), &borrowed).await;
        Ok(Self {
            standin: StandInControl::new(env.get("APPSYNC_GRAPHQL_URL")?),
            cognito: aws_sdk_cognitoidentityprovider::Client::new(&sdk),
            events: aws_sdk_eventbridge::Client::new(&sdk),
            emitter,
            env,
        })
    }

    /// Signs `email` up through the app client (with a UUID username, as Amplify's email
    /// sign-in does) and confirms it (as AdminConfirmSignUp would).
    pub async fn sign_up_and_confirm(&self, email: &str) -> anyhow::Result<ConfirmedUser> {
        let pool = self.env.get("USER_POOL_ID")?;
        let username = uuid::Uuid::new_v4().to_string();
        let signed_up = self
            .cognito
            .sign_up()
            .client_id(self.env.get("USER_POOL_CLIENT_ID")?)
            .username(&username)
            .password(PASSWORD)
            .user_attributes(
                AttributeType::builder()
                    .name("email")
                    .value(email)
                    .build()?,
            )
            .send()
            .await
            .map_err(sdk_error)?;
        self.cognito
            .admin_confirm_sign_up()
            .user_pool_id(pool)
            .username(&username)
            .send()
            .await
            .map_err(sdk_error)?;
        let confirmed_at = Utc::now();
        Ok(ConfirmedUser {
            username,
            sub: signed_up.user_sub,
            confirmed_at,
        })
    }

    /// A sign-up confirmed and reported the usual way: Cognito's PostConfirmation event handed
    /// to the emitter, which must answer with it unchanged.
    pub async fn sign_up_through_trigger(&self, email: &str) -> anyhow::Result<ConfirmedUser> {
        let user = self.sign_up_and_confirm(email).await?;
        let event = self.trigger_event(&user, CONFIRM_SIGN_UP).await?;
        let answer = self
            .invoke_emitter(&event)
            .await
            .result
            .map_err(|e| anyhow::anyhow!("emitter error: {e}"))?;
        anyhow::ensure!(answer == event, "the emitter changed the Cognito event");
        Ok(user)
    }

    /// An administrator's user (`AdminCreateUser`, invitation suppressed): Cognito runs no
    /// PostConfirmation for it. `permanent` sets a password (status CONFIRMED); otherwise it
    /// keeps the temporary one (FORCE_CHANGE_PASSWORD). Returns its `sub`.
    pub async fn admin_create(&self, email: &str, permanent: bool) -> anyhow::Result<String> {
        let pool = self.env.get("USER_POOL_ID")?;
        let attribute =
            |name: &str, value: &str| AttributeType::builder().name(name).value(value).build();
        let created = self
            .cognito
            .admin_create_user()
            .user_pool_id(pool)
            .username(email)
            .user_attributes(attribute("email", email)?)
            .user_attributes(attribute("email_verified", "true")?)
            .message_action(MessageActionType::Suppress)
            .send()
            .await
            .map_err(sdk_error)?;
        if permanent {
            self.cognito
                .admin_set_user_password()
                .user_pool_id(pool)
                .username(email)
                .password(PASSWORD)
                .permanent(true)
                .send()
                .await
                .map_err(sdk_error)?;
        }
        created
            .user()
            .and_then(|u| u.attributes().iter().find(|a| a.name() == "sub"))
            .and_then(|a| a.value())
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("AdminCreateUser answered without a sub"))
    }

    /// Deletes `username` from the pool as an administrator (`AdminDeleteUser`). Moto records
    /// no CloudTrail: [`Pipeline::report_call`] puts what AWS would.
    pub async fn admin_delete(&self, username: &str) -> anyhow::Result<()> {
        self.cognito
            .admin_delete_user()
            .user_pool_id(self.env.get("USER_POOL_ID")?)
            .username(username)
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    /// What CloudTrail puts on the account's default bus for a user-pool call `name` about
    /// `sub`: `source: aws.cognito-idp`, the sub in `additionalEventData`, the user name hidden,
    /// the pool in `requestParameters` when `pool` is given (a self-service `DeleteUser` may
    /// not name it). Returns the record's `eventID`.
    pub async fn report_call(
        &self,
        name: &str,
        sub: &str,
        pool: Option<&str>,
    ) -> anyhow::Result<String> {
        let detail = cloudtrail_detail(name, sub, pool, self.env.get("AWS_REGION")?);
        let sent = self
            .events
            .put_events()
            .entries(
                aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                    .event_bus_name("default")
                    .source(uc_schemas::COGNITO_SOURCE)
                    .detail_type(uc_schemas::CLOUDTRAIL_DETAIL_TYPE)
                    .detail(detail.to_string())
                    .build(),
            )
            .send()
            .await
            .map_err(|e| anyhow::anyhow!(uc_ops::aws_message(&e)))?;
        anyhow::ensure!(
            sent.failed_entry_count() == 0,
            "the default bus refused the record: {:?}",
            sent.entries()
        );
        Ok(detail["eventID"].as_str().unwrap_or_default().to_owned())
    }

    /// A forgotten-password flow to the end, which fires PostConfirmation again.
    pub async fn reset_password(&self, user: &ConfirmedUser) -> anyhow::Result<()> {
        let client_id = self.env.get("USER_POOL_CLIENT_ID")?;
        self.cognito
            .forgot_password()
            .client_id(client_id)
            .username(&user.username)
            .send()
            .await
            .map_err(sdk_error)?;
        self.cognito
            .confirm_forgot_password()
            .client_id(client_id)
            .username(&user.username)
            .confirmation_code("123456")
            .password(format!("{PASSWORD}-new"))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    /// The PostConfirmation event Cognito sends for `user`, from its real attributes.
    pub async fn trigger_event(
        &self,
        user: &ConfirmedUser,
        trigger_source: &str,
    ) -> anyhow::Result<Value> {
        let pool = self.env.get("USER_POOL_ID")?;
        let fetched = self
            .cognito
            .admin_get_user()
            .user_pool_id(pool)
            .username(&user.username)
            .send()
            .await
            .map_err(sdk_error)?;
        let mut attributes = serde_json::Map::new();
        for attribute in fetched.user_attributes() {
            attributes.insert(
                attribute.name().to_owned(),
                json!(attribute.value().unwrap_or_default()),
            );
        }
        attributes.insert(
            "cognito:user_status".into(),
            json!(
                fetched
                    .user_status()
                    .map(|s| s.as_str())
                    .unwrap_or("CONFIRMED")
            ),
        );
        attributes.entry("email_verified").or_insert(json!("true"));
        Ok(json!({
            "version": "1",
            "region": self.env.get("AWS_REGION")?,
            "userPoolId": pool,
            "userName": fetched.username,
            "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": self.env.get("USER_POOL_CLIENT_ID")?},
            "triggerSource": trigger_source,
            "request": {"userAttributes": attributes},
            "response": {}
        }))
    }

    /// Invokes the emitter as Cognito would (5 s deadline).
    pub async fn invoke_emitter(&self, event: &Value) -> Invocation {
        self.emitter.invoke(event, Duration::from_secs(5)).await
    }

    /// Everything the emitter wrote (JSON log and EMF lines).
    pub fn emitter_output(&self) -> Vec<String> {
        self.emitter.output()
    }

    /// The emitter process's id (for its CPU time, say).
    pub fn emitter_pid(&self) -> u32 {
        self.emitter.pid()
    }

    /// Starts the worker binary in long-poll mode.
    pub fn start_worker(&self, worker_bin: &Path, overrides: &[(&str, String)]) -> RunningBinary {
        start_worker(&self.env, worker_bin, overrides)
    }
}

/// The `detail` of CloudTrail's record of user-pool call `name` about `sub`, shaped as the
/// Cognito guide's examples: the user name hidden, the sub in `additionalEventData`.
pub fn cloudtrail_detail(name: &str, sub: &str, pool: Option<&str>, region: &str) -> Value {
    let mut detail = json!({
        "eventVersion": "1.08",
        "userIdentity": {"type": "AssumedRole", "accountId": "123456789012"},
        "eventTime": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "eventSource": uc_schemas::COGNITO_EVENT_SOURCE,
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": "192.0.2.1",
        "userAgent": "aws-sdk-rust",
        "requestParameters": {"username": "HIDDEN_DUE_TO_SECURITY_REASONS"},
        "responseElements": null,
        "additionalEventData": {"sub": sub},
        "requestID": uuid::Uuid::new_v4().to_string(),
        "eventID": uuid::Uuid::new_v4().to_string(),
        "readOnly": false,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": "123456789012",
        "eventCategory": "Management",
    });
    match pool {
        Some(pool) => detail["requestParameters"]["userPoolId"] = json!(pool),
        None => {
            detail.as_object_mut().unwrap().remove("requestParameters");
        }
    }
    detail
}

/// Starts the worker binary in long-poll mode on the stack, with `overrides`.
pub fn start_worker(
    env: &StackEnv,
    worker_bin: &Path,
    overrides: &[(&str, String)],
) -> RunningBinary {
    let mut vars: Vec<(String, String)> = env.binary_env();
    vars.push(("WAIT_TIME_SECONDS".into(), "1".into()));
    vars.extend(overrides.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let borrowed: Vec<(&str, String)> = vars.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    RunningBinary::start(&worker_bin.display().to_string(), &["poll"], &borrowed)
}

/// The subs of the worker's `profile written` log lines (JSON) that report `outcome`
/// (`Created`, `AlreadyExisted`), one per line.
pub fn worker_outcome_subs(lines: &[String], outcome: &str) -> Vec<String> {
    lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|log| log["fields"]["outcome"] == outcome)
        .filter_map(|log| log["fields"]["sub"].as_str().map(str::to_owned))
        .collect()
}

/// The `q`-quantile (0..=1) of `samples`, nearest-rank.
pub fn quantile(samples: &[f64], q: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&samples, 0.5), Some(50.0));
        assert_eq!(quantile(&samples, 0.99), Some(99.0));
        assert_eq!(quantile(&samples, 1.0), Some(100.0));
        assert_eq!(quantile(&[7.0], 0.99), Some(7.0));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
