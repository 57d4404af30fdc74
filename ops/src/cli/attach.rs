//! `uc-ops attach-trigger`: the arguments, the run and the output of attaching the emitter as
//! the pool's PostConfirmation trigger. The planning and the update are `uc_ops::attach`'s.

use anyhow::Context;
use aws_config::SdkConfig;
use clap::Args;
use serde::Serialize;
use uc_ops::attach::{self, Plan};

use super::{Outcome, terminal_safe_lines, to_json};

#[derive(Args)]
pub struct AttachArgs {
    /// The emitter function's ARN (the template's EmitterFunctionArn output).
    #[arg(long)]
    function_arn: String,
    #[arg(long, env = "USER_POOL_ID")]
    user_pool_id: String,
    /// Replace a different existing PostConfirmation trigger.
    #[arg(long)]
    force: bool,
    /// Print the change and stop.
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    pub json: bool,
}

/// What attaching found and did.
#[derive(Debug, Serialize)]
pub struct AttachReport {
    pub user_pool_id: String,
    pub function_arn: String,
    /// The PostConfirmation trigger before (`None`: there was none).
    pub previous: Option<String>,
    pub outcome: AttachOutcome,
    /// The readable diff: the one setting that changes, and what is kept.
    pub diff: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttachOutcome {
    AlreadyAttached,
    DryRun,
    Attached,
}

impl Outcome for AttachReport {}

pub async fn run(args: &AttachArgs, sdk: &SdkConfig) -> anyhow::Result<AttachReport> {
    let cognito = aws_sdk_cognitoidentityprovider::Client::new(sdk);
    let pool = attach::describe(&cognito, &args.user_pool_id).await?;
    let plan = attach::plan(&pool, &args.function_arn, args.force)?;
    let diff = plan.describe(&pool);
    let (previous, outcome) = match plan {
        Plan::AlreadyAttached => (
            Some(args.function_arn.clone()),
            AttachOutcome::AlreadyAttached,
        ),
        Plan::Attach { before, .. } if args.dry_run => (before, AttachOutcome::DryRun),
        Plan::Attach {
            before, request, ..
        } => {
            attach::apply(&cognito, *request)
                .await
                .context("the update was not made; the pool is unchanged")?;
            (before, AttachOutcome::Attached)
        }
    };
    Ok(AttachReport {
        user_pool_id: args.user_pool_id.clone(),
        function_arn: args.function_arn.clone(),
        previous,
        outcome,
        diff,
    })
}

pub fn render(report: &AttachReport, json: bool) -> anyhow::Result<String> {
    if json {
        return to_json(report);
    }
    let mut out = report.diff.clone();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    match report.outcome {
        AttachOutcome::AlreadyAttached => {}
        AttachOutcome::DryRun => out.push_str("dry run: nothing changed\n"),
        AttachOutcome::Attached => out.push_str(
            "attached. Make sure the function allows cognito-idp.amazonaws.com to invoke it for this pool (the template's permission does).\n",
        ),
    }
    Ok(terminal_safe_lines(&out))
}
