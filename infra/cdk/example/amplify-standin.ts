// An Amplify Gen 2 backend's stack layout without Amplify: a root stack with the nested stacks
// `auth` (the user pool), `data` (the AppSync API, which depends on auth for its user-pool
// authorization) and a custom stack from `backend.createStack("UserConfirmed")` holding the
// construct. Synthesized to example/synth/amplify-standin/; the tests check that the nested stacks
// depend on each other without a cycle and that the trigger is attached in the same deploy.
import { CfnResource, NestedStack, Stack, type StackProps } from "aws-cdk-lib";
import * as appsync from "aws-cdk-lib/aws-appsync";
import * as cognito from "aws-cdk-lib/aws-cognito";
import * as lambda from "aws-cdk-lib/aws-lambda";
import type { Construct } from "constructs";

import { UserConfirmedPipeline } from "../src";
import { codeBucket } from "./standalone";

export interface AmplifyStandInProps extends StackProps {
  /** schemas/graphql/schema.graphql: the API Amplify generates for the docs' UserProfile model. */
  readonly graphqlSchemaFile: string;
}

export class AmplifyStandInStack extends Stack {
  readonly pipeline: UserConfirmedPipeline;

  constructor(scope: Construct, id: string, props: AmplifyStandInProps) {
    super(scope, id, props);
    // Amplify names its nested stacks after the resource groups (NestedStackResolver).
    const auth = new NestedStack(this, "auth");
    const data = new NestedStack(this, "data");
    const custom = new NestedStack(this, "UserConfirmed");

    const userPool = new cognito.UserPool(auth, "UserPool", {
      signInAliases: { email: true },
      autoVerify: { email: true },
      selfSignUpEnabled: true,
    });
    userPool.addClient("UserPoolAppClient", { generateSecret: false });

    const graphqlApi = new appsync.GraphqlApi(data, "GraphQLAPI", {
      name: "amplifyData",
      definition: appsync.Definition.fromFile(props.graphqlSchemaFile),
      authorizationConfig: {
        defaultAuthorization: { authorizationType: appsync.AuthorizationType.USER_POOL, userPoolConfig: { userPool } },
        additionalAuthorizationModes: [{ authorizationType: appsync.AuthorizationType.IAM }],
      },
    });
    // The app's API, not the pipeline's: its logging and WAF are the app's choices.
    (graphqlApi.node.defaultChild as CfnResource).addMetadata("checkov", {
      skip: ["CKV_AWS_193", "CKV_AWS_194", "CKV2_AWS_33"].map((id) => ({
        id,
        comment: "Stands in for the Amplify app's own API; the pipeline only calls it.",
      })),
    });

    // What docs/amplify-gen2/amplify/backend.ts writes, with placeholder code (no asset hashes),
    // plus the worker's strict mode: its AdminGetUser grant names the pool across the stacks too.
    this.pipeline = new UserConfirmedPipeline(custom, "Pipeline", {
      userPool,
      graphqlApi,
      verifyUser: "cognito",
      emitterCode: lambda.Code.fromBucket(codeBucket(custom), "uc-emitter/bootstrap.zip"),
      workerCode: lambda.Code.fromBucket(codeBucket(custom), "uc-worker/bootstrap.zip"),
      reconcilerCode: lambda.Code.fromBucket(codeBucket(custom), "uc-reconciler/bootstrap.zip"),
    });
  }
}
