import { defineBackend } from "@aws-amplify/backend";
import { auth } from "./auth/resource";
import { data } from "./data/resource";

/**
 * Output `EmitterFunctionArn` of the UserConfirmed stack (infra/template.yaml), deployed in the
 * same account and region with this backend's user pool id and AppSync API id. Leave it empty
 * until that stack exists.
 */
const USER_CONFIRMED_EMITTER_ARN: string = "";

const backend = defineBackend({ auth, data });

if (USER_CONFIRMED_EMITTER_ARN) {
  // The pool's (single) PostConfirmation trigger becomes the emitter. A property override sets
  // only this key of LambdaConfig, so triggers defined with defineAuth({ triggers }) stay.
  backend.auth.resources.cfnResources.cfnUserPool.addPropertyOverride(
    "LambdaConfig.PostConfirmation",
    USER_CONFIRMED_EMITTER_ARN,
  );
}

// amplify_outputs.json has data.url and data.aws_region but not the API id, which the stack's
// AppSyncApiId parameter needs: publish it as custom.appsyncApiId.
backend.addOutput({
  custom: {
    appsyncApiId: backend.data.resources.cfnResources.cfnGraphqlApi.attrApiId,
  },
});
