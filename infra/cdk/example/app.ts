// The example CDK app: synthesizes the construct's checked templates into $CDK_OUTDIR
// (infra/cdk/check.sh compares them with the committed copies).
import { App, DefaultStackSynthesizer } from "aws-cdk-lib";
import * as path from "node:path";

import { AmplifyStandInStack } from "./amplify-standin";
import { OptionsStack, StandaloneStack } from "./standalone";

const app = new App({
  analyticsReporting: false,
  // Path metadata and the bootstrap-version rule vary with nothing we own; leaving them out
  // keeps the templates close to the SAM template's.
  context: { "aws:cdk:enable-path-metadata": false },
});
const synthesizer = () => new DefaultStackSynthesizer({ generateBootstrapVersionRule: false });

new StandaloneStack(app, "UserConfirmedPipeline", { synthesizer: synthesizer() });
new OptionsStack(app, "UserConfirmedPipelineOptions", { synthesizer: synthesizer() });
new AmplifyStandInStack(app, "amplify-standin-sandbox-0123456789", {
  synthesizer: synthesizer(),
  graphqlSchemaFile: path.join(__dirname, "..", "..", "..", "..", "schemas", "graphql", "schema.graphql"),
});
app.synth();
