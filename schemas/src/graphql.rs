//! The GraphQL documents of the profile API, embedded at compile time so the worker, the tests
//! and the local AppSync stand-in all read the same files.

/// The `UserProfile` schema as AppSync serves it for the Amplify docs' model.
pub const SCHEMA: &str = include_str!("../graphql/schema.graphql");

/// The mutation the worker sends by default.
pub const CREATE_USER_PROFILE: &str = include_str!("../graphql/createUserProfile.graphql");

/// The mutation's operation name.
pub const CREATE_USER_PROFILE_OPERATION: &str = "CreateUserProfile";

/// The mutation's field: where the created item sits under `data`.
pub const CREATE_USER_PROFILE_FIELD: &str = "createUserProfile";

/// The mutation that removes a profile whose user left the pool, and its field.
pub const DELETE_USER_PROFILE: &str = include_str!("../graphql/deleteUserProfile.graphql");
pub const DELETE_USER_PROFILE_FIELD: &str = "deleteUserProfile";

/// The query that tells whether a profile exists, and its field.
pub const GET_USER_PROFILE: &str = include_str!("../graphql/getUserProfile.graphql");
pub const GET_USER_PROFILE_FIELD: &str = "getUserProfile";
