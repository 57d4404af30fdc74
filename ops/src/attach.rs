//! `attach-trigger`: puts the emitter on an existing user pool as its PostConfirmation trigger.
//! CloudFormation cannot add a trigger to a pool it does not own, and `UpdateUserPool` resets
//! every setting it is not given, so this reads the pool's full configuration, changes only
//! `LambdaConfig.PostConfirmation`, and writes everything else back as it was.

use aws_sdk_cognitoidentityprovider::operation::update_user_pool::UpdateUserPoolInput;
use aws_sdk_cognitoidentityprovider::types::{
    AdminCreateUserConfigType, LambdaConfigType, UserPoolType,
};

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error(
        "the pool's PostConfirmation trigger is already {existing}; pass --force to replace it with {wanted}"
    )]
    DifferentTrigger { existing: String, wanted: String },
    #[error("{operation}: {message}")]
    Cognito {
        operation: &'static str,
        message: String,
    },
}

/// What attaching would change.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    AlreadyAttached,
    /// `before` is the current PostConfirmation trigger, if any.
    Attach {
        before: Option<String>,
        after: String,
        request: Box<UpdateUserPoolInput>,
    },
}

impl Plan {
    /// A readable diff: the one setting that changes, and what is kept.
    pub fn describe(&self, pool: &UserPoolType) -> String {
        let lambda = pool.lambda_config();
        let kept: Vec<String> = [
            ("PreSignUp", lambda.and_then(|l| l.pre_sign_up())),
            ("CustomMessage", lambda.and_then(|l| l.custom_message())),
            (
                "PostAuthentication",
                lambda.and_then(|l| l.post_authentication()),
            ),
            (
                "PreAuthentication",
                lambda.and_then(|l| l.pre_authentication()),
            ),
            (
                "PreTokenGeneration",
                lambda.and_then(|l| l.pre_token_generation()),
            ),
            (
                "DefineAuthChallenge",
                lambda.and_then(|l| l.define_auth_challenge()),
            ),
            (
                "CreateAuthChallenge",
                lambda.and_then(|l| l.create_auth_challenge()),
            ),
            (
                "VerifyAuthChallengeResponse",
                lambda.and_then(|l| l.verify_auth_challenge_response()),
            ),
            ("UserMigration", lambda.and_then(|l| l.user_migration())),
        ]
        .into_iter()
        .filter_map(|(name, arn)| Some(format!("    {name}: {}", arn?)))
        .collect();
        let name = pool.name().unwrap_or_default();
        match self {
            Self::AlreadyAttached => {
                format!("pool {name}: PostConfirmation is already this function; nothing to do")
            }
            Self::Attach { before, after, .. } => {
                let mut text = format!(
                    "pool {name}:\n  LambdaConfig.PostConfirmation\n  - {}\n  + {after}\n",
                    before.as_deref().unwrap_or("(none)")
                );
                text.push_str("  kept as they are: policies, MFA, verification messages, email/SMS configuration, admin-create-user config, add-ons, account recovery, deletion protection, tags, tier");
                if !kept.is_empty() {
                    text.push_str(", and the other triggers:\n");
                    text.push_str(&kept.join("\n"));
                }
                text.push('\n');
                text
            }
        }
    }
}

