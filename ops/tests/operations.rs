//! The operations CLI run as a real process against moto: attaching the trigger without
//! disturbing the pool. (DLQ stats/peek/replay/redrive and back-fill need the whole local
//! stack; their tests are in dev/lab/tests/ops_on_local_stack.rs.)

use aws_sdk_cognitoidentityprovider::types::{
    LambdaConfigType, PasswordPolicyType, UserPoolPolicyType, VerifiedAttributeType,
};

/// attach-trigger preserves the pool's other settings, refuses to replace another trigger
/// unless forced, and changes nothing on a dry run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_trigger_keeps_everything_else() {
    let moto = uc_devkit::Moto::start();
    let cognito = aws_sdk_cognitoidentityprovider::Client::new(&moto.sdk_config().await);
    let other = "arn:aws:lambda:us-east-1:123456789012:function:someone-elses";
    let custom_message = "arn:aws:lambda:us-east-1:123456789012:function:custom-message";
    let emitter = "arn:aws:lambda:us-east-1:123456789012:function:uc-emitter";
    let pool = cognito
        .create_user_pool()
        .pool_name("production")
        .auto_verified_attributes(VerifiedAttributeType::Email)
        .policies(
            UserPoolPolicyType::builder()
                .password_policy(
                    PasswordPolicyType::builder()
                        .minimum_length(14)
                        .require_symbols(true)
                        .build(),
                )
                .build(),
        )
        .lambda_config(
            LambdaConfigType::builder()
                .custom_message(custom_message)
                .build(),
        )
        .user_pool_tags("team", "identity")
        .email_verification_subject("Your code")
        .send()
        .await
        .unwrap()
        .user_pool
        .unwrap();
    let pool_id = pool.id().unwrap().to_owned();
    let run = |args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_uc-ops"));
        command
            .args(args)
            .env("AWS_ENDPOINT_URL", moto.endpoint())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", uc_devkit::ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", uc_devkit::SECRET_KEY)
            .env("USER_POOL_ID", &pool_id)
            .env_remove("UC_ENV_FILE");
        command.output().unwrap()
    };

    let dry = run(&["attach-trigger", "--function-arn", emitter, "--dry-run"]);
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(
        text.contains("- (none)")
            && text.contains(&format!("+ {emitter}"))
            && text.contains("CustomMessage"),
        "{text}"
    );
    let unchanged = cognito
        .describe_user_pool()
        .user_pool_id(&pool_id)
        .send()
        .await
        .unwrap()
        .user_pool
        .unwrap();
    assert_eq!(
        unchanged
            .lambda_config()
            .and_then(|l| l.post_confirmation()),
        None,
        "dry run changed nothing"
    );

    assert!(
        run(&["attach-trigger", "--function-arn", emitter])
            .status
            .success()
    );
    let after = cognito
        .describe_user_pool()
        .user_pool_id(&pool_id)
        .send()
        .await
        .unwrap()
        .user_pool
        .unwrap();
    let lambda = after.lambda_config().unwrap();
    assert_eq!(lambda.post_confirmation(), Some(emitter));
    assert_eq!(
        lambda.custom_message(),
        Some(custom_message),
        "other triggers kept"
    );
    let password = after.policies().unwrap().password_policy().unwrap();
    assert_eq!(password.minimum_length(), Some(14), "password policy kept");
    assert!(password.require_symbols());
    assert_eq!(
        after.auto_verified_attributes(),
        [VerifiedAttributeType::Email]
    );
    assert_eq!(
        after
            .user_pool_tags()
            .unwrap()
            .get("team")
            .map(String::as_str),
        Some("identity")
    );
    assert_eq!(after.name(), Some("production"));

    // Running it again is a no-op; a different trigger is refused without --force.
    let again = run(&["attach-trigger", "--function-arn", emitter]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("already"));
    let refused = run(&["attach-trigger", "--function-arn", other]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--force"));
    let still = cognito
        .describe_user_pool()
        .user_pool_id(&pool_id)
        .send()
        .await
        .unwrap()
        .user_pool
        .unwrap();
    assert_eq!(
        still.lambda_config().unwrap().post_confirmation(),
        Some(emitter)
    );
    assert!(
        run(&["attach-trigger", "--function-arn", other, "--force"])
            .status
            .success()
    );
    let forced = cognito
        .describe_user_pool()
        .user_pool_id(&pool_id)
        .send()
        .await
        .unwrap()
        .user_pool
        .unwrap();
    assert_eq!(
        forced.lambda_config().unwrap().post_confirmation(),
        Some(other)
    );
}
