//! Cognito's PostConfirmation trigger sources: which ones mean a new confirmed user.

/// A confirmed sign-up (also reported for `AdminConfirmSignUp` and a federated user's first
/// sign-in): publish.
pub const CONFIRM_SIGN_UP: &str = "PostConfirmation_ConfirmSignUp";
/// A confirmed password reset: the user already exists, nothing to publish.
pub const CONFIRM_FORGOT_PASSWORD: &str = "PostConfirmation_ConfirmForgotPassword";
