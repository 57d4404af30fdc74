import { defineBackend } from "@aws-amplify/backend";
import { UserConfirmedPipeline } from "@userconfirmed/cdk";
import { auth } from "./auth/resource";
import { data } from "./data/resource";

const backend = defineBackend({ auth, data });

// The whole UserConfirmed pipeline, deployed with this backend (`npx ampx sandbox`, or the
// branch's pipeline deploy): it attaches the emitter as the user pool's PostConfirmation trigger
// and lets the worker call Mutation.createUserProfile on this API (and, following each user's
// lifecycle, Query.getUserProfile and Mutation.deleteUserProfile), nothing copied by hand. The
// emitter side lands in the auth stack next to the pool (no cross-stack cycle); the worker in
// this custom stack (see infra/README.md, "CDK construct").
const pipeline = new UserConfirmedPipeline(backend.createStack("UserConfirmed"), "Pipeline", {
  userPool: backend.auth.resources.userPool,
  graphqlApi: backend.data.resources.graphqlApi,
  // The worker calls this endpoint directly, so its role needs no appsync:GetGraphqlApi.
  graphqlUrl: backend.data.resources.cfnResources.cfnGraphqlApi.attrGraphQlUrl,
  // Where `cargo lambda build --release --arm64 --output-format zip --lambda-dir <dir>` put
  // uc-emitter/, uc-worker/ and uc-reconciler/bootstrap.zip, relative to this project's root.
  codeDirectory: "target/lambda",
});

// For the operator's tools (uc-ops --env-file, DLQ replay, back-fill): the queue URLs and the
// bus land in amplify_outputs.json under custom.userConfirmed.
backend.addOutput({
  custom: {
    userConfirmed: {
      eventBusName: pipeline.eventBusName,
      eventSource: pipeline.eventSource,
      queueUrl: pipeline.queue.queueUrl,
      workerDlqUrl: pipeline.workerDeadLetterQueue.queueUrl,
      ruleDlqUrl: pipeline.ruleDeadLetterQueue.queueUrl,
      archiveName: pipeline.archiveName,
    },
  },
});