/// Plans the update of `pool` that sets `function_arn` as PostConfirmation and changes nothing else.
pub fn plan(pool: &UserPoolType, function_arn: &str, force: bool) -> Result<Plan, AttachError> {
    let existing = pool
        .lambda_config()
        .and_then(|l| l.post_confirmation())
        .map(str::to_owned);
    match existing.as_deref() {
        Some(arn) if arn == function_arn => return Ok(Plan::AlreadyAttached),
        Some(arn) if !force => {
            return Err(AttachError::DifferentTrigger {
                existing: arn.to_owned(),
                wanted: function_arn.to_owned(),
            });
        }
        _ => {}
    }
    let lambda = pool
        .lambda_config()
        .cloned()
        .unwrap_or_else(|| LambdaConfigType::builder().build());
    let lambda = LambdaConfigType::builder()
        .set_pre_sign_up(lambda.pre_sign_up)
        .set_custom_message(lambda.custom_message)
        .post_confirmation(function_arn)
        .set_pre_authentication(lambda.pre_authentication)
        .set_post_authentication(lambda.post_authentication)
        .set_define_auth_challenge(lambda.define_auth_challenge)
        .set_create_auth_challenge(lambda.create_auth_challenge)
        .set_verify_auth_challenge_response(lambda.verify_auth_challenge_response)
        .set_pre_token_generation(lambda.pre_token_generation)
        .set_user_migration(lambda.user_migration)
        .set_pre_token_generation_config(lambda.pre_token_generation_config)
        .set_custom_sms_sender(lambda.custom_sms_sender)
        .set_custom_email_sender(lambda.custom_email_sender)
        .set_kms_key_id(lambda.kms_key_id)
        .set_inbound_federation(lambda.inbound_federation)
        .build();
    // UnusedAccountValidityDays is deprecated and refused together with the password policy's
    // TemporaryPasswordValidityDays, which Describe returns as its replacement.
    let admin_create = pool.admin_create_user_config().map(|c| {
        AdminCreateUserConfigType::builder()
            .allow_admin_create_user_only(c.allow_admin_create_user_only)
            .set_invite_message_template(c.invite_message_template.clone())
            .build()
    });
    // With a verification message template, the legacy message fields must not be sent too.
    let has_template = pool.verification_message_template().is_some();
    let request = UpdateUserPoolInput::builder()
        .set_user_pool_id(pool.id.clone())
        .set_policies(pool.policies.clone())
        .set_deletion_protection(pool.deletion_protection.clone())
        .lambda_config(lambda)
        .set_auto_verified_attributes(pool.auto_verified_attributes.clone())
        .set_sms_verification_message(
            pool.sms_verification_message
                .clone()
                .filter(|_| !has_template),
        )
        .set_email_verification_message(
            pool.email_verification_message
                .clone()
                .filter(|_| !has_template),
        )
        .set_email_verification_subject(
            pool.email_verification_subject
                .clone()
                .filter(|_| !has_template),
        )
        .set_verification_message_template(pool.verification_message_template.clone())
        .set_sms_authentication_message(pool.sms_authentication_message.clone())
        .set_user_attribute_update_settings(pool.user_attribute_update_settings.clone())
        .set_mfa_configuration(pool.mfa_configuration.clone())
        .set_device_configuration(pool.device_configuration.clone())
        .set_email_configuration(pool.email_configuration.clone())
        .set_sms_configuration(pool.sms_configuration.clone())
        .set_user_pool_tags(pool.user_pool_tags.clone())
        .set_admin_create_user_config(admin_create)
        .set_user_pool_add_ons(pool.user_pool_add_ons.clone())
        .set_account_recovery_setting(pool.account_recovery_setting.clone())
        .set_pool_name(pool.name.clone())
        .set_user_pool_tier(pool.user_pool_tier.clone())
        .build()
        .expect("the input builder has no required fields");
    Ok(Plan::Attach {
        before: existing,
        after: function_arn.to_owned(),
        request: Box::new(request),
    })
}

fn cognito_error<E: aws_sdk_sqs::error::ProvideErrorMetadata>(
    operation: &'static str,
) -> impl Fn(aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>) -> AttachError
{
    move |e| AttachError::Cognito {
        operation,
        message: crate::aws_message(&e),
    }
}

pub async fn describe(
    client: &aws_sdk_cognitoidentityprovider::Client,
    pool_id: &str,
) -> Result<UserPoolType, AttachError> {
    client
        .describe_user_pool()
        .user_pool_id(pool_id)
        .send()
        .await
        .map_err(cognito_error("DescribeUserPool"))?
        .user_pool
        .ok_or(AttachError::Cognito {
            operation: "DescribeUserPool",
            message: "no pool in the answer".into(),
        })
}

/// Sends the planned update.
pub async fn apply(
    client: &aws_sdk_cognitoidentityprovider::Client,
    request: UpdateUserPoolInput,
) -> Result<(), AttachError> {
    let r = request;
    client
        .update_user_pool()
        .set_user_pool_id(r.user_pool_id)
        .set_policies(r.policies)
        .set_deletion_protection(r.deletion_protection)
        .set_lambda_config(r.lambda_config)
        .set_auto_verified_attributes(r.auto_verified_attributes)
        .set_sms_verification_message(r.sms_verification_message)
        .set_email_verification_message(r.email_verification_message)
        .set_email_verification_subject(r.email_verification_subject)
        .set_verification_message_template(r.verification_message_template)
        .set_sms_authentication_message(r.sms_authentication_message)
        .set_user_attribute_update_settings(r.user_attribute_update_settings)
        .set_mfa_configuration(r.mfa_configuration)
        .set_device_configuration(r.device_configuration)
        .set_email_configuration(r.email_configuration)
        .set_sms_configuration(r.sms_configuration)
        .set_user_pool_tags(r.user_pool_tags)
        .set_admin_create_user_config(r.admin_create_user_config)
        .set_user_pool_add_ons(r.user_pool_add_ons)
        .set_account_recovery_setting(r.account_recovery_setting)
        .set_pool_name(r.pool_name)
        .set_user_pool_tier(r.user_pool_tier)
        .send()
        .await
        .map_err(cognito_error("UpdateUserPool"))?;
    Ok(())
}
