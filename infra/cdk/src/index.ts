// Public entry point of the UserConfirmed pipeline's CDK construct (infra/cdk).
export {
  UserConfirmedPipeline,
  DETAIL_TYPE,
  PROFILE_CREATED_DETAIL_TYPE,
  PROFILE_DELETED_DETAIL_TYPE,
  USER_DELETED_DETAIL_TYPE,
  type PipelineOutput,
} from "./pipeline";
export { DEFAULT_EVENT_SOURCE, type FailurePolicy, type UserConfirmedPipelineProps, type VerifyUser } from "./props";
export { USER_CONFIRMED_SCHEMA } from "./user-confirmed-schema";
export { PROFILE_CREATED_SCHEMA } from "./profile-created-schema";
export { USER_DELETED_SCHEMA } from "./user-deleted-schema";
export { PROFILE_DELETED_SCHEMA } from "./profile-deleted-schema";
